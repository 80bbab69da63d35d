//! One folder's backup: EXAMINE, compare the server's UIDs with the files already in the
//! folder directory, and fetch what is missing in size-bounded batches, each message into
//! a temporary file (in the root's own directory) that is synced and linked into the
//! folder directory only when complete.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::context::{archived_uids, metadata_lost, sync_journal, tally, writer_for, Context, FolderReport, Place};
use super::event::Event;
use super::plan::{self, Batch};
use super::rebase;
use super::writer::{MessageWriter, Stamp};
use crate::archive::layout::registry::OpenFolder;
use crate::archive::metadata::Journal;
use crate::error::{Error, Result};
use crate::imap::wire::{BodySink, Fetched};
use crate::imap::{Examined, FolderStatus, Found, ImapError, ServerSpec, Session, Then};
use crate::mailbox_name::Mailbox;

/// Why a pass over the folder stopped.
pub(super) enum Stop {
    /// The connection broke: reconnect and run the pass again (it resumes).
    Connection(String),
    /// The connection was given up on purpose (what the server sent could not be
    /// placed) and the [`Lessons`] say what to do differently: run the pass again at once.
    Again,
    /// Anything else: the folder fails.
    Fatal(Error),
    /// Gmail's download limit: the folder stops with what it has, and so does the account.
    Cap(String),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Fatal(e)
    }
}

/// An IMAP failure during `what` as a [`Stop`]: a broken session is reconnected, a
/// refused command fails the folder.
fn imap_stop<'a>(spec: &'a ServerSpec, what: &'a str) -> impl Fn(ImapError) -> Stop + 'a {
    move |e| {
        let err = spec.imap_error(what, &e);
        if super::context::over_cap(&err.to_string()) {
            Stop::Cap(err.to_string())
        } else if e.breaks_session() {
            Stop::Connection(err.to_string())
        } else {
            Stop::Fatal(err)
        }
    }
}

/// What passes over a folder learn for the passes after them.
#[derive(Default)]
struct Lessons {
    /// Messages whose whole-batch answers brought more than planned: fetched alone, in
    /// pieces, each within its own ceiling.
    one_by_one: HashSet<u32>,
    /// Messages given up for this run (their data broke a limit); counted as failed, and
    /// the next run tries them again.
    left_out: HashSet<u32>,
    /// The previous generation was searched for the missing messages (done once).
    relinked: bool,
}

impl Lessons {
    /// Gives up `uid` for this run, saying why.
    fn leave_out(&mut self, ctx: &Context<'_>, report: &mut FolderReport, uid: u32, why: &str) {
        if self.left_out.insert(uid) {
            report.failed += 1;
            report.errors.push(format!("UID {uid} left out: {why}"));
        }
        ctx.sink.event(Event::LeftOut { account: ctx.account, folder: &report.folder, uid, why });
    }
}

/// The report of a folder that has no new mail (see [`unchanged`]), if it has none.
pub fn unchanged_report(
    place: &Place<'_>,
    mailbox: &Mailbox,
    status: Option<FolderStatus>,
) -> Result<Option<FolderReport>> {
    Ok(unchanged(place, mailbox, status)?
        .map(|existing| FolderReport { existing, ..FolderReport::new(&mailbox.shown()) }))
}

/// Backs up one mailbox into its folder directory, reconnecting (a bounded number of
/// times) when the connection breaks; each new pass skips what the previous ones archived.
/// `prior` is what an earlier step of this run already stored in it.
pub fn backup(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    mailbox: &Mailbox,
    prior: Option<FolderReport>,
) -> Result<FolderReport> {
    match backup_until_commit(ctx, session, place, mailbox, prior)? {
        Ended::Done(report) => Ok(report),
        Ended::Committing(tail) => tail.finish(ctx, place),
    }
}

/// How [`backup_until_commit`] left a folder.
pub enum Ended<'m> {
    /// Its backup is over (or stopped): the report.
    Done(FolderReport),
    /// Every message is with the writer: its last commit, and what depends on it, remain.
    Committing(Box<Tail<'m>>),
}

