//! A search's words (`--search`): each hit on stdout as `FOLDERDIR<TAB>` and its `--list`
//! line, problems on stderr, and the closing line.

use std::cell::{Cell, RefCell};
use std::io::Write;

use super::{plural, warn};
use crate::events::Sink;
use crate::search::{Event, Summary};

/// Prints a search's hits on stdout, its problems on stderr.
pub struct SearchPrinter {
    stdout: RefCell<std::io::StdoutLock<'static>>,
    /// Standard output was closed (`--search ... | head`): the search stops quietly.
    gone: Cell<bool>,
}

impl Default for SearchPrinter {
    fn default() -> Self {
        SearchPrinter { stdout: RefCell::new(std::io::stdout().lock()), gone: Cell::new(false) }
    }
}

impl Sink<Event<'_>> for SearchPrinter {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Hit { folder, line } => {
                let folder = crate::printable::escape(&folder.display().to_string());
                if writeln!(self.stdout.borrow_mut(), "{folder}\t{line}").is_err() {
                    self.gone.set(true);
                }
            }
            Event::MetadataNotUsed { journal, error } => {
                warn(format!("{}: metadata not used: {error}", journal.display()))
            }
            Event::Unreadable { path, why } => warn(format!("{}: {why}", path.display())),
            Event::DamagedRecords { journal, count } => warn(format!(
                "{}: {count} damaged metadata record(s) left out: those messages were read from their files",
                journal.display()
            )),
            Event::OddNames { files } => {
                if let Some(text) = crate::archive::odd_names(files) {
                    warn(format!("warning: {text}"));
                }
            }
        }
    }

    fn gone(&self) -> bool {
        self.gone.get()
    }
}

/// The line that ends a search (on standard error): what was searched and how.
pub fn summary(r: &Summary) -> String {
    let mut line = format!(
        "searched {} in {}: {} found ({} decided by the metadata alone, {} read)",
        plural(r.messages, "message"),
        plural(r.folders as u64, "folder"),
        r.hits,
        r.by_metadata,
        plural(r.files_read, "file")
    );
    if !r.failed.is_empty() {
        line += &format!("; {} could not be read", plural(r.failed.len() as u64, "file"));
    }
    if r.without_fields > 0 {
        line += &format!(
            "; {} archived before header fields were recorded (read from the file when the query needs them)",
            plural(r.without_fields, "message")
        );
    }
    line
}
