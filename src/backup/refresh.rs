//! Bringing the archived messages' flags up to date, at small cost: where the server offers
//! CONDSTORE (RFC 7162), a folder whose HIGHESTMODSEQ is the one recorded in its journal
//! is not opened at all, and one whose is not is asked only for the flags that changed
//! since (`CHANGEDSINCE`); elsewhere a folder opened by this run anyway is asked the flags
//! of all its messages in one streamed `UID FETCH 1:* (UID FLAGS)`, and only those that
//! differ from the journal's are written.

use super::folder::{Context, Place};
use crate::error::{Error, Result};
use crate::imap::session::FlagsAsk;
use crate::imap::{FolderStatus, Session};
use crate::mailbox_name::Mailbox;
use crate::metadata::{Index, Journal};

/// Changed flags written per journal line at most, so memory stays bounded however
/// many changed.
const PENDING: usize = 1000;

/// What the run knows of a folder before its flags are refreshed.
pub struct Folder<'a> {
    /// The mailbox.
    pub mailbox: &'a Mailbox,
    /// Its state from LIST-STATUS or STATUS.
    pub status: Option<FolderStatus>,
    /// The HIGHESTMODSEQ the journal recorded before this run.
    pub mark: Option<u64>,
    /// Whether this run opened it (new mail, or a first or repeated full pass).
    pub opened: bool,
}

/// Whether `folder`'s flags need asking: with CONDSTORE when its HIGHESTMODSEQ moved (or
/// was never recorded), without it when the folder was opened by this run anyway.
pub fn needed(folder: &Folder<'_>, condstore: bool) -> bool {
    if condstore {
        folder.status.and_then(|s| s.highestmodseq).is_none()
            || folder.status.and_then(|s| s.highestmodseq) != folder.mark
    } else {
        folder.opened
    }
}

/// Refreshes the flags of `folder`'s archived messages in its journal. A folder without a
/// record of its UIDVALIDITY (never backed up) is left alone.
pub fn refresh(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    folder: &Folder<'_>,
    condstore: bool,
) -> Result<()> {
    let Some(uidvalidity) = place.records().folder_of(place.account_dir, folder.mailbox).and_then(|r| r.uidvalidity)
    else {
        return Ok(());
    };
    // With CHANGEDSINCE only changed flags come: they are written as they are. Without it
    // every message's come, and are compared with what the journal has.
    let since = if condstore { folder.mark } else { None };
    let mut update = Update::new(place.journal(ctx, folder.mailbox, uidvalidity));
    let index = match since {
        Some(_) => None,
        None if update.journal.path().is_file() => Some(Index::load(update.journal.path(), ctx.keys, false)?),
        None => Some(Index::default()),
    };
    let ask = FlagsAsk { wire: &folder.mailbox.wire, uidvalidity, changed_since: since };
    let spec = session.spec().clone();
    let mut outcomes = session
        .flags(&[ask], condstore, &mut |_, uid, flags| {
            if index.as_ref().and_then(|i| i.flags_of(uid)) != Some(&flags[..]) {
                update.add(uid, flags);
            }
        })
        .map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
    let examined = outcomes.remove(0).map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
    if examined.uid_validity != Some(uidvalidity) {
        // Recreated meanwhile: the next backup moves the old archive aside.
        return Ok(());
    }
    let mut journal = update.finish()?;
    if let Some(index) = &index {
        learn_dates(session, place, folder, index, &mut journal)?;
    }
    if let (true, Some(m)) = (condstore, examined.highest_modseq) {
        journal.modseq(m)?;
    }
    journal.sync()
}

