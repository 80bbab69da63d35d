//! Backups against a scripted IMAP server that fails on purpose: connections dropped in
//! the middle of a message, refusals, `* BYE`, malformed literals, garbage, a wrong
//! password. Whatever happens, a final `{uid}.mbox*` file holds exactly the message the
//! server sent, and a run that ends leaves no temporary file behind. Also the README's
//! claims only a scripted server can show: the reconnect delays, messages that vanish
//! between listing and fetching, XOAUTH2 login.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::fake_imap::{FakeImap, Fault, Folder, Offer, Script};
use crate::support::*;
use smailarchiver::archive::layout::{META_DIR, TMP_DIR};

const USER: &str = "alice";
const PW: &str = "s3cret pass";
/// Big enough that every message above 32 KiB is fetched by its own command, and one
/// above 64 KiB alone, its body streamed to disk.
const BUDGET: &str = "64K";

/// A message of about `size` bytes, distinct for each UID.
fn message(uid: u32, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Ann <ann@example.org>\r\nTo: bo@example.net\r\nSubject: message {uid}\r\n\
         Message-ID: <{uid}@example.org>\r\n\r\nFrom the start of message {uid}\r\n"
    )
    .into_bytes();
    let mut line = 0;
    while m.len() < size {
        m.extend_from_slice(format!("line {line} of message {uid}: {}\r\n", "0123456789".repeat(6)).as_bytes());
        line += 1;
    }
    m
}

fn messages(uids: &[u32], size: usize) -> Vec<(u32, Vec<u8>)> {
    uids.iter().map(|&u| (u, message(u, size))).collect()
}

fn inbox(messages: Vec<(u32, Vec<u8>)>) -> Vec<Folder> {
    vec![Folder::new("INBOX", 7, messages)]
}

/// Most memory a backup may take, whatever a server sends (issue 12).
const PEAK_LIMIT_KIB: u64 = 32 * 1024;

/// Runs a backup from `server` into `root`, and checks that it stayed within
/// [`PEAK_LIMIT_KIB`] of memory: every fault here is a hostile server's too. The waits
/// between reconnects take no time (`SMAILARCHIVER_TEST_CLOCK=instant`): these tests are
/// about what a run does after a fault, not how long it waits ([`backup_waiting`]).
fn backup(server: &FakeImap, root: &Path, extra: &[&str]) -> Output {
    run_backup(server, root, extra, "instant")
}

/// [`backup`] with the real waits between reconnects.
fn backup_waiting(server: &FakeImap, root: &Path, extra: &[&str]) -> Output {
    run_backup(server, root, extra, "real")
}

fn run_backup(server: &FakeImap, root: &Path, extra: &[&str], clock: &str) -> Output {
    let port = server.port().to_string();
    let ca = server.ca_file();
    let mut args =
        vec!["-u", USER, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "--dir", root.to_str().unwrap()];
    args.extend(extra);
    let peak_file = root.with_extension("peak");
    let o = measured(bin(), &peak_file)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .env_remove("SMAILARCHIVER_KEY_PASSWORD")
        .env("SMAILARCHIVER_PASSWD", PW)
        .env("SMAILARCHIVER_TEST_CLOCK", clock)
        .output()
        .expect("run smailarchiver under GNU time");
    let text = fs::read_to_string(&peak_file).expect("GNU time's output");
    let _ = fs::remove_file(&peak_file);
    let peak: u64 = text.trim().lines().last().and_then(|l| l.trim().parse().ok()).expect("a peak RSS figure");
    assert!(peak < PEAK_LIMIT_KIB, "peak RSS {peak} KiB; stderr: {}", stderr(&o));
    o
}

fn folder_dir(root: &Path, folder: &str) -> PathBuf {
    root.join(USER).join(folder)
}

/// The UIDs archived in `dir` (ROOT/USER/FOLDER), after checking that no temporary file
/// is left in the archive's temporary directory, that the folder holds nothing but
/// `UID.mbox*` files, one per UID, and that every file restores to exactly the message
/// served.
#[track_caller]
fn archived(dir: &Path, served: &[(u32, Vec<u8>)]) -> Vec<u32> {
    let temporary = dir.ancestors().nth(2).unwrap().join(META_DIR).join(TMP_DIR);
    if let Ok(entries) = fs::read_dir(&temporary) {
        let left: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "temporary files left in {}: {left:?}", temporary.display());
    }
    if !dir.exists() {
        return Vec::new();
    }
    let mut finals = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let uid = name.split_once(".mbox").and_then(|(uid, _)| uid.parse::<u32>().ok());
        finals.push(uid.unwrap_or_else(|| panic!("not an archived message: {}", dir.join(&name).display())));
    }
    finals.sort_unstable();
    let mut unique = finals.clone();
    unique.dedup();
    assert_eq!(finals, unique, "a UID archived more than once in {}", dir.display());
    if finals.is_empty() {
        return finals;
    }
    let out = TempDir::new("faults-restore");
    let maildir = out.join("md");
    let o = run(&["-r", dir.to_str().unwrap(), "--to-maildir", maildir.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "restore {}: {}", dir.display(), stderr(&o));
    let served: BTreeMap<u32, &[u8]> = served.iter().map(|(u, m)| (*u, m.as_slice())).collect();
    let mut restored = Vec::new();
    for entry in fs::read_dir(maildir.join("cur")).unwrap() {
        let path = entry.unwrap().path();
        let uid: u32 = path.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().parse().unwrap();
        let want = served.get(&uid).unwrap_or_else(|| panic!("UID {uid} archived but never served"));
        assert_same(&fs::read(&path).unwrap(), want, &format!("UID {uid} restored from {}", dir.display()));
        restored.push(uid);
    }
    restored.sort_unstable();
    assert_eq!(restored, finals);
    finals
}

