//! The IMAP session: one connection to the server (connected on first use and again after
//! it was lost, with back-off), the commands in flight on it, and the operations the tool
//! needs. Commands that do not depend on each other's answers are sent together
//! (pipelined) and their answers read in order, so a folder costs one round trip where a
//! command-by-command client waits for several.

use std::net::SocketAddr;

pub use super::auth::is_refused_login;
use super::auth::{self, Ask, Auth, Renewal};
use super::clock::seconds;
use super::connect::ServerSpec;
use super::error::{ImapError, Unreached};
use super::link::Link;
use super::reconnect::Backoff;
use super::wire::{self, Response, MAX_SMALL_LITERAL};
use crate::error::{Error, Result};

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
    /// Lost connections counted, and the waits before the next.
    backoff: Backoff,
    /// The connection dropped last had moved the work on (see [`RECONNECTS`](super::reconnect::RECONNECTS)).
    dropped_progress: bool,
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
            backoff: Backoff::new(),
            dropped_progress: false,
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
    /// the same budget of [`RECONNECTS`](super::reconnect::RECONNECTS); `notice` hears of each attempt that failed. The
    /// other failures (an untrusted certificate, a wrong password) are the account's at once.
    pub fn connect_retrying(&mut self, notice: &mut dyn FnMut(&str)) -> Result<()> {
        let began = self.backoff.now();
        let mut attempts = 0;
        while self.link.is_none() {
            attempts += 1;
            match self.open_link() {
                Ok(link) => self.link = Some(link),
                Err(u) if u.transient && !crate::interrupt::requested() => {
                    let Some(pause) = self.backoff.failed_attempt() else {
                        return Err(Error::runtime(format!(
                            "{} (tried {attempts} times in {})",
                            u.error,
                            self.backoff.waited(began)
                        )));
                    };
                    notice(&format!("{}; trying again in {}", u.error, seconds(pause)));
                    self.backoff.sleep(pause);
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
        self.backoff.given_up()
    }

    /// Drops a connection that broke and waits before the next (1, 2, 4 s, unless it moved
    /// the work on; a throttling server's wait); returns what to tell the user, or an error
    /// once [`RECONNECTS`](super::reconnect::RECONNECTS) (or [`THROTTLE_BUDGET`](super::reconnect::THROTTLE_BUDGET)) are used up.
    pub fn lost(&mut self, why: &str) -> Result<String> {
        self.drop_link();
        let progressed = std::mem::take(&mut self.dropped_progress);
        self.backoff.lost(progressed, &mut self.unrenewable, why)
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
    pub(super) fn link(&mut self) -> std::result::Result<&mut Link, ImapError> {
        if self.link.as_ref().is_some_and(|l| !l.fetches.is_empty() || !l.appends.is_empty()) {
            self.drop_link();
        }
        if self.link.is_none() {
            // Reconnected without a word (a failure that did not matter): nothing to say
            // or wait for any more.
            self.backoff.reconnected_quietly();
            let link = self.open_link().map_err(|e| ImapError::Lost(e.error.to_string()))?;
            self.link = Some(link);
        }
        self.link.as_mut().ok_or_else(|| ImapError::Lost("no connection".into()))
    }

    /// Runs `result`'s bookkeeping: a failure that breaks the stream drops the connection;
    /// a server that garbled pipelined commands gets them one at a time from now on (every
    /// connection of the account), and a throttled one is waited for before the next.
    pub(super) fn checked<T>(
        &mut self,
        result: std::result::Result<T, ImapError>,
    ) -> std::result::Result<T, ImapError> {
        if let Err(e) = &result {
            if matches!(e, ImapError::Garbled(_)) {
                self.spec.one_at_a_time.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            self.backoff.note(e);
        }
        if result.as_ref().is_err_and(ImapError::breaks_session) {
            self.drop_link();
        }
        result
    }

    /// The way a command family sends commands and reads their answers (see
    /// [`commands`](super::commands)): `command` gets the live connection, connecting
    /// first if needed; its outcome then goes through the session's bookkeeping
    /// ([`Session::checked`]).
    pub(super) fn run<T>(
        &mut self,
        command: impl FnOnce(&mut Link) -> std::result::Result<T, ImapError>,
    ) -> std::result::Result<T, ImapError> {
        let result = self.link().and_then(command);
        self.checked(result)
    }

    /// The live connection for a command pipelined behind commands whose answers are
    /// still to be read (a fetch behind fetches, an upload behind uploads), connecting
    /// first if there is none.
    pub(super) fn link_behind(&mut self) -> std::result::Result<&mut Link, ImapError> {
        if self.link.is_none() {
            self.link()?;
        }
        self.live_link()
    }

    /// The connection as it is, for the answers of commands sent on it before.
    pub(super) fn live_link(&mut self) -> std::result::Result<&mut Link, ImapError> {
        self.link.as_mut().ok_or_else(|| ImapError::Lost("no connection".into()))
    }

    /// The connection, if one is up, to look at.
    pub(super) fn peek_link(&self) -> Option<&Link> {
        self.link.as_ref()
    }

    /// Drops the connection without a word: answers of commands not read yet would be
    /// taken for the next command's.
    pub(super) fn forget_link(&mut self) {
        self.link = None;
    }

    /// Whether the server offers a capability (connecting first if needed).
    pub fn has(&mut self, cap: &str) -> std::result::Result<bool, ImapError> {
        Ok(self.link()?.has(cap))
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
}

/// Connects to one of `addrs` and logs in: a session ready for commands.
pub fn connect(spec: &ServerSpec, addrs: &[SocketAddr], auth: &Auth) -> Result<Session> {
    let mut session = Session::new(spec.clone(), addrs.to_vec(), auth.clone());
    session.connect()?;
    Ok(session)
}
