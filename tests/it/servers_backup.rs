//! Backups against every real server the harness runs (Dovecot, Cyrus in `.` and `/`
//! mode, Courier; `tests/it/support/servers.rs`): `--all-folders` plain and `-z -e` of nested,
//! Cyrillic, CJK, accented, `&` and space folders, 8-bit and bare-LF mail, every message
//! restored byte-identical with what the server serves, with its flags and INTERNALDATE;
//! a no-op rerun opens no folder and fetches nothing (the server's command log and
//! counters); new mail, expunges and a UIDVALIDITY change. One server of each kind per
//! test binary; each test uses users of its own.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::support::servers::{self, internaldate_epoch, Kind, MailServer, Served};
use crate::support::*;

const PW: &str = "s3cret pass";

/// The folders of the corpus, as UTF-8 paths (`/` between levels).
const FOLDERS: [&str; 8] = ["INBOX", "Archive", "Archive/2023", "Отправленные", "日本語", "Reçus", "R&D", "Sent Items"];

fn backup(server: &dyn MailServer, user: &str, root: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = server.client_args(user, root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, &[("SMAILARCHIVER_PASSWD", PW)])
}

#[track_caller]
fn backup_ok(server: &dyn MailServer, user: &str, root: &Path, extra: &[&str]) -> String {
    let o = backup(server, user, root, extra);
    assert_eq!(o.status.code(), Some(0), "{} backup {extra:?}: {}", server.label(), stderr(&o));
    stdout(&o)
}

/// A user with the corpus: every folder, messages with flags and INTERNALDATEs years from
/// their Date headers, 8-bit bodies and headers (APPEND), bare-LF mail (delivered raw).
fn populate(server: &dyn MailServer, user: &str) {
    server.add_user(user, PW);
    for f in FOLDERS.iter().filter(|f| **f != "INBOX") {
        let wire = server.mailbox(f);
        if !server.list_mailboxes(user, PW).contains(&wire) {
            server.create_mailbox(user, PW, &wire);
        }
    }
    let flag_sets: [&[&str]; 5] =
        [&["\\Seen"], &["\\Answered", "\\Flagged"], &["$Forwarded", "Work"], &[], &["\\Draft", "\\Deleted"]];
    for (i, f) in FOLDERS.iter().enumerate() {
        let wire = server.mailbox(f);
        for j in 0..2 {
            let n = i * 10 + j;
            let msg = format!(
                "From: Ann <ann@example.org>\r\nTo: bo@example.net\r\nDate: Wed, 1 Jan 2014 00:00:00 +0000\r\n\
                 Message-ID: <m{n}@example.org>\r\nSubject: {f} {j}\r\n\r\nbody {n} of {f}\r\n"
            );
            let date = format!("{:02}-Mar-20{:02} 10:{:02}:00 +0100", 1 + j, 10 + i, n % 60);
            server.append(user, PW, &wire, flag_sets[n % 5], Some(&date), msg.as_bytes());
        }
    }
    let inbox = server.mailbox("INBOX");
    let eight_bit =
        [&b"From: a@example.org\r\nSubject: caf\xc3\xa9 \xe9\r\n\r\nna\xc3\xafve \xff\x80 bytes\r\n"[..]].concat();
    server.append(user, PW, &inbox, &["\\Seen"], Some("05-May-2005 05:05:05 +0000"), &eight_bit);
    server.deliver_raw(user, PW, &inbox, b"From: lf@example.org\nSubject: bare LF\n\nline one\nline two\n");
    server.deliver_raw(user, PW, &server.mailbox("Reçus"), b"Subject: Re\xc3\xa7us bare LF\n\nr\xc3\xa9ponse\n");
}

