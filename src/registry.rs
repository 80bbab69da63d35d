//! The archive root's own records, kept in `ROOT/.smailarchiver/`: which account each user
//! directory belongs to, which mailbox each folder directory belongs to and at which
//! UIDVALIDITY, and the temporary files of messages being written.
//!
//! Keeping them there leaves folder directories holding nothing but `UID.mbox[.gz][.enc]`
//! files, which the original program's restore loop needs (it dies when the first entry it
//! lists is anything else). And a directory, once made, keeps its owner: whatever folders
//! or accounts appear later, mail of another mailbox or another server is never mixed in.

use std::fs::{self, DirBuilder};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::atomic::{self, TempFile};
use crate::bounded;
use crate::dir::Dir;
use crate::error::{Error, IoContext, Result};
use crate::hierarchy::Hierarchy;
use crate::mailbox_name::{canonical_dir, encode_utf7, fallback_dir, safe, Mailbox};

/// The tool's own directory in an archive root.
pub const META_DIR: &str = ".smailarchiver";
/// The records file in [`META_DIR`].
pub const RECORDS_FILE: &str = "directories.json";
/// Where messages are written before they are renamed into their folder directory (the
/// same file system, so the rename is atomic).
pub const TMP_DIR: &str = "tmp";
/// Where version 0.6 kept a folder's state: inside the folder directory.
const OLD_STATE_FILE: &str = ".smailarchiver-state.json";
/// The records of even a huge account are far below this.
const MAX_RECORDS_SIZE: usize = 64 << 20;
/// A 0.6 state file is one short line.
const MAX_OLD_STATE_SIZE: usize = 64 * 1024;
/// Version of the records file's layout.
const FORMAT: u64 = 1;

/// The owner of a user directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    /// The user directory's name in the root.
    pub dir: String,
    /// The server as `host:port`, the host lowercased: two servers behind one host (SSH
    /// tunnels on two ports) are two servers.
    pub server: String,
    /// The login name.
    pub user: String,
    /// Whether the directory was checked for a version 0.6 layout (done once).
    pub migrated: bool,
    /// The server's personal namespace (NAMESPACE), once a backup asked it: an upload
    /// to another server translates the folders' names with it.
    pub namespace: Option<Hierarchy>,
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

/// The records of one archive root.
#[derive(Debug)]
pub struct Registry {
    root: PathBuf,
    /// The root and the tool's directories in it, once opened for a backup.
    opened: Option<Opened>,
    accounts: Vec<AccountRecord>,
    folders: Vec<FolderRecord>,
    /// Completion marks not saved yet (see [`Registry::set_complete`]).
    unsaved: bool,
}

