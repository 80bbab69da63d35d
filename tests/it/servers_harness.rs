//! Checks the Cyrus and Courier test harnesses (and Dovecot's behind the same interface),
//! so that a failure in a cross-server test can be trusted to be the client's.

use crate::support;
use std::path::Path;

use crate::support::servers::{self, same_date, Kind, MailServer};
use crate::support::*;

const PW: &str = "harness pw";

fn backup(server: &dyn MailServer, user: &str, root: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = server.client_args(user, root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, &[("SMAILARCHIVER_PASSWD", PW)])
}

/// Namespaces, folders of every kind, APPEND with flags and dates, raw delivery, and the
/// logs and counters that tell the client's sessions from the harness's.
fn exercise(server: &dyn MailServer) {
    let label = server.label();
    let user = "harness";
    server.add_user(user, PW);
    let h = server.hierarchy();
    let mut s = server.session(user, PW);
    let ns = s.ok("NAMESPACE");
    s.logout();
    let personal = format!("((\"{}\" \"{}\"))", h.prefix, h.separator);
    assert!(ns.untagged.iter().any(|u| u.text.starts_with(&format!("* NAMESPACE {personal}"))), "{label}: {ns:?}");

    let names = ["Archive", "Archive/2023", "Отправленные", "日本語", "Reçus", "R&D", "Sent Items"];
    for n in names {
        let wire = server.mailbox(n);
        if !server.list_mailboxes(user, PW).contains(&wire) {
            server.create_mailbox(user, PW, &wire);
        }
    }
    let listed = server.list_mailboxes(user, PW);
    for n in names {
        assert!(listed.contains(&server.mailbox(n)), "{label}: {n} ({}) not in {listed:?}", server.mailbox(n));
    }
    let nested = server.mailbox("Archive/2023");
    let expected_nested = format!("{}Archive{}2023", h.prefix, h.separator);
    assert_eq!(nested, expected_nested);

    let msg = b"From: a@example.org\r\nSubject: flags\r\nMessage-ID: <f@x>\r\n\r\nbody\r\n";
    let uid = server.append(
        user,
        PW,
        &nested,
        &["\\Seen", "\\Flagged", "$Forwarded"],
        Some("02-Mar-2015 10:11:12 +0100"),
        msg,
    );
    let served = server.messages(user, PW, &nested);
    let m = &served[&uid];
    assert_eq!(m.raw, msg.to_vec(), "{label}");
    for f in ["\\Seen", "\\Flagged", "$Forwarded"] {
        assert!(m.flags.iter().any(|g| g == f), "{label}: {f} not in {:?}", m.flags);
    }
    assert!(same_date(&m.internaldate, "02-Mar-2015 10:11:12 +0100"), "{label}: {}", m.internaldate);

    // Mail that APPEND refuses or changes arrives as an MTA would bring it.
    let inbox = server.mailbox("INBOX");
    let reçus = server.mailbox("Reçus");
    for target in [&inbox, &reçus] {
        let before = server.uids(user, PW, target).len();
        server.deliver_raw(user, PW, target, b"Subject: bare LF\nMessage-ID: <lf@x>\n\nline one\nline two\n");
        let all = server.all_raw(user, PW, target);
        assert_eq!(all.len(), before + 1, "{label} {target}");
        let raw = all.values().find(|r| r.windows(15).any(|w| w == b"Subject: bare L")).expect("delivered");
        assert!(raw.ends_with(b"line one\r\nline two\r\n"), "{label}: {:?}", String::from_utf8_lossy(raw));
    }

    // The client's sessions are counted and logged; the harness's are not.
    let before = server.fetch_stats(user);
    let log_before = server.commands_log(user);
    assert!(!log_before.contains("NAMESPACE"), "{label}: harness commands in the log: {log_before}");
    let root = TempDir::new(&format!("harness-{label}"));
    let o = backup(server, user, root.path(), &["-f", &nested]);
    assert_eq!(o.status.code(), Some(0), "{label}: {}", stderr(&o));
    let after = server.fetch_stats(user).since(&before);
    assert_eq!(after.sessions, 1, "{label}: {after:?}");
    assert!(after.body_bytes > 0, "{label}: {after:?}");
    let log = server.commands_log(user);
    let new = &log[log_before.len()..];
    assert!(new.contains("UID FETCH") && new.contains("BODY.PEEK[]"), "{label}: {new}");
    assert!(!new.contains("NAMESPACE") && !new.contains("h1 "), "{label}: {new}");
}

#[test]
fn every_server_speaks_through_the_harness() {
    let servers = servers::start_all(&Kind::ALL);
    std::thread::scope(|scope| {
        for server in servers {
            scope.spawn(move || exercise(server));
        }
    });
}

#[test]
fn courier_renumbers_a_folder_made_on_disk_every_session() {
    let server = servers::shared(Kind::Courier);
    server.add_user("renumber", PW);
    let wire = server.mailbox("Filtered");
    server.deliver_raw("renumber", PW, &wire, b"Subject: on disk\n\nbody\n");
    let first = server.mailbox_uidvalidity("renumber", PW, &wire);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = server.mailbox_uidvalidity("renumber", PW, &wire);
    assert_ne!(first, second, "a folder without courierimapuiddb keeps its UIDVALIDITY");
    // Opened read-write once, it keeps one.
    let mut s = server.session("renumber", PW);
    s.ok(&format!("SELECT {}", support::dovecot::quote(&wire)));
    s.logout();
    let third = server.mailbox_uidvalidity("renumber", PW, &wire);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(server.mailbox_uidvalidity("renumber", PW, &wire), third);
}

#[test]
fn private_servers_stop_and_clean_up() {
    for kind in [Kind::CyrusDot, Kind::Courier] {
        let server = servers::start(kind);
        let (imap, imaps, dir) = (server.imap_port(), server.imaps_port(), server.state_dir().to_path_buf());
        server.add_user("bye", PW);
        server.session("bye", PW).logout();
        drop(server);
        assert!(!dir.exists(), "{kind:?}: {} left behind", dir.display());
        for port in [imap, imaps] {
            assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{kind:?}: port {port} still open");
        }
    }
}
