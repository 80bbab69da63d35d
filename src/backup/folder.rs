//! One folder's backup: EXAMINE, compare the server's UIDs with the files already in the
//! folder directory, and fetch what is missing in size-bounded batches, each message into
//! a temporary file (in the root's own directory) that is synced and linked into the
//! folder directory only when complete.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Instant;

use super::fetch::{FetchError, Fetched};
use super::plan::{self, Batch};
use super::writer::{MessageWriter, Outcome, Settings};
use super::Connection;
use crate::account::Account;
use crate::app::Output;
use crate::archive::ArchiveFile;
use crate::error::{Error, IoContext, Result};
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;
use crate::progress::Progress;
use crate::registry::Registry;
use crate::server::login::{ServerSpec, Session};

/// UIDs per `UID FETCH (RFC822.SIZE)` command.
const SIZES_PER_COMMAND: usize = 5000;

/// What does not change while the folders of an account are backed up.
pub struct Context<'a> {
    pub account: &'a Account,
    pub keys: Option<&'a Keys>,
    pub out: Output,
}

/// What happened to one folder.
#[derive(Debug)]
pub struct FolderReport {
    pub folder: String,
    pub new: usize,
    pub existing: usize,
    pub failed: usize,
    /// Messages expunged between listing and fetching.
    pub vanished: usize,
    pub bytes: u64,
    pub started: Instant,
    /// The terminal's progress line.
    pub progress: Progress,
}

impl FolderReport {
    /// An empty report for `folder`, timed from now.
    pub fn new(folder: &str) -> FolderReport {
        FolderReport {
            folder: folder.to_string(),
            new: 0,
            existing: 0,
            failed: 0,
            vanished: 0,
            bytes: 0,
            started: Instant::now(),
            progress: Progress::new(folder.to_string(), false),
        }
    }

