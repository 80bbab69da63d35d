//! Time as the client sees it: the [`Clock`] a session waits with between attempts (the
//! real one, or in tests one that does not sleep), and how durations are said in
//! messages. Below every other module of `imap`, so that each may word its timeouts.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A duration for messages: "60 s", "2.5 s".
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The time since `began` for a message, in whole seconds where it is close to them (the
/// timeouts are whole seconds), else to a tenth.
pub(crate) fn waited(began: Instant) -> String {
    waited_for(began.elapsed())
}

/// [`waited`] for a duration measured otherwise.
pub(crate) fn waited_for(d: Duration) -> String {
    let whole = Duration::from_secs(d.as_secs_f64().round() as u64);
    if d.abs_diff(whole) < Duration::from_millis(150) {
        seconds(whole)
    } else {
        seconds(Duration::from_millis(d.as_millis() as u64 / 100 * 100))
    }
}

/// What a session waits with between attempts: the real clock, or in tests one whose
/// waits take no time ([`InstantClock`]), so a test of what happens after a lost
/// connection does not sleep through the back-off.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, as this clock counts.
    fn now(&self) -> Instant;
    /// Waits `wait` (not listening for Ctrl-C: see [`pause`]).
    fn sleep(&self, wait: Duration);
}

/// The clock on the wall: waits are real sleeps.
#[derive(Debug, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, wait: Duration) {
        std::thread::sleep(wait);
    }
}

/// A clock whose waits return at once and move its own time on by what was waited: what
/// a run says of its waits ("trying again in 2 s", "tried 4 times in 7 s") stays the same.
#[derive(Debug, Default)]
pub struct InstantClock {
    slept: Mutex<Duration>,
}

impl Clock for InstantClock {
    fn now(&self) -> Instant {
        Instant::now() + self.slept.lock().map_or(Duration::ZERO, |s| *s)
    }

    fn sleep(&self, wait: Duration) {
        if let Ok(mut slept) = self.slept.lock() {
            *slept += wait;
        }
    }
}

/// The clock a session waits with: the real one. A test build (the `test-clock` feature,
/// which only `cargo test` turns on) takes [`InstantClock`] when the environment says
/// `SMAILARCHIVER_TEST_CLOCK=instant`; a release build has no such switch.
pub fn session_clock() -> Arc<dyn Clock> {
    #[cfg(feature = "test-clock")]
    if std::env::var_os("SMAILARCHIVER_TEST_CLOCK").is_some_and(|v| v == "instant") {
        return Arc::new(InstantClock::default());
    }
    Arc::new(RealClock)
}

/// Waits `wait` on `clock`, listening for Ctrl-C.
pub fn pause(clock: &dyn Clock, wait: Duration) -> Result<()> {
    let until = clock.now() + wait;
    loop {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        let left = until.saturating_duration_since(clock.now());
        if left.is_zero() {
            return Ok(());
        }
        clock.sleep(left.min(crate::interrupt::TICK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(seconds(Duration::from_secs(60)), "60 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(waited_for(Duration::from_millis(7040)), "7 s");
        assert_eq!(waited_for(Duration::from_millis(2560)), "2.5 s");
    }
}