fn uids(served: &[(u32, Vec<u8>)]) -> Vec<u32> {
    served.iter().map(|(u, _)| *u).collect()
}

fn error_lines(o: &Output) -> Vec<String> {
    stderr(o).lines().filter(|l| l.starts_with("smailarchiver: error:")).map(String::from).collect()
}

/// The body fetches of one connection.
fn body_fetches(commands: &[String]) -> Vec<&String> {
    commands.iter().filter(|c| c.contains("BODY.PEEK[]")).collect()
}

#[test]
fn drop_mid_literal_once_reconnects_and_completes() {
    let served = messages(&[3, 4, 5, 8, 9], 1500);
    let broken = Script::healthy().at("BODY.PEEK", 1, Fault::DropMidLiteral(500));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![broken, Script::healthy()]);
    let root = TempDir::new("faults-drop-once");
    let o = backup(&server, root.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), uids(&served));
    assert_eq!(server.connections(), 2, "{:?}", server.commands());
    assert!(stderr(&o).contains("connection lost"), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 5 new, 0 already archived, 0 failed"), "{}", stdout(&o));
}

#[test]
fn drop_mid_streamed_message_resumes_without_fetching_finished_messages_again() {
    let served = vec![(1, message(1, 2000)), (2, message(2, 150_000)), (3, message(3, 2000))];
    let broken = Script::healthy().at("UID FETCH 2 (", 1, Fault::DropMidLiteral(1000));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![broken, Script::healthy()]);
    let root = TempDir::new("faults-drop-chunk");
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2, 3]);
    let commands = server.commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let again = body_fetches(&commands[1]);
    assert!(again.iter().all(|c| !c.starts_with("UID FETCH 1 ")), "UID 1 fetched again: {again:?}");
    // The half-received message is started over: its temporary file went with the connection.
    assert!(again[0].starts_with("UID FETCH 2 (UID FLAGS INTERNALDATE BODY.PEEK[])"), "{again:?}");
    assert!(stdout(&o).contains("INBOX: 3 new, 0 already archived, 0 failed"), "{}", stdout(&o));
}

#[test]
fn drop_on_every_connection_gives_up_and_keeps_finished_messages() {
    let served = messages(&[1, 2, 3, 4], 40_000);
    let first = Script::healthy().at("BODY.PEEK", 2, Fault::DropMidLiteral(100));
    let later = Script::healthy().at("BODY.PEEK", 1, Fault::DropMidLiteral(100));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![first, later]);
    let root = TempDir::new("faults-drop-always");
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // One first connection and three reconnects.
    assert_eq!(server.connections(), 4, "{:?}", server.commands());
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{}", stderr(&o));
    assert!(errors[0].contains("INBOX") && errors[0].contains("giving up"), "{}", errors[0]);
    assert_eq!(
        archived(&folder_dir(root.path(), "INBOX"), &served),
        vec![1],
        "{}\n{:?}",
        stderr(&o),
        server.commands()
    );
}

#[test]
fn examine_refused_fails_only_that_folder() {
    let a = messages(&[1, 2], 1000);
    let b = messages(&[1, 2, 3], 1000);
    let folders = vec![Folder::new("A", 1, a), Folder::new("B", 2, b.clone())];
    let script = Script::healthy().at("EXAMINE \"A\"", 1, Fault::No("permission denied"));
    let server = FakeImap::start(USER, PW, folders, vec![script]);
    let root = TempDir::new("faults-examine-no");
    let o = backup(&server, root.path(), &["-f", "A", "-f", "B"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{}", stderr(&o));
    assert!(
        errors[0].contains("alice@127.0.0.1 A: ")
            && errors[0].contains("EXAMINE")
            && errors[0].contains("permission denied"),
        "{}",
        errors[0]
    );
    assert!(archived(&folder_dir(root.path(), "A"), &[]).is_empty());
    assert_eq!(archived(&folder_dir(root.path(), "B"), &b), vec![1, 2, 3]);
    assert!(stdout(&o).contains("B: 3 new, 0 already archived, 0 failed"), "{}", stdout(&o));
    // A refusal is an answer, not a lost connection.
    assert_eq!(server.connections(), 1, "{:?}\n{}", server.commands(), stderr(&o));
}

#[test]
fn bad_answer_to_body_fetch_fails_those_messages_only() {
    let served = messages(&[1, 2, 3], 40_000);
    let script = Script::healthy().at("BODY.PEEK", 2, Fault::Bad("internal error"));
    // One server for both runs: the archive's user directory belongs to this host:port.
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![script, Script::healthy()]);
    let root = TempDir::new("faults-fetch-bad");
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("UID FETCH") && stderr(&o).contains("internal error"), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 2 new, 0 already archived, 1 failed"), "{}", stdout(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 3]);
    assert_eq!(server.connections(), 1);

    // The failed message is simply missing: the next run fetches it.
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 1 new, 2 already archived, 0 failed"), "{}", stdout(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2, 3]);
    assert_eq!(server.connections(), 2);
}

/// A message refused in one pass and archived by the pass after a reconnect is archived:
/// the run must not report it failed.
#[test]
fn message_refused_then_archived_after_a_reconnect_is_not_failed() {
    let served = messages(&[1, 2, 3], 40_000);
    let broken =
        Script::healthy().at("BODY.PEEK", 2, Fault::Bad("try later")).at("BODY.PEEK", 3, Fault::DropMidLiteral(100));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![broken, Script::healthy()]);
    let root = TempDir::new("faults-bad-then-drop");
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2, 3]);
    assert_eq!(server.connections(), 2, "{:?}", server.commands());
    assert!(stdout(&o).contains("INBOX: 3 new, 0 already archived, 0 failed"), "{}", stdout(&o));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn bye_mid_run_is_a_lost_connection() {
    let served = messages(&[1, 2, 3], 40_000);
    let broken = Script::healthy().at("BODY.PEEK", 2, Fault::Bye);
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![broken, Script::healthy()]);
    let root = TempDir::new("faults-bye");
    let started = std::time::Instant::now();
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The BYE itself ends the command (then a 1 s back-off), not the 60 s timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(stderr(&o).contains("the server hung up: server shutting down"), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2, 3]);
    assert_eq!(server.connections(), 2, "{:?}", server.commands());
    assert!(stderr(&o).contains("connection lost"), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 3 new, 0 already archived, 0 failed"), "{}", stdout(&o));
}

