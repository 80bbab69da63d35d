//! What an upload tells as it goes, for the printers to word.

use std::path::Path;

use super::FolderUpload;
use crate::error::Error;

/// One thing an upload has to tell.
#[derive(Debug)]
pub enum Event<'a> {
    /// The connection to `server` (host:port) was lost and made again; `notice` says how.
    Reconnected { server: &'a str, notice: &'a str },
    /// The target will not say its hierarchy (`error`): folder names go as they are.
    NoHierarchy { error: &'a Error },
    /// The folder's metadata journal could not be read: no flags and arrival times.
    NoMetadata { folder: &'a str, error: &'a Error },
    /// An archive file that could not be read (or changed while it was sent) is left out.
    LeftOut { path: &'a Path, why: &'a str },
    /// The server refused a message; `text` is its answer, quoted.
    Refused { path: &'a Path, text: &'a str },
    /// A message was stored at the target.
    Uploaded { path: &'a Path },
    /// `count` messages sent on a lost connection are not at the target: sent again.
    Resending { folder: &'a str, count: usize },
    /// The copies this run made twice were removed (`uids`, as an IMAP set).
    RemovedTwice { folder: &'a str, uids: &'a str },
    /// Copies this run made twice are left at `uids`: the server refused to remove them
    /// (`refused`, its answer quoted), or cannot remove single messages (no UIDPLUS).
    LeftTwice { folder: &'a str, uids: &'a str, refused: Option<&'a str> },
    /// A Gmail label's folder: its messages go with All Mail's, labelled.
    GmailLabel { folder: &'a str },
    /// Gmail labels were set on `count` messages of All Mail.
    LabelsSet { folder: &'a str, count: usize },
    /// Setting the Gmail labels of the folder failed.
    LabelsNotSet { folder: &'a str, error: &'a Error },
    /// Waiting `seconds` for what lost connections sent to land, before looking for it.
    Waiting { seconds: f64 },
    /// A folder is done.
    FolderDone { folder: &'a str, upload: &'a FolderUpload },
    /// A folder could not be uploaded.
    FolderFailed { folder: &'a str, error: &'a Error },
}

/// Where an upload's events go.
pub trait Sink: for<'a> crate::events::Sink<Event<'a>> {}

impl<S: for<'a> crate::events::Sink<Event<'a>> + ?Sized> Sink for S {}
