//! `--list-folders`: each account's folders with the directory a backup uses for each,
//! and the read-only session that `--dry-run` shares.

use super::account_dir_seen;
use super::prepare::{connection, Connection};
use crate::account::{Account, Folders};
use crate::archive::layout::registry::Registry;
use crate::error::Result;
use crate::imap::Session;
use crate::mailbox_name::Mailbox;
use crate::oauth2::TokenSource;
use crate::sandbox::{Confine, Rules};

/// One folder as `--list-folders` shows it.
#[derive(Debug)]
pub struct Listing {
    /// The mailbox.
    pub mailbox: Mailbox,
    /// Its folder directory in the user directory: recorded, or the one a backup would make.
    pub dir: String,
    /// Messages in it (STATUS); `None` when it cannot be selected.
    pub messages: Option<u32>,
    /// Left out by `--exclude` (or not named with `-f`).
    pub excluded: bool,
    /// Whether it can hold messages (not `\Noselect`).
    pub selectable: bool,
}

/// Lists every account's folders with the directory a backup uses for each. Writes
/// nothing: the process is confined to reading the archive roots before it connects.
pub fn list_folders(accounts: &[Account], confine: &dyn Confine) -> Vec<(String, Result<Vec<Listing>>)> {
    read_only(accounts, confine, list_account)
}

/// Runs `each` on a session with every account's server, the process confined to reading
/// the archive roots (nothing is created, not even the root); each account's label with
/// what came of it.
pub(super) fn read_only<T>(
    accounts: &[Account],
    confine: &dyn Confine,
    each: impl Fn(&Account, &mut Session) -> Result<T>,
) -> Vec<(String, Result<T>)> {
    let mut ready = Vec::new();
    let mut results = Vec::new();
    for account in accounts {
        let needs = account.validate().and_then(|()| connection(account));
        match needs {
            Ok(s) => ready.push((account, s)),
            Err(e) => results.push((account.label(), Err(e))),
        }
    }
    let sources = || ready.iter().filter_map(|(_, c)| c.source.as_ref());
    let rules = Rules {
        read: ready.iter().map(|(a, _)| a.root.clone()).filter(|r| r.is_dir()).collect(),
        // Rotated OAuth2 refresh tokens are written there mid-run; nothing else is.
        read_write: sources().map(|s| s.dir()).collect(),
        connect_tcp: ready.iter().map(|(_, c)| c.spec.port).chain(sources().map(|s| s.port())).collect(),
        ..Rules::default()
    };
    if let Err(e) = confine.confine(&rules) {
        return vec![(String::from("sandbox"), Err(e))];
    }
    for (account, Connection { spec, auth, addrs, source }) in ready {
        let label = account.label();
        let mut session = Session::new(spec, addrs, auth).renewing(source.as_ref().map(TokenSource::renewal));
        // Retries are not said: the outcome is.
        let listed = session.connect_retrying(&mut |_| {}).and_then(|()| each(account, &mut session));
        let _ = session.logout();
        results.push((label.clone(), listed));
    }
    results
}

fn list_account(account: &Account, session: &mut Session) -> Result<Vec<Listing>> {
    let mut registry = Registry::read(&account.root)?;
    let account_dir = account_dir_seen(&registry, session, &account.user)?;
    let listed = session.list(true).map_err(|e| session.spec().imap_error("LIST", &e))?;
    let (entries, mut statuses) = (listed.entries, listed.statuses);
    let missing: Vec<String> =
        entries.iter().filter(|e| e.selectable() && !statuses.contains_key(&e.wire)).map(|e| e.wire.clone()).collect();
    if !missing.is_empty() {
        statuses.extend(session.statuses(&missing).map_err(|e| session.spec().imap_error("STATUS", &e))?);
    }
    let mut out = Vec::new();
    for e in entries {
        let mailbox = Mailbox::from_wire(&e.wire);
        let excluded = match &account.folders {
            Folders::Named(names) => !names.iter().any(|f| Mailbox::from_arg(f) == mailbox),
            Folders::All { exclude } => exclude.iter().any(|p| mailbox.matches(p, e.delimiter)),
        };
        let messages = statuses.get(&e.wire).and_then(|s| s.messages).filter(|_| e.selectable());
        out.push(Listing { dir: String::new(), mailbox, messages, excluded, selectable: e.selectable() });
    }
    out.sort_by_key(|l| (l.mailbox.name(), l.mailbox.wire.clone()));
    // Directories are handed out as a backup would: the backed-up folders first, in name
    // order, then what an exclude left out; a folder that holds no mail gets none.
    for pass in [false, true] {
        for l in out.iter_mut().filter(|l| l.selectable && l.excluded == pass) {
            l.dir = registry.plan_folder(&account_dir, &l.mailbox);
        }
    }
    for l in out.iter_mut().filter(|l| !l.selectable) {
        l.dir = "-".into();
    }
    Ok(out)
}
