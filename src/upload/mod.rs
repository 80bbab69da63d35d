//! Restore to an IMAP server (`-r PATH --to-imap`): every message of a folder directory
//! (or of each folder of a user directory) is `APPEND`ed to its mailbox, streamed from the
//! archive in bounded memory, with its flags and INTERNALDATE.
//!
//! Each folder goes to the mailbox of the same levels under the target's hierarchy
//! ([`crate::hierarchy`]: `Archive/2023` from a `/` server is `INBOX.Archive.2023` on
//! Courier); an old generation (a directory moved aside when its mailbox's UIDVALIDITY
//! changed) to a mailbox of its own, `NAME (UIDVALIDITY N)`, as restores name it.
//!
//! Nothing is uploaded twice, whatever was interrupted and whatever the target rewrites:
//! before a folder is uploaded, the target mailbox's message sizes are read (one round
//! trip), and for a message of about the same size the first 64 KiB of the target's
//! header are compared with ours ([`measure`] says what is compared). A message already
//! there is skipped. Messages in flight on a lost connection are settled at the end of
//! the run ([`folder`]). The archive is only read.

pub mod event;
pub mod folder;
pub mod gmail;
pub mod matching;
pub mod measure;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::archive;
use crate::archive::layout::registry::Registry;
use crate::error::{Error, Result};
use crate::hierarchy::{self, Hierarchy, SourceName};
use crate::imap::Session;
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;
pub use event::{Event, Sink};
use folder::FolderRun;

/// One folder directory and where it goes.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The folder directory.
    pub dir: PathBuf,
    /// Its mailbox's name where it was backed up, with that server's hierarchy.
    pub source: SourceName,
    /// The mailbox named with `--to-folder`, taken as it is.
    pub named: Option<Mailbox>,
    /// The UIDVALIDITY of an old generation (a directory moved aside).
    pub generation: Option<u32>,
    /// Its metadata journal (flags, arrival times), when the archive kept one.
    pub journal: Option<PathBuf>,
}

impl Destination {
    /// The folder's name where it came from, as restores name it (`NAME (UIDVALIDITY N)`
    /// for an old generation), printable.
    pub fn shown(&self) -> String {
        let name = Mailbox::from_wire(&self.source.wire).name();
        crate::printable::escape(&match self.generation {
            Some(v) => format!("{name} (UIDVALIDITY {v})"),
            None => name,
        })
    }

    /// The mailbox on a server of hierarchy `target` (names go unchanged where it is not
    /// known).
    pub fn mailbox(&self, target: Option<&Hierarchy>) -> std::result::Result<Mailbox, hierarchy::Unholdable> {
        if let Some(named) = &self.named {
            return Ok(named.clone());
        }
        let mut levels = match target {
            Some(_) => self.source.levels(),
            None => vec![self.source.wire.clone()],
        };
        if let (Some(v), Some(last)) = (self.generation, levels.last_mut()) {
            // INBOX's old generation is a folder beside it, not INBOX.
            last.push_str(&format!(" (UIDVALIDITY {v})"));
        }
        match target {
            Some(t) => hierarchy::target_wire(&levels, t).map(|w| Mailbox::from_wire(&w)),
            None => Ok(Mailbox::from_wire(&levels.concat())),
        }
    }
}

/// What became of one folder's upload.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FolderUpload {
    /// Messages this run stored at the target.
    pub uploaded: usize,
    /// Messages the target held already.
    pub present: usize,
    /// Messages not uploaded: unreadable, refused, or still in doubt (below).
    pub failed: usize,
    /// Messages sent on a lost connection that could not be settled: they may be at the
    /// target (a rerun finds them).
    pub in_doubt: usize,
    /// Copies this run made twice, removed.
    pub removed: usize,
    /// Copies this run made twice, left (the server cannot remove single messages).
    pub twice: usize,
    /// Bytes uploaded.
    pub bytes: u64,
    /// How long it took.
    pub seconds: f64,
}

