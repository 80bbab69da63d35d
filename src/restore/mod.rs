//! Restore: a folder directory's archive files, in ascending UID order, into one mboxrd
//! file (`DIR.mbox` by default) or a Maildir. A file that fails is reported and left out;
//! the rest are restored. The output appears only when complete (temporary file, then
//! rename). [`account`] restores every folder of a user directory.

pub mod account;
pub mod layout;

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::archive::files::atomic::{parent_of, Batch, TempFile};
use crate::archive::files::readahead::ReadAhead;
use crate::archive::metadata::{self, Index};
use crate::archive::{self, ArchiveFile};
use crate::codec::{self, base64::read_full, BUF_SIZE};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::keys::Keys;
use crate::mbox::{separator_line, separator_line_at, MboxrdWriter};

/// Maildir messages named per filesystem sync.
const MAILDIR_BATCH: usize = 256;

/// How much of a message's start is read to build its mbox separator line.
const HEAD_LEN: usize = 64 * 1024;

/// Where restored messages go.
#[derive(Clone, Debug)]
pub enum Target {
    /// An mboxrd file (by default `DIR.mbox`, beside DIR).
    Mbox(PathBuf),
    /// A Maildir (created if needed).
    Maildir(PathBuf),
}

/// What a restore tells as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// An archive file that could not be restored is left out (`why`); the rest goes on.
    LeftOut {
        /// The file.
        path: &'a Path,
        /// Why.
        why: &'a str,
    },
}

/// Where a restore's events go.
pub trait Sink: for<'a> crate::events::Sink<Event<'a>> {}

impl<S: for<'a> crate::events::Sink<Event<'a>> + ?Sized> Sink for S {}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Summary {
    /// The mbox file or Maildir written.
    pub output: PathBuf,
    /// Messages restored.
    pub restored: usize,
    /// Message bytes restored.
    pub bytes: u64,
    /// Files left out, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Why the folder's metadata could not be used, when it could not.
    pub metadata_problem: Option<String>,
    /// Damaged records of its journal met (left out: those messages lack their metadata).
    pub damaged_records: usize,
}

/// How to restore a folder.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// Keys, needed when the folder holds encrypted files.
    pub keys: Option<&'a Keys>,
    /// Only these messages.
    pub uids: Option<&'a UidSet>,
    /// The folder's metadata journal, when it has one ([`metadata::journal_of_dir`]; found
    /// before the process confines itself, as it is outside the folder directory).
    pub journal: Option<&'a Path>,
    /// Maildir files with LF line ends, as Courier keeps them ([`layout::MaildirLayout`]).
    pub unix_line_ends: bool,
}

/// UIDs chosen with `--uid N[,M-K]`: inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidSet(Vec<(u32, u32)>);

impl UidSet {
    /// Parses `N[,M-K]...` (UIDs from 1; `M-K` with M <= K; at most 10,000 parts).
    pub fn parse(text: &str) -> Result<UidSet> {
        let bad = || Error::usage(format!("--uid {text:?}: expected UIDs like 7 or 7,9-12"));
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let num = |s: &str| s.trim().parse::<u32>().ok().filter(|&n| n > 0);
            let (a, b) = (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?);
            if a > b || ranges.len() >= 10_000 {
                return Err(bad());
            }
            ranges.push((a, b));
        }
        Ok(UidSet(ranges))
    }

    /// Whether `uid` is in the set.
    pub fn contains(&self, uid: u32) -> bool {
        self.0.iter().any(|&(a, b)| (a..=b).contains(&uid))
    }
}

/// The mbox path for a folder directory: the directory's path with `.mbox` appended.
pub fn mbox_path(dir: &Path) -> Result<PathBuf> {
    let dir = match dir.components().next_back() {
        // "-r ." must not write "..mbox": name the output after the real directory.
        Some(Component::CurDir | Component::ParentDir) => dir.canonicalize().at(dir)?,
        _ => dir.components().collect(),
    };
    let mut s: OsString = dir.into_os_string();
    s.push(".mbox");
    Ok(PathBuf::from(s))
}

