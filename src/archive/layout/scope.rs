//! What a path given to `-r`, `--list` or `--verify` names: a folder directory, an
//! account's user directory, an archive root, or nothing of an archive. Each command
//! then does the whole of it or says what it expected; none does nothing silently.

use std::fs;
use std::path::{Path, PathBuf};

use crate::archive;
use crate::archive::layout::registry::{self, Registry};
use crate::error::{Error, IoContext, Result};

/// What a path is in an archive.
#[derive(Debug, PartialEq, Eq)]
pub enum Scope {
    /// A folder directory: archive files, or a folder the records know (its files all gone).
    Folder(PathBuf),
    /// A user directory: folder directories.
    Account(PathBuf),
    /// An archive root: user directories (in name order).
    Root {
        /// The root.
        root: PathBuf,
        /// Its user directories, in name order.
        accounts: Vec<PathBuf>,
    },
    /// Nothing of an archive.
    Empty(PathBuf),
}

/// One folder of a scope and its metadata journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderDir {
    /// The folder directory (it may be gone: a recorded folder whose files were deleted).
    pub dir: PathBuf,
    /// Its journal, when it has one.
    pub journal: Option<PathBuf>,
}

fn name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The parent of a directory given by the user (`.` for a bare name).
fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(q) if !q.as_os_str().is_empty() => q.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Subdirectories (not symlinks, not the tool's own directory) of `dir`, in name order.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_name() != crate::archive::layout::META_DIR && entry.file_type().at(&entry.path())?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `dir` is a user directory: a subdirectory holds UID-named archive files (other
/// `.mbox` files in a directory of their own are a restore's output, not a folder), or the records
/// of the root above it know it.
fn is_account(dir: &Path) -> Result<bool> {
    if subdirs(dir)?.iter().any(|d| archive::holds(d, |_| true)) {
        return Ok(true);
    }
    let root = parent(dir);
    Ok(Registry::read(&root).is_ok_and(|r| r.account_of(&name(dir)).is_some() || !r.folders_of(&name(dir)).is_empty()))
}

/// What `path` is (see [`Scope`]).
pub fn classify(path: &Path) -> Result<Scope> {
    if !path.is_dir() {
        return Err(Error::runtime(format!("{}: not a directory", path.display())));
    }
    // UID-named files make a folder; other `.mbox` files (a restore's output in a user
    // directory) only where nothing else is.
    if archive::holds(path, |_| true) || crate::archive::metadata::journal_of_dir(path).is_some() {
        return Ok(Scope::Folder(path.to_path_buf()));
    }
    if is_account(path)? {
        return Ok(Scope::Account(path.to_path_buf()));
    }
    let mut accounts = Vec::new();
    for d in subdirs(path)? {
        if is_account(&d)? {
            accounts.push(d);
        }
    }
    if !accounts.is_empty() || path.join(crate::archive::layout::META_DIR).is_dir() {
        return Ok(Scope::Root { root: path.to_path_buf(), accounts });
    }
    if archive::holds_any(path) {
        return Ok(Scope::Folder(path.to_path_buf()));
    }
    Ok(Scope::Empty(path.to_path_buf()))
}

/// The folders of the user directory `user_dir`: those on disk that hold archive files,
/// and those the records know (whose files may all be gone), each with its journal.
pub fn account_folders(user_dir: &Path) -> Result<Vec<FolderDir>> {
    let root = parent(user_dir);
    let account = name(user_dir);
    let records = Registry::read(&root).ok();
    let mut dirs: Vec<PathBuf> = subdirs(user_dir)?.into_iter().filter(|d| archive::holds(d, |_| true)).collect();
    if let Some(r) = &records {
        for f in r.folders_of(&account) {
            let dir = user_dir.join(&f.dir);
            if !dirs.contains(&dir) && journal_of(&root, &account, f).is_some() {
                dirs.push(dir);
            }
        }
    }
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let journal =
                records.as_ref().and_then(|r| journal_of(&root, &account, r.folder_at(&account, &name(&dir))?));
            FolderDir { dir, journal }
        })
        .collect())
}

fn journal_of(root: &Path, account: &str, f: &registry::FolderRecord) -> Option<PathBuf> {
    let path = crate::archive::metadata::journal_path(root, account, &f.mailbox.wire, f.uidvalidity?);
    path.is_file().then_some(path)
}

/// Every folder of a scope, with its journal.
pub fn folders(scope: &Scope) -> Result<Vec<FolderDir>> {
    Ok(match scope {
        Scope::Folder(dir) => {
            vec![FolderDir { dir: dir.clone(), journal: crate::archive::metadata::journal_of_dir(dir) }]
        }
        Scope::Account(user_dir) => account_folders(user_dir)?,
        Scope::Root { accounts, .. } => {
            let mut all = Vec::new();
            for a in accounts {
                all.extend(account_folders(a)?);
            }
            all
        }
        Scope::Empty(_) => Vec::new(),
    })
}

/// The error for a path that holds no archive: what was expected.
pub fn nothing_there(path: &Path) -> Error {
    Error::runtime(format!(
        "{}: no archive files (UID.mbox[.gz][.enc]) in it or below it: give an archive root, a user directory or a folder directory",
        path.display()
    ))
}
