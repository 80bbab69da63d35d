//! Key files: `base64(R[64])`. Without a password R is the two keys; with one, R holds
//! two PBKDF2 salts and `{file}.sha` holds `base64(SHA256(R || password))` to reject a
//! wrong password before anything is decrypted.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::archive::files::atomic::TempFile;
use crate::bounded;
use crate::error::{Error, IoContext, Result};
use crate::secret::{Secret, Sources};

/// PBKDF2 rounds of the original (pycrypto's default), with HMAC-SHA1.
const KDF_ROUNDS: u32 = 1000;

/// The AES key and the HMAC key of an archive.
#[derive(Clone)]
pub struct Keys {
    enc: [u8; 32],
    sig: [u8; 32],
}

impl Keys {
    /// The AES-256 key.
    pub fn enc(&self) -> &[u8; 32] {
        &self.enc
    }

    /// The HMAC-SHA256 key.
    pub fn sig(&self) -> &[u8; 32] {
        &self.sig
    }

    /// Keys of a key file without password: the file's 64 bytes are the keys.
    fn from_raw(r: &[u8; 64]) -> Keys {
        let mut k = Keys { enc: [0; 32], sig: [0; 32] };
        k.enc.copy_from_slice(&r[..32]);
        k.sig.copy_from_slice(&r[32..]);
        k
    }

    /// Keys of a password-mode key file: each key is PBKDF2 of the password and one salt.
    fn derive(r: &[u8; 64], password: &Secret) -> Keys {
        let pw = kdf_bytes(password.expose());
        let mut k = Keys { enc: [0; 32], sig: [0; 32] };
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(&pw, &r[..32], KDF_ROUNDS, &mut k.enc);
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(&pw, &r[32..], KDF_ROUNDS, &mut k.sig);
        k
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        crate::os::wipe(&mut self.enc);
        crate::os::wipe(&mut self.sig);
    }
}

/// The password bytes the original's KDF saw: Latin-1 when every character fits,
/// otherwise UTF-8 (the original could not handle such passwords at all).
fn kdf_bytes(password: &str) -> Vec<u8> {
    if password.chars().all(|c| u32::from(c) <= 0xff) {
        password.chars().map(|c| u32::from(c) as u8).collect()
    } else {
        password.as_bytes().to_vec()
    }
}

/// `SHA256(R || utf8(password))`, the content of the `.sha` file.
fn password_check(r: &[u8; 64], password: &Secret) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(r);
    h.update(password.expose().as_bytes());
    h.finalize().into()
}

/// The path of the password check file beside a key file.
pub fn sha_path(key_file: &Path) -> PathBuf {
    let mut s = key_file.as_os_str().to_owned();
    s.push(".sha");
    PathBuf::from(s)
}

/// Reads a file of at most `cap` bytes, naming it in the error; a missing one is called `what`.
fn read_file(path: &Path, what: &str, cap: usize) -> Result<Vec<u8>> {
    bounded::read_file(path, cap).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::runtime(format!("{what} {} not found", path.display())),
        _ if bounded::is_too_large(&e) => {
            Error::runtime(format!("{what} {}: {}, not a {what}", path.display(), crate::error::describe_io(&e)))
        }
        _ => Error::runtime(format!("{}: {}", path.display(), crate::error::describe_io(&e))),
    })
}

/// Decodes base64 text of exactly `N` bytes, tolerating surrounding white space.
fn decode_b64<const N: usize>(text: &[u8], path: &Path, what: &str) -> Result<[u8; N]> {
    STANDARD
        .decode(text.trim_ascii())
        .ok()
        .and_then(|d| <[u8; N]>::try_from(d.as_slice()).ok())
        .ok_or_else(|| Error::runtime(format!("{}: not a valid {what} (expected base64 of {N} bytes)", path.display())))
}

/// Loads a key file. `password` is asked only after the key file was read: it returns
/// `Some` in password mode (checked against the `.sha` file), `None` otherwise.
pub fn load(path: &Path, password: impl FnOnce() -> Result<Option<Secret>>) -> Result<Keys> {
    let key_text = read_file(path, "key file", bounded::KEY_FILE)?;
    decode_b64::<64>(&key_text, path, "key file")?;
    let sha = sha_path(path);
    let password = password()?;
    let sha_text = match (&password, sha.exists()) {
        (Some(_), true) => Some(read_file(&sha, "password check file", bounded::SHA_FILE)?),
        (Some(_), false) => None,
        (None, exists) => exists.then(Vec::new),
    };
    from_texts(path, &key_text, sha_text.as_deref(), password.as_ref())
}

/// The keys from a key file's and a `.sha` file's contents (`sha_text` is `None` when
/// there is no `.sha` file). `path` only names the files in errors.
pub fn from_texts(path: &Path, key_text: &[u8], sha_text: Option<&[u8]>, password: Option<&Secret>) -> Result<Keys> {
    let r = decode_b64::<64>(key_text, path, "key file")?;
    let sha = sha_path(path);
    let Some(password) = password else {
        if sha_text.is_some() {
            return Err(Error::runtime(format!(
                "{} is password-protected ({} exists): add -P",
                path.display(),
                sha.display()
            )));
        }
        return Ok(Keys::from_raw(&r));
    };
    let Some(sha_text) = sha_text else {
        return Err(Error::runtime(format!(
            "{} not found: cannot check the key password (a key file made without -P needs no password)",
            sha.display()
        )));
    };
    let stored = decode_b64::<32>(sha_text, &sha, "password check file")?;
    let actual = password_check(&r, password);
    // Constant time: how much of the hash matched must not leak through timing.
    if stored.iter().zip(actual.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return Err(Error::runtime(format!("wrong key password for {}", path.display())));
    }
    Ok(Keys::derive(&r, password))
}

