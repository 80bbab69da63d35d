//! Gmail mode: on a server that offers `X-GM-EXT-1`, one message shows in All Mail and in
//! a folder for each of its labels (INBOX, Sent Mail, Starred, user labels). Bodies come
//! from All Mail only (found by its `\All` attribute, whatever the language); every other
//! folder is still archived in the original's layout, by its own UIDs, but its files are
//! hard links to All Mail's (a copy where the file system has none), matched through
//! `X-GM-MSGID` with one metadata-only `UID FETCH` per folder. Trash and Spam are outside
//! All Mail: they are archived as ordinary folders. Each All Mail message's labels,
//! `X-GM-MSGID` and `X-GM-THRID` go to its metadata record (sealed under `-e`).
//!
//! Gmail's limits: about 2.5 GB of downloads a day over IMAP, then every fetch is refused
//! (`[OVERQUOTA] Account exceeded command or bandwidth limits`), and 15 connections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::context::{self, Context, FolderReport, Place};
use super::event::Event;
use super::folder;
use crate::archive::metadata::{self, Entry, Index, Journal};
use crate::archive::ArchiveFile;
use crate::error::{Error, IoContext, Result};
use crate::imap::wire::ListEntry;
use crate::imap::Session;
use crate::mailbox_name::Mailbox;
use crate::os::dir::Dir;

/// Gmail's limit of simultaneous IMAP connections per account.
pub const MAX_CONNECTIONS: usize = 15;

/// Records written to a journal at a time.
const ENTRIES_PER_WRITE: usize = 1000;

/// Which folders play which part, by the special-use attributes of their LIST entries.
#[derive(Debug)]
pub struct Plan {
    /// All Mail (`\All`): where bodies come from.
    pub all_mail: Mailbox,
    /// Trash and Spam (`\Trash`, `\Junk`): outside All Mail, archived as ordinary folders.
    pub outside: Vec<String>,
}

impl Plan {
    /// The plan for the folders to back up, when All Mail is among them.
    pub fn of(entries: &[ListEntry], folders: &[Mailbox]) -> Option<Plan> {
        let has = |e: &ListEntry, attr: &str| e.attributes.iter().any(|a| a.eq_ignore_ascii_case(attr));
        let all = entries.iter().find(|e| has(e, "\\All"))?;
        let all_mail = folders.iter().find(|m| m.wire == all.wire)?.clone();
        let outside =
            entries.iter().filter(|e| has(e, "\\Trash") || has(e, "\\Junk")).map(|e| e.wire.clone()).collect();
        Some(Plan { all_mail, outside })
    }

    /// Whether `mailbox` gets its files from All Mail.
    pub fn links(&self, mailbox: &Mailbox) -> bool {
        *mailbox != self.all_mail && !self.outside.contains(&mailbox.wire)
    }
}

/// All Mail's archive as the label folders need it: its files by UID, its messages' UIDs
/// by `X-GM-MSGID`, and its metadata.
pub struct AllMail {
    dir: Dir,
    files: HashMap<u32, String>,
    by_msgid: HashMap<u64, u32>,
    index: Option<Index>,
}

/// Asks All Mail's labels and ids (metadata only), records those that changed in its
/// journal, and returns what linking the other folders needs.
pub fn all_mail(ctx: &Context<'_>, session: &mut Session, place: &Place<'_>, mailbox: &Mailbox) -> Result<AllMail> {
    let spec = session.spec().clone();
    let (examined, ids) = session.gmail_ids(&mailbox.wire, true).map_err(|e| spec.imap_error("UID FETCH", &e))?;
    let (dir, uidvalidity) = {
        let records = place.records();
        let record = records
            .folder_of(place.account_dir, mailbox)
            .ok_or_else(|| Error::runtime("All Mail has no archive directory yet"))?;
        let dir = records.open_beneath(&Path::new(place.account_dir).join(&record.dir))?;
        (dir, record.uidvalidity)
    };
    let mut files = HashMap::new();
    dir.for_each_name(|name| {
        let name = name.to_string_lossy();
        if let Some(uid) = ArchiveFile::from_path(PathBuf::from(name.as_ref())).and_then(|f| f.uid) {
            files.insert(uid, name.into_owned());
        }
    })
    .at(dir.path())?;
    let same = uidvalidity.is_some() && examined.uid_validity == uidvalidity;
    let root = place.records().root().to_path_buf();
    let index = match uidvalidity.filter(|_| same) {
        Some(v) => {
            let path = metadata::journal_path(&root, place.account_dir, &mailbox.wire, v);
            if path.is_file() {
                Some(Index::load(&path, ctx.keys, true)?)
            } else {
                None
            }
        }
        None => None,
    };
    let mut by_msgid = HashMap::with_capacity(ids.len());
    let mut changed = Vec::new();
    for g in ids {
        if !same || !files.contains_key(&g.uid) {
            continue;
        }
        by_msgid.insert(g.msgid, g.uid);
        let labels = g.labels.unwrap_or_default();
        let known = index.as_ref().and_then(|i| i.lookup(g.uid));
        if known.is_none_or(|m| m.labels.as_ref() != Some(&labels) || m.gmail != Some((g.msgid, g.thrid))) {
            changed.push((g.uid, labels, (g.msgid, g.thrid)));
        }
    }
    if let (true, Some(v)) = (!changed.is_empty(), uidvalidity) {
        let mut journal = place.journal(ctx, mailbox, v);
        let written =
            changed.chunks(ENTRIES_PER_WRITE).try_for_each(|c| journal.gmail(c)).and_then(|()| journal.sync());
        match written {
            Ok(()) => ctx.sink.event(Event::LabelsRecorded {
                account: ctx.account,
                folder: &mailbox.shown(),
                count: changed.len(),
            }),
            Err(error) => {
                ctx.sink.event(Event::LabelsNotKept { account: ctx.account, folder: &mailbox.shown(), error: &error })
            }
        }
    }
    Ok(AllMail { dir, files, by_msgid, index })
}

