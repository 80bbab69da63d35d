//! A folder's state file: the UIDVALIDITY its archive files belong to. The original's
//! restore ignores it (it does not end in `.mbox`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::atomic::TempFile;
use crate::error::{Error, IoContext, Result};

/// The state file's name inside a folder directory.
pub const STATE_FILE: &str = ".smailarchiver-state.json";

/// What the state file records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The folder's UIDVALIDITY when its files were archived.
    pub uidvalidity: u32,
    /// The mailbox name, for people reading the archive.
    pub mailbox: String,
}

/// The state file of a folder directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Reads the state file; `None` when there is none (a new folder, or one the original made).
pub fn read(dir: &Path) -> Result<Option<State>> {
    let p = path(dir);
    let text = match fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&p),
    };
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| Error::runtime(format!("{}: not valid JSON ({e})", p.display())))?;
    let uidvalidity = v
        .get("uidvalidity")
        .and_then(|u| u.as_u64())
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| Error::runtime(format!("{}: no valid \"uidvalidity\"", p.display())))?;
    let mailbox = v.get("mailbox").and_then(|m| m.as_str()).unwrap_or_default().to_string();
    Ok(Some(State { uidvalidity, mailbox }))
}

/// Writes the state file atomically.
pub fn write(dir: &Path, state: &State) -> Result<()> {
    let text = serde_json::json!({ "uidvalidity": state.uidvalidity, "mailbox": state.mailbox }).to_string();
    let tmp = TempFile::create_in(dir, STATE_FILE, 0o644).at(dir)?;
    tmp.file().write_all(text.as_bytes()).at(tmp.path())?;
    tmp.commit(&path(dir), true).at(&path(dir))
}
