//! How a run tells what happens. Library code hands what it has to say to a [`Sink`], and
//! `app`, the one place that prints, decides how it looks and where it goes.

/// Output settings shared by every mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// Only errors.
    pub quiet: bool,
    /// One line per message.
    pub verbose: bool,
}

/// Where a run's messages go. Called from several threads at once (one per connection).
pub trait Sink: Events {
    /// A result line, such as a folder's summary (left out with `--quiet`).
    fn result(&self, text: &str);
    /// A detail, such as one line per message (only with `--verbose`).
    fn detail(&self, text: &str);
    /// A problem that did not stop the run (always shown).
    fn warning(&self, text: &str);
    /// A remark on how the run goes, such as a refused extra connection (only with
    /// `--verbose`).
    fn remark(&self, text: &str);
    /// Something failed (always shown).
    fn error(&self, text: &str);
}

/// One folder's figures once it is done (or stopped), for `--report`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FolderFigures {
    /// The folder's name, printable.
    pub name: String,
    /// Messages archived by this run.
    pub new: usize,
    /// Messages its archive holds now (this run's and earlier runs').
    pub archived: usize,
    /// Messages that could not be archived (the next run tries them again).
    pub failed: usize,
    /// Message bytes archived by this run.
    pub bytes: u64,
    /// How long it took.
    pub seconds: f64,
    /// What went wrong with it, one line each.
    pub errors: Vec<String>,
    /// Archived messages known to have left the server (kept only in the archive).
    pub only_in_archive: u64,
    /// Of those, the ones this run found gone.
    pub left_server: usize,
    /// What verified prune did to it, when it ran.
    pub pruned: Option<PruneFigures>,
}

/// What verified prune did to one folder, for `--report`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneFigures {
    /// Old messages removed from the server.
    pub removed: usize,
    /// Old messages kept there.
    pub kept: usize,
    /// The kept ones by reason (`flagged`, `not_archived`, `damaged`, ...).
    pub kept_by_reason: Vec<(String, usize)>,
    /// The kept ones whose reason is a problem (a damaged copy, a refusal), one line
    /// each: `UID 7: its archived file is damaged: ...`.
    pub problems: Vec<String>,
}

/// What a backup tells about its progress beyond text, for `--report` and the line an
/// interrupted run ends with. Called from several threads at once; the default is to
/// ignore it.
pub trait Events: Sync {
    /// The backup of an account (`user` at `server`, as configured) begins.
    fn account_started(&self, _user: &str, _server: &str) {}
    /// A folder of the account is done.
    fn folder_done(&self, _user: &str, _server: &str, _figures: FolderFigures) {}
    /// The account could not be backed up (or not to the end).
    fn account_failed(&self, _user: &str, _server: &str, _error: &str) {}
    /// A message of `bytes` bytes was archived.
    fn message_stored(&self, _bytes: u64) {}
    /// `left` archived messages of the folder `folder` (after its `folder_done`) were found
    /// to have left the server; `total` of its messages are now only in the archive.
    fn folder_gone(&self, _user: &str, _server: &str, _folder: &str, _left: usize, _total: u64) {}
    /// Verified prune went through the folder `folder` (after its `folder_done`).
    fn folder_pruned(&self, _user: &str, _server: &str, _folder: &str, _figures: PruneFigures) {}
}
