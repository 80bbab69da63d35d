//! A folder whose UIDVALIDITY changed while its mail stayed the same: Courier renumbers
//! a folder that no client ever opened read-write in every session, and a provider's
//! server migration renumbers every UID. Before fetching the messages the new generation
//! lacks, each is recognised by its size and a fingerprint of a few header fields, asked
//! in one `UID FETCH 1:* (RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (...)])`,
//! among the files of the previous generation; a match is hard-linked (copied where the
//! file system has no hard links) into the new folder directory under its new UID, and
//! its metadata (size and digest from the previous journal, flags and INTERNALDATE as the
//! server gives them now) goes to the new generation's journal. The previous generation
//! is left as it is. The file is the same bytes, so an encrypted one stays valid under
//! the account's keys, and its digest (its HMAC tag) stays what it was.
//!
//! Matching is by `(size, fingerprint)`, in UID order on both sides, each file of the
//! previous generation used once: renumbering keeps the order, and two messages alike in
//! both are interchangeable. Only messages with at least one of the fingerprint's fields
//! are matched; the rest is fetched as usual.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::context::{metadata_lost, Context, FolderReport, Place};
use super::event::Event;
use crate::archive::files::atomic::TempFile;
use crate::archive::metadata::{self, Entry, Index, Journal};
use crate::archive::{self, ArchiveFile};
use crate::codec;
use crate::error::{Error, IoContext};
use crate::imap::{ImapError, Session};
use crate::mailbox_name::Mailbox;
use crate::os::dir::Dir;

/// The header fields whose values make a message's fingerprint.
pub const FIELDS: &str = "MESSAGE-ID DATE FROM TO CC SUBJECT CONTENT-TYPE";
/// Most bytes of those fields one message may bring (long To and Cc lists).
const MAX_FIELDS: usize = 1 << 20;
/// Most header bytes read of an archived message.
const MAX_HEADER: u64 = 256 * 1024;
/// Journal entries written at once.
const ENTRIES_PER_WRITE: usize = 1000;

/// A message's fingerprint: SHA-256 (first 16 bytes) of its fingerprint fields, each
/// unfolded, its name lowercased, its value's white space collapsed, in sorted order;
/// `None` when it has none of them.
pub fn fingerprint(header: &[u8]) -> Option<u128> {
    let wanted: Vec<String> = FIELDS.split(' ').map(str::to_ascii_lowercase).collect();
    let mut fields: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut finish = |current: &mut Option<Vec<u8>>| {
        if let Some(field) = current.take() {
            let (name, value) = match field.iter().position(|&b| b == b':') {
                Some(colon) => (&field[..colon], &field[colon + 1..]),
                None => return,
            };
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            if !wanted.contains(&name) {
                return;
            }
            let mut line = name.into_bytes();
            line.push(b':');
            for word in value.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
                line.push(b' ');
                line.extend_from_slice(word);
            }
            fields.push(line);
        }
    };
    for line in header.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            break;
        }
        if text[0] == b' ' || text[0] == b'\t' {
            if let Some(c) = current.as_mut() {
                c.push(b' ');
                c.extend_from_slice(text);
            }
            continue;
        }
        finish(&mut current);
        current = Some(text.to_vec());
    }
    finish(&mut current);
    if fields.is_empty() {
        return None;
    }
    fields.sort();
    let mut hash = Sha256::new();
    for f in &fields {
        hash.update(f);
        hash.update(b"\n");
    }
    let digest = hash.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    Some(u128::from_be_bytes(first))
}

/// Previous generations searched at most, the latest first: the one just moved aside, and
/// those before it in case a run was stopped half way through linking (Courier renumbers a
/// folder in every session, so a generation can be left partly filled).
const GENERATIONS: usize = 3;

/// The generations of `mailbox` moved aside, of another UIDVALIDITY than `uidvalidity`,
/// the latest first (at most [`GENERATIONS`]): their UIDVALIDITY and directory name.
pub fn previous(place: &Place<'_>, mailbox: &Mailbox, uidvalidity: u32) -> Vec<(u32, String)> {
    let records = place.records();
    records
        .retired_of(place.account_dir, mailbox)
        .into_iter()
        .rev()
        .filter_map(|r| Some((r.uidvalidity.filter(|&v| v != uidvalidity)?, r.dir.clone())))
        .take(GENERATIONS)
        .collect()
}

