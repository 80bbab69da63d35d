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
    Failed { error: &'a Error },
    /// The sandbox could not be entered: no account is backed up.
    SandboxRefused { error: &'a Error, accounts: &'a [&'a Account] },
    /// The sandbox is entered, but does not confine all it should (`status` says what).
    SandboxPartial { status: &'a crate::sandbox::Status },
    /// The backup of an account begins.
    AccountStarted { account: &'a Account },
    /// The account could not be backed up (or not to the end).
    AccountFailed { account: &'a Account, error: &'a Error },
    /// Something the account's OAuth 2.0 token source has to say.
    TokenWarning { account: &'a Account, warning: &'a str },
    /// The connection was lost and made again; `notice` says how.
    Reconnected { account: &'a Account, notice: &'a str },
    /// This run made the account's key file (to keep a copy of; `sha`: and its .sha).
    KeyCreated { account: &'a Account, path: &'a Path, sha: bool },
    /// The server is the same mailstore as the one archived for `was`: the archive in
    /// `dir` goes on.
    SameMailstore { account: &'a Account, was: &'a str, dir: &'a Path },
    /// Connection `n` of the account was refused: the others carry on.
    ConnectionRefused { account: &'a Account, n: usize, error: &'a Error },
    /// A folder is done (or stopped).
    FolderDone { account: &'a Account, report: &'a FolderReport },
    /// A folder failed as a whole (`why`).
    FolderFailed { account: &'a Account, report: &'a FolderReport, why: &'a str },
    /// A folder was not reached (Gmail's download limit): recorded, not said.
    FolderNotReached { account: &'a Account, report: &'a FolderReport },
    /// A folder's progress line begins (only where one is shown: one connection, not
    /// `--quiet`); `place` is which of the account's folders it is, of how many.
    ProgressBegun { account: &'a Account, folder: &'a str, place: Option<(usize, usize)> },
    /// The messages the progress line counts up to: `total`, of `bytes` in all.
    ProgressTotal { total: usize, bytes: u64 },
    /// The progress line is taken off the terminal (a warning may follow).
    ProgressCleared,
    /// A message was archived.
    Stored { account: &'a Account, folder: &'a str, uid: u32, size: u64 },
    /// A message is left out of this run (the next tries it again).
    LeftOut { account: &'a Account, folder: &'a str, uid: u32, why: &'a str },
    /// The server refused a batch of messages (`text`, its answer quoted).
    FetchRefused { account: &'a Account, folder: &'a str, text: &'a str },
    /// A batch's answers broke a limit (`why`): its `count` messages are asked one at a time.
    OneAtATime { account: &'a Account, folder: &'a str, why: &'a str, count: usize },
    /// The folder's metadata could not be written: the rest of the folder goes without.
    MetadataNotKept { account: &'a Account, folder: &'a str, error: &'a Error },
    /// The folder's UIDVALIDITY changed from `old` to `new`; the old archive went to
    /// `aside`; `found` of its `previous` messages were recognised in the new numbering.
    Renumbered { folder: &'a str, old: u32, new: u32, found: usize, previous: usize, aside: &'a Path },
    /// The messages of the previous UIDVALIDITY could not be recognised: fetched again.
    NotRecognised { account: &'a Account, folder: &'a str, error: &'a Error },
    /// An archive file of the previous UIDVALIDITY could not be read: not considered.
    NotConsidered { account: &'a Account, folder: &'a str, path: &'a Path, error: &'a std::io::Error },
    /// Gmail labels were recorded or changed for `count` messages.
    LabelsRecorded { account: &'a Account, folder: &'a str, count: usize },
    /// Gmail labels could not be recorded.
    LabelsNotKept { account: &'a Account, folder: &'a str, error: &'a Error },
    /// All Mail's labels could not be asked: the folders are archived as on any server.
    LabelsNotAsked { account: &'a Account, folder: &'a str, error: &'a Error },
    /// A folder could not be linked from All Mail: fetched as on any server.
    NotLinked { account: &'a Account, folder: &'a str, error: &'a Error },
    /// Gmail's download limit stopped the account after `bytes`; `not_reached` folders wait.
    Capped { account: &'a Account, bytes: u64, not_reached: usize },
    /// The flags of a folder could not be refreshed.
    FlagsNotRefreshed { account: &'a Account, folder: &'a str, error: &'a Error },
    /// A folder's journal had `damaged` damaged records: left out, asked again.
    JournalRepaired { account: &'a Account, folder: &'a str, damaged: usize },
    /// `left` archived messages left the server; `total` are now only in the archive.
    LeftServer { account: &'a Account, folder: &'a str, left: usize, total: u64 },
    /// The mailstore's evidence (how a later run recognises it) was not taken.
    EvidenceNotTaken { account: &'a Account, error: &'a Error },
    /// The server mishandles pipelining: later runs send one command at a time.
    Serial { account: &'a Account },
    /// That note could not be written.
    SerialNotKept { account: &'a Account, error: &'a Error },
    /// The run is over (not said after an interrupt).
    Finished { summary: &'a super::Summary },
    /// `--dry-run`: what a backup of a folder would fetch.
    WouldFetch { account: &'a str, planned: &'a Planned },
    /// `--dry-run`: a folder that could not be counted.
    NotCounted { account: &'a str, folder: &'a str, error: &'a Error },
    /// `--dry-run`: an account that could not be counted.
    AccountNotCounted { account: &'a str, error: &'a Error },
    /// `--dry-run`: the account's total; `failed` folders could not be counted.
    WouldFetchAll { account: &'a str, messages: usize, bytes: u64, failed: usize },
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
