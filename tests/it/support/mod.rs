//! Helpers shared by the integration tests: running the binary, temporary directories,
//! the compatibility vectors; in submodules the scripted IMAP server (`fake_imap`), the
//! scripted Gmail (`fake_gmail`), a mock OAuth2 provider (`mock_oauth`), the TCP proxy for
//! failing links (`proxy`) and the real servers (`dovecot`, `cyrus`,
//! `courier`, behind one interface in `servers`), and builders of test messages (`mail`).

pub mod courier;
pub mod cyrus;
pub mod dovecot;
pub mod fake_gmail;
pub mod fake_imap;
pub mod mail;
pub mod mock_oauth;
pub mod proxy;
pub mod pty;
pub mod servers;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smailarchiver")
}

/// The vectors written by the original program (tests/fixtures/vectors).
pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vectors")
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "smailarchiver-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }

    /// A new subdirectory.
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.join(name);
        fs::create_dir(&p).expect("create subdirectory");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The names in `dir`, sorted (none when it does not exist).
pub fn sorted_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Runs the binary with `args` and extra environment, standard input closed.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null()).env_remove("SMAILARCHIVER_KEY_PASSWORD").env_remove("SMAILARCHIVER_PASSWD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run smailarchiver")
}

/// Runs a backup of `user` from the Dovecot `d` into `root`: the server's arguments
/// (`Dovecot::client_args`), then `extra`; the password `pw` from the environment, as
/// cron passes it, and `env` besides.
pub fn backup(d: &dovecot::Dovecot, user: &str, pw: &str, root: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = d.client_args(user, root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("SMAILARCHIVER_PASSWD", pw));
    run(&args, &env)
}

/// [`backup`], which must exit 0.
#[track_caller]
pub fn backup_ok(
    d: &dovecot::Dovecot,
    user: &str,
    pw: &str,
    root: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let o = backup(d, user, pw, root, extra, env);
    assert_eq!(o.status.code(), Some(0), "backup {extra:?}: {}{}", stdout(&o), stderr(&o));
    o
}

/// Runs `cmd` (the binary, with its arguments) with `input` piped to its standard input
/// and no password in the environment.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .env_remove("SMAILARCHIVER_KEY_PASSWORD")
        .env_remove("SMAILARCHIVER_PASSWD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run smailarchiver");
    let mut stdin = child.stdin.take().expect("a pipe to its standard input");
    std::io::Write::write_all(&mut stdin, input).expect("writing its standard input");
    drop(stdin);
    child.wait_with_output().expect("run smailarchiver")
}

/// Asserts the run failed with `code` and one line `smailarchiver: error: ...` holding `needle`.
#[track_caller]
pub fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(err.starts_with("smailarchiver: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

/// Waits for a child and returns its exit code and peak RSS in KiB (from wait4's rusage).
pub fn wait_with_peak(child: std::process::Child) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our own child, not waited for yet; wait4 writes status and usage
    // through pointers to live values.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64)
}

/// `program` to be run under GNU time, which forks it from its own small address space:
/// the peak RSS it writes to `peak_file` is the program's own (a child spawned straight
/// from a test with vfork inherits the test's peak in `ru_maxrss`, and a test that serves
/// hundreds of MiB would measure itself). See [`wait_measured`].
pub fn measured(program: impl AsRef<std::ffi::OsStr>, peak_file: &Path) -> Command {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["--quiet", "-f", "%M", "-o"]).arg(peak_file).arg(program);
    cmd
}