/// A folder whose messages were all handed to the writer: left are the writer's last
/// commit and what depends on it (the journal's lines, the completion mark). It can be
/// finished on another thread, so that the next folder's round trips overlap its syncs: a
/// folder of three messages took about 4.6 ms, 3 of them waiting for flushes.
pub struct Tail<'m> {
    mailbox: &'m Mailbox,
    report: FolderReport,
    rest: Rest,
}

/// What [`pass`] leaves to a [`Tail`].
struct Rest {
    writer: MessageWriter,
    journal: Option<Journal>,
    /// HIGHESTMODSEQ to record once the messages are, when every message came in this pass.
    modseq: Option<u64>,
    /// The UIDNEXT below which every message is archived once the messages are.
    complete_at: Option<u32>,
}

impl<'m> Tail<'m> {
    /// The mailbox.
    pub fn mailbox(&self) -> &'m Mailbox {
        self.mailbox
    }

    /// Messages still to be committed (each holds a temporary file open until then).
    pub fn in_hand(&self) -> usize {
        self.rest.writer.in_hand()
    }

    /// Waits for the last commit, then writes the folder's journal lines and completion
    /// mark: the folder's report, or the error that failed it (a full disk).
    pub fn finish(self, ctx: &Context<'_>, place: &Place<'_>) -> Result<FolderReport> {
        let Tail { mailbox, mut report, rest: Rest { writer, mut journal, modseq, complete_at } } = self;
        tally(ctx, &mut report, &mut journal, writer.finish()?);
        if let (Some(modseq), Some(j)) = (modseq, journal.as_mut()) {
            // Every message of the folder came in this pass, with flags at least as new as
            // the EXAMINE: the flags need no asking until HIGHESTMODSEQ moves.
            if let Err(e) = j.modseq(modseq) {
                metadata_lost(ctx, &report, &mut journal, &e);
            }
        }
        sync_journal(ctx, &report, place, &mut journal);
        if let Some(uidnext) = complete_at {
            place.records().set_complete(place.account_dir, mailbox, uidnext)?;
        }
        Ok(report)
    }
}

/// [`backup`], up to the last commit: the caller finishes the [`Tail`].
pub fn backup_until_commit<'m>(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    mailbox: &'m Mailbox,
    prior: Option<FolderReport>,
) -> Result<Ended<'m>> {
    let name = mailbox.shown();
    let mut report = prior.unwrap_or_else(|| FolderReport::new(&name));
    ctx.progress_begun(mailbox, &report);
    let mut lessons = Lessons::default();
    loop {
        match pass(ctx, session, place, mailbox, &mut report, &mut lessons) {
            Ok(rest) => {
                ctx.progress_cleared();
                return Ok(Ended::Committing(Box::new(Tail { mailbox, report, rest })));
            }
            // Stopped by a signal: what is archived so far is this folder's result.
            Err(Stop::Connection(_)) if crate::interrupt::requested() => {
                return Ok(Ended::Done(interrupted(ctx, report)))
            }
            Err(Stop::Cap(why)) => {
                ctx.progress_cleared();
                report.capped = true;
                report.errors.push(why);
                return Ok(Ended::Done(report));
            }
            Err(Stop::Fatal(e)) if e.is_interrupted() => return Ok(Ended::Done(interrupted(ctx, report))),
            Err(Stop::Connection(why)) => {
                ctx.progress_cleared();
                let notice = session.lost(&why)?;
                ctx.sink.event(Event::Reconnected { account: ctx.account, notice: &notice });
            }
            // Each time, a message more is fetched alone or left out: this ends.
            Err(Stop::Again) => ctx.progress_cleared(),
            Err(Stop::Fatal(e)) => return Err(e),
        }
    }
}

fn interrupted(ctx: &Context<'_>, mut report: FolderReport) -> FolderReport {
    ctx.progress_cleared();
    report.errors.push("interrupted".into());
    report
}

