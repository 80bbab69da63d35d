//! One folder's upload, as a state per archived message: to send, found at the target,
//! sent (with the UID the server gave it, where it says), in doubt, failed.
//!
//! A message is in doubt when its APPEND was sent on a connection that was lost before
//! the answer came: the server may have stored it, or may still be storing it (a stalled
//! link delivers what was sent long after the client gave up). Such a message is not sent
//! again in that run's passes; once the lost connection's APPENDs had time to land
//! ([`FolderRun::finish`], after the wait [`super::upload_all`] makes), it is looked for
//! among the messages added since the run began, and sent again only where it is not
//! there. Copies that land after that are found by [`FolderRun::remove_twice`] and
//! removed where the server can remove single messages (UIDPLUS).

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::time::Instant;

use super::event::{Event, Sink};
use super::matching::{BySize, UidRanges};
use super::measure::{measure, Crlf, Measured, Print};
use super::{Destination, FolderUpload};
use crate::archive::metadata::Index;
use crate::archive::{self, ArchiveFile};
use crate::error::{describe_io, Error, Result};
use crate::imap::{Appending, Holding};
use crate::imap::{ImapError, Session};
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;

/// Messages measured and checked against the target at a time: their fingerprints are
/// all that is held.
const WINDOW: usize = 500;
/// Uploads in flight at once.
const IN_FLIGHT: usize = 8;

/// Where an archived message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not found at the target: to be sent.
    Todo,
    /// Found at the target.
    Present,
    /// Sent by this run; its UID at the target is known (or it was found there after
    /// being in doubt).
    Sent,
    /// Sent by this run; the server did not say its UID.
    SentBlind,
    /// Sent on a connection that was lost before the answer came.
    Doubt,
    /// Unreadable, or refused by the server.
    Failed,
}

/// Why a step stopped.
pub(super) enum Stop {
    /// The connection broke: reconnect and go on (what is there is not sent again).
    Connection(String),
    /// The folder cannot be uploaded.
    Fatal(Error),
}

/// One folder being uploaded.
pub struct FolderRun<'a> {
    /// The folder directory and its name at the source.
    pub dest: &'a Destination,
    /// Its mailbox at the target.
    pub mailbox: Mailbox,
    files: Vec<ArchiveFile>,
    index: Option<Index>,
    keys: Option<&'a Keys>,
    states: Vec<State>,
    /// Every message that was ever in doubt: where a copy could have landed twice.
    doubted: Vec<usize>,
    /// Whether one of them was sent again.
    resent: bool,
    /// The first UID of the target mailbox above those it held when the run began:
    /// messages from here on were added during the run.
    floor: Option<u32>,
    /// The target mailbox's UIDVALIDITY when the run began.
    uidvalidity: Option<u32>,
    /// The UIDs of this run's copies: given by the server (APPENDUID), or where a message
    /// in doubt was found.
    own: UidRanges,
    /// When a connection was last lost with messages in flight.
    pub lost_at: Option<Instant>,
    bytes: u64,
    removed: usize,
    twice: usize,
    started: Instant,
    /// Each message this run stored with the UID the server gave it: `(archived UID,
    /// target UID)` (for Gmail labels set after).
    pub appended: Vec<(u32, u32)>,
}

impl<'a> FolderRun<'a> {
    /// The upload of `dest` into `mailbox`: its archive files listed, its metadata read.
    pub fn new(dest: &'a Destination, mailbox: Mailbox, keys: Option<&'a Keys>, sink: &dyn Sink) -> Result<Self> {
        let files = archive::list_folder(&dest.dir)?;
        let index = match &dest.journal {
            Some(path) => match Index::load(path, keys, false) {
                Ok(index) => Some(index),
                Err(e) => {
                    sink.event(Event::NoMetadata { folder: &dest.shown(), error: &e });
                    None
                }
            },
            None => None,
        };
        Ok(FolderRun {
            dest,
            mailbox,
            states: vec![State::Todo; files.len()],
            files,
            index,
            keys,
            doubted: Vec::new(),
            resent: false,
            floor: None,
            uidvalidity: None,
            own: UidRanges::default(),
            lost_at: None,
            bytes: 0,
            removed: 0,
            twice: 0,
            started: Instant::now(),
            appended: Vec::new(),
        })
    }

    /// Whether messages are in doubt (see the module's documentation).
    pub fn in_doubt(&self) -> bool {
        self.states.contains(&State::Doubt)
    }

