//! SIGINT and SIGTERM in the middle of a run: the run ends with one line and exit code
//! 130 or 143, leaves no temporary file, keeps what it finished (and says so in its
//! `--report`), and the next run fetches only what is missing. The backups block in a
//! network read of a server that stopped answering, the hardest place to stop from.
//! Restores stopped half way leave no half-written output.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_imap::{FakeImap, Fault, Folder, Script};
use crate::support::*;
use serde_json::Value;
use smailarchiver::archive::layout::{META_DIR, TMP_DIR};

const USER: &str = "alice";
const PW: &str = "s3cret pass";

/// 20 messages of 10 kB: with a 64 KiB budget, batches of 6, 6, 6 and 2.
fn served() -> Vec<(u32, Vec<u8>)> {
    (1..=20)
        .map(|uid| {
            let mut m = format!("Subject: message {uid}\r\n\r\n").into_bytes();
            m.resize(10_000, b'a' + (uid % 26) as u8);
            m.extend_from_slice(b"\r\n");
            (uid, m)
        })
        .collect()
}

/// The first `stalling` connections answer the first body fetch, then nothing more.
fn server(folders: Vec<Folder>, stalling: usize) -> FakeImap {
    let stall = Script::healthy().at("BODY.PEEK", 2, Fault::Stall);
    let mut scripts = vec![stall; stalling];
    scripts.push(Script::healthy());
    FakeImap::start(USER, PW, folders, scripts)
}

fn args(server: &FakeImap, root: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["-u", USER, "-i", "127.0.0.1", "--port"].iter().map(|s| s.to_string()).collect();
    a.push(server.port().to_string());
    a.extend(["--ca-file".into(), server.ca_file(), "--dir".into(), root.display().to_string()]);
    a.extend(["--buffer-size", "64K", "--timeout", "120"].iter().map(|s| s.to_string()));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn spawn(args: &[String], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start smailarchiver")
}

/// Archive files (`UID.mbox...`) in `dir`.
fn files_in(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file())).count())
}

/// Waits until `ready` holds, while the child runs; a child that ended first fails the test.
fn wait_until(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let limit = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what}");
        }
        if Instant::now() > limit {
            signal(child, libc::SIGTERM);
            panic!("never saw {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill() on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// The run's one line (asserted to be the only thing on stderr).
#[track_caller]
fn one_line(o: &Output, code: i32, signal: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with(&format!("smailarchiver: interrupted by {signal}: ")), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "no progress debris: {err:?}");
    err
}

#[track_caller]
fn no_temporary_files(root: &Path) {
    let tmp = root.join(META_DIR).join(TMP_DIR);
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "temporary files left in {}: {left:?}", tmp.display());
}

/// The UIDs a `UID FETCH` command names (`1:6`, `7,9`).
fn fetched_uids(command: &str) -> Vec<u32> {
    let set = command.split_whitespace().nth(2).unwrap_or("");
    let mut uids = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => uids.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => uids.extend(part.parse::<u32>()),
        }
    }
    uids
}

