//! Issue 25, item 1: a wrong key is refused before anything is written. A backup into an
//! account that holds sealed files and metadata, an upload and a restore each stop with
//! one line naming the key file and the archive, exit 1, and leave the archive (every
//! file, the journals and records included) byte for byte as it was, and the target
//! mailbox untouched; the right key afterwards archives the new mail. Simple and
//! password-mode keys; a first run with `-e`, and an account of plain files now backed up
//! with `-e`, still work.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::dovecot::Dovecot;
use crate::support::*;

const PW: &str = "s3cret pass";

/// Every file under `root` (relative path) with its size and SHA-256, and every directory.
fn tree(root: &Path) -> BTreeMap<PathBuf, (u64, String)> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, (0, "dir".into()));
                dirs.push(p);
            } else {
                let data = fs::read(&p).unwrap();
                out.insert(rel, (data.len() as u64, sha256_hex(&data)));
            }
        }
    }
    out
}

fn tool(d: &Dovecot, user: &str, root: &Path, extra: &[&str], key_pw: &str) -> Output {
    let mut args = d.client_args(user, root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, &[("SMAILARCHIVER_PASSWD", PW), ("SMAILARCHIVER_KEY_PASSWORD", key_pw)])
}

/// A key file of another archive: 64 random bytes, base64.
fn other_key(path: &Path) {
    use base64::Engine;
    let bytes: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
    fs::write(path, base64::engine::general_purpose::STANDARD.encode(bytes)).unwrap();
}

/// Backs up with the right key, then tries `wrong` (with `wrong_pw`): backup, upload and
/// restore each refuse before writing; then the right key archives the new mail.
fn refused_before_writing(tag: &str, options: &[&str], right: &Path, right_pw: &str, wrong: &Path, wrong_pw: &str) {
    let d = Dovecot::start();
    let user = format!("wk{tag}");
    let target = format!("wk{tag}target");
    d.add_user(&user, PW);
    d.add_user(&target, PW);
    let tmp = TempDir::new(&format!("wrong-key-{tag}"));
    let root = tmp.dir("root");
    for i in 0..3 {
        d.append(&user, PW, "INBOX", &mail::numbered(i));
    }
    let with = |key: &Path| -> Vec<String> {
        let mut v: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        v.extend(["-k".to_string(), key.to_string_lossy().into_owned()]);
        v
    };
    let right_args = with(right);
    let right_args: Vec<&str> = right_args.iter().map(String::as_str).collect();
    let o = tool(&d, &user, &root, &right_args, right_pw);
    assert_eq!(o.status.code(), Some(0), "{tag}: first backup: {}", stderr(&o));
    for i in 3..5 {
        d.append(&user, PW, "INBOX", &mail::numbered(i));
    }
    let before = tree(&root);
    assert!(before.keys().any(|p| p.starts_with(".smailarchiver/meta")), "{tag}: a journal was written");
    let user_dir = root.join(&user);
    let needle = format!("the key {} does not match the archive {}", wrong.display(), user_dir.display());

    // Backup.
    let wrong_args = with(wrong);
    let wrong_args: Vec<&str> = wrong_args.iter().map(String::as_str).collect();
    let fetched = d.fetch_count(&user);
    let o = tool(&d, &user, &root, &wrong_args, wrong_pw);
    assert_one_line_error(&o, 1, &needle);
    assert!(stderr(&o).contains("wrong key file or password?"), "{}", stderr(&o));
    assert_eq!(tree(&root), before, "{tag}: the backup wrote something");
    assert_eq!(d.fetch_count(&user), fetched, "{tag}: nothing fetched");

    // Upload: nothing appended to the target.
    let mut up: Vec<String> = vec!["-r".into(), user_dir.to_string_lossy().into_owned(), "--to-imap".into()];
    let args = d.client_args(&target, Path::new("/unused"));
    up.extend(args[..args.len() - 2].iter().cloned());
    up.extend(["-k".to_string(), wrong.to_string_lossy().into_owned()]);
    if options.contains(&"-P") {
        up.push("-P".into());
    }
    let up: Vec<&str> = up.iter().map(String::as_str).collect();
    let o = run(&up, &[("SMAILARCHIVER_PASSWD", PW), ("SMAILARCHIVER_KEY_PASSWORD", wrong_pw)]);
    assert_one_line_error(&o, 1, &needle);
    assert!(d.uids(&target, PW, "INBOX").is_empty(), "{tag}: the upload appended");
    assert_eq!(tree(&root), before, "{tag}");

    // Restore, to an mbox file and to a Maildir: no output.
    let folder = user_dir.join("INBOX");
    let out = tmp.join("out.mbox");
    let maildir = tmp.join("md");
    for restore in [
        vec!["-r", folder.to_str().unwrap(), "-o", out.to_str().unwrap()],
        vec!["-r", user_dir.to_str().unwrap(), "--to-maildir", maildir.to_str().unwrap()],
    ] {
        let mut args = restore.clone();
        args.extend(["-k", wrong.to_str().unwrap()]);
        if options.contains(&"-P") {
            args.push("-P");
        }
        let o = run(&args, &[("SMAILARCHIVER_KEY_PASSWORD", wrong_pw)]);
        let archive = if restore[1] == folder.to_str().unwrap() { &folder } else { &user_dir };
        assert_one_line_error(
            &o,
            1,
            &format!("the key {} does not match the archive {}", wrong.display(), archive.display()),
        );
    }
    assert!(!out.exists() && !maildir.exists(), "{tag}: a restore wrote its output");
    assert_eq!(tree(&root), before, "{tag}");

    // The right key archives the new mail.
    let o = tool(&d, &user, &root, &right_args, right_pw);
    assert_eq!(o.status.code(), Some(0), "{tag}: {}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 2 new, 3 already archived"), "{tag}: {}", stdout(&o));
    let mut v = vec!["--verify", root.to_str().unwrap(), "-k", right.to_str().unwrap()];
    if options.contains(&"-P") {
        v.push("-P");
    }
    let o = run(&v, &[("SMAILARCHIVER_KEY_PASSWORD", right_pw)]);
    assert_eq!(o.status.code(), Some(0), "{tag}: {}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("verified 5 messages: 5 good, 0 bad"), "{tag}: {}", stdout(&o));
}

