//! The archive root's own records, kept in `ROOT/.smailarchiver/`: which account each user
//! directory belongs to (and what identifies its mailstore), which mailbox each folder
//! directory belongs to and at which UIDVALIDITY, and the temporary files of messages being
//! written.
//!
//! Keeping them there leaves folder directories holding nothing but `UID.mbox[.gz][.enc]`
//! files, which the original program's restore loop needs (it dies when the first entry it
//! lists is anything else). And a directory, once made, keeps its owner: whatever folders
//! or accounts appear later, mail of another mailbox or another mailstore is never mixed in.
//!
//! The records are a log ([`records_log`]): each change appends one line, so a first run
//! of 10,000 folders writes 10,000 short lines, not 10,000 copies of a growing file.
//! What must be durable before something depends on it is synced then (a directory's
//! record before the directory is made, in bulk for the folders of a run); completion marks
//! wait in memory and are written after the metadata journals they vouch for are synced.
//!
//! Records in which two mailboxes or two accounts own one directory are refused when read,
//! with one line naming both, before anything is fetched or moved.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

mod lines;
mod migrate;
mod owners;
#[cfg(test)]
mod tests;

use lines::{account_line, folder_line};
use owners::Index;

use crate::archive::files::atomic;
use crate::archive::layout::naming::{choose_dir, is_real_dir};
use crate::archive::layout::records_log::{self, Log};
use crate::archive::layout::{JOURNALS_DIR, META_DIR, TMP_DIR};
use crate::error::{Error, IoContext, Result};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name::Mailbox;
use crate::os::dir::Dir;
use crate::os::file;

/// The records file in [`META_DIR`].
pub const RECORDS_FILE: &str = records_log::FILE;
/// Completion marks kept in memory at most before they are written (see [`Registry::flush`]).
const MAX_PENDING_MARKS: usize = 500;
/// Replaced lines tolerated in the log beyond the live records before it is compacted.
const SLACK_LINES: usize = 256;
/// Lines made and written at once: 10,000 folders' at once would hold megabytes.
const LINES_AT_ONCE: usize = 256;

/// The owner of a user directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    /// The user directory's name in the root.
    pub dir: String,
    /// The login name.
    pub user: String,
    /// Every server (`host:port`, the host lowercased) the account was reached through, the
    /// first one first: another name, address, port or TLS mode for the same mailstore is
    /// added when [`crate::mailstore`] recognises it.
    pub servers: Vec<String>,
    /// Whether the directory was checked for a version 0.6 layout (done once).
    pub migrated: bool,
    /// Messages of the mailstore as archived (see [`crate::mailstore`]): what tells it
    /// apart from another server's mailbox of the same user name.
    pub evidence: Vec<Sample>,
    /// When the evidence was taken, in days since 1970.
    pub evidence_day: Option<i64>,
    /// The server's personal namespace (NAMESPACE), once a backup asked it: an upload
    /// to another server translates the folders' names with it.
    pub namespace: Option<Hierarchy>,
}

/// One archived message as its server described it: what two servers cannot share by
/// chance, at a UID that means one message for as long as the UIDVALIDITY holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The mailbox's wire name.
    pub mailbox: String,
    /// Its UIDVALIDITY.
    pub uidvalidity: u32,
    /// The message's UID.
    pub uid: u32,
    /// Its RFC822.SIZE.
    pub size: u32,
    /// The first 16 hex digits of SHA-256 of the first 4 KiB of its header.
    pub header: String,
}

