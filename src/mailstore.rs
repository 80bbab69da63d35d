//! Telling one mailstore from another. An archive's user directory belongs to a mailstore,
//! not to the name the server was reached by: the same account through `localhost`
//! instead of `127.0.0.1`, another port, STARTTLS instead of implicit TLS, a proxy or an SSH
//! tunnel is the same mail, and must continue in the same directory without fetching
//! anything again; another server with an account of the same user name must not.
//!
//! UIDVALIDITYs alone cannot tell them apart: Dovecot takes them from the clock, so two
//! servers whose mailboxes were first opened in the same second share them. What two
//! servers cannot share by chance is a message: the evidence recorded for an account is a
//! few archived messages (up to [`SAMPLES_PER_FOLDER`] in each of up to [`FOLDERS`]
//! folders, the largest), each as its UIDVALIDITY, UID, size and a digest of its
//! identifying header fields ([`FIELDS`]: `Message-ID:`, `Date:`, `From:`, `Subject:`, as
//! the server sends them). IMAP promises
//! that a UID means one message for as long as the UIDVALIDITY holds; a server that shows
//! the same size and header at the same UID under the same UIDVALIDITY holds that mail.
//!
//! A run that logs in through a server not recorded for its user name compares each
//! recorded account of that name that has evidence: EXAMINE and a header fetch of the
//! sampled UIDs, every folder at once, one round trip, no body fetched. It is the same
//! mailstore when at least one sample is there as recorded and none differs (an expunged
//! message or a recreated folder says nothing either way).

use sha2::{Digest, Sha256};

use crate::archive::layout::account;
use crate::archive::layout::registry::{AccountRecord, Registry, Sample};
use crate::error::Result;
use crate::imap::{ImapError, Session, Statuses};

/// Folders sampled at most.
pub const FOLDERS: usize = 3;
/// Messages sampled per folder at most.
pub const SAMPLES_PER_FOLDER: usize = 3;
/// The header fields of each sampled message that are digested: what identifies a message
/// (`HEADER.FIELDS` is a header fetch for every server's counters, Courier's included,
/// where a partial `HEADER<0.N>` counts as body).
pub const FIELDS: &str = "MESSAGE-ID DATE FROM SUBJECT";
/// The most bytes of those fields read for one message (longer is digested as cut).
pub const HEAD: usize = 16 * 1024;
/// Evidence older than this many days is taken again (messages are expunged over years).
const MAX_AGE_DAYS: i64 = 30;

/// How a server's mail compares with an account's evidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Samples found as recorded.
    pub matched: usize,
    /// Samples whose UID holds another message (or whose folder's UIDVALIDITY is the same
    /// but the message differs).
    pub differing: usize,
    /// Samples not found (expunged, folder gone or recreated).
    pub missing: usize,
}

impl Comparison {
    /// Whether the server holds the mailstore the evidence was taken from.
    pub fn same(&self) -> bool {
        self.matched > 0 && self.differing == 0
    }
}

