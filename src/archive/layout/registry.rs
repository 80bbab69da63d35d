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
//! The records are a log ([`crate::archive::layout::records_log`]): each change appends one line, so a first
//! run of 10,000 folders writes 10,000 short lines, not 10,000 copies of a growing file.
//! What must be durable before something depends on it is synced then (a directory's
//! record before the directory is made, in bulk for the folders of a run); completion marks
//! wait in memory and are written after the metadata journals they vouch for are synced.
//!
//! Records in which two mailboxes or two accounts own one directory are refused when read,
//! with one line naming both, before anything is fetched or moved.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::archive::files::atomic;
use crate::archive::layout::records_log::{self, Log};
use crate::bounded;
use crate::error::{Error, IoContext, Result};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name::{canonical_dir, encode_utf7, fallback_dir, safe, Mailbox};
use crate::os::dir::Dir;

/// The tool's own directory in an archive root.
pub const META_DIR: &str = ".smailarchiver";
/// The records file in [`META_DIR`].
pub const RECORDS_FILE: &str = records_log::FILE;
/// Where messages are written before they are renamed into their folder directory (the
/// same file system, so the rename is atomic).
pub const TMP_DIR: &str = "tmp";
/// The metadata journals' directory in [`META_DIR`] (`metadata::METADATA_DIR`, which
/// cannot be named here without an import circle; a test checks they agree).
const JOURNALS_DIR: &str = "meta";
/// Where version 0.6 kept a folder's state: inside the folder directory.
const OLD_STATE_FILE: &str = ".smailarchiver-state.json";
/// A 0.6 state file is one short line.
const MAX_OLD_STATE_SIZE: usize = 64 * 1024;
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
    /// The user directory it is in.
    pub account: String,
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
        let mut v: Vec<&FolderRecord> = self.folders.iter().filter(|f| f.account == account).collect();
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
        let mut claimed: Vec<u32> = Vec::new();
        let mut lines = Vec::with_capacity(LINES_AT_ONCE);
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
                    atomic::sync_dir(&user_dir).at(&user_dir)?;
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
        self.folders.iter().filter(|f| f.account == account && f.retired && f.mailbox == *mailbox).collect()
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
            match fs::File::open(&path) {
                Ok(f) => f.sync_data().at(&path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).at(&path),
            }
            if let Some(parent) = path.parent().filter(|p| !dirs.iter().any(|d| d == p)) {
                dirs.push(parent.to_path_buf());
            }
        }
        for dir in dirs {
            atomic::sync_dir(&dir).at(&dir)?;
        }
        let marks: Vec<usize> = std::mem::take(&mut self.marks).into_iter().collect();
        for chunk in marks.chunks(LINES_AT_ONCE) {
            let lines: Vec<Value> = chunk.iter().map(|&i| folder_line(&self.folders[i])).collect();
            self.append(&lines)?;
        }
        self.sync_log()?;
        self.compact_if_worth_it()
    }

    /// The live record of `mailbox` in `account`.
    fn live(&self, account: &str, mailbox: &Mailbox) -> Option<usize> {
        let folders = &self.folders;
        self.live.find(key(account, &mailbox.wire), |i| folders[i].account == account && folders[i].mailbox == *mailbox)
    }

    /// The record of `dir` in `account`, by index.
    fn dir_index(&self, account: &str, dir: &str) -> Option<usize> {
        let folders = &self.folders;
        self.by_dir.find(key(account, dir), |i| folders[i].account == account && folders[i].dir == dir)
    }

    fn recorded(&self, account: &str, dir: &str) -> bool {
        self.dir_index(account, dir).is_some()
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

    /// Converts a user directory of version 0.6, whose folder directories held a state file
    /// (and, after a killed run, temporary files): each folder is recorded with its mailbox
    /// and UIDVALIDITY, moved to the directory this version names it by where that is free
    /// (`Reus` becomes `ReAOc-us`), and left holding only its messages. Nothing is fetched
    /// again. Every step can be repeated, so a run killed half way is finished by the next.
    fn migrate(&mut self, account: &str) -> Result<()> {
        let user_dir = self.root.join(account);
        let mut entries: Vec<String> = Vec::new();
        for entry in fs::read_dir(&user_dir).at(&user_dir)? {
            let entry = entry.at(&user_dir)?;
            if entry.file_type().at(&entry.path())?.is_dir() {
                if let Ok(name) = entry.file_name().into_string() {
                    entries.push(name);
                }
            }
        }
        entries.sort();
        for name in entries {
            let dir = user_dir.join(&name);
            atomic::remove_leftovers(&dir).at(&dir)?;
            let Some((mailbox_name, uidvalidity)) = read_old_state(&dir)? else { continue };
            let mailbox = Mailbox::from_wire(&encode_utf7(&mailbox_name));
            let canonical = canonical_dir(&mailbox.wire);
            let named_for_it = name == safe(&mailbox_name) || canonical.as_deref() == Some(name.as_str());
            let live = named_for_it && self.live(account, &mailbox).is_none();
            let mut final_name = name.clone();
            if let (true, Some(c)) = (live, canonical) {
                let free = c != name && user_dir.join(&c).symlink_metadata().is_err() && !self.recorded(account, &c);
                if free {
                    fs::rename(&dir, user_dir.join(&c)).at(&dir)?;
                    atomic::sync_dir(&user_dir).at(&user_dir)?;
                    final_name = c;
                }
            }
            if !self.recorded(account, &final_name) {
                let mut record = new_folder(account, &final_name, &mailbox, Some(uidvalidity));
                record.retired = !live;
                let line = folder_line(&record);
                self.upsert_folder(record).map_err(Error::runtime)?;
                self.append(&[line])?;
                self.sync_log()?;
            }
            let state = user_dir.join(&final_name).join(OLD_STATE_FILE);
            fs::remove_file(&state).at(&state)?;
            atomic::sync_dir(&user_dir.join(&final_name)).at(&user_dir.join(&final_name))?;
        }
        Ok(())
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

    /// One line of the log, as read.
    fn load(&mut self, line: &Value) -> std::result::Result<(), String> {
        match line.get("kind").and_then(Value::as_str) {
            Some("account") => {
                let servers = line
                    .get("servers")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
                    .unwrap_or_default();
                let evidence = match line.get("evidence") {
                    None => Vec::new(),
                    Some(v) => v
                        .as_array()
                        .ok_or("evidence that is not a list")?
                        .iter()
                        .map(sample)
                        .collect::<std::result::Result<_, _>>()?,
                };
                self.upsert_account(AccountRecord {
                    dir: dir_field(line, "dir")?,
                    user: str_field(line, "user")?,
                    servers,
                    migrated: line.get("migrated").and_then(Value::as_bool).unwrap_or(false),
                    evidence,
                    evidence_day: line.get("evidence_day").and_then(Value::as_i64),
                    namespace: line.get("namespace").and_then(namespace_field),
                })
            }
            Some("folder") => self.upsert_folder(folder_record(line)?),
            Some(other) => Err(format!("a record of kind {other:?} (made by a newer version?)")),
            None => Err("a record without \"kind\"".into()),
        }
    }

    /// One record of the legacy document.
    fn load_legacy(&mut self, kind: &str, record: &Value) -> std::result::Result<(), String> {
        match kind {
            "accounts" => self.upsert_account(AccountRecord {
                dir: dir_field(record, "dir")?,
                user: str_field(record, "user")?,
                servers: vec![str_field(record, "server")?.to_ascii_lowercase()],
                migrated: record.get("migrated").and_then(Value::as_bool).unwrap_or(false),
                evidence: Vec::new(),
                evidence_day: None,
                namespace: record.get("namespace").and_then(namespace_field),
            }),
            _ => self.upsert_folder(folder_record(record)?),
        }
    }

    /// Adds or replaces the record of an account's directory; refuses a second owner.
    fn upsert_account(&mut self, record: AccountRecord) -> std::result::Result<(), String> {
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
    fn upsert_folder(&mut self, record: FolderRecord) -> std::result::Result<(), String> {
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
struct Index {
    first: HashMap<u64, u32>,
    /// Records whose key's hash was taken (almost never).
    more: Vec<(u64, u32)>,
}

impl Index {
    /// The record with key hash `hash` that passes `is`.
    fn find(&self, hash: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        let first = self.first.get(&hash).map(|&i| i as usize).filter(|&i| is(i));
        first.or_else(|| self.more.iter().filter(|(h, _)| *h == hash).map(|&(_, i)| i as usize).find(|&i| is(i)))
    }

    fn insert(&mut self, hash: u64, index: usize) {
        let index = index as u32;
        match self.first.get(&hash) {
            Some(&i) if i != index => self.more.push((hash, index)),
            _ => {
                self.first.insert(hash, index);
            }
        }
    }

    fn remove(&mut self, hash: u64, index: usize) {
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
fn key(a: &str, b: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    a.hash(&mut h);
    b.hash(&mut h);
    h.finish()
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
        account: account.to_string(),
        dir: dir.to_string(),
        mailbox: mailbox.clone(),
        uidvalidity,
        retired: false,
        uidnext: None,
        separator: None,
    }
}

fn account_line(a: &AccountRecord) -> Value {
    let mut line =
        json!({"kind": "account", "dir": a.dir, "user": a.user, "servers": a.servers, "migrated": a.migrated});
    if !a.evidence.is_empty() {
        line["evidence"] = a
            .evidence
            .iter()
            .map(|s| {
                json!({"mailbox": s.mailbox, "uidvalidity": s.uidvalidity, "uid": s.uid, "size": s.size, "header": s.header})
            })
            .collect();
    }
    if let Some(day) = a.evidence_day {
        line["evidence_day"] = day.into();
    }
    if let Some(ns) = &a.namespace {
        line["namespace"] = json!({"prefix": ns.prefix, "separator": ns.separator.map(String::from)});
    }
    line
}

/// A folder's line: fields left out where they say nothing (no UIDVALIDITY yet, not
/// retired, a name that is its wire name), a few dozen bytes each.
fn folder_line(f: &FolderRecord) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), "folder".into());
    m.insert("account".into(), f.account.clone().into());
    m.insert("dir".into(), f.dir.clone().into());
    m.insert("mailbox".into(), f.mailbox.wire.clone().into());
    let name = f.mailbox.name();
    if name != f.mailbox.wire {
        m.insert("name".into(), name.into());
    }
    if let Some(v) = f.uidvalidity {
        m.insert("uidvalidity".into(), v.into());
    }
    if let Some(n) = f.uidnext {
        m.insert("uidnext".into(), n.into());
    }
    if f.retired {
        m.insert("retired".into(), true.into());
    }
    if let Some(sep) = f.separator {
        m.insert("separator".into(), String::from(sep).into());
    }
    Value::Object(m)
}

fn folder_record(f: &Value) -> std::result::Result<FolderRecord, String> {
    let uid = |key: &str| -> std::result::Result<Option<u32>, String> {
        match f.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().and_then(|u| u32::try_from(u).ok()).map(Some).ok_or_else(|| format!("bad {key} {v}")),
        }
    };
    Ok(FolderRecord {
        account: dir_field(f, "account")?,
        dir: dir_field(f, "dir")?,
        mailbox: Mailbox::from_wire(&str_field(f, "mailbox")?),
        uidvalidity: uid("uidvalidity")?,
        retired: f.get("retired").and_then(Value::as_bool).unwrap_or(false),
        uidnext: uid("uidnext")?,
        separator: f.get("separator").and_then(separator_field),
    })
}

fn sample(v: &Value) -> std::result::Result<Sample, String> {
    let number = |key: &str| {
        v.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or(format!("evidence without {key}"))
    };
    Ok(Sample {
        mailbox: str_field(v, "mailbox")?,
        uidvalidity: number("uidvalidity")?,
        uid: number("uid")?,
        size: number("size")?,
        header: str_field(v, "header")?,
    })
}

/// The directory for `name` among the entries of `parent`: its canonical name unless a
/// record (`taken`) owns that, or something other than a directory is there; else the
/// first free fallback. An existing canonical directory without a record is the
/// original's (or 0.6's) for this name, and is adopted.
fn choose_dir(parent: &Path, name: &str, key: &str, taken: impl Fn(&str) -> bool) -> String {
    if let Some(c) = canonical_dir(name) {
        let path = parent.join(&c);
        if !taken(&c) && (path.symlink_metadata().is_err() || is_real_dir(&path)) {
            return c;
        }
    }
    let mut n = 1;
    loop {
        let f = fallback_dir(name, key, n);
        if !taken(&f) && parent.join(&f).symlink_metadata().is_err() {
            return f;
        }
        n += 1;
    }
}

/// Whether `path` is a directory itself, not a symlink to one.
fn is_real_dir(path: &Path) -> bool {
    path.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false)
}