#[test]
fn a_wrong_simple_key_writes_nothing() {
    let tmp = TempDir::new("wrong-key-files");
    let (right, wrong) = (tmp.join("k1"), tmp.join("k3"));
    other_key(&wrong);
    refused_before_writing("simple", &["-z", "-e"], &right, "", &wrong, "");
}

#[test]
fn a_wrong_password_mode_key_writes_nothing() {
    // Another archive's key file with its own .sha and password: the .sha check passes.
    let d = Dovecot::start();
    d.add_user("wkother", PW);
    d.append("wkother", PW, "INBOX", &mail::numbered(0));
    let tmp = TempDir::new("wrong-key-pw");
    let wrong = tmp.join("other.keys");
    let o = tool(&d, "wkother", &tmp.join("other-root"), &["-e", "-P", "-k", wrong.to_str().unwrap()], "other pw");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tmp.join("other.keys.sha").exists());
    refused_before_writing("password", &["-e", "-P"], &tmp.join("right.keys"), "right pw", &wrong, "other pw");
}

/// A first run with `-e` (no key file yet), and an account of plain files now backed up
/// with `-e` and an existing key file, are not refused.
#[test]
fn nothing_sealed_yet_is_not_refused() {
    let d = Dovecot::start();
    d.add_user("wkfirst", PW);
    d.add_user("wkplain", PW);
    for user in ["wkfirst", "wkplain"] {
        d.append(user, PW, "INBOX", &mail::numbered(0));
    }
    let tmp = TempDir::new("wrong-key-first");
    let root = tmp.dir("root");
    let made = tmp.join("made.keys");
    let o = tool(&d, "wkfirst", &root, &["-e", "-k", made.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(made.exists() && stderr(&o).contains("created the key file"), "{}", stderr(&o));
    let o = tool(&d, "wkplain", &root, &[], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let existing = tmp.join("existing.keys");
    other_key(&existing);
    d.append("wkplain", PW, "INBOX", &mail::numbered(1));
    let o = tool(&d, "wkplain", &root, &["-e", "-k", existing.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 1 new, 1 already archived"), "{}", stdout(&o));
    let files: Vec<String> = fs::read_dir(root.join("wkplain/INBOX"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert!(files.iter().any(|f| f.ends_with(".mbox.enc")), "{files:?}");
}
