//! Issue 25, item 10, against a real Dovecot: a message expunged on the server is kept in
//! the archive and said: the run's summary and `--report` count it, the metadata records
//! when it was last seen there, and `--list` shows it. Later runs keep counting it without
//! asking the server for every message again.

use std::fs;
use std::path::Path;

use crate::support::dovecot::Dovecot;
use crate::support::*;
use serde_json::Value;

const PW: &str = "s3cret pass";

fn report(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn server_side_deletions(options: &[&str]) {
    let d = Dovecot::start();
    let user = format!("gone{}", options.len());
    d.add_user(&user, PW);
    let uids: Vec<u32> = (0..5).map(|i| d.append(&user, PW, "INBOX", &mail::numbered(i))).collect();
    let tmp = TempDir::new("left-server");
    let root = tmp.dir("root");
    let key = tmp.join("keys");
    let mut extra: Vec<&str> = options.to_vec();
    let mut keys: Vec<&str> = Vec::new();
    if options.contains(&"-e") {
        keys = vec!["-k", key.to_str().unwrap()];
        extra.extend(&keys);
    }
    backup_ok(&d, &user, PW, &root, &extra, &[]);
    let folder = root.join(&user).join("INBOX");
    let before: Vec<_> = fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();

    // Expunged without new mail: the folder's UIDNEXT did not move.
    d.expunge(&user, PW, "INBOX", uids[2]);
    let report_path = tmp.join("report.json");
    let mut args = extra.clone();
    args.extend(["--report", report_path.to_str().unwrap()]);
    let o = backup_ok(&d, &user, PW, &root, &args, &[]);
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "{user} INBOX: 1 message left the server since the last run, kept in the archive (1 only in the archive)"
        )),
        "{out}"
    );
    let r = report(&report_path);
    let inbox = &r["accounts"][0]["folders"][0];
    assert_eq!((inbox["left_server"].as_u64(), inbox["only_in_archive"].as_u64()), (Some(1), Some(1)), "{r}");
    let after: Vec<_> = fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(after.len(), before.len(), "kept in the archive");

    // --list shows it, with when it was last seen.
    let mut args = vec!["--list", folder.to_str().unwrap()];
    args.extend(&keys);
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let gone: Vec<String> =
        stdout(&o).lines().filter(|l| l.contains("\tgone, last seen 20")).map(String::from).collect();
    assert_eq!(gone.len(), 1, "{}", stdout(&o));
    assert!(gone[0].starts_with(&format!("{}\t", uids[2])), "{}", gone[0]);
    assert!(stdout(&o).lines().filter(|l| !l.contains("gone")).all(|l| l.ends_with("\t-")), "{}", stdout(&o));
    // It verifies (its file is kept and sound).
    let mut args = vec!["--verify", folder.to_str().unwrap()];
    args.extend(&keys);
    assert_eq!(run(&args, &[]).status.code(), Some(0));

    // Later runs still count it, without asking every message's flags again; one more
    // expunged with new mail in the same run is found too.
    let before_log = d.commands_log(&user).len();
    let o = backup_ok(
        &d,
        &user,
        PW,
        &root,
        &["--report", report_path.to_str().unwrap()].iter().chain(&extra).copied().collect::<Vec<_>>(),
        &[],
    );
    assert!(stdout(&o).contains("INBOX: 0 new, 5 already archived, 0 failed, 1 only in the archive"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("left the server"), "{}", stdout(&o));
    let log = d.commands_log(&user)[before_log..].to_string();
    assert!(!log.contains("FETCH"), "a no-op run asked: {log}");
    let r = report(&report_path);
    let inbox = &r["accounts"][0]["folders"][0];
    assert_eq!((inbox["left_server"].as_u64(), inbox["only_in_archive"].as_u64()), (Some(0), Some(1)), "{r}");
    d.expunge(&user, PW, "INBOX", uids[4]);
    d.append(&user, PW, "INBOX", &mail::numbered(9));
    let o = backup_ok(&d, &user, PW, &root, &extra, &[]);
    assert!(stdout(&o).contains("INBOX: 1 new"), "{}", stdout(&o));
    assert!(
        stdout(&o)
            .contains("1 message left the server since the last run, kept in the archive (2 only in the archive)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(fs::read_dir(&folder).unwrap().count(), 6);
}

#[test]
fn a_message_expunged_on_the_server_is_counted_and_kept() {
    server_side_deletions(&[]);
}

#[test]
fn a_message_expunged_on_the_server_is_counted_and_kept_encrypted() {
    server_side_deletions(&["-z", "-e"]);
}
