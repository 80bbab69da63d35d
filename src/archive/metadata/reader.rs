//! Reading a journal file's records, each checked on its own: a damaged record is reported
//! with its line number and skipped, the others are read. Format 2 (this version's) and
//! format 1 (earlier 0.7.0 builds: lines or sealed frames of lines, no per-record check
//! beyond the frame's) are both read.
//!
//! Files are read with `pread` from a snapshot of their length taken when opened: lines a
//! backup appends meanwhile are not seen, and a journal replaced by a compaction is read
//! from the file that was opened.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::line::{LineCodec, LineError};
use super::record::{self, Fields, Mark, Record};
use crate::error::{Error, IoContext, Result};
use crate::keys::Keys;

/// The first line of a format 2 journal, before its mode.
pub const MAGIC_2: &str = "smailarchiver-metadata 2";
/// The first line of a format 1 journal, before its mode.
pub const MAGIC_1: &str = "smailarchiver-metadata 1";
/// Longest line of format 2 (a sealed record of [`record::MAX_TEXT`]).
pub const MAX_LINE_2: usize = 96 * 1024;
/// Longest line of format 1 (a sealed frame of 1000 entries).
const MAX_LINE_1: usize = 8 << 20;

/// Opens a journal for reading, never through a symlink: it is under the archive root,
/// where another program with write access could have swapped one in.
fn open_journal(path: &Path) -> std::io::Result<File> {
    crate::os::file::open_no_follow(File::options().read(true), path)
}

/// The header line of a format 2 journal.
pub fn header(encrypted: bool) -> String {
    format!("{MAGIC_2} {}\n", if encrypted { "encrypted" } else { "plain" })
}

/// Whether the journal at `path` is sealed (its header says `encrypted`); `None` when it
/// cannot be read or is not a journal.
pub fn is_sealed(path: &Path) -> Option<bool> {
    let file = Arc::new(open_journal(path).ok()?);
    let len = file.metadata().ok()?.len();
    let mut first = Vec::new();
    Lines::new(file, 0, len, 1).next_line(&mut first, 256).ok()??.ok()?;
    let mode = first.strip_prefix(MAGIC_2.as_bytes()).or_else(|| first.strip_prefix(MAGIC_1.as_bytes()))?;
    match mode {
        b" encrypted" => Some(true),
        b" plain" => Some(false),
        _ => None,
    }
}

/// A damaged record: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Its line number (1 is the header).
    pub line: u64,
    /// Why it could not be read.
    pub why: LineError,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// Where things are in a journal file.
#[derive(Clone, Debug)]
pub struct Layout {
    /// 1 or 2.
    pub version: u8,
    /// Whether its records are sealed.
    pub encrypted: bool,
    /// Length of the header line.
    pub header_len: u64,
    /// The head record's line (format 2), `header_len..base.start`.
    pub head_end: u64,
    /// The sorted base records (format 2; empty when the head is damaged).
    pub base: (u64, u64),
    /// Records after the base, in the order written: all records of format 1.
    pub tail: (u64, u64),
    /// The head record was damaged: everything after it is read as tail.
    pub head_damaged: Option<Damage>,
    /// Line number of the first base line.
    pub base_line: u64,
    /// Line number of the first tail line.
    pub tail_line: u64,
}

/// An open journal: its file, layout and line codec, shared by its readers.
pub struct Source {
    /// The journal's path (for messages).
    pub path: PathBuf,
    /// The open file.
    pub file: Arc<File>,
    /// Where things are.
    pub layout: Layout,
    /// How its lines are checked.
    pub codec: LineCodec,
    /// The frame name of format 1's sealed frames.
    frame_name: String,
}

/// The name a journal's records are bound to: its user directory and file name.
pub fn binding(path: &Path) -> String {
    let part =
        |p: Option<&Path>| p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("folder {}/{}", part(path.parent()), part(Some(path)))
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::runtime(format!("{}: {why} (the metadata journal is damaged or was changed)", path.display()))
}