/// Waits for a child started from [`measured`]: its exit code and peak RSS in KiB.
pub fn wait_measured(mut child: std::process::Child, peak_file: &Path) -> (i32, u64) {
    let status = child.wait().expect("wait for GNU time");
    let text = std::fs::read_to_string(peak_file).expect("GNU time's output file");
    let peak = text.trim().lines().last().and_then(|l| l.trim().parse().ok());
    (status.code().unwrap_or(-1), peak.unwrap_or_else(|| panic!("no peak RSS in GNU time's output: {text:?}")))
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits an mboxrd file into its messages (separator lines removed, quoting undone,
/// the blank line after each message removed), the way a mail reader would.
pub fn parse_mboxrd(data: &[u8]) -> Vec<Vec<u8>> {
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            msgs.push(Vec::new());
            continue;
        }
        let cur = msgs.last_mut().expect("mbox must start with a From line");
        let gts = line.iter().take_while(|&&b| b == b'>').count();
        if gts > 0 && line[gts..].starts_with(b"From ") {
            cur.extend_from_slice(&line[1..]);
        } else {
            cur.extend_from_slice(line);
        }
    }
    for m in &mut msgs {
        assert!(m.ends_with(b"\n\n") || m == b"\n", "message must end with a blank line");
        m.pop();
    }
    msgs
}

/// The message inside a stored file's plaintext: everything after the first line.
pub fn strip_first_line(stored: &[u8]) -> &[u8] {
    let nl = stored.iter().position(|&b| b == b'\n').expect("stored From line");
    &stored[nl + 1..]
}

/// A message as an mbox holds it: mbox cannot mark a message that lacks a final line
/// break, so restore adds one.
pub fn as_in_mbox(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    if !m.is_empty() && !m.ends_with(b"\n") {
        m.push(b'\n');
    }
    m
}

/// Asserts two byte strings are equal without dumping megabytes on failure.
#[track_caller]
pub fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let at = actual.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(actual.len().min(expected.len()));
        panic!(
            "{what}: differ at byte {at} (lengths {} and {}); around there: {:?} vs {:?}",
            actual.len(),
            expected.len(),
            String::from_utf8_lossy(&actual[at.saturating_sub(20)..(at + 20).min(actual.len())]),
            String::from_utf8_lossy(&expected[at.saturating_sub(20)..(at + 20).min(expected.len())]),
        );
    }
}

/// Runs `python3 tests/tools/original.py ARGS`, the original program's own code; fails the
/// test (never skips) when the oracle cannot run, saying how to install what it needs.
pub fn original_py(args: &[&str]) -> Output {
    const INSTALL: &str = "install python3 and pycryptodome (bash .ci/install-test-deps)";
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/original.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        // Arguments (non-ASCII passwords) and text files as UTF-8 whatever the locale.
        .env("PYTHONUTF8", "1")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {INSTALL}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(3) => panic!("{stderr}{INSTALL}"),
        Some(2) => panic!("original.py usage error: {stderr}"),
        _ => out,
    }
}

/// The From-line the original program stores in front of `raw` (FORMAT.md, "Stored
/// message"), `From ` and `\n` included: the first piece of the message's first 16384
/// bytes split on LF whose lowercase form starts with `from:`, stripped as Python's
/// `bytes.strip()` strips, `from:` dropped, stripped again; `unknown@unknown` (what the
/// original did under Python 2) when no piece matches, a From header after 16 KiB too.
pub fn originals_from_line(raw: &[u8]) -> Vec<u8> {
    fn strip(mut s: &[u8]) -> &[u8] {
        // Python's bytes whitespace, which has \x0b where u8::is_ascii_whitespace has not.
        let ws = |b: &u8| b" \t\n\r\x0b\x0c".contains(b);
        while s.first().is_some_and(ws) {
            s = &s[1..];
        }
        while s.last().is_some_and(ws) {
            s = &s[..s.len() - 1];
        }
        s
    }
    let head = &raw[..raw.len().min(16384)];
    let sender = head
        .split(|&b| b == b'\n')
        .find(|piece| piece.len() >= 5 && piece[..5].eq_ignore_ascii_case(b"from:"))
        .map_or(&b"unknown@unknown"[..], |piece| strip(&strip(piece)[5..]));
    [b"From ", sender, b"\n"].concat()
}

