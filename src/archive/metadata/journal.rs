//! Writing a folder's journal (format 2): records appended after the messages they
//! describe are committed, an end record when a run is done with the folder, and now and
//! then a compaction that rewrites the journal as one sorted record per message, so its
//! size (and the time to read it) follows the number of messages, not of records written.
//!
//! File: the header line, a head record (where the sorted base ends: fixed width, written
//! in place by a compaction before the file takes the journal's name), the base, then
//! the tail of appended records. A crash leaves at worst a torn last line, cut off by the
//! next writer. After its end record the file's modification time is set to the record's
//! time: a journal changed by anything else afterwards (a damaged byte written, a copy
//! edited) no longer matches, and the next backup reads it whole and repairs it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::index::Index;
use super::line::LineCodec;
use super::reader::{self, binding, Source, MAX_LINE_2};
use super::record::{join_flags, Fields, Gone, Mark, Record};
use super::{parse_internal_date, Entry};
use crate::archive::files::atomic::{self, TempFile};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::keys::Keys;
use crate::os::file::{self, set_mtime};

/// A tail shorter than this is never compacted.
const MIN_TAIL: u64 = 1 << 20;
/// Past this part of the base's size, a tail is compacted.
const TAIL_SHARE: u64 = 4;
/// Records per write at most (one write per call otherwise).
const RECORDS_PER_WRITE: usize = 1000;

/// Unix time in seconds, now.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Appends records to a folder's journal, creating it (and its directories) on first use.
pub struct Journal {
    path: PathBuf,
    keys: Option<Keys>,
    codec: LineCodec,
    file: Option<File>,
    /// Where the tail starts, and the base's size.
    tail_start: u64,
    base_len: u64,
    /// Something was written since the last end record.
    dirty: bool,
    /// What the next end record says.
    modseq: Option<u64>,
    gone: Option<u64>,
    /// Rewrite the journal at the next sync (damage was found).
    compact: bool,
    /// Made by this run, its name not yet synced in its directory.
    name_unsynced: bool,
}

