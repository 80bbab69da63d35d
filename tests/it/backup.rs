//! Backups against a real Dovecot: every folder kind, message edge cases, all option
//! combinations, byte-exact restore, incremental reruns, UIDVALIDITY changes, TLS modes,
//! wrong passwords, configs with a failing account, concurrent runs. Every archive a test
//! writes is also decoded by the original program's own code (tests/tools/original.py),
//! which must find the original's From-line and then exactly the bytes the server serves.

use crate::support;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::dovecot::Dovecot;
use crate::support::*;

const PW: &str = "s3cret pass";

struct Account<'a> {
    d: &'a Dovecot,
    user: String,
}

impl Account<'_> {
    fn append(&self, mailbox: &str, msg: &[u8]) -> u32 {
        self.d.append(&self.user, PW, mailbox, msg)
    }
    fn raw(&self, mailbox: &str, uid: u32) -> Vec<u8> {
        self.d.fetch_raw(&self.user, PW, mailbox, uid)
    }
    /// Every message of `mailbox` as the server serves it, by UID, in one session.
    fn all_raw(&self, mailbox: &str) -> BTreeMap<u32, Vec<u8>> {
        let mut s = self.d.session(&self.user, PW);
        s.ok(&format!("EXAMINE {}", support::dovecot::quote(mailbox)));
        let r = s.ok("UID FETCH 1:* (BODY.PEEK[])");
        s.logout();
        let mut out = BTreeMap::new();
        for u in r.untagged.iter().filter(|u| u.text.contains(" FETCH ") && u.text.contains("BODY[] ")) {
            let uid = u.text.split("UID ").nth(1).and_then(|t| t.split([' ', ')']).next()).and_then(|n| n.parse().ok());
            let uid: u32 = uid.unwrap_or_else(|| panic!("no UID in {:?}", u.text));
            let body = if u.text.contains("BODY[] \"\"") { Vec::new() } else { u.literals[0].clone() };
            out.insert(uid, body);
        }
        out
    }
}

fn account<'a>(d: &'a Dovecot, name: &str) -> Account<'a> {
    d.add_user(name, PW);
    Account { d, user: name.to_string() }
}

/// Restores a folder directory to a Maildir and returns the messages in UID order.
fn restored(folder: &Path, keys: &[&str]) -> Vec<Vec<u8>> {
    let out = folder.with_extension("restored");
    let _ = fs::remove_dir_all(&out);
    let mut args = vec!["-r", folder.to_str().unwrap(), "--to-maildir", out.to_str().unwrap()];
    args.extend(keys);
    let o = run(&args, &[("SMAILARCHIVER_KEY_PASSWORD", "key pass")]);
    assert_eq!(o.status.code(), Some(0), "restore {}: {}", folder.display(), stderr(&o));
    let mut files: Vec<_> = fs::read_dir(out.join("cur")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| {
        p.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().parse::<u64>().unwrap()
    });
    files.iter().map(|p| fs::read(p).unwrap()).collect()
}

