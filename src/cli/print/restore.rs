//! A restore's words (`-r`): each file left out as it happens, then per folder why its
//! metadata was not used (when it was not) and the `restored ...` line.

use super::{plural, warn};
use crate::events::Sink;
use crate::report::Output;
use crate::restore::{Event, Summary};

/// Prints a restore's events on stderr and its result lines on stdout.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestorePrinter {
    /// How much to say.
    pub out: Output,
}

impl Sink<Event<'_>> for RestorePrinter {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::LeftOut { path, why } => warn(format!("left out {}: {why}", path.display())),
        }
    }
}

impl RestorePrinter {
    /// The lines that end a folder's restore: why its metadata (flags, arrival times) was
    /// not used, when it was not, and `restored N messages (B bytes) [of NAME] to PATH[; K
    /// file(s) failed]` (left out with `--quiet`).
    pub fn folder_done(&self, report: &Summary, name: Option<&str>) {
        if let Some(p) = &report.metadata_problem {
            warn(format!("warning: restored without flags and arrival times: {p}"));
        }
        if report.damaged_records > 0 {
            warn(format!(
                "warning: {} left out: some messages restored without their flags and arrival times (see --verify)",
                plural(report.damaged_records as u64, "damaged metadata record")
            ));
        }
        if !self.out.quiet {
            println!("{}", restored_line(report, name));
        }
    }
}

/// `restored N messages (B bytes) [of NAME] to PATH[; K file(s) failed]`.
fn restored_line(report: &Summary, name: Option<&str>) -> String {
    format!(
        "restored {} ({} bytes){} to {}{}",
        plural(report.restored as u64, "message"),
        report.bytes,
        name.map(|n| format!(" of {}", crate::printable::escape(n))).unwrap_or_default(),
        report.output.display(),
        if report.failed.is_empty() { String::new() } else { format!("; {} file(s) failed", report.failed.len()) }
    )
}