/// The digest of a message's [`FIELDS`] (at most [`HEAD`] bytes), as recorded in a [`Sample`].
pub fn digest(head: &[u8]) -> String {
    let head = &head[..head.len().min(HEAD)];
    Sha256::digest(head)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares the mail `session` reaches with `evidence`: one round trip.
pub fn compare(evidence: &[Sample], session: &mut Session) -> std::result::Result<Comparison, ImapError> {
    let mut asks: Vec<(String, Vec<u32>)> = Vec::new();
    for s in evidence {
        match asks.iter_mut().find(|(wire, _)| *wire == s.mailbox) {
            Some((_, uids)) => uids.push(s.uid),
            None => asks.push((s.mailbox.clone(), vec![s.uid])),
        }
    }
    for (_, uids) in &mut asks {
        uids.sort_unstable();
        uids.dedup();
    }
    let found = session.header_samples(&asks, FIELDS, HEAD)?;
    let mut c = Comparison::default();
    for s in evidence {
        let folder = asks.iter().position(|(wire, _)| *wire == s.mailbox).and_then(|i| found[i].as_ref());
        let message = folder
            .filter(|f| f.uidvalidity == Some(s.uidvalidity))
            .and_then(|f| f.messages.iter().find(|(uid, _, _)| *uid == s.uid));
        match message {
            Some((_, size, head)) if *size == s.size && digest(head) == s.header => c.matched += 1,
            Some(_) => c.differing += 1,
            None => c.missing += 1,
        }
    }
    Ok(c)
}

/// The recorded user directory whose mailstore `session` (logged in as `user` through
/// `server`) reaches, when `server` is not recorded for `user` but another server is whose
/// evidence the mail matches; with the server it was recorded under.
pub fn recognise(
    registry: &Registry,
    session: &mut Session,
    server: &str,
    user: &str,
) -> std::result::Result<Option<(String, String)>, ImapError> {
    if registry.recorded_account(server, user).is_some() {
        return Ok(None);
    }
    for account in registry.accounts_of_user(user) {
        if account.evidence.is_empty() {
            continue;
        }
        if compare(&account.evidence, session)?.same() {
            return Ok(Some((account.dir.clone(), account.servers.first().cloned().unwrap_or_default())));
        }
    }
    Ok(None)
}

/// Whether the evidence of `account` is to be taken (again) now: it never was, it is old,
/// there is none and this run archived mail (`archived`), or a sampled folder's
/// UIDVALIDITY is no longer the server's (`statuses`: this run's). A no-op run of an
/// account with evidence costs nothing.
pub fn stale(account: &AccountRecord, statuses: &Statuses<'_>, today: i64, archived: bool) -> bool {
    account.evidence_day.is_none_or(|day| today - day >= MAX_AGE_DAYS || day > today)
        || (account.evidence.is_empty() && archived)
        || account
            .evidence
            .iter()
            .any(|s| statuses.get(&s.mailbox).and_then(|st| st.uidvalidity).is_some_and(|v| v != s.uidvalidity))
}

/// Takes the evidence of user directory `account` from the server: archived messages of
/// the largest folders (by `statuses`' message counts, INBOX first among equals), the
/// first, middle and last archived UID of each, asked in one round trip. Empty when
/// nothing is archived yet.
pub fn take(registry: &Registry, account: &str, statuses: &Statuses<'_>, session: &mut Session) -> Result<Vec<Sample>> {
    let count = |wire: &str| statuses.get(wire).and_then(|s| s.messages).unwrap_or(0);
    let asks = account::archived_samples(registry, account, count, FOLDERS, SAMPLES_PER_FOLDER)?;
    if asks.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<(String, Vec<u32>)> = asks.iter().map(|(w, _, u)| (w.clone(), u.clone())).collect();
    let found =
        session.header_samples(&wanted, FIELDS, HEAD).map_err(|e| session.spec().imap_error("UID FETCH", &e))?;
    let mut evidence = Vec::new();
    for ((wire, uidvalidity, _), folder) in asks.iter().zip(found) {
        // A folder recreated since its archive was made: its UIDs now name other mail.
        let Some(folder) = folder.filter(|f| f.uidvalidity == Some(*uidvalidity)) else { continue };
        for (uid, size, head) in folder.messages {
            evidence.push(Sample {
                mailbox: wire.clone(),
                uidvalidity: *uidvalidity,
                uid,
                size,
                header: digest(&head),
            });
        }
    }
    Ok(evidence)
}

/// Days since 1970-01-01, today.
pub fn today() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::FolderStatus;
    use std::collections::HashMap;

    fn sample(uid: u32) -> Sample {
        Sample { mailbox: "INBOX".into(), uidvalidity: 7, uid, size: 10, header: digest(b"Received: x") }
    }

    #[test]
    fn only_what_two_servers_cannot_share_by_chance_counts() {
        assert_eq!(digest(b"Received: x").len(), 16);
        assert_eq!(digest(&vec![b'a'; HEAD + 10]), digest(&vec![b'a'; HEAD]), "only the head counts");
        assert!(Comparison { matched: 1, differing: 0, missing: 5 }.same());
        assert!(!Comparison { matched: 8, differing: 1, missing: 0 }.same(), "one message that differs");
        assert!(!Comparison { matched: 0, differing: 0, missing: 9 }.same(), "nothing to go by");
    }

    #[test]
    fn evidence_is_taken_again_when_old_or_its_folder_was_recreated() {
        let mut a = AccountRecord {
            dir: "a".into(),
            user: "a".into(),
            servers: vec![],
            migrated: true,
            evidence: vec![sample(1)],
            evidence_day: Some(100),
            namespace: None,
        };
        let inbox = |v: u32| {
            let states = HashMap::from([(
                "INBOX".to_string(),
                FolderStatus { uidvalidity: Some(v), ..FolderStatus::default() },
            )]);
            Statuses::keep(states, ["INBOX"])
        };
        assert!(!stale(&a, &inbox(7), 101, true));
        assert!(stale(&a, &inbox(7), 100 + MAX_AGE_DAYS, false));
        assert!(stale(&a, &inbox(8), 101, false));
        a.evidence.clear();
        let none = Statuses::default();
        assert!(!stale(&a, &none, 101, false), "nothing to take: an empty mailbox, or a server refusing");
        assert!(stale(&a, &none, 101, true));
        a.evidence_day = None;
        assert!(stale(&a, &none, 101, false));
    }
}