/// Flag letters of a Maildir file name for `flags`, as restore writes them.
fn letters(flags: &[String]) -> String {
    let mut out: Vec<char> = flags
        .iter()
        .filter_map(|f| match f.to_ascii_lowercase().as_str() {
            "\\draft" => Some('D'),
            "\\flagged" => Some('F'),
            "$forwarded" => Some('P'),
            "\\answered" => Some('R'),
            "\\seen" => Some('S'),
            "\\deleted" => Some('T'),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.into_iter().collect()
}

/// Folder directories of the live folders of the only account in `root`, by wire name.
fn folder_dirs(root: &Path) -> BTreeMap<String, PathBuf> {
    let v = records(root);
    let account = v["accounts"][0]["dir"].as_str().unwrap().to_string();
    v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["retired"].as_bool().unwrap_or(false))
        .map(|f| (f["mailbox"].as_str().unwrap().to_string(), root.join(&account).join(f["dir"].as_str().unwrap())))
        .collect()
}

/// Restores a folder directory to a Maildir: UID -> (bytes, flag letters, mtime).
fn restore_folder(dir: &Path, keys: Option<&Path>) -> BTreeMap<u32, (Vec<u8>, String, i64)> {
    let out = dir.with_extension("restored");
    let _ = fs::remove_dir_all(&out);
    let mut args = vec!["-r".to_string(), dir.display().to_string(), "--to-maildir".into(), out.display().to_string()];
    if let Some(k) = keys {
        args.extend(["-k".to_string(), k.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "restore {}: {}", dir.display(), stderr(&o));
    let mut got = BTreeMap::new();
    for e in fs::read_dir(out.join("cur")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let uid: u32 = name.split([':', '.']).next().unwrap().parse().unwrap();
        let info = name.split_once(":2,").map(|(_, f)| f.to_string()).unwrap_or_default();
        let mtime = fs::metadata(&p).unwrap().modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        got.insert(uid, (fs::read(&p).unwrap(), info, mtime));
    }
    fs::remove_dir_all(&out).unwrap();
    got
}

/// Every message of every folder of `user` is in the archive, byte-identical with what the
/// server serves, with its flags and INTERNALDATE; the archive holds nothing else but the
/// messages `expunged` on the server since (wire name, UID).
#[track_caller]
fn assert_archive_whole(
    server: &dyn MailServer,
    user: &str,
    root: &Path,
    keys: Option<&Path>,
    expunged: &[(&str, u32)],
) {
    let label = server.label();
    let dirs = folder_dirs(root);
    for f in FOLDERS {
        let wire = server.mailbox(f);
        let dir = dirs.get(&wire).unwrap_or_else(|| panic!("{label}: no directory for {wire}: {dirs:?}"));
        let served: BTreeMap<u32, Served> = server.messages(user, PW, &wire);
        let mut got = restore_folder(dir, keys);
        for (_, uid) in expunged.iter().filter(|(w, _)| *w == wire) {
            assert!(got.remove(uid).is_some(), "{label} {wire}: UID {uid}, expunged on the server, left the archive");
        }
        assert_eq!(got.keys().collect::<Vec<_>>(), served.keys().collect::<Vec<_>>(), "{label} {wire}: UIDs");
        for (uid, m) in &served {
            let (bytes, info, mtime) = &got[uid];
            assert_same(bytes, &m.raw, &format!("{label} {wire} UID {uid}"));
            assert_eq!(info, &letters(&m.flags), "{label} {wire} UID {uid}: flags {:?}", m.flags);
            assert_eq!(Some(*mtime), internaldate_epoch(&m.internaldate), "{label} {wire} UID {uid}: date");
        }
    }
}

/// The commands of the client's sessions after `before` (a [`MailServer::commands_log`]).
fn commands_since(server: &dyn MailServer, user: &str, before: &str) -> String {
    let log = server.commands_log(user);
    assert!(log.starts_with(before), "{}: the command log changed its past", server.label());
    log[before.len()..].to_string()
}

fn opens_a_folder(commands: &str) -> bool {
    commands.lines().any(|l| {
        let command = l.split_whitespace().nth(1).unwrap_or("").to_ascii_uppercase();
        command == "SELECT" || command == "EXAMINE"
    })
}

/// `--all-folders` plain and `-z -e`; a no-op rerun opens no folder and fetches no body.
fn full_backups_and_noop_rerun(kind: Kind) {
    let server = servers::shared(kind);
    let user = "full";
    populate(server, user);
    for (tag, options) in [("plain", &[][..]), ("ze", &["-z", "-e"][..])] {
        let root = TempDir::new(&format!("srv-{}-{tag}", server.label()));
        let keys = root.join("keys");
        let mut extra = vec!["--all-folders"];
        extra.extend(options);
        if tag == "ze" {
            extra.extend(["-k", keys.to_str().unwrap()]);
        }
        let out = backup_ok(server, user, root.path(), &extra);
        assert!(out.contains("0 failed"), "{out}");
        let keys = (tag == "ze").then_some(keys.as_path());
        assert_archive_whole(server, user, root.path(), keys, &[]);
        let log_before = server.commands_log(user);
        let stats_before = server.fetch_stats(user);
        let out = backup_ok(server, user, root.path(), &extra);
        let stats = server.fetch_stats(user).since(&stats_before);
        let commands = commands_since(server, user, &log_before);
        assert_eq!(stats.body_bytes, 0, "{}: {stats:?}\n{commands}", server.label());
        assert!(!opens_a_folder(&commands), "{}: a no-op rerun opened a folder:\n{commands}", server.label());
        assert!(!out.contains(" 1 new") && out.contains("0 new"), "{out}");
        assert_archive_whole(server, user, root.path(), keys, &[]);
    }
}

/// `-z -e`: new mail in two folders is fetched alone; a message expunged on the server
/// stays in the archive; a recreated folder (new UIDVALIDITY) gets a fresh directory and
/// the old one is kept aside.
fn new_mail_expunge_and_uidvalidity(kind: Kind) {
    let server = servers::shared(kind);
    let user = "changes";
    populate(server, user);
    let root = TempDir::new(&format!("srv-{}-changes", server.label()));
    let keys = root.join("keys");
    let args = ["--all-folders", "-z", "-e", "-k", keys.to_str().unwrap()];
    backup_ok(server, user, root.path(), &args);
    let label = server.label();
    let keys = Some(keys.as_path());

    // New mail in two folders.
    let (archive, cjk) = (server.mailbox("Archive/2023"), server.mailbox("日本語"));
    server.append(
        user,
        PW,
        &archive,
        &["\\Seen"],
        Some("07-Jul-2017 07:07:07 +0000"),
        b"Subject: new 1\r\n\r\nnew\r\n",
    );
    server.deliver_raw(user, PW, &cjk, b"Subject: new 2\n\nbare LF new\n");
    let before = server.fetch_stats(user);
    let out = backup_ok(server, user, root.path(), &args);
    let stats = server.fetch_stats(user).since(&before);
    assert_eq!(out.matches(": 1 new").count(), 2, "{label}: {out}");
    assert!(stats.body_bytes > 0, "{label}: {stats:?}");
    assert_archive_whole(server, user, root.path(), keys, &[]);

    // An expunge on the server: the archive keeps the message.
    let inbox = server.mailbox("INBOX");
    let first = server.uids(user, PW, &inbox)[0];
    let kept = folder_dirs(root.path())[&inbox].join(format!("{first}.mbox.gz.enc"));
    server.expunge(user, PW, &inbox, first);
    let out = backup_ok(server, user, root.path(), &args);
    assert!(!out.contains(": 1 new"), "{label}: {out}");
    assert!(kept.is_file(), "{label}: {} gone after an expunge on the server", kept.display());
    let expunged = [(inbox.as_str(), first)];
    assert_archive_whole(server, user, root.path(), keys, &expunged);

    // The folder deleted and made again: a new UIDVALIDITY.
    let sent = server.mailbox("Sent Items");
    let old_dir = folder_dirs(root.path())[&sent].clone();
    let old_files = fs::read_dir(&old_dir).unwrap().count();
    let old_uidvalidity = server.mailbox_uidvalidity(user, PW, &sent);
    server.delete_mailbox(user, PW, &sent);
    // Servers that take UIDVALIDITY from the clock need the next second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    server.create_mailbox(user, PW, &sent);
    server.append(user, PW, &sent, &[], None, b"Subject: after recreate\r\n\r\nnew generation\r\n");
    assert_ne!(server.mailbox_uidvalidity(user, PW, &sent), old_uidvalidity, "{label}");
    let o = backup(server, user, root.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{label}: {}", stderr(&o));
    assert!(stderr(&o).contains("UIDVALIDITY changed"), "{label}: {}", stderr(&o));
    let aside = old_dir
        .with_file_name(format!("{}.uidvalidity-{old_uidvalidity}", old_dir.file_name().unwrap().to_string_lossy()));
    assert_eq!(fs::read_dir(&aside).unwrap().count(), old_files, "{label}: {}", aside.display());
    assert_archive_whole(server, user, root.path(), keys, &expunged);
}

macro_rules! per_server {
    ($scenario:ident: $($name:ident => $kind:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $scenario($kind);
            }
        )*
    };
}

per_server!(full_backups_and_noop_rerun:
    dovecot_full_backups_and_noop_rerun => Kind::Dovecot,
    cyrus_dot_full_backups_and_noop_rerun => Kind::CyrusDot,
    cyrus_slash_full_backups_and_noop_rerun => Kind::CyrusSlash,
    courier_full_backups_and_noop_rerun => Kind::Courier,
);

per_server!(new_mail_expunge_and_uidvalidity:
    dovecot_new_mail_expunge_and_uidvalidity => Kind::Dovecot,
    cyrus_dot_new_mail_expunge_and_uidvalidity => Kind::CyrusDot,
    cyrus_slash_new_mail_expunge_and_uidvalidity => Kind::CyrusSlash,
    courier_new_mail_expunge_and_uidvalidity => Kind::Courier,
);