/// When the folder's UIDVALIDITY and UIDNEXT are what the last complete backup recorded,
/// no message arrived since: the number of messages archived, counted without opening the
/// folder on the server.
fn unchanged(place: &Place<'_>, mailbox: &Mailbox, status: Option<FolderStatus>) -> Result<Option<usize>> {
    let Some(status) = status else { return Ok(None) };
    // The records are shared by the connections: not held while the directory is listed.
    let dir = {
        let records = place.records();
        let Some(record) = records.folder_of(place.account_dir, mailbox) else { return Ok(None) };
        let Some(complete_at) = record.complete_at() else { return Ok(None) };
        if status.uidvalidity.zip(status.uidnext) != Some(complete_at) {
            return Ok(None);
        }
        match records.open_beneath(&Path::new(place.account_dir).join(&record.dir)) {
            Ok(dir) => dir,
            Err(_) => return Ok(None),
        }
    };
    Ok(Some(archived_uids(&dir)?.len()))
}

/// Opens the folder and learns what is on the server, in one round trip: with `--since`,
/// the UIDs of the messages from that day on; after a complete backup, the UIDs and sizes
/// of the messages that arrived since; otherwise every UID.
fn open(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    mailbox: &Mailbox,
) -> std::result::Result<(Examined, Found), Stop> {
    let spec = session.spec().clone();
    if let Some(day) = ctx.account.since {
        return session.examine_and(&mailbox.wire, Then::UidsSince(day)).map_err(imap_stop(&spec, "EXAMINE"));
    }
    let since = place.records().folder_of(place.account_dir, mailbox).and_then(|r| r.complete_at());
    // A UIDVALIDITY the run's start already showed to be another needs every UID.
    let renumbered =
        |recorded: u32| ctx.statuses.get(&mailbox.wire).and_then(|s| s.uidvalidity).is_some_and(|now| now != recorded);
    if let Some((uidvalidity, uidnext)) = since.filter(|&(v, _)| !renumbered(v)) {
        let (examined, found) =
            session.examine_and(&mailbox.wire, Then::SizesFrom(uidnext)).map_err(imap_stop(&spec, "EXAMINE"))?;
        if examined.uid_validity == Some(uidvalidity) {
            return Ok((examined, found));
        }
    }
    session.examine_and(&mailbox.wire, Then::AllUids).map_err(imap_stop(&spec, "EXAMINE"))
}

