//! `-r PATH --to-imap` into servers that are not Dovecot, scripted from their
//! documentation (tests/it/support/fake_imap/target.rs): Courier (no LITERAL+, `.` under
//! `INBOX.`, APPEND refused into a mailbox open read-only), Gmail (LITERAL-), Cyrus
//! (`munge8bit`, bare LF refused), a server that adds a trailing CRLF; links that stall
//! and deliver late; a target holding a header over 64 KiB; names a target cannot hold.
//! Each archive is made by a backup from a scripted `/` server, so the records carry
//! what a real backup records. Every message must be at the target once, and three
//! reruns must add nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::fake_imap::{FakeImap, Fault, Folder, Offer, Persona, Script};
use crate::support::*;

const USER: &str = "alice";
const PW: &str = "s3cret pass";

fn message(n: u32, size: usize) -> Vec<u8> {
    mail::dated(n as usize, size, "")
}

/// What the source server holds: nested folders, an 8-bit folder name, 8-bit headers,
/// bare LF, a message without a final line end, one over LITERAL-'s 4096 bytes.
fn source_folders() -> Vec<Folder> {
    let inbox = vec![
        (1, message(1, 800)),
        (2, message(2, 9000)),
        (3, "From: z@example.org\r\nSubject: Grüße aus Köln\r\n\r\nÄÖÜ\r\n".as_bytes().to_vec()),
        (4, b"From: y@example.org\nSubject: bare LF\nDate: 5 Jan 2019 08:00:00 -0500\n\nline\nline\n".to_vec()),
        (5, b"From: w@example.org\r\nSubject: no final line end\r\n\r\nthe end".to_vec()),
    ];
    vec![
        Folder::new("INBOX", 7, inbox),
        Folder::new("Archive", 8, vec![(1, message(10, 3000))]),
        Folder::new("Archive/2023", 9, vec![(1, message(20, 1000)), (2, message(21, 5000))]),
        Folder::new(
            "Re&AOc-us",
            10,
            vec![(3, "From: r@example.org\r\nSubject: Reçus\r\n\r\nx\r\n".as_bytes().to_vec())],
        ),
    ]
}

fn source() -> FakeImap {
    let offer = Offer { capabilities: "NAMESPACE", ..Offer::default() };
    FakeImap::start_offering(USER, PW, source_folders(), vec![Script::healthy()], offer)
}

fn target(persona: Persona, capabilities: &'static str, scripts: Vec<Script>) -> FakeImap {
    let no_uidnext_on_examine = capabilities == Persona::COURIER_CAPABILITIES;
    let offer = Offer { capabilities, persona, no_uidnext_on_examine, ..Offer::default() };
    FakeImap::start_offering(USER, PW, vec![Folder::new("INBOX", 500, Vec::new())], scripts, offer)
}

fn connection(server: &FakeImap) -> Vec<String> {
    let args = ["-u", USER, "-i", "127.0.0.1", "--port", &server.port().to_string(), "--ca-file", &server.ca_file()];
    args.iter().map(|s| s.to_string()).collect()
}

fn backup(server: &FakeImap, root: &Path) {
    let o = Command::new(bin())
        .args(connection(server))
        .args(["--dir", root.to_str().unwrap(), "--all-folders", "-q"])
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "backup: {}", stderr(&o));
}

