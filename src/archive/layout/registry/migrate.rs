//! Converting a user directory of version 0.6, whose folder directories held their state
//! in a file of their own, to the records of this layout, without fetching anything again.

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::lines::folder_line;
use super::{new_folder, Registry};
use crate::archive::files::atomic;
use crate::archive::layout::naming::{canonical_dir, safe};
use crate::bounded;
use crate::error::{Error, IoContext, Result};
use crate::mailbox_name::{encode_utf7, Mailbox};
use crate::os::file;

/// Where version 0.6 kept a folder's state: inside the folder directory.
pub(super) const OLD_STATE_FILE: &str = ".smailarchiver-state.json";
/// A 0.6 state file is one short line.
const MAX_OLD_STATE_SIZE: usize = 64 * 1024;

impl Registry {
    /// Converts a user directory of version 0.6, whose folder directories held a state file
    /// (and, after a killed run, temporary files): each folder is recorded with its mailbox
    /// and UIDVALIDITY, moved to the directory this version names it by where that is free
    /// (`Reus` becomes `ReAOc-us`), and left holding only its messages. Nothing is fetched
    /// again. Every step can be repeated, so a run killed half way is finished by the next.
    pub(super) fn migrate(&mut self, account: &str) -> Result<()> {
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
                    file::sync_dir(&user_dir).at(&user_dir)?;
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
            file::sync_dir(&user_dir.join(&final_name)).at(&user_dir.join(&final_name))?;
        }
        Ok(())
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
