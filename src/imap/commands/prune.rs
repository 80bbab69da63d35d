//! What verified prune asks of the server: each message's arrival time and flags (read
//! only), then the removal of exactly the messages that qualified, in the only step that
//! opens a mailbox read-write. Nothing here decides what qualifies: `crate::prune` does.
//!
//! A removal never sends a plain EXPUNGE (it would also remove what the user marked
//! `\Deleted`) and never leaves the mailbox with CLOSE while it is open read-write (the
//! same). With UIDPLUS: `UID STORE +FLAGS.SILENT (\Deleted)` then `UID EXPUNGE` of the same
//! UIDs; else (and on Gmail, where `\Deleted` in All Mail only archives) `UID MOVE` to the
//! Trash folder.

use super::quoted;
use super::select::{note_examined, Examined};
use super::uid_set;
use crate::imap::error::ImapError;
use crate::imap::session::Session;
use crate::imap::wire::{Data, Fetched, MAX_SMALL_LITERAL};

/// UIDs per command of a removal: a UID set of scattered UIDs grows with their number,
/// and servers bound a command line (Dovecot at 64 KiB).
const UIDS_PER_COMMAND: usize = 1000;

/// How the messages are removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// `UID STORE +FLAGS.SILENT (\Deleted)`, then `UID EXPUNGE` of those UIDs (UIDPLUS).
    Expunge,
    /// `UID MOVE` to this mailbox (wire name): the Trash folder.
    MoveTo(String),
}

/// What a removal did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The UIDs removed (or moved to the Trash).
    pub removed: Vec<u32>,
    /// UIDs asked for that `keep` kept when their flags were read again read-write (a
    /// user flagged it meanwhile).
    pub kept: Vec<u32>,
    /// UIDs asked for that were no longer there.
    pub vanished: Vec<u32>,
    /// The server refused a command of the removal: what it said (the UIDs of that
    /// command are not in `removed`).
    pub refused: Option<String>,
}

/// Where [`Session::arrivals`] hands each message: its UID, INTERNALDATE and flags.
pub type OnArrival<'a> = &'a mut dyn FnMut(u32, Option<&str>, &[String]);

