//! The IMAP session: one connection to the server (connected on first use and again after
//! it was lost, with back-off), the commands in flight on it, and the operations the tool
//! needs. Commands that do not depend on each other's answers are sent together
//! (pipelined) and their answers read in order, so a folder costs one round trip where a
//! command-by-command client waits for several.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use super::auth::is_refused_login;
use super::auth::{self, Ask, Auth, Renewal};
use super::clock::{seconds, waited};
use super::connect::ServerSpec;
use super::error::{quote, ImapError, Unreached};
use super::link::Link;
use super::wire::{self, Data, Fetched, ListEntry, Response, MAX_SMALL_LITERAL};
use crate::error::{Error, Result};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name;

mod gmail;
mod target;
pub use gmail::GmailIds;
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
                            waited(began)
                        )));
                    }
                    let pause = Duration::from_secs(1 << (self.reconnects - 1));
                    notice(&format!("{}; trying again in {}", u.error, seconds(pause)));
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
        let link = auth::open(spec, addrs, auth, if retry { Some(&mut on_refusal) } else { None })?;
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
                    seconds(THROTTLE_BUDGET),
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
                seconds(wait)
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
    fn sizes_keep_only_what_was_asked() {
        let got = sorted_sizes(vec![(9, 1), (3, 2), (3, 2), (100, 5)], |u| u < 50);
        assert_eq!(got, [(3, 2), (9, 1)]);
    }
}