/// Where the keys come from: a key file and, in password mode, the password's sources.
#[derive(Clone, Debug)]
pub struct KeySpec {
    /// The key file.
    pub path: PathBuf,
    /// Password mode (`-P`): where to read the password.
    pub password: Option<PasswordSpec>,
}

/// Where a key password is read from (before the environment and the terminal).
#[derive(Clone, Debug, Default)]
pub struct PasswordSpec {
    /// `--key-password-file`.
    pub file: Option<PathBuf>,
    /// `--key-password-command`.
    pub command: Option<String>,
}

impl PasswordSpec {
    fn obtain(&self, confirm: bool) -> Result<Secret> {
        Sources {
            what: "key password",
            file: self.file.as_deref(),
            command: self.command.as_deref(),
            env: Some("SMAILARCHIVER_KEY_PASSWORD"),
            confirm,
            stdin_line: true,
            hint: ": give --key-password-file, --key-password-command (config \"key_password_file\", \"key_password_cmd\"), SMAILARCHIVER_KEY_PASSWORD, or one line on standard input",
        }
        .obtain()
    }
}

impl KeySpec {
    /// Loads the existing key file.
    pub fn load(&self) -> Result<Keys> {
        load(&self.path, || self.password.as_ref().map(|p| p.obtain(false)).transpose())
    }

    /// Loads the key file, or creates it when it does not exist yet (a first backup).
    pub fn load_or_create(&self) -> Result<(Keys, bool)> {
        if self.path.exists() {
            return Ok((self.load()?, false));
        }
        let pw = self.password.as_ref().map(|p| p.obtain(true)).transpose()?;
        Ok((create(&self.path, pw.as_ref())?, true))
    }
}

/// Creates a new key file (and its `.sha` in password mode), mode 0600, never printed.
/// Refuses to replace an existing key file.
pub fn create(path: &Path, password: Option<&Secret>) -> Result<Keys> {
    let mut r = [0u8; 64];
    crate::os::fill_random(&mut r).doing("reading random bytes for a new key")?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let write = |target: &Path, bytes: &[u8], replace: bool| -> Result<()> {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = TempFile::create_in(dir, &name, 0o600).at(dir)?;
        tmp.file().write_all(STANDARD.encode(bytes).as_bytes()).at(tmp.path())?;
        tmp.commit(target, replace).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::runtime(format!("{} already exists", target.display())),
            _ => Error::runtime(format!("{}: {}", target.display(), crate::error::describe_io(&e))),
        })
    };
    let keys = match password {
        Some(pw) => {
            // The .sha first: a key file without its .sha would be unusable.
            write(&sha_path(path), &password_check(&r, pw), true)?;
            Keys::derive(&r, pw)
        }
        None => Keys::from_raw(&r),
    };
    write(path, &r, false)?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn latin1_rule() {
        assert_eq!(kdf_bytes("Grüße"), vec![b'G', b'r', 0xfc, 0xdf, b'e']);
        assert_eq!(kdf_bytes("€"), "€".as_bytes());
    }

    #[test]
    fn create_then_load_both_modes() {
        let dir = std::env::temp_dir().join(format!("keys-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain.keys");
        let made = create(&plain, None).unwrap();
        assert_eq!(fs::metadata(&plain).unwrap().permissions().mode() & 0o777, 0o600);
        let none = || Ok(None);
        assert_eq!(load(&plain, none).unwrap().enc(), made.enc());
        assert!(create(&plain, None).unwrap_err().to_string().contains("already exists"));

        let pw = Secret::new("correct horse".into());
        let prot = dir.join("prot.keys");
        let made = create(&prot, Some(&pw)).unwrap();
        assert_eq!(fs::metadata(sha_path(&prot)).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load(&prot, || Ok(Some(pw.clone()))).unwrap().sig(), made.sig());
        let wrong = || Ok(Some(Secret::new("correct horsE".into())));
        assert!(load(&prot, wrong).unwrap_err().to_string().contains("wrong key password"));
        assert!(load(&prot, none).unwrap_err().to_string().contains("add -P"));
        assert!(load(&plain, || Ok(Some(pw.clone()))).unwrap_err().to_string().contains("not found"));
        // A .sha file that never ends is refused at its cap, before the password check.
        let endless = dir.join("endless.keys");
        fs::copy(&prot, &endless).unwrap();
        std::os::unix::fs::symlink("/dev/zero", sha_path(&endless)).unwrap();
        let e = load(&endless, || Ok(Some(pw.clone()))).unwrap_err().to_string();
        assert!(e.ends_with(".sha: larger than 1024 bytes, not a password check file"), "{e}");
        let e = load(Path::new("/dev/zero"), none).unwrap_err().to_string();
        assert_eq!(e, "key file /dev/zero: larger than 4096 bytes, not a key file");
        fs::remove_dir_all(&dir).unwrap();
    }
}
