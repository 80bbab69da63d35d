//! One archive per mailstore, records that are checked, and the first connection (issue
//! 25): against a private Dovecot, the same account reached under four names (another
//! host name, a TCP proxy on another port, STARTTLS on the plain port) continues in one user
//! directory without fetching a body again, while another server with the same user name
//! (and the same UIDVALIDITYs) gets its own; a run that never logged in leaves nothing on
//! disk; records in which two mailboxes or two accounts own one directory are refused
//! before anything is fetched or moved. Against a scripted server: the first connection is
//! tried again like a lost one, timeouts say what they waited, and no library link reaches
//! an error message.

use crate::support;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::dovecot::Dovecot;
use crate::support::fake_imap::{FakeImap, Fault, Folder, Script};
use crate::support::*;
use serde_json::{json, Value};

const PW: &str = "s3cret pass";

fn message(n: u32, tag: &str) -> Vec<u8> {
    format!(
        "From: Ann <ann@example.org>\r\nMessage-ID: <{tag}.{n}@example.org>\r\nSubject: {tag} message {n}\r\n\r\n\
         body {n} of {tag}\r\n"
    )
    .into_bytes()
}

fn backup_args(user: &str, host: &str, port: u16, ca: &Path, root: &Path, extra: &[&str]) -> Output {
    let port = port.to_string();
    let mut args = vec!["-u", user, "-i", host, "--port", &port, "--ca-file", ca.to_str().unwrap()];
    args.extend(["--dir", root.to_str().unwrap()]);
    args.extend(extra);
    run(&args, &[("SMAILARCHIVER_PASSWD", PW)])
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(d) => d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every file beneath `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A TCP proxy on a port of its own that forwards every connection to `target` (an SSH
/// tunnel, a port forward on a router: the same server under another address).
fn tcp_proxy(target: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
            for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    port
}

/// The records of a root, as the lines of its log.
fn record_lines(root: &Path) -> Vec<Value> {
    let text = fs::read_to_string(root.join(".smailarchiver/records.jsonl")).unwrap();
    text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_same_mailstore_under_four_names_is_one_archive_and_fetched_once() {
    let d = Dovecot::start();
    d.add_user("mona", PW);
    d.create_mailbox("mona", PW, "Sent");
    for n in 1..=3 {
        d.append("mona", PW, "INBOX", &message(n, "inbox"));
    }
    for n in 1..=2 {
        d.append("mona", PW, "Sent", &message(n, "sent"));
    }
    let tmp = TempDir::new("records-names");
    let root = tmp.join("archive");
    let ca = d.cert_pem_path();
    let o = backup_args("mona", "127.0.0.1", d.imaps_port(), &ca, &root, &["--all-folders"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d.fetch_stats("mona").body_count, 5);
    let archived = tree(&root.join("mona"));
    let after_first = d.fetch_stats("mona");

    let proxy = tcp_proxy(d.imaps_port());
    let names: [(&str, u16, &[&str]); 3] =
        [("localhost", d.imaps_port(), &[]), ("127.0.0.1", proxy, &[]), ("127.0.0.1", d.imap_port(), &["--starttls"])];
    for (host, port, extra) in names {
        let mut args = vec!["--all-folders"];
        args.extend(extra);
        let o = backup_args("mona", host, port, &ca, &root, &args);
        assert_eq!(o.status.code(), Some(0), "{host}:{port}: {}", stderr(&o));
        assert!(stdout(&o).contains("the same mailstore as mona on 127.0.0.1:"), "{host}:{port}: {}", stdout(&o));
        assert!(stdout(&o).contains("mona INBOX: 0 new, 3 already archived"), "{}", stdout(&o));
        assert_eq!(
            entries(&root),
            [".smailarchiver", ".smailarchiver.lock", "mona"],
            "{host}:{port}: one user directory"
        );
        assert_eq!(tree(&root.join("mona")), archived, "{host}:{port}");
    }
    let since = d.fetch_stats("mona").since(&after_first);
    assert_eq!((since.sessions, since.body_count, since.body_bytes), (3, 0, 0), "no body fetched again: {since:?}");
    let account = record_lines(&root).into_iter().rfind(|r| r["kind"] == "account").unwrap();
    assert_eq!(account["servers"].as_array().unwrap().len(), 4, "{account}");
    // Once recorded, a name is known at once: nothing compared again, and new mail goes
    // to the same directory.
    d.append("mona", PW, "INBOX", &message(4, "inbox"));
    let o = backup_args("mona", "localhost", d.imaps_port(), &ca, &root, &["--all-folders"]);
    assert!(!stdout(&o).contains("the same mailstore"), "{}", stdout(&o));
    assert!(stdout(&o).contains("mona INBOX: 1 new, 3 already archived"), "{}", stdout(&o));
    assert_eq!(entries(&root.join("mona/INBOX")).len(), 4);
}

/// Dovecot takes UIDVALIDITYs from the clock: two servers whose mailboxes were made in the
/// same second share them. Here they are made equal on purpose, and the messages have the
/// same UIDs and sizes: only what the messages are tells the servers apart.
#[test]
fn another_server_with_the_same_user_and_uidvalidity_gets_its_own_directory() {
    let (d1, d2) = (Dovecot::start(), Dovecot::start());
    for (d, tag) in [(&d1, "one"), (&d2, "two")] {
        d.add_user("otto", PW);
        // A uidlist made before the first login: the server takes its UIDVALIDITY.
        let maildir = d.user_home("otto").join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        fs::write(maildir.join("dovecot-uidlist"), "3 V1700000000 N1\n").unwrap();
        let owner = fs::metadata(d.user_home("otto")).unwrap();
        for p in [
            maildir.clone(),
            maildir.join("cur"),
            maildir.join("new"),
            maildir.join("tmp"),
            maildir.join("dovecot-uidlist"),
        ] {
            std::os::unix::fs::chown(
                &p,
                Some(std::os::unix::fs::MetadataExt::uid(&owner)),
                Some(std::os::unix::fs::MetadataExt::gid(&owner)),
            )
            .unwrap();
        }
        for n in 1..=3 {
            d.append("otto", PW, "INBOX", &message(n, tag));
        }
    }
    assert_eq!(d1.mailbox_uidvalidity("otto", PW, "INBOX"), d2.mailbox_uidvalidity("otto", PW, "INBOX"));
    let tmp = TempDir::new("records-two-servers");
    let root = tmp.join("archive");
    for d in [&d1, &d2] {
        let o = backup_args("otto", "127.0.0.1", d.imaps_port(), &d.cert_pem_path(), &root, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!stdout(&o).contains("the same mailstore"), "{}", stdout(&o));
        assert!(stdout(&o).contains("otto INBOX: 3 new, 0 already archived"), "{}", stdout(&o));
    }
    let users: Vec<String> = entries(&root).into_iter().filter(|e| !e.starts_with('.')).collect();
    assert_eq!(users.len(), 2, "{users:?}");
    assert_eq!(users[0], "otto");
    assert!(users[1].starts_with("otto~"), "{users:?}");
    for (user_dir, tag) in [(&users[0], "one"), (&users[1], "two")] {
        let stored = fs::read(root.join(user_dir).join("INBOX/1.mbox")).unwrap();
        assert!(String::from_utf8_lossy(&stored).contains(&format!("{tag} message 1")), "{user_dir}");
    }
}

/// A run that never logged in (a typo in the port, a wrong password) leaves nothing on
/// disk: no root, no tool directory, no lock file, no user directory; in a root that
/// existed, nothing new. The corrected run then gets the user's own directory name.
#[test]
fn a_run_that_never_logged_in_leaves_nothing_behind() {
    let d = Dovecot::start();
    d.add_user("tina", PW);
    d.append("tina", PW, "INBOX", &message(1, "t"));
    let tmp = TempDir::new("records-typo");
    let root = tmp.join("new/deeper/archive");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let began = Instant::now();
    let o = backup_args("tina", "127.0.0.1", closed, &d.cert_pem_path(), &root, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Tried like a lost connection: after 1, 2 and 4 s.
    assert!(began.elapsed() >= Duration::from_secs(7), "{:?}", began.elapsed());
    assert_eq!(stderr(&o).matches("trying again in").count(), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("Connection refused (tried 4 times in"), "{}", stderr(&o));
    assert!(!tmp.join("new").exists(), "the root and its parents were made for nothing: {:?}", tree(tmp.path()));

    let wrong = run(
        &[
            "-u",
            "tina",
            "-i",
            "127.0.0.1",
            "--port",
            &d.imaps_port().to_string(),
            "--ca-file",
            d.cert_pem_path().to_str().unwrap(),
            "--dir",
            root.to_str().unwrap(),
        ],
        &[("SMAILARCHIVER_PASSWD", "not the password")],
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("login failed") && !stderr(&wrong).contains("trying again"), "{}", stderr(&wrong));
    assert!(!tmp.join("new").exists(), "{:?}", tree(tmp.path()));

    // A root that exists: nothing new in it.
    let existing = tmp.join("existing");
    fs::create_dir(&existing).unwrap();
    fs::write(existing.join("notes.txt"), "mine").unwrap();
    let wrong = run(
        &[
            "-u",
            "tina",
            "-i",
            "127.0.0.1",
            "--port",
            &d.imaps_port().to_string(),
            "--ca-file",
            d.cert_pem_path().to_str().unwrap(),
            "--dir",
            existing.to_str().unwrap(),
        ],
        &[("SMAILARCHIVER_PASSWD", "not the password")],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(entries(&existing), ["notes.txt"]);

    let o = backup_args("tina", "127.0.0.1", d.imaps_port(), &d.cert_pem_path(), &root, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(entries(&root), [".smailarchiver", ".smailarchiver.lock", "tina"]);
}

/// Records in which two mailboxes, or two accounts, own one directory are refused with one
/// line naming both, before anything is fetched or moved.
#[test]
fn records_with_two_owners_of_a_directory_are_refused_before_anything_is_fetched() {
    let d = Dovecot::start();
    d.add_user("rita", PW);
    d.create_mailbox("rita", PW, "Sent");
    d.create_mailbox("rita", PW, "Drafts");
    d.append("rita", PW, "INBOX", &message(1, "i"));
    d.append("rita", PW, "Sent", &message(1, "s"));
    let tmp = TempDir::new("records-owners");
    let root = tmp.join("archive");
    let o = backup_args("rita", "127.0.0.1", d.imaps_port(), &d.cert_pem_path(), &root, &["--all-folders"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = root.join(".smailarchiver/records.jsonl");
    let clean = fs::read_to_string(&log).unwrap();
    d.append("rita", PW, "Sent", &message(2, "s"));
    d.append("rita", PW, "Drafts", &message(1, "d"));
    let before = tree(&root);
    let stats = d.fetch_stats("rita");
    let tampered = [
        (
            json!({"kind": "folder", "account": "rita", "dir": "Sent", "mailbox": "Drafts"}),
            "two mailboxes own the directory rita/Sent: Sent and Drafts",
        ),
        (
            json!({"kind": "account", "dir": "rita", "user": "bob", "servers": ["imap.example.org:993"]}),
            "two accounts own the directory rita: rita on 127.0.0.1:",
        ),
    ];
    for (line, said) in tampered {
        fs::write(&log, format!("{clean}{line}\n")).unwrap();
        let o = backup_args("rita", "127.0.0.1", d.imaps_port(), &d.cert_pem_path(), &root, &["--all-folders"]);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(said) && err.contains("records.jsonl line"), "{err}");
        let mut after = tree(&root);
        after.retain(|p| p != ".smailarchiver/records.jsonl");
        let mut expected = before.clone();
        expected.retain(|p| p != ".smailarchiver/records.jsonl");
        assert_eq!(after, expected, "nothing moved or written");
    }
    let since = d.fetch_stats("rita").since(&stats);
    assert_eq!((since.sessions, since.body_count), (0, 0), "not even logged in: {since:?}");
}

/// The first connection is tried again like a lost one: a server that is busy (BYE) and
/// one that hangs up before greeting are waited out, 1 and 2 s apart.
#[test]
fn the_first_connection_is_tried_again_like_a_lost_one() {
    let served = vec![(1, message(1, "f")), (2, message(2, "f"))];
    let scripts = vec![
        Script::healthy().at_greeting(Fault::Bye),
        Script::healthy().at_greeting(Fault::Garbage(b"")),
        Script::healthy(),
    ];
    let server = FakeImap::start("fay", PW, vec![Folder::new("INBOX", 7, served)], scripts);
    let tmp = TempDir::new("records-retry");
    let root = tmp.join("archive");
    let began = Instant::now();
    let ca = std::path::PathBuf::from(server.ca_file());
    let o = backup_args("fay", "127.0.0.1", server.port(), &ca, &root, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(began.elapsed() >= Duration::from_secs(3), "waited 1 then 2 s: {:?}", began.elapsed());
    let err = stderr(&o);
    assert!(err.contains("refused the connection") && err.contains("trying again in 1 s"), "{err}");
    assert!(err.contains("without a greeting; trying again in 2 s"), "{err}");
    assert!(stdout(&o).contains("fay INBOX: 2 new"), "{}", stdout(&o));
    assert_eq!(server.connections(), 3);
    assert_eq!(entries(&root.join("fay/INBOX")), ["1.mbox", "2.mbox"]);
}

/// A TLS handshake that a server answers with a few bytes and then stalls is given up
/// when the timeout has passed since it began (not a timeout per read), and the error says
/// the time it waited. Each attempt is timed by the server.
#[test]
fn a_stalled_handshake_fails_within_the_timeout_it_names() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let seen = seen.clone();
            thread::spawn(move || {
                let began = Instant::now();
                let mut hello = [0u8; 512];
                let _ = conn.read(&mut hello);
                // Most of a timeout later, the start of a TLS record; then nothing.
                thread::sleep(Duration::from_millis(1500));
                let _ = conn.write_all(&[0x16, 0x03, 0x03, 0x00]);
                let mut rest = [0u8; 64];
                while matches!(conn.read(&mut rest), Ok(n) if n > 0) {}
                seen.lock().unwrap().push(began.elapsed());
            });
        }
    });
    let tmp = TempDir::new("records-stall");
    let o = run(
        &[
            "-u",
            "sam",
            "-i",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--timeout",
            "2",
            "--dir",
            tmp.join("a").to_str().unwrap(),
        ],
        &[("SMAILARCHIVER_PASSWD", PW)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("TLS handshake with 127.0.0.1:") && err.contains("no answer within 2 s"), "{err}");
    assert!(!err.contains("within 3") && !err.contains("within 4"), "{err}");
    thread::sleep(Duration::from_millis(300));
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 4, "tried 4 times: {times:?}");
    for t in times {
        assert!(t < Duration::from_millis(2700), "an attempt lasted {t:?} with --timeout 2");
    }
    assert!(!tmp.join("a").exists());
}

/// A server that completes the TLS handshake and hangs up without ending TLS (a proxy
/// whose backend is down): the error says so in words, without the TLS library's
/// documentation link (rustls puts one in its error for that).
#[test]
fn no_library_link_in_an_error() {
    let dir = TempDir::new("records-link");
    let config = support::fake_imap::tls_config(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            let mut tls = rustls::ServerConnection::new(config.clone()).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            // Dropped without close_notify.
        }
    });
    let o = backup_args("lee", "127.0.0.1", port, &dir.join("cert.pem"), &dir.join("a"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("http") && !err.contains("docs.rs"), "{err}");
    assert!(err.contains("the server closed the connection (without ending TLS properly)"), "{err}");
}