impl Session {
    /// Opens `wire` read-only and hands each message's UID, INTERNALDATE (as sent) and
    /// flags to `on`, in one round trip (`EXAMINE`, `UID FETCH 1:* (UID INTERNALDATE
    /// FLAGS)`); returns what EXAMINE reported (its UIDVALIDITY above all).
    pub fn arrivals(&mut self, wire: &str, on: OnArrival<'_>) -> std::result::Result<Examined, ImapError> {
        self.run(|link| {
            let tags =
                link.send(&[format!("EXAMINE {}", quoted(wire)?), "UID FETCH 1:* (UID INTERNALDATE FLAGS)".into()])?;
            let mut examined = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut examined, d);
                Ok(())
            });
            let cap = examined.exists as usize + 1000;
            let mut answers = 0usize;
            let fetched = link.finish(&tags[1], MAX_SMALL_LITERAL, &mut |d| {
                if let Data::Fetch(Fetched { uid: Some(uid), internal_date, flags, .. }) = d {
                    answers += 1;
                    if answers > cap {
                        return Err(ImapError::Protocol(format!(
                            "more than {cap} FETCH answers for a folder of {} messages",
                            examined.exists
                        )));
                    }
                    on(uid, internal_date.as_deref(), flags.as_deref().unwrap_or_default());
                }
                Ok(())
            });
            opened?;
            fetched?;
            Ok(examined)
        })
    }

    /// Removes the messages `uids` (ascending) of `wire` as `how` says, only while the
    /// mailbox's UIDVALIDITY is `uidvalidity`: opens it read-write (SELECT), reads the
    /// flags of those UIDs again and leaves out those `keep` keeps (and those gone), removes
    /// the rest, and leaves the mailbox without removing anything else (UNSELECT, or
    /// EXAMINE then CLOSE). Two round trips.
    pub fn remove_messages(
        &mut self,
        wire: &str,
        uidvalidity: u32,
        uids: &[u32],
        how: &Removal,
        keep: &dyn Fn(&[String]) -> bool,
    ) -> std::result::Result<Removed, ImapError> {
        self.run(|link| {
            let needed = match how {
                Removal::Expunge => "UIDPLUS",
                Removal::MoveTo(_) => "MOVE",
            };
            if !link.has(needed) {
                return Err(ImapError::Refused(format!("the server does not offer {needed}")));
            }
            let mut commands = vec![format!("SELECT {}", quoted(wire)?)];
            commands.extend(uids.chunks(UIDS_PER_COMMAND).map(|c| format!("UID FETCH {} (UID FLAGS)", uid_set(c))));
            let tags = link.send(&commands)?;
            let mut selected = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut selected, d);
                Ok(())
            });
            let mut present: Vec<(u32, bool)> = Vec::new();
            let mut read = Ok(());
            for tag in &tags[1..] {
                let answer = link.finish(tag, MAX_SMALL_LITERAL, &mut |d| {
                    if let Data::Fetch(Fetched { uid: Some(uid), flags: Some(flags), .. }) = d {
                        if uids.binary_search(&uid).is_ok() {
                            present.push((uid, keep(&flags)));
                        }
                    }
                    Ok(())
                });
                match answer {
                    Ok(_) => {}
                    Err(e @ ImapError::Refused(_)) => read = read.and(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            present.sort_unstable();
            present.dedup_by_key(|p| p.0);
            let same = opened.is_ok() && read.is_ok() && selected.uid_validity == Some(uidvalidity);
            let mut outcome = Removed::default();
            let mut commands = Vec::new();
            let mut chunks: Vec<&[u32]> = Vec::new();
            let going: Vec<u32> = present.iter().filter(|p| !p.1).map(|p| p.0).collect();
            if same {
                outcome.kept = present.iter().filter(|p| p.1).map(|p| p.0).collect();
                outcome.vanished =
                    uids.iter().copied().filter(|u| present.binary_search_by_key(u, |p| p.0).is_err()).collect();
                for chunk in going.chunks(UIDS_PER_COMMAND) {
                    let set = uid_set(chunk);
                    match how {
                        Removal::Expunge => {
                            commands.push(format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"));
                            commands.push(format!("UID EXPUNGE {set}"));
                        }
                        Removal::MoveTo(trash) => commands.push(format!("UID MOVE {set} {}", quoted(trash)?)),
                    }
                    chunks.push(chunk);
                }
            }
            let per_chunk = if *how == Removal::Expunge { 2 } else { 1 };
            // Never CLOSE a mailbox open read-write: it would remove every message marked
            // \Deleted, the user's too.
            if link.has("UNSELECT") {
                commands.push("UNSELECT".into());
            } else {
                commands.extend([format!("EXAMINE {}", quoted(wire)?), "CLOSE".to_string()]);
            }
            let tags = link.send(&commands)?;
            let mut failed = opened.map(drop).and(read);
            for (k, tag) in tags.iter().enumerate() {
                let answer = link.finish(tag, MAX_SMALL_LITERAL, &mut |_| Ok(()));
                let chunk = chunks.get(k / per_chunk);
                match answer {
                    // A chunk counts as removed once its last command succeeded.
                    Ok(_) if chunk.is_some() && k % per_chunk == per_chunk - 1 => {
                        outcome.removed.extend_from_slice(chunk.copied().unwrap_or_default())
                    }
                    Ok(_) => {}
                    Err(ImapError::Refused(text)) => {
                        failed = failed.and(Err(ImapError::Refused(text)));
                        // A refused UID STORE: the chunk's UID EXPUNGE is not to count it.
                        if chunk.is_some() && k % per_chunk < per_chunk - 1 {
                            chunks[k / per_chunk] = &[];
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if !same {
                failed?;
                return Err(ImapError::Refused(format!(
                    "the mailbox's UIDVALIDITY is {} now, not {uidvalidity}: its UIDs name other messages",
                    selected.uid_validity.map_or("not reported".to_string(), |v| v.to_string())
                )));
            }
            if let Err(e) = failed {
                outcome.refused = Some(e.to_string());
            }
            Ok(outcome)
        })
    }
}
