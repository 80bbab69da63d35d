//! Restore: a folder directory's archive files, in ascending UID order, into one mboxrd
//! file (`DIR.mbox` by default) or a Maildir. A file that fails is reported and left out;
//! the rest are restored. The output appears only when complete (temporary file, then
//! rename). [`account`] restores every folder of a user directory.

pub mod account;

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::archive::{self, ArchiveFile};
use crate::atomic::{Batch, TempFile};
use crate::codec::{self, base64::read_full, BUF_SIZE};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::keys::Keys;
use crate::mbox::{separator_line, MboxrdWriter};
use crate::readahead::ReadAhead;

/// Maildir messages named per filesystem sync.
const MAILDIR_BATCH: usize = 256;

/// How much of a message's start is read to build its mbox separator line.
const HEAD_LEN: usize = 64 * 1024;

/// Encrypted files tried before a key that authenticates none of them is called wrong.
pub const KEY_PROBES: usize = 3;

/// Checks `keys` (from `key_path`) against the first encrypted `files`: when
/// [`KEY_PROBES`] of them in a row fail their MAC check and none passes, the key is
/// wrong (every file changed is far less likely), and one line says so instead of one
/// per file. Fewer encrypted files, or one that passes, leave it to the per-file report;
/// files damaged in other ways are skipped (a few at most).
pub fn check_key(files: &[ArchiveFile], keys: &Keys, key_path: &Path) -> Result<()> {
    let mut mismatches = 0;
    for f in files.iter().filter(|f| f.form.encrypted).take(2 * KEY_PROBES) {
        let Ok(file) = fs::File::open(&f.path) else { continue };
        match codec::open_sealed(file, f.form, Some(keys)) {
            Ok(_) => return Ok(()),
            Err(e) if codec::cipher::is_mac_mismatch(&e) => mismatches += 1,
            Err(_) => continue,
        }
        if mismatches == KEY_PROBES {
            return Err(Error::runtime(format!(
                "the key {} does not match: none of the first {KEY_PROBES} encrypted files authenticates with it \
                 (wrong key file or password?)",
                key_path.display()
            )));
        }
    }
    Ok(())
}

/// Where restored messages go.
#[derive(Clone, Debug)]
pub enum Target {
    /// An mboxrd file (by default `DIR.mbox`, beside DIR).
    Mbox(PathBuf),
    /// A Maildir (created if needed).
    Maildir(PathBuf),
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Report {
    /// The mbox file or Maildir written.
    pub output: PathBuf,
    /// Messages restored.
    pub restored: usize,
    /// Message bytes restored.
    pub bytes: u64,
    /// Files left out, with the reason.
    pub failed: Vec<(PathBuf, String)>,
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
/// (checked before anything is written). `on_failure` hears of each file left out as it
/// happens.
pub fn restore(
    dir: &Path,
    target: &Target,
    keys: Option<&Keys>,
    on_failure: &mut dyn FnMut(&Path, &str),
) -> Result<Report> {
    let files = archive::list_folder(dir)?;
    if files.iter().any(|f| f.form.encrypted) && keys.is_none() {
        return Err(Error::runtime(format!("{}: encrypted files, but no keys loaded", dir.display())));
    }
    let mut ahead = ReadAhead::spawn(files.clone(), keys.cloned())?;
    match target {
        Target::Mbox(output) => to_mbox(&files, output, &mut ahead, on_failure),
        Target::Maildir(out) => to_maildir(&files, out, &mut ahead, on_failure),
    }
}

/// The directory a file is in (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn to_mbox(
    files: &[ArchiveFile],
    output: &Path,
    ahead: &mut ReadAhead,
    on_failure: &mut dyn FnMut(&Path, &str),
) -> Result<Report> {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = TempFile::create_in(parent_of(output), &name, 0o600).map_err(|e| {
        let hint = if matches!(e.raw_os_error(), Some(libc::EROFS | libc::EACCES | libc::EPERM)) {
            " (a read-only archive? write elsewhere with -o PATH)"
        } else {
            ""
        };
        Error::runtime(format!("{}: {}{hint}", parent_of(output).display(), describe_io(&e)))
    })?;
    let mut report = Report { output: output.to_path_buf(), ..Report::default() };
    let mut good_len = 0u64;
    for f in files {
        // The temporary file goes with `tmp`: no half-written output.
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        let mut out = BufWriter::with_capacity(BUF_SIZE, tmp.file());
        match ahead.next_message().and_then(|(_, mut msg)| append_mbox(f, &mut msg, &mut out)) {
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
                on_failure(&f.path, &reason);
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
fn append_mbox(f: &ArchiveFile, mut msg: &mut impl Read, out: &mut impl Write) -> io::Result<u64> {
    let mut head = vec![0u8; HEAD_LEN];
    let n = read_full(&mut msg, &mut head)?;
    head.truncate(n);
    let mtime = fs::metadata(&f.path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    out.write_all(&separator_line(&head, mtime))?;
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
    ahead: &mut ReadAhead,
    on_failure: &mut dyn FnMut(&Path, &str),
) -> Result<Report> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(out.join(sub)).at(&out.join(sub))?;
    }
    let mut report = Report { output: out.to_path_buf(), ..Report::default() };
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
        let target = out.join("cur").join(format!("{name}:2,"));
        let tmp = TempFile::create_in(&out.join("tmp"), &name, 0o600).at(&out.join("tmp"))?;
        let written = (|| -> io::Result<u64> {
            let (_, mut msg) = ahead.next_message()?;
            let mut w = BufWriter::with_capacity(BUF_SIZE, tmp.file());
            let n = codec::pump(&mut msg, &mut w)?;
            w.flush()?;
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
                on_failure(&f.path, &reason);
                report.failed.push((f.path.clone(), reason));
            }
        }
    }
    commit(&mut batch)?;
    Ok(report)
}

/// Reads a whole stream, for callers that decode into nothing.
pub fn drain(r: &mut impl Read) -> io::Result<u64> {
    codec::pump(r, &mut io::sink())
}
