//! A backup's words, and `--dry-run`'s: a result line per folder, warnings and remarks as
//! they come, the run's total at its end. The events also go to the run's record, which
//! `--report` writes as JSON and an interrupted run's last line counts from.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::progress::Progress;
use super::{plural, Printer};
use crate::backup::{Event, FolderReport, Summary};
use crate::cli::run_report::{capped_line, RunRecord};
use crate::events::Sink;

/// Renders a backup's events as lines and a progress line, and hands them to the run's
/// record.
pub struct BackupPrinter<'a> {
    /// Where the lines go.
    printer: Printer,
    /// What the run did so far (`--dry-run` has none).
    record: Option<&'a RunRecord>,
    /// The progress line of the folder named, while one is shown (one connection: one
    /// line). A folder's last events may come after the next folder's line began (its
    /// last commit is finished beside the next folder): they leave that line alone.
    progress: Mutex<Option<(String, Progress)>>,
}

impl<'a> BackupPrinter<'a> {
    /// A printer of lines as `printer` says, handing the events to `record` too.
    pub fn new(printer: Printer, record: Option<&'a RunRecord>) -> Self {
        BackupPrinter { printer, record, progress: Mutex::new(None) }
    }

    fn progress(&self) -> MutexGuard<'_, Option<(String, Progress)>> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A folder is done: its progress line goes; another folder's is only taken off the
    /// terminal until its next tick, so the folder's line can be printed.
    fn folder_ended(&self, folder: &str) {
        let mut progress = self.progress();
        if progress.as_ref().is_some_and(|(f, _)| f == folder) {
            progress.take();
        } else if let Some((_, line)) = progress.as_mut() {
            line.clear();
        }
    }
}