impl FolderUpload {
    /// Whether something is wrong: a message not uploaded, or one there twice.
    pub fn failing(&self) -> bool {
        self.failed > 0 || self.twice > 0
    }
}

/// What an upload came to, for the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Folders done.
    pub folders: usize,
    /// Of those, the ones that failed, or were left with a message missing or there twice.
    pub failing: usize,
}

/// Uploads every destination, each folder's outcome told as an event with the name to
/// show: all of the folders first, then, after the lost connections' APPENDs had `grace`
/// to land (as long as the session waits for a silent server), the messages in doubt.
pub fn upload_all(
    session: &mut Session,
    dests: &[Destination],
    keys: Option<&Keys>,
    grace: Duration,
    sink: &dyn Sink,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut done = |name: &str, result: Result<FolderUpload>| {
        summary.folders += 1;
        match result {
            Ok(upload) => {
                summary.failing += usize::from(upload.failing());
                sink.event(Event::FolderDone { folder: name, upload: &upload });
            }
            Err(error) => {
                summary.failing += 1;
                sink.event(Event::FolderFailed { folder: name, error: &error });
            }
        }
    };
    let target = target_hierarchy(session, sink)?;
    // A Gmail archive to a Gmail: All Mail once, with its labels; the label folders not again.
    let gmail = gmail::plan(session, dests, keys);
    let all_mail_dest =
        gmail.as_ref().map(|g| Destination { named: Some(g.target.clone()), ..dests[g.all_mail].clone() });
    let mut pending: Vec<FolderRun<'_>> = Vec::new();
    for (i, dest) in dests.iter().enumerate() {
        let dest = match (&gmail, &all_mail_dest) {
            (Some(g), _) if g.labels_only.contains(&i) => {
                let present = archive::list_folder(&dest.dir).map_or(0, |f| f.len());
                sink.event(Event::GmailLabel { folder: &dest.shown() });
                done(&dest.shown(), Ok(FolderUpload { present, ..FolderUpload::default() }));
                continue;
            }
            (Some(g), Some(all)) if g.all_mail == i => all,
            _ => dest,
        };
        let mailbox = match dest.mailbox(target.as_ref()) {
            Ok(m) => m,
            Err(why) => {
                done(&dest.shown(), Err(Error::runtime(format!("cannot be named on the target server: {why}"))));
                continue;
            }
        };
        let name = shown(dest, &mailbox);
        let mut run = match FolderRun::new(dest, mailbox, keys, sink) {
            Ok(run) => run,
            Err(e) => {
                done(&name, Err(e));
                continue;
            }
        };
        let uploaded = run.upload(session, sink);
        if let (Some(g), true) = (&gmail, gmail.as_ref().is_some_and(|g| g.all_mail == i)) {
            let labelled = gmail::set_labels(session, g, dest, keys, &run.appended, sink);
            sink.event(Event::LabelsSet { folder: &name, count: labelled });
        }
        match uploaded {
            Ok(()) if run.in_doubt() => pending.push(run),
            Ok(()) => done(&name, Ok(run.report())),
            Err(e) => done(&name, Err(e)),
        }
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
    }
    let mut resent: Vec<FolderRun<'_>> = Vec::new();
    while !pending.is_empty() {
        if let Some(lost) = pending.iter().filter_map(|r| r.lost_at).max() {
            let wait = (lost + grace).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                sink.event(Event::Waiting { seconds: wait.as_secs_f64().ceil() });
                sleep(wait)?;
            }
        }
        for mut run in std::mem::take(&mut pending) {
            let name = shown(run.dest, &run.mailbox);
            match run.finish(session, sink) {
                Ok(()) if run.in_doubt() => pending.push(run),
                Ok(()) if run.may_have_twice() => resent.push(run),
                Ok(()) => done(&name, Ok(run.report())),
                Err(e) => done(&name, Err(e)),
            }
        }
    }
    for mut run in resent {
        let name = shown(run.dest, &run.mailbox);
        match run.remove_twice(session, sink) {
            Ok(()) => done(&name, Ok(run.report())),
            Err(e) => done(&name, Err(e)),
        }
    }
    Ok(summary)
}

