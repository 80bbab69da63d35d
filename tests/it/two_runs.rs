//! Two real runs on one archive at once: a second backup is refused with the lock line
//! and writes nothing, not even over the first one's temporary file; an upload and a
//! verify run beside a backup and give correct results. The backup is held at a known
//! point by the scripted server (a message body stalled halfway, or a fetch not yet
//! answered), so what the other run meets is known, not left to timing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::Dovecot;
use crate::support::fake_imap::{FakeImap, Folder, Script};
use crate::support::*;
use smailarchiver::archive::layout::{META_DIR, TMP_DIR};

const USER: &str = "alice";
const PW: &str = "two runs pw";
/// Messages above it are fetched alone, their bodies streamed to their temporary files.
const BUDGET: &str = "64K";

/// A message of about `size` bytes, distinct for each UID.
fn message(uid: u32, size: usize) -> Vec<u8> {
    let mut m = format!("From: Ann <ann@example.org>\r\nSubject: message {uid}\r\n\r\nbody of {uid}\r\n").into_bytes();
    let mut line = 0;
    while m.len() < size {
        m.extend_from_slice(format!("line {line} of message {uid}: {}\r\n", "0123456789".repeat(6)).as_bytes());
        line += 1;
    }
    m
}

/// Small messages but UID `big`, which is 400 KB: fetched alone, after those before it.
fn mail(uids: std::ops::RangeInclusive<u32>, big: u32) -> Vec<(u32, Vec<u8>)> {
    uids.map(|u| (u, message(u, if u == big { 400_000 } else { 2000 }))).collect()
}

fn backup_cmd(server: &FakeImap, root: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["-u", USER, "-i", "127.0.0.1", "--port", &server.port().to_string(), "--ca-file", &server.ca_file()])
        .args(["--dir", root.to_str().unwrap(), "--buffer-size", BUDGET])
        .args(extra)
        .env("SMAILARCHIVER_PASSWD", PW)
        .env_remove("SMAILARCHIVER_KEY_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits (up to a minute) until `what` holds, while `child` runs.
#[track_caller]
fn wait_for(what: &str, child: &mut Child, holds: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !holds() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what}");
        }
        assert!(Instant::now() < deadline, "not {what} within a minute");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts a backup and waits until the server holds back the body of UID `big` halfway,
/// its temporary file begun: the messages before it are committed, the lock is held.
fn backup_held_at(server: &FakeImap, root: &Path, big: u32) -> Child {
    server.pause_at(&format!("UID FETCH {big} ("), Some(150_000));
    let mut child = backup_cmd(server, root, &[]).spawn().unwrap();
    server.wait_paused(Duration::from_secs(60));
    let tmp_dir = root.join(META_DIR).join(TMP_DIR);
    let suffix = format!(".{big}.mbox");
    wait_for(&format!("UID {big} is being written"), &mut child, || {
        sorted_names(&tmp_dir).iter().any(|n| n.ends_with(&suffix))
    });
    child
}

