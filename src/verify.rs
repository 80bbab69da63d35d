//! Verify: decode every archive file under a path into nothing and report the bad ones.
//! It writes nothing.

use std::path::{Path, PathBuf};

use crate::archive;
use crate::error::{describe_io, Error, Result};
use crate::keys::Keys;
use crate::readahead::ReadAhead;
use crate::restore::drain;

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Files checked.
    pub checked: usize,
    /// Message bytes decoded from the good files.
    pub bytes: u64,
    /// Bad files, with the reason.
    pub bad: Vec<(PathBuf, String)>,
}

/// Verifies every archive file under `root`. `keys` is called only if encrypted files
/// exist. `on_bad` hears of each bad file as it is found.
pub fn verify(root: &Path, keys: impl FnOnce() -> Result<Keys>, on_bad: &mut dyn FnMut(&Path, &str)) -> Result<Report> {
    let files = archive::walk(root)?;
    if files.is_empty() {
        return Err(Error::runtime(format!("{}: no archive files found", root.display())));
    }
    let keys = if files.iter().any(|f| f.form.encrypted) { Some(keys()?) } else { None };
    let mut report = Report::default();
    let mut ahead = ReadAhead::spawn(files.clone(), keys)?;
    for f in &files {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        report.checked += 1;
        match ahead.next_message().and_then(|(_, mut msg)| drain(&mut msg)) {
            Ok(n) => report.bytes += n,
            Err(e) => {
                let reason = describe_io(&e);
                on_bad(&f.path, &reason);
                report.bad.push((f.path.clone(), reason));
            }
        }
    }
    Ok(report)
}