fn pass(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    mailbox: &Mailbox,
    report: &mut FolderReport,
    lessons: &mut Lessons,
) -> std::result::Result<Rest, Stop> {
    // Each pass retries every missing message but those given up: only its own failures
    // count besides those.
    report.failed = lessons.left_out.len();
    let (examined, found) = open(ctx, session, place, mailbox)?;
    let uidvalidity =
        examined.uid_validity.ok_or_else(|| Error::runtime("the server reported no UIDVALIDITY for the folder"))?;
    let opened = place.records().open_folder(place.account_dir, mailbox, uidvalidity)?;
    let mut journal = Some(place.journal(ctx, mailbox, uidvalidity));
    let mut archived = archived_uids(&opened.dir)?;
    let mut recognised = None;
    if let Found::Uids(on_server) = &found {
        recognised = relink(
            ctx,
            session,
            place,
            mailbox,
            (uidvalidity, &opened),
            on_server,
            &mut archived,
            report,
            lessons,
            &mut journal,
        )?;
    }
    if let Some((old, aside)) = &opened.retired {
        let previous = recognised.as_ref().map_or(0, |r: &rebase::Rebased| r.previous);
        let found = recognised.as_ref().map_or(0, |r| r.linked.len());
        let (old, new) = (*old, uidvalidity);
        ctx.sink.event(Event::Renumbered { folder: &report.folder, old, new, found, previous, aside });
    }
    let sized = match found {
        Found::Sizes(sizes) => {
            let new: Vec<(u32, u32)> =
                sizes.into_iter().filter(|(u, _)| !archived.contains(u) && !lessons.left_out.contains(u)).collect();
            report.existing = archived.len().saturating_sub(report.new);
            new
        }
        Found::Uids(on_server) => {
            let missing: Vec<u32> =
                on_server.iter().copied().filter(|u| !archived.contains(u) && !lessons.left_out.contains(u)).collect();
            let held = on_server.iter().filter(|u| archived.contains(u)).count();
            report.existing = held - report.new.min(held);
            let spec = session.spec().clone();
            let sized = if missing.is_empty() {
                Vec::new()
            } else {
                session.sizes(&missing).map_err(imap_stop(&spec, "UID FETCH"))?
            };
            report.vanished += missing.len() - sized.len();
            sized
        }
    };
    if !sized.is_empty() {
        if let Some(Err(e)) = journal.as_mut().map(Journal::begin) {
            metadata_lost(ctx, report, &mut journal, &e);
        }
    }
    let budget = ctx.account.buffer_size;
    let bytes = sized.iter().map(|&(_, size)| u64::from(size)).sum();
    ctx.progress_total(sized.len(), bytes);
    let mut writer = writer_for(ctx, place, &opened, Some(bytes))?;
    let batches = plan::batches(&sized, budget, &|uid| lessons.one_by_one.contains(&uid));
    let fetched = (|| -> std::result::Result<(), Stop> {
        // Batches asked for so far: up to FETCHES_IN_FLIGHT whole batches ahead of the one
        // being read, so the server never waits for the round trip of the next command.
        // Their answers wait in the socket, not in our memory: each is read when its turn comes.
        let mut sent = 0;
        // A server may run pipelined fetches at once, and FETCH answers belong to no
        // command: a message of a batch still in flight can come with an earlier batch's
        // answers. It waits here for its batch (at most the batches in flight, each within
        // the budget).
        let mut early: HashMap<u32, (Vec<u8>, Stamp)> = HashMap::new();
        for (i, batch) in batches.iter().enumerate() {
            if crate::interrupt::requested() {
                return Err(Stop::Fatal(Error::interrupted()));
            }
            sent = sent.max(i);
            while sent < batches.len() && sent < i + FETCHES_IN_FLIGHT {
                let set = match &batches[sent] {
                    Batch::Whole(ahead) => crate::imap::uid_set(ahead),
                    Batch::Alone(uid) if sent == i => uid.to_string(),
                    // Not ahead of its turn: servers run pipelined fetches at once (Dovecot
                    // does), and its body would come, too big for memory, while an earlier
                    // batch is read; its own read passes it on as it comes.
                    Batch::Alone(_) => break,
                };
                match session.send_fetch(&set, WHOLE) {
                    Ok(()) => sent += 1,
                    // The answers asked for already may have come: read them first.
                    Err(_) if session.awaiting_fetch() => break,
                    Err(e) => return Err(fetch_lost(session, &e)),
                }
            }
            let in_flight = |uid: u32| {
                batches[i + 1..sent].iter().any(|b| match b {
                    Batch::Whole(u) => u.binary_search(&uid).is_ok(),
                    Batch::Alone(u) => *u == uid,
                })
            };
            // This batch and, come early, the ones in flight: each planned within the
            // budget; twice that allows for sizes a server got slightly wrong.
            let max_total = (sent - i) * 2 * budget + (1 << 20);
            match batch {
                Batch::Whole(uids) => {
                    let wanted = |uid: u32| uids.binary_search(&uid).is_ok() || in_flight(uid);
                    let answers = match session.read_fetch(max_literal(ctx), max_total, &wanted) {
                        Ok(answers) => Ok(answers),
                        Err(ImapError::Refused(text)) => Err(Ok(text)),
                        Err(ImapError::TooMuch(why)) => {
                            ctx.sink.event(Event::OneAtATime {
                                account: ctx.account,
                                folder: &report.folder,
                                why: &why,
                                count: uids.len(),
                            });
                            lessons.one_by_one.extend(uids.iter().copied());
                            Err(Err(Stop::Again))
                        }
                        Err(e) => Err(Err(fetch_lost(session, &e))),
                    };
                    store_whole(ctx, answers, uids, &mut early, &in_flight, &mut writer, report)?;
                }
                Batch::Alone(uid) => {
                    let announced = sized.binary_search_by_key(uid, |&(u, _)| u).map_or(0, |k| u64::from(sized[k].1));
                    let alone = Alone { uid: *uid, announced, budget, max_total };
                    fetch_alone(ctx, session, &alone, &mut early, &in_flight, &mut writer, report, lessons)?;
                }
            }
            writer.flush()?;
            tally(ctx, report, &mut journal, writer.ready()?);
        }
        Ok(())
    })();
    if let Err(stop) = fetched {
        // Whatever happened, count what the writer finished (a message cut short by a lost
        // connection is dropped by it, temporary file and all).
        if let Ok(done) = writer.finish() {
            tally(ctx, report, &mut journal, done);
        }
        sync_journal(ctx, report, place, &mut journal);
        return Err(stop);
    }
    let whole = archived.is_empty() && report.failed == 0 && report.vanished == 0;
    // Everything below UIDNEXT is archived once the writer is done: the next run starts
    // there. Not after a message went missing: the next run looks at every UID again, in
    // case it was not really gone. Nor with `--since`: the older messages are still to
    // come, and a run without it must look at every UID to find them.
    let complete_at = match (report.failed, report.vanished, ctx.uidnext(mailbox, &examined), ctx.account.since) {
        (0, 0, Some(uidnext), None) => Some(uidnext),
        _ => None,
    };
    writer.close();
    Ok(Rest { writer, journal, modseq: examined.highest_modseq.filter(|_| whole), complete_at })
}