#[test]
fn garbage_instead_of_an_answer_is_a_lost_connection() {
    let served = messages(&[1, 2], 1000);
    let broken = Script::healthy().at("RFC822.SIZE", 1, Fault::Garbage(b"\x00\xff}{ not IMAP )(\r\n"));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![broken, Script::healthy()]);
    let root = TempDir::new("faults-garbage-answer");
    let o = backup(&server, root.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2]);
    assert_eq!(server.connections(), 2, "{:?}", server.commands());
}

/// A literal followed by more than its `{N}` announced: the answer is broken, so the
/// connection is treated as lost; the reconnect fetches the message again, whole.
#[test]
fn literal_longer_than_announced_is_never_stored() {
    // Once in a batch, once in a message fetched alone (streamed).
    for (at, budget) in [("BODY.PEEK[])", "4M"), ("UID FETCH 2 (", BUDGET)] {
        let served = vec![(1, message(1, 2000)), (2, message(2, 100_000))];
        let broken = Script::healthy().at(at, 1, Fault::LongLiteral(7));
        let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![broken, Script::healthy()]);
        let root = TempDir::new("faults-long-literal");
        let o = backup(&server, root.path(), &["--buffer-size", budget]);
        assert_eq!(o.status.code(), Some(0), "{at}: {}", stderr(&o));
        assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2], "{at}");
        assert_eq!(server.connections(), 2, "{at}: {:?}", server.commands());
        assert_eq!(
            stderr(&o),
            "smailarchiver: alice@127.0.0.1: connection lost (UID FETCH: unreadable answer: a literal was longer \
             than announced); reconnecting\n",
            "{at}"
        );
        assert!(stdout(&o).contains("INBOX: 2 new, 0 already archived, 0 failed"), "{at}: {}", stdout(&o));
    }
}

/// A body that comes, for a message fetched alone, before its answer names a UID, and
/// turns out to be another message's: it went to the message being written, so that
/// message is started over on a new connection, never stored with those bytes.
#[test]
fn a_streamed_body_of_another_message_is_never_stored() {
    let served = vec![(1, message(1, 2000)), (2, message(2, 150_000)), (3, message(3, 2000))];
    let foreign = Script::healthy().at("UID FETCH 2 (", 1, Fault::ForeignBody);
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![foreign, Script::healthy()]);
    let root = TempDir::new("faults-foreign-body");
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Byte-identical to what was served (archived() restores and compares).
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2, 3]);
    assert!(stderr(&o).contains("the server sent the body of another message than UID 2 asked for"), "{}", stderr(&o));
    assert_eq!(server.connections(), 2, "{:?}", server.commands());
}

/// RFC 3501 (7.4.2) lets a server report a flag change, as a FETCH without the body,
/// in any answer; the body comes in another FETCH of the same UID.
#[test]
fn unsolicited_flags_fetch_before_the_data_is_skipped() {
    let served = vec![(1, message(1, 2000)), (2, message(2, 150_000))];
    let script = Script::healthy().at("BODY.PEEK[])", 1, Fault::FlagsFirst).at("UID FETCH 2 (", 1, Fault::FlagsFirst);
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![script]);
    let root = TempDir::new("faults-flags-first");
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2]);
}

