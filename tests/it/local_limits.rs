//! Local input limits: key, `.sha`, CA, password and config files, the output of
//! password and token commands and standard input are read up to a cap, then refused
//! with one line naming the input and the limit, and nothing is written.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;

/// A folder of encrypted vectors (written with keys/random.key) and a copy of that key.
fn random_folder(tmp: &TempDir) -> (String, String) {
    let folder = tmp.dir("INBOX");
    for name in ["1.mbox.enc", "30.mbox.gz.enc", "99.mbox.enc"] {
        fs::copy(vectors().join("random").join(name), folder.join(name)).unwrap();
    }
    let key = tmp.join("random.key");
    fs::copy(vectors().join("keys/random.key"), &key).unwrap();
    (folder.to_string_lossy().into(), key.to_string_lossy().into())
}

/// A folder of vectors encrypted in password mode, its key file and the password.
fn pbkdf2_folder(tmp: &TempDir) -> (String, String, &'static str) {
    let folder = tmp.dir("PW");
    for name in ["1.mbox.gz.enc", "30.mbox.gz.enc"] {
        fs::copy(vectors().join("pbkdf2").join(name), folder.join(name)).unwrap();
    }
    let key = tmp.join("pw.key");
    fs::copy(vectors().join("keys/pbkdf2.key"), &key).unwrap();
    fs::copy(vectors().join("keys/pbkdf2.key.sha"), tmp.join("pw.key.sha")).unwrap();
    (folder.to_string_lossy().into(), key.to_string_lossy().into(), "correct horse battery staple")
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    v.sort();
    v
}

/// Runs the binary like `run`, but kills it and fails if it is still running after a
/// generous deadline: an endless input must end the run, not hang it.
fn run_within(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("SMAILARCHIVER_KEY_PASSWORD")
        .env_remove("SMAILARCHIVER_PASSWD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("run smailarchiver");
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(o) => o.expect("wait for smailarchiver"),
        Err(_) => {
            // SAFETY: signalling our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{args:?} still running after 120 s: it hangs on endless input");
        }
    }
}

