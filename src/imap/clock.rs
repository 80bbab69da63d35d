//! Time as the client says it in messages: how long something waited, a duration in
//! seconds. Below every other module of `imap`, so that each may word its timeouts.

use std::time::{Duration, Instant};

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
