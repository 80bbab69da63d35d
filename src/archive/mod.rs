//! The archive on disk, and the one answer to where its files go: the files of messages,
//! `{root}/{user}/{folder}/{uid}.mbox[.gz][.enc]` (found here, in UID order, and opened for
//! reading; written by [`files`]), the root's own records of who owns which directory
//! ([`layout`]), each folder's metadata journal ([`metadata`]), and whether a key opens what
//! is there ([`key_check`]).
//!
//! A file in a folder directory that has an archive file's suffix but not a UID for its
//! name (`foo.mbox.enc`) is one too for restore, `--list` and `--verify`, as the original's
//! restore loop took every file by its extension; it comes after the UID-named ones.

pub mod files;
pub mod key_check;
pub mod layout;
pub mod metadata;

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::codec::{self, fromline, Form};
use crate::error::{IoContext, Result};
use crate::keys::Keys;

/// The name of the file that holds message `uid` in form `form`: `UID.mbox[.gz][.enc]`,
/// what [`ArchiveFile::from_path`] recognises.
pub fn file_name(uid: u32, form: Form) -> String {
    format!("{uid}{}", form.suffix())
}

/// One archive file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Where it is.
    pub path: PathBuf,
    /// The UID its name gives; `None` for a file named otherwise (`foo.mbox.enc`).
    pub uid: Option<u32>,
    /// Its layers.
    pub form: Form,
}

impl ArchiveFile {
    /// Recognises an archive file by its name, `UID.mbox[.gz][.enc]` with a decimal UID;
    /// `None` for anything else (a restore output, a file of another program).
    pub fn from_path(path: PathBuf) -> Option<ArchiveFile> {
        ArchiveFile::from_path_any(path).filter(|f| f.uid.is_some())
    }

    /// Recognises an archive file by its suffix (`.mbox[.gz][.enc]`), with a UID for a
    /// name or not; `None` for anything else (and for hidden files: temporary ones).
    pub fn from_path_any(path: PathBuf) -> Option<ArchiveFile> {
        let name = path.file_name()?.to_str()?;
        let (stem, form) = Form::parse(name)?;
        let uid = if stem.bytes().all(|b| b.is_ascii_digit()) { stem.parse().ok() } else { None };
        Some(ArchiveFile { path, uid, form })
    }

    /// The file's name.
    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Opens the file through its reader chain: returns the stored From-line and a reader
    /// of the message bytes. Encrypted files are authenticated whole before this returns.
    pub fn open(&self, keys: Option<&Keys>) -> io::Result<(Vec<u8>, BufReader<impl Read>)> {
        fromline::split_stored(codec::open(self.open_raw()?, self.form, keys)?)
    }

    /// Opens the file itself, not a symlink swapped in for it since it was listed (the
    /// listing already leaves symlinks out).
    pub fn open_raw(&self) -> io::Result<File> {
        crate::os::file::open_no_follow(File::options().read(true), &self.path)
    }

    /// UID-named files first, in UID order, then the others by name.
    fn sort_key(&self) -> (bool, Option<u32>, &Path) {
        (self.uid.is_none(), self.uid, &self.path)
    }
}

fn sort(files: &mut [ArchiveFile]) {
    files.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

/// The archive files directly in `dir`, in ascending UID order, then those not named
/// after a UID.
pub fn list_folder(dir: &Path) -> Result<Vec<ArchiveFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_type().at(&entry.path())?.is_file() {
            files.extend(ArchiveFile::from_path_any(entry.path()));
        }
    }
    sort(&mut files);
    Ok(files)
}

/// The archive files of the folder directories `dirs`, folder by folder in UID order (a
/// folder that is gone has none).
pub fn files_of<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<Vec<ArchiveFile>> {
    let mut files = Vec::new();
    for d in dirs {
        if d.is_dir() {
            files.extend(list_folder(d)?);
        }
    }
    Ok(files)
}

