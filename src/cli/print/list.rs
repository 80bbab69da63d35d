//! A listing's words (`--list`): a `# NAME` line before each folder of several, each
//! message's line on stdout, problems on stderr.

use std::cell::{Cell, RefCell};
use std::io::Write;

use super::{plural, warn};
use crate::events::Sink;
use crate::listing::Event;

/// Prints a listing's lines on stdout, its problems on stderr.
pub struct ListPrinter {
    stdout: RefCell<std::io::StdoutLock<'static>>,
    /// Standard output was closed (`--list ... | head`): the listing stops quietly.
    gone: Cell<bool>,
}

impl Default for ListPrinter {
    fn default() -> Self {
        ListPrinter { stdout: RefCell::new(std::io::stdout().lock()), gone: Cell::new(false) }
    }
}

impl ListPrinter {
    /// The `# NAME` line that heads a folder's lines.
    pub fn heading(&self, name: &str) {
        self.write(format_args!("# {name}"));
    }

    fn write(&self, line: std::fmt::Arguments<'_>) {
        if writeln!(self.stdout.borrow_mut(), "{line}").is_err() {
            self.gone.set(true);
        }
    }
}

impl Sink<Event<'_>> for ListPrinter {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Message { line } => self.write(format_args!("{line}")),
            Event::MetadataUnusable { dir, error } => {
                warn(format!("warning: {}: no flags and arrival times: {error}", dir.display()))
            }
            Event::DamagedRecords { dir, count } => warn(format!(
                "warning: {}: {} left out (see --verify)",
                dir.display(),
                plural(count as u64, "damaged metadata record")
            )),
            Event::Unreadable { path, why } => warn(format!("{}: {why}", path.display())),
        }
    }

    fn gone(&self) -> bool {
        self.gone.get()
    }
}
