//! The refresh token's file: a small JSON object, mode 0600, created and replaced
//! atomically (a temporary file beside it, synced, renamed over it) and never through a
//! symlink; read only when it is a regular file that nobody else may read. With the
//! archive's key the token is sealed (the archive's AES-256-CBC and HMAC-SHA256 framing,
//! bound to the account), so a copy of the file without the key file is useless.
//!
//! ```json
//! {"smailarchiver_oauth2": 1, "user": "...", "client_id": "...",
//!  "token_endpoint": "https://...", "refresh_token": "..."}
//! ```
//! (sealed: `"sealed_refresh_token": "BASE64"` in place of `"refresh_token"`). The client
//! id and endpoint tell a token of another client (a registration since replaced) from a
//! refused one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::archive::files::atomic::TempFile;
use crate::archive::metadata::line::LineCodec;
use crate::error::{describe_io, Error, Result};
use crate::imap::auth::Wiped;
use crate::keys::Keys;
use crate::secret::Secret;

/// The format's version.
const FORMAT: u64 = 1;
/// Largest token file read.
const MAX_FILE: usize = 64 * 1024;

/// What the file holds.
#[derive(Debug)]
pub struct Saved {
    /// The client the token was issued to.
    pub client_id: String,
    /// The endpoint it was issued by.
    pub token_endpoint: String,
    /// The refresh token.
    pub refresh: Secret,
}

/// One account's token file.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    user: String,
    /// Seals the token when the account asks for it.
    codec: Option<LineCodec>,
    /// The key to open a sealed file with, sealing or not.
    opener: Option<LineCodec>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).field("sealed", &self.codec.is_some()).finish()
    }
}

impl Store {
    /// The file at `path` for `user`; sealed with `keys` when `seal`. The keys also open a
    /// sealed file when the token is no longer to be sealed.
    pub fn new(path: PathBuf, user: &str, keys: Option<&Keys>, seal: bool) -> Store {
        let opener = keys.map(|k| LineCodec::new(Some(k.clone()), binding(user)));
        let codec = if seal { opener.clone() } else { None };
        Store { path, user: user.to_string(), codec, opener }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory it is in (made, mode 0700, when missing).
    pub fn ensure_dir(&self) -> Result<PathBuf> {
        let dir = crate::archive::files::atomic::parent_of(&self.path).to_path_buf();
        if !dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(crate::os::dir::DIR_MODE)
                .create(&dir)
                .map_err(|e| Error::runtime(format!("{}: {}", dir.display(), describe_io(&e))))?;
        }
        Ok(dir)
    }

    /// Whether the file exists (a symlink counts).
    pub fn exists(&self) -> bool {
        self.path.symlink_metadata().is_ok()
    }

    /// Reads the file.
    pub fn load(&self) -> Result<Saved> {
        let here = self.path.display();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|e| match (e.kind(), e.raw_os_error()) {
                (io::ErrorKind::NotFound, _) => Error::runtime(format!(
                    "no OAuth2 token file {here}: sign in once with --oauth2-login (same options)"
                )),
                (_, Some(libc::ELOOP)) => {
                    Error::runtime(format!("{here} is a symbolic link, not a token file: refusing to follow it"))
                }
                _ => Error::runtime(format!("{here}: {}", describe_io(&e))),
            })?;
        let meta = file.metadata().map_err(|e| Error::runtime(format!("{here}: {}", describe_io(&e))))?;
        if !meta.is_file() {
            return Err(Error::runtime(format!("{here} is not a regular file")));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(Error::runtime(format!(
                "{here} may be read by others (mode {:04o}): it holds a refresh token; chmod 600 it",
                meta.mode() & 0o7777
            )));
        }
        let mut raw = Wiped::with_capacity(MAX_FILE + 1);
        read_bounded(file, &mut raw).map_err(|e| Error::runtime(format!("{here}: {}", describe_io(&e))))?;
        let damaged = |why: &str| {
            Error::runtime(format!("{here}: not a token file of this tool ({why}): sign in again with --oauth2-login"))
        };
        let Ok(Value::Object(mut json)) = serde_json::from_slice::<Value>(raw.bytes()) else {
            return Err(damaged("not a JSON object"));
        };
        drop(raw);
        if json.get("smailarchiver_oauth2").and_then(Value::as_u64) != Some(FORMAT) {
            return Err(damaged("no \"smailarchiver_oauth2\": 1"));
        }
        let text = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
        let (client_id, token_endpoint) = match (text("client_id"), text("token_endpoint")) {
            (Some(c), Some(t)) => (c, t),
            _ => return Err(damaged("no client_id or token_endpoint")),
        };
        let refresh = if let Some(sealed) = text("sealed_refresh_token") {
            let Some(codec) = &self.opener else {
                return Err(Error::runtime(format!(
                    "{here} is sealed with the archive's key: give the key (-e, -k; config \"encrypt\", \"keys\")"
                )));
            };
            let plain = codec.decode(sealed.as_bytes()).map_err(|e| {
                Error::runtime(format!("{here}: the sealed token does not open with this key file ({e})"))
            })?;
            Secret::new(plain)
        } else {
            super::grant::take_secret(&mut json, "refresh_token").ok_or_else(|| damaged("no refresh token"))?
        };
        Ok(Saved { client_id, token_endpoint, refresh })
    }

    /// Writes the file: complete or not at all, mode 0600, replacing the old one.
    pub fn save(&self, saved: &Saved) -> Result<()> {
        let dir = self.ensure_dir()?;
        let here = self.path.display();
        let failed = |e: io::Error| Error::runtime(format!("saving the OAuth2 token in {here}: {}", describe_io(&e)));
        let mut text = Wiped::with_capacity(saved.refresh.expose().len() * 6 + 1024);
        text.push(format!("{{\"smailarchiver_oauth2\": {FORMAT}, ").as_bytes());
        for (key, value) in
            [("user", self.user.as_str()), ("client_id", &saved.client_id), ("token_endpoint", &saved.token_endpoint)]
        {
            text.push(format!("{}: {}, ", Value::from(key), Value::from(value)).as_bytes());
        }
        match &self.codec {
            Some(codec) => {
                let sealed = codec.encode(saved.refresh.expose()).map_err(failed)?;
                text.push(b"\"sealed_refresh_token\": \"");
                text.push(&sealed);
                text.push(b"\"}\n");
            }
            None => {
                text.push(b"\"refresh_token\": ");
                push_json_string(&mut text, saved.refresh.expose());
                text.push(b"}\n");
            }
        }
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = TempFile::create_in(&dir, &name, 0o600).map_err(failed)?;
        tmp.file().write_all(text.bytes()).map_err(failed)?;
        tmp.commit(&self.path, true).map_err(failed)
    }
}