#[test]
fn garbage_instead_of_a_greeting_is_a_one_line_error() {
    let greetings: [&'static [u8]; 2] = [b"\x1b[2J220 mail.example.org ESMTP ready\r\n", b"\x16\x03\x01 no line end"];
    for greeting in greetings {
        let script = Script::healthy().at_greeting(Fault::Garbage(greeting));
        let server = FakeImap::start(USER, PW, inbox(messages(&[1], 1000)), vec![script]);
        let root = TempDir::new("faults-greeting");
        let o = backup(&server, root.path(), &[]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("smailarchiver: error: ") && err.contains(&format!(":{}", server.port())), "{err}");
        assert!(!err.contains('\x1b'), "terminal escape passed through: {err:?}");
        assert_eq!(server.connections(), 1, "a server that is not IMAP is not retried");
        assert!(archived(&folder_dir(root.path(), "INBOX"), &[]).is_empty());
    }
}

#[test]
fn wrong_password_names_the_user_not_the_password() {
    let server = FakeImap::start(USER, "the right one", inbox(messages(&[1], 1000)), vec![Script::healthy()]);
    let root = TempDir::new("faults-login");
    let o = backup(&server, root.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("login failed for alice") && err.contains("Authentication failed"), "{err}");
    assert!(!err.contains(PW) && !stdout(&o).contains(PW) && !err.contains("s3cret"), "password printed: {err}");
    // Retrying a refused password only risks locking the account.
    assert_eq!(server.connections(), 1, "{:?}", server.commands());
    assert!(archived(&folder_dir(root.path(), "INBOX"), &[]).is_empty());
}

#[test]
fn stalled_server_times_out_and_the_run_resumes() {
    let served = messages(&[1, 2, 3], 1500);
    let stalled = Script::healthy().at("BODY.PEEK", 1, Fault::Stall);
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![stalled, Script::healthy()]);
    let root = TempDir::new("faults-stall");
    let started = std::time::Instant::now();
    let o = backup(&server, root.path(), &["--timeout", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("no answer within 2 s"), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), uids(&served));
    assert_eq!(server.connections(), 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the timeout was not applied");
}

/// A message that was listed and sized but is missing from the body FETCH's answer (as
/// after an expunge by another session) is counted as vanished: not failed, not fatal.
/// Once in a whole-message batch, once for a message fetched alone.
#[test]
fn message_missing_from_the_fetch_answer_counts_as_vanished() {
    let inbox = messages(&[1, 2, 3], 2000);
    let big = vec![(5, message(5, 2000)), (6, message(6, 150_000)), (7, message(7, 2000))];
    let folders = vec![Folder::new("INBOX", 7, inbox.clone()), Folder::new("Big", 8, big.clone())];
    let script = Script::healthy().at("UID FETCH 1:3 (UID FLAGS INTERNALDATE BODY.PEEK[])", 1, Fault::Omit(2)).at(
        "UID FETCH 6 (",
        1,
        Fault::Omit(6),
    );
    let server = FakeImap::start(USER, PW, folders, vec![script]);
    let root = TempDir::new("faults-vanished");
    let o = backup(&server, root.path(), &["-f", "INBOX", "-f", "Big", "--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let out = stdout(&o);
    assert!(out.contains("alice INBOX: 2 new, 0 already archived, 0 failed, 1 vanished, "), "{out}");
    assert!(out.contains("alice Big: 2 new, 0 already archived, 0 failed, 1 vanished, "), "{out}");
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &inbox), vec![1, 3]);
    assert_eq!(archived(&folder_dir(root.path(), "Big"), &big), vec![5, 7]);
    // The faults struck where meant: the batch held all three, UID 6 was asked for alone.
    let commands = server.commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    let fetched: Vec<&String> = body_fetches(&commands[0]);
    assert!(fetched.iter().any(|c| c.starts_with("UID FETCH 1:3 (UID FLAGS INTERNALDATE BODY.PEEK[])")), "{fetched:?}");
    assert_eq!(fetched.iter().filter(|c| c.starts_with("UID FETCH 6 ")).count(), 1, "{fetched:?}");
}

/// Dovecot's answer for a message expunged by another session after this one listed it:
/// `BODY[] NIL`, then `* n EXPUNGE` (seen in tests/it/backup.rs's expunge race). NIL is no
/// message: it is counted as vanished, never stored as an empty one (which would also
/// keep the next run from ever fetching that UID).
#[test]
fn body_nil_answer_counts_as_vanished_not_as_an_empty_message() {
    let served = messages(&[1, 2, 3], 2000);
    let script = Script::healthy().at("UID FETCH 1:3 (UID FLAGS INTERNALDATE BODY.PEEK[])", 1, Fault::NilBody(3));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![script]);
    let root = TempDir::new("faults-nil-body");
    let o = backup(&server, root.path(), &["-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("UID 3 archived"), "{out}");
    assert!(out.contains("alice INBOX: 2 new, 0 already archived, 0 failed, 1 vanished, "), "{out}");
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2]);
}

/// The README: "reconnect (1, 2, 4 s apart) ...; after three losses the account is given
/// up". Measured from the server's side: from the moment it closed a connection to the
/// next connection's arrival. Lower bounds only (a busy machine may be slower).
#[test]
fn reconnects_wait_1_2_4_seconds_then_give_up() {
    let served = messages(&[1, 2], 1500);
    let broken = Script::healthy().at("BODY.PEEK", 1, Fault::DropMidLiteral(100));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![broken]);
    let root = TempDir::new("faults-delays");
    let started = std::time::Instant::now();
    let o = backup_waiting(&server, root.path(), &[]);
    // A hang guard, not a timing claim.
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{}", stderr(&o));
    assert!(errors[0].contains("connection lost 3 times, giving up"), "{}", errors[0]);
    assert_eq!(stderr(&o).matches("reconnecting").count(), 3, "{}", stderr(&o));
    let times = server.connection_times();
    assert_eq!(times.len(), 4, "one connection and three reconnects: {:?}", server.commands());
    // The socket is closed just before the server takes the time: allow for that.
    let tolerance = std::time::Duration::from_millis(50);
    for (i, delay) in [1u64, 2, 4].into_iter().enumerate() {
        let closed = times[i].1.expect("connection closed");
        let gap = times[i + 1].0.duration_since(closed);
        println!("reconnect {}: {gap:?} after the loss", i + 1);
        assert!(gap + tolerance >= std::time::Duration::from_secs(delay), "reconnect {} after {gap:?}", i + 1);
    }
    assert!(archived(&folder_dir(root.path(), "INBOX"), &served).is_empty());
}

