//! Backup: each account's folders into the archive, incrementally by UID, one crash-safe
//! file per message. One failing account never stops the others.

pub mod context;
pub mod dry_run;
pub mod event;
pub mod folder;
pub mod folder_report;
pub mod gmail;
pub mod list_folders;
pub mod new_mail;
pub mod pipelining;
pub mod plan;
pub mod prepare;
pub mod prune_step;
pub mod rebase;
pub mod refresh;
pub mod roots;
pub mod tails;
pub mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::account::{Account, Folders};
use crate::archive::layout::registry::{Claim, Registry};
use crate::credential_helper;
use crate::error::Result;
use crate::imap::{ByName, FolderStatus, Session, Statuses};
use crate::mailbox_name::Mailbox;
use crate::mailstore;
use crate::report::Output;
use crate::sandbox::{Confine, Rules};

pub use context::FolderReport;
pub use event::{Event, Sink};
pub use list_folders::{list_folders, Listing};
pub use prepare::{connection, Connection};
use prepare::{oauth2_dirs, oauth2_ports, prepare, Prepared};

/// Backs up every account; returns what came of them (the caller picks the exit code).
///
/// Three phases, so the sandbox can close in between: everything that needs the wider
/// system (password commands, key files, CA files, DNS, making a missing archive root)
/// happens first for every account, and the credential helper that runs the commands
/// again later is forked (and the janitor that removes a root made for nothing); then the
/// process confines itself to the archive roots and the IMAP ports; then the accounts are
/// backed up, each root claimed (locked, its records opened) only once an account of it
/// has logged in. One failing account never stops the others.
///
/// `confine` closes the sandbox; `writable` are more directories the run may write in
/// once confined (where `--report` goes). After SIGINT or SIGTERM no further account is
/// begun.
pub fn run(accounts: &[Account], out: Output, confine: &dyn Confine, writable: &[PathBuf], sink: &dyn Sink) -> Summary {
    let started = std::time::Instant::now();
    // First of all, while the process holds the least: the helper gets a copy of it.
    let renewals = match credential_helper::renewals(accounts) {
        Ok(r) => r,
        Err(error) => {
            sink.event(Event::Failed { error: &error });
            return Summary::aborted(accounts.len(), started);
        }
    };
    // Dropped last, on every way out: roots made for accounts that never logged in go.
    let mut roots = roots::Roots::default();
    let mut ready = Vec::new();
    let failed = |account: &Account, error: &crate::error::Error| {
        sink.event(Event::AccountFailed { account, error });
    };
    for (account, renewal) in accounts.iter().zip(renewals) {
        if crate::interrupt::requested() {
            return Summary::aborted(accounts.len(), started);
        }
        match prepare(account, sink, &mut roots) {
            Ok(p) => ready.push(Prepared { renewal: renewal.or(p.renewal.clone()), ..p }),
            Err(e) => failed(account, &e),
        }
    }
    if ready.is_empty() {
        let failed = accounts.len();
        let summary = Summary { failed, ..Summary::aborted(failed, started) }.ended(started);
        sink.event(Event::Finished { summary: &summary });
        return summary;
    }
    if let Err(error) = roots.start_janitor() {
        sink.event(Event::Failed { error: &error });
        return Summary::aborted(accounts.len(), started);
    }
    let rules = Rules {
        read_write: roots.paths().into_iter().chain(writable.iter().cloned()).chain(oauth2_dirs(&ready)).collect(),
        connect_tcp: ready.iter().map(|p| p.spec.port).chain(oauth2_ports(&ready)).collect(),
        // Messages are written in the root's temporary directory, then linked into place.
        cross_dir_renames: true,
        ..Rules::default()
    };
    match confine.confine(&rules) {
        Ok(status) if !status.fully_enforced() => sink.event(Event::SandboxPartial { status: &status }),
        Ok(_) => {}
        Err(error) => {
            let accounts: Vec<&Account> = ready.iter().map(|p| p.account).collect();
            sink.event(Event::SandboxRefused { error: &error, accounts: &accounts });
            return Summary::aborted(accounts.len(), started);
        }
    }
    let failed_early = accounts.len() - ready.len();
    let mut tally = Summary { failed: failed_early, ..Summary::aborted(accounts.len(), started) };
    tally.aborted = false;
    for p in ready {
        if crate::interrupt::requested() {
            break;
        }
        let account = p.account;
        let source = p.source.clone();
        sink.event(Event::AccountStarted { account });
        let outcome = backup_account(p, out, sink, &mut roots);
        if let Some(warning) = source.and_then(|s| s.take_warning()) {
            sink.event(Event::TokenWarning { account, warning: &warning });
        }
        match outcome {
            Ok(totals) => {
                tally.reached = true;
                tally.new += totals.new;
                tally.left += totals.left;
                tally.bytes += totals.bytes;
                if totals.failed > 0 || totals.capped {
                    tally.failed += 1;
                }
            }
            Err(e) => {
                failed(account, &e);
                tally.failed += 1;
            }
        }
    }
    let tally = tally.ended(started);
    if !crate::interrupt::requested() {
        sink.event(Event::Finished { summary: &tally });
    }
    tally
}

