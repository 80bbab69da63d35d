//! `--dry-run`: what a backup would fetch, folder by folder (messages and bytes), found
//! the way a backup finds it (the server's UIDs, or those since `--since`, less the ones
//! archived, then their sizes) by a process that can only read the archive: no root, no
//! records, no lock and no key file is made.

use std::collections::HashSet;

use super::choose_folders;
use super::context::archived_uids;
pub use super::event::Planned;
use super::event::{Event, Sink};
use super::list_folders::read_only;
use crate::account::Account;
use crate::archive::layout::registry::Registry;
use crate::error::Result;
use crate::imap::{Found, Session, Then};
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;
use crate::sandbox::Confine;

/// What a dry run came to, for the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Whether an account or a folder could not be counted.
    pub failed: bool,
}

/// Counts what a backup of `accounts` would fetch, told per folder and per account, the
/// process confined by `confine` before it connects.
pub fn run(accounts: &[Account], confine: &dyn Confine, sink: &dyn Sink) -> Summary {
    let mut counted_all = true;
    // Prune's dry run reads the archived copies back: the keys are read before the sandbox
    // closes (nothing is created: a missing key file stays missing).
    let keys: Vec<Result<Option<Keys>>> = accounts.iter().map(prune_keys).collect();
    let keys_of = |a: &Account| {
        accounts.iter().position(|b| std::ptr::eq(a, b)).and_then(|k| keys[k].as_ref().ok()).and_then(Option::as_ref)
    };
    let pruning = std::sync::atomic::AtomicUsize::new(0);
    let counted = read_only(accounts, confine, |a, s| {
        let (planned, problems) = count_account(a, keys_of(a), s, sink)?;
        pruning.fetch_add(problems, std::sync::atomic::Ordering::Relaxed);
        Ok(planned)
    });
    if pruning.into_inner() > 0 {
        counted_all = false;
    }
    for (k, error) in keys.iter().enumerate().filter_map(|(k, r)| Some((k, r.as_ref().err()?))) {
        sink.event(Event::PruneFailed { account: &accounts[k], folder: None, error });
        counted_all = false;
    }
    for (label, counted) in counted {
        let folders = match counted {
            Ok(f) => f,
            Err(error) => {
                sink.event(Event::AccountNotCounted { account: &label, error: &error });
                counted_all = false;
                continue;
            }
        };
        let (mut messages, mut bytes, mut failed) = (0, 0, 0);
        for (name, planned) in folders {
            match planned {
                Ok(p) => {
                    sink.event(Event::WouldFetch { account: &label, planned: &p });
                    messages += p.messages;
                    bytes += p.bytes;
                }
                Err(error) => {
                    sink.event(Event::NotCounted { account: &label, folder: &name, error: &error });
                    failed += 1;
                    counted_all = false;
                }
            }
        }
        sink.event(Event::WouldFetchAll { account: &label, messages, bytes, failed });
    }
    Summary { failed: !counted_all }
}

/// Each folder's name and what a backup would fetch from it; and the number of folders
/// where prune's dry run found a problem.
type Counted = (Vec<(String, Result<Planned>)>, usize);

/// The keys prune's dry run of `account` checks encrypted copies with: loaded when it
/// prunes, encrypts and its key file exists.
fn prune_keys(account: &Account) -> Result<Option<Keys>> {
    match &account.keys {
        Some(spec) if account.prune.is_some() && spec.path.exists() => spec.load().map(Some),
        _ => Ok(None),
    }
}

/// Each folder a backup would go through, with what it would fetch from it; and the
/// number of folders where prune's dry run found a problem.
fn count_account(account: &Account, keys: Option<&Keys>, session: &mut Session, sink: &dyn Sink) -> Result<Counted> {
    let registry = Registry::read(&account.root)?;
    let account_dir = super::account_dir_seen(&registry, session, &account.user)?;
    let chosen = choose_folders(account, session, sink)?;
    let mut out = Vec::new();
    for mailbox in &chosen.folders {
        out.push((mailbox.shown(), count_folder(account, session, &registry, &account_dir, mailbox)));
    }
    let scope = super::prune_step::Scope { account, keys, account_dir: &account_dir, folders: &chosen.folders };
    let problems = super::prune_step::dry_run(&scope, session, &registry, chosen.entries, sink);
    Ok((out, problems))
}

fn count_folder(
    account: &Account,
    session: &mut Session,
    registry: &Registry,
    account_dir: &str,
    mailbox: &Mailbox,
) -> Result<Planned> {
    let spec = session.spec().clone();
    let then = account.since.map_or(Then::AllUids, Then::UidsSince);
    let (examined, found) = session.examine_and(&mailbox.wire, then).map_err(|e| spec.imap_error("EXAMINE", &e))?;
    let on_server: Vec<u32> = match found {
        Found::Uids(uids) => uids,
        Found::Sizes(sizes) => sizes.into_iter().map(|(u, _)| u).collect(),
    };
    // The files count only for the UIDVALIDITY they were archived under: after a change
    // a backup moves them aside and fetches everything.
    let recorded = registry.folder_of(account_dir, mailbox).and_then(|r| r.uidvalidity);
    let rel = std::path::Path::new(account_dir).join(registry.folder_dir(account_dir, mailbox));
    // Opened from the root without following a symlink, as a backup would.
    let dir = crate::os::dir::Dir::open(registry.root()).and_then(|root| root.open_beneath(&rel));
    let archived = match dir {
        Ok(dir) if recorded.is_none() || recorded == examined.uid_validity => archived_uids(&dir)?,
        _ => HashSet::new(),
    };
    let missing: Vec<u32> = on_server.iter().copied().filter(|u| !archived.contains(u)).collect();
    let sizes = if missing.is_empty() {
        Vec::new()
    } else {
        session.sizes(&missing).map_err(|e| spec.imap_error("UID FETCH", &e))?
    };
    Ok(Planned {
        folder: mailbox.shown(),
        messages: sizes.len(),
        bytes: sizes.iter().map(|&(_, s)| u64::from(s)).sum(),
        archived: on_server.len() - missing.len(),
    })
}
