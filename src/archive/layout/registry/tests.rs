//! The records' tests: names, owners, UIDVALIDITY changes, 0.6 conversion, the log.

use serde_json::json;

use super::migrate::OLD_STATE_FILE;
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
        dirs.push(r.open_folder(&acct, &mb(n), 7).unwrap().path.file_name().unwrap().to_string_lossy().into_owned());
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