impl Journal {
    /// The journal at `path`; sealed with `keys` when given. Nothing is opened yet.
    pub fn new(path: PathBuf, keys: Option<Keys>) -> Journal {
        let codec = LineCodec::new(keys.clone(), binding(&path));
        Journal {
            path,
            keys,
            codec,
            file: None,
            tail_start: 0,
            base_len: 0,
            dirty: false,
            modseq: None,
            gone: None,
            compact: false,
            name_unsynced: false,
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn header(&self) -> String {
        reader::header(self.keys.is_some())
    }

    /// The file, opened for appending: a new one gets its header and head record; a torn
    /// last line is cut off; a journal of format 1 is converted; one of the other mode (the
    /// account's encryption was switched) is an error.
    fn file(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            self.open()?;
        }
        self.file.as_mut().ok_or_else(|| Error::runtime("metadata journal not open"))
    }

    fn open(&mut self) -> Result<()> {
        let path = self.path.clone();
        if let Some(dir) = path.parent() {
            atomic::make_dirs(dir)?;
        }
        let created = !path.exists();
        let mut file = file::open_no_follow(
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600),
            &path,
        )
        .at(&path)?;
        let len = file.metadata().at(&path)?.len();
        if len == 0 {
            let mut out = self.header().into_bytes();
            let head_start = out.len() as u64;
            let head = self.line(&Record::Head { base_end: 0, count: 0 })?;
            let end = head_start + head.len() as u64;
            out.extend(self.line(&Record::Head { base_end: end, count: 0 })?);
            file.write_all(&out).at(&path)?;
            // The new name must survive a crash as the records naming it will: synced with
            // the journal's end ([`Journal::sync`]), or, for a backup's journals
            // ([`Journal::end_unsynced`]), with their directory before the records are
            // written: once for many folders, not once each.
            self.name_unsynced |= created;
            self.tail_start = end;
            self.base_len = 0;
            self.file = Some(file);
            return Ok(());
        }
        let mut first = Vec::new();
        io::BufRead::read_until(&mut io::BufReader::new((&file).take(256)), b'\n', &mut first).at(&path)?;
        let other_mode = if self.keys.is_some() { "plain" } else { "encrypted" };
        let first = String::from_utf8_lossy(&first);
        if first.ends_with(&format!(" {other_mode}\n")) {
            let other = if self.keys.is_some() { "not encrypted" } else { "encrypted" };
            return Err(Error::runtime(format!(
                "{}: the metadata journal is {other}, unlike this backup: move it away to start a new one",
                path.display()
            )));
        }
        let keep = complete_length(&mut file, len).at(&path)?;
        if keep < len {
            file.set_len(keep).at(&path)?;
        }
        let src = Source::of_file(&path, file.try_clone().at(&path)?, keep, self.keys.as_ref())?;
        if src.layout.version == 1 {
            // Earlier builds' journal: rewritten in this format before anything is added.
            self.file = Some(file);
            self.modseq = last_mark(&path, self.keys.as_ref()).and_then(|m| m.modseq);
            return self.rewrite();
        }
        let mark = last_mark(&path, self.keys.as_ref());
        self.modseq = mark.and_then(|m| m.modseq);
        self.gone = mark.and_then(|m| m.gone);
        self.compact |= src.layout.head_damaged.is_some();
        self.tail_start = src.layout.tail.0;
        self.base_len = src.layout.base.1 - src.layout.base.0;
        file.seek(SeekFrom::End(0)).at(&path)?;
        if src.layout.head_end == src.layout.header_len {
            // Its head record was torn off (a crash as it was made): a new one first.
            let head = self.line(&Record::Head { base_end: 0, count: 0 })?;
            let end = keep + head.len() as u64;
            file.write_all(&self.line(&Record::Head { base_end: end, count: 0 })?).at(&path)?;
            self.tail_start = end;
        }
        self.file = Some(file);
        Ok(())
    }

    /// One record's line, line break included.
    fn line(&self, r: &Record) -> Result<Vec<u8>> {
        let mut l = self.codec.encode(&r.text()).map_err(|e| Error::runtime(describe_io(&e)))?;
        l.push(b'\n');
        Ok(l)
    }

    fn append(&mut self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        for chunk in records.chunks(RECORDS_PER_WRITE) {
            let mut out = Vec::new();
            for r in chunk {
                out.extend(self.line(r)?);
            }
            let path = self.path.clone();
            // One write per call: a crash tears at most the last line.
            self.file()?.write_all(&out).at(&path)?;
        }
        self.dirty = true;
        Ok(())
    }

    /// Records newly archived messages (after their files are committed).
    pub fn messages(&mut self, entries: &[Entry]) -> Result<()> {
        let archived = now();
        let records: Vec<Record> = entries
            .iter()
            .map(|e| Record::Message {
                uid: e.uid,
                fields: Fields {
                    size: Some(e.size),
                    digest: Some(e.digest),
                    form: e.form,
                    date: e.internal_date.as_deref().and_then(parse_internal_date),
                    flags: Some(join_flags(&e.flags)),
                    archived: Some(archived),
                    gone: None,
                    headers: e.headers.clone(),
                    labels: e.labels.clone(),
                    gmail: None,
                },
            })
            .collect();
        if !records.is_empty() {
            self.file()?;
            self.modseq = None;
        }
        self.append(&records)
    }

    /// Records fields learnt or changed for messages already recorded.
    fn updates(&mut self, updates: impl Iterator<Item = (u32, Fields)>) -> Result<()> {
        let records: Vec<Record> = updates.map(|(uid, fields)| Record::Update { uid, fields }).collect();
        self.append(&records)
    }

    /// Records flags that changed.
    pub fn flags(&mut self, changed: &[(u32, Vec<String>)]) -> Result<()> {
        self.updates(changed.iter().map(|(u, f)| (*u, Fields { flags: Some(join_flags(f)), ..Fields::default() })))
    }