/// `--oauth2-token-command`: the token it prints goes in AUTHENTICATE XOAUTH2, no LOGIN
/// is tried; a rejected token is a one-line error with the server's reason.
#[test]
fn oauth2_token_command_logs_in_with_xoauth2() {
    const TOKEN: &str = "ya29.a0-test_token";
    let served = messages(&[1, 2], 1500);
    let server = FakeImap::start_oauth2(USER, TOKEN, inbox(served.clone()), vec![Script::healthy()]);
    let root = TempDir::new("faults-oauth2");
    let port = server.port().to_string();
    let ca = server.ca_file();
    let with_command = |cmd: &str| {
        let dir = root.path().to_str().unwrap();
        let args = ["-u", USER, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "--dir", dir];
        // No password anywhere: run() clears SMAILARCHIVER_PASSWD and closes stdin.
        run(&[&args[..], &["--oauth2-token-command", cmd]].concat(), &[])
    };
    let o = with_command(&format!("echo {TOKEN}"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2]);
    let commands = server.commands();
    let login: Vec<&String> = commands[0]
        .iter()
        .filter(|c| c.starts_with("LOGIN") || c.contains("AUTHENTICATE") || c.starts_with("XOAUTH2"))
        .collect();
    assert_eq!(
        login,
        [
            &"AUTHENTICATE XOAUTH2".to_string(),
            &format!("XOAUTH2 RESPONSE \"user={USER}\\u{{1}}auth=Bearer {TOKEN}\\u{{1}}\\u{{1}}\"")
        ],
        "{commands:?}"
    );
    let o = with_command("echo expired-token");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("login failed for alice") && err.contains("401"), "{err}");
    assert!(!err.contains("expired-token"), "token printed: {err}");
    assert_eq!(server.connections(), 2, "a refused token is not retried");
}

/// The commands of connection `n`, each with its arguments.
fn commands_of(server: &FakeImap, n: usize) -> Vec<String> {
    server.commands().get(n).cloned().unwrap_or_default()
}

#[test]
fn id_is_sent_where_offered_so_a_netease_server_lets_us_examine() {
    let served = messages(&[1, 2], 3000);
    let offer = Offer { capabilities: "ID", require_id: true, ..Offer::default() };
    let server = FakeImap::start_offering(USER, PW, inbox(served.clone()), vec![Script::healthy()], offer);
    let root = TempDir::new("faults-id");
    let o = backup(&server, root.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2]);
    let cmds = commands_of(&server, 0);
    let id = cmds.iter().position(|c| c.starts_with("ID (\"name\" \"smailarchiver\""));
    let examine = cmds.iter().position(|c| c.starts_with("EXAMINE"));
    assert!(matches!((id, examine), (Some(i), Some(e)) if i < e), "ID before EXAMINE: {cmds:?}");
    // Without ID on offer, none is sent.
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![Script::healthy()]);
    let o = backup(&server, TempDir::new("faults-no-id").path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!commands_of(&server, 0).iter().any(|c| c.starts_with("ID")), "{:?}", server.commands());
}

/// A rerun with no new mail opens no folder: the folders' state comes with LIST
/// (LIST-STATUS) where the server offers it, else from STATUS commands, and matches what
/// the last complete backup recorded.
#[test]
fn unchanged_folders_are_not_opened_on_a_rerun() {
    for (capabilities, args) in [("LIST-STATUS", &["--all-folders"][..]), ("", &["-f", "INBOX", "-f", "Sent"][..])] {
        let folders =
            vec![Folder::new("INBOX", 7, messages(&[1, 2, 3], 2000)), Folder::new("Sent", 9, messages(&[4], 500))];
        let offer = Offer { capabilities, ..Offer::default() };
        let server = FakeImap::start_offering(USER, PW, folders, vec![Script::healthy()], offer);
        let root = TempDir::new("faults-unchanged");
        let o = backup(&server, root.path(), args);
        assert_eq!(o.status.code(), Some(0), "{capabilities}: {}", stderr(&o));
        let o = backup(&server, root.path(), args);
        assert_eq!(o.status.code(), Some(0), "{capabilities}: {}", stderr(&o));
        assert!(stdout(&o).contains("INBOX: 0 new, 3 already archived, 0 failed"), "{}", stdout(&o));
        assert!(stdout(&o).contains("Sent: 0 new, 1 already archived, 0 failed"), "{}", stdout(&o));
        let rerun = commands_of(&server, 1);
        assert!(!rerun.iter().any(|c| c.starts_with("EXAMINE") || c.starts_with("UID")), "{capabilities}: {rerun:?}");
        if capabilities == "LIST-STATUS" {
            assert!(rerun.iter().any(|c| c.contains("RETURN (STATUS")), "{rerun:?}");
            assert!(!rerun.iter().any(|c| c.starts_with("STATUS")), "{rerun:?}");
        } else {
            assert_eq!(rerun.iter().filter(|c| c.starts_with("STATUS")).count(), 2, "{rerun:?}");
        }
    }
}

