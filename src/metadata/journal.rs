//! The journal file: its lines, sealed frames, reading with a torn last line ignored, and
//! appending after a crash's torn line is cut off.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{hex, unhex32, Entry};
use crate::codec::{base64::Base64Writer, cipher, Finish};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::keys::Keys;

const MAGIC: &str = "smailarchiver-metadata 1";
/// Longest line read: a frame of [`FRAME_ENTRIES`] entries with flags, sealed.
const MAX_LINE: usize = 8 << 20;
/// Entries per appended line at most.
const FRAME_ENTRIES: usize = 1000;

/// A line's parsed content.
pub(super) enum Line {
    Message(Entry),
    Flags(u32, Vec<String>),
    /// An INTERNALDATE learnt later (for a message whose line a crash lost, or archived
    /// before metadata was kept).
    Date(u32, String),
    Modseq(u64),
    /// A run began writing: until its mark, flags are not known to be up to date.
    Begin,
}

fn parse_flags(text: &str) -> Vec<String> {
    text.split(' ').filter(|f| crate::imap::wire::flag_ok(f.as_bytes())).map(str::to_string).collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let mut f = line.split('\t');
    match f.next()? {
        "M" => {
            let uid = f.next()?.parse().ok()?;
            let size = f.next()?.parse().ok()?;
            let digest = unhex32(f.next()?)?;
            let date = f.next()?;
            let internal_date = (!date.is_empty()).then(|| date.to_string());
            let flags = parse_flags(f.next()?);
            Some(Line::Message(Entry { uid, size, digest, internal_date, flags }))
        }
        "F" => Some(Line::Flags(f.next()?.parse().ok()?, parse_flags(f.next()?))),
        "D" => {
            let uid = f.next()?.parse().ok()?;
            let date = f.next().filter(|d| crate::imap::wire::internal_date_ok(d))?;
            Some(Line::Date(uid, date.to_string()))
        }
        "S" => Some(Line::Modseq(f.next()?.parse().ok()?)),
        "B" => Some(Line::Begin),
        _ => None,
    }
}

fn entry_line(e: &Entry) -> String {
    format!(
        "M\t{}\t{}\t{}\t{}\t{}\n",
        e.uid,
        e.size,
        hex(&e.digest),
        e.internal_date.as_deref().unwrap_or(""),
        e.flags.join(" ")
    )
}

fn flags_line(uid: u32, flags: &[String]) -> String {
    format!("F\t{uid}\t{}\n", flags.join(" "))
}

/// Seals `plain` into one frame line (without its line break).
fn seal(keys: &Keys, plain: &[u8]) -> io::Result<Vec<u8>> {
    let (sink, out) = crate::codec::shared_sink();
    let mut w = cipher::EncryptWriter::new(keys, Box::new(Base64Writer::new(sink)))?;
    w.write_all(plain)?;
    Box::new(w).finish()?;
    let sealed = out.lock().map_err(|_| io::Error::other("poisoned"))?.clone();
    Ok(sealed)
}

/// Opens a frame line, checking its MAC first.
fn unseal(keys: &Keys, line: &[u8]) -> io::Result<Vec<u8>> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a metadata frame that is not base64"))?;
    let checked = cipher::check_mac(keys, &raw[..])?;
    let mut plain = Vec::new();
    cipher::DecryptReader::new(keys, checked, &raw[..]).read_to_end(&mut plain)?;
    Ok(plain)
}

/// The header line, naming the journal's mode.
fn header(encrypted: bool) -> String {
    format!("{MAGIC} {}\n", if encrypted { "encrypted" } else { "plain" })
}

/// The name frames carry: the journal's file name and its user directory.
fn frame_name(path: &Path) -> String {
    let part =
        |p: Option<&Path>| p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("folder {}/{}\n", part(path.parent()), part(Some(path)))
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::runtime(format!("{}: {why} (the metadata journal is damaged or was changed)", path.display()))
}

/// Reads a journal, handing each line's content to `on`. A torn last line (no line break:
/// a crash while appending) is ignored; any other bad line is an error.
pub(super) fn read_journal(path: &Path, keys: Option<&Keys>, on: &mut dyn FnMut(Line)) -> Result<()> {
    let file = File::open(path).at(path)?;
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut first = Vec::new();
    r.by_ref().take(256).read_until(b'\n', &mut first).at(path)?;
    let encrypted = if first == header(true).as_bytes() {
        true
    } else if first == header(false).as_bytes() {
        false
    } else {
        return Err(damaged(path, "not a metadata journal of format 1"));
    };
    let keys = match (encrypted, keys) {
        (true, None) => {
            return Err(Error::runtime(format!("{}: the metadata is encrypted: give the key file", path.display())))
        }
        (true, Some(k)) => Some(k),
        (false, _) => None,
    };
    let name = frame_name(path);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).at(path)?;
        if n == 0 || !line.ends_with(b"\n") {
            if line.len() > MAX_LINE {
                return Err(damaged(path, format!("a line of more than {MAX_LINE} bytes")));
            }
            return Ok(());
        }
        line.pop();
        let plain = match keys {
            Some(k) => {
                let plain = unseal(k, &line).map_err(|e| damaged(path, describe_io(&e)))?;
                let Some(rest) = plain.strip_prefix(name.as_bytes()) else {
                    return Err(damaged(path, "a frame of another folder"));
                };
                rest.to_vec()
            }
            None => {
                line.push(b'\n');
                std::mem::take(&mut line)
            }
        };
        let text = std::str::from_utf8(&plain).map_err(|_| damaged(path, "a line that is not text"))?;
        for l in text.lines() {
            on(parse_line(l).ok_or_else(|| damaged(path, format!("cannot read line {:?}", l)))?);
        }
    }
}