/// Archives a label folder from All Mail's files: its UIDs and `X-GM-MSGID`s asked (no
/// body), each message not archived yet linked from All Mail's file under its own UID.
/// Returns the folder's report and whether every message was found in All Mail (then the
/// folder is complete up to its UIDNEXT; otherwise the ordinary pass fetches the rest).
pub fn link_folder(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    mailbox: &Mailbox,
    all: &AllMail,
) -> Result<(FolderReport, bool)> {
    let mut report = FolderReport::new(&mailbox.shown());
    let spec = session.spec().clone();
    let (examined, ids) = session.gmail_ids(&mailbox.wire, false).map_err(|e| spec.imap_error("UID FETCH", &e))?;
    let uidvalidity =
        examined.uid_validity.ok_or_else(|| Error::runtime("the server reported no UIDVALIDITY for the folder"))?;
    let opened = place.records().open_folder(place.account_dir, mailbox, uidvalidity)?;
    let archived = context::archived_uids(&opened.dir)?;
    let mut journal: Option<Journal> = Some(place.journal(ctx, mailbox, uidvalidity));
    let tmp = place.records().tmp()?;
    let mut missing = 0usize;
    // Ascending by All Mail UID: the index reads its journal forwards.
    let mut work: Vec<(u32, u32, Vec<String>)> = Vec::new();
    for g in ids {
        if archived.contains(&g.uid) {
            report.existing += 1;
            continue;
        }
        match all.by_msgid.get(&g.msgid) {
            Some(&source) => work.push((source, g.uid, g.flags)),
            None => missing += 1,
        }
    }
    work.sort_unstable_by_key(|w| w.0);
    for chunk in work.chunks(ENTRIES_PER_WRITE) {
        if crate::interrupt::requested() {
            report.errors.push("interrupted".into());
            missing += 1;
            break;
        }
        let mut entries = Vec::new();
        for (source, uid, flags) in chunk {
            let Some(name) = all.files.get(source) else {
                missing += 1;
                continue;
            };
            let Some(file) = ArchiveFile::from_path(PathBuf::from(name)) else { continue };
            let to_name = crate::archive::file_name(*uid, file.form);
            super::rebase::place_file(&all.dir, name, &opened.dir, &to_name, &tmp)
                .at(&opened.dir.path().join(&to_name))?;
            report.new += 1;
            report.linked += 1;
            let meta = all.index.as_ref().and_then(|i| i.lookup(*source));
            // Without All Mail's record the file stays unrecorded: a flag refresh asks again.
            if let Some((m, size, digest)) = meta.and_then(|m| Some((m.size?, m.digest?)).map(|(s, d)| (m, s, d))) {
                entries.push(Entry {
                    uid: *uid,
                    size,
                    digest,
                    internal_date: m.internal_date,
                    flags: flags.clone(),
                    form: Some(file.form),
                    headers: m.headers,
                    labels: None,
                });
            }
        }
        // The names are durable before a journal line names them.
        opened.dir.sync().at(opened.dir.path())?;
        if let (false, Some(j)) = (entries.is_empty(), journal.as_mut()) {
            if let Err(e) = j.messages(&entries) {
                context::metadata_lost(ctx, &report, &mut journal, &e);
            }
        }
    }
    context::sync_journal(ctx, &report, place, &mut journal);
    let complete = missing == 0;
    if let (true, Some(uidnext), None) = (complete, ctx.uidnext(mailbox, &examined), ctx.account.since) {
        place.records().set_complete(place.account_dir, mailbox, uidnext)?;
    }
    Ok((report, complete))
}

