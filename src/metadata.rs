//! Each archived message's flags, arrival time (INTERNALDATE), size and digest (SHA-256 of
//! the message as fetched), kept per folder in `ROOT/.smailarchiver/meta/USERDIR/`, outside
//! the folder directories (the original's restore loop reads every file in those).
//!
//! A folder's file is a journal: a header line, then lines appended after the messages they
//! describe are committed, so a crash leaves at worst a message without its line (no
//! metadata) or a torn last line (ignored, and cut off by the next writer). A later line
//! for a UID wins. When the account encrypts, every line after the header is one sealed
//! frame in the archive's own framing (base64 of IV, AES-256-CBC, HMAC-SHA256) naming its
//! folder, so frames cannot be moved between folders unnoticed.
//!
//! Reading builds a compact index (about 24 bytes a message, 56 with digests), never a
//! map of strings per message.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::codec::{base64::Base64Writer, cipher, Finish};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::keys::Keys;
use crate::mbox::{civil_from_days, days_from_civil, days_in_month, MONTHS};
use crate::registry::{self, Registry};

/// The directory of the journals in [`registry::META_DIR`].
pub const METADATA_DIR: &str = "meta";
const MAGIC: &str = "smailarchiver-metadata 1";
/// Longest line read: a frame of [`FRAME_ENTRIES`] entries with flags, sealed.
const MAX_LINE: usize = 8 << 20;
/// Entries per appended line at most.
const FRAME_ENTRIES: usize = 1000;

/// What is kept of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    /// Its flags, as the server names them (`\Seen`, `$Forwarded`, keywords).
    pub flags: Vec<String>,
    /// INTERNALDATE in IMAP form (`07-Jul-2019 02:44:25 -0700`), when known.
    pub internal_date: Option<String>,
    /// INTERNALDATE as Unix time.
    pub arrived: Option<i64>,
    /// Message size in bytes, when known.
    pub size: Option<u64>,
    /// SHA-256 of the message as fetched, when known (and asked for).
    pub digest: Option<[u8; 32]>,
}

/// One message's line, written once it is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// UID.
    pub uid: u32,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the message bytes.
    pub digest: [u8; 32],
    /// INTERNALDATE as the server sent it (checked form), if it did.
    pub internal_date: Option<String>,
    /// Flags as fetched with the body.
    pub flags: Vec<String>,
}

/// The journal of one folder: `META/USERDIR/HASH-UIDVALIDITY` where HASH is the first 16
/// hex digits of SHA-256 of the mailbox's wire name. Keyed by mailbox and UIDVALIDITY,
/// so a folder directory moved aside after a UIDVALIDITY change keeps its journal.
pub fn journal_path(root: &Path, account_dir: &str, wire: &str, uidvalidity: u32) -> PathBuf {
    root.join(registry::META_DIR).join(METADATA_DIR).join(account_dir).join(journal_name(wire, uidvalidity))
}