/// What a rebase did.
#[derive(Debug, Default)]
pub struct Rebased {
    /// New UIDs now archived from previous generations.
    pub linked: Vec<u32>,
    /// Files in the latest previous generation.
    pub previous: usize,
}

/// A message of the new generation as the server describes it: about 40 bytes (a folder
/// of 300,000 messages takes 12 MB).
struct Described {
    uid: u32,
    size: u32,
    fingerprint: u128,
    /// Index into the flag sets.
    flags: u32,
    /// INTERNALDATE as Unix time and zone.
    arrived: Option<(i64, i16)>,
    /// Archived from a previous generation by now.
    linked: bool,
}

/// A file of a previous generation that may be one of them.
struct Candidate {
    name: Box<str>,
    form: codec::Form,
    size: u64,
    digest: [u8; 32],
}

/// Why a rebase stopped.
pub enum Failure {
    /// The connection broke: the pass is run again.
    Lost(ImapError),
    /// Anything else: the folder is fetched as usual.
    Other(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Other(e)
    }
}

/// What the server says of the messages of a new generation, and the flag sets they use.
struct Descriptions {
    messages: Vec<Described>,
    flag_sets: Vec<Vec<String>>,
}

/// Archives the messages `missing` (ascending; `all` when they are every message of the
/// folder) of the folder opened last from the previous generations `previous`
/// ((UIDVALIDITY, directory name), the latest first) where they are found there, into
/// `new_dir`; their metadata goes to `journal`.
#[allow(clippy::too_many_arguments)]
pub fn rebase(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    mailbox: &Mailbox,
    new_dir: &Dir,
    previous: &[(u32, String)],
    missing: &[u32],
    all: bool,
    journal: &mut Option<Journal>,
    report: &FolderReport,
) -> std::result::Result<Rebased, Failure> {
    let mut rebased = Rebased::default();
    let mut described: Option<Descriptions> = None;
    let mut begun = false;
    for (k, (old_uidvalidity, old_name)) in previous.iter().enumerate() {
        let (root, old_dir) = {
            let records = place.records();
            let rel = Path::new(place.account_dir).join(old_name);
            (records.root().to_path_buf(), records.open_beneath(&rel)?)
        };
        let old_files = archive::list_folder(old_dir.path())?;
        if k == 0 {
            rebased.previous = old_files.len();
        }
        if old_files.is_empty() || missing.is_empty() {
            continue;
        }
        // What the server says of the messages to find: asked once.
        if described.is_none() {
            described = Some(describe_missing(session, missing, all)?);
        }
        let Some(d) = described.as_mut() else { continue };
        let journal_path = metadata::journal_path(&root, place.account_dir, &mailbox.wire, *old_uidvalidity);
        let candidates = candidates(ctx, report, &journal_path, old_files, &d.messages)?;
        link(ctx, place, &old_dir, new_dir, candidates, d, journal, &mut begun, &mut rebased, report)?;
        if d.messages.iter().all(|m| m.linked) {
            break;
        }
    }
    Ok(rebased)
}

