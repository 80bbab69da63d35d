//! Opening a folder: EXAMINE (read-only), alone or with what is asked of it in the same
//! round trip (`UID SEARCH`, or the sizes), and leaving it again (UNSELECT or CLOSE).
//!
//! Where an upload reads a mailbox, it is opened read-only only together with the
//! commands that read it and is left again in the same round trip: some servers (Courier)
//! refuse an APPEND into the mailbox a session has open read-only.

use super::{quoted, sorted_sizes};
use crate::imap::error::{quote, ImapError};
use crate::imap::link::Link;
use crate::imap::session::Session;
use crate::imap::wire::{Data, Fetched, MAX_SMALL_LITERAL};

/// What EXAMINE reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Examined {
    /// Messages in the folder.
    pub exists: u32,
    /// UIDVALIDITY.
    pub uid_validity: Option<u32>,
    /// The UID the next message will get.
    pub uid_next: Option<u32>,
    /// HIGHESTMODSEQ, when the server reports it (CONDSTORE).
    pub highest_modseq: Option<u64>,
}

/// What to ask for together with EXAMINE, in the same round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Every UID (`UID SEARCH ALL`).
    AllUids,
    /// The UID and size of every message from this UID on (`UID FETCH N:* (UID RFC822.SIZE)`).
    SizesFrom(u32),
    /// The UIDs of the messages whose INTERNALDATE is on or after this day
    /// (`UID SEARCH SINCE`).
    UidsSince(crate::date::Day),
}

/// The answer to [`Then`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// UIDs, ascending.
    Uids(Vec<u32>),
    /// UIDs and sizes, ascending by UID, only those asked for.
    Sizes(Vec<(u32, u32)>),
}

impl Session {
    /// Opens `wire` read-only.
    pub fn examine(&mut self, wire: &str) -> std::result::Result<Examined, ImapError> {
        self.run(|link| {
            let tags = link.send(&[format!("EXAMINE {}", quoted(wire)?)])?;
            let mut examined = Examined::default();
            link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut examined, d);
                Ok(())
            })?;
            Ok(examined)
        })
    }

    /// Opens `wire` read-only and asks `then` in the same round trip.
    pub fn examine_and(&mut self, wire: &str, then: Then) -> std::result::Result<(Examined, Found), ImapError> {
        self.run(|link| {
            let second = match then {
                Then::AllUids => "UID SEARCH ALL".to_string(),
                Then::SizesFrom(uid) => format!("UID FETCH {uid}:* (UID RFC822.SIZE)"),
                Then::UidsSince(day) => format!("UID SEARCH SINCE {day}"),
            };
            let tags = link.send(&[format!("EXAMINE {}", quoted(wire)?), second])?;
            let mut examined = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut examined, d);
                Ok(())
            });
            let mut uids = Vec::new();
            let mut sizes = Vec::new();
            let asked = link.finish(&tags[1], MAX_SMALL_LITERAL, &mut |d| {
                match d {
                    Data::Search(found) => uids.extend(found),
                    Data::Fetch(Fetched { uid: Some(uid), size: Some(size), .. }) => sizes.push((uid, size)),
                    _ => {}
                }
                Ok(())
            });
            // The EXAMINE's refusal is the one that explains the other.
            opened?;
            asked?;
            Ok((
                examined,
                match then {
                    Then::AllUids | Then::UidsSince(_) => {
                        uids.sort_unstable();
                        uids.dedup();
                        Found::Uids(uids)
                    }
                    Then::SizesFrom(from) => Found::Sizes(sorted_sizes(sizes, |u| u >= from)),
                },
            ))
        })
    }
}

pub(super) fn note_examined(examined: &mut Examined, d: Data) {
    match d {
        Data::Exists(n) => examined.exists = n,
        Data::State { code: Some(code), args, .. } => {
            let n = args.trim().parse().ok();
            match code.as_str() {
                "UIDVALIDITY" => examined.uid_validity = n,
                "UIDNEXT" => examined.uid_next = n,
                "HIGHESTMODSEQ" => examined.highest_modseq = args.trim().parse().ok(),
                _ => {}
            }
        }
        _ => {}
    }
}

/// The command that leaves the mailbox opened read-only: UNSELECT where offered, else
/// CLOSE (which removes nothing from a mailbox opened with EXAMINE, RFC 3501 6.4.2).
pub(super) fn deselect(link: &Link) -> String {
    if link.has("UNSELECT") { "UNSELECT" } else { "CLOSE" }.to_string()
}

/// A refused UNSELECT or CLOSE leaves the mailbox open read-only, where some servers
/// refuse the APPENDs that come next: said as such.
pub(super) fn still_open(wire: &str, e: ImapError) -> ImapError {
    match e {
        ImapError::Refused(text) => ImapError::Refused(format!(
            "{} stays open read-only (the server refused to close it: {})",
            crate::mailbox_name::Mailbox::from_wire(wire).shown(),
            quote(&text)
        )),
        other => other,
    }
}
