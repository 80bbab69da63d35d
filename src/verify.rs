//! Verify: decode every archive file of some folders into nothing and report every bad
//! one; it never stops at the first. Where a folder has metadata, each message's digest is
//! compared with the one recorded when it was fetched (a file copied over another UID's),
//! every message recorded must still have its file (named as it was recorded), and every
//! record of the journal must be sound. It writes nothing.
//!
//! A backup may run meanwhile: each folder's journal is opened (and its length taken)
//! before the folder's files are listed, and a record is written only after its file is
//! committed, so a file the journal names was there to be listed.

use std::path::{Path, PathBuf};

use crate::archive::files::readahead::ReadAhead;
use crate::archive::layout::scope::FolderDir;
use crate::archive::metadata::{HashingReader, Index};
use crate::archive::{self, ArchiveFile};
use crate::codec::{drain, Form};
use crate::error::{Error, Result};
use crate::keys::Keys;

/// What a verification found.
#[derive(Debug, Default)]
pub struct Summary {
    /// Messages: files checked, and recorded messages whose file is missing.
    pub messages: usize,
    /// Files that decoded and match their record.
    pub good: usize,
    /// Files that did not decode, or are not the message recorded for their UID.
    pub damaged: usize,
    /// Recorded messages without their file.
    pub missing: usize,
    /// Message bytes decoded from the good files.
    pub bytes: u64,
    /// Metadata journals read.
    pub journals: usize,
    /// Their damaged records.
    pub damaged_records: usize,
    /// Journals that could not be read at all.
    pub bad_journals: usize,
}

impl Summary {
    /// Whether anything was wrong.
    pub fn is_bad(&self) -> bool {
        self.damaged + self.missing + self.damaged_records + self.bad_journals > 0
    }
}

/// What a verification finds wrong, as it goes: every bad thing, never only the first.
#[derive(Debug)]
pub enum Event<'a> {
    /// The folder's metadata journal could not be read at all.
    JournalUnreadable {
        /// The metadata journal.
        journal: &'a Path,
        /// What went wrong.
        error: &'a Error,
    },
    /// A file that decodes, but to another message than the one recorded for its UID.
    NotTheRecorded {
        /// The file (or where it should be).
        path: &'a Path,
        /// The message's UID.
        uid: u32,
    },
    /// A file that does not decode.
    Undecodable {
        /// The file (or where it should be).
        path: &'a Path,
        /// What went wrong.
        error: &'a std::io::Error,
    },
    /// A message the journal records whose file is gone (`path`: its name as recorded).
    Missing {
        /// The file (or where it should be).
        path: &'a Path,
        /// The message's UID.
        uid: u32,
    },
    /// A damaged record of the journal, left out.
    DamagedRecord {
        /// The metadata journal.
        journal: &'a Path,
        /// Where the record is and why it is damaged.
        damage: &'a crate::archive::metadata::Damage,
    },
}

/// Where a verification's events go.
pub trait Sink: for<'a> crate::events::Sink<Event<'a>> {}

impl<S: for<'a> crate::events::Sink<Event<'a>> + ?Sized> Sink for S {}

/// Verifies `folders`. `keys` are needed where files or journals are encrypted.
pub fn verify(folders: &[FolderDir], keys: Option<&Keys>, sink: &dyn Sink) -> Result<Summary> {
    let mut report = Summary::default();
    for folder in folders {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        verify_folder(folder, keys, &mut report, sink)?;
    }
    if report.messages == 0 && report.journals == 0 {
        return Err(Error::runtime("no archive files found"));
    }
    Ok(report)
}

fn verify_folder(folder: &FolderDir, keys: Option<&Keys>, report: &mut Summary, sink: &dyn Sink) -> Result<()> {
    // The journal first: what it records was committed before it was opened.
    let index = match folder.journal.as_deref().map(|j| Index::load(j, keys, true)) {
        Some(Ok(i)) => {
            report.journals += 1;
            Some(i)
        }
        Some(Err(e)) => {
            report.journals += 1;
            report.bad_journals += 1;
            sink.event(Event::JournalUnreadable {
                journal: folder.journal.as_deref().unwrap_or(&folder.dir),
                error: &e,
            });
            None
        }
        None => None,
    };
    let files = if folder.dir.is_dir() { archive::list_folder(&folder.dir)? } else { Vec::new() };
    let mut ahead = ReadAhead::spawn(files.clone(), keys.cloned())?;
    for f in &files {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        report.messages += 1;
        let recorded = index.as_ref().zip(f.uid).and_then(|(i, uid)| i.lookup(uid)).and_then(|m| m.digest);
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
            Ok((_, digest)) if recorded.is_some_and(|d| d != digest) => {
                report.damaged += 1;
                let uid = f.uid.unwrap_or(0);
                sink.event(Event::NotTheRecorded { path: &f.path, uid });
            }
            Ok((n, _)) => {
                report.good += 1;
                report.bytes += n;
            }
            Err(e) => {
                report.damaged += 1;
                sink.event(Event::Undecodable { path: &f.path, error: &e });
            }
        }
    }
    if let Some(index) = &index {
        missing(folder, index, &files, report, sink);
    }
    Ok(())
}

/// Reports each message the journal records whose file is gone, named as recorded (or
/// after the folder's other files when the record does not say), and the journal's
/// damaged records.
fn missing(folder: &FolderDir, index: &Index, files: &[ArchiveFile], report: &mut Summary, sink: &dyn Sink) {
    let mut have: Vec<u32> = files.iter().filter_map(|f| f.uid).collect();
    have.sort_unstable();
    let usual: Option<Form> = files.first().map(|f| f.form);
    let mut entries = index.entries();
    for (uid, meta) in entries.by_ref() {
        if !meta.archived || have.binary_search(&uid).is_ok() {
            continue;
        }
        report.messages += 1;
        report.missing += 1;
        let name = match meta.form.or(usual) {
            Some(form) => archive::file_name(uid, form),
            None => format!("{uid}.mbox*"),
        };
        sink.event(Event::Missing { path: &folder.dir.join(name), uid });
    }
    let journal = index.path().to_path_buf();
    for d in entries.damage() {
        report.damaged_records += 1;
        sink.event(Event::DamagedRecord { journal: &journal, damage: d });
    }
}

/// The folders' journals, for the sandbox's rules.
pub fn journals(folders: &[FolderDir]) -> Vec<PathBuf> {
    folders.iter().filter_map(|f| f.journal.clone()).collect()
}
