//! The everyday run: folders that got new mail since their last complete backup are
//! fetched together. For every such folder one EXAMINE and one `UID FETCH UIDNEXT:*` of the
//! UID, the size and the first budget's worth of each new message go out at once, so all
//! the new mail of an account costs one round trip instead of several per folder. A message
//! bigger than the budget, a folder whose UIDVALIDITY changed, a refusal or a lost
//! connection leave the folder to the ordinary pass ([`super::folder::backup`]), which
//! picks up where this stopped.

use std::collections::HashSet;

use super::context::{archived_uids, metadata_lost, sync_journal, tally, writer_for, Context, FolderReport, Place};
use super::event::Event;
use super::writer::{MessageWriter, Stamp};
use crate::error::{Error, Result};
use crate::imap::{NewMail, Session};
use crate::mailbox_name::Mailbox;

/// A folder with new mail: the mailbox, its recorded UIDVALIDITY and UIDNEXT.
pub struct Changed<'a> {
    /// The mailbox.
    pub mailbox: &'a Mailbox,
    /// UIDVALIDITY of the archive.
    pub uidvalidity: u32,
    /// Every message below this UID is archived.
    pub from: u32,
}

/// What became of one folder.
pub enum Outcome {
    /// All its new mail is archived.
    Complete(FolderReport),
    /// The ordinary pass must finish it; this much is stored already.
    Unfinished(FolderReport),
}

/// The folder being filled.
struct Open {
    index: usize,
    writer: MessageWriter,
    journal: Option<crate::archive::metadata::Journal>,
    report: FolderReport,
    archived: HashSet<u32>,
    uidnext: Option<u32>,
    /// Something is left for the ordinary pass.
    unfinished: bool,
    /// The journal was told a run began committing.
    begun: bool,
}

/// Fetches the new mail of `folders` together; returns what became of each. A lost
/// connection is recorded with the session (back-off and limit) before returning.
pub fn fetch(
    ctx: &Context<'_>,
    session: &mut Session,
    place: &Place<'_>,
    folders: &[Changed<'_>],
) -> Result<Vec<Outcome>> {
    let head = ctx.account.buffer_size;
    let jobs: Vec<(String, u32)> = folders.iter().map(|f| (f.mailbox.wire.clone(), f.from)).collect();
    let mut results: Vec<Option<Outcome>> = folders.iter().map(|_| None).collect();
    let mut open: Option<Open> = None;
    let mut failure: Option<Error> = None;
    let close = |open: Open, place: &Place<'_>, results: &mut Vec<_>, refused: bool| -> Result<()> {
        let Open { index, writer, mut journal, mut report, uidnext, unfinished, .. } = open;
        let finished = writer.finish();
        ctx.progress_cleared();
        tally(ctx, &mut report, &mut journal, finished?);
        sync_journal(ctx, &report, place, &mut journal);
        let complete = !unfinished && !refused && report.failed == 0;
        if let (true, Some(uidnext)) = (complete, uidnext) {
            place.records().set_complete(place.account_dir, folders[index].mailbox, uidnext)?;
        }
        results[index] = Some(if complete { Outcome::Complete(report) } else { Outcome::Unfinished(report) });
        Ok(())
    };
    let outcome = session.new_mail(&jobs, head, &mut |event| {
        let step = (|| -> Result<()> {
            match event {
                NewMail::Opened(index, Ok(examined)) if examined.uid_validity == Some(folders[index].uidvalidity) => {
                    let folder = &folders[index];
                    let opened = place.records().open_folder(place.account_dir, folder.mailbox, folder.uidvalidity)?;
                    let mut report = FolderReport::new(&folder.mailbox.shown());
                    ctx.progress_begun(folder.mailbox, &report);
                    let archived = archived_uids(&opened.dir)?;
                    report.existing = archived.len();
                    // New mail's size is learnt as it comes.
                    let writer = writer_for(ctx, place, &opened, None)?;
                    let journal = Some(place.journal(ctx, folder.mailbox, folder.uidvalidity));
                    open = Some(Open {
                        index,
                        writer,
                        journal,
                        report,
                        archived,
                        uidnext: ctx.uidnext(folder.mailbox, &examined),
                        unfinished: false,
                        begun: false,
                    });
                }
                // A changed UIDVALIDITY or a refusal: the ordinary pass deals with it.
                NewMail::Opened(index, _) => {
                    results[index] = Some(Outcome::Unfinished(FolderReport::new(&folders[index].mailbox.shown())));
                }
                NewMail::Message(index, f) => {
                    let Some(o) = open.as_mut().filter(|o| o.index == index) else { return Ok(()) };
                    let stamp = Stamp::of(&f);
                    let (Some(uid), Some(body)) = (f.uid, f.body) else { return Ok(()) };
                    // `N:*` also names the highest message when nothing is newer than N.
                    if uid < folders[index].from || o.archived.contains(&uid) {
                        return Ok(());
                    }
                    if f.size != Some(body.len() as u32) {
                        // Bigger than one piece (or of unknown size): fetched alone later.
                        o.unfinished = true;
                        return Ok(());
                    }
                    if !o.begun {
                        o.begun = true;
                        if let Some(Err(e)) = o.journal.as_mut().map(crate::archive::metadata::Journal::begin) {
                            metadata_lost(ctx, &o.report, &mut o.journal, &e);
                        }
                    }
                    o.writer.begin(uid)?;
                    o.writer.data(&body)?;
                    ctx.progress_tick(o.writer.end(stamp)?);
                    // A server that sends the same message again gets it ignored.
                    o.archived.insert(uid);
                    let ready = o.writer.ready()?;
                    tally(ctx, &mut o.report, &mut o.journal, ready);
                }
                NewMail::Done(index, refused) => {
                    if let Some(o) = open.take().filter(|o| o.index == index) {
                        close(o, place, &mut results, refused.is_some())?;
                    }
                }
            }
            Ok(())
        })();
        match step {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    });
    // What a broken connection or a failure left half done: finished messages are kept.
    if let Some(o) = open.take() {
        close(o, place, &mut results, true)?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    match outcome {
        // Stopped by a signal: no reconnect, the folders keep what they have.
        Err(_) if crate::interrupt::requested() => {}
        Err(e) => {
            let notice = session.lost(&e.describe(session.spec().timeout))?;
            ctx.sink.event(Event::Reconnected { account: ctx.account, notice: &notice });
        }
        Ok(_) => {}
    }
    Ok(results
        .into_iter()
        .zip(folders)
        .map(|(r, f)| r.unwrap_or_else(|| Outcome::Unfinished(FolderReport::new(&f.mailbox.shown()))))
        .collect())
}