/// Refreshes, with CHANGEDSINCE, the flags of folders whose journal has a HIGHESTMODSEQ
/// mark, all asked at once: after new mail in many folders, one round trip instead of
/// one per folder. Each folder's outcome is its own, in the order given.
pub fn refresh_changed(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    folders: &[&Folder<'_>],
) -> Vec<Result<()>> {
    let mut asks = Vec::new();
    let mut updates = Vec::new();
    let mut out: Vec<Option<Result<()>>> = Vec::new();
    for f in folders {
        let uidvalidity = place.records().folder_of(place.account_dir, f.mailbox).and_then(|r| r.uidvalidity);
        match (uidvalidity, f.mark) {
            (Some(uidvalidity), Some(mark)) => {
                asks.push(FlagsAsk { wire: &f.mailbox.wire, uidvalidity, changed_since: Some(mark) });
                updates.push(Update::new(place.journal(ctx, f.mailbox, uidvalidity)));
                out.push(None);
            }
            _ => out.push(Some(Ok(()))),
        }
    }
    if asks.is_empty() {
        return out.into_iter().flatten().collect();
    }
    let spec = session.spec().clone();
    let answered = session.flags(&asks, true, &mut |k, uid, flags| updates[k].add(uid, flags));
    let mut outcomes = match answered {
        Ok(o) => o.into_iter(),
        Err(e) => {
            let e = spec.imap_error("flags UID FETCH", &e).to_string();
            return out.into_iter().map(|o| o.unwrap_or_else(|| Err(Error::runtime(e.clone())))).collect();
        }
    };
    let mut updates = updates.into_iter().zip(asks.iter());
    out.into_iter()
        .map(|o| match o {
            Some(done) => done,
            None => {
                let (Some(outcome), Some((update, ask))) = (outcomes.next(), updates.next()) else {
                    return Err(Error::runtime("flags UID FETCH: an answer is missing"));
                };
                let examined = outcome.map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
                if examined.uid_validity != Some(ask.uidvalidity) {
                    return Ok(());
                }
                let mut journal = update.finish()?;
                if let Some(m) = examined.highest_modseq {
                    journal.modseq(m)?;
                }
                journal.sync()
            }
        })
        .collect()
}

/// Changed flags on their way into a folder's journal, written every [`PENDING`] so
/// memory stays bounded; the first write failure is kept for the end.
struct Update {
    journal: Journal,
    pending: Vec<(u32, Vec<String>)>,
    failure: Option<Error>,
}

impl Update {
    fn new(journal: Journal) -> Update {
        Update { journal, pending: Vec::new(), failure: None }
    }

    fn add(&mut self, uid: u32, flags: Vec<String>) {
        if self.failure.is_some() {
            return;
        }
        self.pending.push((uid, flags));
        if self.pending.len() >= PENDING {
            self.failure = self.journal.flags(&self.pending).err();
            self.pending.clear();
        }
    }

    /// Writes what is left; the journal, for what comes after the flags.
    fn finish(mut self) -> Result<Journal> {
        if let Some(e) = self.failure {
            return Err(e);
        }
        self.journal.flags(&self.pending)?;
        Ok(self.journal)
    }
}

/// Asks the arrival times the journal lacks for archived messages: those whose line a
/// killed run never wrote, or archived before metadata was kept. Only with a full refresh
/// (which follows any killed run: its journal does not end with a mark).
fn learn_dates(
    session: &mut Session,
    place: &Place<'_>,
    folder: &Folder<'_>,
    index: &Index,
    journal: &mut Journal,
) -> Result<()> {
    let Some(dir) = place.records().folder_of(place.account_dir, folder.mailbox).map(|r| r.dir.clone()) else {
        return Ok(());
    };
    let dir = place.records().open_beneath(&std::path::Path::new(place.account_dir).join(dir))?;
    let mut lacking: Vec<u32> =
        super::folder::archived_uids(&dir)?.into_iter().filter(|&u| !index.has_date(u)).collect();
    if lacking.is_empty() {
        return Ok(());
    }
    lacking.sort_unstable();
    let mut dates: Vec<(u32, String)> = Vec::new();
    let mut failure: Option<Error> = None;
    let spec = session.spec().clone();
    session
        .internal_dates(&lacking, &mut |uid, date| {
            dates.push((uid, date));
            if dates.len() >= PENDING && failure.is_none() {
                failure = journal.dates(&dates).err();
                dates.clear();
            }
        })
        .map_err(|e| spec.imap_error("INTERNALDATE UID FETCH", &e))?;
    match failure {
        Some(e) => Err(e),
        None => journal.dates(&dates),
    }
}

/// The HIGHESTMODSEQ mark at the end of `mailbox`'s journal, if it ends with one.
pub fn mark(ctx: &Context<'_>, place: &Place<'_>, mailbox: &Mailbox) -> Option<u64> {
    let uidvalidity = place.records().folder_of(place.account_dir, mailbox)?.uidvalidity?;
    let journal: Journal = place.journal(ctx, mailbox, uidvalidity);
    crate::metadata::last_modseq(journal.path(), ctx.keys)
}