    /// Whether copies may have landed twice: a message in doubt was sent again.
    pub fn may_have_twice(&self) -> bool {
        self.resent
    }

    /// What became of the folder so far.
    pub fn report(&self) -> FolderUpload {
        let count = |s: &[State]| self.states.iter().filter(|x| s.contains(x)).count();
        FolderUpload {
            uploaded: count(&[State::Sent, State::SentBlind]),
            present: count(&[State::Present]),
            failed: count(&[State::Failed, State::Doubt]),
            in_doubt: count(&[State::Doubt]),
            removed: self.removed,
            twice: self.twice,
            bytes: self.bytes,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }

    /// Uploads every message not at the target yet, reconnecting when the connection is
    /// lost (as often as the session allows); messages in flight then are left in doubt.
    pub fn upload(&mut self, session: &mut Session, sink: &dyn Sink) -> Result<()> {
        self.with_reconnects(session, sink, |run, session| run.pass(session, sink))
    }

    /// Settles the messages in doubt: those found among the messages added since the run
    /// began are this run's, the others are sent again. A connection lost meanwhile
    /// leaves what was in flight in doubt again (see [`FolderRun::in_doubt`]).
    pub fn finish(&mut self, session: &mut Session, sink: &dyn Sink) -> Result<()> {
        match self.settle_doubts(session, sink) {
            Ok(()) => Ok(()),
            Err(Stop::Connection(why)) => {
                let notice = session.lost(&why)?;
                sink.event(Event::Reconnected { server: &session.spec().endpoint(), notice: &notice });
                Ok(())
            }
            Err(Stop::Fatal(e)) => Err(e),
        }
    }

    /// Finds copies this run made twice (a message in doubt that landed after it was sent
    /// again) and removes them where the server can remove single messages (UIDPLUS);
    /// elsewhere they are reported.
    pub fn remove_twice(&mut self, session: &mut Session, sink: &dyn Sink) -> Result<()> {
        self.with_reconnects(session, sink, |run, session| run.find_twice(session, sink))
    }

    fn with_reconnects(
        &mut self,
        session: &mut Session,
        sink: &dyn Sink,
        mut step: impl FnMut(&mut Self, &mut Session) -> std::result::Result<(), Stop>,
    ) -> Result<()> {
        loop {
            match step(self, session) {
                Ok(()) => return Ok(()),
                Err(Stop::Connection(why)) => {
                    let notice = session.lost(&why)?;
                    sink.event(Event::Reconnected { server: &session.spec().endpoint(), notice: &notice });
                }
                Err(Stop::Fatal(e)) => return Err(e),
            }
        }
    }

    /// The target mailbox's messages (the mailbox is created when missing); the first
    /// time, where this run's additions will begin.
    fn holding(&mut self, session: &mut Session) -> std::result::Result<Holding, Stop> {
        let wire = self.mailbox.wire.clone();
        let holding = match session.holding(&wire).map_err(|e| stop(session, "EXAMINE", e))? {
            Some(h) => h,
            None => {
                session.create(&wire).map_err(|e| stop(session, "CREATE", e))?;
                Holding::default()
            }
        };
        if self.floor.is_none() {
            self.floor = Some(holding.sizes.last().map_or(1, |&(uid, _)| uid.saturating_add(1)));
            self.uidvalidity = holding.uidvalidity;
        }
        Ok(holding)
    }

    /// The UID from which messages were added during the run; every UID when the
    /// mailbox was recreated meanwhile (its UIDs now all name messages added since).
    fn floor_in(&self, holding: &Holding) -> u32 {
        if holding.uidvalidity != self.uidvalidity {
            return 1;
        }
        self.floor.unwrap_or(1)
    }

    /// One pass over the folder, window by window: measure, match, send what is missing.
    fn pass(&mut self, session: &mut Session, sink: &dyn Sink) -> std::result::Result<(), Stop> {
        let holding = self.holding(session)?;
        let floor = self.floor_in(&holding);
        let mut by_size = BySize::new(&holding.sizes);
        by_size.take(|u| self.own.contains(u));
        let mut start = 0;
        while start < self.files.len() {
            let window: Vec<usize> = (start..(start + WINDOW).min(self.files.len())).collect();
            start += WINDOW;
            // Messages sent with a known UID need no look at the target.
            let wanted = |s: State| !matches!(s, State::Sent | State::Failed);
            let measured = self.measure_all(&window, wanted, sink);
            self.match_at_target(session, &measured, &mut by_size, floor)?;
            let todo: Vec<(usize, Measured)> =
                measured.into_iter().filter(|(i, _)| self.states[*i] == State::Todo).collect();
            self.send(session, &todo, sink)?;
        }
        Ok(())
    }

    /// The messages of `which` whose state `wanted` says, measured; one that cannot be
    /// read is failed (and said).
    fn measure_all(
        &mut self,
        which: &[usize],
        wanted: impl Fn(State) -> bool,
        sink: &dyn Sink,
    ) -> Vec<(usize, Measured)> {
        let mut out = Vec::new();
        let which: Vec<usize> = which.iter().copied().filter(|&i| wanted(self.states[i])).collect();
        for i in which {
            let f = &self.files[i];
            match read_message(f, self.keys).and_then(|mut r| measure(&mut r).map_err(|e| unreadable(f, &e))) {
                Ok(m) => out.push((i, m)),
                Err(e) => {
                    sink.event(Event::LeftOut { path: &f.path, why: &e.to_string() });
                    self.states[i] = State::Failed;
                }
            }
        }
        out
    }

    /// The target's header prints of the messages left in `by_size` near the sizes of
    /// `measured` (from UID `floor` on).
    fn target_prints(
        &self,
        session: &mut Session,
        measured: &[(usize, Measured)],
        by_size: &BySize,
        floor: u32,
    ) -> std::result::Result<HashMap<u32, Print>, Stop> {
        let mut uids: Vec<u32> =
            measured.iter().flat_map(|(_, m)| by_size.near(m.size)).filter(|&u| u >= floor).collect();
        uids.sort_unstable();
        uids.dedup();
        let mut prints = HashMap::new();
        if !uids.is_empty() {
            session
                .header_prefixes(&self.mailbox.wire, &uids, &mut |uid, header| {
                    prints.insert(uid, super::measure::fingerprint(&header));
                })
                .map_err(|e| stop(session, "UID FETCH", e))?;
        }
        Ok(prints)
    }

    /// Which of `measured` the target holds. Messages found before (or sent without a
    /// UID) take their copies first, then those in doubt (only among the messages added
    /// during the run), then the others.
    fn match_at_target(
        &mut self,
        session: &mut Session,
        measured: &[(usize, Measured)],
        by_size: &mut BySize,
        floor: u32,
    ) -> std::result::Result<(), Stop> {
        let prints = self.target_prints(session, measured, by_size, 0)?;
        let now = |run: &Self, of: &[State]| -> Vec<(usize, u64, Print)> {
            measured.iter().filter(|(i, _)| of.contains(&run.states[*i])).map(|(i, m)| (*i, m.size, m.print)).collect()
        };
        for (i, size, print) in now(self, &[State::Present, State::SentBlind]) {
            let found = by_size.claim(size, &print, &prints, 0).is_some();
            if self.states[i] == State::Present && !found {
                self.states[i] = State::Todo;
            }
        }
        for (i, size, print) in now(self, &[State::Doubt]) {
            if let Some(uid) = by_size.claim(size, &print, &prints, floor) {
                self.landed(i, uid, size);
            }
        }
        for (i, size, print) in now(self, &[State::Todo]) {
            if by_size.claim(size, &print, &prints, 0).is_some() {
                self.states[i] = State::Present;
            }
        }
        Ok(())
    }

    /// A message in doubt was found at `uid`: it is this run's.
    fn landed(&mut self, i: usize, uid: u32, size: u64) {
        self.appended.extend(self.files[i].uid.map(|source| (source, uid)));
        self.states[i] = State::Sent;
        self.own.insert(uid);
        self.bytes += size;
    }

    /// Sends `todo`, up to [`IN_FLIGHT`] at once.
    fn send(
        &mut self,
        session: &mut Session,
        todo: &[(usize, Measured)],
        sink: &dyn Sink,
    ) -> std::result::Result<(), Stop> {
        let mut in_flight: VecDeque<(usize, u64)> = VecDeque::new();
        for (i, m) in todo {
            let f = &self.files[*i];
            let (flags, date) = self.stored(f.uid, m.date);
            let mut body = match read_message(f, self.keys) {
                Ok(r) => Crlf::new(r),
                Err(e) => {
                    sink.event(Event::LeftOut { path: &f.path, why: &e.to_string() });
                    self.states[*i] = State::Failed;
                    continue;
                }
            };
            let wire = self.mailbox.wire.clone();
            let appending = Appending { flags: &flags, date: date.as_deref(), size: m.size, body: &mut body };
            match session.send_append(&wire, appending) {
                Ok(()) => in_flight.push_back((*i, m.size)),
                Err(ImapError::Refused(text)) => self.refused(*i, &text, sink),
                // The archive file changed since it was measured: the APPEND was broken off
                // with the connection.
                Err(ImapError::Local(why)) => {
                    sink.event(Event::LeftOut { path: &f.path, why: &why });
                    self.states[*i] = State::Failed;
                    self.doubt(in_flight);
                    return Err(Stop::Connection(format!("an upload was broken off: {why}")));
                }
                Err(e) => {
                    let failure = stop(session, "APPEND", e);
                    self.doubt(in_flight);
                    return Err(failure);
                }
            }
            while session.appends_in_flight() >= IN_FLIGHT {
                self.settle(session, &mut in_flight, sink)?;
            }
        }
        while !in_flight.is_empty() {
            self.settle(session, &mut in_flight, sink)?;
        }
        Ok(())
    }

    /// Reads the answer of the oldest upload in flight.
    fn settle(
        &mut self,
        session: &mut Session,
        in_flight: &mut VecDeque<(usize, u64)>,
        sink: &dyn Sink,
    ) -> std::result::Result<(), Stop> {
        let Some((i, size)) = in_flight.pop_front() else { return Ok(()) };
        match session.read_append() {
            Ok(uid) => {
                match uid {
                    Some(uid) => {
                        self.states[i] = State::Sent;
                        self.own.insert(uid);
                        self.appended.extend(self.files[i].uid.map(|source| (source, uid)));
                    }
                    None => self.states[i] = State::SentBlind,
                }
                self.bytes += size;
                sink.event(Event::Uploaded { path: &self.files[i].path });
                Ok(())
            }
            Err(ImapError::Refused(text)) => {
                self.refused(i, &text, sink);
                Ok(())
            }
            Err(e) => {
                let failure = stop(session, "APPEND", e);
                in_flight.push_front((i, size));
                self.doubt(std::mem::take(in_flight));
                Err(failure)
            }
        }
    }

    /// The uploads of a connection that was lost before their answers came.
    fn doubt(&mut self, in_flight: VecDeque<(usize, u64)>) {
        if in_flight.is_empty() {
            return;
        }
        for (i, _) in in_flight {
            self.states[i] = State::Doubt;
            if !self.doubted.contains(&i) {
                self.doubted.push(i);
            }
        }
        self.lost_at = Some(Instant::now());
    }

    fn refused(&mut self, i: usize, text: &str, sink: &dyn Sink) {
        let f = &self.files[i];
        sink.event(Event::Refused { path: &f.path, text: &crate::imap::error::quote(text) });
        self.states[i] = State::Failed;
    }

    /// The flags and INTERNALDATE a message goes up with: those the metadata kept, else no
    /// flags and the date of its `Date:` header (the arrival time of archives without
    /// metadata is lost; the sender's date is closer to it than the time of the upload).
    fn stored(&self, uid: Option<u32>, date: Option<i64>) -> (Vec<String>, Option<String>) {
        let meta = self.index.as_ref().zip(uid).and_then(|(i, uid)| i.lookup(uid));
        // \Recent is the server's to set; APPEND refuses it.
        let flags = meta.as_ref().map_or_else(Vec::new, |m| {
            m.flags.iter().filter(|f| !f.eq_ignore_ascii_case("\\Recent")).cloned().collect()
        });
        let date = meta
            .and_then(|m| m.internal_date)
            .or_else(|| date.map(|t| crate::archive::metadata::format_internal_date(t, 0)));
        (flags, date)
    }

    /// [`FolderRun::finish`]'s work: look for the messages in doubt, send the missing ones.
    fn settle_doubts(&mut self, session: &mut Session, sink: &dyn Sink) -> std::result::Result<(), Stop> {
        let doubts: Vec<usize> = (0..self.states.len()).filter(|&i| self.states[i] == State::Doubt).collect();
        if doubts.is_empty() {
            return Ok(());
        }
        let holding = self.holding(session)?;
        let floor = self.floor_in(&holding);
        let mut by_size = BySize::new(&holding.sizes);
        by_size.take(|u| u < floor || self.own.contains(u));
        let measured = self.measure_all(&doubts, |s| s == State::Doubt, sink);
        let prints = self.target_prints(session, &measured, &by_size, floor)?;
        let mut again = Vec::new();
        for (i, m) in measured {
            match by_size.claim(m.size, &m.print, &prints, floor) {
                Some(uid) => self.landed(i, uid, m.size),
                None => {
                    self.states[i] = State::Todo;
                    again.push((i, m));
                }
            }
        }
        if !again.is_empty() {
            self.resent = true;
            sink.event(Event::Resending { folder: &self.dest.shown(), count: again.len() });
        }
        self.send(session, &again, sink)
    }

    /// [`FolderRun::remove_twice`]'s work.
    fn find_twice(&mut self, session: &mut Session, sink: &dyn Sink) -> std::result::Result<(), Stop> {
        let Some(holding) = session.holding(&self.mailbox.wire).map_err(|e| stop(session, "EXAMINE", e))? else {
            return Ok(());
        };
        if holding.uidvalidity != self.uidvalidity {
            return Ok(());
        }
        let floor = self.floor_in(&holding);
        let mut by_size = BySize::new(&holding.sizes);
        by_size.take(|u| u < floor || self.own.contains(u));
        let doubted = self.doubted.clone();
        let measured = self.measure_all(&doubted, |s| matches!(s, State::Sent | State::SentBlind), sink);
        let prints = self.target_prints(session, &measured, &by_size, floor)?;
        // Copies of a message that was in doubt, added during the run, not known to be
        // this run's: each beyond the copies sent without a known UID is one too many.
        let mut extra: Vec<u32> = Vec::new();
        let mut blind = false;
        let mut keys: Vec<(u64, Print, usize)> = Vec::new();
        for (i, m) in &measured {
            let sent_blind = usize::from(self.states[*i] == State::SentBlind);
            blind |= sent_blind > 0;
            match keys.iter_mut().find(|(s, p, _)| *s == m.size && *p == m.print) {
                Some(k) => k.2 += sent_blind,
                None => keys.push((m.size, m.print, sent_blind)),
            }
        }
        for (size, print, expected) in keys {
            let mut copies = Vec::new();
            while let Some(uid) = by_size.claim(size, &print, &prints, floor) {
                copies.push(uid);
            }
            copies.sort_unstable();
            extra.extend(copies.iter().skip(expected));
        }
        if extra.is_empty() {
            return Ok(());
        }
        extra.sort_unstable();
        let shown = self.mailbox.shown();
        let uids = crate::imap::uid_set(&extra);
        let uidplus = session.has("UIDPLUS").map_err(|e| stop(session, "CAPABILITY", e))?;
        match (uidplus && !blind, self.uidvalidity) {
            (true, Some(uidvalidity)) => match session.remove_copies(&self.mailbox.wire, uidvalidity, &extra) {
                Ok(()) => {
                    self.removed += extra.len();
                    sink.event(Event::RemovedTwice { folder: &shown, uids: &uids });
                }
                Err(ImapError::Refused(text)) => {
                    self.twice += extra.len();
                    let refused = crate::imap::error::quote(&text);
                    sink.event(Event::LeftTwice { folder: &shown, uids: &uids, refused: Some(&refused) });
                }
                Err(e) => return Err(stop(session, "UID EXPUNGE", e)),
            },
            _ => {
                self.twice += extra.len();
                sink.event(Event::LeftTwice { folder: &shown, uids: &uids, refused: None });
            }
        }
        Ok(())
    }
}

/// An IMAP failure as a [`Stop`].
fn stop(session: &Session, what: &str, e: ImapError) -> Stop {
    let err = session.spec().imap_error(what, &e);
    if e.breaks_session() && !matches!(e, ImapError::Local(_)) {
        Stop::Connection(err.to_string())
    } else {
        Stop::Fatal(err)
    }
}

/// The message of `f`, decoded (authenticated first when encrypted).
fn read_message(f: &ArchiveFile, keys: Option<&Keys>) -> Result<Box<dyn Read>> {
    let (_, reader) = f.open(keys).map_err(|e| unreadable(f, &e))?;
    Ok(Box::new(reader))
}

fn unreadable(f: &ArchiveFile, e: &std::io::Error) -> Error {
    Error::runtime(format!("{}: {}", f.path.display(), describe_io(e)))
}
