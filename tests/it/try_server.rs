//! `tests/try-server` (README, "Try it"): it starts a Dovecot with the sample mailbox,
//! the command it prints backs every folder up as printed, and `stop` stops the server.
//! Needs root and Dovecot (`.ci/install-test-deps`), as the other server tests.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

fn script(args: &[&str]) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/try-server"))
        .args(args)
        .env("SMAILARCHIVER", bin())
        .output()
        .expect("run tests/try-server")
}

/// Stops the server, also when the test fails half-way: it would outlive the test.
struct Stop(PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        if self.0.join("server").exists() {
            let _ = script(&["stop", &self.0.to_string_lossy()]);
        }
    }
}

/// The command printed after `intro`: the first indented line that follows.
fn printed_command<'a>(out: &'a str, intro: &str) -> &'a str {
    let rest = &out[out.find(intro).unwrap_or_else(|| panic!("no {intro:?} in:\n{out}"))..];
    rest.lines().find_map(|l| l.strip_prefix("    ")).unwrap_or_else(|| panic!("no command after {intro:?}:\n{out}"))
}

/// Every archive file under `dir`.
fn archive_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(archive_files(&path));
        } else if path.file_name().unwrap().to_string_lossy().ends_with(".mbox.gz.enc") {
            found.push(path);
        }
    }
    found
}

#[test]
fn try_server_starts_and_its_command_backs_up_every_folder() {
    let tmp = TempDir::new("try-server");
    let dir = tmp.join("try");
    let dir_arg = dir.to_string_lossy().into_owned();
    let _stop = Stop(dir.clone());
    let o = script(&["start", &dir_arg]);
    let out = stdout(&o);
    assert!(o.status.success(), "tests/try-server start: {out}{}", stderr(&o));
    let port: u16 = out
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in:\n{out}"));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "nothing listens on {port}");

    let again = script(&["start", &dir_arg]);
    assert!(!again.status.success(), "a second start must refuse");
    assert!(stderr(&again).contains("already runs"), "{}", stderr(&again));

    // The command exactly as printed, in a shell, as a user would paste it.
    let backup = printed_command(&out, "Back it up");
    assert!(backup.contains(bin()), "the command runs the binary asked for: {backup}");
    let o = Command::new("sh").arg("-c").arg(backup).env_remove("SMAILARCHIVER_PASSWD").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{backup}:\n{}{}", stdout(&o), stderr(&o));
    let report = stdout(&o);
    for folder in ["INBOX", "Sent", "Drafts", "Archive/2019", "Lists/rust", "Reçus", "Входящие", "日本語", "ארכיון"]
    {
        assert!(report.contains(&format!("demo {folder}: ")), "{folder} not backed up:\n{report}");
    }
    assert_eq!(archive_files(&dir.join("archive")).len(), 41, "every sample message archived:\n{report}");

    // The commands printed next work too: the listing shows the flags kept.
    let list = printed_command(&out, "Then look");
    let o = Command::new("sh").arg("-c").arg(list).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{list}:\n{}", stderr(&o));
    for flag in ["\\Flagged", "\\Answered", "\\Draft", "$Important"] {
        assert!(stdout(&o).contains(flag), "{flag} not kept:\n{}", stdout(&o));
    }

    let o = script(&["stop", &dir_arg]);
    assert!(o.status.success(), "stop: {}{}", stdout(&o), stderr(&o));
    assert!(!dir.join("server").exists(), "the server's state is removed");
    assert!(dir.join("archive").is_dir(), "the archive stays");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "the server still listens on {port}");
}