impl Sink<Event<'_>> for BackupPrinter<'_> {
    fn event(&self, event: Event<'_>) {
        let p = &self.printer;
        if let Some(record) = self.record {
            record.event(&event);
        }
        match event {
            Event::Failed { error } => p.error(&error.to_string()),
            Event::SandboxRefused { error, .. } => p.error(&error.to_string()),
            Event::SandboxPartial { status } => p.remark(&format!("sandbox: {status}")),
            Event::AccountStarted { .. } | Event::FolderNotReached { .. } => {}
            Event::ProgressBegun { account, folder, place } => {
                let mut line = Progress::new(format!("{} {folder}", account.user), true);
                if let Some((k, n)) = place {
                    line.place(k, n);
                }
                *self.progress() = Some((folder.to_string(), line));
            }
            Event::ProgressTotal { total, bytes } => {
                if let Some((_, line)) = self.progress().as_mut() {
                    line.start(total, bytes);
                }
            }
            Event::ProgressCleared => {
                if let Some((_, line)) = self.progress().as_mut() {
                    line.clear();
                }
            }
            Event::AccountFailed { account, error } => p.error(&format!("{}: {error}", account.label())),
            Event::TokenWarning { account, warning } => p.warning(&format!("{}: {warning}", account.label())),
            Event::Reconnected { account, notice } => p.warning(&format!("{}: {notice}", account.label())),
            Event::KeyCreated { path, sha, .. } => p.warning(&format!(
                "created the key file {}{}: keep a copy in a safe place, without it the archive cannot be read",
                path.display(),
                if sha { " (and its .sha)" } else { "" }
            )),
            Event::SameMailstore { account, was, dir } => p.result(&format!(
                "{}: the same mailstore as {} on {was}: continuing in {}",
                account.label(),
                account.user,
                dir.display()
            )),
            Event::ConnectionRefused { account, n, error } => {
                p.remark(&format!("{}: connection {n} refused ({error}); carrying on with fewer", account.label()))
            }
            Event::FolderDone { account, report } => {
                self.folder_ended(&report.folder);
                p.result(&format!("{} {}", account.user, summary(report)))
            }
            Event::FolderFailed { account, report, why } => {
                self.folder_ended(&report.folder);
                p.error(&format!("{} {}: {why}", account.label(), report.folder))
            }
            Event::ProgressTick { size } => {
                if let Some((_, line)) = self.progress().as_mut() {
                    line.tick(size);
                }
            }
            Event::Stored { account, folder, uid, size } => {
                p.detail(&format!("{} {folder}: UID {uid} archived ({size} bytes)", account.user))
            }
            Event::LeftOut { account, folder, uid, why } => {
                p.warning(&format!("{} {folder}: UID {uid} left out: {why}", account.label()))
            }
            Event::FetchRefused { account, folder, text } => {
                p.warning(&format!("{} {folder}: UID FETCH refused: {text}", account.label()))
            }
            Event::OneAtATime { account, folder, why, count } => p.warning(&format!(
                "{} {folder}: UID FETCH: {why}; asking for those {count} messages one at a time",
                account.label()
            )),
            Event::MetadataNotKept { account, folder, error } => {
                p.warning(&format!("{} {folder}: metadata not kept: {error}", account.label()))
            }
            Event::Renumbered { folder, old, new, found, previous, aside } => {
                if previous > 0 && found == previous {
                    // The same mail, renumbered: nothing to worry about.
                    p.remark(&format!(
                        "{folder}: UIDVALIDITY changed ({old} -> {new}), the mail did not: all {found} messages \
                         recognised, none fetched again; the previous numbering stays in {}",
                        aside.display()
                    ));
                } else {
                    let also = if found > 0 {
                        format!(" ({found} of its {previous} messages recognised in the new numbering, not fetched again)")
                    } else {
                        String::new()
                    };
                    p.warning(&format!(
                        "{folder}: UIDVALIDITY changed ({old} -> {new}): the old archive was moved to {}{also}",
                        aside.display()
                    ));
                }
            }
            Event::NotRecognised { account, folder, error } => p.warning(&format!(
                "{} {folder}: the messages of the previous UIDVALIDITY could not be recognised ({error}); fetching them",
                account.label()
            )),
            Event::NotConsidered { account, folder, path, error } => p.remark(&format!(
                "{} {folder}: {} not considered: {}",
                account.label(),
                path.display(),
                crate::error::describe_io(error)
            )),
            Event::LabelsRecorded { account, folder, count } => p.remark(&format!(
                "{} {folder}: labels recorded or changed for {}",
                account.label(),
                plural(count as u64, "message")
            )),
            Event::LabelsNotKept { account, folder, error } => {
                p.warning(&format!("{} {folder}: labels not kept: {error}", account.label()))
            }
            Event::LabelsNotAsked { account, folder, error } => p.warning(&format!(
                "{} {folder}: Gmail labels not asked ({error}); the other folders are archived as on any server",
                account.label()
            )),
            Event::NotLinked { account, folder, error } => p.warning(&format!(
                "{} {folder}: not linked from All Mail ({error}); fetched as on any server",
                account.label()
            )),
            Event::Capped { account, bytes, not_reached } => p.error(&capped_line(&account.label(), bytes, not_reached)),
            Event::FlagsNotRefreshed { account, folder, error } => {
                p.warning(&format!("{} {folder}: flags not refreshed: {error}", account.label()))
            }
            Event::JournalRepaired { account, folder, damaged } => p.warning(&format!(
                "{} {folder}: the metadata journal had {}: left out, and what they held asked of the server again",
                account.label(),
                plural(damaged as u64, "damaged record")
            )),
            Event::LeftServer { account, folder, left, total } => p.result(&format!(
                "{} {folder}: {} left the server since the last run, kept in the archive ({total} only in the archive)",
                account.user,
                plural(left as u64, "message")
            )),
            Event::EvidenceNotTaken { account, error } => {
                p.remark(&format!("{}: the mailstore's evidence was not taken: {error}", account.label()))
            }
            Event::Serial { account } => p.remark(&format!(
                "{}: the server mishandles pipelining: later runs send one command at a time",
                account.label()
            )),
            Event::SerialNotKept { account, error } => p.warning(&format!("{}: {error}", account.label())),
            Event::Pruned { account, outcome } => pruned(p, account, outcome),
            Event::PruneFailed { account, folder: Some(folder), error } => {
                p.error(&format!("{} {folder}: prune: {error}", account.label()))
            }
            Event::PruneFailed { account, folder: None, error } => {
                p.error(&format!("{}: prune: {error}", account.label()))
            }
            Event::PruneRefused { account, error } => p.error(&format!("{}: prune refused: {error}", account.label())),
            Event::Finished { summary } => finished(p, summary),
            Event::WouldFetch { account, planned } => p.result(&format!(
                "{account} {}: would fetch {}, {} bytes ({} already archived)",
                planned.folder,
                plural(planned.messages as u64, "message"),
                planned.bytes,
                planned.archived
            )),
            Event::NotCounted { account, folder, error } => p.error(&format!("{account} {folder}: {error}")),
            Event::AccountNotCounted { account, error } => p.error(&format!("{account}: {error}")),
            Event::WouldFetchAll { account, messages, bytes, failed } => {
                let failed =
                    if failed > 0 { format!(" ({failed} folder(s) could not be counted)") } else { String::new() };
                p.result(&format!(
                    "{account}: would fetch {messages} messages, {bytes} bytes{failed}; nothing was written"
                ));
            }
        }
    }
}