impl Source {
    /// Opens the journal at `path` (keys when it is encrypted) and finds its parts.
    pub fn open(path: &Path, keys: Option<&Keys>) -> Result<Source> {
        let file = open_journal(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        Source::of_file(path, file, len, keys)
    }

    /// [`Source::open`] for a file already open, read up to `len`.
    pub fn of_file(path: &Path, file: File, len: u64, keys: Option<&Keys>) -> Result<Source> {
        let file = Arc::new(file);
        let mut lines = Lines::new(file.clone(), 0, len, 1);
        let mut first = Vec::new();
        let header_len = match lines.next_line(&mut first, 256).at(path)? {
            Some(Ok(_)) => lines.pos(),
            _ => return Err(damaged(path, "not a metadata journal")),
        };
        let (version, mode) = if let Some(m) = first.strip_prefix(MAGIC_2.as_bytes()) {
            (2, m)
        } else if let Some(m) = first.strip_prefix(MAGIC_1.as_bytes()) {
            (1, m)
        } else {
            return Err(damaged(path, "not a metadata journal of format 1 or 2"));
        };
        let encrypted = match mode {
            b" encrypted" => true,
            b" plain" => false,
            _ => return Err(damaged(path, "not a metadata journal of format 1 or 2")),
        };
        let keys = match (encrypted, keys) {
            (true, None) => {
                return Err(Error::runtime(format!("{}: the metadata is encrypted: give the key file", path.display())))
            }
            (true, Some(k)) => Some(k.clone()),
            (false, _) => None,
        };
        let codec = LineCodec::new(keys, binding(path));
        let mut layout = Layout {
            version,
            encrypted,
            header_len,
            head_end: header_len,
            base: (header_len, header_len),
            tail: (header_len, len),
            head_damaged: None,
            base_line: 2,
            tail_line: 2,
        };
        if version == 2 {
            let mut line = Vec::new();
            let head_start = lines.pos();
            let head = lines.next_line(&mut line, MAX_LINE_2).at(path)?;
            // A torn head line (a crash creating the file) is no line: nothing follows.
            let head_end = if head.is_some() { lines.pos() } else { head_start };
            layout.head_end = head_end;
            layout.base = (head_end, head_end);
            layout.tail = (head_end, len);
            layout.base_line = 3;
            layout.tail_line = 3;
            let why = match head {
                None => None,
                Some(Err(())) => Some(LineError::Damaged("a line too long".into())),
                Some(Ok(_)) => match codec.decode(&line).map(|t| record::parse(&t)) {
                    Ok(Some(Record::Head { base_end, count })) => {
                        let ends_line = base_end == head_end || {
                            let mut b = [0u8; 1];
                            base_end > head_end && file.read_exact_at(&mut b, base_end - 1).is_ok() && b[0] == b'\n'
                        };
                        if base_end <= len && ends_line {
                            layout.base = (head_end, base_end);
                            layout.tail = (base_end, len);
                            layout.tail_line = 3 + count;
                            None
                        } else {
                            Some(LineError::Damaged("its base ends outside the file".into()))
                        }
                    }
                    Ok(_) => Some(LineError::Damaged("not a head record".into())),
                    Err(e) => Some(e),
                },
            };
            layout.head_damaged = why.map(|why| Damage { line: 2, why });
        }
        Ok(Source { path: path.to_path_buf(), file, layout, codec, frame_name: format!("{}\n", binding(path)) })
    }

    /// The records from byte `from` to `to`, where line `line` starts.
    pub fn records(self: &Arc<Self>, from: u64, to: u64, line: u64) -> Records {
        Records {
            src: self.clone(),
            lines: Lines::new(self.file.clone(), from, to, line),
            pending: VecDeque::new(),
            buf: Vec::new(),
        }
    }

    /// The base records (sorted by UID).
    pub fn base(self: &Arc<Self>) -> Records {
        self.records(self.layout.base.0, self.layout.base.1, self.layout.base_line)
    }

    /// The records after the base.
    pub fn tail(self: &Arc<Self>) -> Records {
        self.records(self.layout.tail.0, self.layout.tail.1, self.layout.tail_line)
    }
}

/// The records of a range of a journal, in file order: each `Ok` with the line it came
/// from, or the damage that stood in its place.
pub struct Records {
    src: Arc<Source>,
    lines: Lines,
    /// Records of a format 1 frame not handed out yet.
    pending: VecDeque<(Record, u64)>,
    buf: Vec<u8>,
}

impl Records {
    /// The line number of the next line.
    pub fn line(&self) -> u64 {
        self.lines.number
    }

    /// The next record, or the damage in its place; `None` at the end (a torn last line,
    /// without its line break, is not read).
    pub fn next_record(&mut self) -> Option<std::result::Result<(Record, u64), Damage>> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(Ok(r));
            }
            let max = if self.src.layout.version == 1 { MAX_LINE_1 } else { MAX_LINE_2 };
            let number = self.lines.number;
            let got = match self.lines.next_line(&mut self.buf, max) {
                Ok(got) => got?,
                Err(e) => {
                    // A read error ends the range: what follows cannot be read either.
                    self.lines.pos = self.lines.end;
                    return Some(Err(Damage { line: number, why: LineError::Damaged(crate::error::describe_io(&e)) }));
                }
            };
            let damage = |why: LineError| Some(Err(Damage { line: number, why }));
            if got.is_err() {
                return damage(LineError::Damaged("a line too long".into()));
            }
            if self.src.layout.version == 2 {
                return match self.src.codec.decode(&self.buf) {
                    Ok(text) => match record::parse(&text) {
                        Some(r) => Some(Ok((r, number))),
                        None => damage(LineError::Damaged("not a record".into())),
                    },
                    Err(e) => damage(e),
                };
            }
            // Format 1: a line, or a sealed frame of lines naming its folder.
            let text = if let Some(keys) = self.src.codec.keys() {
                match super::line::unseal(keys, &self.buf) {
                    Ok(plain) => match plain.strip_prefix(self.src.frame_name.as_bytes()) {
                        Some(rest) => rest.to_vec(),
                        None => return damage(LineError::Damaged("a frame of another folder".into())),
                    },
                    Err(e) => return damage(e),
                }
            } else {
                std::mem::take(&mut self.buf)
            };
            let Ok(text) = String::from_utf8(text) else { return damage(LineError::Damaged("not text".into())) };
            let mut records = Vec::new();
            for l in text.lines() {
                match parse_v1(l) {
                    Some(r) => records.push((r, number)),
                    None => return damage(LineError::Damaged(format!("cannot read line {l:?}"))),
                }
            }
            self.pending.extend(records);
        }
    }
}

