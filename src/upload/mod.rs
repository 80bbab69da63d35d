//! Restore to an IMAP server (`-r PATH --to-imap`): every message of a folder directory
//! (or of each folder of a user directory) is `APPEND`ed to its mailbox, streamed from the
//! archive in bounded memory, with its INTERNALDATE.
//!
//! Nothing is uploaded twice, whatever was interrupted: before a folder is uploaded, the
//! target mailbox's message sizes are read (one round trip), and for a message whose size
//! is there the target's header of that size is compared with ours. A message already
//! there is skipped; a kill between the server storing a message and us hearing of it
//! costs nothing on the rerun. The archive is only read.

pub mod measure;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::archive::{self, ArchiveFile};
use crate::error::{describe_io, Error, Result};
use crate::imap::session::Appending;
use crate::imap::{ImapError, Session};
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;
use crate::metadata::Index;
use crate::report::Sink;
use measure::{fingerprint, measure, Measured, MAX_HEADER};

/// Messages measured and checked against the target at a time: their fingerprints are
/// all that is held.
const WINDOW: usize = 500;
/// Uploads in flight where the server takes literals without a go-ahead (LITERAL+).
const IN_FLIGHT: usize = 8;

/// One folder directory and the mailbox it goes to.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The folder directory.
    pub dir: PathBuf,
    /// The mailbox on the target server.
    pub mailbox: Mailbox,
    /// Its metadata journal (flags, arrival times), when the archive kept one.
    pub journal: Option<PathBuf>,
}

/// What became of one folder's upload.
#[derive(Debug, Default)]
pub struct FolderUpload {
    pub uploaded: usize,
    /// Messages the target held already.
    pub present: usize,
    pub failed: usize,
    pub bytes: u64,
    pub seconds: f64,
}

impl FolderUpload {
    /// `N uploaded, M already there, K failed, B bytes, S s`.
    pub fn summary(&self) -> String {
        format!(
            "{} uploaded, {} already there, {} failed, {} bytes, {:.2} s",
            self.uploaded, self.present, self.failed, self.bytes, self.seconds
        )
    }
}

/// Why a pass over a folder stopped.
enum Stop {
    /// The connection broke: reconnect and run again (what is there is not sent again).
    Connection(String),
    /// The folder cannot be uploaded.
    Fatal(Error),
}