/// The one-line summary: `folder: N new, M already archived, K failed, bytes, seconds`
/// (and messages that vanished while fetched, or are kept only in the archive).
pub fn summary(r: &FolderReport) -> String {
    let mut vanished = if r.vanished > 0 { format!(", {} vanished", r.vanished) } else { String::new() };
    if r.only_in_archive > 0 {
        vanished += &format!(", {} only in the archive", r.only_in_archive);
    }
    let mut renumbered = if r.renumbered > 0 { format!(", {} renumbered", r.renumbered) } else { String::new() };
    if r.linked > 0 {
        renumbered += &format!(" ({} of them linked from All Mail)", r.linked);
    }
    format!(
        "{}: {} new, {} already archived, {} failed{renumbered}{vanished}, {} bytes, {:.2} s",
        r.folder,
        r.new,
        r.existing,
        r.failed,
        r.bytes,
        r.started.elapsed().as_secs_f64()
    )
}

/// One line to end the run (`2 accounts: 1 ok, 1 failed; 35 new messages, B bytes in
/// 4 min 12 s (1.2 MiB/s)[; N left the server]`): a result, so `--quiet` keeps a good
/// run silent as cron wants, but a warning when one of several accounts failed, so the
/// mail cron sends has the whole count.
fn finished(p: &Printer, s: &Summary) {
    if s.accounts < 2 && !s.reached {
        return;
    }
    let mut line = format!(
        "{}: {} ok, {} failed; {}, {} bytes in {}",
        plural(s.accounts as u64, "account"),
        s.accounts - s.failed,
        s.failed,
        plural(s.new as u64, "new message"),
        s.bytes,
        super::progress::duration(s.elapsed)
    );
    if s.bytes > 0 && s.elapsed >= Duration::from_millis(500) {
        line += &format!(" ({}/s)", super::progress::bytes((s.bytes as f64 / s.elapsed.as_secs_f64()) as u64));
    }
    if s.left > 0 {
        line += &format!("; {} left the server (kept in the archive)", s.left);
    }
    if s.failed > 0 && s.accounts > 1 {
        p.warning(&line);
    } else {
        p.result(&line);
    }
}

/// What verified prune did to a folder (in a dry run: would do): each message removed
/// (with `--verbose`; each one to remove in a dry run), a warning per message kept for a
/// problem, then one line (`alice INBOX: removed 498 messages older than 365 days from the
/// server, kept 2 (1 damaged, 1 flagged)`).
fn pruned(p: &Printer, account: &crate::account::Account, outcome: &crate::prune::Outcome) {
    let (user, folder) = (&account.user, &outcome.folder);
    let arrived = |t: i64| crate::date::display(t, 0);
    for &(uid, t) in &outcome.removed {
        if outcome.dry_run {
            p.result(&format!("{user} {folder}: would remove UID {uid} (arrived {})", arrived(t)));
        } else {
            p.detail(&format!("{user} {folder}: removed UID {uid} (arrived {}) from the server", arrived(t)));
        }
    }
    for &(uid, t) in &outcome.after_archiving {
        p.result(&format!("{user} {folder}: would remove UID {uid} once archived (arrived {})", arrived(t)));
    }
    for k in outcome.problems() {
        p.warning(&format!("{} {folder}: UID {} kept on the server: {}", account.label(), k.uid, k.reason));
    }
    p.result(&format!("{user} {folder}: {}", prune_summary(outcome)));
}

/// `removed N messages older than D days from the server, kept M (1 damaged, 2 flagged)`
/// (`would remove ...` in a dry run).
fn prune_summary(outcome: &crate::prune::Outcome) -> String {
    let n = outcome.removed.len() as u64;
    let mut line = if outcome.dry_run {
        format!("would remove {} older than {} days", plural(n, "message"), outcome.days)
    } else {
        format!("removed {} older than {} days from the server", plural(n, "message"), outcome.days)
    };
    if !outcome.after_archiving.is_empty() {
        line += &format!(" (and {} once archived)", outcome.after_archiving.len());
    }
    if !outcome.kept.is_empty() {
        let reasons: Vec<String> =
            outcome.kept_by_reason().iter().map(|(k, n)| format!("{n} {}", k.replace('_', " "))).collect();
        line += &format!(", kept {} ({})", outcome.kept.len(), reasons.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::{Kept, Outcome, Reason};

    #[test]
    fn the_prune_line_counts_by_reason() {
        let mut o = Outcome { folder: "INBOX".into(), days: 30, removed: vec![(1, 0), (2, 0)], ..Outcome::default() };
        o.kept = vec![
            Kept { uid: 3, reason: Reason::Flagged },
            Kept { uid: 4, reason: Reason::Damaged("MAC check failed".into()) },
            Kept { uid: 5, reason: Reason::NotArchived },
        ];
        assert_eq!(
            prune_summary(&o),
            "removed 2 messages older than 30 days from the server, kept 3 (1 damaged, 1 flagged, 1 not archived)"
        );
        o.dry_run = true;
        o.kept.clear();
        o.removed.truncate(1);
        o.after_archiving = vec![(9, 0)];
        assert_eq!(prune_summary(&o), "would remove 1 message older than 30 days (and 1 once archived)");
    }
}
