//! What one real server does and the others do not, pinned against the scripted server
//! (tests/util/fake_imap.rs) as well as against the real one (tests/servers_backup.rs):
//! Courier gives UIDNEXT only in STATUS, never on SELECT/EXAMINE.

mod util;

use std::path::Path;
use std::process::Output;

use util::fake_imap::{FakeImap, Folder, Offer, Script};
use util::*;

const USER: &str = "alice";
const PW: &str = "s3cret pass";

fn message(uid: u32) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: message {uid}\r\nMessage-ID: <{uid}@example.org>\r\n\r\nbody {uid}\r\n")
        .into_bytes()
}

fn backup(server: &FakeImap, root: &Path, extra: &[&str]) -> Output {
    let port = server.port().to_string();
    let ca = server.ca_file();
    let mut args =
        vec!["-u", USER, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "--dir", root.to_str().unwrap()];
    args.extend(extra);
    let o = run(&args, &[("SMAILARCHIVER_PASSWD", PW)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    o
}

fn commands_of(server: &FakeImap, n: usize) -> Vec<String> {
    server.commands().get(n).cloned().unwrap_or_default()
}

/// Courier-IMAP sends no `[UIDNEXT]` on EXAMINE: the UIDNEXT of the STATUS asked at the
/// start of the run marks the folder complete, so the next run with nothing new opens no
/// folder, and one with new mail asks only for it.
#[test]
fn uidnext_only_in_status_still_spares_unchanged_folders() {
    let folders = vec![
        Folder::new("INBOX", 7, (1..=3).map(|u| (u, message(u))).collect()),
        Folder::new("INBOX.Sent", 9, vec![(4, message(4))]),
    ];
    let offer = Offer { no_uidnext_on_examine: true, ..Offer::default() };
    let server = FakeImap::start_offering(USER, PW, folders, vec![Script::healthy()], offer);
    let root = TempDir::new("quirks-uidnext");
    let args = ["-f", "INBOX", "-f", "INBOX.Sent"];
    backup(&server, root.path(), &args);
    let first = commands_of(&server, 0);
    assert!(first.iter().any(|c| c.starts_with("EXAMINE")), "{first:?}");

    let o = backup(&server, root.path(), &args);
    assert!(stdout(&o).contains("INBOX: 0 new, 3 already archived, 0 failed"), "{}", stdout(&o));
    let rerun = commands_of(&server, 1);
    assert_eq!(rerun.iter().filter(|c| c.starts_with("STATUS")).count(), 2, "{rerun:?}");
    assert!(!rerun.iter().any(|c| c.starts_with("EXAMINE") || c.starts_with("UID")), "{rerun:?}");

    server.append("INBOX", 5, message(5));
    let o = backup(&server, root.path(), &args);
    assert!(stdout(&o).contains("INBOX: 1 new, 3 already archived, 0 failed"), "{}", stdout(&o));
    let third = commands_of(&server, 2);
    // INBOX only (then again for its flags: no CONDSTORE); Sent stays closed.
    assert!(!third.iter().any(|c| c.starts_with("EXAMINE \"INBOX.Sent\"")), "{third:?}");
    assert!(
        third.iter().any(|c| c.starts_with("UID FETCH 4:*")),
        "new mail asked from the recorded UIDNEXT: {third:?}"
    );
    assert!(!third.iter().any(|c| c.contains("SEARCH")), "{third:?}");

    backup(&server, root.path(), &args);
    let fourth = commands_of(&server, 3);
    assert!(!fourth.iter().any(|c| c.starts_with("EXAMINE") || c.starts_with("UID")), "{fourth:?}");
}
