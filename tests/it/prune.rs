//! Issue 22, item 1: verified prune. Against the real Dovecot of the harness: only the
//! messages older than the limit leave the server, each only once its archived copy was
//! read back and found to be the message fetched; a damaged copy keeps its message there;
//! a message the user marked `\Deleted` is not swept along; kill -9 at any point loses
//! nothing; a server that cannot remove single messages refuses prune in one line. Against
//! the scripted Gmail: messages go to the Trash.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::Dovecot;
use crate::support::fake_gmail::{message_bytes, FakeGmail, Lang, Message};
use crate::support::*;
use serde_json::Value;

const PW: &str = "prune pass";
/// The limit of every test: messages of 2019 are older, those appended today are not.
const DAYS: &str = "365";

/// A message of its own Message-ID, `<{tag}{i}@example.org>`.
fn message(i: usize, tag: &str) -> Vec<u8> {
    format!(
        "From: Sender {i} <s{i}@example.org>\r\nTo: r@example.org\r\nSubject: {tag} {i}\r\n\
         Message-ID: <{tag}{i}@example.org>\r\n\r\nbody of {tag} {i}\r\n"
    )
    .into_bytes()
}

/// An INTERNALDATE in 2019: older than [`DAYS`].
fn old_date(i: usize) -> String {
    format!("{:02}-Mar-2019 10:{:02}:00 +0000", 1 + i % 28, i % 60)
}

/// The commands (without their tag) of the client's sessions logged since `from` bytes of
/// the log.
fn commands_since(d: &Dovecot, user: &str, from: usize) -> Vec<String> {
    let log = d.commands_log(user);
    log[from..].lines().map(|l| l.split_once(' ').map_or(l, |(_, c)| c).to_string()).collect()
}

/// The UIDs `--dry-run` (or `--verbose`) names in lines `would remove UID N (`.
fn named(out: &str, what: &str) -> BTreeSet<u32> {
    out.lines().filter_map(|l| l.split_once(what)?.1.split(' ').next()?.parse().ok()).collect()
}

