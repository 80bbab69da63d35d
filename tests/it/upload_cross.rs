//! Issue 20's upload acceptance against the real servers: each server's archive
//! (Dovecot, Cyrus in `.` and `/` mode, Courier) uploaded to each other server, every
//! message once with its flags and INTERNALDATE under the target's names for the same
//! folders (`Archive/2023` is `INBOX.Archive.2023` on Courier), and three reruns add
//! nothing. Mail of every kind: nested, Cyrillic, CJK, `&` and space in names, 8-bit
//! headers and bare-LF bodies delivered as an MTA does (Cyrus stores the 8-bit bytes as
//! `X`), keywords, dates years from the Date header.

use crate::support;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::dovecot::{between, number_after, parse_list_name, quote};
use crate::support::servers::{self, internaldate_epoch, Kind, MailServer};
use crate::support::*;

const PW: &str = "cross pw";
const FOLDERS: [&str; 8] = ["INBOX", "Archive", "Archive/2023", "Отправленные", "日本語", "Reçus", "R&D", "Sent Items"];

fn message(n: usize, size: usize) -> Vec<u8> {
    mail::dated(n, size, ".cross")
}

/// Fills `user`'s mailboxes on `server`.
fn populate(server: &dyn MailServer, user: &str) {
    server.add_user(user, PW);
    let listed = server.list_mailboxes(user, PW);
    for (i, path) in FOLDERS.iter().enumerate() {
        let wire = server.mailbox(path);
        if !listed.contains(&wire) {
            server.create_mailbox(user, PW, &wire);
        }
        let n = i * 10;
        server.append(user, PW, &wire, &["\\Seen"], Some("02-Jan-2020 09:00:00 +0000"), &message(n, 1500));
        server.append(
            user,
            PW,
            &wire,
            &["\\Answered", "$Forwarded"],
            Some("15-Jun-2011 23:59:59 -0700"),
            &message(n + 1, 40_000 + i * 1000),
        );
        server.append(user, PW, &wire, &[], None, &message(n + 2, 700));
    }
    let inbox = server.mailbox("INBOX");
    server.deliver_raw(user, PW, &inbox, "From: z@example.org\nSubject: Grüße aus Köln\n\nbare LF\nÄÖÜ\n".as_bytes());
    let reçus = server.mailbox("Reçus");
    server.deliver_raw(user, PW, &reçus, "From: r@example.org\nSubject: Reçus\nMessage-ID: <r@x>\n\nx\n".as_bytes());
}

/// A message as a target of `kind` serves what was uploaded of it: Cyrus stores raw
/// 8-bit header bytes as `X`.
fn as_stored(kind: Kind, raw: &[u8]) -> Vec<u8> {
    if !matches!(kind, Kind::CyrusDot | Kind::CyrusSlash) {
        return raw.to_vec();
    }
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |i| i + 4);
    raw.iter().enumerate().map(|(i, &b)| if i < end && b >= 0x80 { b'X' } else { b }).collect()
}

/// Each folder's messages as (bytes, sorted flags, INTERNALDATE as seconds), sorted, by
/// folder path; bytes as a target of `kind` stores them.
type Content = BTreeMap<String, Vec<(Vec<u8>, Vec<String>, i64)>>;

/// `user`'s folders in one session (Cyrus starts a process for each): their contents by
/// folder path, and the wire names of every mailbox that holds mail.
fn content(server: &dyn MailServer, user: &str, stored_by: Kind) -> (Content, Vec<String>) {
    let mut s = server.session(user, PW);
    let mut out = Content::new();
    for path in FOLDERS {
        let wire = server.mailbox(path);
        s.ok(&format!("EXAMINE {}", quote(&wire)));
        let r = s.run("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])");
        let mut msgs: Vec<(Vec<u8>, Vec<String>, i64)> = r
            .untagged
            .iter()
            .filter(|u| u.text.contains(" FETCH ") && u.text.contains("BODY[]"))
            .map(|u| {
                let mut flags: Vec<String> = between(&u.text, "FLAGS (", ")")
                    .unwrap_or("")
                    .split_whitespace()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .map(str::to_string)
                    .collect();
                flags.sort();
                let date = internaldate_epoch(between(&u.text, "INTERNALDATE \"", "\"").unwrap_or("")).expect("a date");
                (as_stored(stored_by, u.literals.first().map_or(&[][..], |l| &l[..])), flags, date)
            })
            .collect();
        msgs.sort();
        out.insert(path.to_string(), msgs);
    }
    let listed = s.ok("LIST \"\" \"*\"");
    let mut with_mail = Vec::new();
    for wire in listed.untagged.iter().filter(|u| u.text.starts_with("* LIST ")).map(parse_list_name) {
        let status = s.run(&format!("STATUS {} (MESSAGES)", quote(&wire)));
        if status.untagged.iter().any(|u| number_after(&u.text, "MESSAGES ").is_some_and(|n| n > 0)) {
            with_mail.push(wire);
        }
    }
    s.logout();
    with_mail.sort();
    (out, with_mail)
}

