//! The IMAP session: one connection to the server (connected on first use and again after
//! it was lost, with back-off), the commands in flight on it, and the operations the tool
//! needs. Commands that do not depend on each other's answers are sent together
//! (pipelined) and their answers read in order, so a folder costs one round trip where a
//! command-by-command client waits for several.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use super::auth::{self, Ask, Auth, Renewal, Wiped};
use super::connect::{self, ServerSpec, Unreached};
use super::error::{quote, ImapError};
use super::tls::Stream;
use super::wire::{self, Data, Fetched, ListEntry, Response, Status, MAX_SMALL_LITERAL};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name;

mod gmail;
mod prune;
mod target;
pub use gmail::GmailIds;
pub use prune::{Removal, Removed};
pub use target::{Appending, Holding, HEADER_PREFIX};

/// How often a lost connection is re-established before the account is given up. A
/// connection that moved the work on (delivered a message, stored an upload) before it was
/// lost restores the count: a run lasts as long as its work, whatever ends its connections
/// now and then (an access token's hour); a server that fails every connection before any
/// progress still ends the account.
pub const RECONNECTS: u32 = 3;
/// The most time an account's session waits for a throttling server in one run: past it
/// the account stops for this run (what was archived stays; the next run goes on).
pub const THROTTLE_BUDGET: Duration = Duration::from_secs(30 * 60);
/// The longest single wait for a throttling server, whatever it suggests.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(10 * 60);
/// The first wait for a throttling server that suggests none; it doubles each time in a
/// row (up to [`MAX_THROTTLE_WAIT`]).
const FIRST_THROTTLE_WAIT: Duration = Duration::from_secs(15);

/// How long to wait after the throttling answer `text`, the `nth` in a row (from 0): what
/// the server suggests, else a doubling wait.
fn throttle_wait(text: &str, nth: u32) -> Duration {
    super::error::suggested_backoff(text)
        .unwrap_or_else(|| FIRST_THROTTLE_WAIT.saturating_mul(1 << nth.min(10)))
        .min(MAX_THROTTLE_WAIT)
}

/// Sleeps `wait`, listening for Ctrl-C.
fn pause(wait: Duration) -> Result<()> {
    let until = std::time::Instant::now() + wait;
    loop {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(crate::interrupt::TICK));
    }
}

/// Untagged answers of no interest tolerated during one command.
const MAX_OTHER_ANSWERS: usize = 100_000;
/// Folders one LIST may name.
const MAX_FOLDERS: usize = 100_000;
/// UIDs per `UID FETCH (UID RFC822.SIZE)` command.
const SIZES_PER_COMMAND: usize = 5000;

/// A folder's state as STATUS (or LIST-STATUS) reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderStatus {
    /// UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// The UID the next message will get.
    pub uidnext: Option<u32>,
    /// Messages in the folder.
    pub messages: Option<u32>,
    /// HIGHESTMODSEQ (CONDSTORE, RFC 7162), where the server offers it.
    pub highestmodseq: Option<u64>,
}

/// What LIST reports.
#[derive(Debug, Default)]
pub struct Listed {
    /// The folders, in the server's order.
    pub entries: Vec<ListEntry>,
    /// Each folder's state, by wire name, when the server sent it with the list.
    pub statuses: HashMap<String, FolderStatus>,
    /// Names that are not text and cannot be asked for, made printable.
    pub unusable: Vec<String>,
    /// The personal namespace, where the server offers NAMESPACE (asked with the list).
    pub namespace: Option<Hierarchy>,
}

/// What EXAMINE reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Examined {
    /// Messages in the folder.
    pub exists: u32,
    /// UIDVALIDITY.
    pub uid_validity: Option<u32>,
    /// The UID the next message will get.
    pub uid_next: Option<u32>,
    /// HIGHESTMODSEQ, when the server reports it (CONDSTORE).
    pub highest_modseq: Option<u64>,
}

/// What to ask for together with EXAMINE, in the same round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Every UID (`UID SEARCH ALL`).
    AllUids,
    /// The UID and size of every message from this UID on (`UID FETCH N:* (UID RFC822.SIZE)`).
    SizesFrom(u32),
    /// The UIDs of the messages whose INTERNALDATE is on or after this day
    /// (`UID SEARCH SINCE`).
    UidsSince(crate::date::Day),
}

/// The answer to [`Then`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// UIDs, ascending.
    Uids(Vec<u32>),
    /// UIDs and sizes, ascending by UID, only those asked for.
    Sizes(Vec<(u32, u32)>),
}

/// What [`Session::header_samples`] found in one folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sampled {
    /// The folder's UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// UID, size and the header fields asked for of each message asked for that is there.
    pub messages: Vec<(u32, u32, Vec<u8>)>,
}

/// What [`Session::new_mail`] hands over, folder by folder, in order.
#[derive(Debug)]
pub enum NewMail {
    /// Folder `index` was opened (or refused, with the server's text).
    Opened(usize, std::result::Result<Examined, String>),
    /// A message of folder `index`: UID, size and the first bytes asked for.
    Message(usize, Fetched),
    /// Folder `index` is done (the fetch refused, with the server's text).
    Done(usize, Option<String>),
}

/// The slowest an answer may come once it is [`Paced::grace`] late: slower, a server (or
/// something between) is stalling us and the command fails, whatever its size.
const MIN_RATE: u64 = 8 * 1024;

/// The connection's stream with a pace check: a command's answer must arrive within the
/// timeout plus the time its size takes at [`MIN_RATE`]. The socket's timeout catches a
/// silent server; this catches one that sends a byte now and then.
struct Paced {
    inner: Stream,
    grace: Duration,
    since: std::time::Instant,
    received: u64,
}

impl Paced {
    /// Starts the clock for a new answer.
    fn restart(&mut self) {
        self.since = std::time::Instant::now();
        self.received = 0;
    }
}