/// The owner of a folder directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderRecord {
    /// The user directory it is in (one string shared by the account's records: 10,000
    /// copies of it would hold a third of a MiB).
    pub account: Arc<str>,
    /// The folder directory's name in the user directory.
    pub dir: String,
    /// The mailbox whose messages it holds.
    pub mailbox: Mailbox,
    /// The mailbox's UIDVALIDITY when they were archived; `None` until the first backup
    /// opens it (a directory the original made is adopted with the server's).
    pub uidvalidity: Option<u32>,
    /// Moved aside after the mailbox's UIDVALIDITY changed: kept, never written again.
    pub retired: bool,
    /// Every message with a lower UID is archived (or was expunged): the mailbox's UIDNEXT
    /// when a backup last completed without a failure. A later run with the same UIDNEXT
    /// has nothing to fetch; one with a higher UIDNEXT asks only from here on.
    pub uidnext: Option<u32>,
    /// The mailbox's hierarchy separator, as LIST gave it (unknown for records made before
    /// 0.7, and for folders named with `-f` on a server without NAMESPACE).
    pub separator: Option<char>,
}

impl FolderRecord {
    /// The UIDVALIDITY and UIDNEXT of the folder's last complete backup, if there was one.
    pub fn complete_at(&self) -> Option<(u32, u32)> {
        Some((self.uidvalidity?, self.uidnext?))
    }
}

/// A folder to record, as the run's LIST and STATUS described it (see
/// [`Registry::claim_folders`]).
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// The mailbox.
    pub mailbox: &'a Mailbox,
    /// Its UIDVALIDITY, where STATUS gave it.
    pub uidvalidity: Option<u32>,
    /// Its hierarchy separator, where LIST gave it.
    pub separator: Option<char>,
}

/// A folder directory made ready for a backup by [`Registry::open_folder`].
#[derive(Debug)]
pub struct OpenFolder {
    /// Its path.
    pub path: PathBuf,
    /// The directory, opened from the root without following a symlink: messages are
    /// written through it.
    pub dir: Arc<Dir>,
    /// Where the previous archive went, and its UIDVALIDITY, when the mailbox's changed.
    pub retired: Option<(u32, PathBuf)>,
}

/// Where the records were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Nowhere: a new root, or one of the original program or of 0.6.
    None,
    /// The log, whole up to this length.
    Log(records_log::Found),
    /// The legacy document, to be converted by the next backup.
    Legacy,
}

/// The records of one archive root.
#[derive(Debug)]
pub struct Registry {
    root: PathBuf,
    /// The root and the tool's directories in it, once opened for a backup.
    opened: Option<Opened>,
    source: Source,
    accounts: Vec<AccountRecord>,
    folders: Vec<FolderRecord>,
    /// (account, dir) -> index in `folders`.
    by_dir: Index,
    /// (account, mailbox wire name) -> index in `folders` of its live record.
    live: Index,
    /// Folders whose completion mark changed and is not written yet.
    marks: BTreeSet<usize>,
    /// Files to make durable before the marks are written (the journals they vouch for).
    before_marks: Vec<PathBuf>,
    /// Record lines in the log, for the compaction's reckoning.
    log_lines: usize,
}

impl Registry {
    fn empty(root: &Path) -> Registry {
        Registry {
            root: root.to_path_buf(),
            opened: None,
            source: Source::None,
            accounts: Vec::new(),
            folders: Vec::new(),
            by_dir: Index::default(),
            live: Index::default(),
            marks: BTreeSet::new(),
            before_marks: Vec::new(),
            log_lines: 0,
        }
    }

    /// Reads the records of `root`, writing nothing; empty when there are none (an archive
    /// of the original program or of version 0.6, or none at all). Records that give one
    /// directory two owners, or one mailbox two live directories, are an error naming both.
    pub fn read(root: &Path) -> Result<Registry> {
        let meta = root.join(META_DIR);
        let mut registry = Registry::empty(root);
        let found = records_log::read(&meta.join(records_log::FILE), &mut |_, line| registry.load(&line))?;
        if let Some(found) = found {
            registry.source = Source::Log(found);
            registry.log_lines = found.lines;
        } else if records_log::read_legacy(&meta.join(records_log::LEGACY_FILE), &mut |kind, record| {
            registry.load_legacy(kind, &record)
        })? {
            registry.source = Source::Legacy;
        }
        Ok(registry)
    }

