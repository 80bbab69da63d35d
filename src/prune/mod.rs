//! Verified prune (`--prune-older-than DAYS`, config `"prune_older_than"`): after a
//! folder's backup completed without a failure, the messages whose INTERNALDATE is older
//! than the limit leave the server, but only those whose archived file was read back from
//! the disk, decoded (authenticated first under `-e`) and found to be the message the
//! journal recorded when it was fetched (digest and size), and only while the folder's
//! UIDVALIDITY is the one its archive was made under. Every other old message stays, with
//! its reason.
//!
//! [`plan`] says which messages are old, [`verify_copy`] checks one archived copy,
//! [`remove`] picks how the server removes single messages; [`folder`] does one folder
//! and returns an [`Outcome`]: it prints nothing.

pub mod plan;
pub mod remove;
pub mod verify_copy;

use std::path::Path;

use serde_json::Value;

use crate::archive::metadata::Index;
use crate::error::{Error, Result};
use crate::imap::Removal;
use crate::imap::Session;
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;
use crate::os::dir::Dir;

/// The longest limit accepted, in days (a century).
pub const MAX_DAYS: u32 = 36_500;

/// What an account's prune settings say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// The limit, in days, of every folder without one of its own (`None`: those folders
    /// are not pruned).
    pub days: Option<u32>,
    /// Folders with a limit of their own (0: never pruned), by name as `-f` takes it.
    pub folders: Vec<(String, u32)>,
    /// Flagged messages stay on the server (`--prune-keep-flagged`).
    pub keep_flagged: bool,
}

impl Settings {
    /// The limit of `mailbox`, if it is pruned at all.
    pub fn days_for(&self, mailbox: &Mailbox) -> Option<u32> {
        match self.folders.iter().find(|(name, _)| Mailbox::from_arg(name) == *mailbox) {
            Some((_, 0)) => None,
            Some((_, days)) => Some(*days),
            None => self.days,
        }
    }

    /// The config's `"prune_older_than"` (a number of days, or an object of folder names
    /// and numbers, `"*"` for the others) and `"prune_keep_flagged"`; `None` without the
    /// first.
    pub fn from_config(older_than: Option<&Value>, keep_flagged: bool) -> Result<Option<Settings>> {
        let Some(value) = older_than else {
            if keep_flagged {
                return Err(Error::usage("\"prune_keep_flagged\" goes with \"prune_older_than\""));
            }
            return Ok(None);
        };
        let bad = || {
            Error::usage(format!(
                "\"prune_older_than\" must be a number of days from 1 to {MAX_DAYS}, or an object of folder names \
                 (\"*\" for the others) and numbers of days (0: never)"
            ))
        };
        let days = |v: &Value, least: u64| {
            v.as_u64().filter(|d| (least..=u64::from(MAX_DAYS)).contains(d)).map(|d| d as u32).ok_or_else(bad)
        };
        let mut settings = Settings { keep_flagged, ..Settings::default() };
        match value {
            Value::Object(map) => {
                for (name, v) in map {
                    let d = days(v, 0)?;
                    if name == "*" {
                        settings.days = Some(d).filter(|&d| d > 0);
                    } else {
                        settings.folders.push((name.clone(), d));
                    }
                }
            }
            v => settings.days = Some(days(v, 1)?),
        }
        Ok(Some(settings))
    }
}

/// Why an old message stays on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// It is flagged, and flagged messages are kept.
    Flagged,
    /// It has no archived copy yet (it arrived after the backup listed the folder).
    NotArchived,
    /// Its copy was archived before digests were recorded: nothing to compare it with.
    NoDigest,
    /// The journal records it, but its file is missing.
    Missing,
    /// Its file does not decode (or does not authenticate): the reason.
    Damaged(String),
    /// Its file decodes, but not into the message fetched: how it differs.
    Differs(String),
    /// The server refused to remove it: what it said.
    Refused(String),
}