/// Before the missing messages of a folder whose UIDVALIDITY changed are fetched, those
/// the previous generation holds are recognised and linked (see [`rebase`]); their UIDs
/// join `archived`. Once per folder and run; a failure other than a lost connection only
/// means they are fetched.
#[allow(clippy::too_many_arguments)]
fn relink(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    mailbox: &Mailbox,
    (uidvalidity, opened): (u32, &OpenFolder),
    on_server: &[u32],
    archived: &mut HashSet<u32>,
    report: &mut FolderReport,
    lessons: &mut Lessons,
    journal: &mut Option<Journal>,
) -> std::result::Result<Option<rebase::Rebased>, Stop> {
    if lessons.relinked {
        return Ok(None);
    }
    let missing: Vec<u32> =
        on_server.iter().copied().filter(|u| !archived.contains(u) && !lessons.left_out.contains(u)).collect();
    let previous = rebase::previous(place, mailbox, uidvalidity);
    if previous.is_empty() || missing.is_empty() {
        return Ok(None);
    }
    let all = missing.len() == on_server.len();
    match rebase::rebase(ctx, session, place, mailbox, &opened.dir, &previous, &missing, all, journal, report) {
        Ok(r) => {
            lessons.relinked = true;
            archived.extend(r.linked.iter().copied());
            report.renumbered += r.linked.len();
            Ok(Some(r))
        }
        Err(rebase::Failure::Lost(e)) => Err(Stop::Connection(session.spec().imap_error("UID FETCH", &e).to_string())),
        Err(rebase::Failure::Other(e)) if e.is_interrupted() => Err(Stop::Fatal(e)),
        Err(rebase::Failure::Other(e)) => {
            lessons.relinked = true;
            ctx.sink.event(Event::NotRecognised { account: ctx.account, folder: &report.folder, error: &e });
            Ok(None)
        }
    }
}

/// The largest literal accepted in an answer: more than any message we planned for.
fn max_literal(ctx: &Context<'_>) -> usize {
    2 * ctx.account.buffer_size + (1 << 20)
}

/// Whole-batch `UID FETCH` commands kept in flight.
const FETCHES_IN_FLIGHT: usize = 4;

/// The query of a whole-message fetch.
const WHOLE: &str = "(UID FLAGS INTERNALDATE BODY.PEEK[])";