/// The folder's name for its result line: the target's, after the source's where the
/// two differ (`INBOX.Archive.2023 -> Archive/2023`).
fn shown(dest: &Destination, mailbox: &Mailbox) -> String {
    let source = dest.shown();
    let target = mailbox.shown();
    if source == target || dest.named.is_some() {
        target
    } else {
        format!("{source} -> {target}")
    }
}

/// The target's hierarchy; `None` (names go as they are) when the server will not say.
fn target_hierarchy(session: &mut Session, sink: &dyn Sink) -> Result<Option<Hierarchy>> {
    loop {
        match session.hierarchy() {
            Ok(h) => return Ok(Some(h)),
            Err(e) if e.breaks_session() => {
                let notice = session.lost(&session.spec().imap_error("NAMESPACE", &e).to_string())?;
                sink.event(Event::Reconnected { server: &session.spec().endpoint(), notice: &notice });
            }
            Err(e) => {
                sink.event(Event::NoHierarchy { error: &session.spec().imap_error("NAMESPACE", &e) });
                return Ok(None);
            }
        }
    }
}

/// Sleeps `wait`, waking for SIGINT.
fn sleep(wait: Duration) -> Result<()> {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        std::thread::sleep(crate::interrupt::TICK.min(until.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// The folder directories under `path` and their names: `path` itself when it is a
/// folder directory (into `to_folder` when given), or every folder of a user directory.
/// Names and hierarchy come from the records of the archive root, else from the
/// directory names (archives of the original program).
pub fn destinations(path: &Path, to_folder: Option<&str>) -> Result<(Vec<Destination>, Option<String>)> {
    use crate::archive::layout::account;
    if account::is_account_dir(path)? {
        if to_folder.is_some() {
            return Err(Error::usage(format!(
                "{} holds the folders of an account: --to-folder goes with one folder directory",
                path.display()
            )));
        }
        let (folders, problem) = account::folders(path)?;
        let named: Vec<(PathBuf, Mailbox, Option<u32>)> = folders
            .into_iter()
            .map(|f| {
                let mailbox = f.mailbox.clone().unwrap_or_else(|| Mailbox::from_arg(&dir_name(&f.dir)));
                (f.dir, mailbox, f.retired)
            })
            .collect();
        let records = Records::of(path);
        let names: Vec<&str> = named.iter().map(|(_, m, _)| m.wire.as_str()).collect();
        let dests = named
            .iter()
            .map(|(dir, mailbox, retired)| Destination {
                source: records.source(&names, dir, mailbox),
                named: None,
                generation: *retired,
                journal: crate::archive::metadata::journal_of_dir(dir),
                dir: dir.clone(),
            })
            .collect();
        return Ok((dests, problem));
    }
    if archive::list_folder(path)?.is_empty() {
        return Err(Error::runtime(format!("{}: no archive files (UID.mbox...) to upload", path.display())));
    }
    let journal = crate::archive::metadata::journal_of_dir(path);
    let canonical = path.canonicalize().ok();
    let user_dir = canonical.as_deref().and_then(Path::parent);
    let records = user_dir.map(Records::of).unwrap_or_default();
    let record = records.registry.as_ref().zip(user_dir).and_then(|(r, u)| r.folder_at(&dir_name(u), &dir_name(path)));
    let mailbox = record.map(|r| r.mailbox.clone()).unwrap_or_else(|| Mailbox::from_arg(&dir_name(path)));
    let generation = record.filter(|r| r.retired).and_then(|r| r.uidvalidity);
    // The folder's siblings tell the hierarchy where nothing recorded it.
    let siblings: Vec<Mailbox> = match user_dir {
        Some(u) => account::folders(u)
            .map(|(folders, _)| {
                folders.into_iter().map(|f| f.mailbox.unwrap_or_else(|| Mailbox::from_arg(&dir_name(&f.dir)))).collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut names: Vec<&str> = siblings.iter().map(|m| m.wire.as_str()).collect();
    names.push(&mailbox.wire);
    let source = records.source(&names, canonical.as_deref().unwrap_or(path), &mailbox);
    let named = to_folder.map(Mailbox::from_arg);
    let dests = vec![Destination {
        dir: path.to_path_buf(),
        source,
        named,
        generation: generation.filter(|_| to_folder.is_none()),
        journal,
    }];
    Ok((dests, None))
}

/// What the archive root's records say of a user directory's hierarchy.
#[derive(Default)]
struct Records {
    registry: Option<Registry>,
    account: String,
}

impl Records {
    /// The records of the root above the user directory `user_dir`.
    fn of(user_dir: &Path) -> Records {
        let root = user_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Records { registry: Registry::read(root).ok(), account: dir_name(user_dir) }
    }

    /// The source name of the folder directory `dir` holding `mailbox`: with the
    /// account's recorded namespace and the folder's recorded separator, else the
    /// hierarchy inferred from the account's folder names `names` ([`hierarchy::infer`]).
    fn source(&self, names: &[&str], dir: &Path, mailbox: &Mailbox) -> SourceName {
        let registry = self.registry.as_ref();
        let record = registry.and_then(|r| r.folder_at(&self.account, &dir_name(dir)));
        let separator = record.and_then(|r| r.separator);
        let namespace = registry.and_then(|r| r.account_of(&self.account)).and_then(|a| a.namespace.clone());
        let hierarchy = match namespace {
            Some(ns) => Hierarchy { separator: separator.or(ns.separator), prefix: ns.prefix },
            None => {
                let known = separator
                    .or_else(|| registry.and_then(|r| r.folders_of(&self.account).iter().find_map(|f| f.separator)));
                hierarchy::infer(names.iter().copied(), known)
            }
        };
        SourceName { wire: mailbox.wire.clone(), hierarchy }
    }
}

fn dir_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(wire: &str, from: Hierarchy, generation: Option<u32>) -> Destination {
        Destination {
            dir: PathBuf::from("x"),
            source: SourceName { wire: wire.into(), hierarchy: from },
            named: None,
            generation,
            journal: None,
        }
    }

    #[test]
    fn old_generations_go_to_a_folder_of_their_own() {
        let slash = Hierarchy { prefix: String::new(), separator: Some('/') };
        let courier = Hierarchy { prefix: "INBOX.".into(), separator: Some('.') };
        let old = dest("Archive/2023", slash.clone(), Some(7));
        assert_eq!(old.shown(), "Archive/2023 (UIDVALIDITY 7)");
        assert_eq!(old.mailbox(Some(&courier)).unwrap().wire, "INBOX.Archive.2023 (UIDVALIDITY 7)");
        assert_eq!(old.mailbox(Some(&slash)).unwrap().wire, "Archive/2023 (UIDVALIDITY 7)");
        let inbox = dest("INBOX", slash.clone(), Some(3));
        assert_eq!(inbox.mailbox(Some(&slash)).unwrap().wire, "INBOX (UIDVALIDITY 3)");
        assert_eq!(inbox.mailbox(Some(&courier)).unwrap().wire, "INBOX.INBOX (UIDVALIDITY 3)");
        assert_eq!(inbox.mailbox(None).unwrap().wire, "INBOX (UIDVALIDITY 3)");
        let named = Destination { named: Some(Mailbox::from_arg("Copy")), ..old };
        assert_eq!(named.mailbox(Some(&courier)).unwrap().wire, "Copy");
    }
}
