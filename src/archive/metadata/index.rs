//! A folder's metadata in UID order, read in bounded memory whatever the journal's size.
//!
//! A journal is a sorted base (one record per message, written by a compaction) and a
//! tail of records appended since. A [`Cursor`] streams the base and merges into it the
//! tail's records, held in a window of UIDs that fits [`WINDOW_BYTES`]: a tail whose UIDs
//! do not fit is read again for each further window (a compaction keeps tails small, so
//! one pass is the rule). Readers go through their files in UID order, so a lookup is a
//! step forward; a lookup behind the last one starts a new cursor.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::reader::{Damage, Records, Source};
use super::record::{Fields, Record};
use super::{format_internal_date, MessageMeta};
use crate::error::Result;
use crate::keys::Keys;

/// Memory for the tail records of one window.
pub const WINDOW_BYTES: usize = 4 << 20;
/// Past the last UID.
const END: u64 = 1 << 32;

/// What the tail says of one UID in a window.
#[derive(Default)]
struct Slot {
    /// A message record replaced what the base knew.
    replaced: bool,
    fields: Fields,
}

impl Slot {
    /// Its memory, roughly (the map's share included).
    fn cost(&self) -> usize {
        std::mem::size_of::<(u32, Slot)>()
            + 32
            + self.fields.flags.as_ref().map_or(0, String::capacity)
            + self.fields.headers.as_ref().map_or(0, |h| std::mem::size_of_val(&**h) + h.heap_bytes())
            + self.fields.labels.as_ref().map_or(0, |l| l.iter().map(|s| 24 + s.capacity()).sum())
    }
}

/// The tail records of the UIDs `lo..hi`.
struct Window {
    hi: u64,
    map: BTreeMap<u32, Slot>,
}

/// The state of one UID in a [`Cursor`]: whether anything is known and what.
type State = Option<Fields>;

/// The messages of a journal in UID order (see the module's doc).
pub struct Cursor {
    src: Arc<Source>,
    digests: bool,
    budget: usize,
    base: Records,
    /// The next base message, read ahead.
    base_next: Option<(u32, Fields)>,
    base_last: Option<u32>,
    window: Option<Window>,
    /// Damage met so far (the tail's on its first pass only).
    damage: Vec<Damage>,
    tail_read: bool,
    /// Passes over the tail so far.
    passes: usize,
    /// The entry a lookup stopped at.
    peeked: Option<(u32, MessageMeta)>,
    /// The UID last looked up: lookups below it need a new cursor.
    sought: u32,
}

impl Cursor {
    fn new(src: Arc<Source>, digests: bool, budget: usize) -> Cursor {
        let base = src.base();
        let damage = src.layout.head_damaged.iter().cloned().collect();
        Cursor {
            src,
            digests,
            budget,
            base,
            base_next: None,
            base_last: None,
            window: None,
            damage,
            tail_read: false,
            passes: 0,
            peeked: None,
            sought: 0,
        }
    }

    /// Damage met so far.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Passes over the tail so far (one unless its UIDs did not fit a window).
    pub fn passes(&self) -> usize {
        self.passes
    }

    /// The next base message, in UID order; a base record out of order is damage.
    fn peek_base(&mut self) -> Option<u32> {
        while self.base_next.is_none() {
            match self.base.next_record()? {
                Ok((Record::Message { uid, fields }, line)) => {
                    if self.base_last.is_some_and(|last| uid <= last) {
                        self.damage.push(Damage {
                            line,
                            why: super::line::LineError::Damaged("a record out of order".into()),
                        });
                        continue;
                    }
                    self.base_last = Some(uid);
                    self.base_next = Some((uid, fields));
                }
                Ok(_) => {}
                Err(d) => self.damage.push(d),
            }
        }
        self.base_next.as_ref().map(|(u, _)| *u)
    }

    /// Reads the tail's records of the UIDs from `lo` on, as many as fit the budget.
    fn load_window(&mut self, lo: u64) {
        let first = !self.tail_read;
        let mut map: BTreeMap<u32, Slot> = BTreeMap::new();
        let (mut bytes, mut hi) = (0usize, END);
        let mut records = self.src.tail();
        while let Some(r) = records.next_record() {
            let (record, _) = match r {
                Ok(r) => r,
                Err(d) => {
                    if first {
                        self.damage.push(d);
                    }
                    continue;
                }
            };
            let (uid, replace, mut fields) = match record {
                Record::Message { uid, fields } => (uid, true, fields),
                Record::Update { uid, fields } => (uid, false, fields),
                _ => continue,
            };
            if u64::from(uid) < lo || u64::from(uid) >= hi {
                continue;
            }
            if !self.digests {
                fields.digest = None;
            }
            let slot = match map.entry(uid) {
                std::collections::btree_map::Entry::Occupied(e) => {
                    let slot = e.into_mut();
                    bytes = bytes.saturating_sub(slot.cost());
                    slot
                }
                std::collections::btree_map::Entry::Vacant(e) => e.insert(Slot::default()),
            };
            if replace {
                *slot = Slot { replaced: true, fields };
            } else {
                slot.fields.update(&fields);
            }
            bytes += slot.cost();
            while bytes > self.budget && map.len() > 1 {
                if let Some((k, s)) = map.pop_last() {
                    bytes = bytes.saturating_sub(s.cost());
                    hi = u64::from(k);
                }
            }
        }
        self.tail_read = true;
        self.passes += 1;
        self.window = Some(Window { hi, map });
    }

    /// The next message in UID order.
    fn next_entry(&mut self) -> Option<(u32, MessageMeta)> {
        if let Some(p) = self.peeked.take() {
            return Some(p);
        }
        self.next_fields().map(|(u, f)| (u, meta(f)))
    }

