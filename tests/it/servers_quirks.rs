//! What one real server does and the others do not, pinned against the scripted server
//! (tests/it/support/fake_imap.rs) as well as against the real one (tests/it/servers_backup.rs):
//! Courier gives UIDNEXT only in STATUS, never on SELECT/EXAMINE.

use std::path::Path;
use std::process::Output;

use crate::support::fake_imap::{FakeImap, Folder, Offer, Script};
use crate::support::*;

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

fn verify(root: &Path, keys: Option<&Path>) -> Output {
    let mut args = vec!["--verify".to_string(), root.display().to_string()];
    if let Some(k) = keys {
        args.extend(["-k".to_string(), k.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, &[])
}

/// A folder renumbered with the same mail (Courier's folders never opened read-write, a
/// server migration): the second run recognises every message by size and header fields
/// in one `UID FETCH 1:*`, links the archived files under the new UIDs and fetches only
/// what is really new; the previous generation is kept as it was, and `--verify` finds
/// the new generation's metadata in agreement with its files.
#[test]
fn a_renumbered_folder_is_linked_from_the_archive_not_fetched_again() {
    use std::os::unix::fs::MetadataExt;
    for options in [&[][..], &["-z", "-e"][..]] {
        let mut mail: Vec<(u32, Vec<u8>)> = (1..=5).map(|u| (u, message(u))).collect();
        // Without any fingerprint field: never matched, fetched again.
        mail.push((6, b"X-Nothing: to recognise\r\n\r\nanonymous\r\n".to_vec()));
        let server = FakeImap::start(USER, PW, vec![Folder::new("INBOX", 7, mail.clone())], vec![Script::healthy()]);
        let root = TempDir::new("quirks-renumber");
        let keys = root.join("keys");
        let mut args: Vec<&str> = options.to_vec();
        if !options.is_empty() {
            args.extend(["-k", keys.to_str().unwrap()]);
        }
        backup(&server, root.path(), &args);
        server.renumber("INBOX", 8, 101);
        server.append("INBOX", 107, message(7));
        let o = backup(&server, root.path(), &args);
        let out = stdout(&o);
        assert!(out.contains("INBOX: 2 new, 5 already archived, 0 failed, 5 renumbered"), "{out}");
        assert!(stderr(&o).contains("UIDVALIDITY changed (7 -> 8)"), "{}", stderr(&o));
        let second = commands_of(&server, 1);
        // The STATUS at the start showed the new UIDVALIDITY: one EXAMINE, every UID.
        let until_fields: Vec<&String> = second.iter().take_while(|c| !c.contains("HEADER.FIELDS")).collect();
        assert_eq!(until_fields.iter().filter(|c| c.starts_with("EXAMINE")).count(), 1, "{second:?}");
        // The mailstore's evidence, retaken after a UIDVALIDITY change, is not the rebase's.
        let evidence = |c: &String| c.contains("HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)");
        let fields: Vec<&String> = second.iter().filter(|c| c.contains("HEADER.FIELDS") && !evidence(c)).collect();
        assert_eq!(fields.len(), 1, "{second:?}");
        assert!(fields[0].starts_with("UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS"));
        let bodies: Vec<&String> = second.iter().filter(|c| c.contains("BODY.PEEK[]")).collect();
        assert_eq!(bodies, ["UID FETCH 106:107 (UID FLAGS INTERNALDATE BODY.PEEK[])"], "{second:?}");

        let suffix = if options.is_empty() { ".mbox" } else { ".mbox.gz.enc" };
        let (new, old) = (root.join(USER).join("INBOX"), root.join(USER).join("INBOX.uidvalidity-7"));
        let names = |d: &Path| {
            let mut n: Vec<String> =
                std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&old), (1..=6).map(|u| format!("{u}{suffix}")).collect::<Vec<_>>());
        assert_eq!(names(&new), (101..=107).map(|u| format!("{u}{suffix}")).collect::<Vec<_>>());
        for u in 1..=5 {
            let a = std::fs::metadata(old.join(format!("{u}{suffix}"))).unwrap();
            let b = std::fs::metadata(new.join(format!("{}{suffix}", u + 100))).unwrap();
            assert_eq!(a.ino(), b.ino(), "UID {u} is linked, not written again");
        }
        let o = verify(root.path(), (!options.is_empty()).then_some(keys.as_path()));
        assert_eq!(o.status.code(), Some(0), "verify: {}{}", stdout(&o), stderr(&o));
        // Restored, the new generation is the served mail under the new UIDs.
        let out_dir = root.join("restored");
        let mut restore = vec!["-r", new.to_str().unwrap(), "--to-maildir", out_dir.to_str().unwrap()];
        if !options.is_empty() {
            restore.extend(["-k", keys.to_str().unwrap()]);
        }
        let o = run(&restore, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        for (i, (_, raw)) in mail.iter().chain([(7, message(7))].iter()).enumerate() {
            let uid = 101 + i as u32;
            let file = std::fs::read_dir(out_dir.join("cur"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{uid}:")))
                .unwrap_or_else(|| panic!("UID {uid} not restored"));
            assert_same(&std::fs::read(file).unwrap(), raw, &format!("UID {uid}"));
        }
        // Nothing new: nothing opened.
        backup(&server, root.path(), &args);
        let third = commands_of(&server, 2);
        assert!(!third.iter().any(|c| c.starts_with("EXAMINE") || c.starts_with("UID")), "{third:?}");
    }
}

/// A generation left partly filled (a run stopped while linking; here two of its files
/// removed) is not the end of the search: what it lacks is found in the one before.
#[test]
fn a_partly_linked_generation_is_completed_from_the_one_before() {
    let mail: Vec<(u32, Vec<u8>)> = (1..=5).map(|u| (u, message(u))).collect();
    let server = FakeImap::start(USER, PW, vec![Folder::new("INBOX", 7, mail)], vec![Script::healthy()]);
    let root = TempDir::new("quirks-generations");
    backup(&server, root.path(), &[]);
    server.renumber("INBOX", 8, 11);
    backup(&server, root.path(), &[]);
    for uid in [12, 14] {
        std::fs::remove_file(root.join(USER).join("INBOX").join(format!("{uid}.mbox"))).unwrap();
    }
    server.renumber("INBOX", 9, 21);
    let o = backup(&server, root.path(), &[]);
    assert!(stdout(&o).contains("INBOX: 0 new, 5 already archived, 0 failed, 5 renumbered"), "{}", stdout(&o));
    let third = commands_of(&server, 2);
    assert!(!third.iter().any(|c| c.contains("BODY.PEEK[]")), "{third:?}");
    let live = root.join(USER).join("INBOX");
    for (i, uid) in (21..=25).enumerate() {
        let stored = std::fs::read(live.join(format!("{uid}.mbox"))).unwrap();
        assert!(stored.ends_with(&message(i as u32 + 1)), "UID {uid}");
    }
}
