//! Flags, arrival times and digests against a real Dovecot (issue 11): messages appended
//! with flags and INTERNALDATEs unlike their Date headers are backed up plain, `-z -e` and
//! `-e -P`; the metadata has the right flags and dates (seen through `--list`), Maildir
//! restores name and date the files by them, flags changed on the server show after the
//! next run (CONDSTORE's CHANGEDSINCE), a no-op rerun opens no folder, `--uid` restores
//! one message, `--verify` catches a file removed and one copied over another UID, and
//! the original's own restore loop still restores the folder with the metadata present.

use std::fs;
use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::support::dovecot::Dovecot;
use crate::support::*;

const PW: &str = "s3cret pass";
const KEY_PW: &str = "key pass";
/// The key password, from the environment.
const KEY_ENV: &[(&str, &str)] = &[("SMAILARCHIVER_KEY_PASSWORD", KEY_PW)];

/// Flags appended with, INTERNALDATE, its Unix time, Date header or none, Maildir letters.
type Case = (&'static [&'static str], &'static str, i64, Option<&'static str>, &'static str);

const MESSAGES: [Case; 3] = [
    (&["\\Seen", "\\Flagged"], "02-Jan-2020 10:00:00 +0100", 1577955600, Some("Wed, 1 Jan 2014 00:00:00 +0000"), "FS"),
    (
        &["\\Answered", "$Forwarded", "Work"],
        "15-Mar-2019 08:30:00 -0500",
        1552656600,
        Some("Mon, 2 Feb 2015 12:00:00 +0000"),
        "PR",
    ),
    (&[], "01-Feb-2018 00:00:00 +0000", 1517443200, None, ""),
];

fn message(i: usize, date: Option<&str>) -> Vec<u8> {
    let date = date.map(|d| format!("Date: {d}\r\n")).unwrap_or_default();
    format!("From: Ann <ann@example.org>\r\nTo: bo@example.net\r\n{date}Subject: note {i}\r\n\r\nbody {i}\r\n")
        .into_bytes()
}

/// An IMAP date-time (`02-Jan-2020 10:00:00 +0100`) as `--list` shows dates
/// (`2020-01-02 10:00:00 +0100`).
fn listed_date(imap: &str) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (date, rest) = imap.trim().split_once(' ').unwrap();
    let parts: Vec<&str> = date.split('-').collect();
    let month = MONTHS.iter().position(|m| *m == parts[1]).unwrap() + 1;
    format!("{}-{month:02}-{:0>2} {rest}", parts[2], parts[0])
}

fn tool(args: &[&str]) -> std::process::Output {
    run(args, &[("SMAILARCHIVER_KEY_PASSWORD", KEY_PW)])
}

/// `--list` lines, split into their seven fields.
fn listing(folder: &Path, keys: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["--list", folder.to_str().unwrap()];
    args.extend(keys);
    let o = tool(&args);
    assert_eq!(o.status.code(), Some(0), "list: {}", stderr(&o));
    stdout(&o).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect()
}

/// A Maildir restore's file names (without the UID part) and times, in UID order.
fn maildir(folder: &Path, keys: &[&str], extra: &[&str]) -> Vec<(u32, String, i64)> {
    let out = folder.with_extension("maildir");
    let _ = fs::remove_dir_all(&out);
    let mut args = vec!["-r", folder.to_str().unwrap(), "--to-maildir", out.to_str().unwrap()];
    args.extend(keys);
    args.extend(extra);
    let o = tool(&args);
    assert_eq!(o.status.code(), Some(0), "restore: {}", stderr(&o));
    let mut files: Vec<(u32, String, i64)> = fs::read_dir(out.join("cur"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let uid = name.split([':', '.']).next().unwrap().parse().unwrap();
            let info = name.split_once(":2,").map(|(_, f)| f.to_string()).unwrap_or_else(|| panic!("{name}"));
            let mtime = fs::metadata(&p).unwrap().modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
            (uid, info, mtime as i64)
        })
        .collect();
    files.sort();
    fs::remove_dir_all(&out).unwrap();
    files
}

fn verify(root: &Path, keys: &[&str]) -> (i32, String) {
    let mut args = vec!["--verify", root.to_str().unwrap()];
    args.extend(keys);
    let o = tool(&args);
    (o.status.code().unwrap_or(-1), stdout(&o))
}