#[test]
fn prune_removes_exactly_the_old_messages_whose_copy_checks_out() {
    let d = Dovecot::start();
    let user = "pruned";
    d.add_user(user, PW);
    // 1,000 messages, every other one of 2019; one old one flagged, one young one marked
    // \Deleted by the user (a plain EXPUNGE would take it).
    let (mut old, mut young) = (BTreeSet::new(), BTreeSet::new());
    let (mut flagged, mut user_deleted) = (0, 0);
    let mut s = d.session(user, PW);
    for i in 0..1000 {
        let m = message(i, "p");
        if i % 2 == 0 {
            let flags: &[&str] = if i == 10 { &["\\Flagged"] } else { &[] };
            let (_, uid) = s.append_at("INBOX", flags, Some(&old_date(i)), &m);
            old.insert(uid);
            if i == 10 {
                flagged = uid;
            }
        } else {
            let flags: &[&str] = if i == 11 { &["\\Deleted"] } else { &["\\Seen"] };
            let (_, uid) = s.append("INBOX", flags, &m);
            young.insert(uid);
            if i == 11 {
                user_deleted = uid;
            }
        }
    }
    s.logout();
    let tmp = TempDir::new("prune");
    let root = tmp.dir("root");
    let key = tmp.join("keys");
    let key = key.to_str().unwrap();
    let sealed = ["-z", "-e", "-k", key];

    // Without prune, runs stay read-only: EXAMINE, never SELECT.
    let from = d.commands_log(user).len();
    backup_ok(&d, user, PW, &root, &sealed, &[]);
    let first = commands_since(&d, user, from);
    assert!(first.iter().any(|c| c.starts_with("EXAMINE ")), "{first:?}");
    assert!(!first.iter().any(|c| c.starts_with("SELECT ") || c.contains("STORE")), "{first:?}");

    // The dry run names exactly the old ones (less the flagged one) and changes nothing.
    let mut args = sealed.to_vec();
    args.extend(["--dry-run", "--prune-older-than", DAYS, "--prune-keep-flagged"]);
    let from = d.commands_log(user).len();
    let o = backup_ok(&d, user, PW, &root, &args, &[]);
    let out = stdout(&o);
    let mut want: BTreeSet<u32> = old.clone();
    want.remove(&flagged);
    assert_eq!(named(&out, "would remove UID "), want, "{out}");
    assert!(out.contains("INBOX: would remove 499 messages older than 365 days, kept 1 (1 flagged)"), "{out}");
    assert_eq!(d.uids(user, PW, "INBOX").len(), 1000);
    let dry = commands_since(&d, user, from);
    assert!(!dry.iter().any(|c| c.starts_with("SELECT ") || c.contains("STORE")), "{dry:?}");

    // The run: one old copy damaged on the disk after its commit, before it is read back.
    let damaged = *want.iter().nth(7).unwrap();
    let report = tmp.join("report.json");
    let mut args = sealed.to_vec();
    args.extend(["--prune-older-than", DAYS, "--prune-keep-flagged", "-v", "--report", report.to_str().unwrap()]);
    let from = d.commands_log(user).len();
    let o = backup(&d, user, PW, &root, &args, &[("SMAILARCHIVER_PROBE_DAMAGE_UIDS", &damaged.to_string())]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "a damaged copy is a failure: {out}{err}");
    assert!(err.contains(&format!("INBOX: UID {damaged} kept on the server: its archived file is damaged")), "{err}");
    let mut removed = want.clone();
    removed.remove(&damaged);
    assert_eq!(named(&out, "removed UID "), removed, "{out}");
    assert!(
        out.contains("INBOX: removed 498 messages older than 365 days from the server, kept 2 (1 damaged, 1 flagged)"),
        "{out}"
    );
    let mut left: BTreeSet<u32> = young.clone();
    left.extend([flagged, damaged]);
    let on_server: BTreeSet<u32> = d.uids(user, PW, "INBOX").into_iter().collect();
    assert_eq!(on_server, left, "exactly the verified old ones left the server");
    assert!(on_server.contains(&user_deleted), "the message the user marked \\Deleted is still there");
    // Each one removed is in the archive.
    let folder = root.join(user).join("INBOX");
    for uid in &removed {
        assert!(folder.join(format!("{uid}.mbox.gz.enc")).is_file(), "UID {uid} removed but not archived");
    }
    // The removal: SELECT only here, UID STORE + UID EXPUNGE of those UIDs, never a plain
    // EXPUNGE nor a CLOSE of the mailbox open read-write.
    let run = commands_since(&d, user, from);
    let selects: Vec<&String> = run.iter().filter(|c| c.starts_with("SELECT ")).collect();
    assert_eq!(selects.len(), 1, "{run:?}");
    assert!(run.iter().any(|c| c.starts_with("UID STORE ") && c.ends_with("+FLAGS.SILENT (\\Deleted)")), "{run:?}");
    assert!(run.iter().any(|c| c.starts_with("UID EXPUNGE ")), "{run:?}");
    assert!(!run.iter().any(|c| c == "EXPUNGE" || c.starts_with("EXPUNGE ") || c == "CLOSE"), "{run:?}");
    let r: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    let prune = &r["accounts"][0]["folders"][0]["prune"];
    assert_eq!(prune["removed"], 498, "{r}");
    assert_eq!(prune["kept"], 2, "{r}");
    assert_eq!(prune["kept_by_reason"], serde_json::json!({"damaged": 1, "flagged": 1}), "{r}");
    assert!(prune["problems"][0].as_str().unwrap().starts_with(&format!("UID {damaged}: ")), "{r}");

    // Again, without the damage: the damaged copy is still damaged (kept again); nothing
    // else goes, and the flagged one stays.
    // The next backup records the removed messages as gone from the server (kept here).
    let o = backup(&d, user, PW, &root, &args, &[]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains("INBOX: 498 messages left the server since the last run, kept in the archive"), "{out}");
    assert_eq!(d.uids(user, PW, "INBOX").into_iter().collect::<BTreeSet<u32>>(), left);
}