impl Registry {
    /// Reads the records of `root`, writing nothing; empty when there are none (an archive
    /// of the original program or of version 0.6, or none at all).
    pub fn read(root: &Path) -> Result<Registry> {
        let path = root.join(META_DIR).join(RECORDS_FILE);
        let mut registry = Registry {
            root: root.to_path_buf(),
            opened: None,
            accounts: Vec::new(),
            folders: Vec::new(),
            unsaved: false,
        };
        let text = match bounded::read_file(&path, MAX_RECORDS_SIZE) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(registry),
            Err(e) => return Err(e).at(&path),
        };
        // What a user can do about it: the records are rebuilt from the directories'
        // names when the file is moved away (a `~` directory is then not recognised and
        // its folder is fetched again into a new one; nothing is lost).
        let bad = |why: String| {
            Error::runtime(format!(
                "{}: {why}; restore it from a backup, or move it away to start the records afresh",
                path.display()
            ))
        };
        let top: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not valid JSON ({e})")))?;
        if top.get("format").and_then(Value::as_u64) != Some(FORMAT) {
            return Err(bad(format!("not a records file of format {FORMAT} (made by a newer version?)")));
        }
        for a in top.get("accounts").and_then(Value::as_array).into_iter().flatten() {
            registry.accounts.push(AccountRecord {
                dir: dir_field(a, "dir").map_err(bad)?,
                server: str_field(a, "server").map_err(bad)?,
                user: str_field(a, "user").map_err(bad)?,
                migrated: a.get("migrated").and_then(Value::as_bool).unwrap_or(false),
                namespace: a.get("namespace").and_then(namespace_field),
            });
        }
        for f in top.get("folders").and_then(Value::as_array).into_iter().flatten() {
            let uidvalidity = match f.get("uidvalidity") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|u| u32::try_from(u).ok())
                        .ok_or_else(|| bad(format!("bad uidvalidity {v}")))?,
                ),
            };
            registry.folders.push(FolderRecord {
                account: dir_field(f, "account").map_err(bad)?,
                dir: dir_field(f, "dir").map_err(bad)?,
                mailbox: Mailbox::from_wire(&str_field(f, "mailbox").map_err(bad)?),
                uidvalidity,
                retired: f.get("retired").and_then(Value::as_bool).unwrap_or(false),
                uidnext: f.get("uidnext").and_then(Value::as_u64).and_then(|u| u32::try_from(u).ok()),
                separator: f.get("separator").and_then(separator_field),
            });
        }
        Ok(registry)
    }

    /// Opens the records of `root` for a backup, with the root's lock held: makes the tool's
    /// directory and removes the temporary files of a killed run.
    pub fn open(root: &Path) -> Result<Registry> {
        let mut registry = Registry::read(root)?;
        let root_dir = Dir::open(root).at(root)?;
        let meta = root_dir.make_child(META_DIR).at(&root.join(META_DIR))?;
        let tmp = meta.make_child(TMP_DIR).at(&registry.tmp_dir())?;
        atomic::remove_leftovers(&registry.tmp_dir()).at(&registry.tmp_dir())?;
        registry.opened = Some(Opened { root: root_dir, meta, tmp: Arc::new(tmp) });
        Ok(registry)
    }

    /// The root and the tool's directories, opened by [`Registry::open`].
    fn opened(&self) -> Result<&Opened> {
        self.opened.as_ref().ok_or_else(|| Error::runtime("the archive's records were opened read-only"))
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

    /// The folder directories recorded in the user directory `account`, in name order.
    pub fn folders_of(&self, account: &str) -> Vec<&FolderRecord> {
        let mut v: Vec<&FolderRecord> = self.folders.iter().filter(|f| f.account == account).collect();
        v.sort_by(|a, b| a.dir.cmp(&b.dir));
        v
    }

    /// The record of folder directory `dir` in user directory `account`, if any.
    pub fn folder_at(&self, account: &str, dir: &str) -> Option<&FolderRecord> {
        self.folders.iter().find(|f| f.account == account && f.dir == dir)
    }

    /// The user directory of `user` on `server` (`host:port`): recorded, or the one a backup would make,
    /// without writing anything.
    pub fn account_dir(&self, server: &str, user: &str) -> String {
        let server = server.to_ascii_lowercase();
        if let Some(a) = self.accounts.iter().find(|a| a.server == server && a.user == user) {
            return a.dir.clone();
        }
        let taken = |d: &str| self.accounts.iter().any(|a| a.dir == d);
        choose_dir(&self.root, user, &format!("{user}@{server}"), taken)
    }

    /// Makes (or finds) the user directory of `user` on `server` and records it; a
    /// directory of version 0.6 is converted to this layout on the way.
    pub fn claim_account(&mut self, server: &str, user: &str) -> Result<String> {
        let dir = self.account_dir(server, user);
        let server = server.to_ascii_lowercase();
        let known = self.accounts.iter().position(|a| a.dir == dir);
        let index = match known {
            Some(i) => i,
            None => {
                // A directory that did not exist has nothing to convert.
                let migrated = !self.root.join(&dir).exists();
                let user = user.to_string();
                self.accounts.push(AccountRecord { dir: dir.clone(), server, user, migrated, namespace: None });
                self.save()?;
                self.accounts.len() - 1
            }
        };
        make_dir(&self.root.join(&dir))?;
        if !self.accounts[index].migrated {
            self.migrate(&dir)?;
            self.accounts[index].migrated = true;
            self.save()?;
        }
        Ok(dir)
    }

    /// The folder directory of `mailbox` in user directory `account`: recorded, or the one
    /// a backup would make, without writing anything.
    pub fn folder_dir(&self, account: &str, mailbox: &Mailbox) -> String {
        if let Some(f) = self.live(account, mailbox) {
            return self.folders[f].dir.clone();
        }
        let taken = |d: &str| self.folders.iter().any(|f| f.account == account && f.dir == d);
        choose_dir(&self.root.join(account), &mailbox.wire, &mailbox.wire, taken)
    }

    /// The folder directory of `mailbox` that a backup claiming folders in this order would
    /// make, reserved in memory only (nothing is saved): for `--list-folders`.
    pub fn plan_folder(&mut self, account: &str, mailbox: &Mailbox) -> String {
        let dir = self.folder_dir(account, mailbox);
        if self.live(account, mailbox).is_none() {
            self.folders.push(FolderRecord {
                account: account.to_string(),
                dir: dir.clone(),
                mailbox: mailbox.clone(),
                uidvalidity: None,
                retired: false,
                uidnext: None,
                separator: None,
            });
        }
        dir
    }

    /// Makes the folder directory of `mailbox` ready for a backup of its messages at
    /// `uidvalidity`. When the mailbox's UIDVALIDITY changed (it was recreated, its UIDs
    /// now mean other mail), the old directory is moved aside to `DIR.uidvalidity-OLD` and
    /// a fresh one is made: nothing is skipped, nothing overwritten.
    pub fn open_folder(&mut self, account: &str, mailbox: &Mailbox, uidvalidity: u32) -> Result<OpenFolder> {
        let user_dir = self.root.join(account);
        let mut changed = false;
        let index = match self.live(account, mailbox) {
            Some(i) => i,
            None => {
                let dir = self.folder_dir(account, mailbox);
                self.folders.push(FolderRecord {
                    account: account.to_string(),
                    dir,
                    mailbox: mailbox.clone(),
                    uidvalidity: None,
                    retired: false,
                    uidnext: None,
                    separator: None,
                });
                changed = true;
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
                // Also when a run was killed between the rename and the save.
                if is_real_dir(&aside_path) {
                    self.folders.push(FolderRecord {
                        account: account.to_string(),
                        dir: aside,
                        mailbox: mailbox.clone(),
                        uidvalidity: Some(old),
                        retired: true,
                        uidnext: None,
                        separator: self.folders[index].separator,
                    });
                    retired = Some((old, aside_path));
                }
                self.folders[index].uidvalidity = Some(uidvalidity);
                self.folders[index].uidnext = None;
                changed = true;
            }
            None => {
                self.folders[index].uidvalidity = Some(uidvalidity);
                changed = true;
            }
        }
        if changed {
            self.save()?;
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
    /// completed without a failure). Saved with the next change or by [`Registry::flush`]:
    /// one write per account instead of one per folder, and a mark lost in a crash only
    /// makes the next run look at the folder's every UID again.
    pub fn set_complete(&mut self, account: &str, mailbox: &Mailbox, uidnext: u32) {
        if let Some(i) = self.live(account, mailbox) {
            self.unsaved |= self.folders[i].uidnext != Some(uidnext);
            self.folders[i].uidnext = Some(uidnext);
        }
    }

    /// Records the hierarchy a backup learned of `account`'s server: its personal
    /// namespace, and each listed mailbox's separator (`separators`, by wire name). Saved
    /// like [`Registry::set_complete`]'s marks.
    pub fn set_hierarchy(&mut self, account: &str, namespace: Option<&Hierarchy>, separators: &[(&str, Option<char>)]) {
        if let (Some(ns), Some(a)) = (namespace, self.accounts.iter_mut().find(|a| a.dir == account)) {
            self.unsaved |= a.namespace.as_ref() != Some(ns);
            a.namespace = Some(ns.clone());
        }
        for f in self.folders.iter_mut().filter(|f| f.account == account) {
            let listed = separators.iter().find(|(wire, _)| *wire == f.mailbox.wire).and_then(|(_, sep)| *sep);
            if let Some(sep) = listed.filter(|&s| f.separator != Some(s)) {
                f.separator = Some(sep);
                self.unsaved = true;
            }
        }
    }

    /// Saves what [`Registry::set_complete`] recorded, if anything.
    pub fn flush(&mut self) -> Result<()> {
        if self.unsaved {
            self.save()?;
        }
        Ok(())
    }

    /// The live record of `mailbox` in `account`.
    fn live(&self, account: &str, mailbox: &Mailbox) -> Option<usize> {
        self.folders.iter().position(|f| f.account == account && !f.retired && f.mailbox == *mailbox)
    }

    fn recorded(&self, account: &str, dir: &str) -> bool {
        self.folders.iter().any(|f| f.account == account && f.dir == dir)
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
                self.folders.push(FolderRecord {
                    account: account.to_string(),
                    dir: final_name.clone(),
                    mailbox,
                    uidvalidity: Some(uidvalidity),
                    retired: !live,
                    uidnext: None,
                    separator: None,
                });
                self.save()?;
            }
            let state = user_dir.join(&final_name).join(OLD_STATE_FILE);
            fs::remove_file(&state).at(&state)?;
            atomic::sync_dir(&user_dir.join(&final_name)).at(&user_dir.join(&final_name))?;
        }
        Ok(())
    }

    /// Writes the records atomically.
    fn save(&mut self) -> Result<()> {
        self.unsaved = false;
        let meta = self.root.join(META_DIR);
        let accounts: Vec<Value> = self
            .accounts
            .iter()
            .map(|a| {
                let mut v = json!({"dir": a.dir, "server": a.server, "user": a.user, "migrated": a.migrated});
                if let Some(ns) = &a.namespace {
                    v["namespace"] = json!({"prefix": ns.prefix, "separator": ns.separator.map(String::from)});
                }
                v
            })
            .collect();
        let folders: Vec<Value> = self
            .folders
            .iter()
            .map(|f| {
                let mut v = json!({"account": f.account, "dir": f.dir, "mailbox": f.mailbox.wire, "name": f.mailbox.name(),
                       "uidvalidity": f.uidvalidity, "uidnext": f.uidnext, "retired": f.retired});
                if let Some(sep) = f.separator {
                    v["separator"] = json!(String::from(sep));
                }
                v
            })
            .collect();
        let text = serde_json::to_string_pretty(&json!({"format": FORMAT, "accounts": accounts, "folders": folders}))
            .map_err(|e| Error::runtime(format!("encoding the records: {e}")))?;
        let target = meta.join(RECORDS_FILE);
        let tmp = TempFile::create_at(&self.opened()?.tmp, RECORDS_FILE, 0o600).at(&meta)?;
        tmp.file().write_all(text.as_bytes()).at(tmp.path())?;
        tmp.commit_at(&self.opened()?.meta, RECORDS_FILE, true).at(&target)
    }
}

