//! A whole account's restore: every folder directory of a user directory, each under its
//! real (UTF-8) mailbox name, taken from the archive root's records where there are any
//! (archives of the original program have none: their directory names are used).

use std::fs;
use std::path::{Path, PathBuf};

use super::layout::{file_name_part, MaildirLayout};
use super::{restore, Options, Report, Target};
use crate::archive;
use crate::archive::layout::registry::{self, Registry};
use crate::error::{IoContext, Result};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name::{encode_utf7, Mailbox};

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

/// Where an account's folders go.
#[derive(Clone, Debug)]
pub enum AccountTarget {
    /// One mboxrd file per folder under this directory, at `NAME.mbox` (a name's `/`
    /// levels become subdirectories: `Archive/2019.mbox`).
    MboxDir(PathBuf),
    /// One Maildir++ tree: INBOX at its top, every other folder in `.NAME`, named as the
    /// layout's server names them.
    Maildir(PathBuf, MaildirLayout),
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
        if entry.file_name() == registry::META_DIR || !entry.file_type().at(&entry.path())?.is_dir() {
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

/// The output of `folder` under `target`; `source` is the hierarchy of the server the
/// folder was backed up from ([`source_hierarchy`]); `taken` are the outputs already used,
/// so two folders never share one.
pub fn output_for(folder: &Folder, target: &AccountTarget, source: &Hierarchy, taken: &[PathBuf]) -> Target {
    let (base, suffix) = match target {
        AccountTarget::MboxDir(out) => (out.join(mbox_rel_path(&folder.name())), ".mbox"),
        AccountTarget::Maildir(out, layout) => {
            let inbox = folder.retired.is_none()
                && folder.mailbox.as_ref().is_some_and(|m| m.wire.eq_ignore_ascii_case("INBOX"));
            if inbox {
                (out.clone(), "")
            } else {
                let wire = folder.mailbox.as_ref().map(|m| m.wire.as_str());
                (out.join(layout.folder_dir(wire, folder.retired, &folder.name(), source)), "")
            }
        }
    };
    let mut n = 1;
    let path = loop {
        let mut p = base.clone().into_os_string();
        if n > 1 {
            p.push(format!("~{n}"));
        }
        p.push(suffix);
        let p = PathBuf::from(p);
        if !taken.contains(&p) {
            break p;
        }
        n += 1;
    };
    match target {
        AccountTarget::MboxDir(_) => Target::Mbox(path),
        AccountTarget::Maildir(..) => Target::Maildir(path),
    }
}

/// `NAME.mbox`'s path below the output directory: each `/` level a directory, every
/// level a usable file name.
fn mbox_rel_path(name: &str) -> PathBuf {
    name.split('/').map(file_name_part).collect()
}

/// Restores `folder` to `target`, making the directories it needs; a Maildir++ folder gets
/// its `maildirfolder` marker.
pub fn restore_folder(folder: &Folder, target: &Target, opts: &Options<'_>, sink: &dyn super::Sink) -> Result<Report> {
    match target {
        Target::Mbox(path) => {
            let parent = super::parent_of(path);
            fs::create_dir_all(parent).at(parent)?;
        }
        Target::Maildir(path) => {
            fs::create_dir_all(path).at(path)?;
            let top = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if top {
                let marker = path.join("maildirfolder");
                fs::OpenOptions::new().create(true).append(true).open(&marker).at(&marker)?;
            }
        }
    }
    restore(&folder.dir, target, opts, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(wire: &str) -> Folder {
        Folder { dir: PathBuf::from("x"), mailbox: Some(Mailbox::from_wire(wire)), retired: None, journal: None }
    }

    #[test]
    fn outputs_use_real_names() {
        let out = PathBuf::from("/o");
        let slash = Hierarchy { prefix: String::new(), separator: Some('/') };
        let mbox = |wire: &str, taken: &[PathBuf]| match output_for(
            &folder(wire),
            &AccountTarget::MboxDir(out.clone()),
            &slash,
            taken,
        ) {
            Target::Mbox(p) => p,
            Target::Maildir(_) => unreachable!(),
        };
        assert_eq!(mbox("Re&AOc-us", &[]), PathBuf::from("/o/Reçus.mbox"));
        assert_eq!(
            mbox("[Gmail]/&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", &[]),
            PathBuf::from("/o/[Gmail]/Отправленные.mbox")
        );
        assert_eq!(mbox("a/../b", &[]), PathBuf::from("/o/a/_../b.mbox"));
        assert_eq!(mbox("INBOX", &[PathBuf::from("/o/INBOX.mbox")]), PathBuf::from("/o/INBOX~2.mbox"));
        let maildir =
            |f: &Folder| match output_for(f, &AccountTarget::Maildir(out.clone(), MaildirLayout::Dovecot), &slash, &[])
            {
                Target::Maildir(p) => p,
                Target::Mbox(_) => unreachable!(),
            };
        assert_eq!(maildir(&folder("INBOX")), PathBuf::from("/o"));
        assert_eq!(maildir(&folder("Archive/2019")), PathBuf::from("/o/.Archive.2019"));
        assert_eq!(maildir(&folder("Re&AOc-us")), PathBuf::from("/o/.Re&AOc-us"));
        let old = Folder { retired: Some(5), ..folder("INBOX") };
        assert_eq!(old.name(), "INBOX (UIDVALIDITY 5)");
        assert_eq!(maildir(&old), PathBuf::from("/o/.INBOX (UIDVALIDITY 5)"));
        let dot = Hierarchy { prefix: "INBOX.".into(), separator: Some('.') };
        let courier = |f: &Folder, source: &Hierarchy| match output_for(
            f,
            &AccountTarget::Maildir(out.clone(), MaildirLayout::Courier),
            source,
            &[],
        ) {
            Target::Maildir(p) => p,
            Target::Mbox(_) => unreachable!(),
        };
        assert_eq!(courier(&folder("INBOX"), &dot), PathBuf::from("/o"));
        assert_eq!(courier(&folder("INBOX.Re&AOc-us"), &dot), PathBuf::from("/o/.Reçus"));
        assert_eq!(courier(&folder("Archive/2019"), &slash), PathBuf::from("/o/.Archive.2019"));
        let old = Folder { retired: Some(5), ..folder("INBOX.Work") };
        assert_eq!(courier(&old, &dot), PathBuf::from("/o/.Work (UIDVALIDITY 5)"));
    }
}