#[test]
fn folders_of_every_kind_restore_byte_exact() {
    let d = Dovecot::start();
    let a = account(&d, "alice");
    for mb in ["Sent Items", "Re&AOc-us", "Archive", "Archive/2019", "Empty"] {
        d.create_mailbox("alice", PW, mb);
    }
    let mut big_from = b"Subject: late from\r\n".to_vec();
    for i in 0..400 {
        big_from.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    big_from.extend_from_slice(b"From: Late <late@example.org>\r\n\r\nbody\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("INBOX", mail::note("hello", "plain text")),
        ("INBOX", b"Subject: no from header\r\n\r\nnobody\r\n".to_vec()),
        ("INBOX", big_from),
        ("INBOX", mail::note("from lines", "From the start\r\n>From quoted\r\nFrom: in body")),
        ("INBOX", [mail::note("8bit", "caf\u{e9} na\u{ef}ve").as_slice(), &[0xe9, 0xff, 0x80, b'\r', b'\n']].concat()),
        ("Sent Items", mail::note("sent", "sent text")),
        ("Re&AOc-us", mail::note("recu", "re\u{e7}u")),
        ("Archive/2019", mail::note("old", "2019")),
    ];
    let mut uids = Vec::new();
    for (mb, msg) in &cases {
        uids.push((*mb, a.append(mb, msg)));
    }
    let tmp = TempDir::new("bk-kinds");
    let o = backup(&d, "alice", PW, tmp.path(), &["--all-folders", "-z"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let raws: BTreeMap<u32, Vec<u8>> =
        uids.iter().filter(|(m, _)| *m == "INBOX").map(|(_, u)| (*u, a.raw("INBOX", *u))).collect();
    for (dir, mb) in [
        ("INBOX", "INBOX"),
        ("Sent Items", "Sent Items"),
        ("ReAOc-us", "Re&AOc-us"),
        ("Archive2019", "Archive/2019"),
        ("Empty", "Empty"),
    ] {
        let folder = tmp.join("alice").join(dir);
        assert!(folder.is_dir(), "{dir} missing; output: {out}");
        let want: Vec<Vec<u8>> = uids.iter().filter(|(m, _)| *m == mb).map(|(m, u)| a.raw(m, *u)).collect();
        let by_uid: BTreeMap<u32, Vec<u8>> =
            uids.iter().filter(|(m, _)| *m == mb).map(|(_, u)| *u).zip(want.iter().cloned()).collect();
        assert_original_decodes(&folder, None, None, &by_uid);
        if want.is_empty() {
            assert_eq!(
                fs::read_dir(&folder)
                    .unwrap()
                    .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".mbox"))
                    .count(),
                0
            );
            continue;
        }
        let got = restored(&folder, &[]);
        assert_eq!(got.len(), want.len(), "{dir}");
        for (g, w) in got.iter().zip(&want) {
            assert_same(g, w, dir);
        }
    }
    assert!(out.contains("alice INBOX: 5 new, 0 already archived, 0 failed"), "{out}");
    assert!(out.contains("alice Reçus: 1 new"), "{out}");
    // The stored From-line is the original's: the From header's value; `unknown@unknown`
    // without one, and also for a From header after the first 16 KiB, which the
    // original never looks at. Pinned here apart from the rule in originals_from_line.
    for (i, line) in [(0, "From Ann <ann@example.org>\n"), (1, "From unknown@unknown\n"), (2, "From unknown@unknown\n")]
    {
        let file = tmp.join("alice/INBOX").join(format!("{}.mbox.gz", uids[i].1));
        let o = original_py(&["decode", file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_same(&o.stdout, &[line.as_bytes(), &raws[&uids[i].1]].concat(), &format!("{}", file.display()));
    }
    assert!(raws[&uids[2].1].windows(5).position(|w| w == b"From:").unwrap() > 16384, "the test needs a late From");
}

#[test]
fn all_option_combinations_and_key_modes_round_trip() {
    let d = Dovecot::start();
    let a = account(&d, "bob");
    let msgs: Vec<Vec<u8>> =
        (0..12).map(|i| mail::note(&format!("m{i}"), &"line of text\r\n".repeat(i * 37))).collect();
    let uids: Vec<u32> = msgs.iter().map(|m| a.append("INBOX", m)).collect();
    let want: Vec<Vec<u8>> = uids.iter().map(|u| a.raw("INBOX", *u)).collect();
    let tmp = TempDir::new("bk-combos");
    let keys = tmp.join("k");
    let pkeys = tmp.join("pk");
    let by_uid: BTreeMap<u32, Vec<u8>> = uids.iter().copied().zip(want.iter().cloned()).collect();
    let (k, pk, pw) = (Some(keys.as_path()), Some(pkeys.as_path()), Some("key pass"));
    // Name, backup flags, restore flags, and the key file and password the original needs.
    type Combo<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, Option<&'a Path>, Option<&'a str>);
    let combos: Vec<Combo> = vec![
        ("plain", vec![], vec![], None, None),
        ("z", vec!["-z"], vec![], None, None),
        ("e", vec!["-e", "-k", keys.to_str().unwrap()], vec!["-k", keys.to_str().unwrap()], k, None),
        ("ze", vec!["-z", "-e", "-k", keys.to_str().unwrap()], vec!["-k", keys.to_str().unwrap()], k, None),
        ("zeP", vec!["-zeP", "-k", pkeys.to_str().unwrap()], vec!["-k", pkeys.to_str().unwrap(), "-P"], pk, pw),
        ("eP", vec!["-e", "-P", "-k", pkeys.to_str().unwrap()], vec!["-k", pkeys.to_str().unwrap(), "-P"], pk, pw),
    ];
    for (name, flags, rkeys, okeys, opw) in combos {
        let root = tmp.join(name);
        let o = Command::new(bin())
            .args(["-u", "bob", "-i", "127.0.0.1", "--port", &d.imaps_port().to_string()])
            .args(["--ca-file", d.cert_pem_path().to_str().unwrap(), "--dir", root.to_str().unwrap()])
            .args(&flags)
            .env("SMAILARCHIVER_PASSWD", PW)
            .env("SMAILARCHIVER_KEY_PASSWORD", "key pass")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let got = restored(&root.join("bob/INBOX"), &rkeys);
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            assert_same(g, w, name);
        }
        let v = run(
            &[&["--verify", root.to_str().unwrap()][..], &rkeys].concat(),
            &[("SMAILARCHIVER_KEY_PASSWORD", "key pass")],
        );
        assert_eq!(v.status.code(), Some(0), "{name} verify: {}", stdout(&v));
        assert_original_decodes(&root.join("bob/INBOX"), okeys, opw, &by_uid);
    }
    // Key files were created 0600 and never printed.
    use std::os::unix::fs::PermissionsExt;
    for k in [&keys, &pkeys] {
        assert_eq!(fs::metadata(k).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(tmp.join("pk.sha").exists());
}

#[test]
fn second_run_fetches_nothing_and_new_mail_is_added() {
    let d = Dovecot::start();
    let a = account(&d, "carol");
    for i in 0..30 {
        a.append("INBOX", &mail::note(&format!("n{i}"), "x"));
    }
    let tmp = TempDir::new("bk-incr");
    let before = d.fetch_stats("carol");
    let o = backup(&d, "carol", PW, tmp.path(), &["-z", "-q"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "--quiet prints nothing");
    let first = d.fetch_stats("carol").since(&before);
    assert_eq!(first.body_count, 30);
    let o = backup(&d, "carol", PW, tmp.path(), &["-z"], &[]);
    assert!(stdout(&o).contains("carol INBOX: 0 new, 30 already archived, 0 failed"), "{}", stdout(&o));
    let second = d.fetch_stats("carol").since(&before);
    assert_eq!(second.body_count, 30, "the second run fetched message bodies");
    let log = d.commands_log("carol");
    // Besides the mail: the headers of a few messages, once, that identify the mailstore.
    let evidence = log.lines().filter(|l| l.contains("HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)")).count();
    assert_eq!(evidence, 1, "{log}");
    let fetches = log.lines().filter(|l| l.contains("FETCH")).count() - evidence;
    assert!(fetches <= 2, "too many FETCH commands over two runs:\n{log}");
    a.append("INBOX", &mail::note("late", "new one"));
    let o = backup(&d, "carol", PW, tmp.path(), &["-z"], &[]);
    assert!(stdout(&o).contains("carol INBOX: 1 new, 30 already archived"), "{}", stdout(&o));
    assert_original_decodes(&tmp.join("carol/INBOX"), None, None, &a.all_raw("INBOX"));
}

/// Many small folders: each folder's last commit is finished beside the next folder
/// (src/backup/tails.rs). Their lines still come out in the order the folders were done
/// (the no-op rerun, which finishes nothing late, prints them in the same order), and
/// each folder's journal and completion mark were written: the rerun opens no folder and
/// fetches nothing, and --verify finds every message with its journal record.
#[test]
fn many_small_folders_are_finished_in_order_and_recorded_complete() {
    let d = Dovecot::start();
    let a = account(&d, "fran");
    let names: Vec<String> = (0..24).map(|i| format!("F{:02}", 23 - i)).collect();
    for (i, name) in names.iter().enumerate() {
        d.create_mailbox("fran", PW, name);
        for k in 0..2 {
            a.append(name, &mail::note(&format!("{name} m{k}"), &"y".repeat(300 * (i + k + 1))));
        }
    }
    let tmp = TempDir::new("bk-many");
    let folder_lines = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("fran F"))
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    let o = backup(&d, "fran", PW, tmp.path(), &["-z", "--all-folders"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = stdout(&o);
    for name in &names {
        assert_eq!(first.matches(&format!("fran {name}: 2 new, 0 already archived")).count(), 1, "{first}");
    }
    let before = d.fetch_stats("fran");
    let log_before = d.commands_log("fran").lines().count();
    let o = backup(&d, "fran", PW, tmp.path(), &["-z", "--all-folders"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let again = stdout(&o);
    assert_eq!(folder_lines(&first), folder_lines(&again), "the folders' order:\n{first}\n---\n{again}");
    assert_eq!(folder_lines(&first).len(), names.len(), "{first}");
    assert_eq!(d.fetch_stats("fran").since(&before).body_count, 0, "the rerun fetched mail");
    let log = d.commands_log("fran");
    let rerun: Vec<&str> = log.lines().skip(log_before).collect();
    assert!(
        !rerun.iter().any(|l| l.contains("EXAMINE") || l.contains("SELECT")),
        "the rerun opened a folder:\n{rerun:?}"
    );
    let v = run(&["--verify", tmp.join("fran").to_str().unwrap()], &[]);
    assert_eq!(v.status.code(), Some(0), "{}{}", stdout(&v), stderr(&v));
}

#[test]
fn uidvalidity_change_moves_the_old_archive_aside() {
    let d = Dovecot::start();
    let a = account(&d, "dave");
    d.create_mailbox("dave", PW, "Work");
    let first = a.append("Work", &mail::note("one", "first life"));
    let tmp = TempDir::new("bk-uidv");
    assert_eq!(backup(&d, "dave", PW, tmp.path(), &["-f", "Work"], &[]).status.code(), Some(0));
    let old_v = d.mailbox_uidvalidity("dave", PW, "Work");
    let old_raw = a.all_raw("Work");
    d.delete_mailbox("dave", PW, "Work");
    d.create_mailbox("dave", PW, "Work");
    let second = a.append("Work", &mail::note("two", "second life"));
    assert_eq!(first, second, "the test needs a reused UID");
    let new_raw = a.raw("Work", second);
    let o = backup(&d, "dave", PW, tmp.path(), &["-f", "Work"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("UIDVALIDITY changed"), "{}", stderr(&o));
    let old_dir = tmp.join(format!("dave/Work.uidvalidity-{old_v}"));
    assert!(old_dir.is_dir(), "old archive kept");
    assert_same(&restored(&tmp.join("dave/Work"), &[])[0], &new_raw, "new message archived, not skipped");
    assert!(String::from_utf8_lossy(&restored(&old_dir, &[])[0]).contains("first life"));
    assert_original_decodes(&old_dir, None, None, &old_raw);
    assert_original_decodes(&tmp.join("dave/Work"), None, None, &a.all_raw("Work"));
}

#[test]
fn big_message_streams_through_a_small_budget() {
    let d = Dovecot::start();
    let a = account(&d, "erin");
    let mut big = mail::note("big", "");
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789\r\n";
    while big.len() < 20 * 1024 * 1024 {
        big.extend_from_slice(line);
    }
    let uid = a.append("INBOX", &big);
    a.append("INBOX", &mail::note("small", "after the big one"));
    // Exactly twice the budget.
    let mut exact = mail::note("exact", "");
    exact.resize(512 * 1024 - 2, b'e');
    exact.extend_from_slice(b"\r\n");
    let exact_uid = a.append("INBOX", &exact);
    let tmp = TempDir::new("bk-big");
    let keys = tmp.join("keys");
    let o =
        backup(&d, "erin", PW, tmp.path(), &["-z", "-e", "-k", keys.to_str().unwrap(), "--buffer-size", "256K"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = d.commands_log("erin");
    // Fetched alone and whole, its body streamed to disk: no partial fetches.
    assert!(!log.contains("BODY.PEEK[]<"), "{}", &log[..log.len().min(2000)]);
    for u in [uid, exact_uid] {
        let alone = format!("UID FETCH {u} (UID FLAGS INTERNALDATE BODY.PEEK[])");
        assert!(log.contains(&alone), "{alone} not sent:\n{}", &log[..log.len().min(2000)]);
    }
    let got = restored(&tmp.join("erin/INBOX"), &["-k", keys.to_str().unwrap()]);
    let served = a.all_raw("INBOX");
    assert_same(&got[0], &served[&uid], "20 MB message");
    assert_eq!(got.len(), 3);
    assert_eq!(served[&exact_uid].len(), 512 * 1024);
    assert_same(&got[2], &served[&exact_uid], "message of exactly twice the budget");
    assert_original_decodes(&tmp.join("erin/INBOX"), Some(&keys), None, &served);
}

#[test]
fn starttls_and_certificate_trust() {
    let d = Dovecot::start();
    let a = account(&d, "fay");
    a.append("INBOX", &mail::note("tls", "x"));
    let tmp = TempDir::new("bk-tls");
    let root = tmp.path().to_str().unwrap();
    let imap = d.imap_port().to_string();
    let imaps = d.imaps_port().to_string();
    let env = [("SMAILARCHIVER_PASSWD", PW)];
    let o = run(
        &[
            "-u",
            "fay",
            "-i",
            "127.0.0.1",
            "--port",
            &imap,
            "--starttls",
            "--ca-file",
            d.cert_pem_path().to_str().unwrap(),
            "--dir",
            root,
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "starttls: {}", stderr(&o));
    let o = run(&["-u", "fay", "-i", "127.0.0.1", "--port", &imaps, "--dir", root], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(d.cert_sha256_hex()), "untrusted: {}", stderr(&o));
    let o = run(
        &["-u", "fay", "-i", "127.0.0.1", "--port", &imaps, "--pin-sha256", d.cert_sha256_hex(), "--dir", root],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "pinned: {}", stderr(&o));
    let o = run(
        &[
            "-u",
            "fay",
            "-i",
            "127.0.0.1",
            "--port",
            &imaps,
            "--ca-file",
            d.cert_pem_path().to_str().unwrap(),
            "--dir",
            root,
        ],
        &[("SMAILARCHIVER_PASSWD", "wrong")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("login failed for fay"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("wrong"), "password leaked: {}", stderr(&o));
    assert_original_decodes(&tmp.join("fay/INBOX"), None, None, &a.all_raw("INBOX"));
}

#[test]
fn config_with_two_accounts_one_failing() {
    let d = Dovecot::start();
    let a = account(&d, "gus");
    a.append("INBOX", &mail::note("cfg", "x"));
    let tmp = TempDir::new("bk-cfg");
    let cfg = tmp.join("config.json");
    let port = d.imaps_port();
    let ca = d.cert_pem_path();
    let text = format!(
        r#"{{"list": [
          {{"user": "nobody", "imap": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "passwd": "nope", "folder": "INBOX", "encrypt": 0, "compress": 0}},
          {{"user": "gus", "imap": "127.0.0.1", "port": {port}, "ca_file": "{ca}", "passwd": "{PW}", "folder": ["INBOX"], "encrypt": 1, "keys": "{keys}", "promp": 0, "compress": 1}}
        ], "archive_dir": "{root}", "verbose": 1}}"#,
        ca = ca.display(),
        keys = tmp.join("keys").display(),
        root = tmp.join("arch").display()
    );
    fs::write(&cfg, text).unwrap();
    let o = run(&["-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("nobody@127.0.0.1"), "{}", stderr(&o));
    assert!(stdout(&o).contains("gus INBOX: 1 new"), "{}", stdout(&o));
    assert!(tmp.join("arch/gus/INBOX/1.mbox.gz.enc").exists());
    assert_original_decodes(&tmp.join("arch/gus/INBOX"), Some(&tmp.join("keys")), None, &a.all_raw("INBOX"));
}

#[test]
fn concurrent_run_is_refused() {
    let tmp = TempDir::new("bk-lock");
    let lock = fs::File::create(tmp.join(".smailarchiver.lock")).unwrap();
    lock.lock().unwrap();
    let o = run(
        &["-u", "x", "-i", "127.0.0.1", "--port", "1", "--dir", tmp.path().to_str().unwrap()],
        &[("SMAILARCHIVER_PASSWD", "p")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("another smailarchiver run"), "{}", stderr(&o));
}

#[test]
fn wizard_with_piped_answers() {
    let d = Dovecot::start();
    let a = account(&d, "hana");
    let uid = a.append("INBOX", &mail::note("wiz", "asked for"));
    let tmp = TempDir::new("bk-wizard");
    let answers = format!(
        "hana\n127.0.0.1\n{}\n\n{PW}\nn\n{}\n\ny\nn\n{}\n\n",
        d.imaps_port(),
        d.cert_pem_path().display(),
        tmp.path().display()
    );
    let o = run_with_input(&mut Command::new(bin()), answers.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("Email user name"), "the wizard asks: {}", stderr(&o));
    assert!(!stderr(&o).contains(PW) && !stdout(&o).contains(PW), "password echoed");
    assert_same(&restored(&tmp.join("hana/INBOX"), &[])[0], &a.raw("INBOX", uid), "wizard backup");
    assert!(tmp.join(format!("hana/INBOX/{uid}.mbox.gz")).exists());
    assert_original_decodes(&tmp.join("hana/INBOX"), None, None, &a.all_raw("INBOX"));
    // Input that ends early is a clear error, not a hang or a panic.
    let o = Command::new(bin()).stdin(Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("end of input"), "{}", stderr(&o));
}

/// Messages expunged by another session after the backup listed the folder and began
/// fetching, before it asked for them: the backup is stopped (SIGSTOP) once its first
/// message is being written, the last 150 messages are expunged, and it is let go on. Those
/// not yet fetched are counted as vanished, not as failures; every message still on the
/// server is archived, and everything archived is what the server had.
#[test]
fn expunged_between_listing_and_fetch_is_not_fatal() {
    let d = Dovecot::start();
    let a = account(&d, "ivan");
    let keep = a.append("INBOX", &mail::note("keep", "stays"));
    let tmp = TempDir::new("bk-expunge");
    // 20 KB each: three to a 64 KiB fetch, so few are asked for ahead of the one written.
    let mut s = d.session("ivan", PW);
    let all: Vec<u32> =
        (0..300).map(|i| s.append("INBOX", &[], &mail::note(&format!("g{i}"), &"z".repeat(20_000))).1).collect();
    s.logout();
    let gone = &all[150..];
    // Taken before the run: the expunged messages cannot be fetched afterwards.
    let served = a.all_raw("INBOX");
    let port = d.imaps_port().to_string();
    let ca = d.cert_pem_path();
    let mut child = Command::new(bin())
        .args(["-u", "ivan", "-i", "127.0.0.1", "--port", &port, "--ca-file", ca.to_str().unwrap()])
        .args(["--dir", tmp.path().to_str().unwrap(), "--buffer-size", "64K", "-v"])
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let writing = tmp.join(".smailarchiver/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // A message's temporary file is named after it (records are written there too).
    let writes_a_message = || {
        fs::read_dir(&writing).is_ok_and(|e| e.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".mbox")))
    };
    while !writes_a_message() {
        assert!(child.try_wait().unwrap().is_none(), "the backup ended before it wrote a message");
        assert!(std::time::Instant::now() < deadline, "no message written within a minute");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: signals to our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let mut s = d.session("ivan", PW);
    s.ok("SELECT INBOX");
    let set = format!("{}:{}", gone[0], gone[gone.len() - 1]);
    s.ok(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"));
    s.ok(&format!("UID EXPUNGE {set}"));
    s.logout();
    // SAFETY: kill reads no memory; `pid` is the child stopped above, not yet waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary = stdout(&o);
    let line = summary.lines().find(|l| l.contains(" new, ")).unwrap_or_else(|| panic!("{summary}"));
    // Whatever was archived is whole.
    let v = run(&["--verify", tmp.path().to_str().unwrap()], &[]);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    let dir = tmp.join("ivan/INBOX");
    let archived: BTreeMap<u32, Vec<u8>> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().split([':', '.']).next().unwrap().parse::<u32>().unwrap())
        .map(|uid| (uid, served.get(&uid).unwrap_or_else(|| panic!("UID {uid} was never on the server")).clone()))
        .collect();
    let vanished: Vec<u32> = gone.iter().copied().filter(|u| !archived.contains_key(u)).collect();
    assert!(!vanished.is_empty(), "every expunged message had been fetched before it went: {line}");
    let want = format!("INBOX: {} new, 0 already archived, 0 failed, {} vanished, ", archived.len(), vanished.len());
    assert!(line.contains(&want), "{want:?} not in {line:?}");
    assert!(archived.contains_key(&keep));
    // Everything the server still has after the run was archived.
    let left = a.d.uids("ivan", PW, "INBOX");
    assert_eq!(left.len(), 151, "the expunge");
    for uid in left {
        assert!(archived.contains_key(&uid), "UID {uid} is still on the server but was not archived");
    }
    println!("{line}");
    assert_original_decodes(&dir, None, None, &archived);
}

#[test]
fn config_password_protected_keys_use_the_key_password_sources() {
    let d = Dovecot::start();
    let a = account(&d, "kai");
    let uid = a.append("INBOX", &mail::note("promp", "password mode"));
    let tmp = TempDir::new("bk-promp");
    let cfg = tmp.join("c.json");
    let text = format!(
        r#"{{"list": [{{"user": "kai", "imap": "127.0.0.1", "port": {}, "ca_file": "{}", "passwd_cmd": "echo '{PW}'",
          "folder": "INBOX", "encrypt": 1, "keys": "{}", "promp": 1, "compress": 1,
          "key_password_cmd": "echo key pass"}}], "archive_dir": "{}"}}"#,
        d.imaps_port(),
        d.cert_pem_path().display(),
        tmp.join("kai.keys").display(),
        tmp.join("arch").display()
    );
    fs::write(&cfg, text).unwrap();
    let o = run(&["-c", cfg.to_str().unwrap(), "-q"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tmp.join("kai.keys.sha").exists(), "password-mode key file made");
    let k = tmp.join("kai.keys");
    let got = restored(&tmp.join("arch/kai/INBOX"), &["-k", k.to_str().unwrap(), "-P"]);
    assert_same(&got[0], &a.raw("INBOX", uid), "promp backup");
    // A wrong key password is refused before anything is written.
    let before = fs::read_dir(tmp.join("arch/kai/INBOX")).unwrap().count();
    let more = a.append("INBOX", &mail::note("more", "x"));
    let o = run(&["-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0));
    fs::write(&cfg, fs::read_to_string(&cfg).unwrap().replace("echo key pass", "echo wrong")).unwrap();
    a.append("INBOX", &mail::note("even more", "x"));
    let o = run(&["-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong key password"), "{}", stderr(&o));
    assert_eq!(fs::read_dir(tmp.join("arch/kai/INBOX")).unwrap().count(), before + 1);
    let served = a.all_raw("INBOX");
    let archived: BTreeMap<u32, Vec<u8>> = [uid, more].iter().map(|u| (*u, served[u].clone())).collect();
    assert_original_decodes(&tmp.join("arch/kai/INBOX"), Some(&k), Some("key pass"), &archived);
}

/// Property: for random messages and random options, backup then restore gives back
/// exactly the bytes the server serves.
#[test]
fn random_messages_and_options_round_trip() {
    let d = Dovecot::start();
    let a = account(&d, "pat");
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut uids = Vec::new();
    for i in 0..40 {
        let len = match next() % 10 {
            0 => next() % 40,
            1..=6 => next() % 20_000,
            7 | 8 => next() % 200_000,
            _ => 300_000 + next() % 700_000,
        } as usize;
        let mut m = if next() % 5 == 0 { Vec::new() } else { format!("From: r{i}@example.org\r\n\r\n").into_bytes() };
        while m.len() < len {
            let r = next();
            match r % 6 {
                0 => m.extend_from_slice(b"\r\nFrom the body\r\n"),
                1 => m.extend_from_slice(b">>From quoted\r\n"),
                2 => m.extend((0..16).map(|k| (r >> (k * 4)) as u8)),
                _ => m.extend_from_slice(b"plain words on a line\r\n"),
            }
        }
        m.truncate(len);
        uids.push(a.append("INBOX", &m));
    }
    let served = a.all_raw("INBOX");
    let want: Vec<Vec<u8>> = uids.iter().map(|u| served[u].clone()).collect();
    let tmp = TempDir::new("bk-prop");
    for round in 0..4 {
        let root = tmp.join(format!("r{round}"));
        let keys = tmp.join(format!("k{round}"));
        let mut flags: Vec<String> = Vec::new();
        let mut rkeys: Vec<String> = Vec::new();
        if next() % 2 == 0 {
            flags.push("-z".into());
            flags.extend(["--compress-level".into(), (next() % 10).to_string()]);
        }
        if round % 2 == 1 {
            flags.extend(["-e".into(), "-k".into(), keys.display().to_string()]);
            rkeys.extend(["-k".into(), keys.display().to_string()]);
            if next() % 2 == 0 {
                flags.push("-P".into());
                rkeys.push("-P".into());
            }
        }
        flags.extend(["--buffer-size".into(), format!("{}K", 64 + next() % 512)]);
        let o = Command::new(bin())
            .args(["-u", "pat", "-i", "127.0.0.1", "--port", &d.imaps_port().to_string(), "-q"])
            .args(["--ca-file", d.cert_pem_path().to_str().unwrap(), "--dir", root.to_str().unwrap()])
            .args(&flags)
            .env("SMAILARCHIVER_PASSWD", PW)
            .env("SMAILARCHIVER_KEY_PASSWORD", "key pass")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{flags:?}: {}", stderr(&o));
        let rk: Vec<&str> = rkeys.iter().map(String::as_str).collect();
        let got = restored(&root.join("pat/INBOX"), &rk);
        assert_eq!(got.len(), want.len(), "{flags:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_same(g, w, &format!("{flags:?}"));
        }
        let encrypted = flags.iter().any(|f| f == "-e");
        let password = flags.iter().any(|f| f == "-P");
        assert_original_decodes(
            &root.join("pat/INBOX"),
            encrypted.then_some(keys.as_path()),
            password.then_some("key pass"),
            &served,
        );
    }
}

/// `--connections 3`: three sessions share the folders, every message is archived once,
/// byte-exact, and a rerun needs one session and opens no folder.
#[test]
fn several_connections_share_the_folders() {
    let d = Dovecot::start();
    let a = account(&d, "dan");
    let folders = ["INBOX", "Sent", "Archive", "Archive/2019", "Re&AOc-us", "Lists"];
    for (i, f) in folders.iter().enumerate() {
        if *f != "INBOX" {
            d.create_mailbox("dan", PW, f);
        }
        for n in 0..(3 + i) {
            a.append(f, &mail::note(&format!("{f} {n}"), &"x".repeat(100 * n)));
        }
    }
    let tmp = TempDir::new("bk-conn");
    let keys = tmp.join("keys");
    let args = ["--all-folders", "--connections", "3", "-z", "-e", "-k", keys.to_str().unwrap()];
    let before = d.fetch_stats("dan");
    let o = backup(&d, "dan", PW, tmp.path(), &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = d.fetch_stats("dan").since(&before);
    assert_eq!(run.sessions, 3, "one session per connection");
    assert_eq!(run.body_count, (3..9).sum::<u64>(), "every message fetched once");
    let dirs = ["INBOX", "Sent", "Archive", "Archive2019", "ReAOc-us", "Lists"];
    for (f, dir) in folders.iter().zip(dirs) {
        assert_original_decodes(&tmp.join("dan").join(dir), Some(&keys), None, &a.all_raw(f));
    }
    let before = d.fetch_stats("dan");
    let o = backup(&d, "dan", PW, tmp.path(), &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rerun = d.fetch_stats("dan").since(&before);
    assert_eq!((rerun.sessions, rerun.body_count), (1, 0), "nothing to share: one session, no fetch");
    assert!(!d.commands_log("dan").contains("SELECT"), "read-only");
}

/// What a person reads: `--list` decodes RFC 2047 subjects and shows dates in one form,
/// a Maildir restore names messages `UID:2,FLAGS`, and a folder the server lacks is
/// named with the closest ones it has.
#[test]
fn output_a_person_reads() {
    let d = Dovecot::start();
    let a = account(&d, "rita");
    for mb in ["Sent", "Sent Messages", "Drafts"] {
        d.create_mailbox("rita", PW, mb);
    }
    let encoded = b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\nDate: Thu, 2 Jan 2020 10:00:00 +0100\r\n\
                    Subject: =?UTF-8?B?R3LDvMOfZSBOci4gMTUx?=\r\n\r\nbody\r\n";
    let uid = a.append("INBOX", encoded);
    let tmp = TempDir::new("readable");
    let root = tmp.dir("root");
    let o = backup(&d, "rita", PW, &root, &[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let folder = root.join("rita/INBOX");
    let o = run(&["--list", folder.to_str().unwrap()], &[]);
    let line = stdout(&o);
    let fields: Vec<&str> = line.trim_end().split('\t').collect();
    assert_eq!(fields[0], uid.to_string());
    // The arrival time, in the form of every date the listing shows.
    assert!(fields[1].len() == 25 && fields[1].as_bytes()[4] == b'-' && fields[1].as_bytes()[10] == b' ', "{line}");
    assert_eq!(&fields[2..4], ["André <andre@example.org>", "Grüße Nr. 151"], "{line}");
    let out = tmp.join("maildir");
    let o = run(&["-r", folder.to_str().unwrap(), "--to-maildir", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<String> =
        fs::read_dir(out.join("cur")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, [format!("{uid}:2,")]);
    let o = backup(&d, "rita", PW, &root, &["-f", "Sent Items"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "(the server has no such folder; closest: \"Sent\", \"Sent Messages\"; --list-folders shows them all)"
        ),
        "{}",
        stderr(&o)
    );
}

/// On a terminal, a first run shows what to plan with: folder k of n, messages and bytes
/// done of the total, the rate and the time left; every run ends with its total line.
/// With -q, a good run prints nothing, terminal or not.
#[test]
fn a_first_run_on_a_terminal_shows_total_rate_and_eta() {
    let d = Dovecot::start();
    let a = account(&d, "tess");
    d.create_mailbox("tess", PW, "Old");
    let mut s = d.session("tess", PW);
    let body = "x".repeat(20_000);
    for i in 0..40 {
        s.append(if i < 30 { "INBOX" } else { "Old" }, &[], &mail::note(&format!("m{i}"), &body));
    }
    s.logout();
    let tmp = TempDir::new("progress-pty");
    let mut args = d.client_args(&a.user, &tmp.join("root"));
    args.push("--all-folders".into());
    let mut pty = support::pty::Pty::spawn(Command::new(bin()).args(&args).env("SMAILARCHIVER_PASSWD", PW));
    let line = pty.expect("ETA ");
    let (code, text) = pty.wait();
    assert_eq!(code, 0, "{text}");
    let line = line.rsplit('\r').next().unwrap_or_default().replace("\x1b[K", "");
    assert!(line.starts_with("tess INBOX (folder 1 of 2): "), "{line:?}");
    assert!(line.contains("/30 messages, ") && line.contains(" KiB of ") && line.contains("/s, "), "{line:?}");
    assert!(text.contains("tess Old (folder 2 of 2): "), "{text}");
    assert!(text.contains("\r\n1 account: 1 ok, 0 failed; 40 new messages, "), "the total line: {text}");
    // Quiet: not a byte, even on a terminal.
    a.append("INBOX", &mail::note("later", "one more"));
    let mut quiet = args.clone();
    quiet.push("-q".into());
    let pty = support::pty::Pty::spawn(Command::new(bin()).args(&quiet).env("SMAILARCHIVER_PASSWD", PW));
    assert_eq!(pty.wait(), (0, String::new()));
}