#[test]
fn key_file_and_sha_file_from_dev_zero() {
    let tmp = TempDir::new("lim-keys");
    let (folder, key) = random_folder(&tmp);
    let mbox = tmp.join("INBOX.mbox");
    let before = names(tmp.path());
    for mode in ["-r", "--verify"] {
        let o = run(&[mode, &folder, "-k", "/dev/zero"], &[]);
        assert_one_line_error(&o, 1, "error: key file /dev/zero: larger than 4096 bytes, not a key file");
        assert_eq!(names(tmp.path()), before, "{mode} wrote something");
    }
    // A .sha beside a good key file that never ends.
    let (pw_folder, pw_key, password) = pbkdf2_folder(&tmp);
    fs::remove_file(tmp.join("pw.key.sha")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", tmp.join("pw.key.sha")).unwrap();
    let before = names(tmp.path());
    for mode in ["-r", "--verify"] {
        let o = run(&[mode, &pw_folder, "-k", &pw_key, "-P"], &[("SMAILARCHIVER_KEY_PASSWORD", password)]);
        assert_one_line_error(&o, 1, "pw.key.sha: larger than 1024 bytes, not a password check file");
        assert_eq!(names(tmp.path()), before, "{mode} wrote something");
    }
    // The good key works.
    let o = run(&["--verify", &folder, "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["-r", &folder, "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(mbox.exists());
}

/// Runs in a fresh test process (started by the test below), so that the peak RSS the
/// kernel reports for the spawned binary is not the whole test harness's: a child
/// spawned with vfork inherits its parent's peak in `ru_maxrss`.
#[test]
#[ignore = "started in a child process by key_password_from_endless_stdin_stops_at_the_cap_in_bounded_memory"]
fn child_endless_stdin() {
    let tmp = TempDir::new("lim-stdin");
    let (folder, key, _) = pbkdf2_folder(&tmp);
    let before = names(tmp.path());
    for mode in ["-r", "--verify"] {
        let mut child = Command::new(bin())
            .args([mode, &folder, "-k", &key, "-P"])
            .env_remove("SMAILARCHIVER_KEY_PASSWORD")
            .stdin(Stdio::from(fs::File::open("/dev/zero").unwrap()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err_pipe = child.stderr.take().unwrap();
        let (code, peak_kib) = wait_with_peak(child);
        let err = std::io::read_to_string(err_pipe).unwrap();
        println!("{mode} with /dev/zero on stdin: exit {code}, peak {peak_kib} KiB");
        assert_eq!(code, 1, "{err}");
        assert_eq!(
            err,
            "smailarchiver: error: key password from standard input: a line longer than 65536 bytes, not a key password\n"
        );
        assert!(peak_kib < 16 * 1024, "peak RSS {peak_kib} KiB");
        assert_eq!(names(tmp.path()), before, "{mode} wrote something");
    }
}

#[test]
fn key_password_from_endless_stdin_stops_at_the_cap_in_bounded_memory() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "local_limits::child_endless_stdin", "--include-ignored", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches("exit 1, peak").count(), 2, "{text}");
    print!("{text}");
}

#[test]
fn key_password_file_and_command_that_never_end() {
    let tmp = TempDir::new("lim-keypw");
    let (folder, key, _) = pbkdf2_folder(&tmp);
    let before = names(tmp.path());
    for mode in ["-r", "--verify"] {
        let o = run_within(&[mode, &folder, "-k", &key, "--key-password-file", "/dev/zero"], &[]);
        assert_one_line_error(&o, 1, "key password file /dev/zero: a line longer than 65536 bytes, not a key password");
        let o = run_within(&[mode, &folder, "-k", &key, "--key-password-command", "yes"], &[]);
        assert_one_line_error(&o, 1, "the key password command printed more than 65536 bytes, not a key password");
        assert_eq!(names(tmp.path()), before, "{mode} wrote something");
    }
}

/// A backup command line that fails before connecting: nothing listens on port 1.
fn backup_args<'a>(root: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-u", "ann", "-i", "127.0.0.1", "--port", "1", "--dir", root, "--timeout", "5"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn ca_file_from_dev_zero() {
    let tmp = TempDir::new("lim-ca");
    let root = tmp.join("archive");
    let new_key = tmp.join("new.keys");
    let o = run(
        &backup_args(root.to_str().unwrap(), &["--ca-file", "/dev/zero", "-e", "-k", new_key.to_str().unwrap()]),
        &[("SMAILARCHIVER_PASSWD", "pw")],
    );
    assert_one_line_error(
        &o,
        1,
        "error: ann@127.0.0.1: --ca-file /dev/zero: larger than 1048576 bytes, not a PEM certificate file",
    );
    assert!(names(tmp.path()).is_empty(), "nothing written: {:?}", names(tmp.path()));
}

#[test]
fn password_and_token_commands_that_never_end() {
    let tmp = TempDir::new("lim-cmd");
    let root = tmp.join("archive");
    for (flag, what) in [("--passwd-command", "email password"), ("--oauth2-token-command", "OAuth2 token")] {
        let o = run_within(&backup_args(root.to_str().unwrap(), &[flag, "yes"]), &[]);
        assert_one_line_error(
            &o,
            1,
            &format!(
                "error: ann@127.0.0.1: the {what} command printed more than 65536 bytes, not an {what}; stopped it"
            ),
        );
        // Passwords are asked for before anything is created.
        assert!(!root.exists(), "{flag}: {:?}", names(&root));
    }
}

#[test]
fn config_file_limits() {
    let tmp = TempDir::new("lim-config");
    let root = tmp.join("archive");
    let one = r#"{"user": "u", "imap": "127.0.0.1", "port": 1, "passwd": "p", "folder": "INBOX", "encrypt": 0, "compress": 0}"#;
    // Written piece by piece: the test process stays small, as a run under test beside it
    // is measured for memory.
    let big = tmp.join("big.json");
    let mut w = BufWriter::new(fs::File::create(&big).unwrap());
    write!(w, r#"{{"list": [{one}], "padding": ""#).unwrap();
    for _ in 0..5 * 1024 {
        w.write_all(&[b'x'; 1024]).unwrap();
    }
    w.write_all(b"\"}").unwrap();
    w.into_inner().unwrap().sync_all().unwrap();
    let many = tmp.join("many.json");
    let mut w = BufWriter::new(fs::File::create(&many).unwrap());
    write!(w, r#"{{"list": [{one}"#).unwrap();
    for _ in 1..10_001 {
        write!(w, ",{one}").unwrap();
    }
    w.write_all(b"]}").unwrap();
    w.into_inner().unwrap().sync_all().unwrap();
    let buffer = tmp.join("buffer.json");
    fs::write(
        &buffer,
        format!(r#"{{"list": [{}]}}"#, one.replace("\"compress\": 0", "\"compress\": 0, \"buffer_size\": 0")),
    )
    .unwrap();
    let cases = [
        (&big, format!("config {}: larger than 4194304 bytes, not a configuration file", big.display())),
        (&many, format!("config {}: \"list\" holds 10001 accounts, more than the limit of 10000", many.display())),
        (&buffer, "\"buffer_size\" must be a number from 65536 to 67108864".to_string()),
    ];
    for (path, needle) in cases {
        let o = run(&["-c", path.to_str().unwrap(), "--dir", root.to_str().unwrap()], &[]);
        assert_one_line_error(&o, 2, &needle);
        assert!(!root.exists(), "{} created the archive root", path.display());
    }
}

#[test]
fn buffer_size_range() {
    let tmp = TempDir::new("lim-buffer");
    let root = tmp.join("archive");
    let r = root.to_str().unwrap();
    for size in ["0", "63K", "65535", "67108865", "65M", "18446744073709551615", "18446744073709551617", "99999999999M"]
    {
        let o = run(&backup_args(r, &["--buffer-size", size]), &[("SMAILARCHIVER_PASSWD", "pw")]);
        assert_one_line_error(
            &o,
            2,
            &format!("error: --buffer-size: {size} is not from 64K to 64M (65536 to 67108864 bytes)"),
        );
        assert!(!root.exists(), "--buffer-size {size} created the archive root");
    }
    // The bounds themselves pass the check: the run goes on to connect (and fails there).
    for size in ["64K", "64M", "67108864"] {
        let o = run(&backup_args(r, &["--buffer-size", size]), &[("SMAILARCHIVER_PASSWD", "pw")]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{size}: {err}");
        assert!(!err.contains("buffer"), "{size}: {err}");
        assert!(err.contains("127.0.0.1"), "{size}: {err}");
    }
}