/// Appends lines to a folder's journal, creating it (and its directories) on first use.
pub struct Journal {
    path: PathBuf,
    keys: Option<Keys>,
    file: Option<File>,
    written: bool,
}

impl Journal {
    /// The journal at `path`; sealed with `keys` when given. Nothing is opened yet.
    pub fn new(path: PathBuf, keys: Option<Keys>) -> Journal {
        Journal { path, keys, file: None, written: false }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file, opened for appending: a new one gets its header; a torn last line is cut
    /// off; a journal of the other mode (the account's encryption was switched) is an error.
    fn file(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            let path = &self.path;
            if let Some(dir) = path.parent() {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).at(dir)?;
            }
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .at(path)?;
            let len = file.metadata().at(path)?.len();
            let want = header(self.keys.is_some());
            if len == 0 {
                file.write_all(want.as_bytes()).at(path)?;
            } else {
                let mut first = Vec::new();
                BufReader::new(&mut file).take(256).read_until(b'\n', &mut first).at(path)?;
                if first != want.as_bytes() {
                    let other = if self.keys.is_some() { "not encrypted" } else { "encrypted" };
                    return Err(Error::runtime(format!(
                        "{}: the metadata journal is {other}, unlike this backup: move it away to start a new one",
                        path.display()
                    )));
                }
                let keep = complete_length(&mut file, len).at(path)?;
                if keep < len {
                    file.set_len(keep).at(path)?;
                }
            }
            file.seek(SeekFrom::End(0)).at(path)?;
            self.file = Some(file);
        }
        self.file.as_mut().ok_or_else(|| Error::runtime("metadata journal not open"))
    }

    fn append_lines(&mut self, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let name = frame_name(&self.path);
        let mut out = Vec::new();
        for chunk in lines.chunks(FRAME_ENTRIES) {
            match &self.keys {
                Some(k) => {
                    let mut plain = name.clone().into_bytes();
                    chunk.iter().for_each(|l| plain.extend_from_slice(l.as_bytes()));
                    out.extend(seal(k, &plain).map_err(|e| Error::runtime(describe_io(&e)))?);
                    out.push(b'\n');
                }
                None => chunk.iter().for_each(|l| out.extend_from_slice(l.as_bytes())),
            }
        }
        let path = self.path.clone();
        // One write per call: a crash tears at most the last line.
        self.file()?.write_all(&out).at(&path)?;
        self.written = true;
        Ok(())
    }

    /// Records newly archived messages (after their files are committed).
    pub fn messages(&mut self, entries: &[Entry]) -> Result<()> {
        self.append_lines(&entries.iter().map(entry_line).collect::<Vec<_>>())
    }

    /// Records flags that changed.
    pub fn flags(&mut self, changed: &[(u32, Vec<String>)]) -> Result<()> {
        self.append_lines(&changed.iter().map(|(u, f)| flags_line(*u, f)).collect::<Vec<_>>())
    }

    /// Records INTERNALDATEs learnt after the messages were archived.
    pub fn dates(&mut self, dates: &[(u32, String)]) -> Result<()> {
        self.append_lines(&dates.iter().map(|(u, d)| format!("D\t{u}\t{d}\n")).collect::<Vec<_>>())
    }

    /// Records that a run starts committing messages: should it be killed before their
    /// lines are written, the journal no longer ends with a mark, and the next run asks
    /// every message's flags (and the dates it lacks) instead of only the changes.
    pub fn begin(&mut self) -> Result<()> {
        self.append_lines(&["B\n".to_string()])
    }

    /// Records that the flags are up to date with the server's HIGHESTMODSEQ `modseq`.
    pub fn modseq(&mut self, modseq: u64) -> Result<()> {
        self.append_lines(&[format!("S\t{modseq}\n")])
    }

    /// Makes what was appended durable.
    pub fn sync(&mut self) -> Result<()> {
        if let (true, Some(f)) = (self.written, self.file.as_ref()) {
            f.sync_all().at(&self.path)?;
            self.written = false;
        }
        Ok(())
    }
}

