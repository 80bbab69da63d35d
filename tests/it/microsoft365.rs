//! Microsoft 365 (Exchange Online) as a scripted persona written from Microsoft's
//! documentation and users' session logs: XOAUTH2 only (basic authentication is off),
//! `RFC822.SIZE` an estimate a quarter off either way (no `EnableExactRFC822Size`),
//! pipelined commands garbled (`BAD Command Error. 10`), throttling answers ("Request is
//! throttled. Suggested Backoff Time: N milliseconds"), sessions ended when the access token
//! expires. Signed in through the mock token endpoints, as a user would be.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::support::fake_imap::{FakeImap, Fault, Folder, Offer, Script, EXCHANGE_THROTTLED};
use crate::support::mock_oauth::{config, device_login, MockOAuth, Options, USER};
use crate::support::*;
use serde_json::json;

/// A message of exactly `size` bytes, distinct for each UID.
fn message(uid: u32, size: usize) -> Vec<u8> {
    let mut m = format!("From: Ann <ann@contoso.com>\r\nSubject: message {uid}\r\n\r\n").into_bytes();
    while m.len() < size {
        m.extend_from_slice(format!("line of message {uid}: {}\r\n", "0123456789".repeat(6)).as_bytes());
    }
    m.truncate(size);
    m
}

fn backup(config: &Path, more: &[&str]) -> std::process::Output {
    let mut args = vec!["-c", config.to_str().unwrap(), "--buffer-size", "64K"];
    args.extend_from_slice(more);
    run(&args, &[])
}

/// The messages archived in `folder`, by UID, as the server had them (From line dropped).
fn archived(root: &Path, folder: &str) -> Vec<(u32, Vec<u8>)> {
    let dir = root.join(USER).join(folder);
    let mut out: Vec<(u32, Vec<u8>)> = sorted_names(&dir)
        .iter()
        .filter_map(|n| {
            let uid = n.strip_suffix(".mbox")?.parse().ok()?;
            Some((uid, strip_first_line(&fs::read(dir.join(n)).unwrap()).to_vec()))
        })
        .collect();
    out.sort();
    out
}

/// How many commands the server answered `BAD Command Error. 10`, over all connections.
fn garbled(server: &FakeImap) -> usize {
    server.commands().iter().flatten().filter(|c| *c == "GARBLED").count()
}

/// Sizes a quarter off both ways, the biggest well past what the old ceiling allowed (an
/// eighth over the estimate plus the budget: UID 5, 600,000 bytes announced as 450,000, the
/// case of the 9.2 MB message announced as 6.9 MB), and pipelining garbled: every message
/// is archived whole; the garbling costs one reconnect, is remembered, and the next run
/// starts one command at a time.
#[test]
fn every_message_archived_whole_and_garbled_pipelining_learnt_once() {
    let mock = MockOAuth::start(Options::default());
    let sizes = [3_000, 9_000, 20_000, 41_000, 600_000, 7_000, 30_000, 200_000, 12_000, 50_000, 61_000, 5_000];
    let inbox: Vec<(u32, Vec<u8>)> = (1..).zip(sizes).map(|(u, s)| (u, message(u, s))).collect();
    let sent: Vec<(u32, Vec<u8>)> = (1..=3).map(|u| (u, message(u, 15_000 * u as usize))).collect();
    let folders = vec![Folder::new("INBOX", 41, inbox.clone()), Folder::new("Sent Items", 42, sent.clone())];
    let server =
        FakeImap::start_bearer(USER, mock.check(), "XOAUTH2", folders, vec![Script::healthy()], Offer::microsoft365());
    let (dir, root) = (TempDir::new("m365-whole"), TempDir::new("m365-whole-root"));
    let oauth2 = json!({"provider": "microsoft", "client_id": "client-1"});
    let config = config(dir.path(), root.path(), &server, &mock, oauth2, json!({"folder": ["INBOX", "Sent Items"]}));
    let o = device_login(&config, &mock);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let o = backup(&config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("left out"), "{}", stderr(&o));
    assert_eq!(archived(root.path(), "INBOX"), inbox);
    assert_eq!(archived(root.path(), "Sent Items"), sent);
    // The login's connection, then the backup's: one garbled answer, one reconnect.
    assert_eq!(garbled(&server), 1, "{:?}", server.commands());
    assert_eq!(server.connections(), 3, "{:?}", server.commands());
    assert!(server.commands().iter().flatten().all(|c| c != "AUTH NO"));
    assert!(root.path().join(".smailarchiver/one-command-at-a-time").read_dir().unwrap().count() == 1);

    // Remembered: the next run sends one command at a time from the start.
    server.append("INBOX", 13, message(13, 90_000));
    let o = backup(&config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(root.path(), "INBOX").len(), 13);
    assert_eq!(garbled(&server), 1, "{:?}", server.commands());
    assert_eq!(server.connections(), 4, "{:?}", server.commands());
}

/// Throttling answers, to an EXAMINE and to a body fetch, each back off as suggested and
/// resume (the folder is not failed); access tokens of one second expire mid-run and are
/// renewed without a refused login; the config's `"pipelining": false` sends one command
/// at a time from the start (nothing garbled).
#[test]
fn throttling_backs_off_and_resumes_and_expired_tokens_are_renewed() {
    let mock = MockOAuth::start(Options::default());
    let inbox: Vec<(u32, Vec<u8>)> = (1..=20).map(|u| (u, message(u, 30_000))).collect();
    let folders = vec![Folder::new("INBOX", 41, inbox.clone())];
    let throttled_examine = Script::healthy().at("EXAMINE", 1, Fault::No(EXCHANGE_THROTTLED));
    let throttled_fetch = Script::healthy().at("BODY.PEEK", 2, Fault::No(EXCHANGE_THROTTLED));
    let scripts = vec![Script::healthy(), throttled_examine, throttled_fetch, Script::healthy()];
    let offer = Offer { pace: Duration::from_millis(200), ..Offer::microsoft365() };
    let server = FakeImap::start_bearer(USER, mock.check(), "XOAUTH2", folders, scripts, offer);
    let (dir, root) = (TempDir::new("m365-throttled"), TempDir::new("m365-throttled-root"));
    let oauth2 = json!({"provider": "microsoft", "client_id": "client-1"});
    let config = config(dir.path(), root.path(), &server, &mock, oauth2, json!({"pipelining": false}));
    let o = device_login(&config, &mock);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    mock.set_lifetime(Duration::from_secs(1));
    let o = backup(&config, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(root.path(), "INBOX"), inbox);
    assert!(stdout(&o).contains("INBOX: 20 new, 0 already archived, 0 failed"), "{}", stdout(&o));
    assert_eq!(stderr(&o).matches("is throttling the account").count(), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("Suggested Backoff Time: 30 milliseconds"), "{}", stderr(&o));
    assert_eq!(garbled(&server), 0, "{:?}", server.commands());
    let commands = server.commands();
    assert!(commands.iter().flatten().all(|c| c != "AUTH NO"), "a refused login: {commands:?}");
    // The run outlasted its first token: at least one was renewed mid-run.
    assert!(mock.granted("refresh_token") >= 2, "{:?}", mock.log());
    assert!(root.path().join(".smailarchiver/one-command-at-a-time").read_dir().is_err());
}