/// Uploads the messages of `dest` into its mailbox (created when missing), reconnecting
/// a bounded number of times.
pub fn upload_folder(
    session: &mut Session,
    dest: &Destination,
    keys: Option<&Keys>,
    sink: &dyn Sink,
) -> Result<FolderUpload> {
    let started = Instant::now();
    let files = archive::list_folder(&dest.dir)?;
    let index = match &dest.journal {
        Some(path) => match Index::load(path, keys, false) {
            Ok(index) => Some(index),
            Err(e) => {
                sink.warning(&format!("{}: {e}; flags and arrival times not restored", dest.mailbox.shown()));
                None
            }
        },
        None => None,
    };
    let mut report = FolderUpload::default();
    loop {
        match pass(session, dest, &files, keys, index.as_ref(), sink, &mut report) {
            Ok(()) => {
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            Err(Stop::Connection(why)) => {
                let notice = session.lost(&why)?;
                sink.warning(&format!("{}: {notice}", session.spec().endpoint()));
            }
            Err(Stop::Fatal(e)) => return Err(e),
        }
    }
}

/// An IMAP failure as a [`Stop`].
fn stop(session: &Session, what: &str, e: ImapError) -> Stop {
    let err = session.spec().imap_error(what, &e);
    if e.breaks_session() && !matches!(e, ImapError::Local(_)) {
        Stop::Connection(err.to_string())
    } else {
        Stop::Fatal(err)
    }
}

fn pass(
    session: &mut Session,
    dest: &Destination,
    files: &[ArchiveFile],
    keys: Option<&Keys>,
    index: Option<&Index>,
    sink: &dyn Sink,
    report: &mut FolderUpload,
) -> std::result::Result<(), Stop> {
    let wire = dest.mailbox.wire.as_str();
    let sizes = match session.target_sizes(wire).map_err(|e| stop(session, "EXAMINE", e))? {
        Some(sizes) => sizes,
        None => {
            session.create(wire).map_err(|e| stop(session, "CREATE", e))?;
            Vec::new()
        }
    };
    let mut by_size = BySize::new(sizes);
    // Counted anew each pass: what an earlier pass uploaded is "already there" now.
    let uploaded_before = report.uploaded;
    report.present = 0;
    report.failed = 0;
    for window in files.chunks(WINDOW) {
        let mut measured = Vec::with_capacity(window.len());
        for f in window {
            match read_message(f, keys).and_then(|mut r| measure(&mut r).map_err(|e| unreadable(f, &e))) {
                Ok(m) => measured.push(Some(m)),
                Err(e) => {
                    sink.warning(&format!("left out {}: {e}", f.path.display()));
                    report.failed += 1;
                    measured.push(None);
                }
            }
        }
        let present = already_there(session, &measured, &mut by_size)?;
        let mut in_flight: std::collections::VecDeque<(usize, u64)> = std::collections::VecDeque::new();
        for (i, (f, m)) in window.iter().zip(&measured).enumerate() {
            let Some(m) = m else { continue };
            if present[i] {
                report.present += 1;
                continue;
            }
            let (flags, date) = stored(index, f.uid, &m.header);
            let mut body = read_message(f, keys).map_err(Stop::Fatal)?;
            let sent = session
                .send_append(wire, Appending { flags: &flags, date: date.as_deref(), size: m.bytes, body: &mut body });
            match sent {
                Ok(()) => in_flight.push_back((i, m.bytes)),
                Err(ImapError::Refused(text)) => refused(sink, f, &text, report),
                Err(e) => return Err(stop(session, "APPEND", e)),
            }
            while session.appends_in_flight() >= IN_FLIGHT {
                settle(session, &mut in_flight, window, sink, report)?;
            }
        }
        while session.appends_in_flight() > 0 {
            settle(session, &mut in_flight, window, sink, report)?;
        }
    }
    report.present = report.present.saturating_sub(uploaded_before);
    Ok(())
}

/// The flags and INTERNALDATE a message goes up with: those the metadata kept, else no
/// flags and the date of its `Date:` header (the arrival time of archives without
/// metadata is lost; the sender's date is closer to it than the time of the upload).
fn stored(index: Option<&Index>, uid: Option<u32>, header: &[u8]) -> (Vec<String>, Option<String>) {
    let meta = index.zip(uid).and_then(|(i, uid)| i.lookup(uid));
    // \Recent is the server's to set; APPEND refuses it.
    let flags = meta
        .as_ref()
        .map_or_else(Vec::new, |m| m.flags.iter().filter(|f| !f.eq_ignore_ascii_case("\\Recent")).cloned().collect());
    let date = meta.and_then(|m| m.internal_date).or_else(|| {
        let value = crate::mbox::header_field(header, b"date")?;
        crate::mbox::parse_rfc5322_date(&value).map(|t| crate::metadata::format_internal_date(t, 0))
    });
    (flags, date)
}

/// Reads the answer of the oldest upload in flight.
fn settle(
    session: &mut Session,
    in_flight: &mut std::collections::VecDeque<(usize, u64)>,
    window: &[ArchiveFile],
    sink: &dyn Sink,
    report: &mut FolderUpload,
) -> std::result::Result<(), Stop> {
    let Some((i, bytes)) = in_flight.pop_front() else { return Ok(()) };
    match session.read_append() {
        Ok(()) => {
            report.uploaded += 1;
            report.bytes += bytes;
            sink.detail(&format!("uploaded {}", window[i].path.display()));
            Ok(())
        }
        Err(ImapError::Refused(text)) => {
            refused(sink, &window[i], &text, report);
            Ok(())
        }
        Err(e) => Err(stop(session, "APPEND", e)),
    }
}

fn refused(sink: &dyn Sink, f: &ArchiveFile, text: &str, report: &mut FolderUpload) {
    sink.warning(&format!("the server refused {}: {}", f.path.display(), crate::imap::error::quote(text)));
    report.failed += 1;
}

/// For each measured message, whether the target holds it already: a message of the same
/// size whose header is the same. Headers are asked for only where sizes match.
fn already_there(
    session: &mut Session,
    measured: &[Option<Measured>],
    by_size: &mut BySize,
) -> std::result::Result<Vec<bool>, Stop> {
    let mut candidates: Vec<u32> = Vec::new();
    for m in measured.iter().flatten() {
        candidates.extend(by_size.of(m.virtual_size).iter().map(|&(_, uid)| uid).filter(|&uid| uid != TAKEN));
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut theirs: HashMap<u32, [u8; 16]> = HashMap::new();
    if !candidates.is_empty() {
        session
            .headers(&candidates, MAX_HEADER + 1024, &mut |uid, header| {
                theirs.insert(uid, fingerprint(&header));
            })
            .map_err(|e| stop(session, "UID FETCH", e))?;
    }
    let mut present = vec![false; measured.len()];
    for (i, m) in measured.iter().enumerate() {
        let Some(m) = m else { continue };
        let ours = fingerprint(&m.header);
        if let Some(slot) = by_size.of(m.virtual_size).iter_mut().find(|(_, u)| theirs.get(u) == Some(&ours)) {
            slot.1 = TAKEN;
            present[i] = true;
        }
    }
    Ok(present)
}

/// A UID no message has: marks a target message matched already.
const TAKEN: u32 = 0;

/// The target mailbox's messages as `(size, uid)`, sorted by size: 8 bytes a message,
/// so even a huge mailbox costs little memory. Each is matched by one archived message
/// at most (its UID becomes [`TAKEN`]).
struct BySize(Vec<(u32, u32)>);

impl BySize {
    fn new(sizes: Vec<(u32, u32)>) -> BySize {
        let mut v: Vec<(u32, u32)> = sizes.into_iter().map(|(uid, size)| (size, uid)).collect();
        v.sort_unstable();
        BySize(v)
    }

    /// The messages of `size` bytes.
    fn of(&mut self, size: u64) -> &mut [(u32, u32)] {
        let Ok(size) = u32::try_from(size) else { return &mut [] };
        let start = self.0.partition_point(|&(s, _)| s < size);
        let end = self.0.partition_point(|&(s, _)| s <= size);
        &mut self.0[start..end]
    }
}

/// The message of `f`, decoded (authenticated first when encrypted).
fn read_message(f: &ArchiveFile, keys: Option<&Keys>) -> Result<Box<dyn Read>> {
    let (_, reader) = f.open(keys).map_err(|e| unreadable(f, &e))?;
    Ok(Box::new(reader))
}

fn unreadable(f: &ArchiveFile, e: &std::io::Error) -> Error {
    Error::runtime(format!("{}: {}", f.path.display(), describe_io(e)))
}

/// The folder directories under `path` and their mailboxes: `path` itself when it is a
/// folder directory (into `to_folder`, else the mailbox the records name, else its
/// directory name), or every folder of a user directory.
pub fn destinations(path: &Path, to_folder: Option<&str>) -> Result<(Vec<Destination>, Option<String>)> {
    use crate::restore::account;
    if account::is_account_dir(path)? {
        if to_folder.is_some() {
            return Err(Error::usage(format!(
                "{} holds the folders of an account: --to-folder goes with one folder directory",
                path.display()
            )));
        }
        let (folders, problem) = account::folders(path)?;
        let dests = folders
            .into_iter()
            .map(|f| {
                let mailbox = f.mailbox.clone().unwrap_or_else(|| Mailbox::from_arg(&dir_name(&f.dir)));
                let journal = crate::metadata::journal_of_dir(&f.dir);
                Destination { dir: f.dir, mailbox, journal }
            })
            .collect();
        return Ok((dests, problem));
    }
    if archive::list_folder(path)?.is_empty() {
        return Err(Error::runtime(format!("{}: no archive files (UID.mbox...) to upload", path.display())));
    }
    let mailbox = match to_folder {
        Some(name) => Mailbox::from_arg(name),
        None => recorded_mailbox(path).unwrap_or_else(|| Mailbox::from_arg(&dir_name(path))),
    };
    let journal = crate::metadata::journal_of_dir(path);
    Ok((vec![Destination { dir: path.to_path_buf(), mailbox, journal }], None))
}

/// The mailbox the records of the archive root name for the folder directory `dir`.
fn recorded_mailbox(dir: &Path) -> Option<Mailbox> {
    let dir = dir.canonicalize().ok()?;
    let user_dir = dir.parent()?;
    let records = crate::registry::Registry::read(user_dir.parent()?).ok()?;
    let record = records.folder_at(&dir_name(user_dir), &dir_name(&dir))?;
    Some(record.mailbox.clone())
}

fn dir_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
