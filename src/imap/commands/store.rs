//! Changing messages: `UID STORE` of flags and `UID EXPUNGE` of exactly the messages
//! meant (UIDPLUS), the mailbox opened read-write only for that.

use super::quoted;
use super::select::{note_examined, Examined};
use super::uid_set;
use crate::imap::error::ImapError;
use crate::imap::session::Session;
use crate::imap::wire::MAX_SMALL_LITERAL;

impl Session {
    /// Removes exactly the messages `uids` of `wire` (UID STORE `\Deleted`, then UID
    /// EXPUNGE of those UIDs: the server must offer UIDPLUS), unless the mailbox's
    /// UIDVALIDITY is no longer `uidvalidity`. The mailbox is opened read-write only for
    /// this and left without removing anything else.
    pub fn remove_copies(&mut self, wire: &str, uidvalidity: u32, uids: &[u32]) -> std::result::Result<(), ImapError> {
        self.run(|link| {
            if !link.has("UIDPLUS") {
                return Err(ImapError::Refused("the server does not offer UIDPLUS (UID EXPUNGE)".into()));
            }
            let tags = link.send(&[format!("SELECT {}", quoted(wire)?)])?;
            let mut selected = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut selected, d);
                Ok(())
            });
            let mut commands = Vec::new();
            let set = uid_set(uids);
            let same = opened.is_ok() && selected.uid_validity == Some(uidvalidity);
            if same {
                commands.push(format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"));
                commands.push(format!("UID EXPUNGE {set}"));
            }
            // Left without CLOSE, which would remove every message marked \Deleted.
            if link.has("UNSELECT") {
                commands.push("UNSELECT".into());
            } else {
                commands.extend([format!("EXAMINE {}", quoted(wire)?), "CLOSE".to_string()]);
            }
            let tags = link.send(&commands)?;
            let mut outcome = opened.map(drop);
            for tag in &tags {
                match link.finish(tag, MAX_SMALL_LITERAL, &mut |_| Ok(())) {
                    Ok(_) => {}
                    Err(e @ ImapError::Refused(_)) => outcome = outcome.and(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            outcome?;
            if !same {
                return Err(ImapError::Refused(
                    "the mailbox's UIDVALIDITY changed: its UIDs name other messages".into(),
                ));
            }
            Ok(())
        })
    }
}
