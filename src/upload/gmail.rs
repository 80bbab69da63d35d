//! Restore of a Gmail archive to Gmail (`-r USERDIR --to-imap` where the target offers
//! `X-GM-EXT-1`): All Mail's messages are appended once, into the target's All Mail (found
//! by `\All`, whatever its language), and each gets the labels its metadata recorded
//! (`UID STORE +X-GM-LABELS`, which creates a label where needed). The label folders,
//! whose files are links to All Mail's, are not uploaded again: their messages are those
//! of All Mail with that label. Trash and Spam, outside All Mail, go as ordinary folders.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;

use super::event::{Event, Sink};
use super::Destination;
use crate::archive;
use crate::archive::metadata::Index;
use crate::imap::Session;
use crate::keys::Keys;
use crate::mailbox_name::Mailbox;

/// UIDs per `UID STORE` command.
const UIDS_PER_STORE: usize = 1000;
/// Records looked at to tell a Gmail All Mail journal (labels recorded) from another.
const RECORDS_LOOKED_AT: usize = 50;

/// How a Gmail archive goes to a Gmail target.
#[derive(Debug)]
pub struct Plan {
    /// The destination that is All Mail.
    pub all_mail: usize,
    /// The target's All Mail.
    pub target: Mailbox,
    /// The label folders: their messages are All Mail's, labelled, not uploaded again.
    pub labels_only: HashSet<usize>,
}

/// The plan, when the target is a Gmail and the archive has a Gmail All Mail (a folder
/// whose metadata records labels).
pub fn plan(session: &mut Session, dests: &[Destination], keys: Option<&Keys>) -> Option<Plan> {
    if !session.has("X-GM-EXT-1").unwrap_or(false) {
        return None;
    }
    let all_mail = dests.iter().position(|d| records_labels(d, keys))?;
    let listed = session.list(false).ok()?;
    let all = listed.entries.iter().find(|e| e.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\All")))?;
    let target = Mailbox::from_wire(&all.wire);
    let inodes = inodes_of(&dests[all_mail])?;
    let labels_only = (0..dests.len())
        .filter(|&i| i != all_mail)
        .filter(|&i| inodes_of(&dests[i]).is_some_and(|own| !own.is_empty() && own.is_subset(&inodes)))
        .collect();
    Some(Plan { all_mail, target, labels_only })
}

/// Whether the folder's metadata records Gmail labels (its first records say).
fn records_labels(dest: &Destination, keys: Option<&Keys>) -> bool {
    let Some(index) = dest.journal.as_deref().and_then(|p| Index::load(p, keys, false).ok()) else { return false };
    let mut cursor = index.entries();
    (0..RECORDS_LOOKED_AT).map_while(|_| cursor.next_fields()).any(|(_, f)| f.labels.is_some() || f.gmail.is_some())
}

/// The (device, inode) of each archive file of the folder.
fn inodes_of(dest: &Destination) -> Option<HashSet<(u64, u64)>> {
    let files = archive::list_folder(&dest.dir).ok()?;
    files.iter().map(|f| std::fs::metadata(&f.path).ok().map(|m| (m.dev(), m.ino()))).collect()
}

/// Gives the messages this run appended to the target's All Mail (`appended`: archived
/// UID, target UID) the labels the archive recorded for them. Returns how many messages
/// got labels.
pub fn set_labels(
    session: &mut Session,
    plan: &Plan,
    dest: &Destination,
    keys: Option<&Keys>,
    appended: &[(u32, u32)],
    sink: &dyn Sink,
) -> usize {
    let Some(index) = dest.journal.as_deref().and_then(|p| Index::load(p, keys, false).ok()) else { return 0 };
    let mut appended = appended.to_vec();
    // Ascending: the index reads its journal forwards.
    appended.sort_unstable();
    let mut by_labels: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
    for (source, target) in appended {
        let Some(labels) = index.lookup(source).and_then(|m| m.labels).filter(|l| !l.is_empty()) else { continue };
        by_labels.entry(labels).or_default().push(target);
    }
    let mut batches = Vec::new();
    let mut count = 0;
    for (labels, mut uids) in by_labels {
        uids.sort_unstable();
        count += uids.len();
        batches.extend(uids.chunks(UIDS_PER_STORE).map(|c| (c.to_vec(), labels.clone())));
    }
    if batches.is_empty() {
        return 0;
    }
    match session.add_labels(&plan.target.wire, &batches) {
        Ok(()) => count,
        Err(e) => {
            let error = session.spec().imap_error("UID STORE", &e);
            sink.event(Event::LabelsNotSet { folder: &plan.target.shown(), error: &error });
            0
        }
    }
}