/// New mail in several folders since a complete backup is asked for in one go: each
/// folder's EXAMINE and `UID FETCH UIDNEXT:*` with size and the first budget's worth of
/// body, no UID SEARCH; a message bigger than the budget is then fetched alone, whole.
#[test]
fn new_mail_of_every_folder_is_asked_for_at_once() {
    let inbox_mail = messages(&[1, 2], 3000);
    let sent_mail = messages(&[5], 3000);
    let folders = vec![Folder::new("INBOX", 7, inbox_mail.clone()), Folder::new("Sent", 9, sent_mail.clone())];
    let offer = Offer { capabilities: "LIST-STATUS", ..Offer::default() };
    let server = FakeImap::start_offering(USER, PW, folders, vec![Script::healthy()], offer);
    let root = TempDir::new("faults-new-mail");
    let o = backup(&server, root.path(), &["--all-folders", "--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (small, big) = (message(3, 5000), message(6, 200_000));
    server.append("INBOX", 3, small.clone());
    server.append("Sent", 6, big.clone());
    let o = backup(&server, root.path(), &["--all-folders", "--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 1 new, 2 already archived, 0 failed"), "{}", stdout(&o));
    assert!(stdout(&o).contains("Sent: 1 new, 1 already archived, 0 failed"), "{}", stdout(&o));
    let all_inbox: Vec<_> = inbox_mail.iter().cloned().chain([(3, small)]).collect();
    let all_sent: Vec<_> = sent_mail.iter().cloned().chain([(6, big)]).collect();
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &all_inbox), vec![1, 2, 3]);
    assert_eq!(archived(&folder_dir(root.path(), "Sent"), &all_sent), vec![5, 6]);
    let rerun = commands_of(&server, 1);
    let first_fetches: Vec<&String> =
        rerun.iter().filter(|c| c.contains(":* (UID RFC822.SIZE FLAGS INTERNALDATE BODY")).collect();
    assert_eq!(
        first_fetches,
        [
            "UID FETCH 3:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[]<0.65536>)",
            "UID FETCH 6:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[]<0.65536>)"
        ],
        "{rerun:?}"
    );
    assert!(!rerun.iter().any(|c| c.contains("SEARCH")), "{rerun:?}");
    // The big message was fetched alone afterwards, whole; the small ones never again.
    let again: Vec<&String> = rerun.iter().filter(|c| c.starts_with("UID FETCH 6 ")).collect();
    assert_eq!(again, ["UID FETCH 6 (UID FLAGS INTERNALDATE BODY.PEEK[])"], "{rerun:?}");
    assert!(!rerun.iter().any(|c| c.starts_with("UID FETCH 3 ")), "{rerun:?}");
}

/// `--connections 3` against a server that takes one connection at a time: the extra
/// connections are turned away and the first one backs up every folder.
#[test]
fn connections_the_server_refuses_leave_the_work_to_the_others() {
    let folders: Vec<Folder> = ["A", "B", "C", "D"]
        .iter()
        .enumerate()
        .map(|(i, n)| Folder::new(n, 7, messages(&[1, 2], 1000 + i * 100)))
        .collect();
    let served: Vec<Folder> = folders.clone();
    let offer = Offer { max_connections: Some(1), ..Offer::default() };
    let server = FakeImap::start_offering(USER, PW, folders, vec![Script::healthy()], offer);
    let root = TempDir::new("faults-conn-limit");
    let o = backup(&server, root.path(), &["--all-folders", "--connections", "3", "-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in &served {
        assert_eq!(archived(&folder_dir(root.path(), &f.name), &f.messages), vec![1, 2], "{}", f.name);
    }
    assert!(server.connections() >= 2, "more connections were tried: {:?}", server.commands());
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches(": 2 new, 0 already archived, 0 failed").count(), 4, "{}", stdout(&o));
}

/// A server that sends a byte now and then is never silent long enough for the socket's
/// timeout: the pace check (the timeout, then at least 8 KiB/s) ends the command.
#[test]
fn an_answer_that_trickles_in_is_given_up() {
    let served = messages(&[1, 2], 3000);
    let trickle = Script::healthy().at("BODY.PEEK", 1, Fault::Trickle);
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![trickle, Script::healthy()]);
    let root = TempDir::new("faults-trickle");
    let started = std::time::Instant::now();
    let o = backup(&server, root.path(), &["--timeout", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("the answer came too slowly"), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2]);
    // The trickle alone would take over five minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// Answers for a UID never asked for are dropped as they come, not gathered: 100 MiB of