    /// Records Gmail labels and ids learnt or changed: `(uid, labels, (msgid, thrid))`.
    pub fn gmail(&mut self, changed: &[(u32, Vec<String>, (u64, u64))]) -> Result<()> {
        let fields = |labels: &Vec<String>, ids: (u64, u64)| Fields {
            labels: Some(labels.clone()),
            gmail: Some(ids),
            ..Fields::default()
        };
        self.updates(changed.iter().map(|(u, l, ids)| (*u, fields(l, *ids))))
    }

    /// Records INTERNALDATEs learnt after the messages were archived.
    pub fn dates(&mut self, dates: &[(u32, String)]) -> Result<()> {
        let known = dates.iter().filter_map(|(u, d)| Some((*u, parse_internal_date(d)?)));
        self.updates(
            known.map(|(u, d)| (u, Fields { date: Some(d), ..Fields::default() })).collect::<Vec<_>>().into_iter(),
        )
    }

    /// Records sizes learnt again (for messages whose record was lost).
    pub fn sizes(&mut self, sizes: &[(u32, u64)]) -> Result<()> {
        self.updates(sizes.iter().map(|(u, s)| (*u, Fields { size: Some(*s), ..Fields::default() })))
    }

    /// Records messages that left the server (not recorded as gone before).
    pub fn gone(&mut self, gone: &[(u32, Gone)]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        self.file()?;
        self.gone = self.gone.map(|g| g + gone.len() as u64);
        self.updates(gone.iter().map(|(u, g)| (*u, Fields { gone: Some(*g), ..Fields::default() })))
    }

    /// The number of its messages that left the server, counted whole.
    pub fn set_gone(&mut self, count: u64) {
        self.gone = Some(count);
        self.dirty = true;
    }

    /// Records that a run starts committing messages: should it be killed before their
    /// records are written, the journal does not end with a run's end, and the next run
    /// asks every message's flags (and the dates it lacks) instead of only the changes.
    pub fn begin(&mut self) -> Result<()> {
        self.file()?;
        self.modseq = None;
        self.append(&[Record::Begin])
    }

    /// Records that the flags are up to date with the server's HIGHESTMODSEQ `modseq`.
    pub fn modseq(&mut self, modseq: u64) -> Result<()> {
        self.file()?;
        if self.modseq != Some(modseq) {
            self.modseq = Some(modseq);
            self.dirty = true;
        }
        Ok(())
    }

    /// Ends the run with a new end record even if nothing else changed: the journal was
    /// read whole and is now known to be sound.
    pub fn checked(&mut self, damaged: bool) {
        self.dirty = true;
        self.compact |= damaged;
    }

    /// Ends what was written with an end record (or rewrites the journal when its tail
    /// grew too long, or it held damage) and makes it durable.
    pub fn sync(&mut self) -> Result<()> {
        self.end(true)
    }

    /// [`Journal::sync`] without the fsync of an appended end record, nor of a new
    /// journal's name in its directory: for a backup that syncs many folders' journals and
    /// their directory together before it records them complete. A rewrite is synced all
    /// the same (it replaces the file).
    pub fn end_unsynced(&mut self) -> Result<()> {
        self.end(false)
    }

