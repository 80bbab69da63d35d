//! Directory names beneath an archive root: the name the original program gave a mailbox's
//! (or a user's) directory, kept so that its archives are found again, and a fallback for
//! the names that cannot be one; [`choose_dir`] picks between them against what is on disk
//! and what the records already own.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Maps a mailbox name to a directory name exactly as the original tool did.
///
/// Kept unchanged so existing archives are found again; note that distinct
/// mailboxes can collide (`INBOX/Sent` and `INBOXSent` both give `INBOXSent`).
pub fn safe(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.()@ ".contains(*c)).collect()
}

/// Longest directory name made from a name, in bytes: file systems allow 255, and a
/// fallback suffix or a `.uidvalidity-N` must still fit.
pub const MAX_DIR_NAME: usize = 200;

/// Names under an archive root that belong to the tool itself.
pub const RESERVED_PREFIX: &str = ".smailarchiver";

/// The directory the original made for `name` (a mailbox's wire name, or a user name):
/// [`safe`] of it. `None` when that cannot be a directory of its own: empty, `.`, `..`,
/// longer than [`MAX_DIR_NAME`], or one of the tool's own names.
pub fn canonical_dir(name: &str) -> Option<String> {
    let dir = safe(name);
    let unusable =
        dir.is_empty() || dir == "." || dir == ".." || dir.len() > MAX_DIR_NAME || dir.starts_with(RESERVED_PREFIX);
    (!unusable).then_some(dir)
}

/// The `n`-th fallback directory for `name` (n = 1, 2, ...): [`safe`] of it (cut to fit)
/// plus `~` and the first 8 hex digits of SHA-256 of `key`, plus `-n` from the second on.
/// `~` is not a [`safe`] character, so a fallback never equals a canonical name.
pub fn fallback_dir(name: &str, key: &str, n: u32) -> String {
    let mut base = safe(name);
    base.truncate(MAX_DIR_NAME);
    if base.starts_with(RESERVED_PREFIX) {
        base.insert(0, '_');
    }
    let hash = Sha256::digest(key.as_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    if n <= 1 {
        format!("{base}~{hex}")
    } else {
        format!("{base}~{hex}-{n}")
    }
}

/// The directory for `name` among the entries of `parent`: its canonical name unless a
/// record (`taken`) owns that, or something other than a directory is there; else the
/// first free fallback. An existing canonical directory without a record is the
/// original's (or 0.6's) for this name, and is adopted.
pub fn choose_dir(parent: &Path, name: &str, key: &str, taken: impl Fn(&str) -> bool) -> String {
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
pub fn is_real_dir(path: &Path) -> bool {
    path.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox_name::encode_utf7;

    #[test]
    fn safe_keeps_original_mapping() {
        assert_eq!(safe("[Gmail]/All Mail"), "GmailAll Mail");
        assert_eq!(safe("INBOX/Sent"), "INBOXSent");
        assert_eq!(safe("Reçus"), "Reus");
        assert_eq!(safe("a-b_c.d(e)@f 9"), "a-b_c.d(e)@f 9");
        assert_eq!(safe("../x"), "..x");
    }

    #[test]
    fn canonical_dirs_are_the_originals_filter_of_the_wire_name() {
        assert_eq!(canonical_dir("INBOX/Sent").as_deref(), Some("INBOXSent"));
        assert_eq!(canonical_dir(&encode_utf7("Reçus")).as_deref(), Some("ReAOc-us"));
        assert_eq!(canonical_dir("[Gmail]/All Mail").as_deref(), Some("GmailAll Mail"));
        for unusable in ["", "!!!", "./.", "/.", ".smailarchiver", ".smailarchiver-x"] {
            assert_eq!(canonical_dir(unusable), None, "{unusable:?}");
        }
        assert_eq!(canonical_dir(&"a".repeat(MAX_DIR_NAME)).map(|d| d.len()), Some(MAX_DIR_NAME));
        assert_eq!(canonical_dir(&"a".repeat(MAX_DIR_NAME + 1)), None);
    }

    #[test]
    fn fallback_dirs_differ_from_canonical_ones_and_fit() {
        let f = fallback_dir("!!!", "!!!", 1);
        assert!(f.starts_with('~') && f.len() == 9, "{f}");
        assert_eq!(fallback_dir("!!!", "!!!", 1), f, "stable");
        assert_ne!(fallback_dir("!!!", "!!!?", 1), f);
        assert_eq!(fallback_dir("!!!", "!!!", 3), format!("{f}-3"));
        assert!(fallback_dir(&"x".repeat(400), "k", 1).len() <= MAX_DIR_NAME + 12);
        assert!(fallback_dir(".smailarchiver", "k", 1).starts_with("_.smailarchiver~"));
        assert!(canonical_dir(&fallback_dir("ab", "a/b", 1)).is_some_and(|d| d != fallback_dir("ab", "a/b", 1)));
    }
}
