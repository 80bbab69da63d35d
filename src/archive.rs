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
    /// The UID its name gives, when the name is a number.
    pub uid: Option<u64>,
    /// Its layers.
    pub form: Form,
}

impl ArchiveFile {
    /// Recognises an archive file by its name; `None` for anything else.
    pub fn from_path(path: PathBuf) -> Option<ArchiveFile> {
        let name = path.file_name()?.to_str()?;
        let (stem, form) = Form::parse(name)?;
        let uid = stem.parse().ok();
        Some(ArchiveFile { path, uid, form })
    }

    /// Opens the file through its reader chain: returns the stored From-line and a reader
    /// of the message bytes. Encrypted files are authenticated whole before this returns.
    pub fn open(&self, keys: Option<&Keys>) -> io::Result<(Vec<u8>, BufReader<impl Read>)> {
        let file = File::open(&self.path)?;
        fromline::split_stored(codec::open(file, self.form, keys)?)
    }

    fn sort_key(&self) -> (bool, u64, &Path) {
        (self.uid.is_none(), self.uid.unwrap_or(0), &self.path)
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
                subdirs.push(entry.path());
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

/// Whether subdirectories of `dir` hold archive files (to explain an empty restore).
pub fn has_subfolders(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|it| it.flatten().any(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let f = ArchiveFile::from_path("a/12.mbox.gz.enc".into()).unwrap();
        assert_eq!((f.uid, f.form.compressed, f.form.encrypted), (Some(12), true, true));
        assert!(ArchiveFile::from_path("a/.smailarchiver-tmp-1.2.3.mbox".into()).is_none());
        assert!(ArchiveFile::from_path("a/state.json".into()).is_none());
        assert!(ArchiveFile::from_path("a/.mbox".into()).is_none());
        let f = ArchiveFile::from_path("a/flip-iv.mbox.enc".into()).unwrap();
        assert_eq!(f.uid, None);
    }
}