/// The length of `file` up to its last line break (what a crash mid-append leaves whole).
fn complete_length(file: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let piece = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(piece)?;
        if let Some(i) = piece.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The HIGHESTMODSEQ recorded by the journal's last line, read from its end only (a
/// no-op run asks this of every folder).
pub fn last_modseq(path: &Path, keys: Option<&Keys>) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let end = complete_length(&mut file, len).ok()?;
    let start = end.saturating_sub(16 * 1024);
    let mut tail = vec![0u8; (end - start) as usize];
    file.seek(SeekFrom::Start(start)).ok()?;
    file.read_exact(&mut tail).ok()?;
    let tail = tail.strip_suffix(b"\n")?;
    let last = &tail[tail.iter().rposition(|&b| b == b'\n')? + 1..];
    let plain = match keys {
        Some(k) => unseal(k, last).ok()?.strip_prefix(frame_name(path).as_bytes())?.to_vec(),
        None => last.to_vec(),
    };
    let text = std::str::from_utf8(&plain).ok()?;
    match parse_line(text.lines().last()?)? {
        Line::Modseq(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{journal_path, Index};
    use super::*;

    fn entry(uid: u32, flags: &[&str]) -> Entry {
        Entry {
            uid,
            size: 100 + u64::from(uid),
            digest: [uid as u8; 32],
            internal_date: Some("07-Jul-2019 02:44:25 -0700".into()),
            flags: flags.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn journal_round_trip(keys: Option<Keys>) {
        let dir = std::env::temp_dir().join(format!("sa-meta-{}-{}", std::process::id(), keys.is_some()));
        let _ = fs::remove_dir_all(&dir);
        let path = journal_path(&dir, "user", "INBOX", 7);
        let mut j = Journal::new(path.clone(), keys.clone());
        j.messages(&[entry(3, &["\\Seen"]), entry(1, &[])]).unwrap();
        j.flags(&[(1, vec!["\\Flagged".into(), "$Work".into()]), (9, vec!["\\Seen".into()])]).unwrap();
        j.modseq(42).unwrap();
        j.sync().unwrap();
        assert_eq!(last_modseq(&path, keys.as_ref()), Some(42));
        // A torn append is ignored by readers and cut off by the next writer.
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"M\t5\tgarb").unwrap();
        let index = Index::load(&path, keys.as_ref(), true).unwrap();
        assert_eq!(index.modseq, Some(42));
        let one = index.lookup(1).unwrap();
        assert_eq!(one.flags, ["\\Flagged", "$Work"]);
        assert_eq!(one.internal_date.as_deref(), Some("07-Jul-2019 02:44:25 -0700"));
        assert_eq!((one.size, one.digest), (Some(101), Some([1; 32])));
        let nine = index.lookup(9).unwrap();
        assert_eq!((nine.flags.len(), nine.internal_date, nine.digest, nine.size), (1, None, None, None));
        assert!(index.lookup(5).is_none());
        assert_eq!(index.archived_uids().collect::<Vec<_>>(), [1, 3]);
        let mut j = Journal::new(path.clone(), keys.clone());
        j.messages(&[entry(5, &["\\Answered"])]).unwrap();
        assert_eq!(last_modseq(&path, keys.as_ref()), None, "the last line is no longer the mark");
        let index = Index::load(&path, keys.as_ref(), false).unwrap();
        assert_eq!(index.lookup(5).unwrap().flags, ["\\Answered"]);
        assert_eq!(index.lookup(5).unwrap().digest, None, "not asked for");
        // A run that began (and was killed) leaves no mark; dates learnt later fill in.
        j.modseq(43).unwrap();
        j.begin().unwrap();
        assert_eq!(last_modseq(&path, keys.as_ref()), None);
        j.dates(&[(9, "01-Feb-2018 00:00:00 +0000".into())]).unwrap();
        let index = Index::load(&path, keys.as_ref(), false).unwrap();
        assert_eq!(index.modseq, None);
        let nine = index.lookup(9).unwrap();
        assert_eq!((nine.flags, nine.arrived), (vec!["\\Seen".to_string()], Some(1517443200)));
        assert!(index.has_date(9) && !index.has_date(4));
        if keys.is_some() {
            let text = fs::read_to_string(&path).unwrap();
            assert!(!text.contains("Answered") && !text.contains("Jul"), "sealed");
            // A changed byte in a frame is caught.
            let mut bytes = text.into_bytes();
            let at = bytes.len() / 2;
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            fs::write(&path, bytes).unwrap();
            assert!(Index::load(&path, keys.as_ref(), false).is_err());
            assert!(Index::load(&path, None, false).is_err(), "no keys, no metadata");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_journal() {
        journal_round_trip(None);
    }

    #[test]
    fn sealed_journal() {
        let text = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
        let keys = crate::keys::from_texts(Path::new("k"), text, None, None).unwrap();
        journal_round_trip(Some(keys));
    }
}
