//! Whether a key opens an archive, asked before anything is written (or decoded) with it:
//! a sample of what the archive holds sealed, spread over it (the first records of its
//! metadata journals, which cost a few hundred bytes each, then encrypted files), is
//! authenticated. One that authenticates clears the key; when every one tried fails its
//! MAC check, the key is wrong (all of them damaged is far less likely) and one line says
//! so. Damage of other kinds (unreadable files, bad base64) proves nothing either way.
//!
//! A backup, which would seal new mail with the key, is refused on one failure with
//! nothing that authenticates; a restore, `--list` or `--verify`, which only read, want
//! [`PROBES`] failures before they blame the key rather than report each file (one or two
//! damaged files are better named one by one).

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveFile};
use crate::codec::{base64::Base64Reader, cipher, BUF_SIZE};
use crate::error::{Error, Result};
use crate::keys::Keys;

/// Journals and files tried at most, each.
pub const SAMPLE: usize = 8;
/// Failures a reading command needs, with nothing that authenticates, to blame the key.
pub const PROBES: usize = 3;

/// What a sample showed: whether something authenticated, and how many failed their MAC
/// check.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tried {
    opens: bool,
    mismatches: usize,
}

/// Up to `n` items of `items`, spread from the first to the last.
fn spread<T>(items: &[T], n: usize) -> Vec<&T> {
    if items.len() <= n {
        return items.iter().collect();
    }
    let mut picked: Vec<usize> = (0..n).map(|i| i * (items.len() - 1) / (n - 1).max(1)).collect();
    picked.dedup();
    picked.into_iter().map(|i| &items[i]).collect()
}

fn sample(journals: &[&Path], files: &[&ArchiveFile], keys: &Keys) -> Tried {
    let mut tried = Tried::default();
    for j in journals {
        match crate::archive::metadata::authenticates(j, keys) {
            Some(true) => return Tried { opens: true, ..tried },
            Some(false) => tried.mismatches += 1,
            None => {}
        }
    }
    for f in files {
        let Ok(file) = f.open_raw() else { continue };
        match cipher::check_mac(keys, Base64Reader::new(BufReader::with_capacity(BUF_SIZE, file))) {
            Ok(_) => return Tried { opens: true, ..tried },
            Err(e) if cipher::is_mac_mismatch(&e) => tried.mismatches += 1,
            Err(_) => {}
        }
    }
    tried
}

fn wrong_key(key_path: &Path, archive: &Path, tried: usize) -> Error {
    Error::runtime(format!(
        "the key {} does not match the archive {}: none of the {tried} encrypted file{} and metadata journal{} tried \
         authenticates with it (wrong key file or password?)",
        key_path.display(),
        archive.display(),
        if tried == 1 { "" } else { "s" },
        if tried == 1 { "" } else { "s" },
    ))
}

/// Checks `keys` (from `key_path`) against `files` and `journals` of the archive at
/// `archive` (what a restore, `--list`, `--verify` or an upload is about to read).
pub fn check(files: &[ArchiveFile], journals: &[PathBuf], keys: &Keys, key_path: &Path, archive: &Path) -> Result<()> {
    let encrypted: Vec<&ArchiveFile> = files.iter().filter(|f| f.form.encrypted).collect();
    let journals: Vec<&Path> = journals.iter().map(PathBuf::as_path).collect();
    let files: Vec<&ArchiveFile> = spread(&encrypted, SAMPLE).into_iter().copied().collect();
    let tried = sample(&spread(&journals, SAMPLE).into_iter().copied().collect::<Vec<_>>(), &files, keys);
    match tried {
        Tried { opens: false, mismatches: n } if n >= PROBES => Err(wrong_key(key_path, archive, n)),
        _ => Ok(()),
    }
}

/// The metadata journals of the account whose user directory is `account_dir` in `root`.
pub fn account_journals(root: &Path, account_dir: &str) -> Vec<PathBuf> {
    let dir = root.join(crate::archive::layout::META_DIR).join(crate::archive::layout::JOURNALS_DIR).join(account_dir);
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Whether the account has sealed metadata (journals that a new key could not read).
pub fn any_sealed_journal(root: &Path, account_dir: &str) -> bool {
    account_journals(root, account_dir).iter().any(|j| crate::archive::metadata::reader::is_sealed(j) == Some(true))
}

/// Checks `keys` against the account whose user directory is `account_dir` in `root`,
/// before a backup writes anything: its journals first, then one encrypted file from each
/// of up to [`SAMPLE`] folders.
pub fn check_account(keys: &Keys, key_path: &Path, root: &Path, account_dir: &str) -> Result<()> {
    let journals = account_journals(root, account_dir);
    let journal_sample: Vec<&Path> = spread(&journals, SAMPLE).into_iter().map(PathBuf::as_path).collect();
    let user_dir = root.join(account_dir);
    let mut folders: Vec<PathBuf> = fs::read_dir(&user_dir)
        .map(|entries| {
            entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
        })
        .unwrap_or_default();
    folders.sort();
    // The journals alone usually settle it: files are looked for only when they do not.
    let by_journals = sample(&journal_sample, &[], keys);
    if by_journals.opens {
        return Ok(());
    }
    let files: Vec<ArchiveFile> =
        folders.iter().filter_map(|d| archive::first(d, |a| a.form.encrypted)).take(SAMPLE).collect();
    let by_files = sample(&[], &files.iter().collect::<Vec<_>>(), keys);
    let mismatches = by_journals.mismatches + by_files.mismatches;
    if !by_files.opens && mismatches > 0 {
        return Err(wrong_key(key_path, &user_dir, mismatches));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_both_ends() {
        let items: Vec<u32> = (0..100).collect();
        let picked: Vec<u32> = spread(&items, 8).into_iter().copied().collect();
        assert_eq!(picked.len(), 8);
        assert_eq!((picked[0], picked[7]), (0, 99));
        assert_eq!(spread(&items[..3], 8).len(), 3);
        assert_eq!(spread::<u32>(&[], 8).len(), 0);
    }
}
