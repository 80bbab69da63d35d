//! Which message of the target mailbox is which archived message: one of about the same
//! size (a server may add or drop a trailing line end) whose header has the same
//! fingerprint. Each target message stands for one archived message at most, so two
//! identical messages in the archive are two on the target.

use std::collections::HashMap;

use super::measure::Print;

/// How far a target message's size may be from ours: a trailing CRLF added or dropped.
pub const SLACK: u64 = 2;

/// The target mailbox's messages as `(size, uid)`, sorted: 8 bytes a message, so even a
/// huge mailbox costs little memory. A message matched already is taken out.
#[derive(Debug, Default)]
pub struct BySize(Vec<(u32, u32)>);

/// A UID no message has: marks a target message matched already.
const TAKEN: u32 = 0;

impl BySize {
    /// The messages `(uid, size)` of a mailbox.
    pub fn new(sizes: &[(u32, u32)]) -> BySize {
        let mut v: Vec<(u32, u32)> = sizes.iter().map(|&(uid, size)| (size, uid)).collect();
        v.sort_unstable();
        BySize(v)
    }

    /// Takes out the messages whose UID `taken` says belongs to a message already known.
    pub fn take(&mut self, taken: impl Fn(u32) -> bool) {
        for slot in &mut self.0 {
            if slot.1 != TAKEN && taken(slot.1) {
                slot.1 = TAKEN;
            }
        }
    }

    fn range(&self, size: u64) -> std::ops::Range<usize> {
        let low = u32::try_from(size.saturating_sub(SLACK)).unwrap_or(u32::MAX);
        let high = u32::try_from(size.saturating_add(SLACK)).unwrap_or(u32::MAX);
        let start = self.0.partition_point(|&(s, _)| s < low);
        let end = self.0.partition_point(|&(s, _)| s <= high);
        start..end
    }

    /// The UIDs of the messages left whose size is within [`SLACK`] of `size`.
    pub fn near(&self, size: u64) -> impl Iterator<Item = u32> + '_ {
        self.0[self.range(size)].iter().map(|&(_, uid)| uid).filter(|&uid| uid != TAKEN)
    }

    /// Takes the message left that matches a message of `size` bytes with header print
    /// `print` (`prints` are the target's, by UID), of UID `min_uid` or above: one of the
    /// same size first, then the lowest UID.
    pub fn claim(&mut self, size: u64, print: &Print, prints: &HashMap<u32, Print>, min_uid: u32) -> Option<u32> {
        let range = self.range(size);
        let best = self.0[range.clone()]
            .iter()
            .enumerate()
            .filter(|(_, &(_, uid))| uid != TAKEN && uid >= min_uid && prints.get(&uid) == Some(print))
            .min_by_key(|(_, &(s, uid))| (u64::from(s) != size, uid))
            .map(|(i, _)| range.start + i)?;
        let uid = self.0[best].1;
        self.0[best].1 = TAKEN;
        Some(uid)
    }
}

/// A set of UIDs kept as ranges: the UIDs a server gives a run's uploads follow each
/// other, so a whole folder's usually take one range.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UidRanges(Vec<(u32, u32)>);

impl UidRanges {
    /// Adds `uid`.
    pub fn insert(&mut self, uid: u32) {
        let i = self.0.partition_point(|&(_, end)| end.saturating_add(1) < uid);
        match self.0.get_mut(i) {
            Some((start, end)) if *start <= uid.saturating_add(1) => {
                *start = (*start).min(uid);
                *end = (*end).max(uid);
                // It may now touch the next range.
                if let Some(&(next_start, next_end)) = self.0.get(i + 1) {
                    if next_start <= self.0[i].1.saturating_add(1) {
                        self.0[i].1 = self.0[i].1.max(next_end);
                        self.0.remove(i + 1);
                    }
                }
            }
            _ => self.0.insert(i, (uid, uid)),
        }
    }

    /// Whether `uid` is in the set.
    pub fn contains(&self, uid: u32) -> bool {
        let i = self.0.partition_point(|&(_, end)| end < uid);
        self.0.get(i).is_some_and(|&(start, _)| start <= uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_prefer_the_same_size_then_the_lowest_uid() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let mut by = BySize::new(&[(5, 100), (3, 102), (4, 100), (9, 100)]);
        let prints = HashMap::from([(5, a), (3, a), (4, b), (9, a)]);
        assert_eq!(by.near(101).collect::<Vec<_>>(), [4, 5, 9, 3]);
        assert_eq!(by.claim(100, &a, &prints, 0), Some(5));
        assert_eq!(by.claim(100, &a, &prints, 0), Some(9));
        assert_eq!(by.claim(100, &a, &prints, 0), Some(3), "a trailing CRLF more");
        assert_eq!(by.claim(100, &a, &prints, 0), None, "each target message once");
        assert_eq!(by.claim(100, &b, &prints, 5), None, "below the lowest UID asked");
        assert_eq!(by.claim(100, &b, &prints, 0), Some(4));
        let mut by = BySize::new(&[(5, 100), (6, 100)]);
        by.take(|u| u == 5);
        assert_eq!(by.claim(100, &a, &HashMap::from([(5, a), (6, a)]), 0), Some(6));
    }

    #[test]
    fn uid_ranges() {
        let mut r = UidRanges::default();
        for u in [5, 6, 7, 10, 9, 1, 8, 3] {
            r.insert(u);
        }
        assert_eq!(r.0, [(1, 1), (3, 3), (5, 10)]);
        r.insert(2);
        assert_eq!(r.0, [(1, 3), (5, 10)]);
        assert!(r.contains(7) && r.contains(1) && !r.contains(4) && !r.contains(11) && !r.contains(0));
        r.insert(u32::MAX);
        assert!(r.contains(u32::MAX));
    }
}
