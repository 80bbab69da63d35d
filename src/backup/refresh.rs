//! Bringing the archived messages' flags up to date, at small cost: where the server offers
//! CONDSTORE (RFC 7162), a folder whose HIGHESTMODSEQ is the one recorded in its journal
//! is not opened at all, and one whose is not is asked only for the flags that changed
//! since (`CHANGEDSINCE`); elsewhere a folder opened by this run anyway is asked the flags
//! of all its messages in one streamed `UID FETCH 1:* (UID FLAGS)`, and only those that
//! differ from the journal's are written.

use super::folder::{Context, Place};
use crate::error::{Error, Result};
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
    let mut journal = place.journal(ctx, folder.mailbox, uidvalidity);
    // With CHANGEDSINCE only changed flags come: they are written as they are. Without it
    // every message's come, and are compared with what the journal has.
    let since = if condstore { folder.mark } else { None };
    let index = match since {
        Some(_) => None,
        None if journal.path().is_file() => Some(Index::load(journal.path(), ctx.keys, false)?),
        None => Some(Index::default()),
    };
    let mut pending: Vec<(u32, Vec<String>)> = Vec::new();
    let mut failure: Option<Error> = None;
    let spec = session.spec().clone();
    let examined = session
        .flags(&folder.mailbox.wire, uidvalidity, condstore, since, &mut |uid, flags| {
            if failure.is_some() || index.as_ref().and_then(|i| i.flags_of(uid)) == Some(&flags[..]) {
                return;
            }
            pending.push((uid, flags));
            if pending.len() >= PENDING {
                failure = journal.flags(&pending).err();
                pending.clear();
            }
        })
        .map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
    if let Some(e) = failure {
        return Err(e);
    }
    if examined.uid_validity != Some(uidvalidity) {
        // Recreated meanwhile: the next backup moves the old archive aside.
        return Ok(());
    }
    journal.flags(&pending)?;
    if let Some(index) = &index {
        learn_dates(session, place, folder, index, &mut journal)?;
    }
    if let (true, Some(m)) = (condstore, examined.highest_modseq) {
        journal.modseq(m)?;
    }
    journal.sync()
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