/// A `UID FETCH` whose answers broke the session.
fn fetch_lost(session: &Session, e: &ImapError) -> Stop {
    let why = format!("UID FETCH: {}", e.describe(session.spec().timeout));
    if super::context::over_cap(&why) {
        return Stop::Cap(why);
    }
    Stop::Connection(why)
}

/// Hands the messages of a whole batch's answers to the writer.
fn store_whole(
    ctx: &Context<'_>,
    answers: std::result::Result<Vec<Fetched>, std::result::Result<String, Stop>>,
    uids: &[u32],
    early: &mut HashMap<u32, (Vec<u8>, Stamp)>,
    in_flight: &dyn Fn(u32) -> bool,
    writer: &mut MessageWriter,
    report: &mut FolderReport,
) -> std::result::Result<(), Stop> {
    let answers = match answers {
        Ok(a) => a,
        Err(Ok(text)) if super::context::over_cap(&text) => {
            return Err(Stop::Cap(format!("UID FETCH refused: {}", crate::imap::error::quote(&text))))
        }
        Err(Ok(text)) => {
            // A refused batch fails its messages, not the folder: the next run retries them.
            let text = crate::imap::error::quote(&text);
            ctx.sink.event(Event::FetchRefused { account: ctx.account, folder: &report.folder, text: &text });
            report.errors.push(format!("UID FETCH refused: {text}"));
            report.failed += uids.iter().filter(|u| early.remove(u).is_none()).count();
            return Ok(());
        }
        Err(Err(stop)) => return Err(stop),
    };
    let mut pending: HashSet<u32> = uids.iter().copied().collect();
    let store = |uid: u32, body: &[u8], stamp: Stamp, writer: &mut MessageWriter| -> std::result::Result<(), Stop> {
        writer.begin(uid)?;
        writer.data(body)?;
        ctx.progress_tick(writer.end(stamp)?);
        Ok(())
    };
    for uid in uids {
        if let Some((body, stamp)) = early.remove(uid) {
            pending.remove(uid);
            store(*uid, &body, stamp, writer)?;
        }
    }
    for f in answers {
        let stamp = Stamp::of(&f);
        let (Some(uid), Some(body)) = (f.uid, f.body) else { continue };
        // Answers may come in any order, and unasked ones may come too: match by UID.
        if pending.remove(&uid) {
            store(uid, &body, stamp, writer)?;
        } else if in_flight(uid) {
            early.insert(uid, (body, stamp));
        }
    }
    report.vanished += pending.len();
    Ok(())
}

/// The most data a message whose announced size is `announced` may bring: twice that, and
/// one budget more. Sizes are estimates on some servers (Exchange's `RFC822.SIZE` unless
/// `EnableExactRFC822Size` is set: a quarter or a third off is common), and such a message
/// still comes whole, streamed to disk. The ceiling is only against a hostile server whose
/// message never ends: past it the message is left out (README, "Limits").
pub fn data_ceiling(announced: u64, budget: usize) -> u64 {
    announced.saturating_mul(2).saturating_add(budget as u64)
}

/// Body bytes gathered from the socket before they go to the writer: its queue's piece.
const STREAM_PIECE: usize = 256 * 1024;

/// A message fetched by itself, as [`fetch_alone`] reads it.
struct Alone {
    uid: u32,
    /// Its size, as the server gave it before.
    announced: u64,
    budget: usize,
    /// The most bytes of other messages (of fetches in flight, come early) kept meanwhile.
    max_total: usize,
}