/// Restores the folder directory `dir`. `keys` are needed when it holds encrypted files
/// (checked before anything is written). `sink` hears of each file left out as it
/// happens.
/// With `uids`, only those messages are restored. The folder's metadata, where there is
/// some, gives Maildir files their flags and arrival time, and mbox separators the arrival
/// time; without it (archives of the original) restore works as before.
pub fn restore(dir: &Path, target: &Target, opts: &Options<'_>, sink: &dyn Sink) -> Result<Summary> {
    let Options { keys, uids, journal, unix_line_ends } = *opts;
    let mut files = archive::list_folder(dir)?;
    if let Some(set) = uids {
        files.retain(|f| f.uid.is_some_and(|u| set.contains(u)));
        if files.is_empty() {
            return Err(Error::runtime(format!("{}: no archive file has one of the UIDs asked for", dir.display())));
        }
    }
    if files.iter().any(|f| f.form.encrypted) && keys.is_none() {
        return Err(Error::runtime(format!("{}: encrypted files, but no keys loaded", dir.display())));
    }
    let (index, problem) = match journal.map(|j| Index::load(j, keys, false)) {
        None => (None, None),
        Some(Ok(i)) => (Some(i), None),
        Some(Err(e)) => (None, Some(e.to_string())),
    };
    let mut ahead = ReadAhead::spawn(files.clone(), keys.cloned())?;
    let mut report = match target {
        Target::Mbox(output) => to_mbox(&files, output, index.as_ref(), &mut ahead, sink),
        Target::Maildir(out) => to_maildir(&files, out, index.as_ref(), &mut ahead, unix_line_ends, sink),
    }?;
    report.metadata_problem = problem;
    report.damaged_records = index.as_ref().map_or(0, |i| i.damage().len());
    Ok(report)
}

fn to_mbox(
    files: &[ArchiveFile],
    output: &Path,
    index: Option<&Index>,
    ahead: &mut ReadAhead,
    sink: &dyn Sink,
) -> Result<Summary> {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = TempFile::create_in(parent_of(output), &name, 0o600).map_err(|e| {
        let hint = if matches!(e.raw_os_error(), Some(libc::EROFS | libc::EACCES | libc::EPERM)) {
            " (a read-only archive? write elsewhere with -o PATH)"
        } else {
            ""
        };
        Error::runtime(format!("{}: {}{hint}", parent_of(output).display(), describe_io(&e)))
    })?;
    let mut report = Summary { output: output.to_path_buf(), ..Summary::default() };
    let mut good_len = 0u64;
    for f in files {
        // The temporary file goes with `tmp`: no half-written output.
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        let mut out = BufWriter::with_capacity(BUF_SIZE, tmp.file());
        let arrived = index.zip(f.uid).and_then(|(i, uid)| i.lookup(uid)).and_then(|m| m.arrived);
        match ahead.next_message().and_then(|(_, mut msg)| append_mbox(f, arrived, &mut msg, &mut out)) {
            Ok(n) => {
                out.flush().at(tmp.path())?;
                good_len = tmp.file().stream_position().at(tmp.path())?;
                report.restored += 1;
                report.bytes += n;
            }
            Err(e) => {
                // Whatever the failed message wrote is cut off again.
                drop(out.into_parts());
                tmp.file().set_len(good_len).at(tmp.path())?;
                tmp.file().seek(SeekFrom::Start(good_len)).at(tmp.path())?;
                if is_output_error(&e) {
                    return Err(Error::runtime(format!("{}: {}", output.display(), describe_io(&e))));
                }
                let reason = describe_io(&e);
                sink.event(Event::LeftOut { path: &f.path, why: &reason });
                report.failed.push((f.path.clone(), reason));
            }
        }
    }
    tmp.commit(output, true).at(output)?;
    Ok(report)
}

/// Disk-full and similar errors concern the output, not the archive file: they stop.
fn is_output_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EFBIG))
}