/// What became of the accounts of a run, for its last line and the exit code.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Accounts of the run.
    pub accounts: usize,
    /// Of those, the ones that failed (or not to the end).
    pub failed: usize,
    /// Messages archived.
    pub new: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Archived messages found to have left the server.
    pub left: usize,
    /// How long the run took.
    pub elapsed: Duration,
    /// Whether an account got as far as its folders (a single account that did not has
    /// said why in its error, which ends the run).
    pub reached: bool,
    /// The run stopped before its accounts' end: the credential helper, the janitor or the
    /// sandbox failed, or a signal came.
    pub aborted: bool,
}

impl Summary {
    /// A run of `accounts` stopped before it got anywhere.
    fn aborted(accounts: usize, started: std::time::Instant) -> Summary {
        Summary {
            accounts,
            failed: 0,
            new: 0,
            bytes: 0,
            left: 0,
            elapsed: started.elapsed(),
            reached: false,
            aborted: true,
        }
    }

    /// The same, timed up to now.
    fn ended(self, started: std::time::Instant) -> Summary {
        Summary { elapsed: started.elapsed(), ..self }
    }

    /// Whether something failed: the exit code is not 0.
    pub fn failing(&self) -> bool {
        self.aborted || self.failed > 0
    }
}

/// Phase three: one account's folders. Each folder's state is asked first, all at once;
/// a folder whose UIDVALIDITY and UIDNEXT are what the last complete backup recorded has
/// no new mail and is not opened at all; the new mail of the others is asked for together;
/// folders that need a full pass are shared by up to `connections` connections.
fn backup_account(p: Prepared<'_>, out: Output, sink: &dyn Sink, roots: &mut roots::Roots) -> Result<Totals> {
    let Prepared { account, root, keys, keys_created, guessed_dir, auth, renewal, spec, addrs, .. } = p;
    // Every connection of the account shares what the spec says of pipelining.
    let mut remembered = pipelining::remembered(&root, &guessed_dir);
    if remembered {
        spec.one_at_a_time.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let mut session = Session::new(spec.clone(), addrs.clone(), auth.clone()).renewing(renewal.clone());
    session.connect_retrying(&mut |notice| sink.event(Event::Reconnected { account, notice }))?;
    // Logged in: only now is the root the run's, and a directory claimed in it.
    roots.claim(&root)?;
    let mut registry = Registry::open(&root)?;
    let endpoint = spec.endpoint();
    let same = mailstore::recognise(&registry, &mut session, &endpoint, &account.user)
        .map_err(|e| spec.imap_error("EXAMINE", &e))?;
    if let Some((dir, was)) = &same {
        sink.event(Event::SameMailstore { account, was, dir: &root.join(dir) });
    }
    let account_dir = registry.claim_account(&endpoint, &account.user, same.as_ref().map(|(d, _)| d.as_str()))?;
    if !remembered && account_dir != guessed_dir && pipelining::remembered(&root, &account_dir) {
        remembered = true;
        spec.one_at_a_time.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if keys_created && account_dir != guessed_dir && crate::archive::any_encrypted(&root.join(&account_dir)) {
        let spec_keys = account.keys.as_ref().map(|k| k.path.display().to_string()).unwrap_or_default();
        return Err(crate::error::Error::runtime(format!(
            "the key file {spec_keys} was made by this run, but {} (this mailstore's archive) holds encrypted \
             messages that a new key could not read: give its key file (-k / \"keys\")",
            root.join(&account_dir).display()
        )));
    }
    // Another name's archive of this mailstore: the key must be the one its files were
    // sealed with, checked before anything is written with it.
    if let (Some(k), Some(spec_keys), false) = (&keys, &account.keys, account_dir == guessed_dir) {
        crate::archive::key_check::check_account(k, &spec_keys.path, &root, &account_dir)?;
    }
    let registry = Mutex::new(registry);
    // Folders named with -f are not listed: their hierarchy is not recorded (an upload
    // infers it from the names), and the run costs no command more.
    let Chosen { folders, statuses, unusable, namespace, listed_all, entries } =
        choose_folders(account, &mut session, sink)?;
    // Every name the server gave a state for is among these (the map's copies go).
    let names = entries.iter().map(|e| e.wire.as_str()).chain(folders.iter().map(|m| m.wire.as_str()));
    let statuses = Statuses::keep(statuses, names);
    // Each listed folder's wire name and separator, for the records; none for folders named
    // with -f (Gmail mode lists them only for their attributes).
    let separators: ByName<'_, Option<char>> = if listed_all {
        ByName::new(entries.iter().map(|e| (e.wire.as_str(), e.delimiter)))
    } else {
        ByName::default()
    };
    // Every folder without a directory gets its record and its directory now, all at once.
    {
        let mut records = lock(&registry);
        let separator_of = |wire: &str| separators.get(wire).copied().flatten();
        let claims: Vec<Claim<'_>> = folders
            .iter()
            .filter(|m| records.folder_of(&account_dir, m).is_none())
            .map(|m| Claim {
                mailbox: m,
                uidvalidity: statuses.get(&m.wire).and_then(|s| s.uidvalidity),
                separator: separator_of(&m.wire),
            })
            .collect();
        records.claim_folders(&account_dir, &claims)?;
    }
    let gmail = if account.gmail_mode && session.has("X-GM-EXT-1").unwrap_or(false) {
        gmail::Plan::of(&entries, &folders)
    } else {
        None
    };
    let connections = account.connections.max(1).min(if gmail.is_some() { gmail::MAX_CONNECTIONS } else { usize::MAX });
    let ctx = context::Context {
        account,
        keys: keys.as_ref(),
        sink,
        progress: !out.quiet && connections == 1,
        statuses: &statuses,
        folders: &folders,
    };
    let place = context::Place { registry: &registry, account_dir: &account_dir };
    let condstore = session.has("CONDSTORE").unwrap_or(false);
    // Flags are refreshed after the mail: the journals' ends are read before this run
    // appends. A journal changed since its last end record is read whole later.
    let mut flagged: Vec<refresh::Folder<'_>> = folders
        .iter()
        .map(|mailbox| {
            let summary = refresh::summary(&ctx, &place, mailbox);
            let intact = summary.is_some_and(|s| s.intact);
            refresh::Folder {
                mailbox,
                status: statuses.get(&mailbox.wire).copied(),
                mark: if condstore && intact { summary.and_then(|s| s.mark?.modseq) } else { None },
                opened: true,
                check: summary.is_some() && !intact,
                gone: summary.filter(|s| s.intact).and_then(|s| s.mark?.gone),
                files: None,
                last_run: summary.and_then(|s| s.mark?.time_ns).map_or(0, |t| (t / 1_000_000_000) as i64),
            }
        })
        .collect();
    // Messages known to have left the server, by folder, for the summary lines.
    let only_in_archive: HashMap<String, u64> =
        flagged.iter().filter_map(|f| Some((f.mailbox.shown(), f.gone?))).collect();
    // What the folders came to; their reports are said and handed on as they end, not kept
    // (10,000 folders' would hold megabytes).
    let totals = Mutex::new(Totals::default());
    // Folders whose backup completed without a failure: the only ones prune may touch (kept
    // for prune alone: 10,000 folders' names take most of a MiB).
    let clean = Mutex::new(Vec::new());
    let done = |mut r: FolderReport| {
        if account.prune.is_some() && r.failed == 0 && r.errors.is_empty() && !r.capped {
            lock(&clean).push(r.folder.clone());
        }
        r.only_in_archive = only_in_archive.get(&r.folder).copied().unwrap_or(0);
        sink.event(Event::FolderDone { account, report: &r });
        lock(&totals).add(&r);
    };
    // A folder that failed as a whole: said, and counted as one failure.
    let failed = |name: &str, why: String| {
        let r = FolderReport { failed: 1, errors: vec![why], ..FolderReport::new(name) };
        sink.event(Event::FolderFailed { account, report: &r, why: &r.errors[0] });
        lock(&totals).add(&r);
    };
    for name in unusable {
        failed(&name, "the server lists this folder under a name that is not text: it cannot be asked for".to_string());
    }
    let failed_folders: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // Unchanged folders are done; folders with new mail since a complete backup are
    // fetched together; the rest get the ordinary pass.
    let mut changed = Vec::new();
    // A report begun by the new-mail step is boxed: most entries have none, and 10,000
    // folders' entries at a report's size each would hold megabytes.
    let mut ordinary: VecDeque<(&Mailbox, Option<Box<FolderReport>>)> = VecDeque::new();
    // Gmail mode: All Mail and the folders linked from it first.
    let step = match &gmail {
        Some(plan) => gmail::run(&ctx, &mut session, &place, plan, &folders, &done)?,
        None => gmail::Outcome { handled: vec![false; folders.len()], ..gmail::Outcome::default() },
    };
    for &(i, files) in &step.unopened {
        flagged[i].opened = false;
        flagged[i].files = Some(files);
    }
    let mut not_reached: Vec<(&Mailbox, Option<Box<FolderReport>>)> = Vec::new();
    for (i, prior) in step.ordinary {
        if step.capped {
            not_reached.push((&folders[i], prior.map(Box::new)));
        } else {
            ordinary.push_back((&folders[i], prior.map(Box::new)));
        }
    }
    for (i, mailbox) in folders.iter().enumerate() {
        if step.handled[i] {
            continue;
        }
        if step.capped {
            not_reached.push((mailbox, None));
            continue;
        }
        let status = statuses.get(&mailbox.wire).copied();
        if let Some(r) = folder::unchanged_report(&place, mailbox, status)? {
            flagged[i].opened = false;
            flagged[i].files = Some(r.existing);
            done(r);
            continue;
        }
        let since = place.records().folder_of(&account_dir, mailbox).and_then(|r| r.complete_at());
        match (since, status) {
            // New mail is new by UID, not by date: `--since` takes the ordinary pass.
            (Some((uidvalidity, from)), Some(s)) if s.uidvalidity == Some(uidvalidity) && account.since.is_none() => {
                changed.push(new_mail::Changed { mailbox, uidvalidity, from });
            }
            _ => ordinary.push_back((mailbox, None)),
        }
    }
    if !changed.is_empty() {
        for (c, result) in changed.iter().zip(new_mail::fetch(&ctx, &mut session, &place, &changed)?) {
            match result {
                new_mail::Outcome::Complete(r) => done(r),
                new_mail::Outcome::Unfinished(partial) => ordinary.push_back((c.mailbox, Some(Box::new(partial)))),
            }
        }
    }
    let extra = (connections - 1).min(ordinary.len().saturating_sub(1));
    let queue = Mutex::new(ordinary);
    let cap_met = std::sync::atomic::AtomicBool::new(step.capped);
    let folder_failed = |mailbox: &Mailbox, why: String| {
        failed(&mailbox.shown(), why);
        lock(&failed_folders).push(mailbox.wire.clone());
    };
    // One connection's share: folders from the queue until it is empty. Each folder's last
    // commit is finished beside the next folders (see [`tails`]).
    let work = |session: &mut Session| {
        tails::finishing(&ctx, &place, &done, &folder_failed, |finisher| loop {
            // Not `while let`: its lock would be held for the whole folder, and the other
            // connections would wait for it.
            let next = lock(&queue).pop_front();
            let Some((mailbox, prior)) = next else { return };
            if crate::interrupt::requested() {
                // Put back for the reckoning below.
                lock(&queue).push_front((mailbox, prior));
                return;
            }
            if cap_met.load(std::sync::atomic::Ordering::SeqCst) {
                // Gmail's download limit: the rest is not reached (reckoned below).
                lock(&queue).push_front((mailbox, prior));
                return;
            }
            match folder::backup_until_commit(&ctx, session, &place, mailbox, prior.map(|r| *r)) {
                Ok(folder::Ended::Done(r)) => {
                    if r.capped {
                        cap_met.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    finisher.hand(tails::Finished::Report(r))
                }
                Ok(folder::Ended::Committing(tail)) => finisher.hand(tails::Finished::Tail(tail)),
                Err(e) => {
                    let mut why = e.to_string();
                    if matches!(account.folders, Folders::Named(_)) {
                        why.push_str(&missing_folder_hint(session, mailbox));
                    }
                    finisher.hand(tails::Finished::Failed(mailbox, why));
                    if session.given_up() {
                        return;
                    }
                }
            }
        })
    };
    std::thread::scope(|scope| {
        for n in 0..extra {
            let (spec, addrs, auth, renewal) = (spec.clone(), addrs.clone(), auth.clone(), renewal.clone());
            let work = &work;
            scope.spawn(move || {
                let mut more = Session::new(spec, addrs, auth).renewing(renewal);
                // A server that limits connections refuses this one: the others carry on.
                if let Err(error) = more.connect() {
                    sink.event(Event::ConnectionRefused { account, n: n + 2, error: &error });
                    return;
                }
                work(&mut more);
                let _ = more.logout();
            });
        }
        work(&mut session);
    });
    let capped = cap_met.load(std::sync::atomic::Ordering::SeqCst);
    // Folders an interrupt left untouched; those the new-mail step began keep what it stored.
    for (mailbox, prior) in std::mem::take(&mut *lock(&queue)) {
        if capped {
            not_reached.push((mailbox, prior));
            continue;
        }
        if let Some(mut r) = prior {
            if crate::interrupt::requested() {
                r.errors.push("interrupted".into());
            }
            done(*r);
        }
    }
    if capped {
        let bytes = lock(&totals).bytes;
        said_capped(&ctx, not_reached, bytes, &|r| {
            sink.event(Event::FolderNotReached { account, report: &r });
            lock(&totals).add(&r);
        });
    }
    let failed_folders = failed_folders.into_inner().unwrap_or_else(PoisonError::into_inner);
    // Fewer messages on the server than the archive holds of it (less those known to have
    // left): some left since; asking every message's flags shows which.
    for f in flagged.iter_mut().filter(|f| !failed_folders.contains(&f.mailbox.wire)) {
        let Some(messages) = f.status.and_then(|s| s.messages) else { continue };
        let files = match f.files {
            Some(n) => n,
            // A folder directory that cannot be listed has its error in its own report.
            None => context::count_files(&place, f.mailbox).unwrap_or(0),
        };
        let gone = usize::try_from(f.gone.unwrap_or(0)).unwrap_or(usize::MAX);
        if (messages as usize) < files.saturating_sub(gone) {
            f.check = true;
        }
    }
    let mut changed: Vec<&refresh::Folder<'_>> = Vec::new();
    for f in flagged.iter().filter(|f| refresh::needed(f, condstore) && !failed_folders.contains(&f.mailbox.wire)) {
        if session.given_up() || crate::interrupt::requested() {
            break;
        }
        let marked_at = |m: u64| {
            refresh::summary(&ctx, &place, f.mailbox)
                .is_some_and(|s| s.intact && s.mark.and_then(|k| k.modseq) == Some(m))
        };
        if condstore && !f.check && f.status.and_then(|s| s.highestmodseq).is_some_and(marked_at) {
            // This run fetched the whole folder and marked it up to date.
            continue;
        }
        // Folders with a mark only need what changed since: asked together below.
        if condstore && f.mark.is_some() && !f.check {
            changed.push(f);
            continue;
        }
        let refreshed = reconnected(
            &mut session,
            sink,
            account,
            |s| refresh::refresh(&ctx, s, &place, f, condstore),
            |r| r.as_ref().err().map(ToString::to_string),
        );
        match refreshed {
            Ok(found) => {
                said_refreshed(&ctx, f.mailbox, &found);
                lock(&totals).left += found.left;
            }
            Err(error) => sink.event(Event::FlagsNotRefreshed { account, folder: &f.mailbox.shown(), error: &error }),
        }
    }
    if !changed.is_empty() && !session.given_up() && !crate::interrupt::requested() {
        let outcomes = reconnected(
            &mut session,
            sink,
            account,
            |s| refresh::refresh_changed(&ctx, s, &place, &changed),
            |all| all.iter().find_map(|o| o.as_ref().err().map(ToString::to_string)),
        );
        for (f, outcome) in changed.iter().zip(outcomes) {
            if let Err(error) = outcome {
                sink.event(Event::FlagsNotRefreshed { account, folder: &f.mailbox.shown(), error: &error });
            }
        }
    }
    // Verified prune, the only write to the server, when the account asks for it.
    if account.prune.is_some() && !session.given_up() && !crate::interrupt::requested() {
        let clean = std::mem::take(&mut *lock(&clean));
        let scope = prune_step::Scope { account, keys: keys.as_ref(), account_dir: &account_dir, folders: &folders };
        let problems = prune_step::after_backup(&scope, &mut session, &registry, &clean, entries.clone(), sink);
        lock(&totals).failed += problems;
    }
    // What identifies the mailstore, taken once there is mail archived and again when it
    // grew old: a later run through another name recognises it by this.
    if !session.given_up() && !crate::interrupt::requested() {
        let archived = lock(&totals).new > 0;
        let mut records = lock(&registry);
        let today = mailstore::today();
        if records.account_of(&account_dir).is_some_and(|a| mailstore::stale(a, &statuses, today, archived)) {
            match mailstore::take(&records, &account_dir, &statuses, &mut session) {
                Ok(evidence) => records.set_evidence(&account_dir, evidence, today)?,
                Err(error) => sink.event(Event::EvidenceNotTaken { account, error: &error }),
            }
        }
    }
    let _ = session.logout();
    lock(&registry).set_hierarchy(&account_dir, namespace.as_ref(), separators.pairs())?;
    lock(&registry).flush()?;
    if spec.serial() && !remembered && account.pipelining {
        match pipelining::remember(&root, &account_dir) {
            Ok(()) => sink.event(Event::Serial { account }),
            Err(error) => sink.event(Event::SerialNotKept { account, error: &error }),
        }
    }
    Ok(totals.into_inner().unwrap_or_else(PoisonError::into_inner))
}

/// The user directory of the account `session` is logged in to, as a backup would use it,
/// without writing anything: recorded for the server, or another server's recognised as the
/// same mailstore, or the one a backup would make.
pub fn account_dir_seen(registry: &Registry, session: &mut Session, user: &str) -> Result<String> {
    let endpoint = session.spec().endpoint();
    let spec = session.spec().clone();
    match mailstore::recognise(registry, session, &endpoint, user).map_err(|e| spec.imap_error("EXAMINE", &e))? {
        Some((dir, _)) => Ok(dir),
        None => Ok(registry.account_dir(&endpoint, user)),
    }
}

/// What an account's folders came to.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    /// Messages archived.
    new: usize,
    /// Their bytes.
    bytes: u64,
    /// Folders with a failure.
    failed: usize,
    /// Messages that left the server since the last run.
    left: usize,
    /// Gmail's download limit stopped the account.
    capped: bool,
}

impl Totals {
    fn add(&mut self, r: &FolderReport) {
        self.capped |= r.capped;
        self.new += r.new;
        self.left += r.left_server;
        self.bytes += r.bytes;
        self.failed += usize::from(r.failed > 0);
    }
}

/// Runs `attempt`; when it `failed` because the connection was lost (an access token's
/// hour ending, say), reconnects within the session's budget, saying so, and runs it once
/// more.
fn reconnected<T>(
    session: &mut Session,
    sink: &dyn Sink,
    account: &Account,
    mut attempt: impl FnMut(&mut Session) -> T,
    failed: impl Fn(&T) -> Option<String>,
) -> T {
    let first = attempt(session);
    let Some(why) = failed(&first).filter(|_| !session.connected() && !crate::interrupt::requested()) else {
        return first;
    };
    match session.lost(&why) {
        Ok(notice) => {
            sink.event(Event::Reconnected { account, notice: &notice });
            attempt(session)
        }
        Err(_) => first,
    }
}

/// Gmail's download limit stopped the account: one line for it (an error, the account's
/// error in `--report`), and a report for each folder not reached, what was linked into
/// it counted.
fn said_capped(
    ctx: &context::Context<'_>,
    not_reached: Vec<(&Mailbox, Option<Box<FolderReport>>)>,
    bytes: u64,
    add: &dyn Fn(FolderReport),
) {
    let account = ctx.account;
    ctx.sink.event(Event::Capped { account, bytes, not_reached: not_reached.len() });
    for (mailbox, prior) in not_reached {
        let mut r = prior.map_or_else(|| FolderReport::new(&mailbox.shown()), |r| *r);
        r.errors.push("not reached: Gmail's download limit".into());
        add(r);
    }
}

/// Says what a full flag refresh found: messages that left the server, a journal repaired.
fn said_refreshed(ctx: &context::Context<'_>, mailbox: &Mailbox, found: &refresh::Refreshed) {
    let account = ctx.account;
    let folder = &mailbox.shown();
    if found.damaged > 0 {
        ctx.sink.event(Event::JournalRepaired { account, folder, damaged: found.damaged });
    }
    if found.left > 0 {
        let total = found.only_in_archive.unwrap_or(found.left as u64);
        ctx.sink.event(Event::LeftServer { account, folder, left: found.left, total });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// For a named folder that failed: when the server does not list it, what it has of the
/// closest names and where to see them all (empty when it lists it, or cannot list).
fn missing_folder_hint(session: &mut Session, mailbox: &Mailbox) -> String {
    if session.given_up() {
        return String::new();
    }
    let Ok(listed) = session.list(false) else { return String::new() };
    if listed.entries.iter().any(|e| e.wire == mailbox.wire) {
        return String::new();
    }
    let names: Vec<String> =
        listed.entries.iter().filter(|e| e.selectable()).map(|e| Mailbox::from_wire(&e.wire).shown()).collect();
    let near = crate::nearest::closest(&mailbox.shown(), names.iter().map(String::as_str), 3);
    let near: Vec<String> = near.iter().map(|n| format!("\"{n}\"")).collect();
    match near.as_slice() {
        [] => " (the server has no such folder; --list-folders shows those it has)".to_string(),
        _ => format!(" (the server has no such folder; closest: {}; --list-folders shows them all)", near.join(", ")),
    }
}

/// The folders to back up (the named ones, or all selectable ones minus the excluded, in
/// name order, each once) and their state: with LIST-STATUS in the LIST answer, else from
/// STATUS commands sent all at once.
fn choose_folders(account: &Account, session: &mut Session, sink: &dyn Sink) -> Result<Chosen> {
    let mut statuses = HashMap::new();
    let mut folders: Vec<Mailbox> = Vec::new();
    let mut unusable = Vec::new();
    let (mut namespace, mut listed_all) = (None, false);
    let mut entries = Vec::new();
    match &account.folders {
        Folders::Named(names) => {
            for m in names.iter().map(|n| Mailbox::from_arg(n)) {
                if !folders.contains(&m) {
                    folders.push(m);
                }
            }
            // Gmail mode needs to know which named folder is All Mail: its LIST attribute.
            if account.gmail_mode && session.has("X-GM-EXT-1").unwrap_or(false) {
                if let Ok(listed) = session.list(false) {
                    entries = listed.entries;
                }
            }
        }
        Folders::All { exclude } => {
            let listed = loop {
                match session.list(true) {
                    Ok(l) => break l,
                    Err(e) if e.breaks_session() => {
                        sink.event(Event::Reconnected { account, notice: &session.lost(&e.to_string())? })
                    }
                    Err(e) => return Err(session.spec().imap_error("LIST", &e)),
                }
            };
            unusable = listed.unusable;
            statuses = listed.statuses;
            namespace = listed.namespace;
            listed_all = true;
            folders.reserve_exact(listed.entries.len());
            for e in listed.entries.iter().filter(|e| e.selectable()) {
                // A name that is not valid modified UTF-7 is still the server's name for it:
                // it is backed up under that name rather than refused.
                let mailbox = Mailbox::from_wire(&e.wire);
                if !exclude.iter().any(|p| mailbox.matches(p, e.delimiter)) {
                    folders.push(mailbox);
                }
            }
            folders.sort_by_key(|m| (m.name(), m.wire.clone()));
            folders.dedup();
            entries = listed.entries;
            // Only Gmail mode and prune read the attributes: 10,000 folders' would hold a MiB.
            if !account.gmail_mode && account.prune.is_none() {
                entries.iter_mut().for_each(|e| e.attributes = Vec::new());
            }
            entries.shrink_to_fit();
        }
    }
    let missing: Vec<String> =
        folders.iter().filter(|m| !statuses.contains_key(&m.wire)).map(|m| m.wire.clone()).collect();
    if !missing.is_empty() {
        // Without them every folder is opened: slower, not wrong.
        if let Ok(more) = session.statuses(&missing) {
            statuses.extend(more);
        }
    }
    Ok(Chosen { folders, statuses, unusable, namespace, listed_all, entries })
}

/// The folders a backup goes through.
struct Chosen {
    /// To back up, in name order.
    folders: Vec<Mailbox>,
    /// Their state, where the server gave it.
    statuses: HashMap<String, FolderStatus>,
    /// Listed names that are not text, made printable: they cannot be asked for.
    unusable: Vec<String>,
    /// The server's personal namespace, where it said.
    namespace: Option<crate::hierarchy::Hierarchy>,
    /// Every folder was listed (not named with -f): the entries give the hierarchy.
    listed_all: bool,
    /// The LIST entries (special-use attributes for Gmail mode and prune, which alone keep
    /// them); none when nothing was listed.
    entries: Vec<crate::imap::wire::ListEntry>,
}
