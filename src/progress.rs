//! A progress line on standard error, only when it is a terminal (never in cron mail).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws at most this often, so a fast backup is not slowed by its own display.
const EVERY: Duration = Duration::from_millis(200);

/// One folder's progress line.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    label: String,
    total: usize,
    done: usize,
    bytes: u64,
    drawn: Option<Instant>,
}

impl Progress {
    /// A progress line for `label`, shown only if `wanted` and stderr is a terminal.
    pub fn new(label: String, wanted: bool) -> Progress {
        Progress { enabled: wanted && std::io::stderr().is_terminal(), label, total: 0, done: 0, bytes: 0, drawn: None }
    }

    /// Sets how many messages are to be fetched.
    pub fn start(&mut self, total: usize) {
        self.total = total;
        self.done = 0;
    }

    /// Counts one message.
    pub fn tick(&mut self, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        if self.enabled && self.drawn.is_none_or(|t| t.elapsed() >= EVERY) {
            let mut err = std::io::stderr();
            let _ =
                write!(err, "\r\x1b[K{}: {}/{} messages, {} KiB", self.label, self.done, self.total, self.bytes / 1024);
            let _ = err.flush();
            self.drawn = Some(Instant::now());
        }
    }

    /// Removes the line.
    pub fn clear(&mut self) {
        if self.enabled && self.drawn.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.drawn = None;
        }
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