/// A 0.6 state file's mailbox name and UIDVALIDITY; `None` when there is none.
fn read_old_state(dir: &Path) -> Result<Option<(String, u32)>> {
    let path = dir.join(OLD_STATE_FILE);
    let text = match bounded::read_file(&path, MAX_OLD_STATE_SIZE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&path),
    };
    let bad = || Error::runtime(format!("{}: not a state file of version 0.6", path.display()));
    let v: Value = serde_json::from_slice(&text).map_err(|_| bad())?;
    let uidvalidity =
        v.get("uidvalidity").and_then(Value::as_u64).and_then(|u| u32::try_from(u).ok()).ok_or_else(bad)?;
    let mailbox = v.get("mailbox").and_then(Value::as_str).ok_or_else(bad)?.to_string();
    Ok(Some((mailbox, uidvalidity)))
}

/// A hierarchy separator from the records: one character (anything else is unknown).
fn separator_field(v: &Value) -> Option<char> {
    let mut chars = v.as_str()?.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// A namespace from the records: `{"prefix": "INBOX.", "separator": "."}`.
fn namespace_field(v: &Value) -> Option<Hierarchy> {
    let prefix = v.get("prefix")?.as_str()?.to_string();
    Some(Hierarchy { prefix, separator: v.get("separator").and_then(separator_field) })
}

fn str_field(v: &Value, key: &str) -> std::result::Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("a record without \"{key}\""))
}

