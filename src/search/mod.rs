//! `--search`: the messages of some folders that a query ([`query`]) selects, in UID
//! order, folder by folder.
//!
//! Each message is first judged on its metadata alone (flags, labels, size, arrival time,
//! and the header fields a backup records: From, To, Subject, Date, Message-ID); the
//! query's three-valued value ([`query::Tri`]) says whether that decides. Only the
//! messages it leaves undecided (a text term, or metadata that lacks what the query asks)
//! are read from their files, by [`workers`] on every core (each authenticates, decrypts,
//! inflates and walks the MIME structure ([`mime`]) of whole messages, until the query is
//! decided), and said in order as their answers come back. Memory stays bounded whatever
//! the folder's size: a folder's files are listed as UIDs, the journal is streamed, and at
//! most [`AHEAD`] messages wait (with the workers, or decided) behind the oldest one.

pub mod charset;
pub mod encoded;
mod html;
mod matcher;
mod mime;
pub mod query;
mod transfer;
mod workers;

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use crate::archive::layout::scope::FolderDir;
use crate::archive::metadata::headers::Kept;
use crate::archive::metadata::{Index, MessageMeta};
use crate::archive::ArchiveFile;
use crate::codec::Form;
use crate::error::{describe_io, Error, IoContext, Result};
use crate::keys::Keys;
use crate::listing::{line, Shown};
use matcher::{bit, normalize, Doc, Docs, Matcher};
use query::{Pred, Query, Tri};
use workers::Workers;

/// Messages that may wait (decided, or with the workers) behind the oldest one.
const AHEAD: usize = 256;
/// Messages handed to a worker at once.
const BATCH: usize = 16;

/// The documents of the top header ([`Doc`]s a header of the message itself fills).
const HEADER_DOCS: Docs =
    bit(Doc::From) | bit(Doc::To) | bit(Doc::Subject) | bit(Doc::MessageId) | bit(Doc::Date) | bit(Doc::OtherAddress);

/// The documents the journal keeps, and the field of each.
const KEPT_DOCS: [(Doc, Kept); 5] = [
    (Doc::From, Kept::From),
    (Doc::To, Kept::To),
    (Doc::Subject, Kept::Subject),
    (Doc::MessageId, Kept::MessageId),
    (Doc::Date, Kept::Date),
];

/// What a search found besides its hits.
#[derive(Debug, Default)]
pub struct Summary {
    /// Folders searched.
    pub folders: usize,
    /// Messages considered.
    pub messages: u64,
    /// Messages the query selected.
    pub hits: u64,
    /// Messages decided by their metadata alone (no file opened).
    pub by_metadata: u64,
    /// Message files read.
    pub files_read: u64,
    /// Files that could not be read, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Messages whose metadata has no header fields (archived before they were recorded).
    pub without_fields: u64,
}

/// What a search tells as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// A hit: the folder directory and the message's `--list` line.
    Hit {
        /// The folder's name, printable.
        folder: &'a Path,
        /// The message's line.
        line: &'a str,
    },
    /// The folder's journal could not be read: its messages are judged on their files.
    MetadataNotUsed {
        /// The metadata journal.
        journal: &'a Path,
        /// What went wrong.
        error: &'a Error,
    },
    /// A file that cannot be read (the search goes on).
    Unreadable {
        /// The file.
        path: &'a Path,
        /// Why.
        why: &'a str,
    },
    /// Damaged records of the journal, left out: those messages were read from their files.
    DamagedRecords {
        /// The metadata journal.
        journal: &'a Path,
        /// How many.
        count: usize,
    },
    /// Files not named after a UID, taken anyway.
    OddNames {
        /// The files.
        files: &'a [ArchiveFile],
    },
}

/// Where a search's events go; a sink whose reader went away ([`crate::events::Sink::gone`])
/// stops it.
pub trait Sink: for<'a> crate::events::Sink<Event<'a>> {}

impl<S: for<'a> crate::events::Sink<Event<'a>> + ?Sized> Sink for S {}

/// What a key check looks at besides the journals: the first encrypted file found in
/// each folder (a directory read that stops there, not a listing).
pub fn key_sample(folders: &[FolderDir]) -> Vec<ArchiveFile> {
    folders.iter().filter_map(|f| crate::archive::first(&f.dir, |a| a.form.encrypted)).collect()
}