/// The root and the tool's directories in it, held open while a backup writes.
#[derive(Debug)]
struct Opened {
    root: Dir,
    meta: Dir,
    tmp: Arc<Dir>,
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

/// Makes a directory (mode 0700 whatever the umask: it holds mail) unless it is there;
/// a symlink or a file in its place is an error, so nothing is written elsewhere.
pub fn make_dir(path: &Path) -> Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::runtime(format!(
            "{} is not a directory (a symlink or a file): refusing to write through it",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && is_real_dir(path) => Ok(()),
            Err(e) => Err(e).at(path),
        },
        Err(e) => Err(e).at(path),
    }
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
        let acct = r.claim_account("Imap.Example.org", "alice").unwrap();
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
        assert_eq!(again.claim_account("imap.example.org", "alice").unwrap(), "alice");
        for (n, d) in names.iter().zip(&dirs).rev() {
            assert_eq!(&again.folder_dir(&acct, &mb(n)), d);
        }
        // The same user on another server gets another user directory.
        let other = again.claim_account("imap.other.net", "alice").unwrap();
        assert!(other.starts_with("alice~"), "{other}");
    }

    #[test]
    fn uidvalidity_change_moves_the_directory_aside() {
        let root = Root::new("uidv");
        let mut r = Registry::open(&root.0).unwrap();
        let acct = r.claim_account("h", "u").unwrap();
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
        let acct = r.claim_account("h", "u").unwrap();
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
        assert_eq!(r.claim_account("h", "alice").unwrap(), "alice");
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
        let acct = r.claim_account("h", "u").unwrap();
        std::os::unix::fs::symlink(&outside.0, root.0.join("u/INBOX")).unwrap();
        let d = r.open_folder(&acct, &mb("INBOX"), 1).unwrap();
        assert_ne!(d.path, root.0.join("u/INBOX"), "a symlink is not adopted");
        fs::write(
            root.0.join(META_DIR).join(RECORDS_FILE),
            json!({"format": 1, "accounts": [], "folders": [{"account": "u", "dir": "../../etc", "mailbox": "x"}]})
                .to_string(),
        )
        .unwrap();
        let e = Registry::read(&root.0).unwrap_err().to_string();
        assert!(e.contains("is not a directory name"), "{e}");
    }
}