impl Read for Paced {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let allowed = self.grace + Duration::from_secs(self.received / MIN_RATE);
        if self.since.elapsed() > allowed {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, super::wire::TOO_SLOW));
        }
        // The socket wakes every tick (see `open`), so SIGINT is heard while the server is
        // silent; the server has the whole timeout to say something.
        let waiting = std::time::Instant::now();
        loop {
            if crate::interrupt::requested() {
                return Err(std::io::Error::other("interrupted"));
            }
            match self.inner.read(buf) {
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                        && waiting.elapsed() < self.grace => {}
                Err(e) => return Err(e),
                Ok(n) => {
                    self.received += n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

impl Write for Paced {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One live connection.
struct Link {
    io: BufReader<Paced>,
    caps: Vec<String>,
    next_tag: u32,
    /// Tags of commands sent whose answers are not read yet, oldest first.
    in_flight: VecDeque<String>,
    /// The `UID FETCH` commands among them, for [`Session::read_fetch`].
    fetches: VecDeque<String>,
    /// The `APPEND` commands among them, for [`Session::read_append`].
    appends: VecDeque<String>,
    /// Tagged answers of those that came while the go-ahead for a later one was awaited.
    answered: HashMap<String, (Status, String)>,
    /// A message came whole over this connection, or an upload was stored: losing it
    /// later does not count against [`RECONNECTS`].
    progressed: bool,
    /// One command at a time: a command is written only once the ones before it were
    /// answered (a server that mishandles pipelining).
    serial: bool,
    /// In that mode, the commands (the last ones of `in_flight`) not written yet.
    queued: VecDeque<Vec<u8>>,
    /// Tags of commands written while an earlier one was still unanswered.
    pipelined: std::collections::HashSet<String>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("in_flight", &self.in_flight).finish_non_exhaustive()
    }
}

impl Link {
    fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("s{}", self.next_tag)
    }

    /// Sends commands in one write (one at a time, each after the answer of the one
    /// before, when [`Link::serial`]); returns their tags.
    fn send(&mut self, commands: &[String]) -> std::result::Result<Vec<String>, ImapError> {
        let mut out = Vec::new();
        let mut tags = Vec::new();
        for c in commands {
            let tag = self.tag();
            let line = format!("{tag} {c}\r\n").into_bytes();
            if self.serial {
                self.queued.push_back(line);
            } else {
                if !self.in_flight.is_empty() || !tags.is_empty() {
                    self.pipelined.insert(tag.clone());
                }
                out.extend_from_slice(&line);
            }
            tags.push(tag);
        }
        if !out.is_empty() {
            self.write(&out)?;
        }
        self.in_flight.extend(tags.iter().cloned());
        self.pump()?;
        Ok(tags)
    }

    /// One at a time: writes the next queued command once every command written before
    /// it was answered.
    fn pump(&mut self) -> std::result::Result<(), ImapError> {
        if self.in_flight.len() == self.queued.len() {
            if let Some(line) = self.queued.pop_front() {
                self.write(&line)?;
            }
        }
        Ok(())
    }

    /// Writes every queued command now: before a command written directly (APPEND),
    /// which must come after them.
    fn unqueue(&mut self) -> std::result::Result<(), ImapError> {
        while let Some(line) = self.queued.pop_front() {
            self.write(&line)?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), ImapError> {
        let stream = self.io.get_mut();
        stream.write_all(bytes).and_then(|()| stream.flush()).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ImapError::Timeout,
            _ => ImapError::Lost(format!("sending a command: {}", describe_io(&e))),
        })
    }

    /// Reads answers up to the end of the command tagged `tag`, handing data to `on_data`;
    /// the commands sent before it end on the way (their outcome is not needed).
    fn finish(
        &mut self,
        tag: &str,
        max_literal: usize,
        on_data: &mut dyn FnMut(Data) -> std::result::Result<(), ImapError>,
    ) -> std::result::Result<String, ImapError> {
        self.finish_into(tag, max_literal, None, on_data)
    }

    /// [`Link::finish`], a `BODY[]` going to `sink` when given.
    fn finish_into(
        &mut self,
        tag: &str,
        max_literal: usize,
        mut sink: Option<&mut wire::BodySink<'_>>,
        on_data: &mut dyn FnMut(Data) -> std::result::Result<(), ImapError>,
    ) -> std::result::Result<String, ImapError> {
        let mut others = 0;
        let mut bodies = false;
        self.io.get_mut().restart();
        loop {
            self.pump()?;
            match wire::read_response_into(&mut self.io, max_literal, sink.as_deref_mut())? {
                Response::Data(Data::Fetch(f)) => {
                    bodies |= f.body.is_some() || f.streamed.is_some();
                    on_data(Data::Fetch(f))?
                }
                Response::Data(Data::Bye(text)) => {
                    return Err(ImapError::Lost(format!("the server hung up: {}", quote(&text))))
                }
                Response::Data(d @ (Data::Other | Data::State { .. })) => {
                    others += 1;
                    if others > MAX_OTHER_ANSWERS {
                        return Err(ImapError::Protocol(format!("more than {MAX_OTHER_ANSWERS} unasked-for answers")));
                    }
                    on_data(d)?;
                }
                Response::Data(d) => on_data(d)?,
                Response::Continue(_) => {
                    return Err(ImapError::Protocol("the server asked for more of a complete command".into()))
                }
                Response::Tagged { tag: t, status, text } => {
                    if self.in_flight.front() != Some(&t) {
                        return Err(ImapError::Protocol(format!("an answer tagged {} out of turn", quote(&t))));
                    }
                    self.in_flight.pop_front();
                    if self.fetches.front() == Some(&t) {
                        self.fetches.pop_front();
                    }
                    let pipelined = self.pipelined.remove(&t);
                    if status != Status::Ok && super::error::is_throttling(&text) {
                        // Whatever it ends, it is not the command's fault.
                        return Err(ImapError::Throttled(text));
                    }
                    if status == Status::Bad && pipelined && super::error::is_garbled_command(&text) {
                        return Err(ImapError::Garbled(text));
                    }
                    if t == tag {
                        return match status {
                            Status::Ok => {
                                self.progressed |= bodies;
                                Ok(text)
                            }
                            Status::No | Status::Bad => Err(ImapError::Refused(text)),
                        };
                    }
                }
            }
        }
    }
}

/// The session with one account's server.
#[derive(Debug)]
pub struct Session {
    spec: ServerSpec,
    addrs: Vec<SocketAddr>,
    auth: Auth,
    /// Where a fresh credential comes from, when the account's comes from a command.
    renewal: Option<Renewal>,
    /// A login succeeded before: the next one is a reconnect.
    logged_in: bool,
    /// Why a fresh credential could not be had: reconnecting cannot help then.
    unrenewable: Option<String>,
    link: Option<Link>,
    reconnects: u32,
    /// The connection dropped last had moved the work on (see [`RECONNECTS`]).
    dropped_progress: bool,
    /// The connection dropped last garbled pipelined commands: the next one sends them one
    /// at a time, at once and without counting against [`RECONNECTS`] (once).
    garbled: Option<String>,
    /// The connection dropped last was throttled: the next one waits first.
    throttled: Option<String>,
    /// Throttled in a row, without progress between: the wait grows.
    throttled_in_a_row: u32,
    /// Time spent waiting for throttling so far (at most [`THROTTLE_BUDGET`]).
    throttle_waited: Duration,
    /// This session learnt that the server mishandles pipelining.
    learnt_serial: bool,
}

impl Session {
    /// A session that connects on first use.
    pub fn new(spec: ServerSpec, addrs: Vec<SocketAddr>, auth: Auth) -> Session {
        Session {
            spec,
            addrs,
            auth,
            renewal: None,
            logged_in: false,
            unrenewable: None,
            link: None,
            reconnects: 0,
            dropped_progress: false,
            garbled: None,
            throttled: None,
            throttled_in_a_row: 0,
            throttle_waited: Duration::ZERO,
            learnt_serial: false,
        }
    }

    /// The same session, renewing its credential through `renewal` (see [`Renewal`]).
    pub fn renewing(mut self, renewal: Option<Renewal>) -> Session {
        self.renewal = renewal;
        self
    }

    /// How to reach the server.
    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    /// Connects and logs in now, unless connected, in one attempt: its errors (an
    /// untrusted certificate, a wrong password, no answer) are the caller's.
    pub fn connect(&mut self) -> Result<()> {
        if self.link.is_none() {
            self.link = Some(self.open_link()?);
        }
        Ok(())
    }

    /// Connects and logs in now, unless connected. A failure that may pass (no answer, a
    /// refused or dropped connection, a busy server: a NAS that woke before its network, a
    /// faulty link) is tried again like a lost connection, after 1, 2 and 4 s, counted in
    /// the same budget of [`RECONNECTS`]; `notice` hears of each attempt that failed. The
    /// other failures (an untrusted certificate, a wrong password) are the account's at once.
    pub fn connect_retrying(&mut self, notice: &mut dyn FnMut(&str)) -> Result<()> {
        let began = std::time::Instant::now();
        let mut attempts = 0;
        while self.link.is_none() {
            attempts += 1;
            match self.open_link() {
                Ok(link) => self.link = Some(link),
                Err(u) if u.transient && !crate::interrupt::requested() => {
                    self.reconnects += 1;
                    if self.given_up() {
                        return Err(Error::runtime(format!(
                            "{} (tried {attempts} times in {})",
                            u.error,
                            connect::waited(began)
                        )));
                    }
                    let pause = Duration::from_secs(1 << (self.reconnects - 1));
                    notice(&format!("{}; trying again in {}", u.error, super::tls::seconds(pause)));
                    std::thread::sleep(pause);
                }
                Err(u) => return Err(u.error),
            }
        }
        Ok(())
    }

    /// Connects and logs in. A reconnect first renews a token (it may have expired since
    /// the last login), and a source that keeps its token while it is fresh is asked before
    /// every login; a credential the server refuses is renewed once and tried again, unless
    /// a command ran for this very login.
    fn open_link(&mut self) -> std::result::Result<Link, Unreached> {
        let Session { spec, addrs, auth, renewal, logged_in, unrenewable, .. } = self;
        let mut renew = |auth: &mut Auth, ask: Ask| -> Result<()> {
            let Some(r) = renewal.as_ref() else { return Ok(()) };
            match (r.fetch)(ask) {
                Ok(secret) => {
                    *auth = auth.renewed(secret);
                    Ok(())
                }
                Err(e) => {
                    *unrenewable = Some(e.to_string());
                    Err(e)
                }
            }
        };
        let renewed = renewal.as_ref().is_some_and(|r| r.every_login || (r.on_reconnect && *logged_in));
        if renewed {
            renew(auth, Ask::Login).map_err(Unreached::permanent)?;
        }
        let retry = renewal.as_ref().is_some_and(|r| r.every_login || !renewed);
        let mut on_refusal = |auth: &mut Auth| renew(auth, Ask::Refused);
        let link = open(spec, addrs, auth, if retry { Some(&mut on_refusal) } else { None })?;
        *logged_in = true;
        Ok(link)
    }

    /// Whether a connection is up (none before the first use, and none after one broke).
    pub fn connected(&self) -> bool {
        self.link.is_some()
    }

    /// Whether the connection was lost more often than allowed.
    pub fn given_up(&self) -> bool {
        self.reconnects > RECONNECTS
    }

    /// Drops a connection that broke and waits before the next (1, 2, 4 s, unless it moved
    /// the work on; a throttling server's wait); returns what to tell the user, or an error
    /// once [`RECONNECTS`] (or [`THROTTLE_BUDGET`]) are used up.
    pub fn lost(&mut self, why: &str) -> Result<String> {
        self.drop_link();
        let progressed = std::mem::take(&mut self.dropped_progress);
        if progressed {
            self.reconnects = 0;
            self.throttled_in_a_row = 0;
        }
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        if let Some(text) = self.garbled.take() {
            // Learnt once per session: a server that garbles single commands too is an
            // ordinary lost connection from then on.
            if !std::mem::replace(&mut self.learnt_serial, true) {
                return Ok(format!(
                    "the server refused a pipelined command ({}): it mishandles pipelining, so commands go one at a time from now on; reconnecting",
                    quote(&text)
                ));
            }
        }
        if let Some(text) = self.throttled.take() {
            let wait = throttle_wait(&text, self.throttled_in_a_row);
            let left = THROTTLE_BUDGET.saturating_sub(self.throttle_waited);
            if left.is_zero() {
                self.reconnects = RECONNECTS + 1;
                return Err(Error::runtime(format!(
                    "throttled by the server for {} in all, giving up for this run (last: {})",
                    crate::imap::tls::seconds(THROTTLE_BUDGET),
                    quote(&text)
                )));
            }
            let wait = wait.min(left);
            self.throttled_in_a_row += 1;
            self.throttle_waited += wait;
            pause(wait)?;
            return Ok(format!(
                "the server is throttling the account ({}); waited {}, resuming",
                quote(&text),
                crate::imap::tls::seconds(wait)
            ));
        }
        if let Some(e) = self.unrenewable.take() {
            // The account's credential command failed: the next attempt would only run it again.
            self.reconnects = RECONNECTS + 1;
            return Err(Error::runtime(e));
        }
        self.reconnects += 1;
        if self.given_up() {
            return Err(Error::runtime(format!("connection lost {RECONNECTS} times, giving up (last: {why})")));
        }
        // A connection that moved the work on was not failing: its successor starts at
        // once (an access token's hour ended, say). Failures in a row wait 1, 2, 4 s.
        if !progressed {
            pause(Duration::from_secs(1 << (self.reconnects - 1)))?;
        }
        Ok(format!("connection lost ({why}); reconnecting"))
    }

    /// Drops the connection, noting whether it had moved the work on.
    fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            self.dropped_progress = link.progressed;
        }
    }

    /// The live connection for a new command, connecting first if needed. Answers of a
    /// fetch left unread (storing failed meanwhile) would be taken for the new command's:
    /// such a connection is dropped.
    fn link(&mut self) -> std::result::Result<&mut Link, ImapError> {
        if self.link.as_ref().is_some_and(|l| !l.fetches.is_empty() || !l.appends.is_empty()) {
            self.drop_link();
        }
        if self.link.is_none() {
            // Reconnected without a word (a failure that did not matter): nothing to say
            // or wait for any more.
            self.garbled = None;
            self.throttled = None;
            let link = self.open_link().map_err(|e| ImapError::Lost(e.error.to_string()))?;
            self.link = Some(link);
        }
        self.link.as_mut().ok_or_else(|| ImapError::Lost("no connection".into()))
    }

    /// Runs `result`'s bookkeeping: a failure that breaks the stream drops the connection;
    /// a server that garbled pipelined commands gets them one at a time from now on (every
    /// connection of the account), and a throttled one is waited for before the next.
    fn checked<T>(&mut self, result: std::result::Result<T, ImapError>) -> std::result::Result<T, ImapError> {
        match &result {
            Err(ImapError::Garbled(text)) => {
                self.spec.one_at_a_time.store(true, std::sync::atomic::Ordering::Relaxed);
                self.garbled = Some(text.clone());
            }
            Err(ImapError::Throttled(text)) => self.throttled = Some(text.clone()),
            _ => {}
        }
        if result.as_ref().is_err_and(ImapError::breaks_session) {
            self.drop_link();
        }
        result
    }

    /// Whether the server offers a capability (connecting first if needed).
    pub fn has(&mut self, cap: &str) -> std::result::Result<bool, ImapError> {
        Ok(self.link()?.has(cap))
    }

    /// Every folder the server lists; with `with_status` and a server offering
    /// LIST-STATUS (RFC 5819), each selectable folder's status too, in the same answer.
    pub fn list(&mut self, with_status: bool) -> std::result::Result<Listed, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let command = if with_status && link.has("LIST-STATUS") {
                format!("LIST \"\" \"*\" RETURN (STATUS ({}))", status_items(link))
            } else {
                "LIST \"\" \"*\"".to_string()
            };
            // The namespace comes in the same round trip; it is recorded with the folders.
            let namespace = link.has("NAMESPACE");
            let commands = if namespace { vec!["NAMESPACE".to_string(), command] } else { vec![command] };
            let tags = link.send(&commands)?;
            let mut listed = Listed::default();
            link.finish(&tags[tags.len() - 1], MAX_SMALL_LITERAL, &mut |d| {
                match d {
                    Data::Namespace(n) => listed.namespace = n,
                    Data::List(e) => {
                        if listed.entries.len() >= MAX_FOLDERS {
                            return Err(ImapError::Protocol(format!(
                                "a LIST answer of more than {MAX_FOLDERS} folders"
                            )));
                        }
                        listed.entries.push(e);
                    }
                    Data::MailboxStatus { wire, items } => {
                        listed.statuses.insert(wire, folder_status(&items));
                    }
                    Data::UnusableName(name) if listed.unusable.len() < MAX_FOLDERS => listed.unusable.push(name),
                    _ => {}
                }
                Ok(())
            })?;
            Ok(listed)
        })();
        self.checked(result)
    }

    /// The status of each of `wires`, all asked at once. A folder the server refuses
    /// (it does not exist) is left out of the answer.
    pub fn statuses(&mut self, wires: &[String]) -> std::result::Result<HashMap<String, FolderStatus>, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let mut commands = Vec::new();
            for w in wires {
                commands.push(format!("STATUS {} ({})", quoted(w)?, status_items(link)));
            }
            let tags = link.send(&commands)?;
            let mut statuses = HashMap::new();
            for tag in &tags {
                let answer = link.finish(tag, MAX_SMALL_LITERAL, &mut |d| {
                    if let Data::MailboxStatus { wire, items } = d {
                        statuses.insert(wire, folder_status(&items));
                    }
                    Ok(())
                });
                match answer {
                    Ok(_) | Err(ImapError::Refused(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(statuses)
        })();
        self.checked(result)
    }

    /// Opens `wire` read-only.
    pub fn examine(&mut self, wire: &str) -> std::result::Result<Examined, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let tags = link.send(&[format!("EXAMINE {}", quoted(wire)?)])?;
            let mut examined = Examined::default();
            link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut examined, d);
                Ok(())
            })?;
            Ok(examined)
        })();
        self.checked(result)
    }

    /// Opens `wire` read-only and asks `then` in the same round trip.
    pub fn examine_and(&mut self, wire: &str, then: Then) -> std::result::Result<(Examined, Found), ImapError> {
        let result = (|| {
            let link = self.link()?;
            let second = match then {
                Then::AllUids => "UID SEARCH ALL".to_string(),
                Then::SizesFrom(uid) => format!("UID FETCH {uid}:* (UID RFC822.SIZE)"),
                Then::UidsSince(day) => format!("UID SEARCH SINCE {day}"),
            };
            let tags = link.send(&[format!("EXAMINE {}", quoted(wire)?), second])?;
            let mut examined = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut examined, d);
                Ok(())
            });
            let mut uids = Vec::new();
            let mut sizes = Vec::new();
            let asked = link.finish(&tags[1], MAX_SMALL_LITERAL, &mut |d| {
                match d {
                    Data::Search(found) => uids.extend(found),
                    Data::Fetch(Fetched { uid: Some(uid), size: Some(size), .. }) => sizes.push((uid, size)),
                    _ => {}
                }
                Ok(())
            });
            // The EXAMINE's refusal is the one that explains the other.
            opened?;
            asked?;
            Ok((
                examined,
                match then {
                    Then::AllUids | Then::UidsSince(_) => {
                        uids.sort_unstable();
                        uids.dedup();
                        Found::Uids(uids)
                    }
                    Then::SizesFrom(from) => Found::Sizes(sorted_sizes(sizes, |u| u >= from)),
                },
            ))
        })();
        self.checked(result)
    }

    /// The sizes of `uids` (ascending), asked in commands of a few thousand sent at once;
    /// a UID missing from the answers was expunged meanwhile.
    pub fn sizes(&mut self, uids: &[u32]) -> std::result::Result<Vec<(u32, u32)>, ImapError> {
        let mut sizes = Vec::new();
        self.fetch_each(uids, "UID RFC822.SIZE", &mut |f| {
            if let Fetched { uid: Some(uid), size: Some(size), .. } = f {
                sizes.push((uid, size));
            }
        })?;
        Ok(sorted_sizes(sizes, |u| uids.binary_search(&u).is_ok()))
    }

    /// `UID FETCH` of `items` for `uids` in commands of a few thousand UIDs, sent at once;
    /// each answer goes to `on`.
    fn fetch_each(
        &mut self,
        uids: &[u32],
        items: &str,
        on: &mut dyn FnMut(Fetched),
    ) -> std::result::Result<(), ImapError> {
        self.fetch_each_within(uids, items, MAX_SMALL_LITERAL, on)
    }

    /// [`Session::fetch_each`] with literals of up to `max_literal` bytes.
    fn fetch_each_within(
        &mut self,
        uids: &[u32],
        items: &str,
        max_literal: usize,
        on: &mut dyn FnMut(Fetched),
    ) -> std::result::Result<(), ImapError> {
        let result = (|| {
            let link = self.link()?;
            let commands: Vec<String> =
                uids.chunks(SIZES_PER_COMMAND).map(|c| format!("UID FETCH {} ({items})", super::uid_set(c))).collect();
            let tags = link.send(&commands)?;
            for tag in &tags {
                link.finish(tag, max_literal, &mut |d| {
                    if let Data::Fetch(f) = d {
                        on(f);
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })();
        self.checked(result)
    }

    /// The size, flags, INTERNALDATE and the header fields `fields` (`MESSAGE-ID DATE`...)
    /// of the messages `uids` (ascending) of the folder opened last, each answer handed to
    /// `on` as it comes (the fields in [`Fetched::body`]); with `all`, asked as `1:*` in one
    /// command. Fields of more than `max` bytes fail the command.
    pub fn header_fields(
        &mut self,
        uids: &[u32],
        all: bool,
        fields: &str,
        max: usize,
        on: &mut dyn FnMut(Fetched),
    ) -> std::result::Result<(), ImapError> {
        let items = format!("UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS ({fields})]");
        if !all {
            return self.fetch_each_within(uids, &items, max, on);
        }
        let result = (|| {
            let link = self.link()?;
            let tags = link.send(&[format!("UID FETCH 1:* ({items})")])?;
            link.finish(&tags[0], max, &mut |d| {
                if let Data::Fetch(f) = d {
                    on(f);
                }
                Ok(())
            })?;
            Ok(())
        })();
        self.checked(result)
    }

    /// For each `(wire, from)`: EXAMINE the folder and fetch the UID, size and first `head`
    /// bytes of every message from UID `from` on. All commands go out at once, so every
    /// folder's new mail costs one round trip together; answers are handed to `on` as they
    /// come, one message at a time (memory holds one `head` at most). `on` returns false
    /// to stop: the connection is then dropped.
    pub fn new_mail(
        &mut self,
        folders: &[(String, u32)],
        head: usize,
        on: &mut dyn FnMut(NewMail) -> bool,
    ) -> std::result::Result<bool, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let mut commands = Vec::new();
            for (wire, from) in folders {
                commands.push(format!("EXAMINE {}", quoted(wire)?));
                commands.push(format!("UID FETCH {from}:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[]<0.{head}>)"));
            }
            let tags = link.send(&commands)?;
            for (index, pair) in tags.chunks(2).enumerate() {
                let mut examined = Examined::default();
                let opened = link.finish(&pair[0], MAX_SMALL_LITERAL, &mut |d| {
                    note_examined(&mut examined, d);
                    Ok(())
                });
                let opened = match opened {
                    Ok(_) => Ok(examined),
                    Err(ImapError::Refused(text)) => Err(text),
                    Err(e) => return Err(e),
                };
                if !on(NewMail::Opened(index, opened)) {
                    return Ok(false);
                }
                let mut go_on = true;
                let fetched = link.finish(&pair[1], head + 1024, &mut |d| {
                    if let (true, Data::Fetch(f)) = (go_on, d) {
                        go_on = on(NewMail::Message(index, f));
                    }
                    Ok(())
                });
                let refused = match fetched {
                    Ok(_) => None,
                    Err(ImapError::Refused(text)) => Some(text),
                    Err(e) => return Err(e),
                };
                if !go_on || !on(NewMail::Done(index, refused)) {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        if matches!(result, Ok(false)) {
            // Answers of the commands not read yet would be taken for the next command's.
            self.link = None;
        }
        self.checked(result)
    }

    /// The flags of the messages of each folder of `asks` (those changed since a
    /// HIGHESTMODSEQ where one is given), handed to `on` with the folder's index; with
    /// `condstore` the folders are opened with CONDSTORE, so EXAMINE reports HIGHESTMODSEQ.
    /// Nothing reaches `on` for a folder whose UIDVALIDITY is not the one asked (its UIDs
    /// name other messages). Every folder is asked at once: one round trip for all. Each
    /// folder's outcome is its own (a refusal fails that folder); the `Err` is for a
    /// session that broke.
    pub fn flags(
        &mut self,
        asks: &[FlagsAsk<'_>],
        condstore: bool,
        on: &mut dyn FnMut(usize, u32, Vec<String>),
    ) -> std::result::Result<Vec<std::result::Result<Examined, ImapError>>, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let mut commands = Vec::new();
            for ask in asks {
                commands.push(format!("EXAMINE {}{}", quoted(ask.wire)?, if condstore { " (CONDSTORE)" } else { "" }));
                commands.push(match ask.changed_since {
                    Some(m) => format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {m})"),
                    None => "UID FETCH 1:* (UID FLAGS)".to_string(),
                });
            }
            let tags = link.send(&commands)?;
            let mut outcomes = Vec::new();
            for (k, (ask, pair)) in asks.iter().zip(tags.chunks(2)).enumerate() {
                let mut examined = Examined::default();
                let opened = link.finish(&pair[0], MAX_SMALL_LITERAL, &mut |d| {
                    note_examined(&mut examined, d);
                    Ok(())
                });
                let same = examined.uid_validity == Some(ask.uidvalidity);
                // One answer per message, and some to spare for changes while it runs: a
                // server that sends more would have its answers fill the journal.
                let cap = examined.exists as usize + 1000;
                let mut answers = 0usize;
                let fetched = link.finish(&pair[1], MAX_SMALL_LITERAL, &mut |d| {
                    if let (true, Data::Fetch(Fetched { uid: Some(uid), flags: Some(flags), .. })) = (same, d) {
                        answers += 1;
                        if answers > cap {
                            return Err(ImapError::Protocol(format!(
                                "more than {cap} FLAGS answers for a folder of {} messages",
                                examined.exists
                            )));
                        }
                        on(k, uid, flags);
                    }
                    Ok(())
                });
                let outcome = opened.and(fetched).map(|_| examined);
                if outcome.as_ref().is_err_and(ImapError::breaks_session) {
                    return Err(outcome.err().unwrap_or(ImapError::Lost("no connection".into())));
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })();
        self.checked(result)
    }

    /// The INTERNALDATE of each of `uids` (ascending) in the folder opened last (by
    /// [`Session::flags`]), handed to `on`; commands of a few thousand UIDs sent at once.
    pub fn internal_dates(
        &mut self,
        uids: &[u32],
        on: &mut dyn FnMut(u32, String),
    ) -> std::result::Result<(), ImapError> {
        self.fetch_each(uids, "UID INTERNALDATE", &mut |f| {
            if let Fetched { uid: Some(uid), internal_date: Some(date), .. } = f {
                if uids.binary_search(&uid).is_ok() {
                    on(uid, date);
                }
            }
        })
    }

    /// Sends a `UID FETCH` whose answers [`Session::read_fetch`] reads later: the server
    /// works on it while the answers before it are stored.
    pub fn send_fetch(&mut self, set: &str, query: &str) -> std::result::Result<(), ImapError> {
        // A server that hung up may have answered the fetches sent before: those answers
        // are still read (the failure shows when they run out), not thrown away.
        let answers_pending = self.awaiting_fetch();
        let result = (|| {
            // Behind other fetches in flight is fine: their answers come first.
            if self.link.is_none() {
                self.link()?;
            }
            let link = self.link.as_mut().ok_or_else(|| ImapError::Lost("no connection".into()))?;
            let tags = link.send(&[format!("UID FETCH {set} {query}")])?;
            link.fetches.extend(tags);
            Ok(())
        })();
        if answers_pending && result.is_err() {
            return result;
        }
        self.checked(result)
    }

    /// Whether a `UID FETCH` was sent and its answers are still to be read.
    pub fn awaiting_fetch(&self) -> bool {
        self.link.as_ref().is_some_and(|l| !l.fetches.is_empty())
    }

    /// Reads the answers of the oldest `UID FETCH` sent by [`Session::send_fetch`], with
    /// literals of up to `max_literal` bytes. Only answers for `wanted` UIDs are kept, the
    /// last one of each, and at most `max_total` bytes of bodies: a server that sends more
    /// than was asked for fails the command instead of filling the memory.
    pub fn read_fetch(
        &mut self,
        max_literal: usize,
        max_total: usize,
        wanted: &dyn Fn(u32) -> bool,
    ) -> std::result::Result<Vec<Fetched>, ImapError> {
        self.read_fetch_into(max_literal, max_total, wanted, None)
    }

    /// [`Session::read_fetch`] for one message fetched alone: its `BODY[]` goes to `sink`
    /// as it comes, in pieces (the answer's [`Fetched::streamed`] then gives its size).
    pub fn read_fetch_into(
        &mut self,
        max_literal: usize,
        max_total: usize,
        wanted: &dyn Fn(u32) -> bool,
        mut sink: Option<&mut wire::BodySink<'_>>,
    ) -> std::result::Result<Vec<Fetched>, ImapError> {
        let result = (|| {
            let link = self.link.as_mut().ok_or_else(|| ImapError::Lost("no connection".into()))?;
            let tag =
                link.fetches.front().cloned().ok_or_else(|| ImapError::Protocol("no UID FETCH was sent".into()))?;
            let mut kept: HashMap<u32, Fetched> = HashMap::new();
            let mut total = 0usize;
            // Whose FETCH answer carried the body the sink took.
            let mut streamed_for: Option<Option<u32>> = None;
            let want = sink.as_ref().map(|s| s.uid);
            link.finish_into(&tag, max_literal, sink.as_deref_mut(), &mut |d| {
                let Data::Fetch(f) = d else { return Ok(()) };
                if f.streamed.is_some() {
                    streamed_for = Some(f.uid);
                }
                let Some(uid) = f.uid.filter(|&u| wanted(u)) else { return Ok(()) };
                total += f.body.as_ref().map_or(0, Vec::len);
                if total > max_total {
                    return Err(ImapError::TooMuch(format!(
                        "the server sent more than {max_total} bytes for messages that add up to less"
                    )));
                }
                // A flags-only answer must not replace the one that carries the body, nor
                // anything the one whose body went to the sink (already written).
                let streamed = kept.get(&uid).is_some_and(|k| k.streamed.is_some());
                if !streamed && (f.body.is_some() || f.streamed.is_some() || !kept.contains_key(&uid)) {
                    kept.insert(uid, f);
                }
                Ok(())
            })?;
            // The sink's bytes went to a message being written: they must have been that
            // message's body, not another's (or one outside any FETCH answer).
            if let Some(s) = sink.as_ref().filter(|s| s.taken && streamed_for != Some(want)) {
                return Err(ImapError::Protocol(format!(
                    "the server sent the body of another message than UID {} asked for",
                    s.uid
                )));
            }
            let mut out: Vec<Fetched> = kept.into_values().collect();
            out.sort_by_key(|f| f.uid);
            Ok(out)
        })();
        self.checked(result)
    }

    /// Says goodbye, if connected; errors do not matter any more.
    pub fn logout(&mut self) -> std::result::Result<(), ImapError> {
        let Some(link) = self.link.as_mut() else { return Ok(()) };
        if !link.fetches.is_empty() || !link.appends.is_empty() {
            self.link = None;
            return Ok(());
        }
        let result = (|| {
            let tags = link.send(&["LOGOUT".to_string()])?;
            // The BYE that comes first is expected here, unlike during any other command.
            loop {
                link.pump()?;
                if let Response::Tagged { tag, .. } = wire::read_response(&mut link.io, MAX_SMALL_LITERAL)? {
                    if tag == tags[0] {
                        return Ok(());
                    }
                }
            }
        })();
        self.link = None;
        result
    }

    /// For each `(wire, uids)`: opens the folder read-only and asks the size and the header
    /// `fields` of those messages (`BODY.PEEK[HEADER.FIELDS (fields)]`: no body, no flag
    /// changes), each at most `head` bytes. Every command goes out at once: one round trip
    /// for all the folders. A folder the server does not open gives `None`.
    pub fn header_samples(
        &mut self,
        asks: &[(String, Vec<u32>)],
        fields: &str,
        head: usize,
    ) -> std::result::Result<Vec<Option<Sampled>>, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let mut commands = Vec::new();
            for (wire, uids) in asks {
                commands.push(format!("EXAMINE {}", quoted(wire)?));
                commands.push(format!(
                    "UID FETCH {} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({fields})])",
                    super::uid_set(uids)
                ));
            }
            let tags = link.send(&commands)?;
            let mut out = Vec::new();
            for ((_, uids), tags) in asks.iter().zip(tags.chunks(2)) {
                let mut examined = Examined::default();
                let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                    note_examined(&mut examined, d);
                    Ok(())
                });
                let mut messages = Vec::new();
                // Read whole even when longer than asked for (a pathological Subject): what
                // is kept is cut below.
                let asked = link.finish(&tags[1], head.max(256 * 1024), &mut |d| {
                    if let Data::Fetch(Fetched { uid: Some(uid), size: Some(size), body: Some(header), .. }) = d {
                        if uids.contains(&uid) && !messages.iter().any(|&(u, _, _)| u == uid) {
                            let mut header = header;
                            header.truncate(head);
                            messages.push((uid, size, header));
                        }
                    }
                    Ok(())
                });
                match (opened, asked) {
                    (Ok(_), Ok(_)) => out.push(Some(Sampled { uidvalidity: examined.uid_validity, messages })),
                    (Err(ImapError::Refused(_)), _) | (_, Err(ImapError::Refused(_))) => out.push(None),
                    (Err(e), _) | (_, Err(e)) => return Err(e),
                }
            }
            Ok(out)
        })();
        self.checked(result)
    }
}

