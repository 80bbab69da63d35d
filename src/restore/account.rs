//! A whole account's restore: every folder directory of a user directory, each under its
//! real (UTF-8) mailbox name, taken from the archive root's records where there are any
//! (archives of the original program have none: their directory names are used); the
//! folders are [`crate::archive::layout::account`]'s.

use std::fs;
use std::path::PathBuf;

use super::layout::{file_name_part, MaildirLayout};
use super::{restore, Options, Summary, Target};
use crate::archive::layout::account::Folder;
use crate::error::{IoContext, Result};
use crate::hierarchy::Hierarchy;

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

/// The output of `folder` under `target`; `source` is the hierarchy of the server the
/// folder was backed up from ([`source_hierarchy`](crate::archive::layout::account::source_hierarchy)); `taken` are the outputs already used,
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
pub fn restore_folder(folder: &Folder, target: &Target, opts: &Options<'_>, sink: &dyn super::Sink) -> Result<Summary> {
    match target {
        Target::Mbox(path) => {
            let parent = crate::archive::files::atomic::parent_of(path);
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
    use crate::mailbox_name::Mailbox;

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