fn journal_name(wire: &str, uidvalidity: u32) -> String {
    let hash = Sha256::digest(wire.as_bytes());
    format!("{}-{uidvalidity}", hex(&hash[..8]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The journal of the folder directory `dir` (`ROOT/USERDIR/FOLDERDIR`), found through the
/// root's records: `None` for archives without records or metadata (the original's, 0.6's).
pub fn journal_of_dir(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    let user_dir = dir.parent()?;
    let root = user_dir.parent()?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let (account, folder) = (name(user_dir)?, name(&dir)?);
    let records = Registry::read(root).ok()?;
    let record = records.folder_at(&account, &folder)?;
    let path = journal_path(root, &account, &record.mailbox.wire, record.uidvalidity?);
    path.is_file().then_some(path)
}

/// Parses an IMAP date-time into Unix time and the zone offset in minutes.
pub fn parse_internal_date(d: &str) -> Option<(i64, i16)> {
    if !crate::imap::wire::internal_date_ok(d) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| d.get(r)?.trim_start().parse::<i64>().ok();
    let day = num(0..2)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(&d[3..6]))? as i64 + 1;
    let year = num(7..11)?;
    let (h, m, s) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let (zh, zm) = (num(22..24)?, num(24..26)?);
    if day < 1 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 || zm > 59 {
        return None;
    }
    let zone = (zh * 60 + zm) * if &d[21..22] == "-" { -1 } else { 1 };
    let local = days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s;
    Some((local - zone * 60, zone as i16))
}

/// The IMAP date-time of Unix time `t` in zone `zone` (minutes east).
pub fn format_internal_date(t: i64, zone: i16) -> String {
    let local = t + i64::from(zone) * 60;
    let (days, secs) = (local.div_euclid(86400), local.rem_euclid(86400));
    let (year, month, day) = civil_from_days(days);
    let (sign, z) = if zone < 0 { ('-', -i64::from(zone)) } else { ('+', i64::from(zone)) };
    format!(
        "{day:02}-{}-{year:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        z / 60,
        z % 60
    )
}

/// The size field of a flags line while the journal is read.
const FLAGS_ONLY: u32 = u32::MAX - 1;

/// One message in the index.
#[derive(Clone, Copy, Debug)]
struct Packed {
    uid: u32,
    /// Index into the flag sets; `u32::MAX` for none known.
    flags: u32,
    /// `u32::MAX` when unknown (a bigger message keeps no size here).
    size: u32,
    zone: i16,
    /// Unix time of arrival; `i64::MIN` when unknown.
    arrived: i64,
}

/// A folder's metadata, read whole into a compact index sorted by UID.
#[derive(Debug, Default)]
pub struct Index {
    messages: Vec<Packed>,
    /// Instead of `messages` when digests were asked for (all zero where unknown): one
    /// vector either way, so loading never holds two copies.
    digested: Vec<(Packed, [u8; 32])>,
    flag_sets: Vec<Vec<String>>,
    /// HIGHESTMODSEQ the flags were last brought up to, when the last line says so.
    pub modseq: Option<u64>,
}

/// A line's parsed content.
enum Line {
    Message(Entry),
    Flags(u32, Vec<String>),
    Modseq(u64),
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
        "S" => Some(Line::Modseq(f.next()?.parse().ok()?)),
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
    let (sink, out) = SharedVec::new();
    let mut w = cipher::EncryptWriter::new(keys, Box::new(Base64Writer::new(Box::new(sink))))?;
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

/// A `Vec` the encrypting chain can own while we keep a handle on it.
struct SharedVec(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedVec {
    fn new() -> (SharedVec, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        (SharedVec(out.clone()), out)
    }
}

impl Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().map_err(|_| io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for SharedVec {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
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
fn read_journal(path: &Path, keys: Option<&Keys>, on: &mut dyn FnMut(Line)) -> Result<()> {
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

impl Index {
    /// Reads the journal at `path` (keys when it is encrypted); `digests` keeps each
    /// message's digest too (for `--verify`).
    pub fn load(path: &Path, keys: Option<&Keys>, digests: bool) -> Result<Index> {
        let mut index = Index::default();
        if digests {
            index.digested = index.read(path, keys, |e| e.map_or([0; 32], |e| e.digest))?;
        } else {
            index.messages = index.read(path, keys, |_| ())?.into_iter().map(|(p, ())| p).collect();
        }
        Ok(index)
    }

    /// Reads the journal's lines (each with what `extra` keeps of a message line) into one
    /// per UID, in UID order: a later message line replaces an earlier one, a flags line
    /// changes the flags only. In place, so memory holds one element per line read.
    fn read<D>(
        &mut self,
        path: &Path,
        keys: Option<&Keys>,
        extra: impl Fn(Option<&Entry>) -> D,
    ) -> Result<Vec<(Packed, D)>> {
        let mut lines: Vec<(Packed, D)> = Vec::new();
        let mut interned: HashMap<Vec<String>, u32> = HashMap::new();
        let sets = &mut self.flag_sets;
        let mut intern = |flags: Vec<String>| -> u32 {
            let next = sets.len() as u32;
            *interned.entry(flags.clone()).or_insert_with(|| {
                sets.push(flags);
                next
            })
        };
        let mut modseq = None;
        read_journal(path, keys, &mut |line| match line {
            Line::Message(e) => {
                let (arrived, zone) = e.internal_date.as_deref().and_then(parse_internal_date).unwrap_or((i64::MIN, 0));
                let size = u32::try_from(e.size).unwrap_or(u32::MAX);
                let d = extra(Some(&e));
                lines.push((Packed { uid: e.uid, flags: intern(e.flags), size, zone, arrived }, d));
                modseq = None;
            }
            Line::Flags(uid, flags) => {
                let p = Packed { uid, flags: intern(flags), size: FLAGS_ONLY, zone: 0, arrived: i64::MIN };
                lines.push((p, extra(None)));
            }
            Line::Modseq(m) => modseq = Some(m),
        })?;
        self.modseq = modseq;
        // Stable: lines of one UID stay in journal order.
        lines.sort_by_key(|l| l.0.uid);
        lines.dedup_by(|later, kept| {
            if later.0.uid != kept.0.uid {
                return false;
            }
            if later.0.size == FLAGS_ONLY {
                kept.0.flags = later.0.flags;
            } else {
                std::mem::swap(later, kept);
            }
            true
        });
        for l in lines.iter_mut().filter(|l| l.0.size == FLAGS_ONLY) {
            l.0.size = u32::MAX;
        }
        Ok(lines)
    }

    /// The metadata of a recorded folder (`root`'s records name its user directory,
    /// mailbox and UIDVALIDITY), if it has any: what an upload reads each message's flags
    /// and INTERNALDATE from.
    pub fn of_folder(root: &Path, folder: &registry::FolderRecord, keys: Option<&Keys>) -> Result<Option<Index>> {
        let Some(uidvalidity) = folder.uidvalidity else { return Ok(None) };
        let path = journal_path(root, &folder.account, &folder.mailbox.wire, uidvalidity);
        if !path.is_file() {
            return Ok(None);
        }
        Index::load(&path, keys, false).map(Some)
    }

    /// The metadata of the folder directory `dir`, if it has any (see [`journal_of_dir`]).
    pub fn of_dir(dir: &Path, keys: Option<&Keys>, digests: bool) -> Result<Option<Index>> {
        match journal_of_dir(dir) {
            Some(path) => Index::load(&path, keys, digests).map(Some),
            None => Ok(None),
        }
    }

    /// The entry of `uid` and its digest, if one is known.
    fn find(&self, uid: u32) -> Option<(Packed, Option<[u8; 32]>)> {
        if self.digested.is_empty() {
            let i = self.messages.binary_search_by_key(&uid, |p| p.uid).ok()?;
            return Some((self.messages[i], None));
        }
        let i = self.digested.binary_search_by_key(&uid, |(p, _)| p.uid).ok()?;
        let (p, d) = self.digested[i];
        Some((p, Some(d).filter(|d| d != &[0; 32])))
    }

    /// What is known of `uid`.
    pub fn lookup(&self, uid: u32) -> Option<MessageMeta> {
        let (p, digest) = self.find(uid)?;
        let known = p.arrived != i64::MIN;
        Some(MessageMeta {
            flags: self.flag_sets.get(p.flags as usize).cloned().unwrap_or_default(),
            internal_date: known.then(|| format_internal_date(p.arrived, p.zone)),
            arrived: known.then_some(p.arrived),
            size: (p.size != u32::MAX).then_some(u64::from(p.size)),
            digest,
        })
    }

    /// The flags known for `uid`, if any, without copying them.
    pub fn flags_of(&self, uid: u32) -> Option<&[String]> {
        self.flag_sets.get(self.find(uid)?.0.flags as usize).map(Vec::as_slice)
    }

    /// UIDs with a digest recorded (messages archived by this version), ascending.
    pub fn archived_uids(&self) -> impl Iterator<Item = u32> + '_ {
        self.digested.iter().filter(|(_, d)| d != &[0; 32]).map(|(p, _)| p.uid)
    }

    /// Messages known.
    pub fn len(&self) -> usize {
        self.messages.len() + self.digested.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// Digests a message while it is written.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Adds message bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The SHA-256.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// SHA-256 of everything read through it.
pub struct HashingReader<R> {
    /// The reader.
    pub inner: R,
    /// The digest so far.
    pub hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Maildir info letters for `flags` (`D F P R S T`, in that order), as `:2,` expects.
pub fn maildir_letters(flags: &[String]) -> String {
    let has = |name: &str| flags.iter().any(|f| f.eq_ignore_ascii_case(name));
    [
        ("\\Draft", 'D'),
        ("\\Flagged", 'F'),
        ("$Forwarded", 'P'),
        ("\\Answered", 'R'),
        ("\\Seen", 'S'),
        ("\\Deleted", 'T'),
    ]
    .iter()
    .filter(|(f, _)| has(f))
    .map(|(_, c)| *c)
    .collect()
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn dates_round_trip() {
        let (t, z) = parse_internal_date(" 7-Jul-2019 02:44:25 -0700").unwrap();
        assert_eq!((t, z), (1562492665, -420));
        assert_eq!(format_internal_date(t, z), "07-Jul-2019 02:44:25 -0700");
        assert_eq!(parse_internal_date("01-Jan-1970 00:00:00 +0000"), Some((0, 0)));
        assert!(parse_internal_date("31-Feb-2019 02:44:25 -0700").is_none());
        assert!(parse_internal_date("07-Jux-2019 02:44:25 -0700").is_none());
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

    #[test]
    fn maildir_flags() {
        let f: Vec<String> = ["\\Seen", "\\Answered", "\\Flagged", "$Forwarded", "\\Deleted", "\\Draft", "$Junk"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(maildir_letters(&f), "DFPRST");
        assert_eq!(maildir_letters(&[]), "");
    }
}