/// Writes one message (`msg`, the message of `f`) as an mboxrd entry; returns its size.
/// The separator is dated with the arrival time when it is known, else with `Date:`, else
/// with the file's time.
fn append_mbox(
    f: &ArchiveFile,
    arrived: Option<i64>,
    mut msg: &mut impl Read,
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut head = vec![0u8; HEAD_LEN];
    let n = read_full(&mut msg, &mut head)?;
    head.truncate(n);
    let separator = match arrived {
        Some(t) => separator_line_at(&head, t),
        None => {
            let mtime = fs::metadata(&f.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            separator_line(&head, mtime)
        }
    };
    out.write_all(&separator)?;
    let mut body = Tracking { inner: MboxrdWriter::new(&mut *out), last: None, count: 0 };
    body.write_all(&head)?;
    codec::pump(&mut msg, &mut body)?;
    let (last, count) = (body.last, body.count);
    body.inner.finish()?;
    // Each message ends with a line break and a blank line, so the next "From " is a separator.
    out.write_all(if last == Some(b'\n') || last.is_none() { b"\n" } else { b"\n\n" })?;
    Ok(count)
}

/// Remembers the last byte and the count of what passes through.
struct Tracking<W> {
    inner: W,
    last: Option<u8>,
    count: u64,
}

impl<W: Write> Write for Tracking<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if n > 0 {
            self.last = Some(buf[n - 1]);
            self.count += n as u64;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn to_maildir(
    files: &[ArchiveFile],
    out: &Path,
    index: Option<&Index>,
    ahead: &mut ReadAhead,
    unix_line_ends: bool,
    sink: &dyn Sink,
) -> Result<Summary> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(out.join(sub)).at(&out.join(sub))?;
    }
    let mut report = Summary { output: out.to_path_buf(), ..Summary::default() };
    let mut names = MaildirNames::default();
    // Messages are named in batches: one filesystem sync for many small files.
    let mut batch = Batch::default();
    let commit = |batch: &mut Batch| {
        batch.commit(true).map_err(|e| Error::runtime(format!("{}: {}", out.display(), describe_io(&e))))
    };
    for f in files {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        if batch.len() >= MAILDIR_BATCH {
            commit(&mut batch)?;
        }
        let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Flags in the name (`:2,` and the letters), arrival time as the file's time.
        let meta = index.zip(f.uid).and_then(|(i, uid)| i.lookup(uid));
        let letters = meta.as_ref().map(|m| metadata::maildir_letters(&m.flags)).unwrap_or_default();
        let target = out.join("cur").join(format!("{}:2,{letters}", names.unique(f)));
        let tmp = TempFile::create_in(&out.join("tmp"), &name, 0o600).at(&out.join("tmp"))?;
        let written = (|| -> io::Result<u64> {
            let (_, mut msg) = ahead.next_message()?;
            let mut w = BufWriter::with_capacity(BUF_SIZE, tmp.file());
            let n = if unix_line_ends {
                let mut lf = layout::UnixLineEnds::new(&mut w);
                let n = codec::pump(&mut msg, &mut lf)?;
                lf.finish()?;
                n
            } else {
                codec::pump(&mut msg, &mut w)?
            };
            w.flush()?;
            drop(w);
            if let Some(t) = meta.as_ref().and_then(|m| m.arrived) {
                let when = if t >= 0 {
                    UNIX_EPOCH + std::time::Duration::from_secs(t as u64)
                } else {
                    UNIX_EPOCH - std::time::Duration::from_secs(t.unsigned_abs())
                };
                tmp.file().set_modified(when)?;
            }
            Ok(n)
        })();
        match written {
            Ok(n) => {
                batch.push(tmp, target).at(&out.join("cur"))?;
                report.restored += 1;
                report.bytes += n;
            }
            Err(e) if is_output_error(&e) => {
                return Err(Error::runtime(format!("{}: {}", target.display(), describe_io(&e))));
            }
            Err(e) => {
                let reason = describe_io(&e);
                sink.event(Event::LeftOut { path: &f.path, why: &reason });
                report.failed.push((f.path.clone(), reason));
            }
        }
    }
    commit(&mut batch)?;
    Ok(report)
}

/// The base names (before `:2,`) of the messages of one Maildir restore: the UID, as a
/// Maildir a server wrote would have it, or for a file not named after one its name
/// without the archive extensions; the archive's layers are gone from what it holds.
#[derive(Default)]
struct MaildirNames(std::collections::HashSet<String>);

impl MaildirNames {
    /// A name for `f` that no earlier message of this restore has.
    fn unique(&mut self, f: &ArchiveFile) -> String {
        let base = match f.uid {
            Some(uid) => uid.to_string(),
            None => {
                let name = f.name();
                let stem = name.find(".mbox").map_or(name.as_str(), |end| &name[..end]);
                // `:` starts a Maildir name's flags; `/` cannot be in it.
                let stem: String = stem.chars().map(|c| if c == ':' || c == '/' { '_' } else { c }).collect();
                if stem.is_empty() {
                    "message".to_string()
                } else {
                    stem
                }
            }
        };
        let mut name = base.clone();
        let mut n = 1;
        while !self.0.insert(name.clone()) {
            n += 1;
            name = format!("{base}.{n}");
        }
        name
    }
}
