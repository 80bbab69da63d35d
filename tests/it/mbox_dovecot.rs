//! An mbox written by restore is read by Dovecot's mbox driver as the same messages: the
//! separator lines are ones a strict mbox reader accepts, and quoting hides no boundary.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};

use crate::support::dovecot::{Dovecot, MAIL_USER};
use crate::support::*;

const PW: &str = "mbox pw";

fn mail_uid_gid() -> (u32, u32) {
    let out = std::process::Command::new("id").args(["-u", MAIL_USER]).output().expect("id");
    let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("uid");
    let out = std::process::Command::new("id").args(["-g", MAIL_USER]).output().expect("id");
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("gid");
    (uid, gid)
}

#[test]
fn dovecot_mbox_driver_reads_the_restored_messages() {
    let d = Dovecot::builder()
        .extra_config(
            "namespace restored {\n  prefix = Restored/\n  separator = /\n  location = mbox:~/mbox\n  list = yes\n}",
        )
        .start();
    d.add_user("mia", PW);
    let tmp = TempDir::new("mbox-dovecot");
    let folder = tmp.join("INBOX");
    fs::create_dir(&folder).unwrap();
    let mut expected = Vec::new();
    for uid in [1, 30, 32, 34, 60, 99, 111] {
        fs::copy(vectors().join(format!("random/{uid}.mbox")), folder.join(format!("{uid}.mbox"))).unwrap();
        let stored = fs::read(vectors().join(format!("expected/{uid}.mbox"))).unwrap();
        expected.push(as_in_mbox(strip_first_line(&stored)));
    }
    let o = run(&["-r", folder.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let home = d.user_home("mia");
    let mbox_dir = home.join("mbox");
    fs::create_dir_all(&mbox_dir).unwrap();
    fs::copy(tmp.join("INBOX.mbox"), mbox_dir.join("Restored")).unwrap();
    let (uid, gid) = mail_uid_gid();
    for p in [&home, &mbox_dir, &mbox_dir.join("Restored")] {
        chown(p, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(if p.is_dir() { 0o700 } else { 0o600 })).unwrap();
    }
    let uids = d.uids("mia", PW, "Restored/Restored");
    assert_eq!(uids.len(), expected.len(), "Dovecot sees another number of messages");
    for (u, want) in uids.iter().zip(&expected) {
        let got = d.fetch_raw("mia", PW, "Restored/Restored", *u);
        // Dovecot serves mbox bodies as stored: the mboxrd quoting is still in them.
        assert_same(&unquote(&got), &as_served(want), &format!("message {u}"));
    }
}

/// What Dovecot serves for stored bytes: bare LF as CRLF, NUL as 0x80.
fn as_served(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len());
    for (i, &b) in m.iter().enumerate() {
        match b {
            b'\n' if i == 0 || m[i - 1] != b'\r' => out.extend_from_slice(b"\r\n"),
            0 => out.push(0x80),
            _ => out.push(b),
        }
    }
    out
}

fn unquote(m: &[u8]) -> Vec<u8> {
    smailarchiver::mbox::unquote_mboxrd(m)
}
