//! `--dry-run` and `--since` against a real Dovecot (issue 13, item 5): a dry run counts
//! what a backup would fetch and writes nothing at all; `--since` archives only messages
//! from that day on and leaves the older ones to a later run without it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::dovecot::Dovecot;
use crate::support::*;

const PW: &str = "s3cret pass";
const OLD: &str = "01-Jan-2020 10:00:00 +0000";
const NEW: &str = "15-Jun-2024 10:00:00 +0000";

/// APPENDs `mail::titled(subject)` to `mailbox` with INTERNALDATE `date`; returns its UID.
fn append(d: &Dovecot, user: &str, mailbox: &str, date: &str, subject: &str) -> u32 {
    let mut s = d.session(user, PW);
    let (_, uid) = s.append_at(mailbox, &[], Some(date), &mail::titled(subject));
    s.logout();
    uid
}

/// The UIDs archived in a folder directory.
fn archived(dir: &Path) -> Vec<u32> {
    let mut uids: Vec<u32> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().split('.').next().unwrap().parse().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    uids.sort_unstable();
    uids
}

/// Every path under `root` with its contents (None for a directory) and permissions.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_dir() {
                todo.push(path.clone());
                None
            } else {
                Some(fs::read(&path).unwrap())
            };
            out.insert(path, (content, meta.permissions().mode()));
        }
    }
    out
}

/// The bytes the server announces (RFC822.SIZE) for these UIDs of `mailbox`.
fn sizes(d: &Dovecot, user: &str, mailbox: &str, uids: &[u32]) -> u64 {
    uids.iter().map(|&u| d.fetch_raw(user, PW, mailbox, u).len() as u64).sum()
}