/// Whether `dir` holds a UID-named archive file that `matches`, stopping at the first;
/// nothing is sorted or kept, so a folder of 300,000 files costs one directory read at most.
pub fn holds(dir: &Path, matches: impl Fn(&ArchiveFile) -> bool) -> bool {
    first(dir, |a| a.uid.is_some() && matches(a)).is_some()
}

/// Whether `dir` holds any archive file, named after a UID or not.
pub fn holds_any(dir: &Path) -> bool {
    first(dir, |_| true).is_some()
}

/// The first archive file of `dir` (in directory order) that `matches`.
pub fn first(dir: &Path, matches: impl Fn(&ArchiveFile) -> bool) -> Option<ArchiveFile> {
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            return None;
        }
        ArchiveFile::from_path_any(e.path()).filter(|a| matches(a))
    })
}

/// The files of `files` not named after a UID, for the one warning that names them:
/// `None` when there are none.
pub fn odd_names(files: &[ArchiveFile]) -> Option<String> {
    const SHOWN: usize = 10;
    let odd: Vec<&ArchiveFile> = files.iter().filter(|f| f.uid.is_none()).collect();
    if odd.is_empty() {
        return None;
    }
    let mut names: Vec<String> = odd.iter().take(SHOWN).map(|f| f.path.display().to_string()).collect();
    if odd.len() > SHOWN {
        names.push(format!("and {} more", odd.len() - SHOWN));
    }
    Some(format!(
        "{} file{} not named UID.mbox[.gz][.enc] ({}): taken by {} suffix, after the others, without metadata",
        odd.len(),
        if odd.len() == 1 { "" } else { "s" },
        names.join(", "),
        if odd.len() == 1 { "its" } else { "their" }
    ))
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

    /// A symlink put where an archive file was listed is not followed: a message file is
    /// read only as itself.
    #[test]
    fn a_symlink_in_place_of_a_message_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("smail-open-raw-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("secret"), b"From x\nnot mail of this archive\n").unwrap();
        fs::write(dir.join("1.mbox"), b"From a@b\nSubject: one\n\nbody\n").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), dir.join("2.mbox")).unwrap();
        let real = ArchiveFile::from_path(dir.join("1.mbox")).unwrap();
        let swapped = ArchiveFile::from_path(dir.join("2.mbox")).unwrap();
        assert!(real.open(None).is_ok());
        let err = swapped.open(None).err().expect("the symlink was followed");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names() {
        let f = ArchiveFile::from_path("a/12.mbox.gz.enc".into()).unwrap();
        assert_eq!((f.uid, f.form.compressed, f.form.encrypted), (Some(12), true, true));
        for other in
            [".smailarchiver-tmp-1.2.3.mbox", "state.json", ".mbox", "flip-iv.mbox.enc", "+5.mbox", "INBOX.mbox"]
        {
            assert!(ArchiveFile::from_path(Path::new("a").join(other)).is_none(), "{other}");
        }
        // Restore and verify take files by their suffix, as the original did.
        for odd in ["flip-iv.mbox.enc", "+5.mbox", "INBOX.mbox", "99999999999.mbox"] {
            let f = ArchiveFile::from_path_any(Path::new("a").join(odd)).unwrap();
            assert_eq!(f.uid, None, "{odd}");
        }
        for other in [".smailarchiver-tmp-1.2.3.mbox", "state.json", ".mbox", "x.mbox.txt"] {
            assert!(ArchiveFile::from_path_any(Path::new("a").join(other)).is_none(), "{other}");
        }
        // A name made for a message is recognised as that message's, in every form.
        for (compressed, encrypted) in [(false, false), (true, false), (false, true), (true, true)] {
            let form = Form { compressed, encrypted };
            let f = ArchiveFile::from_path(Path::new("a").join(file_name(4_000_000_000, form))).unwrap();
            assert_eq!((f.uid, f.form), (Some(4_000_000_000), form));
        }
    }
}
