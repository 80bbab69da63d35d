//! What a backup (and `--dry-run`, `--list-folders`' sibling) tells as it goes, for the
//! printers to word and `--report` to record.

use std::path::Path;

use super::folder_report::FolderReport;
use crate::account::Account;
use crate::error::Error;

/// One thing a backup has to tell. Events of an account carry it; events of a folder
/// its printable name too.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run could not begin (or go on) at all.
    Failed {
        /// What went wrong.
        error: &'a Error,
    },
    /// The sandbox could not be entered: no account is backed up.
    SandboxRefused {
        /// What went wrong.
        error: &'a Error,
        /// The accounts the run was to back up.
        accounts: &'a [&'a Account],
    },
    /// The sandbox is entered, but does not confine all it should (`status` says what).
    SandboxPartial {
        /// What the kernel enforces.
        status: &'a crate::sandbox::Status,
    },
    /// The backup of an account begins.
    AccountStarted {
        /// The account.
        account: &'a Account,
    },
    /// The account could not be backed up (or not to the end).
    AccountFailed {
        /// The account.
        account: &'a Account,
        /// What went wrong.
        error: &'a Error,
    },
    /// Something the account's OAuth 2.0 token source has to say.
    TokenWarning {
        /// The account.
        account: &'a Account,
        /// What the token source says.
        warning: &'a str,
    },
    /// The connection was lost and made again; `notice` says how.
    Reconnected {
        /// The account.
        account: &'a Account,
        /// What the session says of it.
        notice: &'a str,
    },
    /// This run made the account's key file (to keep a copy of; `sha`: and its .sha).
    KeyCreated {
        /// The account.
        account: &'a Account,
        /// The archive file.
        path: &'a Path,
        /// Whether a .sha file was made beside it.
        sha: bool,
    },
    /// The server is the same mailstore as the one archived for `was`: the archive in
    /// `dir` goes on.
    SameMailstore {
        /// The account.
        account: &'a Account,
        /// The user name (and server) it was archived as.
        was: &'a str,
        /// The folder directory.
        dir: &'a Path,
    },
    /// Connection `n` of the account was refused: the others carry on.
    ConnectionRefused {
        /// The account.
        account: &'a Account,
        /// Which connection of the account (1 is the first).
        n: usize,
        /// What went wrong.
        error: &'a Error,
    },
    /// A folder is done (or stopped).
    FolderDone {
        /// The account.
        account: &'a Account,
        /// The folder's report.
        report: &'a FolderReport,
    },
    /// A folder failed as a whole (`why`).
    FolderFailed {
        /// The account.
        account: &'a Account,
        /// The folder's report.
        report: &'a FolderReport,
        /// Why.
        why: &'a str,
    },
    /// A folder was not reached (Gmail's download limit): recorded, not said.
    FolderNotReached {
        /// The account.
        account: &'a Account,
        /// The folder's report.
        report: &'a FolderReport,
    },
    /// A folder's progress line begins (only where one is shown: one connection, not
    /// `--quiet`); `place` is which of the account's folders it is, of how many.
    ProgressBegun {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// Which of the account's folders it is, and of how many.
        place: Option<(usize, usize)>,
    },
    /// The messages the progress line counts up to: `total`, of `bytes` in all.
    ProgressTotal {
        /// How many in all.
        total: usize,
        /// Bytes, as the server counts them.
        bytes: u64,
    },
    /// A message was fetched: the progress line counts it.
    ProgressTick {
        /// Its size.
        size: u64,
    },
    /// The progress line is taken off the terminal (a warning may follow).
    ProgressCleared,
    /// A message was archived.
    Stored {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// The message's UID.
        uid: u32,
        /// Its size in bytes.
        size: u64,
    },
    /// A message is left out of this run (the next tries it again).
    LeftOut {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// The message's UID.
        uid: u32,
        /// Why.
        why: &'a str,
    },
    /// The server refused a batch of messages (`text`, its answer quoted).
    FetchRefused {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// The server's answer, quoted.
        text: &'a str,
    },
    /// A batch's answers broke a limit (`why`): its `count` messages are asked one at a time.
    OneAtATime {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// Why.
        why: &'a str,
        /// How many.
        count: usize,
    },
    /// The folder's metadata could not be written: the rest of the folder goes without.
    MetadataNotKept {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// The folder's UIDVALIDITY changed from `old` to `new`; the old archive went to
    /// `aside`; `found` of its `previous` messages were recognised in the new numbering.
    Renumbered {
        /// The folder's name, printable.
        folder: &'a str,
        /// The previous UIDVALIDITY.
        old: u32,
        /// The new UIDVALIDITY.
        new: u32,
        /// Messages recognised in the new numbering.
        found: usize,
        /// Messages of the previous UIDVALIDITY.
        previous: usize,
        /// Where the previous numbering's archive went.
        aside: &'a Path,
    },
    /// The messages of the previous UIDVALIDITY could not be recognised: fetched again.
    NotRecognised {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// An archive file of the previous UIDVALIDITY could not be read: not considered.
    NotConsidered {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// The archive file.
        path: &'a Path,
        /// What went wrong.
        error: &'a std::io::Error,
    },
    /// Gmail labels were recorded or changed for `count` messages.
    LabelsRecorded {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// How many.
        count: usize,
    },
    /// Gmail labels could not be recorded.
    LabelsNotKept {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// All Mail's labels could not be asked: the folders are archived as on any server.
    LabelsNotAsked {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// A folder could not be linked from All Mail: fetched as on any server.
    NotLinked {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// Gmail's download limit stopped the account after `bytes`; `not_reached` folders wait.
    Capped {
        /// The account.
        account: &'a Account,
        /// Bytes, as the server counts them.
        bytes: u64,
        /// Folders not reached.
        not_reached: usize,
    },
    /// The flags of a folder could not be refreshed.
    FlagsNotRefreshed {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// A folder's journal had `damaged` damaged records: left out, asked again.
    JournalRepaired {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// How many records were damaged.
        damaged: usize,
    },
    /// `left` archived messages left the server; `total` are now only in the archive.
    LeftServer {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: &'a str,
        /// Messages that left since the last run.
        left: usize,
        /// How many in all.
        total: u64,
    },
    /// The mailstore's evidence (how a later run recognises it) was not taken.
    EvidenceNotTaken {
        /// The account.
        account: &'a Account,
        /// What went wrong.
        error: &'a Error,
    },
    /// The server mishandles pipelining: later runs send one command at a time.
    Serial {
        /// The account.
        account: &'a Account,
    },
    /// That note could not be written.
    SerialNotKept {
        /// The account.
        account: &'a Account,
        /// What went wrong.
        error: &'a Error,
    },
    /// Verified prune went through a folder (in a dry run: would): what it removed (would
    /// remove) and what it kept, with the reasons.
    Pruned {
        /// The account.
        account: &'a Account,
        /// What came of it.
        outcome: &'a crate::prune::Outcome,
    },
    /// Prune of a folder (`None`: of the account) failed as a whole: nothing more of it was
    /// removed.
    PruneFailed {
        /// The account.
        account: &'a Account,
        /// The folder's name, printable.
        folder: Option<&'a str>,
        /// What went wrong.
        error: &'a Error,
    },
    /// The server cannot remove single messages: prune is refused for the account.
    PruneRefused {
        /// The account.
        account: &'a Account,
        /// Why.
        error: &'a Error,
    },
    /// The run is over (not said after an interrupt).
    Finished {
        /// What the run came to.
        summary: &'a super::Summary,
    },
    /// `--dry-run`: what a backup of a folder would fetch.
    WouldFetch {
        /// The account's label.
        account: &'a str,
        /// What it would fetch.
        planned: &'a Planned,
    },
    /// `--dry-run`: a folder that could not be counted.
    NotCounted {
        /// The account's label.
        account: &'a str,
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// `--dry-run`: an account that could not be counted.
    AccountNotCounted {
        /// The account's label.
        account: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// `--dry-run`: the account's total; `failed` folders could not be counted.
    WouldFetchAll {
        /// The account's label.
        account: &'a str,
        /// Messages it would fetch.
        messages: usize,
        /// Bytes, as the server counts them.
        bytes: u64,
        /// Folders that could not be counted.
        failed: usize,
    },
}

/// Where a backup's events go; called from several threads at once (one per connection).
pub trait Sink: for<'a> crate::events::Sink<Event<'a>> + Sync {}

impl<S: for<'a> crate::events::Sink<Event<'a>> + Sync + ?Sized> Sink for S {}

/// What a backup of one folder would fetch.
#[derive(Debug, PartialEq, Eq)]
pub struct Planned {
    /// The folder's name.
    pub folder: String,
    /// Messages to fetch.
    pub messages: usize,
    /// Their size, as the server announces it.
    pub bytes: u64,
    /// Messages already in the archive.
    pub archived: usize,
}