/// Reads the answer of a `UID FETCH` (sent already) of one message by itself, whole, its
/// body passed to the writer as it comes off the socket: a message bigger than the budget
/// goes through fixed buffers, never whole in memory, and the server sends it in one
/// answer (partial fetches cost it a scan from the message's start each, and us a round
/// trip each). Messages of fetches in flight that come early wait in `early`.
#[allow(clippy::too_many_arguments)]
fn fetch_alone(
    ctx: &Context<'_>,
    session: &mut Session,
    alone: &Alone,
    early: &mut HashMap<u32, (Vec<u8>, Stamp)>,
    in_flight: &dyn Fn(u32) -> bool,
    writer: &mut MessageWriter,
    report: &mut FolderReport,
    lessons: &mut Lessons,
) -> std::result::Result<(), Stop> {
    let uid = alone.uid;
    writer.begin(uid)?;
    // A server whose message never ends would fill the disk: past this it is left out.
    let ceiling = data_ceiling(alone.announced, alone.budget);
    let mut write_error: Option<Error> = None;
    let mut gathered: Vec<u8> = Vec::with_capacity(STREAM_PIECE);
    let answers = {
        let mut piece = |data: &[u8]| -> std::result::Result<(), ImapError> {
            // A full piece goes to the writer as it is (the socket's pieces are smaller).
            if !gathered.is_empty() && gathered.len() + data.len() > STREAM_PIECE {
                let piece = std::mem::replace(&mut gathered, Vec::with_capacity(STREAM_PIECE));
                if let Err(e) = writer.data_owned(piece) {
                    let why = e.to_string();
                    write_error = Some(e);
                    return Err(ImapError::Local(why));
                }
            }
            gathered.extend_from_slice(data);
            Ok(())
        };
        // A body somewhat over the ceiling is read and thrown away, to keep the connection;
        // one announced far bigger is not read at all.
        let drain = ceiling.saturating_mul(2).max(ceiling + (8 << 20));
        let mut sink = BodySink { uid, max: ceiling, drain, over: None, taken: false, piece: &mut piece };
        let wanted = |u: u32| u == uid || in_flight(u);
        let answers = session.read_fetch_into(max_literal(ctx), alone.max_total, &wanted, Some(&mut sink));
        answers.map(|a| (a, sink.over))
    };
    let answers = match answers {
        Ok((_, Some(_))) => {
            writer.abort()?;
            let why = format!("the server sent more than its announced size ({} bytes) allows", alone.announced);
            lessons.leave_out(ctx, report, uid, &why);
            return Ok(());
        }
        Ok((a, None)) => a,
        Err(e) => {
            // The writer failed (a full disk): that is the error to report, and the writer
            // is gone, so aborting it would only report that it stopped.
            if let Some(w) = write_error {
                return Err(Stop::Fatal(w));
            }
            writer.abort()?;
            return Err(match e {
                ImapError::Refused(text) if super::context::over_cap(&text) => {
                    Stop::Cap(format!("UID FETCH refused: {}", crate::imap::error::quote(&text)))
                }
                ImapError::Refused(text) => Stop::Fatal(Error::runtime(format!(
                    "UID FETCH of UID {uid} refused: {}",
                    crate::imap::error::quote(&text)
                ))),
                ImapError::TooMuch(why) => {
                    // The body was not read: the stream is given up, and so is the message.
                    lessons.leave_out(ctx, report, uid, &why);
                    Stop::Again
                }
                e => fetch_lost(session, &e),
            });
        }
    };
    // A server may send a flags-only FETCH for the UID before the data: the one that
    // carries the body counts.
    let mut mine = None;
    for f in answers {
        let stamp = Stamp::of(&f);
        match (f.uid, f.body, f.streamed) {
            (Some(u), body, streamed) if u == uid && (body.is_some() || streamed.is_some()) => {
                mine = Some((body, stamp))
            }
            (Some(u), Some(body), None) if u != uid => {
                early.insert(u, (body, stamp));
            }
            _ => {}
        }
    }
    let Some((body, stamp)) = mine else {
        // What the writer got, if anything, was not this message's.
        writer.abort()?;
        match early.remove(&uid) {
            Some((body, stamp)) => {
                writer.begin(uid)?;
                writer.data(&body)?;
                ctx.progress_tick(writer.end(stamp)?);
            }
            // No body (Dovecot's `BODY[] NIL`, or no answer at all): expunged while we
            // read it, and nothing is kept.
            None => report.vanished += 1,
        }
        return Ok(());
    };
    writer.data_owned(gathered)?;
    if let Some(body) = body {
        writer.data_owned(body)?;
    }
    ctx.progress_tick(writer.end(stamp)?);
    Ok(())
}
