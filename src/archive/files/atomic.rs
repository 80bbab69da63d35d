//! Crash-safe file creation: write a temporary file beside the target, make its data
//! durable, then move it into place and sync the directory. A final name always holds a
//! whole file. Many small files are committed as a [`Batch`]: their writeback is started
//! together and each directory is synced once, which is what makes small messages fast.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::os::dir::Dir;
use crate::os::file::{self, sync_dir};

/// Temporary files start with this, so a later run can recognise and remove leftovers.
pub const TEMP_PREFIX: &str = ".smailarchiver-tmp-";

/// A temporary file that gets its final name on [`TempFile::commit`], or vanishes on drop.
/// It is made, named and removed through its directory's descriptor, never through a
/// symlink.
pub struct TempFile {
    dir: Arc<Dir>,
    name: String,
    path: PathBuf,
    file: File,
    committed: bool,
}

impl TempFile {
    /// Creates a temporary file (mode `mode`) in the directory at `dir`, named after
    /// `target_name`.
    pub fn create_in(dir: &Path, target_name: &str, mode: u32) -> io::Result<TempFile> {
        TempFile::create_at(&Arc::new(Dir::open(dir)?), target_name, mode)
    }

    /// Creates a temporary file (mode `mode`) in the open directory `dir`.
    pub fn create_at(dir: &Arc<Dir>, target_name: &str, mode: u32) -> io::Result<TempFile> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{TEMP_PREFIX}{}.{n}.{target_name}", std::process::id());
        let file = dir.create_new(&name, mode)?;
        let path = dir.path().join(&name);
        // A run ended by a signal removes it too.
        crate::interrupt::track(&path);
        Ok(TempFile { dir: dir.clone(), name, path, file, committed: false })
    }

    /// The open file, for writing.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the data and moves the file to `target`; refuses to replace an existing file
    /// unless `replace`. The target's directory is synced so the name survives a crash.
    pub fn commit(self, target: &Path, replace: bool) -> io::Result<()> {
        let (dir, name) = open_parent(target)?;
        self.commit_at(&dir, &name, replace)
    }

    /// [`TempFile::commit`] to the name `name` in the open directory `dir`.
    pub fn commit_at(mut self, dir: &Dir, name: &str, replace: bool) -> io::Result<()> {
        self.file.sync_all()?;
        self.name_it(dir, name, replace)?;
        dir.sync()
    }

    /// Gives the file its final name; with `replace` off, `link()` fails when the name
    /// is taken, so a concurrent writer is never clobbered.
    fn name_it(&mut self, dir: &Dir, name: &str, replace: bool) -> io::Result<()> {
        if replace {
            self.dir.rename(&self.name, dir, name)?;
        } else {
            self.dir.link(&self.name, dir, name)?;
            self.dir.remove_file(&self.name)?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.dir.remove_file(&self.name);
        }
        crate::interrupt::untrack(&self.path);
    }
}

/// The directory of `target`, opened, and `target`'s file name.
fn open_parent(target: &Path) -> io::Result<(Arc<Dir>, String)> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok((Arc::new(Dir::open(parent)?), name))
}

/// Temporary files waiting to be made durable and named together.
#[derive(Default)]
pub struct Batch {
    pending: Vec<(TempFile, Arc<Dir>, String)>,
}

impl Batch {
    /// Adds a complete temporary file that is to become `target`.
    pub fn push(&mut self, tmp: TempFile, target: PathBuf) -> io::Result<()> {
        // Most files of a batch go to one directory: opened once.
        let same = self.pending.last().filter(|(_, d, _)| target.parent() == Some(d.path())).map(|(_, d, _)| d.clone());
        let (dir, name) = match same {
            Some(dir) => (dir, target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
            None => open_parent(&target)?,
        };
        self.pending.push((tmp, dir, name));
        Ok(())
    }

    /// Adds a complete temporary file that is to become `name` in the open directory `dir`.
    pub fn push_at(&mut self, tmp: TempFile, dir: Arc<Dir>, name: String) {
        self.pending.push((tmp, dir, name));
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
        file::sync_data_together(pending.iter().map(|(t, _, _)| &t.file))?;
        let mut done = Vec::with_capacity(pending.len());
        let mut dirs: Vec<Arc<Dir>> = Vec::new();
        for (mut tmp, dir, name) in pending {
            let target = dir.path().join(&name);
            match tmp.name_it(&dir, &name, replace) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    done.push((target, false));
                    continue;
                }
                Err(e) => return Err(e),
            }
            if !dirs.iter().any(|d| Arc::ptr_eq(d, &dir)) {
                dirs.push(dir);
            }
            done.push((target, true));
        }
        for dir in dirs {
            dir.sync()?;
        }
        Ok(done)
    }
}

/// The directory a file is in (`.` for a bare name): where its temporary file goes.
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes `dir` and its missing parents (mode 0700 whatever the umask), each made durable
/// in its parent; a symlink or a file where a directory should be is refused, never
/// followed (the tool's directories beneath an archive root).
pub fn make_dirs(dir: &Path) -> crate::error::Result<()> {
    use crate::error::IoContext;
    if dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dirs(parent)?;
    }
    make_dir(dir)?;
    sync_dir(parent_of(dir)).at(dir)
}

/// Makes the directory `path` (mode 0700) unless a directory is there.
fn make_dir(path: &Path) -> crate::error::Result<()> {
    use crate::error::{Error, IoContext};
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let is_dir = || path.symlink_metadata().is_ok_and(|m| m.is_dir());
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::runtime(format!(
            "{} is not a directory (a symlink or a file): refusing to write through it",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::DirBuilder::new().mode(0o700).create(path) {
            // The umask may have taken bits away; none may be added.
            Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(0o700)).at(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_dir() => Ok(()),
            Err(e) => Err(e).at(path),
        },
        Err(e) => Err(e).at(path),
    }
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
            batch.push(t, dir.join(name)).unwrap();
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
