//! Bringing the archived messages' flags up to date, at small cost: where the server offers
//! CONDSTORE (RFC 7162), a folder whose HIGHESTMODSEQ is the one recorded in its journal
//! is not opened at all, and one whose is not is asked only for the flags that changed
//! since (`CHANGEDSINCE`); elsewhere a folder opened by this run anyway is asked the flags
//! of all its messages in one streamed `UID FETCH 1:* (UID FLAGS)`, and only those that
//! differ from the journal's are written.
//!
//! That full refresh is also how a folder is checked: when its journal was changed since
//! its last end record (damage) or the server holds fewer messages than the archive has of
//! it. The server's UIDs then show which archived messages left it (recorded as gone, with
//! when they were last seen), and the journal, read whole, what it lacks of an archived
//! message (a record lost to damage or to a killed run): asked again, without fetching
//! the message.

use super::context::{Context, Place};
use crate::archive::metadata::{Gone, Index, Journal};
use crate::error::{Error, Result};
use crate::imap::FlagsAsk;
use crate::imap::{FolderStatus, Session};
use crate::mailbox_name::Mailbox;

/// Changed flags written per journal line at most, so memory stays bounded however
/// many changed.
const PENDING: usize = 1000;

/// What the run knows of a folder before its flags are refreshed.
pub struct Folder<'a> {
    /// The mailbox.
    pub mailbox: &'a Mailbox,
    /// Its state from LIST-STATUS or STATUS.
    pub status: Option<FolderStatus>,
    /// The HIGHESTMODSEQ the journal recorded before this run (when it is intact).
    pub mark: Option<u64>,
    /// Whether this run opened it (new mail, or a first or repeated full pass).
    pub opened: bool,
    /// The journal must be read whole: it was changed since its last end record (damage?),
    /// or has none, or the server holds fewer messages than the archive has of it (some
    /// left the server). The flags are then asked of every message.
    pub check: bool,
    /// Its messages that left the server, as the journal's end says (when intact).
    pub gone: Option<u64>,
    /// Archive files in its directory, when this run counted them.
    pub files: Option<usize>,
    /// When the last run before this one wrote its journal (Unix time; 0 when unknown):
    /// what was archived then was on the server then.
    pub last_run: i64,
}

/// What a full refresh found.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Archived messages that left the server since the last check.
    pub left: usize,
    /// Its archived messages no longer on the server, in all.
    pub only_in_archive: Option<u64>,
    /// Damaged journal records left out (their messages' metadata was asked again).
    pub damaged: usize,
}

/// Whether `folder`'s flags need asking: with CONDSTORE when its HIGHESTMODSEQ moved (or
/// was never recorded), without it when the folder was opened by this run anyway; and
/// whenever its journal must be checked.
pub fn needed(folder: &Folder<'_>, condstore: bool) -> bool {
    folder.check
        || if condstore {
            folder.status.and_then(|s| s.highestmodseq).is_none()
                || folder.status.and_then(|s| s.highestmodseq) != folder.mark
        } else {
            folder.opened
        }
}