/// What the Gmail step did with the folders of a backup (indices into its folder list).
#[derive(Debug, Default)]
pub struct Outcome {
    /// Folders done (their reports handed over) or left below for the ordinary pass.
    pub handled: Vec<bool>,
    /// Folders found unchanged without being opened, with their archived files.
    pub unopened: Vec<(usize, usize)>,
    /// Folders with messages not found in All Mail: fetched by the ordinary pass, after
    /// what was linked.
    pub ordinary: Vec<(usize, Option<FolderReport>)>,
    /// The download limit stopped All Mail.
    pub capped: bool,
}

/// The Gmail step of a backup: All Mail first (the bodies), then its labels recorded, then
/// every folder that gets its files from it. Trash, Spam and folders not in `plan` are left
/// to the ordinary pass. `done` takes each finished folder's report.
pub fn run(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    plan: &Plan,
    folders: &[Mailbox],
    done: &dyn Fn(FolderReport),
) -> Result<Outcome> {
    let mut out = Outcome { handled: vec![false; folders.len()], ..Outcome::default() };
    let status = |m: &Mailbox| ctx.statuses.get(&m.wire).copied();
    // Read before this run writes: the HIGHESTMODSEQ All Mail's labels and flags are
    // recorded up to. A label change moves it (Gmail gives the message a new MODSEQ).
    let marked = super::refresh::summary(ctx, place, &plan.all_mail).filter(|s| s.intact).and_then(|s| s.mark?.modseq);
    let mut quiet = status(&plan.all_mail).and_then(|s| s.highestmodseq).is_some_and(|m| Some(m) == marked);
    if let Some(i) = folders.iter().position(|m| *m == plan.all_mail) {
        out.handled[i] = true;
        match folder::unchanged_report(place, &plan.all_mail, status(&plan.all_mail))? {
            Some(r) => {
                out.unopened.push((i, r.existing));
                done(r);
            }
            None => {
                quiet = false;
                let r = folder::backup(ctx, session, place, &plan.all_mail, None)?;
                out.capped = r.capped;
                done(r);
            }
        }
    }
    // Nothing new in All Mail, no label changed, every other folder as the last run left
    // it: nothing to ask (a nightly run of an unchanged mailbox costs no command more).
    for m in folders.iter().filter(|m| plan.links(m)) {
        quiet = quiet && folder::unchanged_report(place, m, status(m))?.is_some();
    }
    let all = match if quiet { Err(None) } else { all_mail(ctx, session, place, &plan.all_mail).map_err(Some) } {
        Ok(a) => Some(a),
        Err(None) => None,
        Err(Some(e)) => {
            let folder = &plan.all_mail.shown();
            ctx.sink.event(Event::LabelsNotAsked { account: ctx.account, folder, error: &e });
            None
        }
    };
    for (i, m) in folders.iter().enumerate() {
        if !plan.links(m) || crate::interrupt::requested() {
            continue;
        }
        out.handled[i] = true;
        if let Some(r) = folder::unchanged_report(place, m, status(m))? {
            out.unopened.push((i, r.existing));
            done(r);
            continue;
        }
        let Some(all) = &all else {
            out.ordinary.push((i, None));
            continue;
        };
        match link_folder(ctx, session, place, m, all) {
            Ok((r, true)) => done(r),
            Ok((r, false)) => out.ordinary.push((i, Some(r))),
            Err(e) if e.is_interrupted() => return Err(e),
            Err(e) => {
                ctx.sink.event(Event::NotLinked { account: ctx.account, folder: &m.shown(), error: &e });
                out.ordinary.push((i, None));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(wire: &str, attrs: &[&str]) -> ListEntry {
        ListEntry { attributes: attrs.iter().map(|a| a.to_string()).collect(), delimiter: Some('/'), wire: wire.into() }
    }

    #[test]
    fn all_mail_is_found_by_its_attribute_in_any_language() {
        let entries = [
            entry("INBOX", &["\\HasNoChildren"]),
            entry("[Google Mail]/Alle Nachrichten", &["\\all", "\\HasNoChildren"]),
            entry("[Google Mail]/Papierkorb", &["\\HasNoChildren", "\\Trash"]),
            entry("[Google Mail]/Spam", &["\\HasNoChildren", "\\Junk"]),
        ];
        let folders: Vec<Mailbox> = entries.iter().map(|e| Mailbox::from_wire(&e.wire)).collect();
        let plan = Plan::of(&entries, &folders).unwrap();
        assert_eq!(plan.all_mail.wire, "[Google Mail]/Alle Nachrichten");
        assert_eq!(plan.outside, ["[Google Mail]/Papierkorb", "[Google Mail]/Spam"]);
        assert!(plan.links(&folders[0]) && !plan.links(&folders[1]) && !plan.links(&folders[2]));
        // All Mail left out of the backup (an exclude, or -f): no Gmail mode.
        assert!(Plan::of(&entries, &folders[..1]).is_none());
        assert!(Plan::of(&entries[..1], &folders).is_none());
    }
}