/// Decodes every archive file of the folder directory `dir` with the original program's
/// own code (`original.py decode`; `keys` and `password` as its `-k` and `-P` answer) and
/// checks each against `want` (UID -> the message as the server serves it): the decoded
/// bytes must be exactly the original's From-line for that message, then the message.
/// Every UID of `want` must have exactly one file, and no other file may be there.
#[track_caller]
pub fn assert_original_decodes(dir: &Path, keys: Option<&Path>, password: Option<&str>, want: &BTreeMap<u32, Vec<u8>>) {
    let mut files: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let uid = name.split_once(".mbox").and_then(|(u, _)| u.parse().ok());
            (uid.unwrap_or_else(|| panic!("not an archive file: {}", p.display())), p)
        })
        .collect();
    files.sort();
    let uids: Vec<u32> = files.iter().map(|(u, _)| *u).collect();
    let wanted: Vec<u32> = want.keys().copied().collect();
    assert_eq!(uids, wanted, "archive files of {} (one per message)", dir.display());
    if files.is_empty() {
        return;
    }
    let out = TempDir::new("original-decode");
    let paths: Vec<String> = files.iter().map(|(_, p)| p.to_string_lossy().into_owned()).collect();
    let mut args: Vec<&str> = vec!["decode"];
    args.extend(paths.iter().map(String::as_str));
    if let Some(k) = keys {
        args.extend(["--keys", k.to_str().unwrap()]);
    }
    if let Some(pw) = password {
        args.extend(["--password", pw]);
    }
    args.extend(["--out-dir", out.path().to_str().unwrap()]);
    let o = original_py(&args);
    assert!(o.status.success(), "the original cannot decode {}: {}", dir.display(), String::from_utf8_lossy(&o.stderr));
    for (uid, path) in &files {
        let stored = fs::read(out.join(path.file_name().unwrap())).unwrap();
        let raw = &want[uid];
        let from_line = originals_from_line(raw);
        let nl = stored.iter().position(|&b| b == b'\n').unwrap_or(stored.len());
        assert_eq!(
            String::from_utf8_lossy(&stored[..(nl + 1).min(stored.len())]),
            String::from_utf8_lossy(&from_line),
            "the stored From-line of {}",
            path.display()
        );
        assert_same(&stored[from_line.len()..], raw, &format!("{} decoded by the original", path.display()));
    }
}

/// Runs the original program's own `restore_folder` loop on `dir`; returns how many
/// messages it restored.
#[track_caller]
pub fn original_restore_loop(dir: &Path, keys: &Path, out: &Path) -> usize {
    let o = original_py(&[
        "restore",
        dir.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let listing = original_py(&["listing", dir.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the original's restore of {} failed: {}\nits listing: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&listing.stdout)
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("unexpected output: {text}"))
}

/// The records of an archive root as they stand, in one document:
/// `{"accounts": [...], "folders": [...]}`, from the log `.smailarchiver/records.jsonl`
/// (one JSON record a line, a later line about a directory replacing the earlier one). An
/// account's first server is also given as `"server"`.
pub fn records(root: &Path) -> serde_json::Value {
    let text = fs::read_to_string(root.join(".smailarchiver/records.jsonl")).expect("records file");
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("a header")).expect("records are JSON");
    assert_eq!(header["smailarchiver-records"], 2, "{header}");
    let (mut accounts, mut folders): (Vec<serde_json::Value>, Vec<serde_json::Value>) = (Vec::new(), Vec::new());
    for line in lines {
        let mut r: serde_json::Value = serde_json::from_str(line).expect("records are JSON");
        let list = if r["kind"] == "account" {
            r["server"] = r["servers"][0].clone();
            &mut accounts
        } else {
            &mut folders
        };
        match list.iter_mut().find(|x| x["dir"] == r["dir"] && x["account"] == r["account"]) {
            Some(x) => *x = r,
            None => list.push(r),
        }
    }
    serde_json::json!({"accounts": accounts, "folders": folders})
}