    fn end(&mut self, durable: bool) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let path = self.path.clone();
        let len = self.file()?.metadata().at(&path)?.len();
        let tail = len.saturating_sub(self.tail_start);
        if self.compact || tail > MIN_TAIL.max(self.base_len / TAIL_SHARE) {
            return self.rewrite();
        }
        let time = now_ns();
        let end = self.line(&Record::End(Mark { time_ns: Some(time), modseq: self.modseq, gone: self.gone }))?;
        let file = self.file()?;
        file.write_all(&end).at(&path)?;
        if durable {
            file.sync_all().at(&path)?;
        }
        set_mtime(file, time).at(&path)?;
        if durable && self.name_unsynced {
            file::sync_dir(atomic::parent_of(&path)).at(&path)?;
            self.name_unsynced = false;
        }
        self.dirty = false;
        Ok(())
    }

    /// Rewrites the journal as its sorted base (one record per message: what all its
    /// records say, damaged ones left out) and an end record, in a temporary file that
    /// then takes its name.
    fn rewrite(&mut self) -> Result<()> {
        let path = self.path.clone();
        let dir = atomic::parent_of(&path).to_path_buf();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let index = Index::of_source(Arc::new(Source::open(&path, self.keys.as_ref())?), true);
        let tmp = TempFile::create_in(&dir, &name, 0o600).at(&dir)?;
        let mut w = BufWriter::with_capacity(64 * 1024, tmp.file());
        let header = self.header().into_bytes();
        let placeholder = self.line(&Record::Head { base_end: 0, count: 0 })?;
        w.write_all(&header).at(tmp.path())?;
        w.write_all(&placeholder).at(tmp.path())?;
        let mut pos = (header.len() + placeholder.len()) as u64;
        let (mut count, mut gone) = (0u64, 0u64);
        let mut cursor = index.entries();
        while let Some((uid, fields)) = cursor.next_fields() {
            gone += u64::from(fields.gone.is_some());
            let line = self.line(&Record::Message { uid, fields })?;
            w.write_all(&line).at(tmp.path())?;
            pos += line.len() as u64;
            count += 1;
        }
        let damage = cursor.damage();
        if count == 0 && damage.iter().any(|d| d.why == super::line::LineError::Mac) {
            // Not one record opens: another key, not damage. Nothing is thrown away.
            return Err(Error::runtime(format!(
                "{}: no record of the metadata journal authenticates with this key: left as it is",
                path.display()
            )));
        }
        let time = now_ns();
        let end = self.line(&Record::End(Mark { time_ns: Some(time), modseq: self.modseq, gone: Some(gone) }))?;
        w.write_all(&end).at(tmp.path())?;
        w.flush().at(tmp.path())?;
        drop(w);
        let head = self.line(&Record::Head { base_end: pos, count })?;
        if head.len() != placeholder.len() {
            return Err(Error::runtime(format!("{}: a head record changed its length", path.display())));
        }
        tmp.file().write_all_at(&head, header.len() as u64).at(tmp.path())?;
        let file = tmp.file().try_clone().at(tmp.path())?;
        tmp.commit(&path, true).at(&path)?;
        // The commit synced the directory.
        self.name_unsynced = false;
        set_mtime(&file, time).at(&path)?;
        self.gone = Some(gone);
        self.tail_start = pos;
        self.base_len = pos - (header.len() + placeholder.len()) as u64;
        let mut file = file;
        file.seek(SeekFrom::End(0)).at(&path)?;
        self.file = Some(file);
        self.dirty = false;
        self.compact = false;
        Ok(())
    }
}

/// The length of `file` up to its last line break (what a crash mid-append leaves whole).
fn complete_length(file: &mut File, len: u64) -> io::Result<u64> {
    let mut end = len;
    // Most files end with their line break: a small read first.
    let mut buf = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let piece = &mut buf[..(end - start) as usize];
        file.read_exact_at(piece, start)?;
        if let Some(i) = piece.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
        buf.resize(64 * 1024, 0);
    }
    Ok(0)
}

/// The journal's last record, read from its end only, if it is a run's end (format 1: an
/// `S` line).
fn last_mark(path: &Path, keys: Option<&Keys>) -> Option<Mark> {
    last_mark_of(&Arc::new(Source::open(path, keys).ok()?))
}