/// Searches `folders` for `query`.
pub fn search(folders: &[FolderDir], query: &Query, keys: Option<&Keys>, sink: &dyn Sink) -> Result<Summary> {
    let mut report = Summary::default();
    std::thread::scope(|scope| -> Result<()> {
        // One set of workers for all the folders: a search of thousands of them starts
        // two to four threads, not thousands.
        let mut workers = Workers::spawn(scope, workers::count(), || {
            let mut matcher = Matcher::new(&query.terms);
            move |(file, known): Job| {
                let answer = read_message(&file, known, query, keys, &mut matcher);
                (file, answer)
            }
        })
        .doing("starting the search threads")?;
        for folder in folders {
            report.folders += 1;
            if !search_folder(folder, query, keys, &mut workers, &mut report, sink)? {
                break;
            }
        }
        Ok(())
    })?;
    Ok(report)
}

/// A folder's archive files as UIDs and forms (a path each would cost a hundred bytes a
/// message), then those not named after a UID.
struct FolderFiles {
    dir: PathBuf,
    uids: Vec<(u32, Form)>,
    odd: Vec<ArchiveFile>,
}

impl FolderFiles {
    fn list(dir: &Path) -> Result<FolderFiles> {
        let (mut uids, mut odd) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            if !entry.file_type().at(&entry.path())?.is_file() {
                continue;
            }
            match ArchiveFile::from_path_any(entry.path()) {
                Some(ArchiveFile { uid: Some(uid), form, .. }) => uids.push((uid, form)),
                Some(f) => odd.push(f),
                None => {}
            }
        }
        uids.sort_unstable_by_key(|&(uid, form)| (uid, form.suffix()));
        odd.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(FolderFiles { dir: dir.to_path_buf(), uids, odd })
    }

    fn len(&self) -> usize {
        self.uids.len() + self.odd.len()
    }

    fn get(&self, i: usize) -> ArchiveFile {
        match self.uids.get(i) {
            Some(&(uid, form)) => {
                ArchiveFile { path: self.dir.join(crate::archive::file_name(uid, form)), uid: Some(uid), form }
            }
            None => self.odd[i - self.uids.len()].clone(),
        }
    }
}

/// A message to read from its file, and what the file gave.
type Job = (ArchiveFile, Known);
type Answer = (ArchiveFile, std::io::Result<Option<String>>);

/// A message waiting for its turn to be said.
enum Waiting {
    /// Decided by its metadata: its line.
    Hit(String),
    /// A batch of messages given to the workers, their number.
    Batch(usize),
}

/// Searches one folder; false when the search is to stop.
fn search_folder(
    folder: &FolderDir,
    query: &Query,
    keys: Option<&Keys>,
    workers: &mut Workers<Job, Answer>,
    report: &mut Summary,
    sink: &dyn Sink,
) -> Result<bool> {
    let index = match folder.journal.as_deref().map(|j| Index::load(j, keys, false)) {
        Some(Ok(i)) => Some(i),
        Some(Err(e)) => {
            sink.event(Event::MetadataNotUsed { journal: folder.journal.as_deref().unwrap_or(&folder.dir), error: &e });
            None
        }
        None => None,
    };
    if !folder.dir.is_dir() {
        return Ok(true);
    }
    let files = FolderFiles::list(&folder.dir)?;
    if !files.odd.is_empty() {
        sink.event(Event::OddNames { files: &files.odd });
    }
    let mut pending = Pending { waiting: VecDeque::new(), count: 0, batch: Vec::with_capacity(BATCH) };
    for i in 0..files.len() {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        let file = files.get(i);
        report.messages += 1;
        let meta = index.as_ref().zip(file.uid).and_then(|(idx, uid)| idx.lookup(uid));
        if meta.as_ref().is_some_and(|m| m.headers.is_none()) {
            report.without_fields += 1;
        }
        let known = Known::of(meta);
        match known.judge(query) {
            Tri::False => report.by_metadata += 1,
            Tri::True if known.line_ready() => {
                report.by_metadata += 1;
                pending.flush(workers);
                pending.count += 1;
                pending.waiting.push_back(Waiting::Hit(known.line(&file)));
            }
            _ => {
                pending.batch.push((file, known));
                pending.count += 1;
                if pending.batch.len() == BATCH {
                    pending.flush(workers);
                }
            }
        }
        while pending.count > AHEAD || matches!(pending.waiting.front(), Some(Waiting::Hit(_))) {
            if !pending.settle(&folder.dir, workers, report, sink)? {
                return Ok(false);
            }
        }
    }
    pending.flush(workers);
    while !pending.waiting.is_empty() {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        if !pending.settle(&folder.dir, workers, report, sink)? {
            return Ok(false);
        }
    }
    if let Some(index) = &index {
        let damaged = index.damage().len();
        if damaged > 0 {
            sink.event(Event::DamagedRecords { journal: index.path(), count: damaged });
        }
    }
    Ok(true)
}

