//! Gmail mode against the scripted Gmail persona (tests/it/support/fake_gmail.rs): each body
//! downloaded once from All Mail, label folders hard-linked in the original's layout,
//! labels and Gmail ids in the metadata, label changes without body downloads, the
//! download cap, the connection limit.

use crate::support;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::fake_gmail::{message_bytes, wire_label, FakeGmail, Lang, Message, MAX_CONNECTIONS};
use crate::support::{run, stderr, TempDir};

const USER: &str = "ann@gmail.com";
const PW: &str = "abcd efgh ijkl mnop";

/// `n` messages with about three labels each (system and user labels, one non-ASCII and
/// one nested), a few in Trash and Spam, sizes from 1 to about 9 KiB.
fn mailbox(n: usize) -> Vec<Message> {
    let russian = wire_label("Проекты");
    let pool: Vec<String> = ["\\Inbox", "\\Sent", "\\Important", "\\Starred", "Work", "Travel/2024"]
        .iter()
        .map(|s| s.to_string())
        .chain([russian])
        .collect();
    (0..n)
        .map(|i| {
            let mut labels: Vec<&str> = (0..3).map(|k| pool[(i * 7 + k * 3 + i / 5) % pool.len()].as_str()).collect();
            if i % 4 == 0 {
                labels.pop();
            }
            if i % 4 == 1 {
                labels.push("Work");
            }
            if i == 3 {
                labels = vec!["\\Trash", "Work"];
            }
            if i == 4 {
                labels = vec!["\\Spam"];
            }
            labels.sort();
            labels.dedup();
            let msgid = 1_500_000_000_000_000_000 + i as u64 * 7919;
            Message::new(msgid, msgid - (i % 3) as u64, message_bytes(i, 900 + (i * 397) % 8000), &labels)
        })
        .collect()
}

fn backup(server: &FakeGmail, root: &Path, extra: &[&str]) -> Output {
    let port = server.port().to_string();
    let ca = server.ca_file();
    let mut args = vec!["-u", USER, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "--all-folders"];
    args.extend(["--dir", root.to_str().unwrap()]);
    args.extend(extra);
    run(&args, &[("SMAILARCHIVER_PASSWD", PW)])
}

/// The one user directory of the archive root.
fn user_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .filter(|p| p.file_name().unwrap() != "meta")
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The archive files of a folder directory by UID.
fn files(dir: &Path) -> BTreeMap<u32, PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().split('.').next().unwrap().parse().unwrap(), p))
        .collect()
}

/// The folder directory the original names for a wire name: `safe()` of it.
fn safe(wire: &str) -> String {
    wire.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.()@ ".contains(*c)).collect()
}

/// Checks that every folder of `server` is archived: a file per UID (with `exact`, no
/// other: messages that left the server stay in the archive), each file the same inode as
/// All Mail's file of the same message (Trash and Spam have files of their own); returns
/// the distinct inodes.
#[track_caller]
fn check_layout(server: &FakeGmail, user: &Path, all_mail: &str, exact: bool) -> HashSet<u64> {
    let folders = server.folders();
    let (_, all) = folders.iter().find(|(n, _)| n == all_mail).unwrap();
    let all_files = files(&user.join(safe(all_mail)));
    let inode_of: HashMap<u64, u64> =
        all.iter().map(|(uid, msgid)| (*msgid, fs::metadata(&all_files[uid]).unwrap().ino())).collect();
    let mut inodes = HashSet::new();
    for (name, uids) in &folders {
        let dir = user.join(safe(name));
        let got = files(&dir);
        let want: Vec<u32> = uids.iter().map(|u| u.0).collect();
        if exact {
            assert_eq!(got.keys().copied().collect::<Vec<_>>(), want, "{name}");
        } else {
            assert!(want.iter().all(|u| got.contains_key(u)), "{name}: {want:?} in {:?}", got.keys());
        }
        let outside = name.ends_with("Trash") || name.ends_with("Spam") || name.ends_with("Papierkorb");
        for (uid, msgid) in uids {
            let ino = fs::metadata(&got[uid]).unwrap().ino();
            if !outside {
                assert_eq!(Some(&ino), inode_of.get(msgid), "{name} UID {uid} is All Mail's file");
            }
            inodes.insert(ino);
        }
    }
    inodes
}

