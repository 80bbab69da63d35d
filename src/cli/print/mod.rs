//! Every word a run prints: each mode's events rendered as lines, filtered by the output
//! settings (`--quiet`, `--verbose`), with the progress line kept out of their way.

pub mod backup;
pub mod list;
pub mod progress;
pub mod restore;
pub mod search;
pub mod upload;
pub mod verify;

use crate::interrupt;
use crate::report::Output;

/// Prints a run's lines: results and details on stdout, the rest on stderr, each filtered
/// by the output settings. After SIGINT or SIGTERM the run says one line, at its end:
/// nothing else is printed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Printer {
    /// How much to say.
    pub out: Output,
}

impl Printer {
    /// A result line, such as a folder's summary (left out with `--quiet`).
    pub fn result(&self, text: &str) {
        if !self.out.quiet && !interrupt::requested() {
            println!("{text}");
        }
    }

    /// A detail, such as one line per message (only with `--verbose`).
    pub fn detail(&self, text: &str) {
        if self.out.verbose && !interrupt::requested() {
            println!("{text}");
        }
    }

    /// A problem that did not stop the run (always shown).
    pub fn warning(&self, text: &str) {
        if !interrupt::requested() {
            warn(text);
        }
    }

    /// A remark on how the run goes, such as a refused extra connection (only with
    /// `--verbose`).
    pub fn remark(&self, text: &str) {
        if self.out.verbose && !interrupt::requested() {
            warn(text);
        }
    }

    /// Something failed (always shown).
    pub fn error(&self, text: &str) {
        if !interrupt::requested() {
            eprintln!("smailarchiver: error: {text}");
        }
    }
}

/// Prints a non-fatal problem on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("smailarchiver: {msg}");
}

/// `N thing` or `N things`.
pub fn plural(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