#[test]
fn a_server_that_cannot_remove_single_messages_refuses_prune() {
    // Dovecot without UIDPLUS and MOVE in its capabilities.
    let d = Dovecot::builder()
        .extra_config(
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE UNSELECT \
             CHILDREN LIST-EXTENDED CONDSTORE ESEARCH LIST-STATUS SPECIAL-USE",
        )
        .start();
    let user = "nouidplus";
    d.add_user(user, PW);
    let mut s = d.session(user, PW);
    for i in 0..4 {
        s.append_at("INBOX", &[], Some(&old_date(i)), &message(i, "n"));
    }
    s.logout();
    let tmp = TempDir::new("prune-refused");
    let root = tmp.dir("root");
    let from = d.commands_log(user).len();
    let o = backup(&d, user, PW, &root, &["--prune-older-than", DAYS], &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}{err}", stdout(&o));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].contains("prune refused: the server offers neither UIDPLUS"), "{err}");
    // The backup itself went through; the server was not touched.
    assert!(stdout(&o).contains("INBOX: 4 new"), "{}", stdout(&o));
    assert_eq!(d.uids(user, PW, "INBOX").len(), 4);
    let run = commands_since(&d, user, from);
    assert!(!run.iter().any(|c| c.starts_with("SELECT ") || c.contains("STORE")), "{run:?}");
}