/// [`last_mark`] of an open journal.
fn last_mark_of(src: &Arc<Source>) -> Option<Mark> {
    let len = src.layout.tail.1;
    let mut file = src.file.try_clone().ok()?;
    let end = complete_length(&mut file, len).ok()?;
    let longest = if src.layout.version == 1 { 16 * 1024 } else { MAX_LINE_2 as u64 + 2 };
    // A last record is a few hundred bytes: a small read finds it, a bigger one if not.
    for window in [4096, longest] {
        let start = end.saturating_sub(window).max(src.layout.head_end).min(end);
        let mut tail = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut tail, start).ok()?;
        let body = tail.strip_suffix(b"\n")?;
        let from = match body.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if start == src.layout.head_end => 0,
            None => continue,
        };
        let mut records = src.records(start + from as u64, end, 0);
        let mut last = None;
        while let Some(r) = records.next_record() {
            last = Some(r.ok()?.0);
        }
        return match last? {
            Record::End(m) => Some(m),
            _ => None,
        };
    }
    None
}

/// What a backup learns of a journal from its end alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The last run's end, when the journal ends with one.
    pub mark: Option<Mark>,
    /// It ends with a run's end and was not changed since: no need to read it whole.
    pub intact: bool,
}

/// Reads the end of the journal at `path` (a no-op backup asks this of every folder).
pub fn summary(path: &Path, keys: Option<&Keys>) -> Summary {
    let Ok(src) = Source::open(path, keys) else { return Summary::default() };
    let src = Arc::new(src);
    let mark = last_mark_of(&src);
    let mtime =
        src.file.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let intact = match (mark.and_then(|m| m.time_ns), mtime) {
        (Some(t), Some(m)) => {
            let m_ns = m.as_nanos() as u64;
            // A file system that keeps whole (or even) seconds only rounds the time set.
            m_ns == t || (m.subsec_nanos() == 0 && (m.as_secs() as i64 - (t / 1_000_000_000) as i64).abs() <= 2)
        }
        _ => false,
    };
    Summary { mark, intact }
}

/// The HIGHESTMODSEQ recorded by the journal's end, when it ends with a run's end that
/// recorded one and was not changed since.
pub fn last_modseq(path: &Path, keys: Option<&Keys>) -> Option<u64> {
    let s = summary(path, keys);
    s.mark.filter(|_| s.intact).and_then(|m| m.modseq)
}

/// Whether the sealed journal at `path` opens with `keys`: `Some(true)` when one of its
/// first records authenticates, `Some(false)` when those tried all fail their MAC check,
/// `None` when it is not sealed (or cannot be read).
pub fn authenticates(path: &Path, keys: &Keys) -> Option<bool> {
    let src = Arc::new(Source::open(path, Some(keys)).ok()?);
    if !src.layout.encrypted {
        return None;
    }
    let mut mismatches = 0;
    let mut records = src.records(src.layout.header_len, src.layout.tail.1, 2);
    for _ in 0..4 {
        match records.next_record()? {
            Ok(_) => return Some(true),
            Err(d) if d.why == super::line::LineError::Mac => mismatches += 1,
            Err(_) => {}
        }
    }
    (mismatches > 0).then_some(false)
}

#[cfg(test)]
mod tests {
    use super::super::journal_path;
    use super::*;
    use std::fs;

    fn entry(uid: u32, flags: &[&str]) -> Entry {
        Entry {
            uid,
            size: 100 + u64::from(uid),
            digest: [uid as u8; 32],
            internal_date: Some("07-Jul-2019 02:44:25 -0700".into()),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            form: None,
            headers: None,
            labels: None,
        }
    }