/// The STATUS items asked: HIGHESTMODSEQ too where the server offers CONDSTORE, so a
/// folder whose flags changed is told from one that did not without opening it.
fn status_items(link: &Link) -> &'static str {
    if link.has("CONDSTORE") {
        "UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ"
    } else {
        "UIDVALIDITY UIDNEXT MESSAGES"
    }
}

/// A mailbox name as a quoted string; a name that cannot be sent fails its command only.
fn quoted(wire: &str) -> std::result::Result<String, ImapError> {
    mailbox_name::quote(wire).map_err(|e| ImapError::Refused(e.to_string()))
}

fn folder_status(items: &[(String, u64)]) -> FolderStatus {
    let get = |name: &str| items.iter().find(|(n, _)| n == name).and_then(|(_, v)| u32::try_from(*v).ok());
    let modseq = items.iter().find(|(n, _)| n == "HIGHESTMODSEQ").map(|(_, v)| *v);
    FolderStatus {
        uidvalidity: get("UIDVALIDITY"),
        uidnext: get("UIDNEXT"),
        messages: get("MESSAGES"),
        highestmodseq: modseq,
    }
}

fn note_examined(examined: &mut Examined, d: Data) {
    match d {
        Data::Exists(n) => examined.exists = n,
        Data::State { code: Some(code), args, .. } => {
            let n = args.trim().parse().ok();
            match code.as_str() {
                "UIDVALIDITY" => examined.uid_validity = n,
                "UIDNEXT" => examined.uid_next = n,
                "HIGHESTMODSEQ" => examined.highest_modseq = args.trim().parse().ok(),
                _ => {}
            }
        }
        _ => {}
    }
}