/// One `UID FETCH` of the size, flags, INTERNALDATE and fingerprint fields of `missing`.
fn describe_missing(session: &mut Session, missing: &[u32], all: bool) -> std::result::Result<Descriptions, Failure> {
    let wanted: HashSet<u32> = missing.iter().copied().collect();
    let mut messages = Vec::new();
    let mut flag_sets: Vec<Vec<String>> = Vec::new();
    let mut interned: HashMap<Vec<String>, u32> = HashMap::new();
    let mut bad_answer = None;
    session
        .header_fields(missing, all, FIELDS, MAX_FIELDS, &mut |f| {
            let (Some(uid), Some(size), Some(fields)) = (f.uid, f.size, f.body) else { return };
            if !wanted.contains(&uid) {
                return;
            }
            if messages.len() >= missing.len() {
                bad_answer = Some(uid);
                return;
            }
            if let Some(fingerprint) = fingerprint(&fields) {
                let set = f.flags.unwrap_or_default();
                let next = flag_sets.len() as u32;
                let flags = *interned.entry(set.clone()).or_insert_with(|| {
                    flag_sets.push(set);
                    next
                });
                let arrived = f.internal_date.as_deref().and_then(metadata::parse_internal_date);
                messages.push(Described { uid, size, fingerprint, flags, arrived, linked: false });
            }
        })
        .map_err(|e| {
            if e.breaks_session() {
                Failure::Lost(e)
            } else {
                Failure::Other(session.spec().imap_error("UID FETCH", &e))
            }
        })?;
    if let Some(uid) = bad_answer {
        return Err(Failure::Other(Error::runtime(format!("the server described UID {uid} more than once"))));
    }
    messages.sort_by_key(|d| d.uid);
    messages.dedup_by_key(|d| d.uid);
    Ok(Descriptions { messages, flag_sets })
}

/// The files of a previous generation (`old_files`, its journal at `journal_path`) of the
/// sizes of the messages still to find, by (size, fingerprint), in UID order.
fn candidates(
    ctx: &Context<'_>,
    report: &FolderReport,
    journal_path: &Path,
    old_files: Vec<ArchiveFile>,
    described: &[Described],
) -> std::result::Result<HashMap<(u64, u128), VecDeque<Candidate>>, Failure> {
    let sizes: HashSet<u64> = described.iter().filter(|d| !d.linked).map(|d| u64::from(d.size)).collect();
    let index = Index::load(journal_path, ctx.keys, true).ok();
    let mut candidates: HashMap<(u64, u128), VecDeque<Candidate>> = HashMap::new();
    for file in old_files {
        if crate::interrupt::requested() {
            return Err(Failure::Other(Error::interrupted()));
        }
        let known =
            index.as_ref().zip(file.uid).and_then(|(i, uid)| i.lookup(uid)).and_then(|m| Some((m.size?, m.digest?)));
        if known.is_some_and(|(size, _)| !sizes.contains(&size)) {
            continue;
        }
        match describe_file(&file, ctx, known) {
            Ok(Some((size, fp, digest))) if sizes.contains(&size) => {
                let name = file.path.file_name().map(|n| n.to_string_lossy().into()).unwrap_or_default();
                candidates.entry((size, fp)).or_default().push_back(Candidate { name, form: file.form, size, digest });
            }
            Ok(_) => {}
            // A file that cannot be read is not a match: the message is fetched instead.
            Err(e) => ctx.sink.event(Event::NotConsidered {
                account: ctx.account,
                folder: &report.folder,
                path: &file.path,
                error: &e,
            }),
        }
    }
    Ok(candidates)
}

/// Links the matches among `candidates` (files of `old_dir`) into `new_dir`, a thousand at
/// a time: linked, the directory synced (the names are durable before a journal line names
/// them), then their journal lines.
#[allow(clippy::too_many_arguments)]
fn link(
    ctx: &Context<'_>,
    place: &Place<'_>,
    old_dir: &Dir,
    new_dir: &Dir,
    mut candidates: HashMap<(u64, u128), VecDeque<Candidate>>,
    described: &mut Descriptions,
    journal: &mut Option<Journal>,
    begun: &mut bool,
    rebased: &mut Rebased,
    report: &FolderReport,
) -> std::result::Result<(), Failure> {
    let tmp = place.records().tmp()?;
    let flag_sets = &described.flag_sets;
    for chunk in described.messages.chunks_mut(ENTRIES_PER_WRITE) {
        if crate::interrupt::requested() {
            break;
        }
        let mut entries = Vec::new();
        for d in chunk.iter_mut().filter(|d| !d.linked) {
            let key = (u64::from(d.size), d.fingerprint);
            let Some(c) = candidates.get_mut(&key).and_then(VecDeque::pop_front) else { continue };
            let name = archive::file_name(d.uid, c.form);
            place_file(old_dir, &c.name, new_dir, &name, &tmp).at(&new_dir.path().join(&name))?;
            d.linked = true;
            rebased.linked.push(d.uid);
            entries.push(Entry {
                uid: d.uid,
                size: c.size,
                digest: c.digest,
                internal_date: d.arrived.map(|(t, zone)| metadata::format_internal_date(t, zone)),
                flags: flag_sets.get(d.flags as usize).cloned().unwrap_or_default(),
                form: Some(c.form),
                headers: None,
                labels: None,
            });
        }
        if entries.is_empty() {
            continue;
        }
        new_dir.sync().at(new_dir.path())?;
        if let Some(j) = journal.as_mut() {
            let written = if *begun { Ok(()) } else { j.begin() }.and_then(|()| j.messages(&entries));
            *begun = true;
            if let Err(e) = written {
                metadata_lost(ctx, report, journal, &e);
            }
        }
    }
    Ok(())
}