/// Interrupts a backup blocked in a read after its first batch, then reruns it.
fn interrupt_then_rerun(sig: i32, name: &str) {
    let served = served();
    let server = server(vec![Folder::new("INBOX", 7, served.clone())], 1);
    let root = TempDir::new("interrupt");
    let report = root.join("report.json");
    let inbox = root.join(USER).join("INBOX");
    let mut child =
        spawn(&args(&server, root.path(), &["--report", report.to_str().unwrap()]), &[("SMAILARCHIVER_PASSWD", PW)]);
    wait_until(&mut child, "the first batch archived", || files_in(&inbox) == 6);
    signal(&child, sig);
    let o = child.wait_with_output().unwrap();
    let line = one_line(&o, 128 + sig, name);
    assert!(line.contains("6 messages") && line.contains("run it again"), "{line}");
    no_temporary_files(root.path());
    assert_eq!(files_in(&inbox), 6);

    let r: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["exit"], 128 + sig);
    let folder = &r["accounts"][0]["folders"][0];
    assert_eq!(folder["name"], "INBOX");
    assert_eq!((folder["new"].as_u64(), folder["archived"].as_u64()), (Some(6), Some(6)));
    assert!(folder["errors"].as_array().unwrap().iter().any(|e| e == "interrupted"), "{r}");

    let before = server.connections();
    let o = run(
        &args(&server, root.path(), &[]).iter().map(String::as_str).collect::<Vec<_>>(),
        &[("SMAILARCHIVER_PASSWD", PW)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(files_in(&inbox), 20);
    let asked: Vec<u32> = server.commands()[before..]
        .iter()
        .flatten()
        // Message bodies (the mailstore's evidence, a few headers, is not mail).
        .filter(|c| c.contains("BODY.PEEK[]"))
        .flat_map(|c| fetched_uids(c))
        .collect();
    assert_eq!(asked, (7..=20).collect::<Vec<_>>(), "the rerun fetches only what is missing");
}

#[test]
fn sigint_mid_backup_then_rerun() {
    interrupt_then_rerun(libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_mid_backup_then_rerun() {
    interrupt_then_rerun(libc::SIGTERM, "SIGTERM");
}

/// Two connections, each blocked in its own folder: both stop, both folders keep their
/// first batch.
#[test]
fn sigint_with_two_connections() {
    let served = served();
    let folders = vec![Folder::new("INBOX", 7, served.clone()), Folder::new("Sent", 8, served.clone())];
    let server = server(folders, 2);
    let root = TempDir::new("interrupt-two");
    let dirs = [root.join(USER).join("INBOX"), root.join(USER).join("Sent")];
    let mut child =
        spawn(&args(&server, root.path(), &["--all-folders", "--connections", "2"]), &[("SMAILARCHIVER_PASSWD", PW)]);

    wait_until(&mut child, "a batch archived in each folder", || dirs.iter().all(|d| files_in(d) == 6));
    signal(&child, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    let line = one_line(&o, 130, "SIGINT");
    assert!(line.contains("12 messages"), "{line}");
    no_temporary_files(root.path());
    let o = run(
        &args(&server, root.path(), &["--all-folders"]).iter().map(String::as_str).collect::<Vec<_>>(),
        &[("SMAILARCHIVER_PASSWD", PW)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dirs.iter().all(|d| files_in(d) == 20));
}

/// A folder directory of 300 stored messages of 200 kB: enough that a restore is still
/// writing when it is frozen.
fn big_folder(root: &TempDir) -> std::path::PathBuf {
    let folder = root.dir("INBOX");
    for uid in 1..=300u32 {
        // As the archive stores it: the original's From line, then the message.
        let mut m = format!("From a@example.org\nFrom: a@example.org\r\nSubject: {uid}\r\n\r\n").into_bytes();
        m.resize(200_000, b'x');
        m.extend_from_slice(b"\r\n");
        fs::write(folder.join(format!("{uid}.mbox")), m).unwrap();
    }
    folder
}

/// Whether `dir` holds a temporary file.
fn has_temporary(dir: &Path) -> bool {
    fs::read_dir(dir)
        .is_ok_and(|mut d| d.any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".smailarchiver-tmp-")))
}

/// Interrupts a run of `args` once `under_way` holds (frozen meanwhile with SIGSTOP, so
/// the signal surely comes before the end, unless it ended or `done` holds already); its
/// one line.
fn interrupt_midway(args: &[String], under_way: impl Fn(u32) -> bool, done: impl Fn() -> bool) -> String {
    let mut child = spawn(args, &[]);
    let pid = child.id();
    wait_until(&mut child, "the run under way", || under_way(pid));
    signal(&child, libc::SIGSTOP);
    let ended = child.try_wait().unwrap().is_some() || done();
    assert!(!ended, "the run ended before it could be interrupted: make the folder bigger");
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGCONT);
    one_line(&child.wait_with_output().unwrap(), 130, "SIGINT")
}

/// A restore to an mbox file stopped half way leaves no output file (nor its temporary
/// file).
#[test]
fn sigint_mid_restore_to_mbox() {
    let root = TempDir::new("interrupt-restore");
    let folder = big_folder(&root);
    let out = root.join("out.mbox");
    let args = ["-r".into(), folder.display().to_string(), "-o".into(), out.display().to_string()];
    let line = interrupt_midway(&args, |_| has_temporary(root.path()), || out.exists());
    assert!(line.contains("removed") && line.contains("run the restore again"), "{line}");
    assert!(!out.exists(), "no output presented as complete");
    assert!(!has_temporary(root.path()), "temporary file left");
}

/// A Maildir restore stopped half way holds whole messages only, and nothing in its tmp/.
#[test]
fn sigint_mid_restore_to_maildir() {
    let root = TempDir::new("interrupt-restore-md");
    let folder = big_folder(&root);
    let out = root.join("md");
    let args = ["-r".into(), folder.display().to_string(), "--to-maildir".into(), out.display().to_string()];
    let line = interrupt_midway(&args, |_| has_temporary(&out.join("tmp")), || files_in(&out.join("cur")) == 300);
    assert!(line.contains("only part of the messages") && line.contains("run the restore again"), "{line}");
    assert_eq!(fs::read_dir(out.join("tmp")).unwrap().count(), 0, "tmp/ is empty");
    for entry in fs::read_dir(out.join("cur")).unwrap() {
        let path = entry.unwrap().path();
        let uid = path.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().to_string();
        let stored = fs::read(folder.join(format!("{uid}.mbox"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), stored["From a@example.org\n".len()..], "{} is whole", path.display());
    }
}

/// Verify stopped half way: the one line, exit 130.
#[test]
fn sigint_mid_verify() {
    let root = TempDir::new("interrupt-verify");
    let folder = big_folder(&root);
    let args = ["--verify".into(), folder.display().to_string()];
    // Under way: some megabytes read.
    let read = |pid: u32| {
        let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|n| n.trim().parse::<u64>().ok())
    };
    let line = interrupt_midway(&args, |pid| read(pid).is_some_and(|n| n > 4_000_000), || false);
    assert!(line.contains("verification stopped") && line.contains("run it again"), "{line}");
}

/// A run that cannot wind down by itself (here: waiting for a password command that
/// never ends) is ended for it a second after the signal, with the same line and its
/// report.
#[test]
fn sigterm_while_waiting_for_a_password_command() {
    let server = server(vec![Folder::new("INBOX", 7, served())], 0);
    let root = TempDir::new("interrupt-forced");
    let report = root.join("report.json");
    let pid_file = root.join("command.pid");
    // Its output goes elsewhere, so that the pipes of the run close when the run ends.
    let command = format!("echo $$ > {}; exec sleep 600 >/dev/null 2>&1 </dev/null", pid_file.display());
    let mut child =
        spawn(&args(&server, root.path(), &["--passwd-command", &command, "--report", report.to_str().unwrap()]), &[]);
    wait_until(&mut child, "the password command", || fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n')));
    signal(&child, libc::SIGTERM);
    // Without the forced end the run would wait for the command: ten minutes.
    let limit = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let command_pid: libc::pid_t = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // SAFETY: kill() of the command's process, which the test started through the run.
    unsafe { libc::kill(command_pid, libc::SIGKILL) };
    let o = child.wait_with_output().unwrap();
    let line = one_line(&o, 143, "SIGTERM");
    assert!(line.contains("0 messages"), "{line}");
    let r: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["exit"], 143);
    assert_eq!(r["accounts"][0]["error"], "not backed up: the run was interrupted", "{r}");
    assert_eq!(server.connections(), 0);
}

/// Ctrl-C on a terminal (through a pseudo-terminal made by util-linux's `script`): the
/// progress line is cleared before the one line, which stands alone on its row.
#[test]
fn ctrl_c_on_a_terminal_clears_the_progress_line() {
    use std::io::{Read, Write};
    let server = server(vec![Folder::new("INBOX", 7, served())], 1);
    let root = TempDir::new("interrupt-tty");
    let inbox = root.join(USER).join("INBOX");
    let quoted: Vec<String> =
        std::iter::once(bin().to_string()).chain(args(&server, root.path(), &[])).map(|a| format!("'{a}'")).collect();
    let command = format!("SMAILARCHIVER_PASSWD='{PW}' exec {}", quoted.join(" "));
    let mut script = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's script (apt-get install bsdutils)");
    wait_until(&mut script, "the first batch archived", || files_in(&inbox) == 6);
    // What the terminal's line discipline turns into SIGINT for the foreground job.
    script.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let mut shown = Vec::new();
    script.stdout.take().unwrap().read_to_end(&mut shown).unwrap();
    let status = script.wait().unwrap();
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert_eq!(status.code(), Some(130), "{shown:?}");
    assert!(shown.contains("alice INBOX: "), "a progress line was drawn: {shown:?}");
    let line = shown.find("smailarchiver: interrupted by SIGINT: ").unwrap_or_else(|| panic!("{shown:?}"));
    assert!(shown[..line].ends_with("\r\x1b[K"), "the progress line is cleared first: {shown:?}");
    assert_eq!(shown[line..].trim_end().lines().count(), 1, "{shown:?}");
    assert!(!shown[line..].contains('\x1b'), "{shown:?}");
    no_temporary_files(root.path());
}