/// One folder for [`Session::flags`].
#[derive(Clone, Copy, Debug)]
pub struct FlagsAsk<'a> {
    /// The mailbox's wire name.
    pub wire: &'a str,
    /// The UIDVALIDITY its recorded UIDs belong to.
    pub uidvalidity: u32,
    /// Ask only the flags changed since this HIGHESTMODSEQ (CONDSTORE's `CHANGEDSINCE`).
    pub changed_since: Option<u64>,
}

/// Sizes in UID order, each UID once, only those `wanted` (a server may send answers for
/// UIDs never asked for).
fn sorted_sizes(mut sizes: Vec<(u32, u32)>, wanted: impl Fn(u32) -> bool) -> Vec<(u32, u32)> {
    sizes.retain(|&(u, _)| wanted(u));
    sizes.sort_unstable();
    sizes.dedup_by_key(|(u, _)| *u);
    sizes
}

/// Longest greeting line.
const MAX_GREETING: u64 = 8192;

/// Replaces a login's credential by a fresh one.
type Renew<'a> = &'a mut dyn FnMut(&mut Auth) -> Result<()>;

/// Connects, reads the greeting, logs in and introduces the client (ID, where offered). A
/// refused login is tried once more after `renew` (when given) replaced the credential.
fn open(
    spec: &ServerSpec,
    addrs: &[SocketAddr],
    auth: &mut Auth,
    renew: Option<Renew<'_>>,
) -> std::result::Result<Link, Unreached> {
    if crate::interrupt::requested() {
        return Err(Unreached::permanent(Error::interrupted()));
    }
    let endpoint = spec.endpoint();
    let stream = connect::open(spec, addrs)?;
    stream
        .sock
        .tcp()
        .set_read_timeout(Some(crate::interrupt::TICK.min(spec.timeout)))
        .doing("setting the socket timeout")
        .map_err(Unreached::transient)?;
    let mut link = Link {
        io: BufReader::with_capacity(
            64 * 1024,
            Paced { inner: stream, grace: spec.timeout, since: std::time::Instant::now(), received: 0 },
        ),
        caps: Vec::new(),
        next_tag: 0,
        in_flight: VecDeque::new(),
        fetches: VecDeque::new(),
        appends: VecDeque::new(),
        answered: HashMap::new(),
        progressed: false,
        serial: spec.serial(),
        queued: VecDeque::new(),
        pipelined: std::collections::HashSet::new(),
    };
    // A broken stream may be the link's fault and pass; an answer refused or unreadable
    // is the server's.
    let failed = |what: &str, e: &ImapError| {
        let error = spec.imap_error(what, e);
        match e {
            ImapError::Lost(_) | ImapError::Timeout | ImapError::Slow => Unreached::transient(error),
            _ => Unreached::permanent(error),
        }
    };
    // After STARTTLS the greeting was the plain one; the TLS session starts without one,
    // and capabilities sent in clear text must not be trusted.
    if !spec.starttls {
        let mut line = Vec::new();
        match link.io.by_ref().take(MAX_GREETING).read_until(b'\n', &mut line) {
            Ok(0) => {
                return Err(Unreached::transient(Error::runtime(format!(
                    "{endpoint} closed the connection without a greeting"
                ))))
            }
            Ok(_) => {}
            Err(e) => {
                let e = match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ImapError::Timeout,
                    _ => ImapError::Lost(describe_io(&e)),
                };
                return Err(failed("greeting", &e));
            }
        }
        connect::check_greeting(&line, &endpoint)?;
        link.caps = greeting_capabilities(&line);
    }
    if link.caps.is_empty() {
        link.caps = ask_capabilities(&mut link).map_err(|e| failed("CAPABILITY", &e))?;
    }
    let text = match (log_in(&mut link, auth, spec), renew) {
        (Ok(text), _) => text,
        // Not authenticated yet after a NO (RFC 3501, 6.2.2): the same connection may try again.
        (Err(LoginFailure::Refused(_)), Some(renew)) => {
            renew(auth).map_err(Unreached::permanent)?;
            log_in(&mut link, auth, spec)?
        }
        (Err(f), _) => return Err(f.into()),
    };
    // Servers often announce the capabilities that hold after login with its answer.
    match text.strip_prefix("[CAPABILITY ").and_then(|t| t.split_once(']')) {
        Some((caps, _)) => link.caps = caps.split_whitespace().map(str::to_ascii_uppercase).collect(),
        None => link.caps = ask_capabilities(&mut link).map_err(|e| failed("CAPABILITY", &e))?,
    }
    if link.has("ID") {
        // Some servers (NetEase) refuse EXAMINE to a client that did not say who it is. The
        // answer is read with the next command's: no round trip of its own.
        let id = format!("ID (\"name\" \"smailarchiver\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION"));
        link.send(&[id]).map_err(|e| failed("ID", &e))?;
    }
    Ok(link)
}