/// An archived file's message size, fingerprint and digest (`known`: size and digest from
/// the journal; otherwise the file is read whole for them). `None` when its header has
/// none of the fingerprint's fields.
fn describe_file(
    file: &ArchiveFile,
    ctx: &Context<'_>,
    known: Option<(u64, [u8; 32])>,
) -> io::Result<Option<(u64, u128, [u8; 32])>> {
    let (sealed, tag) = codec::open_sealed_tagged(file.open_raw()?, file.form, ctx.keys)?;
    let (_from_line, mut reader) = codec::fromline::split_stored(codec::inflated(sealed, file.form))?;
    let mut header = Vec::new();
    loop {
        let start = header.len();
        if (&mut reader).take(MAX_HEADER - (header.len() as u64).min(MAX_HEADER)).read_until(b'\n', &mut header)? == 0 {
            break;
        }
        let line = &header[start..];
        if line == b"\n" || line == b"\r\n" || header.len() as u64 >= MAX_HEADER {
            break;
        }
    }
    let Some(fp) = fingerprint(&header) else { return Ok(None) };
    if let Some((size, digest)) = known {
        return Ok(Some((size, fp, digest)));
    }
    // No metadata for it (archived before metadata was kept): size and digest from the
    // file, as the backup would have recorded them.
    let mut hasher = metadata::Hasher::default();
    hasher.update(&header);
    let mut size = header.len() as u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let digest = tag.unwrap_or_else(|| hasher.finish());
    Ok(Some((size, fp, digest)))
}

/// Gives the file `name` of `from` the name `to_name` in `to`: a hard link, or where the
/// file system has none, a copy written in `tmp` and committed.
pub(super) fn place_file(from: &Dir, name: &str, to: &Dir, to_name: &str, tmp: &std::sync::Arc<Dir>) -> io::Result<()> {
    match from.link(name, to, to_name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP | libc::EXDEV | libc::EMLINK)) => {
            let mut source = from.open_read(name)?;
            let copy = TempFile::create_at(tmp, to_name, 0o600)?;
            io::copy(&mut source, &mut copy.file())?;
            copy.commit_at(to, to_name, false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_folding_case_order_and_line_ends() {
        let a = b"Subject: Hello\r\n  world\r\nMessage-ID: <1@x>\r\nX-Other: 1\r\n\r\nbody";
        let b = b"message-id:   <1@x>\nX-Other: 2\nSUBJECT: Hello world\n\n";
        assert_eq!(fingerprint(a), fingerprint(b));
        assert!(fingerprint(a).is_some());
        let c = b"Subject: Hello world\r\nMessage-ID: <2@x>\r\n\r\n";
        assert_ne!(fingerprint(a), fingerprint(c));
        // Fields after the header do not count; no field at all gives none.
        assert_eq!(fingerprint(b"X-Only: 1\r\n\r\nSubject: in the body\r\n"), None);
        assert_eq!(fingerprint(b""), None);
    }

    #[test]
    fn a_server_answer_and_the_archived_header_agree() {
        // What HEADER.FIELDS returns: the fields (in message order), then a blank line.
        let message =
            b"Received: x\r\nFrom: Ann <a@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: s\r\n\r\nb\r\n";
        let answer = b"From: Ann <a@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: s\r\n\r\n";
        assert_eq!(fingerprint(message), fingerprint(answer));
    }
}