/// The messages of a folder not said yet, in order, and the batch being filled.
struct Pending {
    waiting: VecDeque<Waiting>,
    /// Messages in `waiting`.
    count: usize,
    /// Messages to read not given to the workers yet (after all of `waiting`).
    batch: Vec<Job>,
}

impl Pending {
    /// Gives the batch being filled to the workers.
    fn flush(&mut self, workers: &mut Workers<Job, Answer>) {
        if !self.batch.is_empty() {
            self.waiting.push_back(Waiting::Batch(self.batch.len()));
            workers.give(std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH)));
        }
    }

    /// Says the oldest waiting message, or batch of them: the hits' lines; false when the
    /// search is to stop.
    fn settle(
        &mut self,
        dir: &Path,
        workers: &mut Workers<Job, Answer>,
        report: &mut Summary,
        sink: &dyn Sink,
    ) -> Result<bool> {
        match self.waiting.pop_front() {
            None => Ok(true),
            Some(Waiting::Hit(line)) => {
                self.count -= 1;
                Ok(say(dir, &line, report, sink))
            }
            Some(Waiting::Batch(n)) => {
                self.count -= n;
                let answers = workers.take().ok_or_else(|| Error::runtime("a search thread stopped"))?;
                for (file, answer) in answers {
                    report.files_read += 1;
                    match answer {
                        Ok(Some(line)) => {
                            if !say(dir, &line, report, sink) {
                                return Ok(false);
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let why = describe_io(&e);
                            sink.event(Event::Unreadable { path: &file.path, why: &why });
                            report.failed.push((file.path.clone(), why));
                        }
                    }
                }
                Ok(true)
            }
        }
    }
}

/// Says a hit; false when the sink is gone.
fn say(dir: &Path, line: &str, report: &mut Summary, sink: &dyn Sink) -> bool {
    report.hits += 1;
    sink.event(Event::Hit { folder: dir, line });
    !sink.gone()
}

/// Reads a message from its file until the query is decided; its line if it is a hit.
fn read_message<'q>(
    file: &ArchiveFile,
    known: Known,
    query: &'q Query,
    keys: Option<&Keys>,
    matcher: &mut Matcher<'q>,
) -> std::io::Result<Option<String>> {
    let (from_line, reader) = file.open(keys)?;
    let mut input = Counting { inner: reader, count: 0 };
    let mut judge = Judge::new(query, known, matcher);
    mime::read(&mut input, &mut judge)?;
    if !mime::Sink::done(&judge) {
        // The whole message was read.
        judge.known.size = judge.known.size.or(Some(input.count));
        judge.complete = true;
        judge.decide();
    }
    if judge.decided != Tri::True {
        return Ok(None);
    }
    if judge.known.size.is_none() && !file.form.compressed && !file.form.encrypted {
        let len = std::fs::metadata(&file.path)?.len();
        judge.known.size = len.checked_sub(from_line.len() as u64);
    }
    Ok(Some(judge.known.line(file)))
}

/// A reader that counts the message bytes consumed.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.count += n as u64;
        self.inner.consume(n);
    }
}

/// What is known of a message: its metadata, and what its file told so far.
struct Known {
    meta: Option<MessageMeta>,
    /// Its date's calendar day, in its own zone: `Some(None)` when it has no (valid) date.
    day: Option<Option<i64>>,
    /// Its size.
    size: Option<u64>,
    /// Raw header values for its line (from the metadata, or the file).
    shown: Option<Shown>,
}

impl Known {
    fn of(meta: Option<MessageMeta>) -> Known {
        let headers = meta.as_ref().and_then(|m| m.headers.as_deref());
        let internal_day = meta.as_ref().and_then(|m| m.internal_date.as_deref()).and_then(internal_day);
        let day = match (internal_day, headers) {
            (Some(d), _) => Some(Some(d)),
            (None, Some(h)) => Some(h.get(Kept::Date).and_then(header_day)),
            (None, None) => None,
        };
        let shown = headers.map(|h| Shown {
            date: h.get(Kept::Date).map(<[u8]>::to_vec),
            from: h.get(Kept::From).map(<[u8]>::to_vec),
            subject: h.get(Kept::Subject).map(<[u8]>::to_vec),
            size: None,
        });
        let size = meta.as_ref().and_then(|m| m.size);
        Known { meta, day, size, shown }
    }

