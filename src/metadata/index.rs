//! A folder's metadata read into memory: one compact entry per UID, sorted.

use std::collections::HashMap;
use std::path::Path;

use super::journal::{read_journal, Line};
use super::{format_internal_date, journal_path, parse_internal_date, Entry, MessageMeta};
use crate::error::Result;
use crate::keys::Keys;
use crate::registry;

/// The size field of a flags line while the journal is read.
const FLAGS_ONLY: u32 = u32::MAX - 1;
/// The size field of a date line while the journal is read.
const DATE_ONLY: u32 = u32::MAX - 2;

/// One message in the index.
#[derive(Clone, Copy, Debug)]
struct Packed {
    uid: u32,
    /// Index into the flag sets; `u32::MAX` for none known.
    flags: u32,
    /// `u32::MAX` when unknown (a bigger message keeps no size here).
    size: u32,
    zone: i16,
    /// Unix time of arrival; `i64::MIN` when unknown.
    arrived: i64,
}

/// A folder's metadata, read whole into a compact index sorted by UID.
#[derive(Debug, Default)]
pub struct Index {
    messages: Vec<Packed>,
    /// Instead of `messages` when digests were asked for (all zero where unknown): one
    /// vector either way, so loading never holds two copies.
    digested: Vec<(Packed, [u8; 32])>,
    flag_sets: Vec<Vec<String>>,
    /// HIGHESTMODSEQ the flags were last brought up to, when the last line says so.
    pub modseq: Option<u64>,
}

impl Index {
    /// Reads the journal at `path` (keys when it is encrypted); `digests` keeps each
    /// message's digest too (for `--verify`).
    pub fn load(path: &Path, keys: Option<&Keys>, digests: bool) -> Result<Index> {
        let mut index = Index::default();
        if digests {
            index.digested = index.read(path, keys, |e| e.map_or([0; 32], |e| e.digest))?;
        } else {
            index.messages = index.read(path, keys, |_| ())?.into_iter().map(|(p, ())| p).collect();
        }
        Ok(index)
    }

    /// Reads the journal's lines (each with what `extra` keeps of a message line) into one
    /// per UID, in UID order: a later message line replaces an earlier one, a flags line
    /// changes the flags only. In place, so memory holds one element per line read.
    fn read<D>(
        &mut self,
        path: &Path,
        keys: Option<&Keys>,
        extra: impl Fn(Option<&Entry>) -> D,
    ) -> Result<Vec<(Packed, D)>> {
        let mut lines: Vec<(Packed, D)> = Vec::new();
        let mut interned: HashMap<Vec<String>, u32> = HashMap::new();
        let sets = &mut self.flag_sets;
        let mut intern = |flags: Vec<String>| -> u32 {
            let next = sets.len() as u32;
            *interned.entry(flags.clone()).or_insert_with(|| {
                sets.push(flags);
                next
            })
        };
        let mut modseq = None;
        read_journal(path, keys, &mut |line| match line {
            Line::Message(e) => {
                let (arrived, zone) = e.internal_date.as_deref().and_then(parse_internal_date).unwrap_or((i64::MIN, 0));
                let size = u32::try_from(e.size).unwrap_or(u32::MAX);
                let d = extra(Some(&e));
                lines.push((Packed { uid: e.uid, flags: intern(e.flags), size, zone, arrived }, d));
                modseq = None;
            }
            Line::Flags(uid, flags) => {
                let p = Packed { uid, flags: intern(flags), size: FLAGS_ONLY, zone: 0, arrived: i64::MIN };
                lines.push((p, extra(None)));
            }
            Line::Date(uid, date) => {
                if let Some((arrived, zone)) = parse_internal_date(&date) {
                    let p = Packed { uid, flags: u32::MAX, size: DATE_ONLY, zone, arrived };
                    lines.push((p, extra(None)));
                }
            }
            Line::Modseq(m) => modseq = Some(m),
            Line::Begin => modseq = None,
        })?;
        self.modseq = modseq;
        // Stable: lines of one UID stay in journal order.
        lines.sort_by_key(|l| l.0.uid);
        lines.dedup_by(|later, kept| {
            if later.0.uid != kept.0.uid {
                return false;
            }
            if later.0.size == FLAGS_ONLY {
                kept.0.flags = later.0.flags;
            } else if later.0.size == DATE_ONLY {
                (kept.0.arrived, kept.0.zone) = (later.0.arrived, later.0.zone);
            } else {
                std::mem::swap(later, kept);
            }
            true
        });
        for l in lines.iter_mut().filter(|l| l.0.size == FLAGS_ONLY || l.0.size == DATE_ONLY) {
            l.0.size = u32::MAX;
        }
        Ok(lines)
    }

    /// The metadata of a recorded folder (`root`'s records name its user directory,
    /// mailbox and UIDVALIDITY), if it has any: what an upload reads each message's flags
    /// and INTERNALDATE from.
    pub fn of_folder(root: &Path, folder: &registry::FolderRecord, keys: Option<&Keys>) -> Result<Option<Index>> {
        let Some(uidvalidity) = folder.uidvalidity else { return Ok(None) };
        let path = journal_path(root, &folder.account, &folder.mailbox.wire, uidvalidity);
        if !path.is_file() {
            return Ok(None);
        }
        Index::load(&path, keys, false).map(Some)
    }

    /// The entry of `uid` and its digest, if one is known.
    fn find(&self, uid: u32) -> Option<(Packed, Option<[u8; 32]>)> {
        if self.digested.is_empty() {
            let i = self.messages.binary_search_by_key(&uid, |p| p.uid).ok()?;
            return Some((self.messages[i], None));
        }
        let i = self.digested.binary_search_by_key(&uid, |(p, _)| p.uid).ok()?;
        let (p, d) = self.digested[i];
        Some((p, Some(d).filter(|d| d != &[0; 32])))
    }

    /// What is known of `uid`.
    pub fn lookup(&self, uid: u32) -> Option<MessageMeta> {
        let (p, digest) = self.find(uid)?;
        let known = p.arrived != i64::MIN;
        Some(MessageMeta {
            flags: self.flag_sets.get(p.flags as usize).cloned().unwrap_or_default(),
            internal_date: known.then(|| format_internal_date(p.arrived, p.zone)),
            arrived: known.then_some(p.arrived),
            size: (p.size != u32::MAX).then_some(u64::from(p.size)),
            digest,
        })
    }

    /// Whether the arrival time of `uid` is known.
    pub fn has_date(&self, uid: u32) -> bool {
        self.find(uid).is_some_and(|(p, _)| p.arrived != i64::MIN)
    }

    /// The flags known for `uid`, if any, without copying them.
    pub fn flags_of(&self, uid: u32) -> Option<&[String]> {
        self.flag_sets.get(self.find(uid)?.0.flags as usize).map(Vec::as_slice)
    }

    /// UIDs with a digest recorded (messages archived by this version), ascending.
    pub fn archived_uids(&self) -> impl Iterator<Item = u32> + '_ {
        self.digested.iter().filter(|(_, d)| d != &[0; 32]).map(|(p, _)| p.uid)
    }

    /// Messages known.
    pub fn len(&self) -> usize {
        self.messages.len() + self.digested.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
