//! What the steps of a folder's backup share (the plain pass in `folder`, Gmail's links
//! in `gmail`, a renumbered folder's recognition in `rebase`, the flags' refresh in
//! `refresh`, new mail in `new_mail`): the account's context, where the folder's messages
//! go, its report, and the bookkeeping of stored messages. It imports none of them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::event::{Event, Sink};
pub use super::folder_report::FolderReport;
use super::writer::{MessageWriter, Outcome, Settings};
use crate::account::Account;
use crate::archive::layout::registry::{OpenFolder, Registry};
use crate::archive::metadata::{self, Journal};
use crate::archive::ArchiveFile;
use crate::error::{Error, IoContext, Result};
use crate::imap::{Examined, Statuses};
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;
use crate::os::dir::Dir;

/// Whether a server's text says its download limit was reached (Gmail's `[OVERQUOTA]`
/// answer; also its `[ALERT]` form of the same words).
pub fn over_cap(text: &str) -> bool {
    text.contains("[OVERQUOTA]") || text.to_ascii_lowercase().contains("exceeded command or bandwidth limits")
}

/// What does not change while the folders of an account are backed up.
pub struct Context<'a> {
    /// The account.
    pub account: &'a Account,
    /// Its keys, when it is encrypted.
    pub keys: Option<&'a Keys>,
    /// Where the backup's events go.
    pub sink: &'a dyn Sink,
    /// Show a progress line (one connection on a terminal: several would overwrite it).
    pub progress: bool,
    /// Each folder's state as the server gave it at the start of the run (LIST-STATUS or
    /// STATUS), by wire name.
    pub statuses: &'a Statuses<'a>,
    /// The account's folders of this run, in order: the progress line says which of them
    /// it is at.
    pub folders: &'a [Mailbox],
}

impl Context<'_> {
    /// Begins the progress line of `mailbox`'s backup (`report.folder` names it), where
    /// one is shown.
    pub fn progress_begun(&self, mailbox: &Mailbox, report: &FolderReport) {
        if self.progress {
            let place = self.folders.iter().position(|m| m == mailbox).map(|k| (k + 1, self.folders.len()));
            self.sink.event(Event::ProgressBegun { account: self.account, folder: &report.folder, place });
        }
    }

    /// Says how many messages, of how many bytes in all, the progress line counts up to.
    pub fn progress_total(&self, total: usize, bytes: u64) {
        if self.progress {
            self.sink.event(Event::ProgressTotal { total, bytes });
        }
    }

    /// A message of `size` bytes was fetched (and handed to the writer).
    pub fn progress_tick(&self, size: u64) {
        if self.progress {
            self.sink.event(Event::ProgressTick { size });
        }
    }

    /// Takes the progress line off the terminal (a warning may follow; it comes back with
    /// the next message).
    pub fn progress_cleared(&self) {
        if self.progress {
            self.sink.event(Event::ProgressCleared);
        }
    }

    /// The UIDNEXT below which a pass that opened `mailbox` saw every message: the one its
    /// EXAMINE gave, else the one of the run's start (Courier gives UIDNEXT only in STATUS)
    /// when it is of the same UIDVALIDITY. That one is never too high: it was asked before
    /// the EXAMINE, and a message that arrived in between is looked at again next time.
    pub fn uidnext(&self, mailbox: &Mailbox, examined: &Examined) -> Option<u32> {
        examined.uid_next.or_else(|| {
            let status = self.statuses.get(&mailbox.wire)?;
            status.uidnext.filter(|_| status.uidvalidity.is_some() && status.uidvalidity == examined.uid_validity)
        })
    }
}

/// Where a folder's messages go: the root's records (shared by the connections of one
/// account) and the folder's user directory.
pub struct Place<'a> {
    /// The archive root's records.
    pub registry: &'a Mutex<Registry>,
    /// The account's user directory in the root.
    pub account_dir: &'a str,
}