/// Every file under `dir` (hidden ones and the lock included) with its bytes; of the
/// temporary files, which the held run may still be writing, the names only.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let tmp_dir = dir.join(META_DIR).join(TMP_DIR);
    let mut out = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(e.path());
                out.insert(e.path(), Vec::new());
            } else if d == tmp_dir {
                out.insert(e.path(), Vec::new());
            } else {
                out.insert(e.path(), fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Asserts `dir` holds exactly one `UID.mbox` per message of `served`, each its bytes
/// after the stored From-line.
#[track_caller]
fn archived_exactly(dir: &Path, served: &[(u32, Vec<u8>)]) {
    let want: Vec<String> = served.iter().map(|(u, _)| format!("{u}.mbox")).collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(sorted_names(dir), want_sorted, "{}", dir.display());
    for (uid, body) in served {
        let stored = fs::read(dir.join(format!("{uid}.mbox"))).unwrap();
        assert_same(strip_first_line(&stored), body, &format!("UID {uid}"));
    }
}

/// A backup started while another one works on the same archive is refused with the lock
/// line, exit 1, and touches nothing: no file of the archive changes (the first run's
/// temporary file included, which a run of its own would take for a crashed run's) and the
/// server never hears from it. The first run then completes.
#[test]
fn a_second_backup_of_an_archive_in_use_is_refused_and_writes_nothing() {
    let served = mail(1..=6, 4);
    let server = FakeImap::start(USER, PW, vec![Folder::new("INBOX", 7, served.clone())], vec![Script::healthy()]);
    let tmp = TempDir::new("two-backups");
    let root = tmp.path();
    let first = backup_held_at(&server, root, 4);
    let before = snapshot(root);
    let connections = server.connections();
    let o = backup_cmd(&server, root, &[]).output().unwrap();
    let lock = root.join(".smailarchiver.lock");
    assert_eq!(
        stderr(&o),
        format!(
            "smailarchiver: error: {USER}@127.0.0.1: another smailarchiver run is using the archive {} (lock {} is held)\n",
            root.display(),
            lock.display()
        )
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(server.connections(), connections, "the refused run connected to the server");
    let after = snapshot(root);
    assert!(before == after, "the refused run changed the archive: {:?} -> {:?}", before.keys(), after.keys());
    server.release();
    let o = first.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 6 new, 0 already archived, 0 failed"), "{}", stdout(&o));
    archived_exactly(&root.join(USER).join("INBOX"), &served);
    assert_eq!(sorted_names(&root.join(META_DIR).join(TMP_DIR)), Vec::<String>::new());
}

/// Every message of `user`'s INBOX on `d`, sorted.
fn on_server(d: &Dovecot, user: &str) -> Vec<Vec<u8>> {
    let mut got: Vec<Vec<u8>> =
        d.uids(user, PW, "INBOX").into_iter().map(|u| d.fetch_raw(user, PW, "INBOX", u)).collect();
    got.sort();
    got
}

fn upload(d: &Dovecot, user_dir: &Path) -> Output {
    let port = d.imaps_port().to_string();
    let ca = d.cert_pem_path();
    let args = ["-r", user_dir.to_str().unwrap(), "--to-imap", "-u", "dst", "-i", "127.0.0.1", "--port", &port];
    run(&[&args[..], &["--ca-file", ca.to_str().unwrap()]].concat(), &[("SMAILARCHIVER_PASSWD", PW)])
}

/// An upload of an archive while a backup writes into it (held with a message half
/// written): it sends exactly the messages committed so far, not the one in its temporary
/// file; once the backup is done, a rerun sends the rest, and each message is on the
/// server once.
#[test]
fn an_upload_beside_a_backup_sends_what_is_committed_and_a_rerun_the_rest() {
    let d = Dovecot::start();
    d.add_user("dst", PW);
    let served = mail(1..=10, 7);
    let server = FakeImap::start(USER, PW, vec![Folder::new("INBOX", 7, served.clone())], vec![Script::healthy()]);
    let tmp = TempDir::new("backup-upload");
    let root = tmp.path();
    let user_dir = root.join(USER);
    let backup = backup_held_at(&server, root, 7);
    let o = upload(&d, &user_dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 6 uploaded, 0 already there, 0 failed"), "{}", stdout(&o));
    let mut committed: Vec<Vec<u8>> = served[..6].iter().map(|(_, m)| m.clone()).collect();
    committed.sort();
    assert!(on_server(&d, "dst") == committed, "the server holds other messages than the six committed");
    server.release();
    let o = backup.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    archived_exactly(&user_dir.join("INBOX"), &served);
    let o = upload(&d, &user_dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 4 uploaded, 6 already there, 0 failed"), "{}", stdout(&o));
    let mut all: Vec<Vec<u8>> = served.iter().map(|(_, m)| m.clone()).collect();
    all.sort();
    assert!(on_server(&d, "dst") == all, "each message once");
}

/// Bytes `pid` has read so far (`rchar` of /proc/PID/io).
fn bytes_read(pid: u32) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: a signal to our own child, which has not been waited for.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill({}, {sig})", child.id());
}

/// A verify of an archive while a backup commits new messages to it: the verify has
/// listed the files and is reading the first folder (Archive, 20 MB) when the backup
/// commits new mail to INBOX and records it in INBOX's metadata; the verify is stopped
/// (SIGSTOP) for that moment, so the order is certain. It must not report the messages
/// committed during its run as missing: exit 0, nothing bad.
#[test]
fn a_verify_beside_a_backup_reports_nothing_committed_meanwhile_as_missing() {
    let archive: Vec<(u32, Vec<u8>)> = (1..=20).map(|u| (u, message(u, 1_000_000))).collect();
    let inbox: Vec<(u32, Vec<u8>)> = (1..=5).map(|u| (u, message(u, 2000))).collect();
    let folders = vec![Folder::new("Archive", 3, archive.clone()), Folder::new("INBOX", 7, inbox.clone())];
    let server = FakeImap::start(USER, PW, folders, vec![Script::healthy()]);
    let tmp = TempDir::new("backup-verify");
    let root = tmp.path();
    let o = backup_cmd(&server, root, &["--all-folders"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let archive_bytes: u64 =
        fs::read_dir(root.join(USER).join("Archive")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let new: Vec<(u32, Vec<u8>)> = (6..=15).map(|u| (u, message(u, 2000))).collect();
    for (uid, m) in &new {
        server.append("INBOX", *uid, m.clone());
    }
    // The backup asks for INBOX's new mail and waits for the answer.
    server.pause_at("BODY.PEEK[]", None);
    let mut backup = backup_cmd(&server, root, &["--all-folders"]).spawn().unwrap();
    server.wait_paused(Duration::from_secs(60));
    // At the lowest priority, so that on a busy machine the test sees it get going before it
    // is far along.
    let mut verify = Command::new("nice")
        .args(["-n", "19", bin(), "--verify", root.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 2 MB read: the files are listed and the verify is well into Archive, far from its end.
    let pid = verify.id();
    wait_for("the verify read 2 MB", &mut verify, || bytes_read(pid) >= 2 << 20);
    signal(&verify, libc::SIGSTOP);
    let read = bytes_read(pid);
    assert!(read < archive_bytes / 2, "the verify read {read} bytes before it was stopped: past Archive?");
    server.release();
    let o = {
        let mut out = Vec::new();
        let mut taken = backup.stdout.take().unwrap();
        std::io::Read::read_to_end(&mut taken, &mut out).unwrap();
        let status = backup.wait().unwrap();
        (status, String::from_utf8_lossy(&out).into_owned())
    };
    assert_eq!(o.0.code(), Some(0), "the backup: {}", o.1);
    assert!(o.1.contains("INBOX: 10 new, 5 already archived, 0 failed"), "{}", o.1);
    signal(&verify, libc::SIGCONT);
    let v = verify.wait_with_output().unwrap();
    let text = stdout(&v);
    assert!(!text.contains("missing"), "files committed during the verify reported as missing:\n{text}");
    assert_eq!(v.status.code(), Some(0), "{text}{}", stderr(&v));
    assert!(text.contains(" good, 0 bad"), "{text}");
    let all: Vec<(u32, Vec<u8>)> = inbox.iter().chain(&new).cloned().collect();
    archived_exactly(&root.join(USER).join("INBOX"), &all);
    archived_exactly(&root.join(USER).join("Archive"), &archive);
}