fn greeting_capabilities(line: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(line);
    let Some(start) = text.find("[CAPABILITY ") else { return Vec::new() };
    let rest = &text[start + 12..];
    let Some(end) = rest.find(']') else { return Vec::new() };
    rest[..end].split_whitespace().map(str::to_ascii_uppercase).collect()
}

fn ask_capabilities(link: &mut Link) -> std::result::Result<Vec<String>, ImapError> {
    let tags = link.send(&["CAPABILITY".to_string()])?;
    let mut caps = Vec::new();
    link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
        if let Data::Capability(c) = d {
            caps = c;
        }
        Ok(())
    })?;
    Ok(caps)
}

/// Whether `e` is the server refusing the credential (a wrong password), as the first
/// login reports it.
pub fn is_refused_login(e: &Error) -> bool {
    e.message().starts_with("login failed for ")
}

/// Why a login failed.
enum LoginFailure {
    /// The server refused the credential: a fresh one may do.
    Refused(Error),
    /// The connection broke or fell silent: trying again later may do.
    Broken(Error),
    /// Anything else.
    Other(Error),
}

impl From<Error> for LoginFailure {
    fn from(e: Error) -> LoginFailure {
        LoginFailure::Other(e)
    }
}

impl From<LoginFailure> for Unreached {
    fn from(f: LoginFailure) -> Unreached {
        match f {
            LoginFailure::Broken(e) => Unreached::transient(e),
            LoginFailure::Refused(e) | LoginFailure::Other(e) => Unreached::permanent(e),
        }
    }
}