/// Refreshes the flags of `folder`'s archived messages in its journal. A folder without a
/// record of its UIDVALIDITY (never backed up) is left alone. With a mark and CONDSTORE
/// only the changes are asked; otherwise every message's flags, which also shows the
/// archived messages that left the server, and the journal is read whole: what it lacks of
/// an archived message (a record lost to damage or to a killed run, or a message archived
/// before metadata was kept) is asked again, and a damaged journal is rewritten without
/// its damaged records.
pub fn refresh(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    folder: &Folder<'_>,
    condstore: bool,
) -> Result<Refreshed> {
    let Some(uidvalidity) = place.records().folder_of(place.account_dir, folder.mailbox).and_then(|r| r.uidvalidity)
    else {
        return Ok(Refreshed::default());
    };
    let since = if condstore && !folder.check { folder.mark } else { None };
    let mut update = Update::new(place.journal(ctx, folder.mailbox, uidvalidity));
    let spec = session.spec().clone();
    if let Some(mark) = since {
        // With CHANGEDSINCE only changed flags come: they are written as they are.
        let ask = FlagsAsk { wire: &folder.mailbox.wire, uidvalidity, changed_since: Some(mark) };
        let mut outcomes = session
            .flags(&[ask], condstore, &mut |_, uid, flags| update.add(uid, flags))
            .map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
        let examined = outcomes.remove(0).map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
        if examined.uid_validity != Some(uidvalidity) {
            return Ok(Refreshed::default());
        }
        let mut journal = update.finish()?;
        if let Some(m) = examined.highest_modseq {
            journal.modseq(m)?;
        }
        journal.sync()?;
        return Ok(Refreshed::default());
    }
    // Every message's flags come, and are compared with what the journal has; only the
    // archived messages' count.
    let files = folder_uids(place, folder.mailbox)?;
    let index = match update.journal.path().is_file() {
        true => Some(Index::load(update.journal.path(), ctx.keys, false)?),
        false => None,
    };
    let mut on_server = UidRanges::default();
    let ask = FlagsAsk { wire: &folder.mailbox.wire, uidvalidity, changed_since: None };
    let mut outcomes = session
        .flags(&[ask], condstore, &mut |_, uid, flags| {
            on_server.push(uid);
            if files.binary_search(&uid).is_ok()
                && index.as_ref().and_then(|i| i.flags_of(uid)).as_deref() != Some(&flags[..])
            {
                update.add(uid, flags);
            }
        })
        .map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
    let examined = outcomes.remove(0).map_err(|e| spec.imap_error("flags UID FETCH", &e))?;
    if examined.uid_validity != Some(uidvalidity) {
        // Recreated meanwhile: the next backup moves the old archive aside.
        return Ok(Refreshed::default());
    }
    let mut journal = update.finish()?;
    on_server.normalize();
    // An answer that left messages out (a server that does not answer FLAGS for all)
    // proves nothing gone.
    let complete = on_server.len() >= u64::from(examined.exists);
    let found = compare(
        index.as_ref(),
        &files,
        complete.then_some(&on_server),
        examined.uid_next,
        folder.last_run,
        &mut journal,
    )?;
    learn(session, &found, &mut journal)?;
    journal.set_gone(found.gone);
    journal.checked(found.damaged > 0);
    if let (true, Some(m)) = (condstore, examined.highest_modseq) {
        journal.modseq(m)?;
    }
    journal.sync()?;
    Ok(Refreshed { left: found.left, only_in_archive: Some(found.gone), damaged: found.damaged })
}

/// What the journal read whole, the folder's files and the server's UIDs say together.
struct Found {
    /// Archived messages whose arrival time is not known.
    lacking_dates: Vec<u32>,
    /// Archived messages the journal has no record of (lost, or from before metadata).
    lacking_records: Vec<u32>,
    /// Messages left the server in all, those found now included.
    gone: u64,
    left: usize,
    damaged: usize,
}

/// Goes through the journal and the folder's files in UID order: archived messages no
/// longer on the server are recorded as gone (in pieces, as found), those whose date or
/// record is lacking are listed.
fn compare(
    index: Option<&Index>,
    files: &[u32],
    on_server: Option<&UidRanges>,
    uid_next: Option<u32>,
    last_seen: i64,
    journal: &mut Journal,
) -> Result<Found> {
    let mut found = Found { lacking_dates: Vec::new(), lacking_records: Vec::new(), gone: 0, left: 0, damaged: 0 };
    let mut entries = index.map(Index::entries);
    let mut next_entry = entries.as_mut().and_then(Iterator::next);
    let mut files = files.iter().copied().peekable();
    let noticed = crate::archive::metadata::now();
    let mut gone: Vec<(u32, Gone)> = Vec::new();
    loop {
        let uid = match (next_entry.as_ref().map(|e| e.0), files.peek().copied()) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        let meta = match &next_entry {
            Some((u, _)) if *u == uid => {
                let m = next_entry.take().map(|e| e.1);
                next_entry = entries.as_mut().and_then(Iterator::next);
                m
            }
            _ => None,
        };
        let has_file = files.next_if_eq(&uid).is_some();
        if meta.as_ref().is_some_and(|m| m.gone.is_some()) {
            found.gone += 1;
            continue;
        }
        if !has_file && !meta.as_ref().is_some_and(|m| m.archived) {
            continue;
        }
        // A message newer than the folder's state was not there to be seen.
        if on_server.is_some_and(|s| !s.contains(uid)) && uid_next.is_none_or(|n| uid < n) {
            let archived = meta.as_ref().and_then(|m| m.archived_at).unwrap_or(0);
            gone.push((uid, Gone { last_seen: last_seen.max(archived), noticed }));
            found.gone += 1;
            found.left += 1;
            if gone.len() >= PENDING {
                journal.gone(&gone)?;
                gone.clear();
            }
            continue;
        }
        if has_file {
            if meta.as_ref().is_none_or(|m| m.arrived.is_none()) {
                found.lacking_dates.push(uid);
            }
            if meta.as_ref().is_none_or(|m| !m.archived) {
                found.lacking_records.push(uid);
            }
        }
    }
    journal.gone(&gone)?;
    found.damaged = entries.as_ref().map_or(0, |c| c.damage().len());
    Ok(found)
}