/// them leave the client's peak memory far below that.
#[test]
fn answers_for_uids_never_asked_for_are_dropped() {
    let served = messages(&[1, 2, 3], 2000);
    let noisy = Script::healthy().at("BODY.PEEK", 1, Fault::Unasked(400));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![noisy]);
    let root = TempDir::new("faults-unasked");
    // backup() holds the run to PEAK_LIMIT_KIB.
    let o = backup(&server, root.path(), &["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2, 3]);
    assert!(!folder_dir(root.path(), "INBOX").join("999999.mbox").exists());
    assert_eq!(server.connections(), 1);
}

/// Sizes that lie (100 bytes each, for 300 KB messages) plan many messages into one
/// batch; the answers then exceed what was asked for, and the command is given up instead
/// of the memory filling up. Its messages are then asked for one at a time, in pieces:
/// a server that lied once gets them all archived; one that keeps lying has each message
/// stop at the ceiling its announced size allows, and the run still ends, within memory.
#[test]
fn sizes_that_lie_do_not_fill_the_memory() {
    let served = messages(&[1, 2, 3, 4, 5, 6, 7, 8], 300_000);
    let liar = Script::healthy().at("RFC822.SIZE", 1, Fault::SmallSizes);
    for (scripts, code, failed) in [(vec![liar.clone(), Script::healthy()], 0, 0), (vec![liar], 1, 8)] {
        let server = FakeImap::start(USER, PW, inbox(served.clone()), scripts);
        let root = TempDir::new("faults-lying-sizes");
        let o = backup(&server, root.path(), &["--buffer-size", "256K"]);
        let (out, err) = (stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(code), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines[0].ends_with(
                "INBOX: UID FETCH: the server sent more than 1572864 bytes for messages that add up to less; \
                 asking for those 8 messages one at a time"
            ),
            "{err}"
        );
        assert!(out.contains(&format!("INBOX: {} new, 0 already archived, {failed} failed", 8 - failed)), "{out}");
        let kept = archived(&folder_dir(root.path(), "INBOX"), &served);
        if failed == 0 {
            assert_eq!(lines.len(), 1, "{err}");
            assert_eq!(kept, uids(&served));
        } else {
            assert!(kept.is_empty(), "{kept:?}");
            for uid in 1..=8 {
                assert!(
                    err.contains(&format!(
                        "INBOX: UID {uid} left out: the server sent more than its announced size (100 bytes) allows"
                    )),
                    "{err}"
                );
            }
            assert_eq!(fs::read_dir(root.path().join(".smailarchiver/tmp")).unwrap().count(), 0);
        }
        // Given up once, not reconnected in a loop.
        assert_eq!(server.connections(), 2, "{:?}", server.commands());
    }
}

/// The same liar, measured: what the first batch's answers bring is given up long before
/// it could fill the memory.
#[test]
fn lying_sizes_are_given_up_within_memory() {
    let served = messages(&(1..=40).collect::<Vec<u32>>(), 3 << 20);
    let liar = Script::healthy().at("RFC822.SIZE", 1, Fault::SmallSizes);
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![liar, Script::healthy()]);
    let root = TempDir::new("faults-lying-sizes-rss");
    let (port, ca) = (server.port().to_string(), server.ca_file());
    let peak_file = root.path().join("peak");
    let child = measured(bin(), &peak_file)
        .args(["-u", USER, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "-q"])
        .args(["--dir", root.path().join("archive").to_str().unwrap()])
        .env("SMAILARCHIVER_PASSWD", PW)
        .env("SMAILARCHIVER_TEST_CLOCK", "instant")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (code, peak_kib) = wait_measured(child, &peak_file);
    assert_eq!(code, 0);
    assert_eq!(archived(&folder_dir(&root.path().join("archive"), "INBOX"), &served).len(), 40);
    assert!(peak_kib < 32 * 1024, "peak RSS {peak_kib} KiB for 120 MiB of answers to lying sizes");
}

/// A message fetched alone whose body is announced far bigger than its size allows (a
/// body that would fill the disk) is refused before a byte of it is read: that message
/// fails, the others of the folder are archived, and nothing is left on disk.
#[test]
fn a_body_far_bigger_than_its_size_is_refused_unread() {
    let served = vec![(1, message(1, 2000)), (2, message(2, 100_000)), (3, message(3, 2000))];
    let oversized = Script::healthy().at("UID FETCH 2 (", 1, Fault::Oversized(10 << 20));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![oversized, Script::healthy()]);
    let root = TempDir::new("faults-oversized");
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // The ceiling: twice the announced size and one budget (65,536 bytes).
    let n = served[1].1.len();
    assert_eq!(
        stderr(&o),
        format!(
            "smailarchiver: alice@127.0.0.1 INBOX: UID 2 left out: the server announced a message of 10485760 bytes \
             where at most {} were expected\n",
            2 * n + 65_536
        )
    );
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 3]);
    assert!(stdout(&o).contains("INBOX: 2 new, 0 already archived, 1 failed"), "{}", stdout(&o));
    // The unread body cost the connection; the second one finished the folder.
    assert_eq!(server.connections(), 2, "{:?}", server.commands());
    assert_eq!(std::fs::read_dir(root.path().join(".smailarchiver").join(TMP_DIR)).unwrap().count(), 0);
}