/// Every journal line of the archive (unencrypted journals).
fn journal_text(root: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![root.join(".smailarchiver/meta")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out += &String::from_utf8_lossy(&fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn each_body_is_downloaded_once_and_label_folders_are_links_the_original_restores() {
    let messages = mailbox(60);
    let total: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
    let server = FakeGmail::start(USER, PW, Lang::English, messages.clone());
    let root = TempDir::new("gmail-once");
    let keys = root.join("keys");
    let archive = root.join("archive");
    let o = backup(&server, &archive, &["-e", "-k", keys.to_str().unwrap(), "--connections", "8", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Everything sent, header fields asked alone included (the mailstore's evidence).
    let sent = server.served() + server.headers_served();
    assert!(sent <= total * 105 / 100, "served {sent} for {total} bytes of mail");
    assert_eq!(server.served(), total, "each body once, Trash and Spam included");
    let user = user_dir(&archive);
    let inodes = check_layout(&server, &user, "[Gmail]/All Mail", true);
    assert_eq!(inodes.len(), messages.len(), "each message's bytes stored once");
    let (most, refused) = server.connections();
    assert!(most <= MAX_CONNECTIONS && refused == 0, "{most} connections at once, {refused} refused");
    // Every label folder restores with the original program's own restore loop.
    for (name, uids) in server.folders() {
        let dir = user.join(safe(&name));
        let out = root.join(format!("{}.restored", safe(&name)));
        assert_eq!(support::original_restore_loop(&dir, &keys, &out), uids.len(), "{name}");
    }
    // The metadata of the linked files is theirs: --verify finds every file good.
    let o = run(&["--verify", user.to_str().unwrap(), "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stderr(&o), support::stdout(&o));
    // The non-ASCII label's folder is there under the original's name for it.
    assert!(!files(&user.join(safe(&wire_label("Проекты")))).is_empty());
    // A second run downloads nothing.
    let o = backup(&server, &archive, &["-e", "-k", keys.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(server.served(), total);
}

#[test]
fn labels_and_ids_are_kept_and_a_label_change_shows_without_body_downloads() {
    let messages = mailbox(40);
    let total: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
    let server = FakeGmail::start(USER, PW, Lang::German, messages.clone());
    let root = TempDir::new("gmail-labels");
    let o = backup(&server, root.path(), &["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(server.served(), total);
    let user = user_dir(root.path());
    check_layout(&server, &user, "[Google Mail]/Alle Nachrichten", true);
    let text = journal_text(root.path());
    let m = &messages[10];
    assert!(text.contains(&format!("gm={}/{}", m.msgid, m.thrid)), "X-GM-MSGID and X-GM-THRID recorded");
    let russian = wire_label("Проекты");
    assert!(text.contains(&russian), "the non-ASCII label recorded");
    // In the web interface: a label added to one message, INBOX's taken off another.
    let (a, b) = (&messages[10], messages.iter().find(|m| m.labels.iter().any(|l| l == "\\Inbox")).unwrap());
    let mut labels: Vec<&str> = a.labels.iter().map(String::as_str).filter(|l| *l != "Travel/2024").collect();
    labels.push("Travel/2024");
    labels.push("Neu");
    server.set_labels(a.msgid, &labels);
    let kept: Vec<&str> = b.labels.iter().map(String::as_str).filter(|l| *l != "\\Inbox").collect();
    server.set_labels(b.msgid, &kept);
    let o = backup(&server, root.path(), &["-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(server.served(), total, "no body downloaded for a label change");
    check_layout(&server, &user, "[Google Mail]/Alle Nachrichten", false);
    assert!(stderr(&o).is_empty() || !stderr(&o).contains("error"), "{}", stderr(&o));
    assert!(support::stdout(&o).contains("INBOX: 1 message left the server"), "{}", support::stdout(&o));
    let text = journal_text(root.path());
    assert!(
        text.lines().any(|l| l.contains("l=") && l.contains("Neu") && l.contains(&format!("gm={}/", a.msgid))),
        "the new label recorded for the message"
    );
    // A restore of the account gives one mbox per label folder, as for any account.
    let out = root.join("restored");
    let o = run(&["-r", user.to_str().unwrap(), "-o", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let travel = fs::read(out.join("Travel/2024.mbox")).unwrap();
    let files_of_travel = files(&user.join(safe("Travel/2024"))).len();
    assert_eq!(support::parse_mboxrd(&travel).len(), files_of_travel, "the label folder restored whole");
    // Nothing changed since: a run asks no labels and opens no folder.
    let before = server.commands().len();
    let o = backup(&server, root.path(), &["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let asked: Vec<String> = server.commands()[before..].concat();
    assert!(!asked.iter().any(|c| c.contains("X-GM-") || c.starts_with("EXAMINE")), "{asked:?}");
}

#[test]
fn the_download_cap_stops_the_account_in_one_line_and_the_next_run_fetches_only_the_rest() {
    let messages = mailbox(50);
    let total: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
    let size_of: HashMap<u64, u64> = messages.iter().map(|m| (m.msgid, m.body.len() as u64)).collect();
    let server = FakeGmail::start(USER, PW, Lang::English, messages);
    server.set_cap(Some(total * 2 / 5));
    let root = TempDir::new("gmail-cap");
    let report = root.join("report.json");
    let archive = root.join("archive");
    // Small batches, so the cap falls between two of them.
    let o = backup(&server, &archive, &["-q", "--buffer-size", "64K", "--report", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("download limit") && err.contains("next run continues"), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    let account = &json["accounts"][0];
    assert!(account["error"].as_str().is_some_and(|e| e.contains("download limit")), "{account}");
    let folders = account["folders"].as_array().unwrap();
    let all = folders.iter().find(|f| f["name"] == "[Gmail]/All Mail").unwrap();
    let user = user_dir(&archive);
    let stored = files(&user.join(safe("[Gmail]/All Mail")));
    assert!(!stored.is_empty() && all["archived"] == stored.len(), "{all}");
    let not_reached: Vec<&str> = folders
        .iter()
        .filter(|f| f["errors"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("not reached")))
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(not_reached.contains(&"[Gmail]/Trash") && not_reached.contains(&"[Gmail]/Spam"), "{not_reached:?}");
    // What the first run kept is not fetched again.
    let folders_now = server.folders();
    let all_uids = &folders_now.iter().find(|(n, _)| n == "[Gmail]/All Mail").unwrap().1;
    let kept: u64 = all_uids.iter().filter(|(u, _)| stored.contains_key(u)).map(|(_, m)| size_of[m]).sum();
    let served_before = server.served();
    server.set_cap(None);
    let o = backup(&server, &archive, &["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(server.served() - served_before, total - kept, "only the missing messages fetched");
    check_layout(&server, &user, "[Gmail]/All Mail", true);
}

#[test]
fn gmail_mode_can_be_turned_off() {
    let messages = mailbox(12);
    let total: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
    let server = FakeGmail::start(USER, PW, Lang::English, messages);
    let root = TempDir::new("gmail-off");
    let o = backup(&server, root.path(), &["-q", "--no-gmail-mode"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(server.served() > 2 * total, "every folder downloads its own copy: {}", server.served());
}

#[test]
fn to_imap_into_a_fresh_gmail_recreates_each_message_once_with_its_labels() {
    let messages = mailbox(30);
    let source = FakeGmail::start(USER, PW, Lang::English, messages.clone());
    let root = TempDir::new("gmail-restore");
    let o = backup(&source, root.path(), &["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let target = FakeGmail::start(USER, PW, Lang::English, vec![]);
    let user = user_dir(root.path());
    let port = target.port().to_string();
    let ca = target.ca_file();
    let restore = |extra: &[&str]| {
        let mut args = vec!["-r", user.to_str().unwrap(), "--to-imap", "-u", USER, "-i", "127.0.0.1"];
        args.extend(["--port", &port, "--ca-file", &ca]);
        args.extend(extra);
        run(&args, &[("SMAILARCHIVER_PASSWD", PW)])
    };
    let o = restore(&[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), support::stdout(&o));
    let got = target.messages();
    assert_eq!(got.len(), messages.len(), "each message once");
    for m in &messages {
        let copies: Vec<&Message> = got.iter().filter(|g| g.body == m.body).collect();
        assert_eq!(copies.len(), 1, "message {} once", m.msgid);
        let (mut want, mut have) = (m.labels.clone(), copies[0].labels.clone());
        if want.iter().any(|l| l == "\\Trash" || l == "\\Spam") {
            // Outside All Mail: restored into its folder, which gives it that label only.
            want.retain(|l| l == "\\Trash" || l == "\\Spam");
        }
        want.sort();
        have.sort();
        assert_eq!(have, want, "the labels of message {}", m.msgid);
    }
    // Run again: nothing uploaded twice.
    let o = restore(&["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(target.messages().len(), messages.len());
}

/// The acceptance figure: 1,000 messages with about three labels each. By hand:
/// `cargo test --release --test it gmail:: -- --ignored --nocapture`.
#[test]
#[ignore]
fn thousand_messages() {
    let messages = mailbox(1000);
    let total: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
    let labels: usize = messages.iter().map(|m| m.labels.len()).sum();
    let server = FakeGmail::start(USER, PW, Lang::English, messages.clone());
    let root = TempDir::new("gmail-1000");
    let started = std::time::Instant::now();
    let o = backup(&server, root.path(), &["-q", "-z"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let user = user_dir(root.path());
    let inodes = check_layout(&server, &user, "[Gmail]/All Mail", true);
    let files: usize = server.folders().iter().map(|(_, u)| u.len()).sum();
    println!(
        "1000 messages, {labels} labels, {total} bytes: served {} ({:.4}x), {files} files, {} distinct, {:.1} s",
        server.served(),
        server.served() as f64 / total as f64,
        inodes.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(inodes.len(), messages.len());
    assert!(server.served() <= total * 105 / 100);
}