/// The UIDs of the folder's archive files, ascending.
fn folder_uids(place: &Place<'_>, mailbox: &Mailbox) -> Result<Vec<u32>> {
    let Some(dir) = place.records().folder_of(place.account_dir, mailbox).map(|r| r.dir.clone()) else {
        return Ok(Vec::new());
    };
    let dir = match place.records().open_beneath(&std::path::Path::new(place.account_dir).join(dir)) {
        Ok(d) => d,
        Err(_) => return Ok(Vec::new()),
    };
    let mut uids: Vec<u32> = super::context::archived_uids(&dir)?.into_iter().collect();
    uids.sort_unstable();
    Ok(uids)
}

/// Asks the server what the journal lacks of archived messages: arrival times, and the
/// sizes of those without a record.
fn learn(session: &mut Session, found: &Found, journal: &mut Journal) -> Result<()> {
    let spec = session.spec().clone();
    if !found.lacking_dates.is_empty() {
        let mut dates: Vec<(u32, String)> = Vec::new();
        let mut failure: Option<Error> = None;
        session
            .internal_dates(&found.lacking_dates, &mut |uid, date| {
                dates.push((uid, date));
                if dates.len() >= PENDING && failure.is_none() {
                    failure = journal.dates(&dates).err();
                    dates.clear();
                }
            })
            .map_err(|e| spec.imap_error("INTERNALDATE UID FETCH", &e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        journal.dates(&dates)?;
    }
    for chunk in found.lacking_records.chunks(PENDING * 10) {
        let sizes = session.sizes(chunk).map_err(|e| spec.imap_error("RFC822.SIZE UID FETCH", &e))?;
        let sizes: Vec<(u32, u64)> = sizes.into_iter().map(|(u, s)| (u, u64::from(s))).collect();
        journal.sizes(&sizes)?;
    }
    Ok(())
}

/// A set of UIDs as ranges: a folder's UIDs are mostly consecutive, so this stays small.
#[derive(Default)]
struct UidRanges {
    ranges: Vec<(u32, u32)>,
}

impl UidRanges {
    fn push(&mut self, uid: u32) {
        match self.ranges.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(uid) => last.1 = uid,
            Some(last) if (last.0..=last.1).contains(&uid) => {}
            _ => self.ranges.push((uid, uid)),
        }
    }

    /// Sorts and merges (answers may come in any order).
    fn normalize(&mut self) {
        self.ranges.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(self.ranges.len());
        for &(a, b) in &self.ranges {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        self.ranges = out;
    }

    /// How many UIDs.
    fn len(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    fn contains(&self, uid: u32) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < uid);
        self.ranges.get(i).is_some_and(|r| r.0 <= uid)
    }
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

/// The end of `mailbox`'s journal: its mark, and whether it is intact (see
/// [`crate::archive::metadata::summary`]); `None` for a folder never backed up.
pub fn summary(ctx: &Context<'_>, place: &Place<'_>, mailbox: &Mailbox) -> Option<crate::archive::metadata::Summary> {
    let uidvalidity = place.records().folder_of(place.account_dir, mailbox)?.uidvalidity?;
    let journal: Journal = place.journal(ctx, mailbox, uidvalidity);
    journal.path().is_file().then(|| crate::archive::metadata::summary(journal.path(), ctx.keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges() {
        let mut r = UidRanges::default();
        for u in [1, 2, 3, 7, 8, 5, 2, 20] {
            r.push(u);
        }
        r.normalize();
        assert_eq!(r.ranges, [(1, 3), (5, 5), (7, 8), (20, 20)]);
        let inside: Vec<u32> = (0..22).filter(|&u| r.contains(u)).collect();
        assert_eq!(inside, [1, 2, 3, 5, 7, 8, 20]);
        assert_eq!(r.len(), 7);
    }
}