    /// Opens the records of `root` for a backup, with the root's lock held: makes the tool's
    /// directory, removes the temporary files of a killed run, converts legacy records and
    /// compacts the log when it holds more replaced lines than live ones.
    pub fn open(root: &Path) -> Result<Registry> {
        let mut registry = Registry::read(root)?;
        let root_dir = Dir::open(root).at(root)?;
        let meta = root_dir.make_child(META_DIR).at(&root.join(META_DIR))?;
        let tmp = Arc::new(meta.make_child(TMP_DIR).at(&registry.tmp_dir())?);
        atomic::remove_leftovers(&registry.tmp_dir()).at(&registry.tmp_dir())?;
        let log_path = registry.records_path();
        let log = match registry.source {
            Source::Legacy => {
                // Written whole first: should this be killed, the legacy file is still there.
                registry.rewrite(&meta, &tmp)?;
                let legacy = root.join(META_DIR).join(records_log::LEGACY_FILE);
                meta.remove_file(records_log::LEGACY_FILE).at(&legacy)?;
                meta.sync().at(&legacy)?;
                Log::reopen(&meta).at(&log_path)?
            }
            Source::Log(found) => {
                let legacy = root.join(META_DIR).join(records_log::LEGACY_FILE);
                if legacy.exists() {
                    // Left by a conversion that was killed after the log was in place.
                    meta.remove_file(records_log::LEGACY_FILE).at(&legacy)?;
                }
                Log::open(&meta, Some(found)).at(&log_path)?
            }
            Source::None => Log::open(&meta, None).at(&log_path)?,
        };
        registry.opened = Some(Opened { root: root_dir, meta, tmp, log });
        registry.compact_if_worth_it()?;
        Ok(registry)
    }

    /// Where the records are.
    pub fn records_path(&self) -> PathBuf {
        self.root.join(META_DIR).join(records_log::FILE)
    }

    /// The root and the tool's directories, opened by [`Registry::open`].
    fn opened(&self) -> Result<&Opened> {
        self.opened.as_ref().ok_or_else(|| Error::runtime("the archive's records were opened read-only"))
    }

    fn opened_mut(&mut self) -> Result<&mut Opened> {
        self.opened.as_mut().ok_or_else(|| Error::runtime("the archive's records were opened read-only"))
    }

    /// The directory of temporary files, open (see [`Registry::tmp_dir`]).
    pub fn tmp(&self) -> Result<Arc<Dir>> {
        Ok(self.opened()?.tmp.clone())
    }

    /// The directory `rel` beneath the root, opened without following a symlink.
    pub fn open_beneath(&self, rel: &Path) -> Result<Dir> {
        let opened = self.opened()?;
        opened.root.open_beneath(rel).at(&self.root.join(rel))
    }