    fn keys() -> Keys {
        let text = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
        crate::keys::from_texts(Path::new("k"), text, None, None).unwrap()
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
        assert!(summary(&path, keys.as_ref()).intact);
        // A torn append is ignored by readers and cut off by the next writer.
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"M\t5\tgarb").unwrap();
        let index = Index::load(&path, keys.as_ref(), true).unwrap();
        let one = index.lookup(1).unwrap();
        assert_eq!(one.flags, ["\\Flagged", "$Work"]);
        assert_eq!(one.internal_date.as_deref(), Some("07-Jul-2019 02:44:25 -0700"));
        assert_eq!((one.size, one.digest), (Some(101), Some([1; 32])));
        let nine = index.lookup(9).unwrap();
        assert_eq!((nine.flags.len(), nine.internal_date, nine.digest, nine.size), (1, None, None, None));
        assert!(index.lookup(5).is_none());
        assert_eq!(index.lookup(3).unwrap().flags, ["\\Seen"], "a lookup behind the last one");
        assert!(index.lookup(20).is_none(), "past the last one");
        assert_eq!(index.lookup(3).unwrap().flags, ["\\Seen"], "a lookup after the end");
        assert!(index.damage().is_empty(), "{:?}", index.damage());
        let mut j = Journal::new(path.clone(), keys.clone());
        j.messages(&[entry(5, &["\\Answered"])]).unwrap();
        j.sync().unwrap();
        assert_eq!(last_modseq(&path, keys.as_ref()), None, "new messages since the mark");
        let index = Index::load(&path, keys.as_ref(), false).unwrap();
        assert_eq!(index.lookup(5).unwrap().flags, ["\\Answered"]);
        assert_eq!(index.lookup(5).unwrap().digest, None, "not asked for");
        j.dates(&[(9, "01-Feb-2018 00:00:00 +0000".into())]).unwrap();
        j.begin().unwrap();
        assert_eq!(summary(&path, keys.as_ref()).mark, None, "a run that began and was killed");
        let index = Index::load(&path, keys.as_ref(), false).unwrap();
        let nine = index.lookup(9).unwrap();
        assert_eq!((nine.flags, nine.arrived), (vec!["\\Seen".to_string()], Some(1517443200)));
        assert!(index.has_date(9) && !index.has_date(4));
        // A compaction keeps everything, in one record per message.
        j.checked(true);
        j.sync().unwrap();
        let text = fs::read(&path).unwrap();
        assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 2 + 4 + 1, "header, head, 4 messages, end");
        let index = Index::load(&path, keys.as_ref(), true).unwrap();
        let all: Vec<(u32, Vec<String>)> = index.entries().map(|(u, m)| (u, m.flags)).collect();
        assert_eq!(all[0], (1, vec!["\\Flagged".to_string(), "$Work".into()]));
        assert_eq!(all.iter().map(|a| a.0).collect::<Vec<_>>(), [1, 3, 5, 9]);
        assert_eq!(index.lookup(9).unwrap().arrived, Some(1517443200));
        assert!(summary(&path, keys.as_ref()).intact);
        // One damaged record costs that record only.
        let mut bytes = fs::read(&path).unwrap();
        let lines: Vec<usize> = bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).collect();
        let at = (lines[2] + lines[3]) / 2; // inside the record of UID 3
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        fs::write(&path, &bytes).unwrap();
        assert!(!summary(&path, keys.as_ref()).intact, "changed after its end record");
        let index = Index::load(&path, keys.as_ref(), false).unwrap();
        assert!(index.lookup(3).is_none());
        assert_eq!(index.lookup(5).unwrap().flags, ["\\Answered"]);
        assert_eq!(index.damage().len(), 1, "{:?}", index.damage());
        assert_eq!(index.damage()[0].line, 4);
        if let Some(k) = &keys {
            assert!(!String::from_utf8_lossy(&bytes).contains("Answered"), "sealed");
            assert!(Index::load(&path, None, false).is_err(), "no keys, no metadata");
            assert_eq!(authenticates(&path, k), Some(true));
            use base64::Engine;
            let text = base64::engine::general_purpose::STANDARD.encode([5u8; 64]);
            let other = crate::keys::from_texts(Path::new("k2"), text.as_bytes(), None, None).unwrap();
            assert_eq!(authenticates(&path, &other), Some(false));
            // Another key does not rewrite the journal away.
            let before = fs::read(&path).unwrap();
            let mut j = Journal::new(path.clone(), Some(other));
            j.checked(true);
            assert!(j.sync().unwrap_err().to_string().contains("no record of the metadata journal authenticates"));
            assert_eq!(fs::read(&path).unwrap(), before);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_journal() {
        journal_round_trip(None);
    }

    #[test]
    fn sealed_journal() {
        journal_round_trip(Some(keys()));
    }

    /// A tail whose UIDs do not fit one window is read in several passes, in order.
    #[test]
    fn windows_of_a_long_tail() {
        let dir = std::env::temp_dir().join(format!("sa-meta-windows-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = journal_path(&dir, "user", "INBOX", 7);
        let mut j = Journal::new(path.clone(), None);
        // UIDs in a scrambled order, several records each.
        let uids: Vec<u32> = (0..3000u32).map(|i| (i * 7919) % 3000 + 1).collect();
        j.messages(&uids.iter().map(|&u| entry(u, &["\\Seen"])).collect::<Vec<_>>()).unwrap();
        j.flags(&uids.iter().filter(|u| *u % 3 == 0).map(|&u| (u, vec![format!("k{u}")])).collect::<Vec<_>>()).unwrap();
        let index = Index::load(&path, None, false).unwrap();
        let mut cursor = index.entries_within(20_000);
        let got: Vec<(u32, Vec<String>)> = cursor.by_ref().map(|(u, m)| (u, m.flags)).collect();
        assert_eq!(got.len(), 3000);
        // 3,000 messages of well over 100 bytes each in windows of 20,000 bytes.
        assert!(cursor.passes() >= 15, "{} passes: the window holds more than its budget", cursor.passes());
        assert_eq!(index.entries().by_ref().count(), 3000);
        for (i, (u, f)) in got.iter().enumerate() {
            assert_eq!(*u, i as u32 + 1);
            let want = if u % 3 == 0 { format!("k{u}") } else { "\\Seen".into() };
            assert_eq!(f, &[want]);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A journal whose head record a crash tore off gets a new one before the next records.
    #[test]
    fn a_torn_head_is_made_again() {
        let dir = std::env::temp_dir().join(format!("sa-meta-torn-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = journal_path(&dir, "user", "INBOX", 7);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "smailarchiver-metadata 2 plain\nH\tb=000").unwrap();
        assert!(Index::load(&path, None, false).unwrap().entries().next().is_none());
        let mut j = Journal::new(path.clone(), None);
        j.messages(&[entry(4, &["\\Seen"])]).unwrap();
        j.sync().unwrap();
        let index = Index::load(&path, None, false).unwrap();
        assert_eq!(index.lookup(4).unwrap().flags, ["\\Seen"]);
        assert!(index.damage().is_empty(), "{:?}", index.damage());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Journals of earlier 0.7.0 builds (format 1) are read, and converted by the next
    /// writer.
    #[test]
    fn format_1_is_read_and_converted() {
        let dir = std::env::temp_dir().join(format!("sa-meta-v1-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = journal_path(&dir, "user", "INBOX", 7);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let digest = "ab".repeat(32);
        fs::write(
            &path,
            format!(
                "smailarchiver-metadata 1 plain\nM\t3\t120\t{digest}\t07-Jul-2019 02:44:25 -0700\t\\Seen\n\
                 F\t3\t\\Flagged\nD\t4\t01-Feb-2018 00:00:00 +0000\nS\t17\n"
            ),
        )
        .unwrap();
        let index = Index::load(&path, None, true).unwrap();
        let m = index.lookup(3).unwrap();
        assert_eq!((m.flags, m.size, m.digest), (vec!["\\Flagged".to_string()], Some(120), Some([0xab; 32])));
        assert_eq!(index.lookup(4).unwrap().arrived, Some(1517443200));
        let mut j = Journal::new(path.clone(), None);
        j.messages(&[entry(5, &[])]).unwrap();
        j.sync().unwrap();
        assert!(fs::read_to_string(&path).unwrap().starts_with("smailarchiver-metadata 2 plain\n"));
        let index = Index::load(&path, None, true).unwrap();
        assert_eq!(index.entries().map(|(u, _)| u).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(index.lookup(3).unwrap().flags, ["\\Flagged"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
