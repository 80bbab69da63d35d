//! Reconnecting: how often a lost connection is re-established before the account is
//! given up, how long to wait before the next attempt (1, 2, 4 s; a throttling server's
//! wait), and what to tell the user. The waits go through a [`Clock`], which tests replace
//! by one that does not sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::{pause, seconds, session_clock, waited_for, Clock};
use super::error::{quote, ImapError};
use crate::error::{Error, Result};

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

/// One session's count of lost connections and what the last one left to do before the
/// next: the back-off.
#[derive(Debug)]
pub(super) struct Backoff {
    clock: Arc<dyn Clock>,
    reconnects: u32,
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

impl Backoff {
    /// A fresh count, waiting on the session's clock.
    pub(super) fn new() -> Backoff {
        Backoff::on(session_clock())
    }

    /// A fresh count, waiting on `clock`.
    pub(super) fn on(clock: Arc<dyn Clock>) -> Backoff {
        Backoff {
            clock,
            reconnects: 0,
            garbled: None,
            throttled: None,
            throttled_in_a_row: 0,
            throttle_waited: Duration::ZERO,
            learnt_serial: false,
        }
    }

    /// Whether the connection was lost more often than allowed.
    pub(super) fn given_up(&self) -> bool {
        self.reconnects > RECONNECTS
    }

    /// Now, on the clock the waits are counted with.
    pub(super) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The time since `began` (from [`Backoff::now`]) for a message.
    pub(super) fn waited(&self, began: Instant) -> String {
        waited_for(self.clock.now().saturating_duration_since(began))
    }

    /// A first connection failed in a way that may pass: counted like a lost connection.
    /// The wait before the next attempt (1, 2, 4 s), or `None` once [`RECONNECTS`] are used up.
    pub(super) fn failed_attempt(&mut self) -> Option<Duration> {
        self.reconnects += 1;
        if self.given_up() {
            return None;
        }
        Some(Duration::from_secs(1 << (self.reconnects - 1)))
    }

    /// Waits `wait` (not listening for Ctrl-C: the next attempt checks).
    pub(super) fn sleep(&self, wait: Duration) {
        self.clock.sleep(wait);
    }

    /// Notes what a failed command says about the next connection: a server that garbled
    /// pipelined commands, or one that throttles.
    pub(super) fn note(&mut self, e: &ImapError) {
        match e {
            ImapError::Garbled(text) => self.garbled = Some(text.clone()),
            ImapError::Throttled(text) => self.throttled = Some(text.clone()),
            _ => {}
        }
    }

    /// A new connection was made without a word (a failure that did not matter): nothing
    /// to say or wait for any more.
    pub(super) fn reconnected_quietly(&mut self) {
        self.garbled = None;
        self.throttled = None;
    }

    /// After a connection was lost (`progressed`: it had moved the work on), waits before
    /// the next (1, 2, 4 s, unless it moved the work on; a throttling server's wait);
    /// returns what to tell the user, or an error once [`RECONNECTS`] (or
    /// [`THROTTLE_BUDGET`]) are used up. `unrenewable` is why the credential could not be
    /// renewed, if it could not: then there is no next attempt.
    pub(super) fn lost(&mut self, progressed: bool, unrenewable: &mut Option<String>, why: &str) -> Result<String> {
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
            pause(self.clock.as_ref(), wait)?;
            return Ok(format!(
                "the server is throttling the account ({}); waited {}, resuming",
                quote(&text),
                seconds(wait)
            ));
        }
        if let Some(e) = unrenewable.take() {
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
            pause(self.clock.as_ref(), Duration::from_secs(1 << (self.reconnects - 1)))?;
        }
        Ok(format!("connection lost ({why}); reconnecting"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::clock::InstantClock;

    /// A back-off on a clock that does not sleep, and that clock.
    fn instant() -> (Backoff, Arc<InstantClock>) {
        let clock = Arc::new(InstantClock::default());
        (Backoff::on(clock.clone()), clock)
    }

    #[test]
    fn lost_connections_wait_1_2_4_seconds_then_give_up() {
        let (mut backoff, clock) = instant();
        let began = clock.now();
        for wait in [1, 3, 7] {
            let said = backoff.lost(false, &mut None, "reset").unwrap();
            assert_eq!(said, "connection lost (reset); reconnecting");
            let waited = clock.now().duration_since(began);
            assert!(waited >= Duration::from_secs(wait) && waited < Duration::from_secs(wait + 1), "{waited:?}");
        }
        let e = backoff.lost(false, &mut None, "reset").unwrap_err();
        assert_eq!(e.message(), "connection lost 3 times, giving up (last: reset)");
        assert!(backoff.given_up());
        assert_eq!(backoff.waited(began), "7 s");
    }

    #[test]
    fn progress_restores_the_count_and_does_not_wait() {
        let (mut backoff, clock) = instant();
        for _ in 0..10 {
            let began = clock.now();
            backoff.lost(true, &mut None, "token expired").unwrap();
            assert!(clock.now().duration_since(began) < Duration::from_secs(1));
        }
        assert!(!backoff.given_up());
    }

    #[test]
    fn throttling_waits_what_the_server_says_within_the_budget() {
        let (mut backoff, clock) = instant();
        let text = "Request is throttled. Suggested Backoff Time: 299961 milliseconds";
        let mut spent = Duration::ZERO;
        let mut rounds = 0;
        loop {
            backoff.note(&ImapError::Throttled(text.into()));
            let began = clock.now();
            match backoff.lost(false, &mut None, "throttled") {
                Ok(said) => {
                    assert!(said.starts_with("the server is throttling the account ("), "{said}");
                    spent += clock.now().duration_since(began);
                    rounds += 1;
                }
                Err(e) => {
                    assert!(e.message().starts_with("throttled by the server for 1800 s in all"), "{e}");
                    break;
                }
            }
        }
        assert_eq!(rounds, 7, "six waits of 300 s and what is left of 30 minutes");
        assert!(spent >= THROTTLE_BUDGET && spent < THROTTLE_BUDGET + Duration::from_secs(1), "{spent:?}");
    }

    #[test]
    fn first_attempts_wait_1_2_4_seconds() {
        let (mut backoff, _) = instant();
        let waits: Vec<_> = std::iter::from_fn(|| backoff.failed_attempt()).collect();
        assert_eq!(waits, [1, 2, 4].map(Duration::from_secs));
    }
}