fn round_trip(mode: &str, options: &[&str]) {
    let d = Dovecot::start();
    let user = format!("meta{}", mode.replace(' ', "").to_lowercase());
    d.add_user(&user, PW);
    let tmp = TempDir::new(&format!("meta-{}", mode.replace(' ', "")));
    let root = tmp.dir("root");
    let key_file = tmp.join("keys");
    let mut extra: Vec<&str> = options.to_vec();
    let mut keys: Vec<&str> = Vec::new();
    if options.contains(&"-e") {
        keys = vec!["-k", key_file.to_str().unwrap()];
        if options.contains(&"-P") {
            keys.push("-P");
        }
        extra.extend(["-k", key_file.to_str().unwrap()]);
    }
    let mut s = d.session(&user, PW);
    let mut uids = Vec::new();
    for (i, (flags, date, _, header, _)) in MESSAGES.iter().enumerate() {
        uids.push(s.append_at("INBOX", flags, Some(date), &message(i, *header)).1);
    }
    // Dovecot keeps the instant, not the zone: the dates to expect are the ones it serves.
    s.ok("EXAMINE INBOX");
    let served: Vec<String> = s
        .ok("UID FETCH 1:* (UID INTERNALDATE)")
        .untagged
        .iter()
        .filter_map(|u| u.text.split("INTERNALDATE \"").nth(1).and_then(|t| t.split('"').next()).map(str::to_string))
        .collect();
    assert_eq!(served.len(), 3);
    s.logout();
    backup_ok(&d, &user, PW, &root, &extra, KEY_ENV);
    let folder = root.join(&user).join("INBOX");
    // The metadata lives beside the records, not in the folder directory.
    for e in fs::read_dir(&folder).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.split_once(".mbox").is_some_and(|(u, _)| u.parse::<u32>().is_ok()),
            "{mode}: {name} in the folder"
        );
    }
    let journals: Vec<_> = fs::read_dir(root.join(".smailarchiver/meta").join(&user)).unwrap().collect();
    assert_eq!(journals.len(), 1, "{mode}: one journal per folder");
    let journal = fs::read_to_string(journals[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(
        journal.contains("Flagged"),
        !options.contains(&"-e"),
        "{mode}: sealed only when encrypting:\n{journal}"
    );

    let listed = listing(&folder, &keys);
    assert_eq!(listed.len(), 3, "{mode}: {listed:?}");
    for (i, ((flags, _, _, _, _), line)) in MESSAGES.iter().zip(&listed).enumerate() {
        assert_eq!(line[0], uids[i].to_string());
        assert_eq!(line[1], listed_date(&served[i]), "{mode}: the arrival time, not the Date header");
        assert_eq!(line[2], "Ann <ann@example.org>");
        assert_eq!(line[3], format!("note {i}"));
        assert_eq!(line[4], message(i, MESSAGES[i].3).len().to_string());
        let mut flags = flags.to_vec();
        flags.sort();
        let want = if flags.is_empty() { "-".to_string() } else { flags.join(" ") };
        assert_eq!(line[5], want, "{mode}: flags of UID {}", uids[i]);
    }
    // A user directory lists every folder under its name.
    let user_dir = root.join(&user);
    let mut args = vec!["--list", user_dir.to_str().unwrap()];
    args.extend(&keys);
    let o = tool(&args);
    assert_eq!(stdout(&o).lines().next(), Some("# INBOX"), "{mode}: {}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 4, "{mode}: {}", stdout(&o));
    let files = maildir(&folder, &keys, &[]);
    for (i, (_, _, time, _, letters)) in MESSAGES.iter().enumerate() {
        assert_eq!(files[i], (uids[i], letters.to_string(), *time), "{mode}: Maildir name and time of message {i}");
    }

    // Flags changed on the server show after the next run, asked only since the last one.
    let mut s = d.session(&user, PW);
    s.ok("SELECT INBOX");
    s.ok(&format!("UID STORE {} -FLAGS (\\Flagged)", uids[0]));
    s.ok(&format!("UID STORE {} +FLAGS (\\Seen)", uids[2]));
    s.logout();
    let before = d.commands_log(&user).len();
    backup_ok(&d, &user, PW, &root, &extra, KEY_ENV);
    let log = d.commands_log(&user)[before..].to_string();
    assert!(log.contains("CHANGEDSINCE"), "{mode}: Dovecot offers CONDSTORE:\n{log}");
    assert!(!log.contains("BODY"), "{mode}: no message fetched again:\n{log}");
    let files = maildir(&folder, &keys, &[]);
    let letters: Vec<&str> = files.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(letters, ["S", "PR", "S"], "{mode}");

    // A no-op rerun opens no folder.
    let before = d.commands_log(&user).len();
    backup_ok(&d, &user, PW, &root, &extra, KEY_ENV);
    let log = d.commands_log(&user)[before..].to_string();
    assert!(!log.contains("EXAMINE") && !log.contains("FETCH"), "{mode}: a no-op rerun opened a folder:\n{log}");

    // mbox separators carry the arrival time, not the Date header's (message 0: 2014).
    let mbox = tmp.join("inbox.mbox");
    let mut args = vec!["-r", folder.to_str().unwrap(), "-o", mbox.to_str().unwrap()];
    args.extend(&keys);
    let o = tool(&args);
    assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
    let text = String::from_utf8_lossy(&fs::read(&mbox).unwrap()).into_owned();
    assert!(text.starts_with("From ann@example.org Thu Jan  2 09:00:00 2020\n"), "{mode}: {}", &text[..80]);

    // One message by UID.
    let uid = uids[1].to_string();
    let one = maildir(&folder, &keys, &["--uid", &uid]);
    assert_eq!(one, [(uids[1], "PR".to_string(), MESSAGES[1].2)], "{mode}");

    if options == ["-z", "-e"] {
        let out = tmp.join("original.mbox");
        assert_eq!(original_restore_loop(&folder, &key_file, &out), 3, "{mode}: the original's restore loop");
    }

    // --verify: good, then a file copied over another UID's, then a file removed.
    assert_eq!(verify(&root, &keys).0, 0, "{mode}");
    let name = |uid: u32| {
        fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{uid}.")))
            .unwrap()
    };
    fs::copy(name(uids[0]), name(uids[1])).unwrap();
    let (code, out) = verify(&root, &keys);
    assert_eq!(code, 1, "{mode}: {out}");
    assert!(out.contains(&format!("not the message archived as UID {}", uids[1])), "{mode}: {out}");
    fs::remove_file(name(uids[2])).unwrap();
    let (code, out) = verify(&root, &keys);
    assert_eq!(code, 1, "{mode}: {out}");
    assert!(out.contains(&format!("UID {} was archived but its file is missing", uids[2])), "{mode}: {out}");
}

#[test]
fn plain_archive_keeps_flags_and_dates() {
    round_trip("plain", &[]);
}

#[test]
fn compressed_encrypted_archive_keeps_flags_and_dates() {
    round_trip("z e", &["-z", "-e"]);
}

#[test]
fn password_encrypted_archive_keeps_flags_and_dates() {
    round_trip("e P", &["-e", "-P"]);
}

/// A server without CONDSTORE: a folder opened for new mail gets one `UID FETCH 1:* (UID
/// FLAGS)` and the changed flags are written; one without new mail is not opened.
#[test]
fn without_condstore_flags_are_refreshed_when_the_folder_is_opened() {
    let d = Dovecot::builder()
        .extra_config("imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS")
        .start();
    let user = "nocondstore";
    d.add_user(user, PW);
    let tmp = TempDir::new("meta-nocondstore");
    let root = tmp.dir("root");
    let mut s = d.session(user, PW);
    let (_, first) = s.append_at("INBOX", &["\\Seen"], Some(MESSAGES[0].1), &message(0, None));
    s.logout();
    backup_ok(&d, user, PW, &root, &[], KEY_ENV);
    let folder = root.join(user).join("INBOX");
    assert_eq!(listing(&folder, &[])[0][5], "\\Seen");
    let mut s = d.session(user, PW);
    s.ok("SELECT INBOX");
    s.ok(&format!("UID STORE {first} +FLAGS (\\Flagged)"));
    s.logout();
    // No new mail: the folder is not opened, its flags wait.
    let before = d.commands_log(user).len();
    backup_ok(&d, user, PW, &root, &[], KEY_ENV);
    let log = d.commands_log(user)[before..].to_string();
    assert!(!log.contains("EXAMINE") && !log.contains("HIGHESTMODSEQ"), "{log}");
    assert_eq!(listing(&folder, &[])[0][5], "\\Seen");
    // New mail: opened, and every message's flags asked in one command.
    d.append(user, PW, "INBOX", &message(1, None));
    let before = d.commands_log(user).len();
    backup_ok(&d, user, PW, &root, &[], KEY_ENV);
    let log = d.commands_log(user)[before..].to_string();
    assert!(log.contains("UID FETCH 1:* (UID FLAGS)") && !log.contains("CHANGEDSINCE"), "{log}");
    let listed = listing(&folder, &[]);
    assert_eq!((listed[0][5].as_str(), listed.len()), ("\\Flagged \\Seen", 2));
}

/// Archives without metadata (the original's own files) list with `-` for flags; `--uid`
/// and `--list` refuse what makes no sense in one line; a reader that goes away (`| head`)
/// ends the listing quietly.
#[test]
fn original_archives_list_and_options_are_checked() {
    let tmp = TempDir::new("meta-cli");
    let folder = tmp.join("random");
    let o = std::process::Command::new("cp").arg("-r").arg(vectors().join("random")).arg(&folder).output().unwrap();
    assert!(o.status.success());
    let key = vectors().join("keys/random.key");
    let keys = ["-k", key.to_str().unwrap()];
    let lines = listing(&folder, &keys);
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.len() == 7 && l[5] == "-" && l[6] == "-"), "{lines:?}");
    assert!(lines.iter().any(|l| l[1].contains("2013") && l[2].contains('@')), "{lines:?}");
    assert_one_line_error(&tool(&["--uid", "5"]), 2, "go with -r");
    assert_one_line_error(&tool(&["-r", folder.to_str().unwrap(), "--uid", "3-1"]), 2, "expected UIDs");
    let none = tool(&["-r", folder.to_str().unwrap(), "--uid", "999999", "-k", key.to_str().unwrap()]);
    assert_one_line_error(&none, 1, "no archive file has one of the UIDs");
    // More lines than a pipe holds, so the listing outlives its reader.
    let plain = fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "mbox"))
        .unwrap();
    for uid in 100_000..103_000 {
        fs::copy(&plain, folder.join(format!("{uid}.mbox"))).unwrap();
    }
    let mut child = std::process::Command::new(bin())
        .args(["--list", folder.to_str().unwrap(), "-k", key.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A backup killed (SIGKILL) while it commits messages never leaves metadata that
/// contradicts the files: after every kill, `--verify` finds each recorded message's file
/// with its recorded digest (a journal line written before its file would show as a
/// missing file), and the next run completes the journal.
#[test]
fn a_killed_backup_leaves_metadata_consistent_with_the_files() {
    let d = Dovecot::start();
    let user = "metakill";
    d.add_user(user, PW);
    let mut s = d.session(user, PW);
    for i in 0..300 {
        let body = format!("From: a{i}@example.org\r\nSubject: m{i}\r\n\r\n{}\r\n", "x".repeat(2000 + i * 37));
        s.append_at("INBOX", &["\\Seen"], Some(MESSAGES[i % 3].1), body.as_bytes());
    }
    s.logout();
    let tmp = TempDir::new("meta-kill");
    let root = tmp.dir("root");
    let folder = root.join(user).join("INBOX");
    let count = |dir: &Path| fs::read_dir(dir).map_or(0, |e| e.count());
    let mut args = d.client_args(user, &root);
    args.extend(["--buffer-size", "64K", "-q"].map(String::from));
    let mut kills = 0;
    for round in 0..8 {
        let before = count(&folder);
        let mut child = std::process::Command::new(bin())
            .args(&args)
            .env("SMAILARCHIVER_PASSWD", PW)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed once it is seen to commit more messages (a moment reached, not a delay).
        let more = 1 + round * 7;
        while count(&folder) < before + more && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let (code, out) = verify(&folder, &[]);
        assert_eq!(code, 0, "round {round}: {out}");
    }
    assert!(kills >= 4, "only {kills} runs were killed mid-way");
    backup_ok(&d, user, PW, &root, &[], KEY_ENV);
    let listed = listing(&folder, &[]);
    assert_eq!(listed.len(), 300);
    assert!(listed.iter().all(|l| l[5] == "\\Seen" && l[1] != "-" && l[4] != "-"), "every message has its metadata");
}
