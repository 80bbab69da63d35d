//! One owner per directory: the folder records indexed by directory and by live mailbox,
//! and the checks that refuse a second owner of a directory (or a second live directory
//! of a mailbox) whether the records come from the file or from this run.

use std::collections::HashMap;

use super::{AccountRecord, FolderRecord, Registry};
use crate::mailbox_name::Mailbox;

impl Registry {
    /// The live record of `mailbox` in `account`.
    pub(super) fn live(&self, account: &str, mailbox: &Mailbox) -> Option<usize> {
        let folders = &self.folders;
        self.live
            .find(key(account, &mailbox.wire), |i| &*folders[i].account == account && folders[i].mailbox == *mailbox)
    }

    /// The record of `dir` in `account`, by index.
    pub(super) fn dir_index(&self, account: &str, dir: &str) -> Option<usize> {
        let folders = &self.folders;
        self.by_dir.find(key(account, dir), |i| &*folders[i].account == account && folders[i].dir == dir)
    }

    pub(super) fn recorded(&self, account: &str, dir: &str) -> bool {
        self.dir_index(account, dir).is_some()
    }

    /// Adds or replaces the record of an account's directory; refuses a second owner.
    pub(super) fn upsert_account(&mut self, record: AccountRecord) -> std::result::Result<(), String> {
        let shown = |a: &AccountRecord| format!("{} on {}", a.user, a.servers.join(", "));
        for other in self.accounts.iter().filter(|a| a.dir != record.dir && a.user == record.user) {
            if let Some(s) = record.servers.iter().find(|s| other.servers.contains(s)) {
                return Err(format!(
                    "{} on {s} is recorded for two directories: {} and {}",
                    record.user, other.dir, record.dir
                ));
            }
        }
        match self.accounts.iter().position(|a| a.dir == record.dir) {
            Some(i) if self.accounts[i].user != record.user => Err(format!(
                "two accounts own the directory {}: {} and {}",
                record.dir,
                shown(&self.accounts[i]),
                shown(&record)
            )),
            Some(i) => {
                self.accounts[i] = record;
                Ok(())
            }
            None => {
                self.accounts.push(record);
                Ok(())
            }
        }
    }

    /// Adds or replaces the record of a folder directory; refuses a second owner, and a
    /// second live directory for a mailbox.
    pub(super) fn upsert_folder(&mut self, mut record: FolderRecord) -> std::result::Result<(), String> {
        // Records come an account at a time: the one before shares its account's string.
        if let Some(before) = self.folders.last().filter(|f| f.account == record.account) {
            record.account = before.account.clone();
        }
        let existing = self.dir_index(&record.account, &record.dir);
        if let Some(i) = existing {
            let old = &self.folders[i];
            if old.mailbox != record.mailbox {
                return Err(format!(
                    "two mailboxes own the directory {}/{}: {} and {}",
                    record.account,
                    record.dir,
                    old.mailbox.shown(),
                    record.mailbox.shown()
                ));
            }
        }
        let live = self.live(&record.account, &record.mailbox);
        if let (false, Some(j)) = (record.retired, live) {
            if Some(j) != existing {
                return Err(format!(
                    "the mailbox {} of {} is recorded in two directories: {} and {}",
                    record.mailbox.shown(),
                    record.account,
                    self.folders[j].dir,
                    record.dir
                ));
            }
        }
        let live_key = key(&record.account, &record.mailbox.wire);
        let i = match existing {
            Some(i) => {
                if live == Some(i) {
                    self.live.remove(live_key, i);
                }
                self.folders[i] = record;
                i
            }
            None => {
                let i = self.folders.len();
                self.by_dir.insert(key(&record.account, &record.dir), i);
                self.folders.push(record);
                i
            }
        };
        if !self.folders[i].retired {
            self.live.insert(live_key, i);
        }
        Ok(())
    }
}

/// An index of the folder records by two of their strings, holding only a 64-bit hash of
/// them (the strings are in the records: keeping them again would double the memory of
/// 10,000 folders). Two keys with one hash are told apart by the caller's test.
#[derive(Debug, Default)]
pub(super) struct Index {
    first: HashMap<u64, u32>,
    /// Records whose key's hash was taken (almost never).
    more: Vec<(u64, u32)>,
}

impl Index {
    /// The record with key hash `hash` that passes `is`.
    pub(super) fn find(&self, hash: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        let first = self.first.get(&hash).map(|&i| i as usize).filter(|&i| is(i));
        first.or_else(|| self.more.iter().filter(|(h, _)| *h == hash).map(|&(_, i)| i as usize).find(|&i| is(i)))
    }

    /// Makes room for `more` records.
    pub(super) fn reserve(&mut self, more: usize) {
        self.first.reserve(more);
    }

    pub(super) fn insert(&mut self, hash: u64, index: usize) {
        let index = index as u32;
        match self.first.get(&hash) {
            Some(&i) if i != index => self.more.push((hash, index)),
            _ => {
                self.first.insert(hash, index);
            }
        }
    }

    pub(super) fn remove(&mut self, hash: u64, index: usize) {
        let index = index as u32;
        if self.first.get(&hash) == Some(&index) {
            self.first.remove(&hash);
            if let Some(k) = self.more.iter().position(|(h, _)| *h == hash) {
                let (_, other) = self.more.swap_remove(k);
                self.first.insert(hash, other);
            }
        } else {
            self.more.retain(|&(h, i)| (h, i) != (hash, index));
        }
    }
}

/// The hash of a record's key: two strings.
pub(super) fn key(a: &str, b: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    a.hash(&mut h);
    b.hash(&mut h);
    h.finish()
}
