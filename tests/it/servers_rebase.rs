//! A UIDVALIDITY change with the same mail is not a re-download (issue 20, item 7), against
//! real servers: a Courier folder made on disk (no `courierimapuiddb`) gets a new
//! UIDVALIDITY every session, and on Dovecot and Cyrus a folder deleted and made again
//! with the same messages stands for a provider's server migration. The runs after the
//! first fetch no body (the server's counters), the archive stays whole (every message
//! of the new numbering restores byte-identical, the previous generations are kept as
//! they were, `--verify` passes, the original's restore loop reads every folder
//! directory).
//!
//! `SMAILTEST_RENUMBER_MESSAGES=20000 cargo test --release --test it servers_rebase::courier`
//! is the by-hand scale run (docs/BENCHMARKS.md); the suite uses 200 messages.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::servers::{self, Kind, MailServer};
use crate::support::*;

const PW: &str = "s3cret pass";

fn messages_wanted() -> usize {
    std::env::var("SMAILTEST_RENUMBER_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(200)
}

/// A message of a few hundred bytes to a few KiB, distinct for each `n`, with bare LF line
/// ends when `bare_lf` (as a filter writes it into a Maildir).
fn message(n: usize, bare_lf: bool) -> Vec<u8> {
    let eol = if bare_lf { "\n" } else { "\r\n" };
    let mut m = format!(
        "From: Sender {n} <s{n}@example.org>{eol}To: alice@example.org{eol}Subject: message {n} of the filter{eol}\
         Date: Mon, 1 Jan 2024 00:00:00 +0000{eol}Message-ID: <{n}.renumber@example.org>{eol}{eol}"
    );
    for line in 0..(n % 40 + 3) {
        m.push_str(&format!("line {line} of message {n}: the quick brown fox{eol}"));
    }
    m.into_bytes()
}

fn backup(server: &dyn MailServer, user: &str, root: &Path, extra: &[&str]) -> (String, String, Duration) {
    let mut args = server.client_args(user, root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let began = Instant::now();
    let o = run(&args, &[("SMAILARCHIVER_PASSWD", PW)]);
    let took = began.elapsed();
    assert_eq!(o.status.code(), Some(0), "{} backup: {}", server.label(), stderr(&o));
    (stdout(&o), stderr(&o), took)
}

/// Folder directories of the account by name, with the mailbox and whether retired.
fn folder_records(root: &Path) -> Vec<(String, PathBuf, bool)> {
    let v = records(root);
    let account = v["accounts"][0]["dir"].as_str().unwrap().to_string();
    v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["mailbox"].as_str().unwrap().to_string(),
                root.join(&account).join(f["dir"].as_str().unwrap()),
                f["retired"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Restores a folder directory to a Maildir: UID -> bytes.
fn restored(dir: &Path, keys: Option<&Path>) -> BTreeMap<u32, Vec<u8>> {
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
        let uid = p.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().parse().unwrap();
        got.insert(uid, fs::read(&p).unwrap());
    }
    fs::remove_dir_all(&out).unwrap();
    got
}

/// The archive is whole: the live generation of `wire` restores to what the server serves
/// now, every earlier generation still holds `count` messages, `--verify` passes, and the
/// original program's restore loop reads every folder directory of the account.
#[track_caller]
fn assert_whole(server: &dyn MailServer, user: &str, root: &Path, wire: &str, keys: Option<&Path>, count: usize) {
    let label = server.label();
    let records = folder_records(root);
    let live = records.iter().find(|(m, _, retired)| m == wire && !retired).expect("the live generation");
    let served = server.all_raw(user, PW, wire);
    assert_eq!(served.len(), count, "{label}");
    let got = restored(&live.1, keys);
    assert_eq!(got.keys().collect::<Vec<_>>(), served.keys().collect::<Vec<_>>(), "{label}: UIDs of {wire}");
    for (uid, raw) in &served {
        assert_same(&got[uid], raw, &format!("{label} {wire} UID {uid}"));
    }
    for (_, dir, _) in records.iter().filter(|(m, _, retired)| m == wire && *retired) {
        assert_eq!(fs::read_dir(dir).unwrap().count(), count, "{label}: {}", dir.display());
    }
    let mut args = vec!["--verify".to_string(), root.display().to_string()];
    if let Some(k) = keys {
        args.extend(["-k".to_string(), k.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{label} verify: {}{}", stdout(&o), stderr(&o));
    if let Some(k) = keys {
        for (_, dir, _) in &records {
            let out = dir.with_extension("original");
            let n = original_restore_loop(dir, k, &out);
            assert_eq!(n, fs::read_dir(dir).unwrap().count(), "{label}: the original's restore of {}", dir.display());
            let _ = fs::remove_file(&out);
        }
    }
}

/// Waits for the next second: Courier's UIDVALIDITY of a folder without
/// `courierimapuiddb` is the time of the session.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn courier_renumbering(tag: &str, options: &[&str]) {
    let server = servers::shared(Kind::Courier);
    let user = format!("renumber{tag}");
    server.add_user(&user, PW);
    let wire = server.mailbox("Filtered");
    let count = messages_wanted();
    let began = Instant::now();
    for n in 0..count {
        server.deliver_raw(&user, PW, &wire, &message(n, true));
    }
    eprintln!("courier: {count} messages delivered in {:.1} s", began.elapsed().as_secs_f64());
    let root = TempDir::new(&format!("rebase-courier-{tag}"));
    let keys = root.join("keys");
    let mut args = vec!["-f", &wire];
    args.extend(options);
    if options.contains(&"-e") {
        args.extend(["-k", keys.to_str().unwrap()]);
    }
    let keys = options.contains(&"-e").then_some(keys.as_path());
    let before = server.fetch_stats(&user);
    let (out, _, took) = backup(server, &user, root.path(), &args);
    let first = server.fetch_stats(&user).since(&before);
    eprintln!("courier {tag} run 1: {:.2} s, {first:?}\n{out}", took.as_secs_f64());
    assert!(first.body_bytes > 0, "{first:?}");
    assert!(out.contains(&format!(": {count} new")), "{out}");
    for run_number in 2..=3 {
        next_second();
        let before = server.fetch_stats(&user);
        let (out, err, took) = backup(server, &user, root.path(), &args);
        let stats = server.fetch_stats(&user).since(&before);
        eprintln!("courier {tag} run {run_number}: {:.2} s, {stats:?}\n{out}", took.as_secs_f64());
        assert_eq!(stats.body_bytes, 0, "run {run_number} fetched bodies: {stats:?}\n{out}{err}");
        assert!(stats.header_bytes > 0, "{stats:?}");
        assert!(out.contains(&format!("0 new, {count} already archived, 0 failed, {count} renumbered")), "{out}");
        // Everything recognised: a remark for --verbose, not a warning.
        assert!(!err.contains("UIDVALIDITY changed"), "{err}");
        assert_whole(server, &user, root.path(), &wire, keys, count);
    }
    let generations = folder_records(root.path()).iter().filter(|(m, _, _)| *m == wire).count();
    assert_eq!(generations, 3, "one generation a run");
    // What the generations cost on disk: the files are shared.
    let (mut entries, mut inodes, mut bytes) = (0u64, std::collections::HashSet::new(), 0u64);
    for (_, dir, _) in folder_records(root.path()) {
        for e in fs::read_dir(&dir).unwrap() {
            let m = e.unwrap().metadata().unwrap();
            entries += 1;
            if inodes.insert(std::os::unix::fs::MetadataExt::ino(&m)) {
                bytes += m.len();
            }
        }
    }
    eprintln!(
        "courier {tag}: {generations} generations, {entries} directory entries, {} files, {bytes} bytes",
        inodes.len()
    );
    assert_eq!(inodes.len(), count, "every generation shares the first one's files");
}

#[test]
fn courier_renumbering_every_session_fetches_no_body_again() {
    courier_renumbering("plain", &[]);
}

#[test]
fn courier_renumbering_every_session_fetches_no_body_again_compressed_encrypted() {
    courier_renumbering("ze", &["-z", "-e"]);
}

/// A folder deleted and made again with the same mail (what a server migration looks
/// like), plus one new message and one gone: only the new one is fetched.
fn recreated_with_the_same_mail(kind: Kind) {
    let server = servers::shared(kind);
    let user = "migrated";
    server.add_user(user, PW);
    let wire = server.mailbox("Archive/2023");
    server.create_mailbox(user, PW, &wire);
    let mail: Vec<Vec<u8>> = (0..30).map(|n| message(n, false)).collect();
    let flags: [&[&str]; 3] = [&["\\Seen"], &[], &["\\Flagged", "$Forwarded"]];
    for (n, m) in mail.iter().enumerate() {
        let date = format!("{:02}-Feb-2021 08:00:00 +0000", n % 28 + 1);
        server.append(user, PW, &wire, flags[n % 3], Some(&date), m);
    }
    let root = TempDir::new(&format!("rebase-{}", server.label()));
    let keys = root.join("keys");
    let args = ["--all-folders", "-z", "-e", "-k", keys.to_str().unwrap()];
    backup(server, user, root.path(), &args);
    let old = server.mailbox_uidvalidity(user, PW, &wire);
    server.delete_mailbox(user, PW, &wire);
    next_second();
    server.create_mailbox(user, PW, &wire);
    for (n, m) in mail.iter().enumerate().skip(1) {
        let date = format!("{:02}-Feb-2021 08:00:00 +0000", n % 28 + 1);
        server.append(user, PW, &wire, flags[n % 3], Some(&date), m);
    }
    server.append(user, PW, &wire, &[], None, &message(99, false));
    assert_ne!(server.mailbox_uidvalidity(user, PW, &wire), old);
    let before = server.fetch_stats(user);
    let (out, err, _) = backup(server, user, root.path(), &args);
    let stats = server.fetch_stats(user).since(&before);
    let label = server.label();
    assert!(out.contains("1 new, 29 already archived, 0 failed, 29 renumbered"), "{label}: {out}");
    assert!(err.contains("29 of its 30 messages recognised"), "{label}: {err}");
    let one = message(99, false).len() as u64;
    // One message's body (Dovecot and Cyrus count whole messages).
    assert!(stats.body_bytes >= one && stats.body_bytes < 2 * one, "{label}: {stats:?}");
    let records = folder_records(root.path());
    let live = &records.iter().find(|(m, _, r)| *m == wire && !r).unwrap().1;
    let served = server.messages(user, PW, &wire);
    let got = restored(live, Some(&keys));
    assert_eq!(got.len(), served.len(), "{label}");
    for (uid, m) in &served {
        assert_same(&got[uid], &m.raw, &format!("{label} UID {uid}"));
    }
    // The flags of the new numbering are the server's, in the new journal.
    let o = run(&["--list", live.to_str().unwrap(), "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listed = stdout(&o);
    for (uid, m) in &served {
        let line = listed.lines().find(|l| l.starts_with(&format!("{uid}\t"))).unwrap_or_else(|| panic!("{listed}"));
        for f in &m.flags {
            assert!(line.contains(f.as_str()), "{label} UID {uid}: {f} not in {line}");
        }
    }
    let o = run(&["--verify", root.path().to_str().unwrap(), "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{label} verify: {}{}", stdout(&o), stderr(&o));
}

#[test]
fn dovecot_recreated_folder_with_the_same_mail_is_linked() {
    recreated_with_the_same_mail(Kind::Dovecot);
}

#[test]
fn cyrus_dot_recreated_folder_with_the_same_mail_is_linked() {
    recreated_with_the_same_mail(Kind::CyrusDot);
}

#[test]
fn cyrus_slash_recreated_folder_with_the_same_mail_is_linked() {
    recreated_with_the_same_mail(Kind::CyrusSlash);
}