/// A format 1 line as a record.
fn parse_v1(line: &str) -> Option<Record> {
    let mut f = line.split('\t');
    let flags = |text: &str| record::join_flags(&text.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>());
    let date = |d: &str| super::parse_internal_date(d);
    match f.next()? {
        "M" => {
            let uid = f.next()?.parse().ok().filter(|&u| u != 0)?;
            let size = f.next()?.parse().ok()?;
            let digest = super::unhex32(f.next()?)?;
            let d = f.next()?;
            let fields = Fields {
                size: Some(size),
                digest: Some(digest),
                date: if d.is_empty() { None } else { date(d) },
                flags: Some(flags(f.next()?)),
                ..Fields::default()
            };
            Some(Record::Message { uid, fields })
        }
        "F" => {
            let uid = f.next()?.parse().ok().filter(|&u| u != 0)?;
            Some(Record::Update { uid, fields: Fields { flags: Some(flags(f.next()?)), ..Fields::default() } })
        }
        "D" => {
            let uid = f.next()?.parse().ok().filter(|&u| u != 0)?;
            let d = date(f.next()?)?;
            Some(Record::Update { uid, fields: Fields { date: Some(d), ..Fields::default() } })
        }
        "S" => Some(Record::End(Mark { modseq: Some(f.next()?.parse().ok()?), ..Mark::default() })),
        "B" => Some(Record::Begin),
        _ => None,
    }
}

/// Lines of a byte range of a file, read with `pread` (readers of one file never share a
/// position).
pub struct Lines {
    file: Arc<File>,
    /// Next byte to read from the file.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    /// Unread data in `buf`.
    start: usize,
    /// Line number of the next line.
    number: u64,
    /// Bytes to read next: small at first (a header, a last record), growing to [`READ`].
    chunk: usize,
}

const READ: usize = 64 * 1024;
const FIRST_READ: usize = 4 * 1024;

impl Lines {
    /// The lines of `from..to`; `number` is the first line's number.
    pub fn new(file: Arc<File>, from: u64, to: u64, number: u64) -> Lines {
        Lines { file, pos: from, end: to.max(from), buf: Vec::new(), start: 0, number, chunk: FIRST_READ }
    }

    /// The file offset of the next line.
    pub fn pos(&self) -> u64 {
        self.pos - (self.buf.len() - self.start) as u64
    }

    /// Reads the next line (without its line break) into `out`: `Ok(Some(Ok(())))`, or
    /// `Ok(Some(Err(())))` for a line longer than `max` (skipped), `Ok(None)` at the end;
    /// a last piece without a line break (a torn append) is not a line.
    pub fn next_line(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<Option<std::result::Result<(), ()>>> {
        out.clear();
        let mut too_long = false;
        loop {
            let data = &self.buf[self.start..];
            if let Some(i) = data.iter().position(|&b| b == b'\n') {
                if !too_long {
                    out.extend_from_slice(&data[..i]);
                }
                self.start += i + 1;
                self.number += 1;
                return Ok(Some(if too_long || out.len() > max { Err(()) } else { Ok(()) }));
            }
            // Not a whole line yet: keep what is there (unless it is already too long).
            if !too_long {
                out.extend_from_slice(data);
                if out.len() > max {
                    too_long = true;
                    out.clear();
                }
            }
            self.buf.clear();
            self.start = 0;
            if self.pos >= self.end {
                return Ok(None);
            }
            let want = self.chunk.min((self.end - self.pos) as usize);
            self.chunk = (self.chunk * 2).min(READ);
            self.buf.resize(want, 0);
            let n = self.file.read_at(&mut self.buf, self.pos)?;
            if n == 0 {
                self.buf.clear();
                self.end = self.pos;
                return Ok(None);
            }
            self.buf.truncate(n);
            self.pos += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::metadata::Journal;

    /// A journal is read only as itself: a symlink swapped in for it is refused.
    #[test]
    fn a_symlink_in_place_of_a_journal_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("smail-journal-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let real = dir.join("real");
        let mut j = Journal::new(real.clone(), None);
        j.begin().unwrap();
        j.sync().unwrap();
        let link = dir.join("swapped");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(is_sealed(&real), Some(false));
        assert_eq!(is_sealed(&link), None);
        assert!(Source::open(&real, None).is_ok());
        let err = Source::open(&link, None).err().expect("the symlink was followed").to_string();
        assert!(err.contains("symbolic links"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
