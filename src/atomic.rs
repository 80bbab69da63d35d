//! Crash-safe file creation: write a temporary file beside the target, fsync it, then
//! move it into place and fsync the directory. A final name always holds a whole file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Temporary files start with this, so a later run can recognise and remove leftovers.
pub const TEMP_PREFIX: &str = ".smailarchiver-tmp-";

/// A temporary file that becomes `target` on [`TempFile::commit`], or vanishes on drop.
pub struct TempFile {
    path: PathBuf,
    file: File,
    committed: bool,
}

impl TempFile {
    /// Creates a temporary file (mode `mode`) in `dir`, named after `target_name`.
    pub fn create_in(dir: &Path, target_name: &str, mode: u32) -> io::Result<TempFile> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{}.{n}.{target_name}", std::process::id()));
        let file = OpenOptions::new().write(true).read(true).create_new(true).mode(mode).open(&path)?;
        Ok(TempFile { path, file, committed: false })
    }

    /// The open file, for writing.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data and moves the file to `target`; refuses to replace an existing file
    /// unless `replace`. The target's directory is synced so the name survives a crash.
    pub fn commit(mut self, target: &Path, replace: bool) -> io::Result<()> {
        self.file.sync_all()?;
        if replace {
            fs::rename(&self.path, target)?;
        } else {
            // link() fails when the target exists, so a concurrent writer is never clobbered.
            fs::hard_link(&self.path, target)?;
            fs::remove_file(&self.path)?;
        }
        self.committed = true;
        sync_dir(target.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Flushes a directory's entries to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir)?.sync_all()
}

/// Removes temporary files a crashed run left in `dir`; returns how many.
pub fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_and_drop() {
        let dir = std::env::temp_dir().join(format!("atomic-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("a.mbox");
        let t = TempFile::create_in(&dir, "a.mbox", 0o600).unwrap();
        t.file().write_all(b"hello").unwrap();
        t.commit(&target, false).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        let t = TempFile::create_in(&dir, "a.mbox", 0o600).unwrap();
        let err = t.commit(&target, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let t = TempFile::create_in(&dir, "b.mbox", 0o600).unwrap();
        let temp = t.path().to_path_buf();
        drop(t);
        assert!(!temp.exists());
        std::mem::forget(TempFile::create_in(&dir, "c.mbox", 0o600).unwrap());
        assert_eq!(remove_leftovers(&dir).unwrap(), 1);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