fn upload(server: &FakeImap, path: &Path, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["-r", path.to_str().unwrap(), "--to-imap"])
        .args(connection(server))
        .args(extra)
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What a message becomes on its way: CRLF line ends (an upload sends them).
fn crlf(m: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in m.iter().enumerate() {
        if b == b'\n' && (i == 0 || m[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Cyrus's `munge8bit`: raw 8-bit header bytes as `X`.
fn munged(m: &[u8]) -> Vec<u8> {
    let end = m.windows(4).position(|w| w == b"\r\n\r\n").map_or(m.len(), |i| i + 4);
    m.iter().enumerate().map(|(i, &b)| if i < end && b >= 0x80 { b'X' } else { b }).collect()
}

/// Each target folder's messages, sorted.
fn held(server: &FakeImap) -> BTreeMap<String, Vec<Vec<u8>>> {
    server
        .folders()
        .into_iter()
        .filter(|f| !f.messages.is_empty())
        .map(|f| {
            let mut msgs: Vec<Vec<u8>> = f.messages.into_iter().map(|(_, m)| m).collect();
            msgs.sort();
            (f.name, msgs)
        })
        .collect()
}

/// The source's folders under the names a target of `persona` gives them, each message
/// as `rewrite` stores it.
fn expected(names: &[(&str, &str)], rewrite: impl Fn(&[u8]) -> Vec<u8>) -> BTreeMap<String, Vec<Vec<u8>>> {
    let folders = source_folders();
    names
        .iter()
        .map(|(from, to)| {
            let f = folders.iter().find(|f| f.name == *from).unwrap();
            let mut msgs: Vec<Vec<u8>> = f.messages.iter().map(|(_, m)| rewrite(&crlf(m))).collect();
            msgs.sort();
            (to.to_string(), msgs)
        })
        .collect()
}

const TO_DOT: [(&str, &str); 4] = [
    ("INBOX", "INBOX"),
    ("Archive", "INBOX.Archive"),
    ("Archive/2023", "INBOX.Archive.2023"),
    ("Re&AOc-us", "INBOX.Re&AOc-us"),
];

/// Uploads `root`'s account to `server`, then three times again: the first run uploads
/// all 9 messages, each rerun none; the target then holds `want`.
fn upload_and_rerun(server: &FakeImap, root: &Path, want: &BTreeMap<String, Vec<Vec<u8>>>) {
    let o = upload(server, &root.join(USER), &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let uploaded: usize =
        out.lines().filter_map(|l| l.split(": ").nth(1)?.split(' ').next()?.parse::<usize>().ok()).sum();
    assert_eq!(uploaded, 9, "{out}");
    assert_eq!(&held(server), want, "{out}");
    for rerun in 1..=3 {
        let o = upload(server, &root.join(USER), &[]);
        assert_eq!(o.status.code(), Some(0), "rerun {rerun}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.lines().all(|l| l.contains(": 0 uploaded")), "rerun {rerun}: {out}");
        assert_eq!(&held(server), want, "rerun {rerun} added something: {out}");
    }
    server.assert_no_errors();
}

/// Courier: no LITERAL+, so every APPEND waits for its go-ahead while the answers of the
/// ones before it come in; `.` under `INBOX.`; APPEND refused into a mailbox open
/// read-only. A `/` server's archive lands under the right names, each message once.
#[test]
fn courier_takes_every_message_under_its_own_names() {
    let src = source();
    let tmp = TempDir::new("up-courier");
    backup(&src, tmp.path());
    let dst = target(Persona::courier(), Persona::COURIER_CAPABILITIES, vec![Script::healthy()]);
    upload_and_rerun(&dst, tmp.path(), &expected(&TO_DOT, |m| m.to_vec()));
    // The result line names both sides when the name changed.
    let o = upload(&dst, &tmp.path().join(USER), &[]);
    assert!(stdout(&o).contains("Archive/2023 -> INBOX.Archive.2023: 0 uploaded, 2 already there"), "{}", stdout(&o));
    // Every APPEND waited for the go-ahead: no LITERAL+ was used.
    let appends: Vec<String> = dst.commands().concat().into_iter().filter(|c| c.starts_with("APPEND")).collect();
    assert!(!appends.is_empty() && appends.iter().all(|c| !c.ends_with("+}")), "{appends:?}");
}

/// Gmail's LITERAL-: non-synchronizing literals up to 4096 bytes, bigger ones wait for
/// the go-ahead (the scripted server fails the test on a bigger one without it).
#[test]
fn literal_minus_takes_small_messages_at_once_and_waits_for_big_ones() {
    let src = source();
    let tmp = TempDir::new("up-gmail");
    backup(&src, tmp.path());
    let dst = target(Persona::default(), Persona::GMAIL_CAPABILITIES, vec![Script::healthy()]);
    let same: Vec<(&str, &str)> = TO_DOT.iter().map(|(from, _)| (*from, *from)).collect();
    upload_and_rerun(&dst, tmp.path(), &expected(&same, |m| m.to_vec()));
    let appends: Vec<String> = dst.commands().concat().into_iter().filter(|c| c.starts_with("APPEND")).collect();
    assert!(appends.iter().any(|c| c.ends_with("+}")) && appends.iter().any(|c| !c.ends_with("+}")), "{appends:?}");
}

/// Cyrus stores raw 8-bit header bytes as `X` and refuses bare LF: every message goes
/// in (with CRLF), and reruns still recognise the rewritten ones.
#[test]
fn cyrus_rewrites_headers_and_reruns_still_find_them() {
    let src = source();
    let tmp = TempDir::new("up-cyrus");
    backup(&src, tmp.path());
    let dst = target(Persona::cyrus_dot(), Persona::CYRUS_CAPABILITIES, vec![Script::healthy()]);
    upload_and_rerun(&dst, tmp.path(), &expected(&TO_DOT, munged));
    let subjects: Vec<Vec<u8>> = held(&dst)["INBOX.Re&AOc-us"].clone();
    assert!(
        subjects[0].windows(14).any(|w| w == b"Subject: ReXXu"),
        "munged: {:?}",
        String::from_utf8_lossy(&subjects[0])
    );
}

/// A server that stores a trailing CRLF the message did not have: the sizes differ by
/// two, the message is still recognised.
#[test]
fn a_trailing_line_end_added_by_the_server_is_no_new_message() {
    let src = source();
    let tmp = TempDir::new("up-crlf");
    backup(&src, tmp.path());
    let persona = Persona { add_trailing_crlf: true, ..Persona::default() };
    let dst = target(persona, "LITERAL+ NAMESPACE UIDPLUS UNSELECT", vec![Script::healthy()]);
    let same: Vec<(&str, &str)> = TO_DOT.iter().map(|(from, _)| (*from, *from)).collect();
    let add = |m: &[u8]| if m.ends_with(b"\r\n") { m.to_vec() } else { [m, b"\r\n"].concat() };
    upload_and_rerun(&dst, tmp.path(), &expected(&same, add));
}

/// An archive of `n` messages in INBOX, backed up from a scripted server.
fn inbox_archive(n: u32, tmp: &TempDir) -> Vec<Vec<u8>> {
    let msgs: Vec<(u32, Vec<u8>)> = (1..=n).map(|u| (u, message(100 + u, 2000 + u as usize * 10))).collect();
    let offer = Offer { capabilities: "NAMESPACE", ..Offer::default() };
    let src =
        FakeImap::start_offering(USER, PW, vec![Folder::new("INBOX", 7, msgs.clone())], vec![Script::healthy()], offer);
    backup(&src, tmp.path());
    let mut want: Vec<Vec<u8>> = msgs.into_iter().map(|(_, m)| m).collect();
    want.sort();
    want
}

/// A link that stalls during the APPENDs, the server storing the stalled one only later:
/// the messages in flight are looked for at the end of the run, after the stalled
/// connection had time to deliver (`--timeout`), and sent again only where missing.
#[test]
fn messages_in_flight_on_a_stalled_link_are_checked_at_the_end_before_being_sent_again() {
    let tmp = TempDir::new("up-stall");
    let want = inbox_archive(12, &tmp);
    // The 3rd APPEND stalls (with it 7 more in flight, never read); it lands just before
    // the second APPEND the server gets after it: during the second connection's pass.
    let stalls = Script::healthy().at("APPEND", 3, Fault::LandLate(2));
    let dst = target(Persona::default(), "LITERAL+ NAMESPACE UIDPLUS UNSELECT", vec![stalls, Script::healthy()]);
    let o = upload(&dst, &tmp.path().join(USER), &["--timeout", "1", "-v"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("INBOX: 12 uploaded, 0 already there, 0 failed, "), "{}", stdout(&o));
    assert_eq!(held(&dst)["INBOX"], want, "each message once: {}", stderr(&o));
    // The stalled one was found, not sent again: 3 APPENDs read on the stalled
    // connection (those behind it were never read), 2 then 7 on the next one.
    let appends = dst.commands().concat().into_iter().filter(|c| c.starts_with("APPEND")).count();
    assert_eq!(appends, 3 + 2 + 7, "{:?}", dst.commands());
    dst.take_errors();
}

/// The stalled APPEND lands only after the run sent the message again: the copy made
/// twice is removed (UID STORE \Deleted + UID EXPUNGE of exactly its UID) and the
/// summary says so; without UIDPLUS it is left, named, and the run fails.
#[test]
fn a_copy_made_twice_is_removed_or_reported() {
    let tmp = TempDir::new("up-twice");
    let want = inbox_archive(12, &tmp);
    for uidplus in [true, false] {
        // Lands before the 3rd APPEND after it: the first one the run sends again.
        let stalls = Script::healthy().at("APPEND", 3, Fault::LandLate(3));
        let caps = if uidplus { "LITERAL+ NAMESPACE UIDPLUS UNSELECT" } else { "LITERAL+ NAMESPACE" };
        let dst = target(Persona::default(), caps, vec![stalls, Script::healthy()]);
        // Something the user marked \Deleted stays.
        dst.append("INBOX", 1, message(999, 500));
        let o = upload(&dst, &tmp.path().join(USER), &["--timeout", "1"]);
        let (out, err) = (stdout(&o), stderr(&o));
        let mut got = held(&dst)["INBOX"].clone();
        got.retain(|m| *m != message(999, 500));
        if uidplus {
            assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
            assert!(
                out.contains("INBOX: 12 uploaded, 0 already there, 0 failed, 1 uploaded twice and removed"),
                "{out}"
            );
            assert_eq!(got, want, "each message once");
            let log = dst.commands().concat();
            let removal: Vec<&String> =
                log.iter().filter(|c| c.contains("\\Deleted") || c.contains("EXPUNGE")).collect();
            assert_eq!(removal.len(), 2, "{removal:?}");
            assert!(!log.iter().any(|c| c == "CLOSE"), "CLOSE would remove whatever is marked \\Deleted");
        } else {
            assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
            assert!(out.contains("INBOX: 12 uploaded, 0 already there, 0 failed, 1 uploaded twice and left"), "{out}");
            assert!(err.contains("uploaded twice (a stalled connection stored them late) are left at UIDs"), "{err}");
            assert_eq!(got.len(), 13, "one twice");
        }
        assert_eq!(held(&dst)["INBOX"].len(), got.len() + 1, "the user's message stays");
        dst.take_errors();
    }
}

/// A target holding a message whose header is 120 KiB (long Received: and DKIM chains):
/// the check reads 64 KiB of each header, so a rerun resumes instead of failing.
#[test]
fn a_target_with_a_header_over_64_kib_resumes() {
    let mut big = Vec::new();
    for i in 0..1900 {
        big.extend_from_slice(
            format!("Received: from relay{i}.example.org by mx.example.org; Tue, 2 Mar 2021\r\n").as_bytes(),
        );
    }
    big.extend_from_slice(b"From: big@example.org\r\nSubject: long header\r\n\r\nbody\r\n");
    assert!(big.len() > 120 * 1024);
    let msgs = vec![(1, message(1, 1000)), (2, big.clone()), (3, message(3, 1000))];
    let offer = Offer { capabilities: "NAMESPACE", ..Offer::default() };
    let src =
        FakeImap::start_offering(USER, PW, vec![Folder::new("INBOX", 7, msgs.clone())], vec![Script::healthy()], offer);
    let tmp = TempDir::new("up-bighead");
    backup(&src, tmp.path());
    let dst = target(Persona::default(), "LITERAL+ NAMESPACE UIDPLUS UNSELECT", vec![Script::healthy()]);
    // What an interrupted run left: the big message is there already.
    dst.append("INBOX", 1, big);
    let o = upload(&dst, &tmp.path().join(USER), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 2 uploaded, 1 already there, 0 failed"), "{}", stdout(&o));
    let o = upload(&dst, &tmp.path().join(USER), &[]);
    assert!(stdout(&o).contains("INBOX: 0 uploaded, 3 already there, 0 failed"), "{}", stdout(&o));
    assert!(dst.commands().concat().iter().any(|c| c.contains("BODY.PEEK[HEADER]<0.65536>")));
    dst.assert_no_errors();
}

/// A folder whose name a `.` server cannot hold (a level with a dot in it) fails alone,
/// with one clear line; the others go up.
#[test]
fn a_name_the_target_cannot_hold_fails_that_folder_only() {
    let mut folders = source_folders();
    folders.push(Folder::new("R.D/2023", 11, vec![(1, message(30, 700))]));
    let offer = Offer { capabilities: "NAMESPACE", ..Offer::default() };
    let src = FakeImap::start_offering(USER, PW, folders, vec![Script::healthy()], offer);
    let tmp = TempDir::new("up-unholdable");
    backup(&src, tmp.path());
    let dst = target(Persona::courier(), Persona::COURIER_CAPABILITIES, vec![Script::healthy()]);
    let o = upload(&dst, &tmp.path().join(USER), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("R.D/2023: cannot be named on the target server: the level \"R.D\" holds '.', the target server's hierarchy separator"),
        "{err}"
    );
    assert_eq!(held(&dst), expected(&TO_DOT, |m| m.to_vec()));
}

/// Archives made before the hierarchy was recorded (the records without namespace and
/// separators, or none at all: the original program's) get it inferred: a Courier
/// archive (every folder under `INBOX.`) goes to a `/` server as `Archive/2023`.
#[test]
fn archives_without_a_recorded_hierarchy_get_it_inferred() {
    let folders = vec![
        Folder::new("INBOX", 7, vec![(1, message(1, 900))]),
        Folder::new("INBOX.Archive", 8, vec![(1, message(2, 900))]),
        Folder::new("INBOX.Archive.2023", 9, vec![(1, message(3, 900))]),
    ];
    let offer = Offer { capabilities: "NAMESPACE", persona: Persona::courier(), ..Offer::default() };
    let src = FakeImap::start_offering(USER, PW, folders, vec![Script::healthy()], offer);
    let tmp = TempDir::new("up-infer");
    backup(&src, tmp.path());
    let records = tmp.path().join(".smailarchiver/records.jsonl");
    let text = std::fs::read_to_string(&records).unwrap();
    assert!(text.contains("\"namespace\"") && text.contains("\"separator\":\".\""), "recorded: {text}");
    for form in ["records without the hierarchy", "no records"] {
        if form == "no records" {
            std::fs::remove_dir_all(tmp.path().join(".smailarchiver")).unwrap();
        } else {
            // Each line of the log without the hierarchy, as records of before it was kept.
            let mut without = String::new();
            for line in text.lines() {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(o) = v.as_object_mut() {
                    o.remove("namespace");
                    o.remove("separator");
                }
                without.push_str(&v.to_string());
                without.push('\n');
            }
            std::fs::write(&records, without).unwrap();
        }
        let dst = target(Persona::default(), "LITERAL+ NAMESPACE UIDPLUS UNSELECT", vec![Script::healthy()]);
        let o = upload(&dst, &tmp.path().join(USER), &[]);
        assert_eq!(o.status.code(), Some(0), "{form}: {}", stderr(&o));
        let names: Vec<String> = held(&dst).into_keys().collect();
        assert_eq!(names, ["Archive", "Archive/2023", "INBOX"], "{form}");
    }
}