/// Logs in; returns the text of the server's OK.
fn log_in(link: &mut Link, auth: &Auth, spec: &ServerSpec) -> std::result::Result<String, LoginFailure> {
    let endpoint = spec.endpoint();
    let user = auth.user();
    let failure = |e: ImapError| match e {
        ImapError::Refused(text) => {
            LoginFailure::Refused(Error::runtime(format!("login failed for {user} on {endpoint}: {}", quote(&text))))
        }
        other @ (ImapError::Lost(_) | ImapError::Timeout | ImapError::Slow) => {
            LoginFailure::Broken(spec.imap_error("login", &other))
        }
        other => LoginFailure::Other(spec.imap_error("login", &other)),
    };
    match auth {
        Auth::Login { user, password } => {
            let password = password.expose();
            if [user.as_str(), password].iter().any(|s| s.contains(['\r', '\n', '\0'])) {
                return Err(
                    Error::usage(format!("the user name or password for {user} contains a line break or NUL")).into()
                );
            }
            let plain = auth::use_plain(|c| link.has(c), user, password)
                .map_err(|why| LoginFailure::Other(Error::runtime(format!("{endpoint} {why}"))))?;
            if plain {
                sasl(link, "PLAIN", &auth::plain(user, password), b"\r\n").map_err(|(e, _)| failure(e))
            } else {
                let tag = link.tag();
                link.write(auth::login_command(&tag, user, password).bytes()).map_err(failure)?;
                link.in_flight.push_back(tag.clone());
                link.finish(&tag, MAX_SMALL_LITERAL, &mut |_| Ok(())).map_err(failure)
            }
        }
        Auth::OAuth2 { user, token } => {
            let Some(mechanism) = auth::oauth2_mechanism(|c| link.has(c)) else {
                return Err(Error::runtime(format!(
                    "{endpoint} does not offer OAuth2 login (AUTH=OAUTHBEARER or AUTH=XOAUTH2)"
                ))
                .into());
            };
            // After a failure both send a JSON error as a challenge; the client's answer
            // ends the exchange: an empty line (XOAUTH2) or ^A (OAUTHBEARER, RFC 7628 3.2.3).
            let (response, cancel) = if mechanism == "OAUTHBEARER" {
                (auth::oauthbearer(user, &spec.host, spec.port, token.expose()), &b"AQ==\r\n"[..])
            } else {
                (auth::xoauth2(user, token.expose()), &b"\r\n"[..])
            };
            sasl(link, mechanism, &response, cancel).map_err(|(e, detail)| {
                let with_detail = |error: Error| match &detail {
                    Some(detail) => Error::runtime(format!("{error} ({detail})")),
                    None => error,
                };
                match failure(e) {
                    LoginFailure::Refused(e) => LoginFailure::Refused(with_detail(e)),
                    LoginFailure::Broken(e) => LoginFailure::Broken(with_detail(e)),
                    LoginFailure::Other(e) => LoginFailure::Other(with_detail(e)),
                }
            })
        }
    }
}

