//! Verified prune as the last step of an account's backup (and of its `--dry-run`): for
//! each folder whose backup completed without a failure and that has a limit, finds its
//! archive, has `crate::prune` do the folder, and says what came of it. The server is
//! written to here only, and only when the account asked for prune.

use std::path::PathBuf;

use super::event::{Event, Sink};
use crate::account::Account;
use crate::archive::layout::registry::Registry;
use crate::error::{Error, Result};
use crate::imap::wire::ListEntry;
use crate::imap::Removal;
use crate::imap::Session;
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;
use crate::os::dir::Dir;
use crate::prune::remove::{self, Offers};
use crate::prune::{self, Copies, Job, Outcome};

/// The archive of one folder, as prune needs it.
#[derive(Debug)]
struct Archived {
    dir: Dir,
    journal: Option<PathBuf>,
    uidvalidity: u32,
}

/// The folder directory, journal and UIDVALIDITY of `mailbox`'s archive; `None` when it
/// has none (never backed up).
fn archived(registry: &Registry, account_dir: &str, mailbox: &Mailbox) -> Result<Option<Archived>> {
    let Some(record) = registry.folder_of(account_dir, mailbox) else { return Ok(None) };
    let Some(uidvalidity) = record.uidvalidity else { return Ok(None) };
    let root = registry.root();
    let rel = std::path::Path::new(account_dir).join(&record.dir);
    // Opened from the root one name at a time, never through a symlink.
    let dir = Dir::open(root)
        .and_then(|r| r.open_beneath(&rel))
        .map_err(|e| Error::runtime(format!("{}: {}", root.join(&rel).display(), crate::error::describe_io(&e))))?;
    let journal = crate::archive::metadata::journal_path(root, account_dir, &mailbox.wire, uidvalidity);
    Ok(Some(Archived { dir, journal: journal.is_file().then_some(journal), uidvalidity }))
}

/// How `session`'s server removes the messages of `wire`, `Err` with why it cannot;
/// `entries` are the LIST entries the run has (asked here when the Trash folder is needed
/// and they are none).
fn removal_for(session: &mut Session, entries: &mut Vec<ListEntry>, wire: &str) -> Result<Removal> {
    let has = |s: &mut Session, cap: &str| s.has(cap).map_err(|e| s.spec().imap_error("CAPABILITY", &e));
    let offers =
        Offers { uidplus: has(session, "UIDPLUS")?, moves: has(session, "MOVE")?, gmail: has(session, "X-GM-EXT-1")? };
    if entries.is_empty() && offers.moves && (offers.gmail || !offers.uidplus) {
        *entries = session.list(false).map_err(|e| session.spec().imap_error("LIST", &e))?.entries;
    }
    let trash = remove::trash_of(entries);
    remove::removal(offers, trash.as_deref(), wire).ok_or_else(|| Error::runtime(remove::CANNOT))
}

/// An account's side of prune: whose, with which keys, where in the archive, which folders.
pub struct Scope<'a> {
    /// The account.
    pub account: &'a Account,
    /// The archive's keys, under `-e`.
    pub keys: Option<&'a Keys>,
    /// Its user directory in the root.
    pub account_dir: &'a str,
    /// The folders of the run, in order.
    pub folders: &'a [Mailbox],
}

/// Prunes, after an account's backup, the folders of the run whose backup completed
/// without a failure (`clean`, by printable name) and that have a limit. Returns the
/// number of folders with a problem (a refusal, a damaged copy), which fail the account.
pub fn after_backup(
    scope: &Scope<'_>,
    session: &mut Session,
    registry: &std::sync::Mutex<Registry>,
    clean: &[String],
    mut entries: Vec<ListEntry>,
    sink: &dyn Sink,
) -> usize {
    let Scope { account, keys, account_dir, folders } = *scope;
    let Some(settings) = &account.prune else { return 0 };
    let mut problems = 0;
    for mailbox in folders.iter().filter(|m| clean.contains(&m.shown())) {
        let Some(days) = settings.days_for(mailbox) else { continue };
        if session.given_up() || crate::interrupt::requested() {
            break;
        }
        let how = match removal_for(session, &mut entries, &mailbox.wire) {
            Ok(how) => how,
            Err(error) => {
                // Said once for the account: the server cannot, whatever the folder.
                sink.event(Event::PruneRefused { account, error: &error });
                return problems + 1;
            }
        };
        let found = archived(&registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner), account_dir, mailbox);
        let outcome = found.and_then(|a| {
            let Some(a) = a else { return Ok(None) };
            let copies = Copies { dir: &a.dir, journal: a.journal.as_deref(), uidvalidity: a.uidvalidity, keys };
            let job = Job {
                mailbox,
                days,
                keep_flagged: settings.keep_flagged,
                removal: Some(&how),
                now: crate::archive::metadata::now(),
            };
            prune::folder(session, &copies, &job).map(Some)
        });
        problems += usize::from(said(account, &mailbox.shown(), outcome, sink));
    }
    problems
}

/// Says what a dry run of prune finds in `account`'s folders (all of them: a backup would
/// complete them first). `keys` were loaded before the sandbox closed. Returns the number
/// of folders with a problem.
pub fn dry_run(
    scope: &Scope<'_>,
    session: &mut Session,
    registry: &Registry,
    mut entries: Vec<ListEntry>,
    sink: &dyn Sink,
) -> usize {
    let Scope { account, keys, account_dir, folders } = *scope;
    let Some(settings) = &account.prune else { return 0 };
    let mut problems = 0;
    for mailbox in folders {
        let Some(days) = settings.days_for(mailbox) else { continue };
        if let Err(error) = removal_for(session, &mut entries, &mailbox.wire) {
            sink.event(Event::PruneRefused { account, error: &error });
            return problems + 1;
        }
        let outcome = archived(registry, account_dir, mailbox).and_then(|a| {
            let Some(a) = a else { return Ok(None) };
            let copies = Copies { dir: &a.dir, journal: a.journal.as_deref(), uidvalidity: a.uidvalidity, keys };
            let job = Job {
                mailbox,
                days,
                keep_flagged: settings.keep_flagged,
                removal: None,
                now: crate::archive::metadata::now(),
            };
            prune::folder(session, &copies, &job).map(Some)
        });
        problems += usize::from(said(account, &mailbox.shown(), outcome, sink));
    }
    problems
}

/// Tells what prune did to (or would do in) `folder`; whether there was a problem.
fn said(account: &Account, folder: &str, outcome: Result<Option<Outcome>>, sink: &dyn Sink) -> bool {
    match outcome {
        Ok(Some(outcome)) => {
            sink.event(Event::Pruned { account, outcome: &outcome });
            outcome.problems().next().is_some()
        }
        // Never archived: nothing can be checked, nothing goes.
        Ok(None) => false,
        Err(error) => {
            sink.event(Event::PruneFailed { account, folder: Some(folder), error: &error });
            true
        }
    }
}
