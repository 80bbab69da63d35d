//! A verification's words (`--verify`): a `BAD PATH: WHY` line for each bad thing, the
//! repair hint when records were damaged, and the closing count.

use std::cell::Cell;

use crate::error::describe_io;
use crate::events::Sink;
use crate::verify::{Event, Summary};

/// The line that says how damaged records are repaired.
pub const REPAIR_HINT: &str = "damaged metadata records are repaired by the next backup of the account: it reads \
     the journal whole, rewrites it without them and asks the server again for the flags, arrival times and sizes \
     they held (the messages' files are not touched)";

/// Prints each bad thing as it is found, on stdout.
#[derive(Debug, Default)]
pub struct VerifyPrinter {
    /// Whether a damaged metadata record was found (the repair hint follows).
    damaged_records: Cell<bool>,
}

impl Sink<Event<'_>> for VerifyPrinter {
    fn event(&self, event: Event<'_>) {
        let (path, why) = match event {
            Event::JournalUnreadable { journal, error } => (journal, format!("metadata: {error}")),
            Event::NotTheRecorded { path, uid } => {
                (path, format!("not the message archived as UID {uid} (its digest differs: copied from another UID?)"))
            }
            Event::Undecodable { path, error } => (path, describe_io(error)),
            Event::Missing { path, uid } => (path, format!("UID {uid} was archived but its file is missing")),
            Event::DamagedRecord { journal, damage } => {
                self.damaged_records.set(true);
                (
                    journal,
                    format!("{damage}: a damaged metadata record (the metadata of one message, or of a run's end); left out"),
                )
            }
        };
        println!("BAD {}: {why}", path.display());
    }
}

impl VerifyPrinter {
    /// The lines that end a verification: the repair hint where records were damaged, and
    /// the count (also with `--quiet` when something was bad).
    pub fn finish(&self, report: &Summary, quiet: bool) {
        if self.damaged_records.get() {
            println!("{REPAIR_HINT}");
        }
        if !quiet || report.is_bad() {
            println!("{}", verified_line(report));
        }
    }
}

/// `verified N messages: G good, B bad (D damaged, M missing), BYTES message bytes; J
/// metadata journals, R damaged records`.
pub fn verified_line(r: &Summary) -> String {
    use super::plural;
    let mut line =
        format!("verified {}: {} good, {} bad", plural(r.messages as u64, "message"), r.good, r.damaged + r.missing);
    if r.damaged + r.missing > 0 {
        line += &format!(" ({} damaged, {} missing)", r.damaged, r.missing);
    }
    line += &format!(", {} message bytes", r.bytes);
    if r.journals > 0 {
        line += &format!("; {}", plural(r.journals as u64, "metadata journal"));
        if r.damaged_records > 0 {
            line += &format!(", {}", plural(r.damaged_records as u64, "damaged record"));
        }
        if r.bad_journals > 0 {
            line += &format!(", {} unreadable", r.bad_journals);
        }
    }
    line
}
