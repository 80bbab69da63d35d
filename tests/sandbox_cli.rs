//! The sandbox as users meet it: a symlink planted in the archive cannot lead a backup or
//! a restore outside; a symlinked archive root still works; `--sandbox-check` proves the
//! confinement; `--sandbox off` really is off.

mod common;
mod util;

use std::fs;
use std::os::unix::fs::symlink;

use common::dovecot::Dovecot;
use util::*;

const PW: &str = "sandbox pw";

fn backup(d: &Dovecot, root: &str, extra: &[&str]) -> std::process::Output {
    let port = d.imaps_port().to_string();
    let ca = d.cert_pem_path();
    let args = ["-u", "sam", "-i", "127.0.0.1", "--port", &port, "--ca-file", ca.to_str().unwrap(), "--dir", root];
    run(&[&args[..], extra].concat(), &[("SMAILARCHIVER_PASSWD", PW)])
}

#[test]
fn a_symlink_in_the_archive_cannot_lead_a_backup_outside() {
    let d = Dovecot::start();
    d.add_user("sam", PW);
    d.append("sam", PW, "INBOX", b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n");
    let tmp = TempDir::new("sbx-link");
    let outside = tmp.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let root = tmp.join("archive");
    fs::create_dir_all(root.join("sam")).unwrap();
    symlink(&outside, root.join("sam/INBOX")).unwrap();
    let o = backup(&d, root.to_str().unwrap(), &["--sandbox", "require"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("sam@127.0.0.1 INBOX") && err.contains("Permission denied"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "something was written outside the archive");
    // Without the sandbox the same planted link is followed: the sandbox is what stops it.
    let o = backup(&d, root.to_str().unwrap(), &["--sandbox", "off"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(fs::read_dir(&outside).unwrap().count() > 0);
}

#[test]
fn a_symlinked_archive_root_works() {
    let d = Dovecot::start();
    d.add_user("sam", PW);
    d.append("sam", PW, "INBOX", b"From: a@b\r\nSubject: y\r\n\r\nbody\r\n");
    let tmp = TempDir::new("sbx-root");
    fs::create_dir_all(tmp.join("real")).unwrap();
    symlink(tmp.join("real"), tmp.join("via-link")).unwrap();
    let cfg = tmp.join("c.json");
    let text = format!(
        r#"{{"list": [{{"user": "sam", "imap": "127.0.0.1", "port": {}, "ca_file": "{}", "passwd": "{PW}",
           "folder": "INBOX", "encrypt": 0, "compress": 1}}], "archive_dir": "{}", "sandbox": "require"}}"#,
        d.imaps_port(),
        d.cert_pem_path().display(),
        tmp.join("via-link").display()
    );
    fs::write(&cfg, text).unwrap();
    let o = run(&["-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tmp.join("real/sam/INBOX/1.mbox.gz").exists());
}

#[test]
fn restore_cannot_write_through_a_planted_symlink() {
    let tmp = TempDir::new("sbx-restore");
    let folder = tmp.join("INBOX");
    fs::create_dir_all(&folder).unwrap();
    fs::copy(vectors().join("random/1.mbox"), folder.join("1.mbox")).unwrap();
    let outside = tmp.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let maildir = tmp.join("restored");
    fs::create_dir_all(&maildir).unwrap();
    symlink(&outside, maildir.join("cur")).unwrap();
    let args = ["-r", folder.to_str().unwrap(), "--to-maildir", maildir.to_str().unwrap(), "--sandbox", "require"];
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "restore wrote outside its output");
    // Verify only reads: it works inside its own sandbox.
    let o = run(&["--verify", folder.to_str().unwrap(), "--sandbox", "require"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn sandbox_check_proves_every_probe() {
    let tmp = TempDir::new("sbx-check");
    let o = run(&["--sandbox-check", "--dir", tmp.path().to_str().unwrap()], &[]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert!(text.contains("landlock ABI"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    for probe in ["outside", "connect"] {
        assert!(text.to_lowercase().contains(probe), "no {probe} probe in: {text}");
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0, "the check leaves nothing behind");
}

#[test]
fn bad_sandbox_mode_is_a_usage_error() {
    let o = run(&["--sandbox", "sometimes", "-r", "x"], &[]);
    assert_eq!(o.status.code(), Some(2));
}