impl Reason {
    /// A short name, for counts (`--report`'s keys).
    pub fn key(&self) -> &'static str {
        match self {
            Reason::Flagged => "flagged",
            Reason::NotArchived => "not_archived",
            Reason::NoDigest => "no_digest",
            Reason::Missing => "missing",
            Reason::Damaged(_) => "damaged",
            Reason::Differs(_) => "differs",
            Reason::Refused(_) => "refused",
        }
    }

    /// Whether it says something is wrong (with the archive or the server), rather than
    /// a choice or the order of events.
    pub fn is_problem(&self) -> bool {
        matches!(self, Reason::Missing | Reason::Damaged(_) | Reason::Differs(_) | Reason::Refused(_))
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Flagged => write!(f, "flagged"),
            Reason::NotArchived => write!(f, "not archived yet"),
            Reason::NoDigest => write!(f, "archived before digests were recorded: its copy cannot be checked"),
            Reason::Missing => write!(f, "its archived file is missing"),
            Reason::Damaged(why) => write!(f, "its archived file is damaged: {why}"),
            Reason::Differs(why) => write!(f, "its archived file is not the message fetched: {why}"),
            Reason::Refused(why) => write!(f, "the server refused to remove it: {why}"),
        }
    }
}

/// An old message that stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// Its UID.
    pub uid: u32,
    /// Why.
    pub reason: Reason,
}

/// What prune did to one folder (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The folder's name, printable.
    pub folder: String,
    /// The limit, in days.
    pub days: u32,
    /// The messages removed (in a dry run: to remove), UID and INTERNALDATE (Unix time),
    /// ascending by UID.
    pub removed: Vec<(u32, i64)>,
    /// The old messages kept, ascending by UID.
    pub kept: Vec<Kept>,
    /// In a dry run, old messages not archived yet: a backup would archive them first,
    /// then remove them once their copy checks out.
    pub after_archiving: Vec<(u32, i64)>,
    /// A dry run: nothing was removed.
    pub dry_run: bool,
}

impl Outcome {
    /// The kept messages counted by reason, in a fixed order.
    pub fn kept_by_reason(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for k in &self.kept {
            match counts.iter_mut().find(|(key, _)| *key == k.reason.key()) {
                Some((_, n)) => *n += 1,
                None => counts.push((k.reason.key(), 1)),
            }
        }
        counts.sort_unstable();
        counts
    }

    /// Kept messages whose reason is a problem (a damaged copy, a refusal).
    pub fn problems(&self) -> impl Iterator<Item = &Kept> {
        self.kept.iter().filter(|k| k.reason.is_problem())
    }
}

/// The archived side of one folder.
pub struct Copies<'a> {
    /// Its folder directory.
    pub dir: &'a Dir,
    /// Its metadata journal, if it has one.
    pub journal: Option<&'a Path>,
    /// The UIDVALIDITY its messages were archived under.
    pub uidvalidity: u32,
    /// The archive's keys, under `-e`.
    pub keys: Option<&'a Keys>,
}

/// What to do with one folder.
pub struct Job<'a> {
    /// The mailbox.
    pub mailbox: &'a Mailbox,
    /// The limit, in days.
    pub days: u32,
    /// Keep flagged messages.
    pub keep_flagged: bool,
    /// How the server removes messages; `None` for a dry run (nothing is removed, the
    /// folder is never opened read-write).
    pub removal: Option<&'a Removal>,
    /// Now, Unix time.
    pub now: i64,
}

