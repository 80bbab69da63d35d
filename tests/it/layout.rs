//! The archive layout against a real Dovecot: every mailbox is archived whatever its name,
//! in the directory the original program made for it; a directory keeps its owner (across
//! runs, accounts and servers); folder directories hold only messages, so the original
//! program's own restore loop reads them, also after a killed run; a 0.6 archive is
//! converted without fetching again; a whole account restores under its real names.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::Dovecot;
use crate::support::*;
use smailarchiver::mailbox_name::encode_utf7;

const PW: &str = "s3cret pass";

/// Folder names of real mailboxes: Russian, Chinese, Japanese, Greek, Hebrew, a localized
/// Gmail, names that the original's filter maps to one directory or to none.
const INTERNATIONAL: &[&str] = &[
    "Отправленные",
    "Корзина",
    "日本語",
    "草稿箱",
    "Ελληνικά",
    "עברית",
    "[Gmail]/Отправленные",
    "[Gmail]/Корзина",
    "Rechnungen/2024",
    "Rechnungen2024",
    "!!!",
    "Reçus",
    "a/b",
    "ab",
    "Ünïcödé/Ωmega",
];

fn message(subject: &str, n: usize) -> Vec<u8> {
    mail::titled(&format!("{subject} {n}"))
}

/// Live folder records of `account`: wire name -> directory.
fn folder_dirs(root: &Path, account: &str) -> BTreeMap<String, String> {
    records(root)["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["account"] == account && f["retired"] != true)
        .map(|f| (f["mailbox"].as_str().unwrap().to_string(), f["dir"].as_str().unwrap().to_string()))
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// Every entry of a folder directory is `UID.mbox[.gz][.enc]`.
#[track_caller]
fn only_messages(dir: &Path) {
    for name in entries(dir) {
        let (stem, suffix) = name.split_once('.').unwrap_or((&name, ""));
        let ok = !stem.is_empty()
            && stem.bytes().all(|b| b.is_ascii_digit())
            && ["mbox", "mbox.gz", "mbox.enc", "mbox.gz.enc"].contains(&suffix);
        assert!(ok, "{} holds {name:?}, which is not an archive file", dir.display());
    }
}

/// Decodes every file of a folder directory with the original program's code and checks
/// it against the server's bytes: the original's From-line, then the message.
#[track_caller]
fn original_decodes(d: &Dovecot, user: &str, wire: &str, dir: &Path, keys: &Path) {
    let uids = d.uids(user, PW, wire);
    let files = entries(dir);
    assert_eq!(files.len(), uids.len(), "{wire}: one file per message in {}", dir.display());
    let decoded = dir.with_extension("decoded");
    fs::create_dir_all(&decoded).unwrap();
    let paths: Vec<String> = files.iter().map(|f| dir.join(f).to_string_lossy().into_owned()).collect();
    let mut args: Vec<&str> = vec!["decode"];
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--keys", keys.to_str().unwrap(), "--out-dir", decoded.to_str().unwrap()]);
    let o = original_py(&args);
    assert!(o.status.success(), "original decode in {}: {}", dir.display(), String::from_utf8_lossy(&o.stderr));
    for uid in uids {
        let file = files.iter().find(|n| n.split('.').next() == Some(&uid.to_string()));
        let file = file.unwrap_or_else(|| panic!("{wire}: UID {uid} not archived"));
        let stored = fs::read(decoded.join(file)).unwrap();
        let (from_line, body) = stored.split_at(stored.iter().position(|&b| b == b'\n').unwrap() + 1);
        assert_eq!(from_line, b"From Ann <ann@example.org>\n", "{wire} UID {uid}");
        assert_same(body, &d.fetch_raw(user, PW, wire, uid), &format!("{wire} UID {uid}"));
    }
    fs::remove_dir_all(&decoded).unwrap();
}

#[test]
fn international_folders_are_all_archived_in_the_originals_directories() {
    let d = Dovecot::start();
    d.add_user("intl", PW);
    let mut expected = BTreeMap::new();
    for (i, name) in INTERNATIONAL.iter().enumerate() {
        let wire = encode_utf7(name);
        d.create_mailbox("intl", PW, &wire);
        let count = if *name == "Reçus" { 2 } else { 1 };
        for n in 0..count {
            d.append("intl", PW, &wire, &message(&format!("folder {i}"), n));
        }
        expected.insert(wire, count);
    }
    d.append("intl", PW, "INBOX", &message("inbox", 0));
    expected.insert("INBOX".into(), 1);
    let tmp = TempDir::new("layout-intl");
    let root = tmp.join("archive");
    let keys = tmp.join("keys");
    let o = backup(&d, "intl", PW, &root, &["--all-folders", "-e", "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let dirs = folder_dirs(&root, "intl");
    for (wire, count) in &expected {
        let dir = dirs.get(wire).unwrap_or_else(|| panic!("{wire} has no directory: {dirs:?}"));
        let path = root.join("intl").join(dir);
        only_messages(&path);
        original_decodes(&d, "intl", wire, &path, &keys);
        let out = tmp.join(format!("orig-{dir}.mbox"));
        assert_eq!(original_restore_loop(&path, &keys, &out), *count, "{wire}");
    }
    let distinct: std::collections::BTreeSet<&String> = dirs.values().collect();
    assert_eq!(distinct.len(), dirs.len(), "one directory per folder: {dirs:?}");
    assert_eq!(dirs["Re&AOc-us"], "ReAOc-us", "the original's directory for Reçus");
    assert_eq!(dirs["INBOX"], "INBOX");
    // The filter drops the `,` of the wire name `&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-`.
    assert_eq!(dirs[&encode_utf7("Отправленные")], "BB4EQgQBEAEMAQyBDsENQQ9BD0ESwQ1-");
    assert!(dirs["!!!"].starts_with('~'), "{dirs:?}");
    let (ab, a_b) = (&dirs["ab"], &dirs["a/b"]);
    assert!(ab != a_b && (ab == "ab" || a_b == "ab"), "{dirs:?}");
    assert_eq!(entries(&root.join("intl")).len(), dirs.len(), "nothing else in the user directory");

    // `-f` takes the wire name (as the original's cron lines give it) or the real name.
    for arg in ["Re&AOc-us", "Reçus"] {
        let o = backup(&d, "intl", PW, &root, &["-f", arg, "-e", "-k", keys.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(0), "{arg}: {}", stderr(&o));
        assert!(stdout(&o).contains("intl Reçus: 0 new, 2 already archived"), "{arg}: {}", stdout(&o));
    }

    // A new folder whose name the filter maps onto a directory in use changes no mapping.
    let newcomer = "!Rechnungen2024";
    d.create_mailbox("intl", PW, newcomer);
    d.append("intl", PW, newcomer, &message("new", 0));
    let o = backup(&d, "intl", PW, &root, &["--all-folders", "-e", "-k", keys.to_str().unwrap(), "-q"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "quiet");
    let after = folder_dirs(&root, "intl");
    for (wire, dir) in &dirs {
        assert_eq!(&after[wire], dir, "{wire} kept its directory");
    }
    assert!(after[newcomer].starts_with("Rechnungen2024~"), "{after:?}");
    only_messages(&root.join("intl").join(&after[newcomer]));

    // --list-folders names each folder's directory and count, and writes nothing.
    let fresh = tmp.join("not-made");
    let o = backup(&d, "intl", PW, &fresh, &["--list-folders", "--all-folders", "--exclude", "Корзина"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listing = stdout(&o);
    assert!(listing.contains("  Reçus\twire Re&AOc-us\tdir ReAOc-us\t2 messages\tbacked up"), "{listing}");
    assert!(listing.contains(&format!("  Корзина\twire {}\tdir ", encode_utf7("Корзина"))), "{listing}");
    let ab: Vec<&str> = listing.lines().filter(|l| l.starts_with("  ab\t") || l.starts_with("  a/b\t")).collect();
    assert!(ab.len() == 2 && ab[0].contains("\tdir ab\t") && ab[1].contains("\tdir ab~"), "distinct: {listing}");
    assert!(listing.lines().any(|l| l.starts_with("  Корзина\t") && l.ends_with("\texcluded")), "{listing}");
    assert!(!fresh.exists(), "--list-folders made {}", fresh.display());
    let o = backup(&d, "intl", PW, &root, &["--list-folders", "--all-folders"], &[]);
    assert!(stdout(&o).contains(&format!("dir {}\t1 messages", after[newcomer])), "{}", stdout(&o));

    // The whole account restores to one mbox file per folder, by real name...
    let out = tmp.join("mboxes");
    let o = run(
        &["-r", root.join("intl").to_str().unwrap(), "-o", out.to_str().unwrap(), "-k", keys.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("restored 2 messages"), "{}", stdout(&o));
    assert!(stdout(&o).contains(" of Reçus to "), "{}", stdout(&o));
    assert_eq!(parse_mboxrd(&fs::read(out.join("Reçus.mbox")).unwrap()).len(), 2);
    assert_eq!(parse_mboxrd(&fs::read(out.join("[Gmail]/Отправленные.mbox")).unwrap()).len(), 1);
    assert_eq!(parse_mboxrd(&fs::read(out.join("Rechnungen/2024.mbox")).unwrap()).len(), 1);
    assert_eq!(parse_mboxrd(&fs::read(out.join("Rechnungen2024.mbox")).unwrap()).len(), 1);
    // ...and to one Maildir++ tree.
    let md = tmp.join("maildir");
    let o = run(
        &[
            "-r",
            root.join("intl").to_str().unwrap(),
            "--to-maildir",
            md.to_str().unwrap(),
            "-k",
            keys.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(entries(&md.join("cur")).len(), 1, "INBOX at the top");
    assert_eq!(entries(&md.join(".Re&AOc-us/cur")).len(), 2);
    assert!(md.join(".Re&AOc-us/maildirfolder").exists());
    assert_eq!(entries(&md.join(".[Gmail].&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-/cur")).len(), 1);
}

#[test]
fn one_user_name_on_two_servers_in_one_root() {
    let (d1, d2) = (Dovecot::start(), Dovecot::start());
    for (d, n) in [(&d1, 3), (&d2, 5)] {
        d.add_user("alice", PW);
        for i in 0..n {
            d.append("alice", PW, "INBOX", &message(&format!("server {}", d.imaps_port()), i));
        }
    }
    let tmp = TempDir::new("layout-two");
    let root = tmp.join("archive");
    let account = |d: &Dovecot| {
        serde_json::json!({"user": "alice", "imap": "127.0.0.1", "port": d.imaps_port(),
            "ca_file": d.cert_pem_path(), "passwd": PW, "folder": "INBOX", "encrypt": 0, "compress": 0})
    };
    let config = tmp.join("config.json");
    let text = serde_json::json!({"list": [account(&d1), account(&d2)], "archive_dir": root});
    fs::write(&config, text.to_string()).unwrap();
    let o = run(&["-c", config.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let users = entries(&root);
    assert_eq!(users.len(), 4, "alice twice, the tool's own directory and the lock: {users:?}");
    let accounts = records(&root)["accounts"].as_array().unwrap().clone();
    for (d, n) in [(&d1, 3), (&d2, 5)] {
        let server = format!("127.0.0.1:{}", d.imaps_port());
        let rec = accounts.iter().find(|a| a["server"] == server.as_str()).expect("account recorded");
        let inbox = root.join(rec["dir"].as_str().unwrap()).join("INBOX");
        assert_eq!(entries(&inbox).len(), n, "{server}");
        for uid in d.uids("alice", PW, "INBOX") {
            let stored = fs::read(inbox.join(format!("{uid}.mbox"))).unwrap();
            assert_same(strip_first_line(&stored), &d.fetch_raw("alice", PW, "INBOX", uid), &server);
        }
    }
    let before = (entries(&root), entries(&root.join(&users[2])), entries(&root.join(&users[3])));
    let o = run(&["-c", config.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches("INBOX: 0 new").count(), 2, "{}", stdout(&o));
    assert_eq!(before, (entries(&root), entries(&root.join(&users[2])), entries(&root.join(&users[3]))));
}

#[test]
fn a_slash_b_then_ab_in_two_runs_are_kept_apart() {
    let d = Dovecot::start();
    d.add_user("jo", PW);
    for mb in ["a/b", "ab"] {
        d.create_mailbox("jo", PW, mb);
        d.append("jo", PW, mb, &message(mb, 0));
    }
    let tmp = TempDir::new("layout-ab");
    let mut args = d.client_args("jo", tmp.path());
    args.extend(["-p", PW, "-f", "a/b"].map(String::from));
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("-p shows the password").count(), 1, "-p is warned about once: {}", stderr(&o));
    let o = backup(&d, "jo", PW, tmp.path(), &["-f", "ab"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("jo ab: 1 new"), "{}", stdout(&o));
    let dirs = folder_dirs(tmp.path(), "jo");
    assert_eq!(dirs["a/b"], "ab");
    assert!(dirs["ab"].starts_with("ab~"), "{dirs:?}");
    for (wire, dir) in &dirs {
        let uid = d.uids("jo", PW, wire)[0];
        let stored = fs::read(tmp.join("jo").join(dir).join(format!("{uid}.mbox"))).unwrap();
        assert_same(strip_first_line(&stored), &d.fetch_raw("jo", PW, wire, uid), wire);
    }
}

/// Waits for `cond`, failing the test after a minute (a hang guard, not a timing claim).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_originals_restore_loop_reads_our_archives_also_after_a_killed_run() {
    let d = Dovecot::start();
    d.add_user("kim", PW);
    for mb in ["Sent", "Re&AOc-us"] {
        d.create_mailbox("kim", PW, mb);
    }
    let filler = "x".repeat(20_000);
    for i in 0..90 {
        let mb = ["INBOX", "Sent", "Re&AOc-us"][i % 3];
        let msg = format!("From: Ann <ann@example.org>\r\nSubject: m {i}\r\n\r\n{filler}{i}\r\n");
        d.append("kim", PW, mb, msg.as_bytes());
    }
    for (tag, forms) in [("e", &["-e"][..]), ("ze", &["-z", "-e"][..])] {
        let tmp = TempDir::new(&format!("layout-kill-{tag}"));
        let keys = tmp.join("keys");
        let mut args = d.client_args("kim", tmp.path());
        args.extend(["--all-folders", "--buffer-size", "64K", "-k", keys.to_str().unwrap()].map(String::from));
        args.extend(forms.iter().map(|s| s.to_string()));
        // Killed as soon as the first messages are committed: mid-folder, mid-batch.
        let mut child = Command::new(bin())
            .args(&args)
            .env("SMAILARCHIVER_PASSWD", PW)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let inbox = tmp.join("kim/INBOX");
        wait_for("the first archived message", || inbox.is_dir() && !entries(&inbox).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
        for dir in entries(&tmp.join("kim")) {
            let dir = tmp.join("kim").join(dir);
            only_messages(&dir);
            let n = entries(&dir).len();
            assert_eq!(original_restore_loop(&dir, &keys, &tmp.join("killed.mbox")), n, "{}", dir.display());
        }
        let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[("SMAILARCHIVER_PASSWD", PW)]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(entries(&tmp.join(".smailarchiver/tmp")).is_empty(), "the killed run's temporary files are gone");
        for (wire, dir) in folder_dirs(tmp.path(), "kim") {
            let dir = tmp.join("kim").join(dir);
            only_messages(&dir);
            assert_eq!(original_restore_loop(&dir, &keys, &tmp.join("all.mbox")), 30, "{wire}");
            original_decodes(&d, "kim", &wire, &dir, &keys);
        }
    }
}

/// Rewrites an archive of this version into what version 0.6 left: a state file in each
/// folder directory, non-ASCII folders under the filter of their UTF-8 name, a killed
/// run's temporary file, a directory moved aside after a UIDVALIDITY change.
fn make_06_layout(root: &Path, user: &str, folders: &[(&str, u32)]) {
    fs::remove_dir_all(root.join(".smailarchiver")).unwrap();
    let user_dir = root.join(user);
    for (name, uidvalidity) in folders {
        let new_dir = user_dir.join(smailarchiver::archive::layout::naming::safe(&encode_utf7(name)));
        let old_dir = user_dir.join(smailarchiver::archive::layout::naming::safe(name));
        if new_dir != old_dir {
            fs::rename(&new_dir, &old_dir).unwrap();
        }
        let state = serde_json::json!({"uidvalidity": uidvalidity, "mailbox": name});
        fs::write(old_dir.join(".smailarchiver-state.json"), state.to_string()).unwrap();
    }
    fs::write(user_dir.join("INBOX/.smailarchiver-tmp-99.1.7.mbox"), b"half a message").unwrap();
    let aside = user_dir.join("Work.uidvalidity-1");
    fs::create_dir(&aside).unwrap();
    fs::copy(vectors().join("random/1.mbox"), aside.join("1.mbox")).unwrap();
    fs::write(aside.join(".smailarchiver-state.json"), r#"{"uidvalidity": 1, "mailbox": "Work"}"#).unwrap();
}

#[test]
fn a_version_06_archive_is_converted_without_fetching_again() {
    let d = Dovecot::start();
    d.add_user("vera", PW);
    for mb in ["Re&AOc-us", "Work"] {
        d.create_mailbox("vera", PW, mb);
    }
    for (mb, n) in [("INBOX", 2), ("Re&AOc-us", 3), ("Work", 1)] {
        for i in 0..n {
            d.append("vera", PW, mb, &message(mb, i));
        }
    }
    let tmp = TempDir::new("layout-06");
    let o = backup(&d, "vera", PW, tmp.path(), &["--all-folders", "-z"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let folders: Vec<(&str, u32)> = [("INBOX", "INBOX"), ("Reçus", "Re&AOc-us"), ("Work", "Work")]
        .map(|(n, w)| (n, d.mailbox_uidvalidity("vera", PW, w)))
        .to_vec();
    make_06_layout(tmp.path(), "vera", &folders);
    let user_dir = tmp.join("vera");
    assert!(user_dir.join("Reus").is_dir());

    let before = d.fetch_stats("vera");
    let o = backup(&d, "vera", PW, tmp.path(), &["--all-folders", "-z"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.fetch_stats("vera").since(&before).body_count, 0, "nothing fetched again: {}", stdout(&o));
    assert!(stdout(&o).contains("vera Reçus: 0 new, 3 already archived"), "{}", stdout(&o));
    assert!(!user_dir.join("Reus").exists(), "moved to the original's name");
    assert_eq!(entries(&user_dir), ["INBOX", "ReAOc-us", "Work", "Work.uidvalidity-1"]);
    for dir in entries(&user_dir) {
        only_messages(&user_dir.join(dir));
    }
    let dirs = folder_dirs(tmp.path(), "vera");
    assert_eq!(dirs["Re&AOc-us"], "ReAOc-us");
    let aside = records(tmp.path())["folders"].as_array().unwrap().iter().any(|f| {
        f["dir"] == "Work.uidvalidity-1" && f["retired"] == true && f["uidvalidity"] == 1 && f["mailbox"] == "Work"
    });
    assert!(aside, "{}", records(tmp.path()));
    // An account restore names the moved-aside directory after its mailbox.
    let out = tmp.join("out");
    let o = run(&["-r", user_dir.to_str().unwrap(), "-o", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(parse_mboxrd(&fs::read(out.join("Reçus.mbox")).unwrap()).len(), 3);
    assert_eq!(parse_mboxrd(&fs::read(out.join("Work (UIDVALIDITY 1).mbox")).unwrap()).len(), 1);
    let _: PathBuf = out;
}
