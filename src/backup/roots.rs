//! The archive roots of a run: the ones it made (with their missing parents), and their
//! locks. A root is claimed, its lock file made and taken, only once an account of it has
//! logged in; a root the run made for accounts that never did is removed again at the end
//! (by the [`Janitor`], forked before the sandbox closes, since the sandbox confines the run
//! to the root itself). So a run that never reached its server leaves nothing behind: no
//! root, no tool directory, no lock file; in a root that existed, nothing new.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::archive::layout::lock::RootLock;
use crate::error::{Error, IoContext, Result};
use crate::janitor::Janitor;

/// The roots of a run.
#[derive(Default)]
pub struct Roots {
    roots: Vec<Root>,
    janitor: Option<Janitor>,
}

struct Root {
    /// The real path (symlinks resolved), as the sandbox knows it.
    path: PathBuf,
    /// Directories this run made for it, parents first (real paths).
    made: Vec<PathBuf>,
    /// Taken once an account of it logged in.
    lock: Option<RootLock>,
}

impl Roots {
    /// Makes the archive root `root` unless it exists (mode 0700 when new: it holds mail,
    /// with any missing parents, each made durable in its parent) and checks that no other
    /// run holds its lock, creating nothing in it. Returns its real path.
    pub fn prepare(&mut self, root: &Path) -> Result<PathBuf> {
        let made = make_root(root)?;
        let path = root.canonicalize().at(root)?;
        let index = match self.roots.iter().position(|r| r.path == path) {
            Some(i) => i,
            None => {
                let made = made.iter().filter_map(|p| p.canonicalize().ok()).collect();
                self.roots.push(Root { path: path.clone(), made, lock: None });
                self.roots.len() - 1
            }
        };
        if self.roots[index].lock.is_none() {
            RootLock::check_free(&path)?;
        }
        Ok(path)
    }

    /// The roots, for the sandbox's rules.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.roots.iter().map(|r| r.path.clone()).collect()
    }

    /// Starts the janitor, when the run made a root: call it before the sandbox closes.
    pub fn start_janitor(&mut self) -> Result<()> {
        if self.roots.iter().any(|r| !r.made.is_empty()) && self.janitor.is_none() {
            let made: Vec<Vec<PathBuf>> = self.roots.iter().map(|r| r.made.clone()).collect();
            self.janitor = Some(Janitor::start(&made)?);
        }
        Ok(())
    }

    /// Claims `root` for the run, once an account of it logged in: takes its lock (making
    /// the lock file). Another run that took it meanwhile makes this an error.
    pub fn claim(&mut self, root: &Path) -> Result<()> {
        let Some(r) = self.roots.iter_mut().find(|r| r.path == root) else {
            return Err(Error::runtime(format!("{} is not a root of this run", root.display())));
        };
        if r.lock.is_none() {
            r.lock = Some(RootLock::acquire(&r.path)?);
        }
        Ok(())
    }
}

impl Drop for Roots {
    /// Removes what was made for roots never claimed; releases the locks.
    fn drop(&mut self) {
        let undo: Vec<bool> = self.roots.iter().map(|r| r.lock.is_none() && !r.made.is_empty()).collect();
        match self.janitor.take() {
            Some(janitor) => janitor.finish(&undo),
            None => {
                for (r, _) in self.roots.iter().zip(&undo).filter(|(_, &u)| u) {
                    for dir in r.made.iter().rev() {
                        let _ = std::fs::remove_dir(dir);
                    }
                }
            }
        }
    }
}

/// Makes `root` and its missing parents (mode 0700), each made durable in its parent;
/// returns the directories made, parents first.
fn make_root(root: &Path) -> Result<Vec<PathBuf>> {
    if root.is_dir() {
        return Ok(Vec::new());
    }
    // "File exists" / "Not a directory" would not say which setting is wrong.
    let not_dir = |what: &str| {
        Error::runtime(format!(
            "the archive directory {} {what} (see --dir, or \"archive_dir\" in the config)",
            root.display()
        ))
    };
    if root.exists() {
        return Err(not_dir("is a file, not a directory"));
    }
    let absolute = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir().doing("finding the current directory")?.join(root)
    };
    let mut missing = Vec::new();
    let mut at = absolute.as_path();
    while at.symlink_metadata().is_err() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => break,
        }
    }
    let mut made = Vec::new();
    for dir in missing.into_iter().rev() {
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => continue,
            Err(e) => {
                // Nothing half made is left behind.
                for d in made.iter().rev() {
                    let _ = std::fs::remove_dir(d);
                }
                return Err(if e.kind() == std::io::ErrorKind::NotADirectory {
                    not_dir("cannot be made: part of its path is a file")
                } else {
                    Error::runtime(format!("{}: {}", root.display(), crate::error::describe_io(&e)))
                });
            }
        }
        made.push(dir.clone());
        if let Some(parent) = dir.parent() {
            crate::os::file::sync_dir(parent).at(parent)?;
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_never_claimed_is_removed_with_the_parents_made_for_it() {
        let base = std::env::temp_dir().join(format!("roots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("kept")).unwrap();
        let mut roots = Roots::default();
        let fresh = roots.prepare(&base.join("new/deeper/root")).unwrap();
        let existing = roots.prepare(&base.join("kept")).unwrap();
        let claimed = roots.prepare(&base.join("claimed")).unwrap();
        assert!(
            fresh.is_dir() && !fresh.join(crate::archive::layout::lock::LOCK_FILE).exists(),
            "no lock file before a login"
        );
        roots.claim(&claimed).unwrap();
        drop(roots);
        assert!(!base.join("new").exists(), "the root and the parents made for it are gone");
        assert!(existing.is_dir() && std::fs::read_dir(&existing).unwrap().next().is_none(), "nothing left in it");
        assert!(claimed.join(crate::archive::layout::lock::LOCK_FILE).is_file(), "a claimed root stays");
        let e = make_root(&claimed.join(crate::archive::layout::lock::LOCK_FILE).join("x")).unwrap_err().to_string();
        assert!(e.contains("part of its path is a file"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