/// A directory name from the records: one plain path component, so a tampered records
/// file cannot point a write outside the root.
fn dir_field(v: &Value, key: &str) -> std::result::Result<String, String> {
    let d = str_field(v, key)?;
    if d.is_empty() || d == "." || d == ".." || d.contains(['/', '\0']) {
        return Err(format!("{key} {d:?} is not a directory name"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Root {
            let p = std::env::temp_dir().join(format!("registry-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Root(p)
        }

        fn records(&self) -> String {
            fs::read_to_string(self.0.join(META_DIR).join(RECORDS_FILE)).unwrap()
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mb(name: &str) -> Mailbox {
        Mailbox::from_arg(name)
    }

    #[test]
    fn every_name_gets_a_directory_of_its_own_and_keeps_it() {
        let root = Root::new("names");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("Imap.Example.org:993", "alice", None).unwrap();
        assert_eq!(acct, "alice");
        let names = ["Отправленные", "Корзина", "日本語", "!!!", "a/b", "ab", "Reçus", "INBOX"];
        let mut dirs = Vec::new();
        for n in names {
            dirs.push(
                r.open_folder(&acct, &mb(n), 7).unwrap().path.file_name().unwrap().to_string_lossy().into_owned(),
            );
        }
        assert_eq!(dirs[4], "ab");
        assert!(dirs[5].starts_with("ab~"), "{dirs:?}");
        assert_eq!(dirs[6], "ReAOc-us");
        assert_eq!(dirs[7], "INBOX");
        let unique: std::collections::HashSet<_> = dirs.iter().collect();
        assert_eq!(unique.len(), names.len(), "{dirs:?}");
        // Read back from disk: the same mapping, whatever order folders come in now.
        let mut again = Registry::open(&root.0).unwrap();
        assert_eq!(again.claim_account("imap.example.org:993", "alice", None).unwrap(), "alice");
        for (n, d) in names.iter().zip(&dirs).rev() {
            assert_eq!(&again.folder_dir(&acct, &mb(n)), d);
        }
        // The same user on another server gets another user directory.
        let other = again.claim_account("imap.other.net:993", "alice", None).unwrap();
        assert!(other.starts_with("alice~"), "{other}");
        // A server recognised as the same mailstore is recorded for the first directory.
        assert_eq!(again.claim_account("127.0.0.1:993", "alice", Some("alice")).unwrap(), "alice");
        let again = Registry::read(&root.0).unwrap();
        assert_eq!(again.account_dir("127.0.0.1:993", "alice"), "alice");
        assert_eq!(again.account_of("alice").unwrap().servers, ["imap.example.org:993", "127.0.0.1:993"]);
    }

    #[test]
    fn uidvalidity_change_moves_the_directory_aside() {
        let root = Root::new("uidv");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("h:1", "u", None).unwrap();
        let f = r.open_folder(&acct, &mb("Work"), 5).unwrap();
        fs::write(f.path.join("1.mbox"), b"From x\nmsg").unwrap();
        assert!(f.retired.is_none());
        let f2 = r.open_folder(&acct, &mb("Work"), 9).unwrap();
        let (old, aside) = f2.retired.expect("moved aside");
        assert_eq!(old, 5);
        assert_eq!(aside, root.0.join("u/Work.uidvalidity-5"));
        assert!(aside.join("1.mbox").exists() && f2.path.read_dir().unwrap().next().is_none());
        let again = Registry::read(&root.0).unwrap();
        assert!(again.folder_at("u", "Work.uidvalidity-5").is_some_and(|f| f.retired && f.uidvalidity == Some(5)));
        assert_eq!(again.folder_at("u", "Work").and_then(|f| f.uidvalidity), Some(9));
        // A mailbox whose name is the aside directory's never gets into it.
        let mut again = Registry::open(&root.0).unwrap();
        assert_ne!(again.open_folder(&acct, &mb("Work.uidvalidity-5"), 1).unwrap().path, aside);
    }

    #[test]
    fn moving_aside_never_lands_on_a_directory_that_is_there() {
        let root = Root::new("aside");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("h:1", "u", None).unwrap();
        let f = r.open_folder(&acct, &mb("Work"), 5).unwrap();
        fs::write(f.path.join("2.mbox"), b"From x\nnew").unwrap();
        // A directory of that name already there (put back by hand, or an older copy).
        let there = root.0.join("u/Work.uidvalidity-5");
        fs::create_dir(&there).unwrap();
        fs::write(there.join("1.mbox"), b"From x\nold").unwrap();
        let (_, aside) = r.open_folder(&acct, &mb("Work"), 9).unwrap().retired.expect("moved aside");
        assert_eq!(aside, root.0.join("u/Work.uidvalidity-5-2"));
        assert!(aside.join("2.mbox").exists() && there.join("1.mbox").exists());
    }

    #[test]
    fn a_version_06_user_directory_is_converted_without_refetching() {
        let root = Root::new("migrate");
        let user = root.0.join("alice");
        for (dir, mailbox, v) in [("INBOX", "INBOX", 3), ("Reus", "Reçus", 4), ("Work.uidvalidity-2", "Work", 2)] {
            fs::create_dir_all(user.join(dir)).unwrap();
            fs::write(user.join(dir).join("1.mbox"), b"From x\nm").unwrap();
            fs::write(user.join(dir).join(OLD_STATE_FILE), json!({"uidvalidity": v, "mailbox": mailbox}).to_string())
                .unwrap();
        }
        fs::write(user.join("INBOX").join(".smailarchiver-tmp-1.2.5.mbox"), b"half").unwrap();
        // A folder the original made: no state, adopted when first backed up.
        fs::create_dir_all(user.join("Sent")).unwrap();
        let mut r = Registry::open(&root.0).unwrap();
        assert_eq!(r.claim_account("h:1", "alice", None).unwrap(), "alice");
        for dir in ["INBOX", "ReAOc-us", "Work.uidvalidity-2", "Sent"] {
            let names: Vec<_> = fs::read_dir(user.join(dir)).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert!(names.iter().all(|n| n == "1.mbox"), "{dir}: {names:?}");
        }
        assert!(!user.join("Reus").exists());
        assert_eq!(r.open_folder("alice", &mb("Reçus"), 4).unwrap().path, user.join("ReAOc-us"));
        assert!(r.open_folder("alice", &mb("Reçus"), 4).unwrap().retired.is_none());
        assert_eq!(r.open_folder("alice", &mb("Sent"), 8).unwrap().path, user.join("Sent"));
        assert!(r.folder_at("alice", "Work.uidvalidity-2").is_some_and(|f| f.retired));
        assert_eq!(fs::read_dir(r.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn symlinks_and_tampered_records_are_refused() {
        let root = Root::new("links");
        let outside = Root::new("links-outside");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("h:1", "u", None).unwrap();
        std::os::unix::fs::symlink(&outside.0, root.0.join("u/INBOX")).unwrap();
        let d = r.open_folder(&acct, &mb("INBOX"), 1).unwrap();
        assert_ne!(d.path, root.0.join("u/INBOX"), "a symlink is not adopted");
        let mut text = root.records();
        text.push_str(&json!({"kind": "folder", "account": "u", "dir": "../../etc", "mailbox": "x"}).to_string());
        text.push('\n');
        fs::write(root.0.join(META_DIR).join(RECORDS_FILE), text).unwrap();
        let e = Registry::read(&root.0).unwrap_err().to_string();
        assert!(e.contains("is not a directory name"), "{e}");
    }

    /// Records that give one directory two owners are refused when read, in one line
    /// naming both: whether the two lines come from the log or the legacy document.
    #[test]
    fn two_owners_of_one_directory_are_refused_naming_both() {
        let root = Root::new("owners");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("h:1", "alice", None).unwrap();
        r.open_folder(&acct, &mb("Sent"), 3).unwrap();
        drop(r);
        let path = root.0.join(META_DIR).join(RECORDS_FILE);
        let clean = root.records();
        let add = |line: Value| {
            fs::write(&path, format!("{clean}{line}\n")).unwrap();
            let e = Registry::read(&root.0).unwrap_err().to_string();
            assert!(!e.contains('\n'), "one line: {e}");
            e
        };
        let e = add(json!({"kind": "folder", "account": "alice", "dir": "Sent", "mailbox": "Drafts"}));
        assert!(e.contains("two mailboxes own the directory alice/Sent: Sent and Drafts"), "{e}");
        let e = add(json!({"kind": "folder", "account": "alice", "dir": "Sent2", "mailbox": "Sent"}));
        assert!(e.contains("the mailbox Sent of alice is recorded in two directories: Sent and Sent2"), "{e}");
        let e = add(json!({"kind": "account", "dir": "alice", "user": "bob", "servers": ["x:993"]}));
        assert!(e.contains("two accounts own the directory alice: alice on h:1 and bob on x:993"), "{e}");
        let e = add(json!({"kind": "account", "dir": "alice2", "user": "alice", "servers": ["h:1"]}));
        assert!(e.contains("alice on h:1 is recorded for two directories: alice and alice2"), "{e}");
        // A retired directory of the same mailbox is no conflict; the same line again neither.
        add_ok(
            &path,
            &clean,
            json!({"kind": "folder", "account": "alice", "dir": "Sent.x", "mailbox": "Sent", "retired": true}),
        );
        add_ok(
            &path,
            &clean,
            json!({"kind": "folder", "account": "alice", "dir": "Sent", "mailbox": "Sent", "uidnext": 9}),
        );

        fs::remove_file(&path).unwrap();
        let legacy = root.0.join(META_DIR).join(records_log::LEGACY_FILE);
        fs::write(
            &legacy,
            json!({"format": 1, "accounts": [
                {"dir": "alice", "server": "h:1", "user": "alice"}, {"dir": "alice", "server": "x:2", "user": "bob"}],
                "folders": []})
            .to_string(),
        )
        .unwrap();
        let e = Registry::read(&root.0).unwrap_err().to_string();
        assert!(e.contains("two accounts own the directory alice: alice on h:1 and bob on x:2"), "{e}");
    }

    fn add_ok(path: &Path, clean: &str, line: Value) {
        fs::write(path, format!("{clean}{line}\n")).unwrap();
        Registry::read(path.parent().unwrap().parent().unwrap()).unwrap();
    }

    /// A change costs a line, not a rewrite: claiming a thousand folders appends a thousand
    /// short lines in one write; the log is compacted only once replaced lines outnumber
    /// the live ones.
    #[test]
    fn records_grow_by_the_change_and_are_compacted() {
        let root = Root::new("log");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("h:1", "u", None).unwrap();
        let names: Vec<Mailbox> = (0..1000).map(|i| mb(&format!("P{}/F{i:04}", i / 100))).collect();
        let claims: Vec<Claim<'_>> =
            names.iter().map(|m| Claim { mailbox: m, uidvalidity: Some(7), separator: Some('/') }).collect();
        r.claim_folders(&acct, &claims).unwrap();
        let size = root.records().len();
        assert!(size < 1000 * 120, "{size} bytes for 1000 folders");
        assert_eq!(root.records().lines().count(), 1 + 1 + 1000);
        assert!(root.0.join("u/PF0999").is_dir() || root.0.join("u").read_dir().unwrap().count() == 1000);
        for m in &names {
            r.open_folder(&acct, m, 7).unwrap();
            r.set_complete(&acct, m, 42).unwrap();
        }
        r.flush().unwrap();
        // 1000 marks replaced 1000 lines: not yet more than the live records plus slack.
        assert_eq!(root.records().lines().count(), 1 + 1 + 2000);
        for round in 0..5 {
            for m in &names {
                r.set_complete(&acct, m, 43 + round).unwrap();
            }
        }
        r.flush().unwrap();
        // 5000 more lines written; the file never holds more than twice the records.
        let lines = root.records().lines().count();
        assert!(lines <= 1 + 2 * 1001 + SLACK_LINES, "compacted: {lines} lines");
        drop(r);
        let again = Registry::read(&root.0).unwrap();
        assert!(again.folders_of(&acct).iter().all(|f| f.complete_at() == Some((7, 47))));
    }

    /// The legacy document is read, and converted by the first backup: records kept,
    /// nothing fetched again, the old file gone.
    #[test]
    fn legacy_records_are_converted() {
        let root = Root::new("legacy");
        fs::create_dir_all(root.0.join(META_DIR)).unwrap();
        fs::create_dir_all(root.0.join("alice/INBOX")).unwrap();
        let legacy = root.0.join(META_DIR).join(records_log::LEGACY_FILE);
        let doc = json!({"format": 1, "accounts": [{"dir": "alice", "server": "H:993", "user": "alice", "migrated": true}],
            "folders": [{"account": "alice", "dir": "INBOX", "mailbox": "INBOX", "name": "INBOX", "uidvalidity": 5,
                         "uidnext": 10, "retired": false}]});
        fs::write(&legacy, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let read = Registry::read(&root.0).unwrap();
        assert_eq!(read.account_dir("h:993", "alice"), "alice");
        assert_eq!(read.folder_at("alice", "INBOX").unwrap().complete_at(), Some((5, 10)));
        let mut r = Registry::open(&root.0).unwrap();
        assert!(!legacy.exists());
        assert_eq!(r.claim_account("h:993", "alice", None).unwrap(), "alice");
        let again = Registry::read(&root.0).unwrap();
        assert_eq!(again.folder_at("alice", "INBOX").unwrap().complete_at(), Some((5, 10)));
    }

    #[test]
    fn the_journals_directory_is_the_metadata_modules() {
        assert_eq!(JOURNALS_DIR, crate::archive::metadata::METADATA_DIR);
    }

    /// Marks wait for the journals they vouch for: those are synced first.
    #[test]
    fn marks_are_written_after_the_journals_are_synced() {
        let root = Root::new("marks");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("h:1", "u", None).unwrap();
        r.open_folder(&acct, &mb("INBOX"), 1).unwrap();
        let journal = root.0.join(META_DIR).join(JOURNALS_DIR).join("u").join("j");
        fs::write(&journal, "x").unwrap();
        r.sync_before_marks(&journal);
        r.set_complete(&acct, &mb("INBOX"), 5).unwrap();
        assert!(!root.records().contains("\"uidnext\""), "not written before the flush");
        crate::os::dir::tests::synced();
        r.flush().unwrap();
        assert!(root.records().contains("\"uidnext\":5"));
    }
}
