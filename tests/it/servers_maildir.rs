//! `--to-maildir` for the server that will read it (issue 20, item 8): an account backed up
//! from Dovecot, Cyrus (both modes) and Courier, restored with `--maildir-layout courier`
//! into a Courier user's Maildir, lists through Courier-IMAP under the right names (no
//! `INBOX.INBOX.`), every message served byte-identical with its flags and arrival time;
//! the default (Dovecot) layout, restored into a Dovecot user's Maildir, lists through
//! Dovecot the same way.

use crate::support;
use std::fs;
use std::path::Path;

use crate::support::servers::{self, chown_tree, internaldate_epoch, Kind, MailServer, Served};
use crate::support::*;

const PW: &str = "s3cret pass";
const FOLDERS: [&str; 8] = ["INBOX", "Archive", "Archive/2023", "Отправленные", "日本語", "Reçus", "R&D", "Sent Items"];

/// The account `user` of `server` with two messages in each of [`FOLDERS`], named on the
/// server by `wire`.
fn populate(server: &dyn MailServer, user: &str, wire: &dyn Fn(&str) -> String) {
    server.add_user(user, PW);
    for f in FOLDERS.iter().filter(|f| **f != "INBOX") {
        let wire = wire(f);
        if !server.list_mailboxes(user, PW).contains(&wire) {
            server.create_mailbox(user, PW, &wire);
        }
    }
    let flag_sets: [&[&str]; 3] = [&["\\Seen"], &["\\Answered", "\\Flagged"], &[]];
    for (i, f) in FOLDERS.iter().enumerate() {
        for j in 0..2 {
            let msg =
                format!("From: a@example.org\r\nSubject: {f} {j}\r\nMessage-ID: <{i}.{j}@x>\r\n\r\nbody {i} {j}\r\n");
            let date = format!("{:02}-Apr-2016 12:00:{:02} +0200", i + 1, j);
            server.append(user, PW, &wire(f), flag_sets[(i + j) % 3], Some(&date), msg.as_bytes());
        }
    }
}

/// A message as compared across servers: bytes, the flags a Maildir name carries, time.
fn comparable(m: &Served) -> (Vec<u8>, Vec<String>, Option<i64>) {
    let mut flags: Vec<String> = m
        .flags
        .iter()
        .filter(|f| {
            ["\\seen", "\\answered", "\\flagged", "\\draft", "\\deleted"].contains(&f.to_ascii_lowercase().as_str())
        })
        .map(|f| f.to_ascii_lowercase())
        .collect();
    flags.sort();
    (m.raw.clone(), flags, internaldate_epoch(&m.internaldate))
}

/// Backs up `source`'s account (its folders named by `src_wire`), restores it in `layout`
/// into the Maildir of a new user of `target`, and compares what `target` lists and serves
/// with what `source` serves.
fn restore_into(
    source: &dyn MailServer,
    src_wire: &dyn Fn(&str) -> String,
    target: &dyn MailServer,
    layout: Option<&str>,
    maildir: &Path,
    user: &str,
) {
    let label = format!("{} -> {}", source.label(), target.label());
    let src_user = format!("mds{}{}", source.label().replace('-', ""), target.label().replace('-', ""));
    populate(source, &src_user, src_wire);
    let root = TempDir::new(&format!("maildir-{}", source.label()));
    let keys = root.join("keys");
    let mut args = source.client_args(&src_user, root.path());
    args.extend(["--all-folders", "-z", "-e", "-k", keys.to_str().unwrap()].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args, &[("SMAILARCHIVER_PASSWD", PW)]);
    assert_eq!(o.status.code(), Some(0), "{label}: {}", stderr(&o));
    let account = fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    let mut restore = vec!["-r", account.to_str().unwrap(), "--to-maildir", maildir.to_str().unwrap()];
    restore.extend(["-k", keys.to_str().unwrap()]);
    if let Some(l) = layout {
        restore.extend(["--maildir-layout", l]);
    }
    let o = run(&restore, &[]);
    assert_eq!(o.status.code(), Some(0), "{label}: {}", stderr(&o));
    let (uid, gid) = support::dovecot::ensure_mail_user();
    chown_tree(maildir, uid, gid);

    let mut listed = target.list_mailboxes(user, PW);
    listed.sort();
    let mut wanted: Vec<String> = FOLDERS.iter().map(|f| target.mailbox(f)).collect();
    wanted.sort();
    assert_eq!(listed, wanted, "{label}: the folders as the target lists them");
    for f in FOLDERS {
        let mut want: Vec<_> = source.messages(&src_user, PW, &src_wire(f)).values().map(comparable).collect();
        let mut got: Vec<_> = target.messages(user, PW, &target.mailbox(f)).values().map(comparable).collect();
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "{label} {f}");
        for (g, w) in got.iter().zip(&want) {
            assert_same(&g.0, &w.0, &format!("{label} {f}"));
            assert_eq!((&g.1, g.2), (&w.1, w.2), "{label} {f}: flags and date");
        }
    }
}

fn into_courier(source: Kind) {
    let target = servers::shared(Kind::Courier);
    let user = format!("mdt{}", source.label().replace('-', ""));
    target.add_user(&user, PW);
    let maildir = target.state_dir().join("home").join(&user).join("Maildir");
    let source = servers::shared(source);
    restore_into(source, &|f| source.mailbox(f), target, Some("courier"), &maildir, &user);
}

#[test]
fn dovecot_account_restores_into_a_courier_maildir() {
    into_courier(Kind::Dovecot);
}

#[test]
fn cyrus_dot_account_restores_into_a_courier_maildir() {
    into_courier(Kind::CyrusDot);
}

#[test]
fn cyrus_slash_account_restores_into_a_courier_maildir() {
    into_courier(Kind::CyrusSlash);
}

#[test]
fn courier_account_restores_into_a_courier_maildir() {
    into_courier(Kind::Courier);
}

#[test]
fn dovecot_layout_restores_into_a_dovecot_maildir() {
    let dovecot = servers::shared(Kind::Dovecot);
    dovecot.add_user("mdtdovecot", PW);
    let maildir = dovecot.state_dir().join("home/mdtdovecot/Maildir");
    restore_into(dovecot, &|f| dovecot.mailbox(f), dovecot, None, &maildir, "mdtdovecot");
}

/// A Dovecot whose personal namespace has the prefix `INBOX/` (every folder `INBOX/...`):
/// the recorded namespace is taken off, so Courier lists `INBOX.Archive.2023`, not
/// `INBOX.INBOX.Archive.2023`.
#[test]
fn a_prefixed_dovecot_account_restores_into_a_courier_maildir() {
    let source = support::dovecot::Dovecot::builder()
        .extra_config("namespace inbox {\n  separator = /\n  prefix = INBOX/\n}")
        .start();
    let src_wire = |f: &str| if f == "INBOX" { f.to_string() } else { format!("INBOX/{}", source.mailbox(f)) };
    let target = servers::shared(Kind::Courier);
    target.add_user("mdtprefixed", PW);
    let maildir = target.state_dir().join("home/mdtprefixed/Maildir");
    restore_into(&source, &src_wire, target, Some("courier"), &maildir, "mdtprefixed");
}

#[test]
fn the_layout_option_is_checked() {
    assert_one_line_error(&run(&["-r", "d", "--maildir-layout", "courier"], &[]), 2, "goes with -r DIR --to-maildir");
    assert_one_line_error(
        &run(&["-r", "d", "--to-maildir", "o", "--maildir-layout", "mutt"], &[]),
        2,
        "takes dovecot or courier",
    );
}