fn upload(server: &dyn MailServer, user: &str, path: &Path) -> Output {
    let args = server.client_args(user, Path::new("/unused"));
    Command::new(bin())
        .args(["-r", path.to_str().unwrap(), "--to-imap"])
        .args(&args[..args.len() - 2])
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Uploads `archive` (of `source`) to `target` as a new user and checks the result, then
/// reruns it three times.
fn pair(source: &dyn MailServer, archive: &Path, target: &dyn MailServer) {
    let pair = format!("{} -> {}", source.label(), target.label());
    let started = std::time::Instant::now();
    let user = format!("from-{}", source.label());
    target.add_user(&user, PW);
    let o = upload(target, &user, archive);
    assert_eq!(o.status.code(), Some(0), "{pair}: {}\n{}", stdout(&o), stderr(&o));
    assert_eq!(stderr(&o), "", "{pair}");
    let want = content(source, "src", target.kind()).0;
    let (got, with_mail) = content(target, &user, target.kind());
    assert_eq!(got, want, "{pair}: every message once, flags and dates");
    let mut names: Vec<String> = FOLDERS.iter().map(|p| target.mailbox(p)).collect();
    names.sort();
    assert_eq!(with_mail, names, "{pair}: under the target's names, nothing else");
    for rerun in 1..=3 {
        let o = upload(target, &user, archive);
        assert_eq!(o.status.code(), Some(0), "{pair} rerun {rerun}: {}", stderr(&o));
        let out = stdout(&o);
        assert_eq!(out.lines().filter(|l| l.contains(": 0 uploaded, ")).count(), FOLDERS.len(), "{pair}: {out}");
    }
    assert_eq!(content(target, &user, target.kind()).0, want, "{pair}: the reruns added something");
    println!("{pair}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn every_servers_archive_goes_to_every_other_server_and_reruns_add_nothing() {
    let started = std::time::Instant::now();
    let all = servers::start_all(&Kind::ALL);
    let tmp = TempDir::new("up-cross");
    // Each server's archive (the servers work at once: Cyrus takes its time per command).
    let archives: Vec<std::path::PathBuf> = std::thread::scope(|scope| {
        let jobs: Vec<_> = all
            .iter()
            .map(|&source| {
                let root = tmp.join(source.label());
                scope.spawn(move || {
                    populate(source, "src");
                    let mut args = source.client_args("src", &root);
                    args.extend(["--all-folders".into(), "-q".into()]);
                    let o = Command::new(bin())
                        .args(&args)
                        .env("SMAILARCHIVER_PASSWD", PW)
                        .stdin(Stdio::null())
                        .output()
                        .unwrap();
                    assert_eq!(o.status.code(), Some(0), "backup of {}: {}", source.label(), stderr(&o));
                    root.join("src")
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().expect("a backup")).collect()
    });
    println!("archives made: {:.1} s", started.elapsed().as_secs_f64());
    // One thread per target server, its three sources one after the other.
    std::thread::scope(|scope| {
        for &target in &all {
            let (all, archives) = (&all, &archives);
            scope.spawn(move || {
                for (&source, archive) in all.iter().zip(archives).filter(|(s, _)| s.kind() != target.kind()) {
                    pair(source, archive, target);
                }
            });
        }
    });
    println!("12 pairs: {:.1} s", started.elapsed().as_secs_f64());
}

/// Old generations: a folder moved aside after its UIDVALIDITY changed goes to a folder
/// of its own, named as restores name it (`Work (UIDVALIDITY N)`, under the target's
/// hierarchy), not into the current one; reruns add nothing.
#[test]
fn old_generations_upload_to_a_folder_of_their_own() {
    let source = servers::shared(Kind::Dovecot);
    let user = "gensrc";
    source.add_user(user, PW);
    source.create_mailbox(user, PW, "Work");
    source.append(user, PW, "Work", &["\\Seen"], None, &message(500, 900));
    let tmp = TempDir::new("up-generations");
    let backup = || {
        let mut args = source.client_args(user, tmp.path());
        args.extend(["--all-folders".into(), "-q".into()]);
        let o = Command::new(bin()).args(&args).env("SMAILARCHIVER_PASSWD", PW).stdin(Stdio::null()).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    };
    backup();
    let old = source.mailbox_uidvalidity(user, PW, "Work");
    source.delete_mailbox(user, PW, "Work");
    source.create_mailbox(user, PW, "Work");
    source.append(user, PW, "Work", &[], None, &message(501, 800));
    backup();
    assert!(tmp.join(format!("{user}/Work.uidvalidity-{old}")).is_dir());
    for target in [servers::shared(Kind::Dovecot), servers::shared(Kind::Courier)] {
        let to = format!("gen-{}", target.label());
        target.add_user(&to, PW);
        for run in 0..2 {
            let o = upload(target, &to, &tmp.join(user));
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let n = if run == 0 { 1 } else { 0 };
            let out = stdout(&o);
            let name = match target.kind() {
                Kind::Courier => format!("Work (UIDVALIDITY {old}) -> INBOX.Work (UIDVALIDITY {old})"),
                _ => format!("Work (UIDVALIDITY {old})"),
            };
            assert!(out.contains(&format!("{name}: {n} uploaded")), "{out}");
        }
        let generation = target.mailbox(&format!("Work (UIDVALIDITY {old})"));
        let old_mail: Vec<Vec<u8>> = target.all_raw(&to, PW, &generation).into_values().collect();
        assert_eq!(old_mail, [message(500, 900)], "{}", target.label());
        let current: Vec<Vec<u8>> = target.all_raw(&to, PW, &target.mailbox("Work")).into_values().collect();
        assert_eq!(current, [message(501, 800)], "{}", target.label());
    }
}

/// Dovecot configured as Courier names folders (`.` under `INBOX.`) and the harness's
/// Dovecot (`/`): an account goes each way under the other's names; a folder directory
/// of the dotted archive alone goes to its mailbox under the target's name.
#[test]
fn dovecot_with_an_inbox_prefix_and_dovecot_without_exchange_archives() {
    let dotted = support::dovecot::Dovecot::builder()
        .extra_config("namespace inbox {\n  separator = .\n  prefix = INBOX.\n}")
        .start();
    let slash = servers::shared(Kind::Dovecot);
    let user = "prefixed";
    for server in [&dotted as &dyn MailServer, slash] {
        server.add_user(user, PW);
    }
    let mut s = dotted.session(user, PW);
    let ns = s.ok("NAMESPACE");
    assert!(ns.untagged.iter().any(|u| u.text.contains("((\"INBOX.\" \".\"))")), "{ns:?}");
    s.logout();
    let cases: [(&dyn MailServer, &[&str]); 2] =
        [(&dotted, &["INBOX.Archive", "INBOX.Archive.2023"]), (slash, &["Archive", "Archive/2023"])];
    for (i, (server, names)) in cases.iter().enumerate() {
        for (j, name) in names.iter().enumerate() {
            server.create_mailbox(user, PW, name);
            server.append(user, PW, name, &["\\Flagged"], None, &message(600 + i * 10 + j, 1200));
        }
    }
    let tmp = TempDir::new("up-prefixed");
    for (from, to) in [(0, 1), (1, 0)] {
        let ((source, from_names), (target, to_names)) = (cases[from], cases[to]);
        let root = tmp.join(if from == 0 { "dotted" } else { "slash" });
        let mut args = source.client_args(user, &root);
        args.extend(["--all-folders".into(), "-q".into()]);
        let o = Command::new(bin()).args(&args).env("SMAILARCHIVER_PASSWD", PW).stdin(Stdio::null()).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let dest = format!("to{to}");
        target.add_user(&dest, PW);
        let o = upload(target, &dest, &root.join(user));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        for (a, b) in from_names.iter().zip(to_names.iter()) {
            let want: Vec<Vec<u8>> = source.all_raw(user, PW, a).into_values().collect();
            let got: Vec<Vec<u8>> = target.all_raw(&dest, PW, b).into_values().collect();
            assert_eq!(got, want, "{a} -> {b}: {}", stdout(&o));
        }
    }
    // One folder directory of the dotted archive: `INBOX.Archive.2023` is `Archive/2023`.
    let dir = tmp.join(format!("dotted/{user}/INBOX.Archive.2023"));
    assert!(dir.is_dir());
    slash.add_user("onefolder", PW);
    let o = upload(slash, "onefolder", &dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX.Archive.2023 -> Archive/2023: 1 uploaded"), "{}", stdout(&o));
}