    /// Whether its line can be said without its file.
    fn line_ready(&self) -> bool {
        self.shown.is_some()
    }

    fn line(&self, file: &ArchiveFile) -> String {
        let name = file.uid.map_or_else(|| crate::printable::escape(&file.name()), |u| u.to_string());
        let mut shown = Shown { size: self.size, ..Shown::default() };
        if let Some(s) = &self.shown {
            shown = Shown { date: s.date.clone(), from: s.from.clone(), subject: s.subject.clone(), size: self.size };
        }
        line(&name, self.meta.as_ref(), &shown)
    }

    /// The query's value from the metadata alone.
    fn judge(&self, query: &Query) -> Tri {
        let mut kept: [Option<String>; 5] = Default::default();
        query.eval(&mut |p| match p {
            Pred::Term(i) => self.kept_term(query, *i, &mut kept),
            _ => self.fact(p),
        })
    }

    /// Whether term `i` is in the fields the metadata keeps: unknown when it may be
    /// elsewhere (the body, other fields, the rest of a cut field).
    fn kept_term(&self, query: &Query, i: usize, kept: &mut [Option<String>; 5]) -> Tri {
        let term = &query.terms[i];
        let Some(headers) = self.meta.as_ref().and_then(|m| m.headers.as_deref()) else { return Tri::Unknown };
        let mut unsure = term.docs & !KEPT_DOCS.iter().fold(0, |acc, (d, _)| acc | bit(*d)) != 0;
        for (doc, field) in KEPT_DOCS {
            if term.docs & bit(doc) == 0 {
                continue;
            }
            let Some(raw) = headers.get(field) else { continue };
            let text = kept[field as usize].get_or_insert_with(|| normalize(&encoded::decode_value(raw)));
            if text.contains(term.text.as_str()) {
                return Tri::True;
            }
            unsure |= headers.is_cut(field);
        }
        if unsure {
            Tri::Unknown
        } else {
            Tri::False
        }
    }

    /// A predicate other than a term, from what is known.
    fn fact(&self, p: &Pred) -> Tri {
        let meta = self.meta.as_ref();
        match p {
            Pred::Term(_) => Tri::Unknown,
            Pred::Since(d) => self.day.map_or(Tri::Unknown, |day| day.is_some_and(|day| day >= *d).into()),
            Pred::Before(d) => self.day.map_or(Tri::Unknown, |day| day.is_some_and(|day| day < *d).into()),
            Pred::Larger(n) => self.size.map_or(Tri::Unknown, |s| (s > *n).into()),
            Pred::Smaller(n) => self.size.map_or(Tri::Unknown, |s| (s < *n).into()),
            // Flags and labels are known from the metadata only: none recorded, none had.
            Pred::Flag(f) => meta.is_some_and(|m| m.flags.iter().any(|g| g.eq_ignore_ascii_case(f))).into(),
            Pred::Label(l) => meta
                .and_then(|m| m.labels.as_ref())
                .is_some_and(|ls| ls.iter().any(|g| normalize(g) == normalize(l)))
                .into(),
        }
    }
}

/// The calendar day of an INTERNALDATE, in its own zone.
fn internal_day(date: &str) -> Option<i64> {
    let (t, zone) = crate::archive::metadata::parse_internal_date(date)?;
    Some((t + i64::from(zone) * 60).div_euclid(86400))
}

/// The calendar day of a `Date:` header, as written (in its own zone).
fn header_day(raw: &[u8]) -> Option<i64> {
    let (t, offset) = crate::mbox::parse_rfc5322_date_zoned(raw)?;
    Some((t + offset).div_euclid(86400))
}

/// Judges a message as its file is read (the sink of [`mime::read`]).
struct Judge<'q, 'm> {
    query: &'q Query,
    known: Known,
    matcher: &'m mut Matcher<'q>,
    /// The message's own header has been read.
    header_read: bool,
    /// The whole message has been read.
    complete: bool,
    decided: Tri,
}

impl<'q, 'm> Judge<'q, 'm> {
    fn new(query: &'q Query, known: Known, matcher: &'m mut Matcher<'q>) -> Judge<'q, 'm> {
        matcher.reset();
        Judge { query, known, matcher, header_read: false, complete: false, decided: Tri::Unknown }
    }

