//! Crash-safe file creation: write a temporary file beside the target, make its data
//! durable, then move it into place and sync the directory. A final name always holds a
//! whole file. Many small files are committed as a [`Batch`]: one filesystem sync for
//! all their data instead of one per file, which is what makes small messages fast.

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

/// Temporary files waiting to be made durable and named together.
#[derive(Default)]
pub struct Batch {
    pending: Vec<(TempFile, PathBuf)>,
}

impl Batch {
    /// Adds a complete temporary file that is to become `target`.
    pub fn push(&mut self, tmp: TempFile, target: PathBuf) {
        self.pending.push((tmp, target));
    }

    /// How many files wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no file waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Syncs the data of every waiting file, gives each its name and syncs the target
    /// directories. Returns, in order, each target and whether it was stored: `false`
    /// when it existed already and `replace` is off (that temporary file is removed).
    pub fn commit(&mut self, replace: bool) -> io::Result<Vec<(PathBuf, bool)>> {
        let pending = std::mem::take(&mut self.pending);
        sync_data(pending.iter().map(|(t, _)| &t.file))?;
        let mut done = Vec::with_capacity(pending.len());
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (mut tmp, target) in pending {
            let moved = if replace {
                fs::rename(&tmp.path, &target)
            } else {
                fs::hard_link(&tmp.path, &target).and_then(|()| fs::remove_file(&tmp.path))
            };
            match moved {
                Ok(()) => tmp.committed = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    done.push((target, false));
                    continue;
                }
                Err(e) => return Err(e),
            }
            let dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
            done.push((target, true));
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(done)
    }
}

/// Makes the data of `files` durable: one `syncfs` per filesystem they are on, which
/// costs one journal commit instead of one per file; `fsync` each where it is missing.
fn sync_data<'a>(files: impl Iterator<Item = &'a File>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let files: Vec<&File> = files.collect();
    let mut synced_devices: Vec<u64> = Vec::new();
    for f in &files {
        let dev = f.metadata()?.dev();
        if synced_devices.contains(&dev) {
            continue;
        }
        // SAFETY: syncfs only reads the descriptor, which is open for the call's duration.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOSYS) {
                return Err(err);
            }
            return files.iter().try_for_each(|f| f.sync_all());
        }
        synced_devices.push(dev);
    }
    Ok(())
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

    #[test]
    fn batch_commit() {
        let dir = std::env::temp_dir().join(format!("atomic-batch-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("2.mbox"), b"old").unwrap();
        let mut batch = Batch::default();
        for name in ["1.mbox", "2.mbox", "3.mbox"] {
            let t = TempFile::create_in(&dir, name, 0o600).unwrap();
            t.file().write_all(name.as_bytes()).unwrap();
            batch.push(t, dir.join(name));
        }
        assert_eq!(batch.len(), 3);
        let done = batch.commit(false).unwrap();
        assert_eq!(done.iter().map(|(_, stored)| *stored).collect::<Vec<_>>(), [true, false, true]);
        assert!(batch.is_empty());
        assert_eq!(fs::read(dir.join("1.mbox")).unwrap(), b"1.mbox");
        assert_eq!(fs::read(dir.join("2.mbox")).unwrap(), b"old", "an existing file is never replaced");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3, "no temporary file left");
        fs::remove_dir_all(&dir).unwrap();
    }
}