    /// The archive root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where messages are written before they get their name.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(META_DIR).join(TMP_DIR)
    }

    /// The record of the user directory `dir`, if any.
    pub fn account_of(&self, dir: &str) -> Option<&AccountRecord> {
        self.accounts.iter().find(|a| a.dir == dir)
    }

    /// The accounts recorded for the login name `user`.
    pub fn accounts_of_user(&self, user: &str) -> Vec<&AccountRecord> {
        self.accounts.iter().filter(|a| a.user == user).collect()
    }

    /// The folder directories recorded in the user directory `account`, in name order.
    pub fn folders_of(&self, account: &str) -> Vec<&FolderRecord> {
        let mut v: Vec<&FolderRecord> = self.folders.iter().filter(|f| &*f.account == account).collect();
        v.sort_by(|a, b| a.dir.cmp(&b.dir));
        v
    }

    /// The record of folder directory `dir` in user directory `account`, if any.
    pub fn folder_at(&self, account: &str, dir: &str) -> Option<&FolderRecord> {
        self.dir_index(account, dir).map(|i| &self.folders[i])
    }

    /// The recorded user directory of `user` reached through `server` (`host:port`), if any.
    pub fn recorded_account(&self, server: &str, user: &str) -> Option<&AccountRecord> {
        let server = server.to_ascii_lowercase();
        self.accounts.iter().find(|a| a.user == user && a.servers.contains(&server))
    }

    /// The user directory of `user` on `server` (`host:port`): recorded, or the one a backup would make,
    /// without writing anything (a backup that recognises another record's mailstore on
    /// the server uses that one's instead).
    pub fn account_dir(&self, server: &str, user: &str) -> String {
        if let Some(a) = self.recorded_account(server, user) {
            return a.dir.clone();
        }
        let server = server.to_ascii_lowercase();
        let taken = |d: &str| self.accounts.iter().any(|a| a.dir == d);
        choose_dir(&self.root, user, &format!("{user}@{server}"), taken)
    }

    /// Makes (or finds) the user directory of `user` reached through `server` and records
    /// it; `same_as`: the user directory whose mailstore the server was recognised as
    /// holding (the server is then recorded for it). A directory of version 0.6 is
    /// converted to this layout on the way. The record is durable before the directory is
    /// made, and the directory (with its metadata directory) before anything goes in.
    pub fn claim_account(&mut self, server: &str, user: &str, same_as: Option<&str>) -> Result<String> {
        let server = server.to_ascii_lowercase();
        let index = match (self.recorded_account(&server, user).map(|a| a.dir.clone()), same_as) {
            (Some(dir), _) => self.account_index(&dir)?,
            (None, Some(dir)) => {
                let i = self.account_index(dir)?;
                if self.accounts[i].user != user {
                    return Err(Error::runtime(format!("{dir} is the directory of another user")));
                }
                self.accounts[i].servers.push(server);
                self.write_account(i)?;
                i
            }
            (None, None) => {
                let dir = self.account_dir(&server, user);
                // A directory that did not exist has nothing to convert.
                let migrated = !self.root.join(&dir).exists();
                let record = AccountRecord {
                    dir,
                    user: user.to_string(),
                    servers: vec![server],
                    migrated,
                    evidence: Vec::new(),
                    evidence_day: None,
                    namespace: None,
                };
                self.upsert_account(record).map_err(Error::runtime)?;
                let i = self.accounts.len() - 1;
                self.write_account(i)?;
                i
            }
        };
        self.sync_log()?;
        let dir = self.accounts[index].dir.clone();
        let opened = self.opened()?;
        opened.root.make_child(&dir).at(&self.root.join(&dir))?;
        let journals = self.root.join(META_DIR).join(JOURNALS_DIR);
        opened.meta.make_child(JOURNALS_DIR).and_then(|j| j.make_child(&dir)).at(&journals.join(&dir))?;
        if !self.accounts[index].migrated {
            self.migrate(&dir)?;
            self.accounts[index].migrated = true;
            self.write_account(index)?;
            self.sync_log()?;
        }
        Ok(dir)
    }

    fn account_index(&self, dir: &str) -> Result<usize> {
        self.accounts
            .iter()
            .position(|a| a.dir == dir)
            .ok_or_else(|| Error::runtime(format!("no account is recorded for the directory {dir}")))
    }

    /// Records what identifies the mailstore of user directory `account`, taken on day
    /// `day` (written with the next sync of the records: until then it only is not there).
    pub fn set_evidence(&mut self, account: &str, evidence: Vec<Sample>, day: i64) -> Result<()> {
        let i = self.account_index(account)?;
        self.accounts[i].evidence = evidence;
        self.accounts[i].evidence_day = Some(day);
        self.write_account(i)
    }

    /// The folder directory of `mailbox` in user directory `account`: recorded, or the one
    /// a backup would make, without writing anything.
    pub fn folder_dir(&self, account: &str, mailbox: &Mailbox) -> String {
        if let Some(f) = self.live(account, mailbox) {
            return self.folders[f].dir.clone();
        }
        let taken = |d: &str| self.dir_index(account, d).is_some();
        choose_dir(&self.root.join(account), &mailbox.wire, &mailbox.wire, taken)
    }

    /// The folder directory of `mailbox` that a backup claiming folders in this order would
    /// make, reserved in memory only (nothing is saved): for `--list-folders`.
    pub fn plan_folder(&mut self, account: &str, mailbox: &Mailbox) -> String {
        let dir = self.folder_dir(account, mailbox);
        if self.live(account, mailbox).is_none() {
            let _ = self.upsert_folder(new_folder(account, &dir, mailbox, None));
        }
        dir
    }

    /// Records a folder directory for each of `mailboxes` (with the UIDVALIDITY that STATUS
    /// gave, if it did) that has none yet, in this order, and makes the directories: one
    /// write and one sync of the records for all of them, then one sync of the user
    /// directory for all the directories. A first run of thousands of folders pays for
    /// that once, not once a folder.
    pub fn claim_folders(&mut self, account: &str, mailboxes: &[Claim<'_>]) -> Result<()> {
        let mut claimed: Vec<u32> = Vec::with_capacity(mailboxes.len());
        let mut lines = Vec::with_capacity(LINES_AT_ONCE);
        // Room for all at once: grown by doubling, 10,000 records' vector held 1.5 MiB.
        self.folders.reserve(mailboxes.len());
        self.by_dir.reserve(mailboxes.len());
        self.live.reserve(mailboxes.len());
        for claim in mailboxes {
            if self.live(account, claim.mailbox).is_some() {
                continue;
            }
            let dir = self.folder_dir(account, claim.mailbox);
            let mut record = new_folder(account, &dir, claim.mailbox, claim.uidvalidity);
            record.separator = claim.separator;
            lines.push(folder_line(&record));
            self.upsert_folder(record).map_err(Error::runtime)?;
            claimed.push((self.folders.len() - 1) as u32);
            if lines.len() == LINES_AT_ONCE {
                self.append(&lines)?;
                lines.clear();
            }
        }
        if claimed.is_empty() {
            return Ok(());
        }
        self.append(&lines)?;
        self.sync_log()?;
        let opened = self.opened()?;
        let user_dir = opened.root.open_beneath(Path::new(account)).at(&self.root.join(account))?;
        let names = claimed.iter().map(|&i| self.folders[i as usize].dir.as_str());
        user_dir.make_children(names).at(&self.root.join(account))?;
        Ok(())
    }

    /// Makes the folder directory of `mailbox` ready for a backup of its messages at
    /// `uidvalidity`. When the mailbox's UIDVALIDITY changed (it was recreated, its UIDs
    /// now mean other mail), the old directory is moved aside to `DIR.uidvalidity-OLD` and
    /// a fresh one is made: nothing is skipped, nothing overwritten.
    pub fn open_folder(&mut self, account: &str, mailbox: &Mailbox, uidvalidity: u32) -> Result<OpenFolder> {
        let user_dir = self.root.join(account);
        let mut changed = Vec::new();
        let index = match self.live(account, mailbox) {
            Some(i) => i,
            None => {
                let dir = self.folder_dir(account, mailbox);
                self.upsert_folder(new_folder(account, &dir, mailbox, None)).map_err(Error::runtime)?;
                self.folders.len() - 1
            }
        };
        let dir = self.folders[index].dir.clone();
        let path = user_dir.join(&dir);
        let mut retired = None;
        match self.folders[index].uidvalidity {
            Some(old) if old == uidvalidity => {}
            Some(old) => {
                let moving = is_real_dir(&path);
                let aside = self.aside_name(account, &dir, old, moving);
                let aside_path = user_dir.join(&aside);
                if moving {
                    fs::rename(&path, &aside_path).at(&path)?;
                    file::sync_dir(&user_dir).at(&user_dir)?;
                }
                // Also when a run was killed between the rename and the record.
                if is_real_dir(&aside_path) {
                    let mut record = new_folder(account, &aside, mailbox, Some(old));
                    record.retired = true;
                    record.separator = self.folders[index].separator;
                    changed.push(folder_line(&record));
                    self.upsert_folder(record).map_err(Error::runtime)?;
                    retired = Some((old, aside_path));
                }
                self.folders[index].uidvalidity = Some(uidvalidity);
                self.folders[index].uidnext = None;
                self.marks.remove(&index);
                changed.push(folder_line(&self.folders[index]));
            }
            None => {
                self.folders[index].uidvalidity = Some(uidvalidity);
                changed.push(folder_line(&self.folders[index]));
            }
        }
        if !changed.is_empty() {
            self.append(&changed)?;
            self.sync_log()?;
        }
        let opened = self.opened()?;
        let folder = opened.root.make_child(account).and_then(|d| d.make_child(&dir)).at(&path)?;
        Ok(OpenFolder { path, dir: Arc::new(folder), retired })
    }

    /// The generations of `mailbox` in `account` moved aside (after its UIDVALIDITY
    /// changed), in the order they were.
    pub fn retired_of(&self, account: &str, mailbox: &Mailbox) -> Vec<&FolderRecord> {
        self.folders.iter().filter(|f| &*f.account == account && f.retired && f.mailbox == *mailbox).collect()
    }

    /// The live record of `mailbox` in `account`, if there is one.
    pub fn folder_of(&self, account: &str, mailbox: &Mailbox) -> Option<&FolderRecord> {
        self.live(account, mailbox).map(|i| &self.folders[i])
    }

    /// Records that every message of `mailbox` below `uidnext` is archived (a backup of it
    /// completed without a failure). Written by [`Registry::flush`], which the records call
    /// themselves every few hundred marks: a mark lost in a crash only makes the next run
    /// look at the folder's every UID again.
    pub fn set_complete(&mut self, account: &str, mailbox: &Mailbox, uidnext: u32) -> Result<()> {
        if let Some(i) = self.live(account, mailbox) {
            if self.folders[i].uidnext != Some(uidnext) {
                self.folders[i].uidnext = Some(uidnext);
                self.marks.insert(i);
            }
        }
        if self.marks.len() >= MAX_PENDING_MARKS {
            self.flush()?;
        }
        Ok(())
    }

    /// Records the hierarchy a backup learned of `account`'s server: its personal
    /// namespace, and each listed mailbox's separator (`separators`, by wire name). Written
    /// with the completion marks; only what changed costs a line.
    pub fn set_hierarchy(
        &mut self,
        account: &str,
        namespace: Option<&Hierarchy>,
        separators: &[(&str, Option<char>)],
    ) -> Result<()> {
        if let (Some(ns), Some(i)) = (namespace, self.accounts.iter().position(|a| a.dir == account)) {
            if self.accounts[i].namespace.as_ref() != Some(ns) {
                self.accounts[i].namespace = Some(ns.clone());
                self.write_account(i)?;
            }
        }
        for (wire, sep) in separators {
            let Some(sep) = *sep else { continue };
            if let Some(i) = self.live(account, &Mailbox::from_wire(wire)) {
                if self.folders[i].separator != Some(sep) {
                    self.folders[i].separator = Some(sep);
                    self.marks.insert(i);
                }
            }
        }
        Ok(())
    }

    /// Has `path` (a metadata journal) made durable before the next completion marks are
    /// written: marks say the folder's metadata is complete, so it must be on disk first.
    /// Deferred so that the journals of many folders are synced together.
    pub fn sync_before_marks(&mut self, path: &Path) {
        if !self.before_marks.iter().any(|p| p == path) {
            self.before_marks.push(path.to_path_buf());
        }
    }

    /// Writes what [`Registry::set_complete`] and [`Registry::set_evidence`] recorded, if
    /// anything: first the journals they vouch for are synced (their directories too, for
    /// journals made by this run), then the records.
    pub fn flush(&mut self) -> Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for path in std::mem::take(&mut self.before_marks) {
            match file::open_no_follow(fs::File::options().read(true), &path) {
                Ok(f) => f.sync_data().at(&path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).at(&path),
            }
            if let Some(parent) = path.parent().filter(|p| !dirs.iter().any(|d| d == p)) {
                dirs.push(parent.to_path_buf());
            }
        }
        for dir in dirs {
            file::sync_dir(&dir).at(&dir)?;
        }
        let marks: Vec<usize> = std::mem::take(&mut self.marks).into_iter().collect();
        for chunk in marks.chunks(LINES_AT_ONCE) {
            let lines: Vec<Value> = chunk.iter().map(|&i| folder_line(&self.folders[i])).collect();
            self.append(&lines)?;
        }
        self.sync_log()?;
        self.compact_if_worth_it()
    }

    /// `DIR.uidvalidity-OLD`, or with `-2`, `-3`... when that is taken. When DIR is still
    /// to be `moving`, anything already at a name takes it; when DIR is gone (a run killed
    /// after the move), the unrecorded directory at the first name is the one it became.
    fn aside_name(&self, account: &str, dir: &str, old: u32, moving: bool) -> String {
        let user_dir = self.root.join(account);
        let base = format!("{dir}.uidvalidity-{old}");
        let mut name = base.clone();
        let mut n = 2;
        while self.recorded(account, &name) || (moving && user_dir.join(&name).symlink_metadata().is_ok()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    /// Appends lines to the log (not synced yet).
    fn append(&mut self, lines: &[Value]) -> Result<()> {
        let path = self.records_path();
        self.opened_mut()?.log.append(lines).at(&path)?;
        self.log_lines += lines.len();
        Ok(())
    }

    /// Makes what was appended durable.
    fn sync_log(&mut self) -> Result<()> {
        let path = self.records_path();
        self.opened_mut()?.log.sync().at(&path)
    }

    fn write_account(&mut self, i: usize) -> Result<()> {
        let line = account_line(&self.accounts[i]);
        self.append(&[line])
    }

    /// Rewrites the log with one line per record when replaced lines outnumber the live
    /// ones (plus some slack): its size follows the records, and each line written is
    /// rewritten at most about once more, so a change costs O(1) on average.
    fn compact_if_worth_it(&mut self) -> Result<()> {
        let live = self.accounts.len() + self.folders.len();
        if self.log_lines <= 2 * live + SLACK_LINES {
            return Ok(());
        }
        let opened = self.opened.take().ok_or_else(|| Error::runtime("the records are not open"))?;
        let result = self.rewrite(&opened.meta, &opened.tmp);
        let log = Log::reopen(&opened.meta).at(&self.records_path());
        self.opened = Some(Opened { log: log?, ..opened });
        result
    }

    /// Writes the log anew with one line per record (the pending marks included).
    fn rewrite(&mut self, meta: &Dir, tmp: &Arc<Dir>) -> Result<()> {
        let lines = self.accounts.iter().map(account_line).chain(self.folders.iter().map(folder_line));
        records_log::rewrite(meta, tmp, lines).at(&self.records_path())?;
        self.log_lines = self.accounts.len() + self.folders.len();
        self.marks.clear();
        Ok(())
    }
}

/// The root and the tool's directories in it, held open while a backup writes.
#[derive(Debug)]
struct Opened {
    root: Dir,
    meta: Dir,
    tmp: Arc<Dir>,
    log: Log,
}

fn new_folder(account: &str, dir: &str, mailbox: &Mailbox, uidvalidity: Option<u32>) -> FolderRecord {
    FolderRecord {
        account: Arc::from(account),
        dir: dir.to_string(),
        mailbox: mailbox.clone(),
        uidvalidity,
        retired: false,
        uidnext: None,
        separator: None,
    }
}
