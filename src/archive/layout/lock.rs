//! The archive root's lock file: one backup at a time per archive.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::os::file;

/// The lock file's name in the archive root.
pub const LOCK_FILE: &str = ".smailarchiver.lock";

/// A held lock; released when dropped (or when the process dies, as flock locks are).
#[derive(Debug)]
pub struct RootLock {
    _file: File,
}

impl RootLock {
    /// Takes the lock of `root`, or fails at once if another run holds it. The lock file is
    /// made when missing: call this once the account's server has been reached, so that a
    /// run that never logged in leaves nothing in the root.
    pub fn acquire(root: &Path) -> Result<RootLock> {
        let path = root.join(LOCK_FILE);
        // Never through a planted symlink (as root it would create a file anywhere); 0600
        // whatever the umask.
        let file = file::open_no_follow(OpenOptions::new().create(true).truncate(false).write(true).mode(0o600), &path)
            .map_err(|e| open_error(&path, &e))?;
        lock(root, &path, file).map(|file| RootLock { _file: file })
    }

    /// Fails at once, as [`RootLock::acquire`] would, if another run holds the lock of
    /// `root`; creates nothing and keeps no lock (the run takes it once logged in).
    pub fn check_free(root: &Path) -> Result<()> {
        let path = root.join(LOCK_FILE);
        match file::open_no_follow(OpenOptions::new().read(true), &path) {
            Ok(file) => lock(root, &path, file).map(drop),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(open_error(&path, &e)),
        }
    }
}

fn open_error(path: &Path, e: &std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Error::runtime(format!(
            "{} is a symbolic link, not the archive's lock file: refusing to follow it (remove it if you did not put it there)",
            path.display()
        )),
        _ => Error::runtime(format!("{}: {}", path.display(), crate::error::describe_io(e))),
    }
}

fn lock(root: &Path, path: &Path, file: File) -> Result<File> {
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::runtime(format!(
            "another smailarchiver run is using the archive {} (lock {} is held)",
            root.display(),
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(e).at(path),
    }
}
