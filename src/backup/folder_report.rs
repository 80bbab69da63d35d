//! What happened to one folder of a backup: its counts and its errors.

use std::time::Instant;

use crate::report::FolderFigures;

/// What happened to one folder.
#[derive(Debug)]
pub struct FolderReport {
    /// The folder's name, printable.
    pub folder: String,
    /// Messages archived by this run.
    pub new: usize,
    /// Messages archived before.
    pub existing: usize,
    /// Messages that could not be archived (the next run tries them again).
    pub failed: usize,
    /// Messages expunged between listing and fetching.
    pub vanished: usize,
    /// Messages of a previous UIDVALIDITY recognised under their new UIDs and linked from
    /// the archive, not fetched again (counted as already archived too).
    pub renumbered: usize,
    /// Archived messages known to have left the server (kept only in the archive).
    pub only_in_archive: u64,
    /// Of those, the ones this run found gone.
    pub left_server: usize,
    /// Message bytes archived by this run.
    pub bytes: u64,
    /// When the folder's backup began.
    pub started: Instant,
    /// What went wrong, for `--report`.
    pub errors: Vec<String>,
    /// Of `new`, the messages linked from Gmail's All Mail rather than downloaded.
    pub linked: usize,
    /// Gmail's download limit stopped the folder (and the account).
    pub capped: bool,
}

impl FolderReport {
    /// An empty report for `folder`, timed from now.
    pub fn new(folder: &str) -> FolderReport {
        FolderReport {
            folder: folder.to_string(),
            new: 0,
            existing: 0,
            failed: 0,
            vanished: 0,
            renumbered: 0,
            only_in_archive: 0,
            left_server: 0,
            bytes: 0,
            started: Instant::now(),
            errors: Vec::new(),
            linked: 0,
            capped: false,
        }
    }

    /// The figures `--report` gives.
    pub fn figures(&self) -> FolderFigures {
        FolderFigures {
            name: self.folder.clone(),
            new: self.new,
            archived: self.new + self.existing,
            failed: self.failed,
            bytes: self.bytes,
            seconds: self.started.elapsed().as_secs_f64(),
            errors: self.errors.clone(),
            only_in_archive: self.only_in_archive,
            left_server: self.left_server,
            pruned: None,
        }
    }
}
