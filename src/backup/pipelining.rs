//! What the archive remembers of a server that mishandles pipelined commands: once a run
//! found out (see [`crate::imap::ImapError::Garbled`]), later runs of the account send one
//! command at a time from their first connection, and pay no reconnect to learn it again.
//! The note is an empty file `ROOT/.smailarchiver/one-command-at-a-time/ACCOUNT_DIR`;
//! removing it lets the next run try pipelining again.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::archive::files::atomic;
use crate::archive::layout::META_DIR;
use crate::error::{IoContext, Result};
use crate::os::file;

/// The directory of the notes.
const DIR: &str = "one-command-at-a-time";

fn note(root: &Path, account_dir: &str) -> PathBuf {
    root.join(META_DIR).join(DIR).join(account_dir)
}

/// Whether an earlier run found that the account's server mishandles pipelining.
pub fn remembered(root: &Path, account_dir: &str) -> bool {
    std::fs::symlink_metadata(note(root, account_dir)).is_ok_and(|m| m.is_file())
}

/// Notes that the account's server mishandles pipelining.
pub fn remember(root: &Path, account_dir: &str) -> Result<()> {
    let path = note(root, account_dir);
    atomic::make_dirs(atomic::parent_of(&path))?;
    file::open_no_follow(OpenOptions::new().write(true).create(true).truncate(false).mode(0o600), &path).at(&path)?;
    Ok(())
}