    /// The next message in UID order, as its records say it.
    pub fn next_fields(&mut self) -> Option<(u32, Fields)> {
        loop {
            if self.window.is_none() {
                self.load_window(0);
            }
            let b = self.peek_base();
            let window = self.window.as_mut()?;
            let b_in = b.filter(|&u| u64::from(u) < window.hi);
            let w = window.map.first_key_value().map(|(k, _)| *k);
            let uid = match (b_in, w) {
                (None, None) => {
                    if window.hi >= END {
                        return None;
                    }
                    let next = window.hi;
                    self.load_window(next);
                    continue;
                }
                (Some(x), None) | (None, Some(x)) => x,
                (Some(x), Some(y)) => x.min(y),
            };
            let mut state: State = None;
            if b_in == Some(uid) {
                state = self.base_next.take().map(|(_, mut f)| {
                    if !self.digests {
                        f.digest = None;
                    }
                    f
                });
            }
            if w == Some(uid) {
                if let Some((_, slot)) = window.map.pop_first() {
                    if slot.replaced {
                        state = Some(slot.fields);
                    } else {
                        state.get_or_insert_with(Fields::default).update(&slot.fields);
                    }
                }
            }
            if let Some(fields) = state {
                return Some((uid, fields));
            }
        }
    }

    /// What is known of `uid`, which is not below the UID of the last call.
    pub fn seek(&mut self, uid: u32) -> Option<MessageMeta> {
        self.sought = uid;
        loop {
            let (u, m) = self.next_entry()?;
            if u >= uid {
                let found = (u == uid).then(|| m.clone());
                self.peeked = Some((u, m));
                return found;
            }
        }
    }
}

impl Iterator for Cursor {
    type Item = (u32, MessageMeta);

    fn next(&mut self) -> Option<(u32, MessageMeta)> {
        self.next_entry()
    }
}

/// What a journal's fields say, as callers see it.
fn meta(f: Fields) -> MessageMeta {
    MessageMeta {
        flags_known: f.flags.is_some(),
        flags: f.flags.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        internal_date: f.date.map(|(t, z)| format_internal_date(t, z)),
        arrived: f.date.map(|(t, _)| t),
        size: f.size,
        digest: f.digest,
        form: f.form,
        gone: f.gone,
        archived: f.size.is_some(),
        archived_at: f.archived,
        headers: f.headers,
        labels: f.labels,
        gmail: f.gmail,
    }
}

/// A folder's metadata: lookups by UID in bounded memory.
pub struct Index {
    src: Arc<Source>,
    digests: bool,
    lookups: RefCell<Option<Cursor>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({})", self.src.path.display())
    }
}

impl Index {
    /// Opens the journal at `path` (keys when it is encrypted); `digests` keeps each
    /// message's digest too (for `--verify`). A journal that is not one, or encrypted
    /// without keys given, is an error; damaged records are not (see [`Index::damage`]).
    pub fn load(path: &Path, keys: Option<&Keys>, digests: bool) -> Result<Index> {
        Ok(Index::of_source(Arc::new(Source::open(path, keys)?), digests))
    }

    /// The index of an open journal.
    pub fn of_source(src: Arc<Source>, digests: bool) -> Index {
        Index { src, digests, lookups: RefCell::new(None) }
    }

    /// The metadata of a recorded folder (`root`'s records name its user directory,
    /// mailbox and UIDVALIDITY), if it has any: what an upload reads each message's flags
    /// and INTERNALDATE from.
    pub fn of_folder(
        root: &Path,
        folder: &crate::archive::layout::registry::FolderRecord,
        keys: Option<&Keys>,
    ) -> Result<Option<Index>> {
        let Some(uidvalidity) = folder.uidvalidity else { return Ok(None) };
        let path = super::journal_path(root, &folder.account, &folder.mailbox.wire, uidvalidity);
        if !path.is_file() {
            return Ok(None);
        }
        Index::load(&path, keys, false).map(Some)
    }

    /// Every message, in UID order (a cursor of its own).
    pub fn entries(&self) -> Cursor {
        self.entries_within(WINDOW_BYTES)
    }

    /// [`Index::entries`] with another window budget (tests).
    pub fn entries_within(&self, budget: usize) -> Cursor {
        Cursor::new(self.src.clone(), self.digests, budget)
    }

    /// What is known of `uid`. Fast when UIDs are asked in ascending order.
    pub fn lookup(&self, uid: u32) -> Option<MessageMeta> {
        let mut cursor = self.lookups.borrow_mut();
        if cursor.as_ref().is_none_or(|c| c.sought > uid) {
            *cursor = Some(self.entries());
        }
        cursor.as_mut()?.seek(uid)
    }

    /// Whether the arrival time of `uid` is known.
    pub fn has_date(&self, uid: u32) -> bool {
        self.lookup(uid).is_some_and(|m| m.arrived.is_some())
    }

    /// The flags known for `uid`, if any.
    pub fn flags_of(&self, uid: u32) -> Option<Vec<String>> {
        self.lookup(uid).filter(|m| m.flags_known).map(|m| m.flags)
    }

    /// Damage the lookups met so far (a head record, records they read).
    pub fn damage(&self) -> Vec<Damage> {
        match &*self.lookups.borrow() {
            Some(c) => c.damage().to_vec(),
            None => self.src.layout.head_damaged.iter().cloned().collect(),
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.src.path
    }

    /// The open journal.
    pub fn source(&self) -> &Arc<Source> {
        &self.src
    }
}