#[test]
fn on_gmail_pruned_messages_go_to_the_trash() {
    let messages: Vec<Message> =
        (0..40).map(|i| Message::new(9000 + i as u64, 9000 + i as u64, message_bytes(i, 400), &["\\Inbox"])).collect();
    let server = FakeGmail::start("ann@gmail.com", PW, Lang::English, messages);
    let tmp = TempDir::new("prune-gmail");
    let root = tmp.dir("root");
    let port = server.port().to_string();
    let ca = server.ca_file();
    let root_arg = root.to_str().unwrap();
    let args = [
        "-u",
        "ann@gmail.com",
        "-i",
        "127.0.0.1",
        "--port",
        &port,
        "--ca-file",
        &ca,
        "--dir",
        root_arg,
        "-f",
        "[Gmail]/All Mail",
        "--prune-older-than",
        DAYS,
    ];
    // The persona's messages all arrived in March 2024.
    let o = run(&args, &[("SMAILARCHIVER_PASSWD", PW)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("[Gmail]/All Mail: removed 40 messages older than 365 days"), "{}", stdout(&o));
    let folders: BTreeMap<String, usize> = server.folders().into_iter().map(|(n, m)| (n, m.len())).collect();
    assert_eq!(folders["[Gmail]/All Mail"], 0, "{folders:?}");
    assert_eq!(folders["INBOX"], 0, "{folders:?}");
    assert_eq!(folders["[Gmail]/Trash"], 40, "in the Trash, where Gmail keeps them 30 days: {folders:?}");
    let commands: Vec<String> = server.commands().concat();
    assert!(commands.iter().any(|c| c.starts_with("UID MOVE ") && c.ends_with(" \"[Gmail]/Trash\"")), "{commands:?}");
    assert!(!commands.iter().any(|c| c.contains("\\Deleted") || c.contains("EXPUNGE")), "{commands:?}");
}

/// What the server holds of INBOX: each message's Message-ID.
fn ids_on_server(d: &Dovecot, user: &str) -> BTreeSet<String> {
    let mut s = d.session(user, PW);
    s.ok("EXAMINE INBOX");
    let r = s.ok("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
    s.logout();
    r.untagged.iter().flat_map(|u| u.literals.iter()).filter_map(|l| message_id(l)).collect()
}

fn message_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let start = text.find("Message-ID: <")? + "Message-ID: ".len();
    Some(text[start..].split_once('>')?.0.to_string() + ">")
}

/// The messages the archive's folder holds whole, by Message-ID: their bytes.
fn archived(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for name in sorted_names(folder) {
        let stored = fs::read(folder.join(&name)).unwrap();
        let message = strip_first_line(&stored).to_vec();
        if let Some(id) = message_id(&message) {
            out.insert(id, message);
        }
    }
    out
}

/// A small deterministic generator (xorshift), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn kill_9_at_random_points_of_pruning_runs_loses_no_message() {
    let d = Dovecot::start();
    let user = "killed";
    d.add_user(user, PW);
    let tmp = TempDir::new("prune-kill");
    let root = tmp.dir("root");
    let mut args = d.client_args(user, &root);
    args.extend(["--prune-older-than", DAYS].map(String::from));
    let mut sent: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut n = 0;
    let mut add = |sent: &mut BTreeMap<String, Vec<u8>>| {
        let mut s = d.session(user, PW);
        for _ in 0..40 {
            let m = message(n, "k");
            // Three in four are old: most of each run's work is prune's.
            if n % 4 == 3 {
                s.append("INBOX", &[], &m);
            } else {
                s.append_at("INBOX", &[], Some(&old_date(n)), &m);
            }
            sent.insert(message_id(&m).unwrap(), m);
            n += 1;
        }
        s.logout();
    };
    let start = |args: &[String]| {
        Command::new(bin())
            .args(args)
            .env("SMAILARCHIVER_PASSWD", PW)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // The folder's backup line: prune begins right after it.
    let backed_up = |child: &mut std::process::Child| {
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
                if line.contains(" INBOX: ") && line.contains(" new, ") {
                    let _ = tx.send(());
                }
            }
        });
        rx
    };
    // How long a whole run takes: kills fall anywhere in it.
    add(&mut sent);
    let began = Instant::now();
    assert!(start(&args).wait().unwrap().success());
    let whole = began.elapsed().as_millis() as u64 + 50;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    let folder = root.join(user).join("INBOX");
    let (mut killed, mut killed_after_removing, mut late) = (0, 0, 0);
    // How far into a run (into its prune step) kills fall; narrowed when a run ends first.
    let (mut within_run, mut within_prune) = (whole, 60);
    for round in 0..20 {
        add(&mut sent);
        // A run that ends before its kill is tried again, killed earlier: 20 killed runs.
        for attempt in 1.. {
            let before = ids_on_server(&d, user).len();
            // Old mail that arrives after the backup listed the folder, before prune does
            // (a client moving old mail in): not archived, it must stay.
            let mut late_session = (round % 2 == 1).then(|| d.session(user, PW));
            let mut child = start(&args);
            let backup_done = backed_up(&mut child);
            // Every other round anywhere in the run, the others in its prune step.
            let started = Instant::now();
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_millis(rng.below(within_run)));
            } else {
                let _ = backup_done.recv_timeout(Duration::from_secs(30));
                if let Some(s) = late_session.as_mut() {
                    for _ in 0..3 {
                        let m = message(late, "l");
                        s.append_at("INBOX", &[], Some(&old_date(late)), &m);
                        sent.insert(message_id(&m).unwrap(), m);
                        late += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(rng.below(within_prune)));
            }
            let delay = started.elapsed().as_millis();
            let was_killed = child.try_wait().unwrap().is_none();
            if was_killed {
                child.kill().unwrap();
                killed += 1;
            }
            child.wait().unwrap();
            if let Some(s) = late_session {
                s.logout();
            }
            // Each message is on the server or whole in the archive.
            let on_server = ids_on_server(&d, user);
            if was_killed && on_server.len() < before {
                killed_after_removing += 1;
            }
            let kept = archived(&folder);
            for (id, bytes) in &sent {
                let safe = on_server.contains(id) || kept.get(id) == Some(bytes);
                assert!(safe, "round {round} (seed {seed}, killed after {delay} ms): {id} is lost");
            }
            if was_killed || attempt == 8 {
                break;
            }
            if round % 2 == 0 {
                within_run = (within_run * 3 / 4).max(5);
            } else {
                within_prune = (within_prune * 3 / 4).max(2);
            }
        }
    }
    assert!(killed >= 18, "only {killed} of 20 runs were killed before they ended (seed {seed})");
    // A last run ends the work: every message is archived, and of the old ones only those
    // a killed run committed but could not record (no digest to check the copy against)
    // are still on the server, kept for that reason and said so.
    let report = tmp.join("report.json");
    let mut last = args.clone();
    last.extend(["--report".to_string(), report.to_string_lossy().into_owned()]);
    assert!(start(&last).wait().unwrap().success());
    let on_server = ids_on_server(&d, user);
    let young: BTreeSet<String> = sent
        .keys()
        .filter(|id| id.starts_with("<k") && id[2..id.len() - 13].parse::<usize>().unwrap() % 4 == 3)
        .cloned()
        .collect();
    assert!(young.is_subset(&on_server), "seed {seed}");
    let unrecorded = on_server.difference(&young).count();
    let r: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    let prune = &r["accounts"][0]["folders"][0]["prune"];
    let reasons = &prune["kept_by_reason"];
    if unrecorded == 0 {
        assert_eq!(prune["kept"], 0, "seed {seed}: {r}");
    } else {
        assert_eq!(reasons, &serde_json::json!({"no_digest": unrecorded}), "seed {seed}: {r}");
    }
    let old = sent.len() - young.len();
    assert!(unrecorded * 4 < old, "seed {seed}: {unrecorded} of {old} old messages could not be checked");
    eprintln!(
        "kill -9: {killed} of 20 runs killed ({killed_after_removing} once they had removed messages); \
         {unrecorded} of {old} old messages left without a digest"
    );
    let kept = archived(&folder);
    assert!(sent.iter().all(|(id, bytes)| kept.get(id) == Some(bytes)), "seed {seed}");
    let o = run(&["--verify", folder.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn a_folder_recreated_between_its_backup_and_prune_loses_nothing() {
    // Archive is backed up first; while Zlarge's backup goes on, Archive is deleted and
    // made again with other old mail under the same UIDs: its UIDs now name messages
    // never archived, which the old archive's copies would "verify".
    let d = Dovecot::start();
    let user = "recreated";
    d.add_user(user, PW);
    d.create_mailbox(user, PW, "Archive");
    d.create_mailbox(user, PW, "Zlarge");
    let mut s = d.session(user, PW);
    for i in 0..20 {
        s.append_at("Archive", &[], Some(&old_date(i)), &message(i, "a"));
    }
    for i in 0..600 {
        s.append("Zlarge", &[], &message(i, "z"));
    }
    s.logout();
    let before = d.mailbox_uidvalidity(user, PW, "Archive");
    let tmp = TempDir::new("prune-recreated");
    let root = tmp.dir("root");
    let mut args = d.client_args(user, &root);
    args.extend(["-f", "Archive", "-f", "Zlarge", "--prune-older-than", DAYS].map(String::from));
    let mut child = Command::new(bin())
        .args(&args)
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "no Archive line: {said}");
        said.push_str(&line);
        if line.contains(" Archive: ") && line.contains(" new, ") {
            break;
        }
    }
    let mut s = d.session(user, PW);
    s.ok("DELETE Archive");
    s.ok("CREATE Archive");
    let mut recreated = BTreeSet::new();
    for i in 0..20 {
        let m = message(i, "b");
        s.append_at("Archive", &[], Some(&old_date(i)), &m);
        recreated.insert(message_id(&m).unwrap());
    }
    s.logout();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(rest.contains(" Zlarge: 600 new"), "the recreation came before Zlarge was done: {said}{rest}{err}");
    assert_ne!(d.mailbox_uidvalidity(user, PW, "Archive"), before, "Dovecot gave the new Archive a new UIDVALIDITY");
    assert_eq!(o.status.code(), Some(1), "{said}{rest}{err}");
    assert!(err.contains("Archive: prune: the folder's UIDVALIDITY is "), "{err}");
    assert!(err.contains("nothing is removed"), "{err}");
    // Every message of the new Archive is still there.
    let mut s = d.session(user, PW);
    s.ok("EXAMINE Archive");
    let r = s.ok("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
    s.logout();
    let there: BTreeSet<String> =
        r.untagged.iter().flat_map(|u| u.literals.iter()).filter_map(|l| message_id(l)).collect();
    assert_eq!(there, recreated);
}