impl Place<'_> {
    /// The records, locked for one short step.
    pub fn records(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The metadata journal of `mailbox` at `uidvalidity` (opened when first written).
    pub fn journal(&self, ctx: &Context<'_>, mailbox: &Mailbox, uidvalidity: u32) -> Journal {
        let root = self.records().root().to_path_buf();
        Journal::new(metadata::journal_path(&root, self.account_dir, &mailbox.wire, uidvalidity), ctx.keys.cloned())
    }
}

/// Counts the writer's outcomes in the report and records the stored messages' metadata
/// (their files are committed by now). Metadata that cannot be written is said once and
/// left out for the rest of the folder: the messages are safe, restore does without it.
pub(super) fn tally(
    ctx: &Context<'_>,
    report: &mut FolderReport,
    journal: &mut Option<Journal>,
    outcomes: Vec<Outcome>,
) {
    let mut entries = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Stored(entry) => {
                let (uid, size) = (entry.uid, entry.size);
                report.new += 1;
                report.bytes += size;
                ctx.sink.event(Event::Stored { account: ctx.account, folder: &report.folder, uid, size });
                entries.push(entry);
            }
            Outcome::Existing(_) => report.existing += 1,
        }
    }
    if let (false, Some(j)) = (entries.is_empty(), journal.as_mut()) {
        if let Err(e) = j.messages(&entries) {
            metadata_lost(ctx, report, journal, &e);
        }
    }
}

/// Has the folder's new metadata made durable before the folder is recorded complete:
/// with the journals of the other folders, when the marks are written (one commit for
/// all of them on a journaling file system, instead of one a folder).
pub(super) fn sync_journal(ctx: &Context<'_>, report: &FolderReport, place: &Place<'_>, journal: &mut Option<Journal>) {
    if let Some(Err(e)) = journal.as_mut().map(Journal::end_unsynced) {
        metadata_lost(ctx, report, journal, &e);
    }
    if let Some(j) = journal {
        place.records().sync_before_marks(j.path());
    }
}

pub(super) fn metadata_lost(ctx: &Context<'_>, report: &FolderReport, journal: &mut Option<Journal>, e: &Error) {
    ctx.sink.event(Event::MetadataNotKept { account: ctx.account, folder: &report.folder, error: e });
    *journal = None;
}

/// The archive files of `mailbox`'s folder directory (0 when it has none).
pub fn count_files(place: &Place<'_>, mailbox: &Mailbox) -> Result<usize> {
    let Some(dir) = place.records().folder_of(place.account_dir, mailbox).map(|r| r.dir.clone()) else {
        return Ok(0);
    };
    match place.records().open_beneath(&Path::new(place.account_dir).join(dir)) {
        Ok(dir) => Ok(archived_uids(&dir)?.len()),
        Err(_) => Ok(0),
    }
}

/// UIDs that have a file in the folder directory, in any form: one directory listing,
/// no file opened.
pub(super) fn archived_uids(dir: &Dir) -> Result<HashSet<u32>> {
    let mut uids = HashSet::new();
    dir.for_each_name(|name| {
        if let Some(uid) = ArchiveFile::from_path(PathBuf::from(name)).and_then(|f| f.uid) {
            uids.insert(uid);
        }
    })
    .at(dir.path())?;
    Ok(uids)
}

/// The writer of the messages of a folder opened for them, about `bytes` of them.
pub(super) fn writer_for(
    ctx: &Context<'_>,
    place: &Place<'_>,
    opened: &OpenFolder,
    bytes: Option<u64>,
) -> Result<MessageWriter> {
    let settings = Settings {
        dir: opened.dir.clone(),
        tmp_dir: place.records().tmp()?,
        form: ctx.account.form,
        level: ctx.account.level,
        keys: ctx.keys.cloned(),
    };
    MessageWriter::spawn(settings, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_cap_is_recognised() {
        assert!(over_cap(
            "the server hung up: \"[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)\""
        ));
        assert!(over_cap("[ALERT] Account exceeded command or bandwidth limits. (Failure)"));
        assert!(!over_cap("[ALERT] Too many simultaneous connections. (Failure)"));
    }
}