    /// The one-line summary: `folder: N new, M already archived, K failed, bytes, seconds`.
    pub fn summary(&self) -> String {
        let vanished = if self.vanished > 0 { format!(", {} vanished", self.vanished) } else { String::new() };
        format!(
            "{}: {} new, {} already archived, {} failed{vanished}, {} bytes, {:.2} s",
            self.folder,
            self.new,
            self.existing,
            self.failed,
            self.bytes,
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// Why a pass over the folder stopped.
enum Stop {
    /// The connection broke: reconnect and run the pass again (it resumes).
    Connection(String),
    /// Anything else: the folder fails.
    Fatal(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Fatal(e)
    }
}

/// Whether an IMAP error leaves the session unusable (as opposed to a refused command).
pub fn is_connection_error(e: &imap::Error) -> bool {
    !matches!(e, imap::Error::No(_) | imap::Error::Bad(_) | imap::Error::Validate(_) | imap::Error::Append)
}

fn imap_stop<'a>(spec: &'a ServerSpec, what: &'a str) -> impl Fn(imap::Error) -> Stop + 'a {
    move |e| {
        let err = spec.imap_error(what, &e);
        if is_connection_error(&e) {
            Stop::Connection(err.to_string())
        } else {
            Stop::Fatal(err)
        }
    }
}

/// Where a folder's messages go: the root's records and the folder's user directory.
pub struct Place<'a> {
    /// The archive root's records.
    pub registry: &'a mut Registry,
    /// The account's user directory in the root.
    pub account_dir: &'a str,
}

/// Backs up one mailbox into its folder directory, reconnecting (a bounded number of
/// times) when the connection breaks; each new pass skips what the previous ones archived.
pub fn backup(
    ctx: &Context<'_>,
    conn: &mut Connection<'_>,
    place: &mut Place<'_>,
    mailbox: &Mailbox,
) -> Result<FolderReport> {
    let name = mailbox.shown();
    let mut report = FolderReport::new(&name);
    report.progress = Progress::new(format!("{} {name}", ctx.account.user), !ctx.out.quiet);
    loop {
        match pass(ctx, conn, place, mailbox, &mut report) {
            Ok(()) => {
                report.progress.clear();
                return Ok(report);
            }
            Err(Stop::Connection(why)) => {
                report.progress.clear();
                conn.lost(&why)?;
            }
            Err(Stop::Fatal(e)) => return Err(e),
        }
    }
}

fn session<'c>(conn: &'c mut Connection<'_>) -> std::result::Result<&'c mut Session, Stop> {
    // A connect that fails here is a reconnect: it gets the same bounded retries.
    conn.session().map_err(|e| Stop::Connection(e.to_string()))
}

fn pass(
    ctx: &Context<'_>,
    conn: &mut Connection<'_>,
    place: &mut Place<'_>,
    mailbox: &Mailbox,
    report: &mut FolderReport,
) -> std::result::Result<(), Stop> {
    // Each pass retries every missing message: only its own failures count.
    report.failed = 0;
    let examined = session(conn)?.examine(&mailbox.wire).map_err(imap_stop(&conn.spec, "EXAMINE"))?;
    let uidvalidity =
        examined.uid_validity.ok_or_else(|| Error::runtime("the server reported no UIDVALIDITY for the folder"))?;
    let opened = place.registry.open_folder(place.account_dir, mailbox, uidvalidity)?;
    if let Some((old, aside)) = &opened.retired {
        crate::app::warn(format!(
            "{}: UIDVALIDITY changed ({old} -> {uidvalidity}): the old archive was moved to {}",
            report.folder,
            aside.display()
        ));
    }
    let dir = opened.path.as_path();
    let on_server: HashSet<u32> = if examined.exists == 0 {
        HashSet::new()
    } else {
        session(conn)?.uid_search("ALL").map_err(imap_stop(&conn.spec, "UID SEARCH"))?
    };
    let archived = archived_uids(dir)?;
    let mut missing: Vec<u32> = on_server.iter().copied().filter(|u| !archived.contains(u)).collect();
    missing.sort_unstable();
    report.existing = on_server.len() - missing.len() - report.new.min(on_server.len() - missing.len());
    let mut sized = Vec::with_capacity(missing.len());
    for chunk in missing.chunks(SIZES_PER_COMMAND) {
        let fetches = session(conn)?
            .uid_fetch(plan::uid_set(chunk), "(UID RFC822.SIZE)")
            .map_err(imap_stop(&conn.spec, "UID FETCH"))?;
        let want: HashSet<u32> = chunk.iter().copied().collect();
        let mut got: Vec<(u32, u32)> =
            fetches.iter().filter_map(|f| Some((f.uid?, f.size?))).filter(|(u, _)| want.contains(u)).collect();
        got.sort_unstable();
        got.dedup_by_key(|(u, _)| *u);
        report.vanished += chunk.len() - got.len();
        sized.extend(got);
    }
    let budget = ctx.account.buffer_size;
    report.progress.start(sized.len());
    let mut writer = MessageWriter::spawn(Settings {
        dir: dir.to_path_buf(),
        tmp_dir: place.registry.tmp_dir(),
        form: ctx.account.form,
        level: ctx.account.level,
        keys: ctx.keys.cloned(),
    })?;
    let batches = plan::batches(&sized, budget);
    let fetched = (|| {
        for (i, batch) in batches.iter().enumerate() {
            match batch {
                Batch::Whole(uids) => {
                    // Unless the previous batch's turn already asked for this one.
                    if !conn.awaiting_answer() {
                        send_fetch(conn, &plan::uid_set(uids), WHOLE)?;
                    }
                    let answers = conn.read_fetch(max_literal(ctx));
                    // The server answers the next batch while the writer takes this one.
                    if let (Ok(_), Some(Batch::Whole(next))) = (&answers, batches.get(i + 1)) {
                        send_fetch(conn, &plan::uid_set(next), WHOLE)?;
                    }
                    store_whole(ctx, answers, uids, &mut writer, report)?;
                }
                Batch::Chunked(uid) => fetch_chunked(conn, *uid, budget, &mut writer, report)?,
            }
            writer.flush()?;
            tally(ctx, report, writer.ready()?);
        }
        Ok(())
    })();
    // Whatever happened, count what the writer finished (a message cut short by a lost
    // connection is dropped by it, temporary file and all).
    match writer.finish() {
        Ok(done) => tally(ctx, report, done),
        Err(e) if fetched.is_ok() => return Err(Stop::Fatal(e)),
        Err(_) => {}
    }
    fetched
}

/// Counts the writer's outcomes in the report.
fn tally(ctx: &Context<'_>, report: &mut FolderReport, outcomes: Vec<Outcome>) {
    for o in outcomes {
        match o {
            Outcome::Stored(uid, size) => {
                report.new += 1;
                report.bytes += size;
                report.progress.tick(size);
                if ctx.out.verbose {
                    println!("{} {}: UID {uid} archived ({size} bytes)", ctx.account.user, report.folder);
                }
            }
            Outcome::Existing(_) => report.existing += 1,
        }
    }
}

/// UIDs that have a file in the folder directory, in any form: one directory listing,
/// no file opened.
fn archived_uids(dir: &Path) -> Result<HashSet<u32>> {
    let mut uids = HashSet::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if let Some(f) = ArchiveFile::from_path(entry.path()) {
            uids.insert(f.uid);
        }
    }
    Ok(uids)
}

/// The largest literal accepted in an answer: more than any message we planned for.
fn max_literal(ctx: &Context<'_>) -> usize {
    2 * ctx.account.buffer_size + (1 << 20)
}

/// The query of a whole-message fetch.
const WHOLE: &str = "(UID BODY.PEEK[])";

/// Sends a `UID FETCH` for [`Connection::read_fetch`]; sending can only fail with the stream.
fn send_fetch(conn: &mut Connection<'_>, set: &str, query: &str) -> std::result::Result<(), Stop> {
    conn.send_fetch(set, query).map_err(|e| match e {
        FetchError::Refused(why) | FetchError::Connection(why) => Stop::Connection(format!("UID FETCH: {why}")),
    })
}

/// Hands the messages of a whole batch's answers to the writer.
fn store_whole(
    ctx: &Context<'_>,
    answers: std::result::Result<Vec<Fetched>, FetchError>,
    uids: &[u32],
    writer: &mut MessageWriter,
    report: &mut FolderReport,
) -> std::result::Result<(), Stop> {
    let answers = match answers {
        Ok(a) => a,
        Err(FetchError::Refused(text)) => {
            // A refused batch fails its messages, not the folder: the next run retries them.
            crate::app::warn(format!("{} {}: UID FETCH refused: {text}", ctx.account.label(), report.folder));
            report.failed += uids.len();
            return Ok(());
        }
        Err(FetchError::Connection(why)) => return Err(Stop::Connection(format!("UID FETCH: {why}"))),
    };
    let mut pending: HashSet<u32> = uids.iter().copied().collect();
    for f in answers {
        let Some(body) = f.body else { continue };
        // Answers may come in any order, and unasked ones may come too: match by UID.
        if !pending.remove(&f.uid) {
            continue;
        }
        writer.begin(f.uid)?;
        writer.data(&body)?;
        writer.end()?;
    }
    report.vanished += pending.len();
    Ok(())
}

fn fetch_chunked(
    conn: &mut Connection<'_>,
    uid: u32,
    chunk: usize,
    writer: &mut MessageWriter,
    report: &mut FolderReport,
) -> std::result::Result<(), Stop> {
    writer.begin(uid)?;
    let send = |conn: &mut Connection<'_>, offset: u64| {
        send_fetch(conn, &uid.to_string(), &format!("(UID BODY.PEEK[]<{offset}.{chunk}>)"))
    };
    let mut offset = 0u64;
    send(conn, offset)?;
    loop {
        let answers = match conn.read_fetch(2 * chunk + (1 << 20)) {
            Ok(a) => a,
            Err(FetchError::Refused(text)) => {
                writer.abort()?;
                return Err(Stop::Fatal(Error::runtime(format!("UID FETCH of UID {uid} refused: {text}"))));
            }
            Err(FetchError::Connection(why)) => return Err(Stop::Connection(format!("UID FETCH: {why}"))),
        };
        // A server may send a flags-only FETCH for the UID before the data: look for
        // the one that carries the body.
        let mut mine = answers.into_iter().filter(|f| f.uid == uid).peekable();
        if mine.peek().is_none() {
            // Expunged while we were reading it: nothing is kept.
            report.vanished += 1;
            writer.abort()?;
            return Ok(());
        }
        let Some(data) = mine.find_map(|f| f.body) else {
            writer.abort()?;
            return Err(Stop::Fatal(Error::runtime(format!(
                "the server sent no data for UID {uid} at offset {offset}"
            ))));
        };
        if data.len() > chunk {
            // More than asked for cannot be placed: the server ignored the range.
            writer.abort()?;
            return Err(Stop::Fatal(Error::runtime(format!(
                "the server answered a {chunk}-byte partial fetch of UID {uid} with {} bytes",
                data.len()
            ))));
        }
        // A full chunk means more may follow: ask for it before storing this one, so the
        // server reads the next chunk while the writer takes this.
        let more = data.len() == chunk;
        if more {
            send(conn, offset + chunk as u64)?;
        }
        writer.data(&data)?;
        offset += data.len() as u64;
        if !more {
            break;
        }
    }
    writer.end()?;
    Ok(())
}