    fn decide(&mut self) {
        let (found, header_read, complete) = (self.matcher.found(), self.header_read, self.complete);
        let (known, terms) = (&self.known, &self.query.terms);
        self.decided = self.query.eval(&mut |p| match p {
            Pred::Term(i) if found & (1 << i) != 0 => Tri::True,
            Pred::Term(_) if complete => Tri::False,
            Pred::Term(i) if header_read && terms[*i].docs & !HEADER_DOCS == 0 => Tri::False,
            Pred::Term(_) => Tri::Unknown,
            _ => known.fact(p),
        });
    }
}

impl mime::Sink for Judge<'_, '_> {
    fn header(&mut self, attached: bool, fields: &[Option<Vec<u8>>]) {
        const DOCS: [Doc; mime::SEARCHED] = [
            Doc::From,
            Doc::To,
            Doc::Subject,
            Doc::MessageId,
            Doc::Date,
            Doc::OtherAddress,
            Doc::OtherAddress,
            Doc::OtherAddress,
            Doc::OtherAddress,
        ];
        for (i, doc) in DOCS.iter().enumerate() {
            let doc = if attached { Doc::Attached } else { *doc };
            if let (Some(raw), true) = (&fields[i], self.matcher.wants(doc)) {
                self.matcher.document(doc, &encoded::decode_value(raw));
            }
        }
        if attached {
            self.decide();
            return;
        }
        let value = |i: usize| fields[i].clone();
        if self.known.shown.is_none() {
            self.known.shown = Some(Shown { date: value(4), from: value(0), subject: value(2), size: None });
        }
        if self.known.day.is_none() {
            self.known.day = Some(fields[4].as_deref().and_then(header_day));
        }
        self.header_read = true;
        self.decide();
    }

    fn wants_text(&self) -> bool {
        self.decided == Tri::Unknown && self.matcher.wants(Doc::Body)
    }

    fn text_begin(&mut self) {
        self.matcher.begin(Doc::Body);
    }

    fn text(&mut self, text: &str) {
        if self.matcher.text(text) {
            self.decide();
        }
    }

    fn text_end(&mut self) {
        if self.matcher.end() {
            self.decide();
        }
    }

    fn done(&self) -> bool {
        self.header_read && self.decided != Tri::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `query` selects `message`, read from an input that gives `capacity` bytes
    /// at a time.
    fn selects(query: &str, message: &[u8], capacity: usize) -> bool {
        let query = Query::parse(query).unwrap();
        let mut matcher = Matcher::new(&query.terms);
        let mut judge = Judge::new(&query, Known::of(None), &mut matcher);
        mime::read(&mut std::io::BufReader::with_capacity(capacity, message), &mut judge).unwrap();
        if !mime::Sink::done(&judge) {
            judge.complete = true;
            judge.decide();
        }
        judge.decided == Tri::True
    }

    /// Terms in decoded body text, whatever the pieces it comes in: a quoted-printable soft
    /// line break inside the term, base64, a legacy charset, an ASCII term against
    /// non-ASCII text (a character that lowercases to ASCII; one that only looks alike).
    #[test]
    fn terms_in_decoded_text_whatever_the_pieces() {
        let qp =
            b"Subject: s\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nthe quar=\r\nterly  REP=\r\nort\r\n";
        let b64 = b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8g\r\nV29ybGQ=\r\n";
        let cp1251 =
            b"Subject: s\r\nContent-Type: text/plain; charset=windows-1251\r\n\r\n\xcf\xf0\xe8\xe2\xe5\xf2!\r\n";
        let utf8 = "Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\u{212a}ELVIN\r\nun café\r\n";
        let multipart = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nalpha\r\n\
            --b\r\nContent-Type: image/png\r\n\r\nbravo\r\n--b\r\n\r\ncharlie delta\r\n--b--\r\n";
        let cases: &[(&str, &[u8], bool)] = &[
            ("\"quarterly report\"", qp, true),
            ("\"quarterly reports\"", qp, false),
            ("\"hello world\"", b64, true),
            ("привет", cp1251, true),
            ("kelvin", utf8.as_bytes(), true),
            ("cafe", utf8.as_bytes(), false),
            ("\"un café\"", utf8.as_bytes(), true),
            ("alpha charlie", multipart, true),
            ("bravo", multipart, false),
            ("\"alpha charlie\"", multipart, false),
        ];
        for (query, message, want) in cases {
            for capacity in [1, 2, 3, 7, 64, 4096] {
                assert_eq!(selects(query, message, capacity), *want, "{query} read {capacity} bytes at a time");
            }
        }
    }
}
