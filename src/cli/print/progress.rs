//! A progress line on standard error, only when it is a terminal (never in cron mail):
//! which folder of how many, messages and bytes done of the total, the rate and the time
//! left, so a first run of hours can be planned around.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws at most this often, so a fast backup is not slowed by its own display.
const EVERY: Duration = Duration::from_millis(200);

/// One folder's progress line.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    label: String,
    /// Which folder of the account's this is, and how many it has.
    place: Option<(usize, usize)>,
    total: usize,
    done: usize,
    total_bytes: u64,
    bytes: u64,
    started: Option<Instant>,
    drawn: Option<Instant>,
}

impl Progress {
    /// A progress line for `label`, shown only if `wanted` and stderr is a terminal.
    pub fn new(label: String, wanted: bool) -> Progress {
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            label,
            place: None,
            total: 0,
            done: 0,
            total_bytes: 0,
            bytes: 0,
            started: None,
            drawn: None,
        }
    }

    /// Says this is folder `k` of the account's `n`.
    pub fn place(&mut self, k: usize, n: usize) {
        self.place = (n > 1).then_some((k, n));
    }

    /// Sets how many messages, of how many bytes in all, are to be fetched.
    pub fn start(&mut self, total: usize, total_bytes: u64) {
        self.total = total;
        self.total_bytes = total_bytes;
        self.done = 0;
        self.bytes = 0;
        self.started = Some(Instant::now());
    }

    /// Counts one message.
    pub fn tick(&mut self, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        if self.enabled && self.drawn.is_none_or(|t| t.elapsed() >= EVERY) {
            let elapsed = self.started.map_or(Duration::ZERO, |t| t.elapsed());
            let mut err = std::io::stderr();
            let mut line = self.line(elapsed);
            // A line that wraps could not be redrawn in place: it is cut to the width.
            if let Some(columns) = crate::os::terminal_columns(&err) {
                if line.chars().count() >= columns {
                    line = line.chars().take(columns.saturating_sub(1)).collect();
                }
            }
            let _ = write!(err, "\r\x1b[K{line}");
            let _ = err.flush();
            self.drawn = Some(Instant::now());
        }
    }

    /// The line after `elapsed` since [`Progress::start`]:
    /// `ann INBOX (folder 3 of 14): 2/212 messages, 1.2 MiB of 310.0 MiB, 2.0 MiB/s, ETA 2 min 34 s`.
    pub fn line(&self, elapsed: Duration) -> String {
        let mut line = self.label.clone();
        if let Some((k, n)) = self.place {
            line += &format!(" (folder {k} of {n})");
        }
        if self.total == 0 {
            // New mail fetched as it comes: how much there is was not asked.
            return line + &format!(": {} messages, {}", self.done, bytes(self.bytes));
        }
        line += &format!(
            ": {}/{} messages, {} of {}",
            self.done,
            self.total,
            bytes(self.bytes),
            bytes(self.total_bytes.max(self.bytes))
        );
        let secs = elapsed.as_secs_f64();
        // The first moments say little of the rate: a message or two, a round trip.
        if secs >= 0.001 && self.bytes > 0 {
            let rate = self.bytes as f64 / secs;
            let left = self.total_bytes.saturating_sub(self.bytes) as f64 / rate;
            line += &format!(", {}/s, ETA {}", bytes(rate as u64), duration(Duration::from_secs_f64(left.min(1e9))));
        } else {
            line += ", ETA unknown";
        }
        line
    }

    /// Removes the line.
    pub fn clear(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.drawn = None;
        }
    }
}

/// A byte count for people: `512 B`, `1.2 KiB`, `310.0 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for people, to the second: `0 s`, `42 s`, `2 min 34 s`, `3 h 05 min`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s / 60 % 60),
    }
}

/// Clears whatever progress line a terminal shows, before a last line is printed over it.
pub fn clear_line() {
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[K");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_to_plan_with() {
        let mut p = Progress::new("ann INBOX".into(), false);
        p.place(3, 14);
        p.start(212, 310 * 1024 * 1024);
        assert_eq!(p.line(Duration::ZERO), "ann INBOX (folder 3 of 14): 0/212 messages, 0 B of 310.0 MiB, ETA unknown");
        p.tick(10 * 1024 * 1024);
        assert_eq!(
            p.line(Duration::from_secs(5)),
            "ann INBOX (folder 3 of 14): 1/212 messages, 10.0 MiB of 310.0 MiB, 2.0 MiB/s, ETA 2 min 30 s"
        );
        // One folder: no "folder 1 of 1".
        let mut p = Progress::new("ann INBOX".into(), false);
        p.place(1, 1);
        p.start(1, 100);
        p.tick(100);
        assert_eq!(p.line(Duration::from_secs(1)), "ann INBOX: 1/1 messages, 100 B of 100 B, 100 B/s, ETA 0 s");
    }

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration(Duration::from_millis(499)), "0 s");
        assert_eq!(duration(Duration::from_secs(154)), "2 min 34 s");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 5 * 60 + 59)), "3 h 05 min");
    }
}
