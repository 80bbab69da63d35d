//! Verify: decode every archive file under a path into nothing and report the bad ones.
//! Where a folder has metadata, each message's digest is compared with the one recorded
//! when it was fetched (a file copied over another UID's), and every message recorded must
//! still have its file (a file removed). It writes nothing.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveFile};
use crate::error::{describe_io, Error, Result};
use crate::keys::Keys;
use crate::metadata::{self, HashingReader, Index};
use crate::readahead::ReadAhead;
use crate::restore::{drain, parent_of};

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Files checked.
    pub checked: usize,
    /// Message bytes decoded from the good files.
    pub bytes: u64,
    /// Bad files (or missing ones), with the reason.
    pub bad: Vec<(PathBuf, String)>,
}

/// The metadata journal of each folder directory of `files` that has one.
pub fn journals(files: &[ArchiveFile]) -> BTreeMap<PathBuf, PathBuf> {
    let dirs: HashSet<&Path> = files.iter().map(|f| parent_of(&f.path)).collect();
    dirs.into_iter().filter_map(|d| Some((d.to_path_buf(), metadata::journal_of_dir(d)?))).collect()
}

/// Verifies every archive file under `root`. `keys` is called only if encrypted files
/// exist. `journals` are the folders' metadata ([`journals`]). `on_bad` hears of each bad
/// file as it is found.
pub fn verify(
    root: &Path,
    keys: impl FnOnce() -> Result<Keys>,
    journals: &BTreeMap<PathBuf, PathBuf>,
    on_bad: &mut dyn FnMut(&Path, &str),
) -> Result<Report> {
    let files = archive::walk(root)?;
    if files.is_empty() {
        return Err(Error::runtime(format!("{}: no archive files found", root.display())));
    }
    let keys = if files.iter().any(|f| f.form.encrypted) { Some(keys()?) } else { None };
    let mut report = Report::default();
    let mut ahead = ReadAhead::spawn(files.clone(), keys.clone())?;
    let mut bad = |report: &mut Report, path: &Path, reason: String| {
        on_bad(path, &reason);
        report.bad.push((path.to_path_buf(), reason));
    };
    // Files come folder by folder: one folder's index in memory at a time.
    let mut folder: Option<(PathBuf, Option<Index>, HashSet<u32>)> = None;
    for f in &files {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        let dir = parent_of(&f.path);
        if folder.as_ref().is_none_or(|(d, _, _)| d != dir) {
            if let Some(done) = folder.take() {
                missing(done, &mut |p, r| bad(&mut report, p, r));
            }
            let index = match journals.get(dir).map(|j| Index::load(j, keys.as_ref(), true)) {
                Some(Ok(i)) => Some(i),
                Some(Err(e)) => {
                    bad(&mut report, dir, format!("metadata: {e}"));
                    None
                }
                None => None,
            };
            folder = Some((dir.to_path_buf(), index, HashSet::new()));
        }
        report.checked += 1;
        let recorded =
            folder.as_ref().and_then(|(_, i, _)| i.as_ref()).and_then(|i| i.lookup(f.uid)).and_then(|m| m.digest);
        if let Some((_, _, seen)) = folder.as_mut() {
            seen.insert(f.uid);
        }
        // An encrypted file's digest is its HMAC tag (checked on the way); others', the
        // SHA-256 of the message.
        let decoded = ahead.next_message().and_then(|(_, msg)| {
            if f.form.encrypted {
                let mut msg = msg;
                let n = drain(&mut msg)?;
                return Ok((n, None));
            }
            let mut r = HashingReader { inner: msg, hasher: Default::default() };
            let n = drain(&mut r)?;
            Ok((n, Some(r.hasher.finish())))
        });
        let decoded = decoded.and_then(|(n, sha)| match sha.or(ahead.last_tag()) {
            Some(d) => Ok((n, d)),
            None => Err(std::io::Error::other("no HMAC tag after reading the file")),
        });
        match decoded {
            Ok((n, digest)) => match recorded {
                Some(d) if d != digest => bad(
                    &mut report,
                    &f.path,
                    format!("not the message archived as UID {} (its digest differs: copied from another UID?)", f.uid),
                ),
                _ => report.bytes += n,
            },
            Err(e) => bad(&mut report, &f.path, describe_io(&e)),
        }
    }
    if let Some(done) = folder.take() {
        missing(done, &mut |p, r| bad(&mut report, p, r));
    }
    Ok(report)
}

/// Reports each message the folder's metadata records whose file is gone.
fn missing((dir, index, seen): (PathBuf, Option<Index>, HashSet<u32>), bad: &mut dyn FnMut(&Path, String)) {
    let Some(index) = index else { return };
    for uid in index.archived_uids().filter(|u| !seen.contains(u)) {
        bad(&dir.join(format!("{uid}.mbox")), format!("UID {uid} was archived but its file is missing"));
    }
}