#[test]
fn dry_run_counts_and_writes_nothing() {
    let d = Dovecot::start();
    let user = "dora";
    d.add_user(user, PW);
    d.create_mailbox(user, PW, "Sent");
    let inbox: Vec<u32> = (1..=3).map(|i| append(&d, user, "INBOX", NEW, &format!("in {i}"))).collect();
    let sent = vec![append(&d, user, "Sent", OLD, "sent 1")];
    let tmp = TempDir::new("dry-run");
    let root = tmp.join("archive");
    let keys = tmp.join("dora.keys");
    let keys_arg = ["--dry-run", "--all-folders", "-e", "-k", keys.to_str().unwrap()];
    // A first run: the counts, and no root, records, lock or key file.
    let o = backup_ok(&d, user, PW, &root, &keys_arg, &[]);
    let out = stdout(&o);
    let line = |folder: &str, n: usize, bytes: u64, archived: usize| {
        let s = if n == 1 { "" } else { "s" };
        format!("{user}@127.0.0.1 {folder}: would fetch {n} message{s}, {bytes} bytes ({archived} already archived)")
    };
    let (inbox_bytes, sent_bytes) = (sizes(&d, user, "INBOX", &inbox), sizes(&d, user, "Sent", &sent));
    assert!(out.contains(&line("INBOX", 3, inbox_bytes, 0)), "{out}");
    assert!(out.contains(&line("Sent", 1, sent_bytes, 0)), "{out}");
    assert!(
        out.contains(&format!("{user}@127.0.0.1: would fetch 4 messages, {} bytes", inbox_bytes + sent_bytes)),
        "{out}"
    );
    assert!(!root.exists(), "the archive root was made");
    assert!(!keys.exists(), "a key file was made");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0, "something was written beside");
    // --since counts only what it would fetch.
    let o = backup_ok(&d, user, PW, &root, &["--dry-run", "--all-folders", "--since", "2024-01-01"], &[]);
    assert!(stdout(&o).contains(&line("Sent", 0, 0, 0)), "{}", stdout(&o));
    assert!(stdout(&o).contains(&line("INBOX", 3, inbox_bytes, 0)), "{}", stdout(&o));
    // After a backup, one new message: counted, and the archive stays byte for byte.
    backup_ok(&d, user, PW, &root, &["--all-folders"], &[]);
    let new = append(&d, user, "INBOX", NEW, "in 4");
    let before = snapshot(&root);
    let o = backup_ok(&d, user, PW, &root, &["--dry-run", "--all-folders"], &[]);
    let new_bytes = sizes(&d, user, "INBOX", &[new]);
    assert!(stdout(&o).contains(&line("INBOX", 1, new_bytes, 3)), "{}", stdout(&o));
    assert!(stdout(&o).contains(&line("Sent", 0, 0, 1)), "{}", stdout(&o));
    assert_eq!(snapshot(&root), before, "the dry run changed the archive");
    // A folder that cannot be counted is an error of its own; the others are counted.
    let mut args = d.client_args(user, &root);
    args.extend(["--dry-run", "-f", "INBOX", "-f", "Nowhere"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args, &[("SMAILARCHIVER_PASSWD", PW)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains(&line("INBOX", 1, new_bytes, 3)), "{}", stdout(&o));
    assert!(stdout(&o).contains("(1 folder(s) could not be counted); nothing was written"), "{}", stdout(&o));
    assert!(stderr(&o).contains(&format!("error: {user}@127.0.0.1 Nowhere: ")), "{}", stderr(&o));
    assert_eq!(snapshot(&root), before, "the dry run changed the archive");
    assert_eq!(archived(&root.join(user).join("INBOX")), inbox);
}

#[test]
fn since_archives_only_newer_mail_and_a_later_run_fetches_the_rest() {
    let d = Dovecot::start();
    let user = "sina";
    d.add_user(user, PW);
    let old: Vec<u32> = (1..=2).map(|i| append(&d, user, "INBOX", OLD, &format!("old {i}"))).collect();
    let new: Vec<u32> = (1..=2).map(|i| append(&d, user, "INBOX", NEW, &format!("new {i}"))).collect();
    let tmp = TempDir::new("since");
    let root = tmp.join("archive");
    let dir = root.join(user).join("INBOX");
    let o = backup_ok(&d, user, PW, &root, &["--since", "2024-01-01"], &[]);
    assert!(stdout(&o).contains("INBOX: 2 new, 0 already archived, 0 failed"), "{}", stdout(&o));
    assert_eq!(archived(&dir), new);
    // Again with --since: nothing new; the folder was not marked complete, so ...
    let o = backup_ok(&d, user, PW, &root, &["--since", "2024-01-01"], &[]);
    assert!(stdout(&o).contains("INBOX: 0 new, 2 already archived"), "{}", stdout(&o));
    // ... a run without it looks at every UID and fetches the older ones.
    let o = backup_ok(&d, user, PW, &root, &[], &[]);
    assert!(stdout(&o).contains("INBOX: 2 new, 2 already archived"), "{}", stdout(&o));
    let mut all = [old.clone(), new.clone()].concat();
    all.sort_unstable();
    assert_eq!(archived(&dir), all);
    // Now complete: new mail dated before the day is left out by --since (new by UID is
    // not new by date), and fetched by the next ordinary run.
    let late_old = append(&d, user, "INBOX", OLD, "old, appended late");
    let late_new = append(&d, user, "INBOX", NEW, "new, appended late");
    let o = backup_ok(&d, user, PW, &root, &["--since", "2024-01-01"], &[]);
    assert!(stdout(&o).contains("INBOX: 1 new"), "{}", stdout(&o));
    assert!(archived(&dir).contains(&late_new) && !archived(&dir).contains(&late_old));
    let o = backup_ok(&d, user, PW, &root, &[], &[]);
    assert!(stdout(&o).contains("INBOX: 1 new, 5 already archived"), "{}", stdout(&o));
    assert!(archived(&dir).contains(&late_old));
    // From the config too.
    let cfg = tmp.join("config.json");
    let text = format!(
        r#"{{"list": [{{"user": "{user}", "imap": "127.0.0.1", "port": {}, "ca_file": "{}", "passwd": "{PW}",
             "folder": "INBOX", "encrypt": 0, "compress": 0, "since": "2024-01-01"}}], "archive_dir": "{}"}}"#,
        d.imaps_port(),
        d.cert_pem_path().display(),
        tmp.join("from-config").display()
    );
    fs::write(&cfg, text).unwrap();
    let o = run(&["-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&tmp.join("from-config").join(user).join("INBOX")), vec![new[0], new[1], late_new]);
}
