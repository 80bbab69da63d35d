//! The folder directories of a user directory, each with what the archive root's records
//! say of it (its mailbox, whether it was moved aside, its journal), and the hierarchy of
//! the server they came from: what restore and upload take an account's folders from.
//! Archives of the original program have no records: their directory names stand in.

use std::fs;
use std::path::{Path, PathBuf};

use crate::archive;
use crate::archive::layout::registry::Registry;
use crate::error::{IoContext, Result};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name::{encode_utf7, Mailbox};
use crate::os::dir::Dir;

/// Folder directories listed at most while looking for archived messages to sample.
const LOOKED_AT: usize = 20;

/// One folder directory of an account and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// The folder directory.
    pub dir: PathBuf,
    /// The mailbox, when the records know it.
    pub mailbox: Option<Mailbox>,
    /// The UIDVALIDITY of a directory moved aside when its mailbox's changed.
    pub retired: Option<u32>,
    /// Its metadata journal, when it has one.
    pub journal: Option<PathBuf>,
}

impl Folder {
    /// The real mailbox name (the directory's name when the records do not know it);
    /// a directory moved aside says which UIDVALIDITY it holds.
    pub fn name(&self) -> String {
        let base = match &self.mailbox {
            Some(m) => m.name(),
            None => self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        match self.retired {
            Some(v) => format!("{base} (UIDVALIDITY {v})"),
            None => base,
        }
    }

    /// The name for output, escaped.
    pub fn shown(&self) -> String {
        crate::printable::escape(&self.name())
    }
}

/// Whether `dir` is a user directory (folder directories with archive files below it)
/// rather than a folder directory.
pub fn is_account_dir(dir: &Path) -> Result<bool> {
    Ok(!archive::holds(dir, |_| true) && !folder_dirs(dir)?.is_empty())
}

/// The folder directories of a user directory with what the records say of them, in name
/// order. The records are read from the root above it; when they cannot be read, the
/// directory names stand in and the reason is returned beside them.
pub fn folders(user_dir: &Path) -> Result<(Vec<Folder>, Option<String>)> {
    let dirs = folder_dirs(user_dir)?;
    let account = user_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let root = user_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (registry, problem) = match Registry::read(root) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut out: Vec<Folder> = dirs
        .into_iter()
        .map(|dir| {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let record = registry.as_ref().and_then(|r| r.folder_at(&account, &name));
            let journal = record
                .and_then(|r| {
                    Some(crate::archive::metadata::journal_path(root, &account, &r.mailbox.wire, r.uidvalidity?))
                })
                .filter(|p| p.is_file());
            Folder {
                mailbox: record.map(|r| r.mailbox.clone()),
                retired: record.filter(|r| r.retired).and_then(|r| r.uidvalidity),
                dir,
                journal,
            }
        })
        .collect();
    out.sort_by_key(|f| f.name());
    Ok((out, problem))
}

/// The real name of the folder directory `dir`, when the records of its root know it.
pub fn folder_name(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let user_dir = dir.parent()?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let records = Registry::read(user_dir.parent()?).ok()?;
    let record = records.folder_at(&name(user_dir)?, &name(&dir)?)?;
    let folder = Folder {
        mailbox: Some(record.mailbox.clone()),
        retired: record.uidvalidity.filter(|_| record.retired),
        dir: dir.clone(),
        journal: None,
    };
    Some(folder.name())
}

/// Subdirectories (not symlinks) of `user_dir` that hold archive files.
fn folder_dirs(user_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(user_dir).at(user_dir)? {
        let entry = entry.at(user_dir)?;
        if entry.file_name() == crate::archive::layout::META_DIR || !entry.file_type().at(&entry.path())?.is_dir() {
            continue;
        }
        if archive::holds(&entry.path(), |_| true) {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// The hierarchy of the server the folders of `user_dir` were backed up from: its
/// recorded namespace (with a recorded separator where the namespace has none), else
/// what the folders' names show ([`crate::hierarchy::infer`]).
pub fn source_hierarchy(user_dir: &Path, folders: &[Folder]) -> Hierarchy {
    let account = user_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let root = user_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let registry = Registry::read(root).ok();
    let known = registry.as_ref().and_then(|r| r.folders_of(&account).iter().find_map(|f| f.separator));
    if let Some(ns) = registry.as_ref().and_then(|r| r.account_of(&account)).and_then(|a| a.namespace.clone()) {
        return Hierarchy { separator: ns.separator.or(known), prefix: ns.prefix };
    }
    let names: Vec<String> = folders
        .iter()
        .filter(|f| f.retired.is_none())
        .map(|f| f.mailbox.as_ref().map_or_else(|| encode_utf7(&f.name()), |m| m.wire.clone()))
        .collect();
    crate::hierarchy::infer(names.iter().map(String::as_str), known)
}

/// Archived messages of user directory `account` to sample (what tells its mailstore from
/// another, [`crate::mailstore`]): of up to `folders` live folders with the most messages
/// (`count` of a mailbox's wire name), INBOX first among equals, the first, middle and
/// last archived UID, at most `per_folder` of them; each as (wire name, UIDVALIDITY,
/// UIDs). Directories are opened from the root without following a symlink; one that
/// cannot be listed is passed over.
pub fn archived_samples(
    registry: &Registry,
    account: &str,
    count: impl Fn(&str) -> u32,
    folders: usize,
    per_folder: usize,
) -> Result<Vec<(String, u32, Vec<u32>)>> {
    let mut candidates: Vec<_> =
        registry.folders_of(account).into_iter().filter(|f| !f.retired && f.uidvalidity.is_some()).collect();
    candidates.sort_by_key(|f| (std::cmp::Reverse(count(&f.mailbox.wire)), f.mailbox.wire != "INBOX"));
    let root = Dir::open(registry.root()).map_err(|e| crate::error::Error::runtime(e.to_string()))?;
    let mut asks: Vec<(String, u32, Vec<u32>)> = Vec::new();
    for f in candidates.into_iter().take(LOOKED_AT) {
        let Ok(dir) = root.open_beneath(&Path::new(account).join(&f.dir)) else { continue };
        let mut uids = Vec::new();
        let listed = dir.for_each_name(|name| {
            if let Some(uid) = archive::ArchiveFile::from_path(PathBuf::from(name)).and_then(|f| f.uid) {
                uids.push(uid);
            }
        });
        if listed.is_err() || uids.is_empty() {
            continue;
        }
        uids.sort_unstable();
        uids.dedup();
        let mut chosen = vec![uids[0], uids[uids.len() / 2], uids[uids.len() - 1]];
        chosen.dedup();
        chosen.truncate(per_folder);
        asks.push((f.mailbox.wire.clone(), f.uidvalidity.unwrap_or(0), chosen));
        if asks.len() == folders {
            break;
        }
    }
    Ok(asks)
}
