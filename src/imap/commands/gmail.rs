//! What Gmail mode asks of a Gmail server beyond plain IMAP (Google's `X-GM-EXT-1`): each
//! message's `X-GM-MSGID`, `X-GM-THRID` and `X-GM-LABELS`, metadata only, one folder at a
//! time, opened and asked in one round trip.

use super::quoted;
use super::select::{note_examined, Examined};
use super::uid_set;
use crate::imap::error::ImapError;
use crate::imap::session::Session;
use crate::imap::wire::{Data, Fetched, MAX_SMALL_LITERAL};

/// One message of a folder as Gmail identifies it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GmailIds {
    /// Its UID in the folder asked.
    pub uid: u32,
    /// `X-GM-MSGID`: the same in every folder it shows in.
    pub msgid: u64,
    /// `X-GM-THRID`.
    pub thrid: u64,
    /// Its flags.
    pub flags: Vec<String>,
    /// `X-GM-LABELS`, when asked (the folder's own label is not among them).
    pub labels: Option<Vec<String>>,
}

impl Session {
    /// Opens `wire` read-only and asks every message's UID, flags and Gmail ids (and
    /// labels, with `labels`): `EXAMINE` and one `UID FETCH 1:*`, no body. Answers without
    /// an `X-GM-MSGID` are left out; one more than the folder's messages plus a margin
    /// fails the command.
    pub fn gmail_ids(&mut self, wire: &str, labels: bool) -> std::result::Result<(Examined, Vec<GmailIds>), ImapError> {
        self.run(|link| {
            let items =
                if labels { "UID FLAGS X-GM-MSGID X-GM-THRID X-GM-LABELS" } else { "UID FLAGS X-GM-MSGID X-GM-THRID" };
            let tags = link.send(&[format!("EXAMINE {}", quoted(wire)?), format!("UID FETCH 1:* ({items})")])?;
            let mut examined = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut examined, d);
                Ok(())
            });
            let cap = examined.exists as usize + 1000;
            let mut found = Vec::new();
            let fetched = link.finish(&tags[1], MAX_SMALL_LITERAL, &mut |d| {
                if let Data::Fetch(Fetched {
                    uid: Some(uid), gm_msgid: Some(msgid), gm_thrid, gm_labels, flags, ..
                }) = d
                {
                    if found.len() >= cap {
                        return Err(ImapError::Protocol(format!(
                            "more than {cap} answers for a folder of {} messages",
                            examined.exists
                        )));
                    }
                    found.push(GmailIds {
                        uid,
                        msgid,
                        thrid: gm_thrid.unwrap_or(0),
                        flags: flags.unwrap_or_default(),
                        labels: gm_labels,
                    });
                }
                Ok(())
            });
            opened?;
            fetched?;
            found.sort_by_key(|g| g.uid);
            found.dedup_by_key(|g| g.uid);
            Ok((examined, found))
        })
    }
}

impl Session {
    /// Opens `wire` read-write and adds labels to messages: each `(uids, labels)` one
    /// `UID STORE uids +X-GM-LABELS (labels)` (system labels as atoms, `\Inbox`; the
    /// others quoted), all sent at once; then leaves the mailbox. A refused STORE fails
    /// the call.
    pub fn add_labels(
        &mut self,
        wire: &str,
        batches: &[(Vec<u32>, Vec<String>)],
    ) -> std::result::Result<(), ImapError> {
        self.run(|link| {
            let mut commands = vec![format!("SELECT {}", quoted(wire)?)];
            for (uids, labels) in batches {
                let mut names = Vec::new();
                for l in labels {
                    let system = l.starts_with('\\') && crate::imap::wire::flag_ok(l.as_bytes());
                    names.push(if system { l.clone() } else { quoted(l)? });
                }
                commands.push(format!("UID STORE {} +X-GM-LABELS ({})", uid_set(uids), names.join(" ")));
            }
            commands.push(if link.has("UNSELECT") { "UNSELECT" } else { "CLOSE" }.to_string());
            let tags = link.send(&commands)?;
            let mut refused = None;
            for tag in &tags {
                match link.finish(tag, MAX_SMALL_LITERAL, &mut |_| Ok(())) {
                    Ok(_) => {}
                    Err(ImapError::Refused(text)) => refused = refused.or(Some(text)),
                    Err(e) => return Err(e),
                }
            }
            match refused {
                Some(text) => Err(ImapError::Refused(text)),
                None => Ok(()),
            }
        })
    }
}