/// One SASL exchange with a single client response (with SASL-IR in the command itself).
/// On failure, OAuth 2.0 servers send a JSON error as a challenge first: it comes back with
/// the error, after `cancel` answered it.
fn sasl(
    link: &mut Link,
    mechanism: &str,
    response: &Wiped,
    cancel: &[u8],
) -> std::result::Result<String, (ImapError, Option<String>)> {
    let tag = link.tag();
    let encoded = response.base64();
    let ir = link.has("SASL-IR");
    let mut command = Wiped::with_capacity(tag.len() + mechanism.len() + encoded.bytes().len() + 20);
    command.push(format!("{tag} AUTHENTICATE {mechanism}").as_bytes());
    if ir {
        command.push(b" ");
        command.push(encoded.bytes());
    }
    command.push(b"\r\n");
    link.write(command.bytes()).map_err(|e| (e, None))?;
    link.in_flight.push_back(tag.clone());
    let mut sent = ir;
    let mut detail = None;
    loop {
        match wire::read_response(&mut link.io, MAX_SMALL_LITERAL).map_err(|e| (e, detail.clone()))? {
            Response::Continue(challenge) => {
                if sent {
                    // A second challenge is an error report: never send the credential twice.
                    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, challenge.trim())
                        .unwrap_or_else(|_| challenge.into_bytes());
                    detail = Some(quote(&String::from_utf8_lossy(&decoded)));
                    link.write(cancel).map_err(|e| (e, detail.clone()))?;
                } else {
                    let mut line = Wiped::with_capacity(encoded.bytes().len() + 2);
                    line.push(encoded.bytes());
                    line.push(b"\r\n");
                    link.write(line.bytes()).map_err(|e| (e, None))?;
                    sent = true;
                }
            }
            Response::Tagged { tag: t, status, text } if t == tag => {
                link.in_flight.pop_front();
                return match status {
                    Status::Ok => Ok(text),
                    _ => Err((ImapError::Refused(text), detail)),
                };
            }
            Response::Data(Data::Bye(text)) => {
                return Err((ImapError::Lost(format!("the server hung up: {}", quote(&text))), detail))
            }
            Response::Data(_) => {}
            Response::Tagged { .. } => {
                return Err((ImapError::Protocol("an answer tagged out of turn during login".into()), detail))
            }
        }
    }
}

/// Connects to one of `addrs` and logs in: a session ready for commands.
pub fn connect(spec: &ServerSpec, addrs: &[SocketAddr], auth: &Auth) -> Result<Session> {
    let mut session = Session::new(spec.clone(), addrs.to_vec(), auth.clone());
    session.connect()?;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_capabilities_are_read() {
        assert_eq!(
            greeting_capabilities(b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID] Dovecot ready.\r\n"),
            ["IMAP4REV1", "SASL-IR", "ID"]
        );
        assert!(greeting_capabilities(b"* OK ready\r\n").is_empty());
    }

    #[test]
    fn sizes_keep_only_what_was_asked() {
        let got = sorted_sizes(vec![(9, 1), (3, 2), (3, 2), (100, 5)], |u| u < 50);
        assert_eq!(got, [(3, 2), (9, 1)]);
    }
}
