//! `--report FILE`: what a backup run did, as JSON for dashboards and health checks,
//! gathered from the backup's events (never from its printed text) and written
//! atomically when the run ends, also when it was interrupted.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::archive::files::atomic::{parent_of, TempFile};
use crate::backup::Event;
use crate::error::{describe_io, Error, Result};
use crate::report::FolderFigures;

/// One account's part of the report.
#[derive(Debug)]
struct AccountRecord {
    user: String,
    server: String,
    started: bool,
    error: Option<String>,
    folders: Vec<FolderFigures>,
}

/// What a run did so far; shared by the threads of the run.
#[derive(Debug)]
pub struct RunRecord {
    started: SystemTime,
    accounts: Mutex<Vec<AccountRecord>>,
    /// Messages and message bytes stored. Not two `AtomicU64`s: armv5te and mipsel have
    /// no 64-bit atomics, and 32 bits are too few for the bytes of a run (4 GiB). One
    /// uncontended lock per stored message costs nothing beside the file it wrote.
    stored: Mutex<(u64, u64)>,
    /// Whether each folder's figures are kept (only a report shows them: 10,000 folders'
    /// would hold over a megabyte for nothing).
    folders: bool,
}

impl RunRecord {
    /// A record starting now for these accounts (`(user, server)`, in run order).
    pub fn new<'a>(accounts: impl IntoIterator<Item = (&'a str, &'a str)>) -> RunRecord {
        let accounts = accounts
            .into_iter()
            .map(|(user, server)| AccountRecord {
                user: user.to_string(),
                server: server.to_string(),
                started: false,
                error: None,
                folders: Vec::new(),
            })
            .collect();
        RunRecord {
            started: SystemTime::now(),
            accounts: Mutex::new(accounts),
            stored: Mutex::new((0, 0)),
            folders: true,
        }
    }

    /// The same record, keeping each folder's figures only if `keep` (a report is written).
    pub fn keeping_folders(mut self, keep: bool) -> RunRecord {
        self.folders = keep;
        self
    }

    fn accounts(&self) -> MutexGuard<'_, Vec<AccountRecord>> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account's entry (the first, when the same account is listed twice).
    fn with_account(&self, user: &str, server: &str, change: impl FnOnce(&mut AccountRecord)) {
        let mut accounts = self.accounts();
        if let Some(a) = accounts.iter_mut().find(|a| a.user == user && a.server == server) {
            change(a);
        }
    }

    /// Messages and message bytes archived so far.
    pub fn stored(&self) -> (u64, u64) {
        *self.stored.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The report of the run ending now with exit code `exit`; `interrupted` accounts that
    /// were never begun say so.
    pub fn json(&self, exit: i32, interrupted: bool) -> Value {
        let accounts: Vec<Value> = self
            .accounts()
            .iter()
            .map(|a| {
                let error = a.error.clone().or_else(|| {
                    (interrupted && !a.started).then(|| "not backed up: the run was interrupted".to_string())
                });
                json!({
                    "user": a.user,
                    "server": a.server,
                    "error": error,
                    "folders": a.folders.iter().map(|f| with_prune(f, json!({
                        "name": f.name,
                        "new": f.new,
                        "archived": f.archived,
                        "failed": f.failed,
                        "bytes": f.bytes,
                        "seconds": (f.seconds * 1000.0).round() / 1000.0,
                        "only_in_archive": f.only_in_archive,
                        "left_server": f.left_server,
                        "errors": f.errors,
                    }))).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "exit": exit,
            "started": rfc3339(self.started),
            "finished": rfc3339(SystemTime::now()),
            "accounts": accounts,
        })
    }

    /// Writes the report to `path`: a temporary file beside it, synced, then renamed over
    /// it (a symlink at `path` is replaced, never followed).
    pub fn write(&self, path: &Path, exit: i32, interrupted: bool) -> Result<()> {
        use std::io::Write;
        let fail = |e: std::io::Error| Error::runtime(format!("report {}: {}", path.display(), describe_io(&e)));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = TempFile::create_in(parent_of(path), &name, 0o640).map_err(fail)?;
        let mut text = serde_json::to_vec_pretty(&self.json(exit, interrupted))
            .map_err(|e| Error::runtime(format!("report {}: {e}", path.display())))?;
        text.push(b'\n');
        tmp.file().write_all(&text).map_err(fail)?;
        tmp.commit(path, true).map_err(fail)
    }
}

impl RunRecord {
    /// Takes what a backup's event tells of the run.
    pub fn event(&self, event: &Event<'_>) {
        match *event {
            Event::AccountStarted { account } => self.account_started(&account.user, &account.host),
            Event::FolderDone { account, report }
            | Event::FolderFailed { account, report, .. }
            | Event::FolderNotReached { account, report } => {
                self.folder_done(&account.user, &account.host, report.figures())
            }
            Event::AccountFailed { account, error } => {
                self.account_failed(&account.user, &account.host, &error.to_string())
            }
            Event::SandboxRefused { error, accounts } => {
                for a in accounts {
                    self.account_failed(&a.user, &a.host, &error.to_string());
                }
            }
            Event::Capped { account, bytes, not_reached } => {
                self.account_failed(&account.user, &account.host, &capped_line(&account.label(), bytes, not_reached))
            }
            Event::Stored { size, .. } => self.message_stored(size),
            Event::LeftServer { account, folder, left, total } => {
                self.folder_gone(&account.user, &account.host, folder, left, total)
            }
            Event::Pruned { account, outcome } => self.folder_pruned(&account.user, &account.host, outcome),
            Event::PruneRefused { account, error } => {
                self.account_failed(&account.user, &account.host, &format!("prune refused: {error}"))
            }
            _ => {}
        }
    }

    fn account_started(&self, user: &str, server: &str) {
        self.with_account(user, server, |a| a.started = true);
    }

    fn folder_done(&self, user: &str, server: &str, figures: FolderFigures) {
        if self.folders {
            self.with_account(user, server, |a| a.folders.push(figures));
        }
    }

    fn account_failed(&self, user: &str, server: &str, error: &str) {
        self.with_account(user, server, |a| {
            a.started = true;
            a.error = Some(error.to_string());
        });
    }

    fn message_stored(&self, bytes: u64) {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        stored.0 += 1;
        stored.1 += bytes;
    }

    /// Verified prune went through a folder (after its figures).
    fn folder_pruned(&self, user: &str, server: &str, outcome: &crate::prune::Outcome) {
        self.with_account(user, server, |a| {
            if let Some(f) = a.folders.iter_mut().rev().find(|f| f.name == outcome.folder) {
                f.pruned = Some(crate::report::PruneFigures::of(outcome));
            }
        });
    }

    /// `left` archived messages of the folder `folder` (after its figures) were found to
    /// have left the server; `total` of its messages are now only in the archive.
    fn folder_gone(&self, user: &str, server: &str, folder: &str, left: usize, total: u64) {
        self.with_account(user, server, |a| {
            if let Some(f) = a.folders.iter_mut().rev().find(|f| f.name == folder) {
                f.left_server += left;
                f.only_in_archive = total;
            }
        });
    }
}

/// The line of an account that Gmail's download limit stopped (also its error in `--report`).
pub fn capped_line(label: &str, bytes: u64, not_reached: usize) -> String {
    format!(
        "{label}: Gmail's download limit reached after {bytes} bytes: stopped, {} not reached; the next run \
         continues where this one stopped",
        crate::cli::print::plural(not_reached as u64, "folder")
    )
}

/// A folder's entry with what verified prune did to it, when it ran: `"prune": {"removed":
/// N, "kept": M, "kept_by_reason": {"flagged": 2, ...}, "problems": ["UID 7: ..."]}`.
fn with_prune(f: &FolderFigures, mut entry: Value) -> Value {
    if let (Some(p), Some(map)) = (&f.pruned, entry.as_object_mut()) {
        let reasons: serde_json::Map<String, Value> =
            p.kept_by_reason.iter().map(|(k, n)| (k.clone(), Value::from(*n))).collect();
        map.insert(
            "prune".into(),
            json!({"removed": p.removed, "kept": p.kept, "kept_by_reason": reasons, "problems": p.problems}),
        );
    }
    entry
}

/// `2026-11-30T13:28:42Z`: the time in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::mbox::civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn shape_and_atomic_write() {
        let r = RunRecord::new([("ann", "imap.example.org"), ("bo", "mail.example.net"), ("cy", "x")]);
        r.account_started("ann", "imap.example.org");
        r.folder_done(
            "ann",
            "imap.example.org",
            FolderFigures { name: "INBOX".into(), new: 2, archived: 5, bytes: 10, ..FolderFigures::default() },
        );
        r.folder_gone("ann", "imap.example.org", "INBOX", 1, 3);
        r.message_stored(4);
        r.message_stored(6);
        r.account_failed("bo", "mail.example.net", "login refused");
        assert_eq!(r.stored(), (2, 10));
        let dir = std::env::temp_dir().join(format!("run-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.json");
        std::os::unix::fs::symlink(dir.join("elsewhere"), &path).unwrap();
        r.write(&path, 130, true).unwrap();
        assert!(!dir.join("elsewhere").exists(), "the symlink was replaced, not followed");
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["exit"], 130);
        assert_eq!(v["accounts"][0]["error"], Value::Null);
        assert_eq!(v["accounts"][0]["folders"][0]["archived"], 5);
        assert_eq!(v["accounts"][0]["folders"][0]["left_server"], 1);
        assert_eq!(v["accounts"][0]["folders"][0]["only_in_archive"], 3);
        assert_eq!(v["accounts"][0]["folders"][0]["errors"], json!([]));
        assert_eq!(v["accounts"][1]["error"], "login refused");
        assert_eq!(v["accounts"][2]["error"], "not backed up: the run was interrupted");
        assert!(v["started"].as_str().unwrap().ends_with('Z'));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
