//! The archive's files on disk: `{root}/{user}/{folder}/{uid}.mbox[.gz][.enc]`. Finding
//! them in a folder or under a root, in UID order, and opening one for reading.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::codec::{self, fromline, Form};
use crate::error::{IoContext, Result};
use crate::keys::Keys;

/// One archive file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Where it is.
    pub path: PathBuf,
    /// The UID its name gives.
    pub uid: u32,
    /// Its layers.
    pub form: Form,
}

impl ArchiveFile {
    /// Recognises an archive file by its name, `UID.mbox[.gz][.enc]` with a decimal UID;
    /// `None` for anything else (a restore output, a file of another program).
    pub fn from_path(path: PathBuf) -> Option<ArchiveFile> {
        let name = path.file_name()?.to_str()?;
        let (stem, form) = Form::parse(name)?;
        if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let uid = stem.parse().ok()?;
        Some(ArchiveFile { path, uid, form })
    }

    /// Opens the file through its reader chain: returns the stored From-line and a reader
    /// of the message bytes. Encrypted files are authenticated whole before this returns.
    pub fn open(&self, keys: Option<&Keys>) -> io::Result<(Vec<u8>, BufReader<impl Read>)> {
        let file = File::open(&self.path)?;
        fromline::split_stored(codec::open(file, self.form, keys)?)
    }

    fn sort_key(&self) -> (u32, &Path) {
        (self.uid, &self.path)
    }
}

fn sort(files: &mut [ArchiveFile]) {
    files.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

/// The archive files directly in `dir`, in ascending UID order (then by name).
pub fn list_folder(dir: &Path) -> Result<Vec<ArchiveFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_type().at(&entry.path())?.is_file() {
            files.extend(ArchiveFile::from_path(entry.path()));
        }
    }
    sort(&mut files);
    Ok(files)
}

/// The archive files anywhere under `root` (a folder or a whole archive), folder by
/// folder in UID order. Symbolic links are not followed.
pub fn walk(root: &Path) -> Result<Vec<ArchiveFile>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut here = Vec::new();
        let mut subdirs = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let kind = entry.file_type().at(&entry.path())?;
            if kind.is_dir() {
                // The tool's own records and temporary files are not archive files.
                if entry.file_name() != crate::registry::META_DIR {
                    subdirs.push(entry.path());
                }
            } else if kind.is_file() {
                here.extend(ArchiveFile::from_path(entry.path()));
            }
        }
        sort(&mut here);
        files.extend(here);
        subdirs.sort();
        dirs.extend(subdirs.into_iter().rev());
    }
    Ok(files)
}

/// Whether `dir` holds an archive file that `matches`, stopping at the first; nothing is
/// sorted or kept, so a folder of 300,000 files costs one directory read at most.
pub fn holds(dir: &Path, matches: impl Fn(&ArchiveFile) -> bool) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_type().is_ok_and(|t| t.is_file()) && ArchiveFile::from_path(e.path()).is_some_and(|a| matches(&a))
        })
    })
}

/// Whether an account's user directory holds any encrypted archive file (looked for
/// folder by folder, stopping at the first).
pub fn any_encrypted(user_dir: &Path) -> bool {
    let Ok(folders) = fs::read_dir(user_dir) else { return false };
    folders
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .any(|folder| holds(&folder.path(), |a| a.form.encrypted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let f = ArchiveFile::from_path("a/12.mbox.gz.enc".into()).unwrap();
        assert_eq!((f.uid, f.form.compressed, f.form.encrypted), (12, true, true));
        for other in
            [".smailarchiver-tmp-1.2.3.mbox", "state.json", ".mbox", "flip-iv.mbox.enc", "+5.mbox", "INBOX.mbox"]
        {
            assert!(ArchiveFile::from_path(Path::new("a").join(other)).is_none(), "{other}");
        }
    }
}
