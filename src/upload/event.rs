//! What an upload tells as it goes, for the printers to word.

use std::path::Path;

use super::FolderUpload;
use crate::error::Error;

/// One thing an upload has to tell.
#[derive(Debug)]
pub enum Event<'a> {
    /// The connection to `server` (host:port) was lost and made again; `notice` says how.
    Reconnected {
        /// The server, host:port.
        server: &'a str,
        /// What the session says of it.
        notice: &'a str,
    },
    /// The target will not say its hierarchy (`error`): folder names go as they are.
    NoHierarchy {
        /// What went wrong.
        error: &'a Error,
    },
    /// The folder's metadata journal could not be read: no flags and arrival times.
    NoMetadata {
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// An archive file that could not be read (or changed while it was sent) is left out.
    LeftOut {
        /// The archive file.
        path: &'a Path,
        /// Why.
        why: &'a str,
    },
    /// The server refused a message; `text` is its answer, quoted.
    Refused {
        /// The archive file.
        path: &'a Path,
        /// The server's answer, quoted.
        text: &'a str,
    },
    /// A message was stored at the target.
    Uploaded {
        /// The archive file.
        path: &'a Path,
    },
    /// `count` messages sent on a lost connection are not at the target: sent again.
    Resending {
        /// The folder's name, printable.
        folder: &'a str,
        /// How many.
        count: usize,
    },
    /// The copies this run made twice were removed (`uids`, as an IMAP set).
    RemovedTwice {
        /// The folder's name, printable.
        folder: &'a str,
        /// Their UIDs, as an IMAP set.
        uids: &'a str,
    },
    /// Copies this run made twice are left at `uids`: the server refused to remove them
    /// (`refused`, its answer quoted), or cannot remove single messages (no UIDPLUS).
    LeftTwice {
        /// The folder's name, printable.
        folder: &'a str,
        /// Their UIDs, as an IMAP set.
        uids: &'a str,
        /// The server's answer when it refused to remove them.
        refused: Option<&'a str>,
    },
    /// A Gmail label's folder: its messages go with All Mail's, labelled.
    GmailLabel {
        /// The folder's name, printable.
        folder: &'a str,
    },
    /// Gmail labels were set on `count` messages of All Mail.
    LabelsSet {
        /// The folder's name, printable.
        folder: &'a str,
        /// How many.
        count: usize,
    },
    /// Setting the Gmail labels of the folder failed.
    LabelsNotSet {
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
    /// Waiting `seconds` for what lost connections sent to land, before looking for it.
    Waiting {
        /// How long, in whole seconds.
        seconds: f64,
    },
    /// A folder is done.
    FolderDone {
        /// The folder's name, printable.
        folder: &'a str,
        /// What the folder's upload came to.
        upload: &'a FolderUpload,
    },
    /// A folder could not be uploaded.
    FolderFailed {
        /// The folder's name, printable.
        folder: &'a str,
        /// What went wrong.
        error: &'a Error,
    },
}

/// Where an upload's events go.
pub trait Sink: for<'a> crate::events::Sink<Event<'a>> {}

impl<S: for<'a> crate::events::Sink<Event<'a>> + ?Sized> Sink for S {}