/// What a sealed token is bound to: a sealed token moved to another account's file does
/// not open.
fn binding(user: &str) -> String {
    format!("oauth2 refresh token of {user}")
}

fn read_bounded(mut file: File, out: &mut Wiped) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.bytes().len() + n > MAX_FILE {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, format!("larger than {MAX_FILE} bytes")));
        }
        out.push(&buf[..n]);
    }
    buf.fill(0);
    Ok(())
}

/// `text` as a JSON string, into a wiped buffer.
fn push_json_string(out: &mut Wiped, text: &str) {
    out.push(b"\"");
    for c in text.chars() {
        match c {
            '"' => out.push(b"\\\""),
            '\\' => out.push(b"\\\\"),
            c if u32::from(c) < 0x20 => out.push(format!("\\u{:04x}", u32::from(c)).as_bytes()),
            c => {
                let mut b = [0u8; 4];
                out.push(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b"\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn keys() -> Keys {
        let text = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
        crate::keys::from_texts(Path::new("k"), text, None, None).unwrap()
    }

    fn saved(token: &str) -> Saved {
        Saved { client_id: "cid".into(), token_endpoint: "https://t/token".into(), refresh: Secret::new(token.into()) }
    }

    #[test]
    fn saved_plain_and_sealed_and_read_back() {
        let dir = std::env::temp_dir().join(format!("oauth2-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("sub/ann.token");
        let plain = Store::new(path.clone(), "ann", None, false);
        plain.save(&saved("1//r\"t\\ok\u{1}")).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir.join("sub")).unwrap().permissions().mode() & 0o777, 0o700);
        let got = plain.load().unwrap();
        assert_eq!((got.refresh.expose(), got.client_id.as_str()), ("1//r\"t\\ok\u{1}", "cid"));

        let k = keys();
        let sealed = Store::new(path.clone(), "ann", Some(&k), true);
        sealed.save(&saved("secret-refresh")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret-refresh") && text.contains("sealed_refresh_token"), "{text}");
        assert_eq!(sealed.load().unwrap().refresh.expose(), "secret-refresh");
        // Opened by the same key without sealing; not without the key; not for another user.
        assert_eq!(Store::new(path.clone(), "ann", Some(&k), false).load().unwrap().refresh.expose(), "secret-refresh");
        assert!(plain.load().unwrap_err().to_string().contains("sealed with the archive's key"));
        assert!(Store::new(path.clone(), "bob", Some(&k), true)
            .load()
            .unwrap_err()
            .to_string()
            .contains("does not open"));
        // No temporary file left.
        assert_eq!(fs::read_dir(dir.join("sub")).unwrap().count(), 1);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(sealed.load().unwrap_err().to_string().contains("chmod 600"));
        fs::remove_file(&path).unwrap();
        assert!(sealed.load().unwrap_err().to_string().contains("--oauth2-login"));
        std::os::unix::fs::symlink(dir.join("elsewhere"), &path).unwrap();
        assert!(sealed.load().unwrap_err().to_string().contains("symbolic link"));
        // Saving replaces the symlink itself, never writes where it points.
        plain.save(&saved("r2")).unwrap();
        assert!(!dir.join("elsewhere").exists());
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        fs::write(dir.join("sub/junk.token"), "{}").unwrap();
        fs::set_permissions(dir.join("sub/junk.token"), fs::Permissions::from_mode(0o600)).unwrap();
        let junk = Store::new(dir.join("sub/junk.token"), "ann", None, false);
        assert!(junk.load().unwrap_err().to_string().contains("not a token file"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