/// A SEARCH answer of 10 million UIDs (a 79 MB line), and a 100 MB line of garbage in its
/// place: each is refused as it streams in, at the cap on UIDs or on a line, within
/// memory; the run ends on its own.
#[test]
fn huge_search_answers_are_refused_within_memory() {
    for (fault, needle) in [
        (Fault::HugeSearch(10_000_000), "a SEARCH answer of more than 4000000 UIDs"),
        (Fault::LongLine(100 << 20), "a line of more than 65536 bytes"),
    ] {
        let huge = Script::healthy().at("UID SEARCH", 1, fault);
        let server = FakeImap::start(USER, PW, inbox(messages(&[1, 2], 1000)), vec![huge, Script::healthy()]);
        let root = TempDir::new("faults-huge-search");
        let peak_file = root.path().join("peak");
        let mut child = measured(bin(), &peak_file)
            .args(["-u", USER, "-i", "127.0.0.1", "--port", &server.port().to_string(), "--ca-file"])
            .arg(server.ca_file())
            .args(["--dir", root.path().join("archive").to_str().unwrap()])
            .env("SMAILARCHIVER_PASSWD", PW)
            .env("SMAILARCHIVER_TEST_CLOCK", "instant")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        let (code, peak_kib) = wait_measured(child, &peak_file);
        println!("{needle}: exit {code}, peak {peak_kib} KiB");
        // The second connection answers honestly: the run recovers.
        assert_eq!(code, 0, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
        assert_eq!(archived(&folder_dir(&root.path().join("archive"), "INBOX"), &messages(&[1, 2], 1000)), vec![1, 2]);
        assert!(peak_kib < 32 * 1024, "peak RSS {peak_kib} KiB");
    }
}

/// A greeting of 100 MB without a line end is refused after its first 8 KiB.
#[test]
fn an_endless_greeting_line_is_refused_at_once() {
    let script = Script::healthy().at_greeting(Fault::LongLine(100 << 20));
    let server = FakeImap::start(USER, PW, inbox(messages(&[1], 100)), vec![script]);
    let root = TempDir::new("faults-long-greeting");
    let o = backup(&server, root.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("is not an IMAP server: it greeted with xxxx"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.len() < 1000, "the server's text is cut short: {} bytes", err.len());
}

/// Endless untagged lines in the answer to CAPABILITY end the login, not the memory.
#[test]
fn endless_untagged_lines_end_the_command() {
    let script = Script::healthy().at("CAPABILITY", 1, Fault::Noise(150_000));
    let server = FakeImap::start(USER, PW, inbox(messages(&[1], 100)), vec![script]);
    let root = TempDir::new("faults-noise");
    let o = backup(&server, root.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("more than 100000 unasked-for answers"), "{}", stderr(&o));
}

/// A mailbox name that decodes to terminal escapes is printed escaped: one inert line.
#[test]
fn hostile_mailbox_names_are_printed_inert() {
    // `&ABs-` is ESC; U+202E (right-to-left override) is `&IC4-`.
    let folders =
        vec![Folder::new("INBOX", 7, messages(&[1], 500)), Folder::new("&ABs-[2Jx&IC4-y", 8, messages(&[1], 500))];
    let server = FakeImap::start(USER, PW, folders, vec![Script::healthy()]);
    let root = TempDir::new("faults-escapes");
    let o = backup(&server, root.path(), &["--all-folders"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}'), "raw control characters printed: {out:?}");
    assert!(out.contains("alice \\u{1b}[2Jx\\u{202e}y: 1 new"), "{out}");
    assert_eq!(out.lines().count(), 3, "two folders and the total: {out}");
}

/// A LIST entry whose name is not text (Latin-1 bytes from an old server) fails that
/// folder, named in one escaped line; the other folders are backed up.
#[test]
fn a_folder_name_that_is_not_text_fails_that_folder_only() {
    let served = messages(&[1, 2], 500);
    let script = Script::healthy().at("LIST", 1, Fault::ExtraListName(b"Gel\xf6scht\x1b"));
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![script]);
    let root = TempDir::new("faults-bad-name");
    let o = backup(&server, root.path(), &["--all-folders"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Gel\u{fffd}scht\\u{1b}: the server lists this folder under a name that is not text"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(archived(&folder_dir(root.path(), "INBOX"), &served), vec![1, 2]);
}

/// A backup killed with SIGKILL while a message body is half in (the server holds the rest
/// of it back, so the moment is known, not guessed): the run is shown to leave that
/// message's temporary file in ROOT/.smailarchiver/tmp and nothing but whole `UID.mbox*`
/// files in the folder directory; the next run removes the leftover and archives
/// everything.
#[test]
fn a_killed_runs_temporary_file_is_left_then_removed_by_the_next_run() {
    let served = vec![(1, message(1, 2000)), (2, message(2, 2000)), (3, message(3, 400_000)), (4, message(4, 2000))];
    let server = FakeImap::start(USER, PW, inbox(served.clone()), vec![Script::healthy()]);
    server.pause_at("UID FETCH 3 (", Some(150_000));
    let root = TempDir::new("faults-leftover");
    let tmp_dir = root.join(META_DIR).join(TMP_DIR);
    let dir = folder_dir(root.path(), "INBOX");
    let port = server.port().to_string();
    let ca = server.ca_file();
    let args =
        ["-u", USER, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "--dir", root.path().to_str().unwrap()];
    let mut child = std::process::Command::new(bin())
        .args(args)
        .args(["--buffer-size", BUDGET, "-q"])
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    server.wait_paused(std::time::Duration::from_secs(60));
    // The message begun is written to its temporary file as it comes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !sorted_names(&tmp_dir).iter().any(|n| n.ends_with(".3.mbox")) {
        assert!(std::time::Instant::now() < deadline, "no temporary file while UID 3 was half sent");
        assert!(child.try_wait().unwrap().is_none(), "the run ended while the server held UID 3 back");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = sorted_names(&tmp_dir);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(".smailarchiver-tmp-") && left[0].ends_with(".3.mbox"), "not UID 3's: {left:?}");
    // UIDs 1 and 2 came before UID 3 and were committed before it was begun; nothing
    // else is in the folder directory.
    assert_eq!(sorted_names(&dir), ["1.mbox", "2.mbox"]);
    server.release();
    let o = backup(&server, root.path(), &["--buffer-size", BUDGET]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 2 new, 2 already archived, 0 failed"), "{}", stdout(&o));
    assert_eq!(sorted_names(&tmp_dir), Vec::<String>::new(), "the killed run's temporary file is still there");
    assert_eq!(archived(&dir, &served), uids(&served));
    // Whatever the server sent to the killed run on its release went nowhere.
    server.take_errors();
}