/// Prunes one folder: lists its messages' arrival times and flags (read-only), checks
/// the archived copy of each old one, and removes those whose copy checks out, in one
/// read-write step that checks the UIDVALIDITY again. An error is the folder's as a
/// whole (the server refused, the UIDVALIDITY changed): nothing of it was removed then,
/// or only what the outcome of a partial refusal would say.
pub fn folder(session: &mut Session, copies: &Copies<'_>, job: &Job<'_>) -> Result<Outcome> {
    let spec = session.spec().clone();
    let mut plan = plan::Plan::new(job.now, job.days);
    let examined = session
        .arrivals(&job.mailbox.wire, &mut |uid, date, flags| plan.note(uid, date, flags))
        .map_err(|e| spec.imap_error("EXAMINE", &e))?;
    let plan = plan.finish();
    if examined.uid_validity != Some(copies.uidvalidity) {
        return Err(Error::runtime(format!(
            "the folder's UIDVALIDITY is {} on the server, its archive was made under {}: its UIDs name other \
             messages, nothing is removed",
            examined.uid_validity.map_or("not reported".into(), |v| v.to_string()),
            copies.uidvalidity
        )));
    }
    let mut outcome =
        Outcome { folder: job.mailbox.shown(), days: job.days, dry_run: job.removal.is_none(), ..Outcome::default() };
    let index = copies.journal.map(|j| Index::load(j, copies.keys, true)).transpose();
    let index = match index {
        Ok(i) => i,
        Err(e) => return Err(Error::runtime(format!("metadata: {e}: nothing is removed"))),
    };
    let mut verified: Vec<(u32, i64)> = Vec::new();
    for old in &plan.old {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        if old.flagged && job.keep_flagged {
            outcome.kept.push(Kept { uid: old.uid, reason: Reason::Flagged });
            continue;
        }
        let meta = index.as_ref().and_then(|i| i.lookup(old.uid));
        match verify_copy::check(copies.dir, old.uid, meta.as_ref(), copies.keys) {
            Ok(()) => verified.push((old.uid, old.arrived)),
            Err(Reason::NotArchived) if outcome.dry_run => outcome.after_archiving.push((old.uid, old.arrived)),
            Err(reason) => outcome.kept.push(Kept { uid: old.uid, reason }),
        }
    }
    let Some(how) = job.removal else {
        outcome.removed = verified;
        return Ok(outcome);
    };
    if verified.is_empty() {
        return Ok(outcome);
    }
    let uids: Vec<u32> = verified.iter().map(|v| v.0).collect();
    let keep = |flags: &[String]| job.keep_flagged && plan::flagged(flags);
    let removed = session
        .remove_messages(&job.mailbox.wire, copies.uidvalidity, &uids, how, &keep)
        .map_err(|e| spec.imap_error("SELECT", &e))?;
    let arrived = |uid: u32| verified.binary_search_by_key(&uid, |v| v.0).map_or(0, |k| verified[k].1);
    outcome.removed = removed.removed.iter().map(|&u| (u, arrived(u))).collect();
    outcome.kept.extend(removed.kept.iter().map(|&uid| Kept { uid, reason: Reason::Flagged }));
    if let Some(text) = &removed.refused {
        let done: std::collections::HashSet<u32> =
            removed.removed.iter().chain(&removed.kept).chain(&removed.vanished).copied().collect();
        outcome.kept.extend(
            uids.iter().filter(|u| !done.contains(u)).map(|&uid| Kept { uid, reason: Reason::Refused(text.clone()) }),
        );
    }
    outcome.kept.sort_by_key(|k| k.uid);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_the_config() {
        let v = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(Settings::from_config(None, false).unwrap(), None);
        assert!(Settings::from_config(None, true).is_err(), "keep_flagged alone means nothing");
        let s = Settings::from_config(Some(&v("365")), true).unwrap().unwrap();
        assert_eq!((s.days, s.keep_flagged), (Some(365), true));
        assert_eq!(s.days_for(&Mailbox::from_arg("Sent")), Some(365));
        for bad in ["0", "-3", "\"30\"", "36501", "{\"INBOX\": \"x\"}"] {
            assert!(Settings::from_config(Some(&v(bad)), false).is_err(), "{bad}");
        }
        let s = Settings::from_config(Some(&v(r#"{"INBOX": 30, "Sent": 0, "*": 400}"#)), false).unwrap().unwrap();
        assert_eq!(s.days_for(&Mailbox::from_arg("INBOX")), Some(30));
        assert_eq!(s.days_for(&Mailbox::from_arg("Sent")), None);
        assert_eq!(s.days_for(&Mailbox::from_arg("Archive")), Some(400));
        let s = Settings::from_config(Some(&v(r#"{"Reçus": 10}"#)), false).unwrap().unwrap();
        assert_eq!(s.days_for(&Mailbox::from_arg("Re&AOc-us")), Some(10), "real and wire names are one folder");
        assert_eq!(s.days_for(&Mailbox::from_arg("INBOX")), None);
    }

    #[test]
    fn kept_messages_are_counted_by_reason() {
        let mut o = Outcome { folder: "INBOX".into(), days: 30, removed: vec![(1, 0), (2, 0)], ..Outcome::default() };
        o.kept = vec![
            Kept { uid: 3, reason: Reason::Flagged },
            Kept { uid: 4, reason: Reason::Damaged("MAC check failed".into()) },
            Kept { uid: 5, reason: Reason::Flagged },
        ];
        assert_eq!(o.kept_by_reason(), [("damaged", 1), ("flagged", 2)]);
        assert_eq!(o.problems().map(|k| k.uid).collect::<Vec<_>>(), [4]);
    }
}
