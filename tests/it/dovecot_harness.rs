//! Checks the Dovecot test harness itself, so that a failure in a backup test can be
//! trusted to be the client's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::dovecot::{quote, CertKind, Dovecot, FetchStats, ImapSession};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const USER: &str = "alice";
const PASS: &str = "secret";

fn started_with_user() -> Dovecot {
    let server = Dovecot::start();
    server.add_user(USER, PASS);
    server
}

fn refuses(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

#[test]
fn starts_and_stops_cleanly() {
    // How long start-up may take is the harness's own deadline (start() fails past it):
    // a tighter bound here would only measure how busy the machine is.
    let began = Instant::now();
    let server = Dovecot::start();
    eprintln!("dovecot start-up: {:?} (harness says {:?})", began.elapsed(), server.startup_time());

    let (imap, imaps, dir) = (server.imap_port(), server.imaps_port(), server.state_dir().to_owned());
    assert_ne!(imap, imaps);
    assert!(dir.join("dovecot.conf").is_file());
    assert!(dir.starts_with(std::env::temp_dir()) || dir.starts_with("/tmp"));
    assert!(server.log().contains("starting up for imap"), "{}", server.log_tail());
    assert_eq!(server.cert_sha256_hex().len(), 64);

    let began = Instant::now();
    drop(server);
    eprintln!("dovecot shutdown: {:?}", began.elapsed());
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(refuses(imap), "imap port {imap} still open after drop");
    assert!(refuses(imaps), "imaps port {imaps} still open after drop");
}

#[test]
fn two_instances_run_side_by_side() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(started_with_user);
        let b = s.spawn(started_with_user);
        (a.join().unwrap(), b.join().unwrap())
    });
    let ports = [a.imap_port(), a.imaps_port(), b.imap_port(), b.imaps_port()];
    for (i, p) in ports.iter().enumerate() {
        assert!(!ports[i + 1..].contains(p), "port {p} shared: {ports:?}");
    }
    assert_ne!(a.state_dir(), b.state_dir());

    a.append(USER, PASS, "INBOX", b"Subject: only in a\r\n\r\nhello\r\n");
    assert_eq!(a.uids(USER, PASS, "INBOX"), vec![1]);
    assert_eq!(b.uids(USER, PASS, "INBOX"), Vec::<u32>::new());
}

#[test]
fn append_then_fetch_raw_returns_what_imap_serves() {
    let server = started_with_user();
    let stored = b"Subject: bare LF\nFrom: a@example.org\r\n\nline one\nline two\r\nnul:\0.\n";
    let uid = server.append(USER, PASS, "INBOX", stored);
    assert_eq!(uid, 1);

    let served = server.fetch_raw(USER, PASS, "INBOX", uid);
    let expected = b"Subject: bare LF\r\nFrom: a@example.org\r\n\r\nline one\r\nline two\r\nnul:\x80.\r\n";
    assert_eq!(
        String::from_utf8_lossy(&served),
        String::from_utf8_lossy(expected),
        "bare LF should come back as CRLF and NUL as 0x80"
    );
    assert_eq!(served, expected);

    let second = server.append(USER, PASS, "INBOX", b"Subject: two\r\n\r\nx\r\n");
    assert_eq!(second, 2);
    assert_eq!(server.uids(USER, PASS, "INBOX"), vec![1, 2]);
    server.expunge(USER, PASS, "INBOX", 1);
    assert_eq!(server.uids(USER, PASS, "INBOX"), vec![2]);
}

#[test]
fn hierarchical_and_non_ascii_mailboxes() {
    let server = started_with_user();
    server.create_mailbox(USER, PASS, "Archive/2019");
    server.create_mailbox(USER, PASS, "Re&AOc-us");
    server.create_mailbox(USER, PASS, "with \"quotes\" and space");

    let names = server.list_mailboxes(USER, PASS);
    for name in ["INBOX", "Archive", "Archive/2019", "Re&AOc-us", "with \"quotes\" and space"] {
        assert!(names.iter().any(|n| n == name), "{name:?} not in {names:?}");
    }
    assert!(server.user_home(USER).join("Maildir/.Archive.2019").is_dir());

    let uid = server.append(USER, PASS, "Re&AOc-us", b"Subject: r\r\n\r\nbody\r\n");
    assert_eq!(server.fetch_raw(USER, PASS, "Re&AOc-us", uid), b"Subject: r\r\n\r\nbody\r\n");

    let (v1, v2) =
        (server.mailbox_uidvalidity(USER, PASS, "Archive/2019"), server.mailbox_uidvalidity(USER, PASS, "Re&AOc-us"));
    assert!(v1 != 0 && v2 != 0);
    // A deleted and re-created mailbox must get a new UIDVALIDITY: backup tests rely on it.
    server.delete_mailbox(USER, PASS, "Archive/2019");
    assert!(!server.list_mailboxes(USER, PASS).iter().any(|n| n == "Archive/2019"));
    server.create_mailbox(USER, PASS, "Archive/2019");
    assert_ne!(server.mailbox_uidvalidity(USER, PASS, "Archive/2019"), v1);
}

#[test]
#[should_panic(expected = "modified UTF-7")]
fn non_ascii_mailbox_names_must_be_pre_encoded() {
    quote("Reçus");
}

#[test]
fn fetch_counter_sees_client_fetches_but_not_the_harness() {
    let server = started_with_user();
    let uid = server.append(USER, PASS, "INBOX", b"Subject: counted\r\n\r\nbody\r\n");
    server.append(USER, PASS, "INBOX", b"Subject: other\r\n\r\nbody\r\n");
    // Harness sessions (append above, fetch_raw here) are not the client's.
    server.fetch_raw(USER, PASS, "INBOX", uid);
    assert_eq!(server.fetch_stats(USER), FetchStats::default());

    let mut client = server.client_session(USER, PASS);
    client.ok("EXAMINE INBOX");
    client.ok("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)");
    let response = client.ok(&format!("UID FETCH {uid} (BODY.PEEK[])"));
    assert_eq!(response.untagged[0].literals[0], b"Subject: counted\r\n\r\nbody\r\n");
    client.logout();

    let first = server.fetch_stats(USER);
    assert_eq!(first.sessions, 1);
    assert_eq!(first.body_count, 1, "{}", server.log_tail());
    assert_eq!(first.hdr_count, 0);
    assert_eq!(server.fetch_count(USER), 1);

    // A second "run" that only looks at headers, then drops the connection without
    // LOGOUT: still a finished session with its own counters.
    let mut client = server.client_session(USER, PASS);
    client.ok("EXAMINE INBOX");
    client.ok("UID FETCH 1:* (BODY.PEEK[HEADER])");
    drop(client);
    let second = server.fetch_stats(USER).since(&first);
    assert_eq!(
        second,
        FetchStats { sessions: 1, body_count: 0, body_bytes: 0, hdr_count: 2, hdr_bytes: second.hdr_bytes }
    );
    assert!(second.hdr_bytes > 0);

    let commands = server.commands_log(USER);
    eprintln!("client commands:\n{commands}");
    assert!(commands.contains(&format!("UID FETCH {uid} (BODY.PEEK[])")), "{commands}");
    assert!(commands.contains("UID FETCH 1:* (BODY.PEEK[HEADER])"), "{commands}");
    assert!(!commands.contains("smailtest-harness"), "{commands}");
    assert!(!commands.contains("APPEND"), "harness APPENDs leaked into {commands}");
    assert!(!commands.contains(PASS), "{commands}");
    assert_eq!(commands.matches("EXAMINE INBOX").count(), 2, "{commands}");
}

#[test]
fn users_can_be_added_and_changed_while_running() {
    let server = started_with_user();
    server.append(USER, PASS, "INBOX", b"Subject: a\r\n\r\nx\r\n");
    // Right after a lookup in the same second: a shared passwd-file would not be re-read.
    server.add_user("bob", "pässwörd \"quoted\"");
    let mut bob = server.client_session("bob", "pässwörd \"quoted\"");
    bob.ok("SELECT INBOX");
    bob.logout();
    assert_eq!(server.uids("bob", "pässwörd \"quoted\"", "INBOX"), Vec::<u32>::new());

    server.add_user("bob", "n3w");
    let mut session = ImapSession::connect(server.imap_port());
    assert!(!session.try_login("bob", "pässwörd \"quoted\"").is_ok());
    let mut session = ImapSession::connect(server.imap_port());
    session.login("bob", "n3w");
    session.logout();
}

#[test]
fn failed_logins_do_not_slow_down_later_ones() {
    let server = started_with_user();
    let began = Instant::now();
    for attempt in 0..3 {
        let mut session = ImapSession::connect(server.imap_port());
        let response = session.try_login(USER, &format!("wrong{attempt}"));
        assert_eq!(response.status, "NO", "{response:?}");
        assert!(response.text.contains("AUTHENTICATIONFAILED"), "{response:?}");
    }
    let mut session = ImapSession::connect(server.imap_port());
    assert_eq!(session.try_login("nobody", "x").status, "NO");
    let failures = began.elapsed();

    let began = Instant::now();
    server.client_session(USER, PASS).logout();
    let login = began.elapsed();
    eprintln!("4 failed logins: {failures:?}; next good login: {login:?}");
    // Dovecot's penalty would delay the 2nd, 3rd and 4th failure by 2, 4 and 8 s and the
    // next login by 15 s; without it they take about 2 s and a few ms. The bounds sit
    // below the penalty, far above what a busy machine adds.
    assert!(failures < Duration::from_secs(12), "{failures:?}");
    assert!(login < Duration::from_secs(10), "{login:?}");
}

fn s_client(server: &Dovecot, extra: &[&str], port: u16) -> String {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_return_error", "-CAfile"])
        .arg(server.cert_pem_path())
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "openssl s_client failed:\n{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    text
}

#[test]
fn tls_ports_answer_with_the_generated_certificate() {
    for kind in [CertKind::EndEntity, CertKind::SelfSignedCa] {
        let server = Dovecot::builder().cert_kind(kind).start();
        assert_eq!(server.cert_kind(), kind);
        // s_client quits at the EOF of its stdin, before the greeting: rustls_* reads it.
        s_client(&server, &[], server.imaps_port());
        s_client(&server, &["-starttls", "imap"], server.imap_port());

        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(server.cert_pem_path())
            .output()
            .unwrap()
            .stdout;
        let text = String::from_utf8_lossy(&text);
        let ca = match kind {
            CertKind::EndEntity => "CA:FALSE",
            CertKind::SelfSignedCa => "CA:TRUE",
        };
        assert!(text.contains(ca), "{text}");
        assert!(text.contains("DNS:localhost, DNS:127.0.0.1, IP Address:127.0.0.1"), "{text}");
    }
}

/// Handshakes with rustls, trusting only the server's own certificate; returns the
/// greeting or the error, and the DER certificate the server sent.
fn rustls_connect(server: &Dovecot, name: &str) -> (Result<String, String>, Vec<u8>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(server.cert_pem_path()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", server.imaps_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    let mut greeting = [0u8; 4];
    let result = stream
        .read_exact(&mut greeting)
        .map(|()| String::from_utf8_lossy(&greeting).into_owned())
        .map_err(|e| format!("{e:?}"));
    if result.is_ok() {
        let _ = stream.write_all(b"a LOGOUT\r\n");
    }
    let der = tls.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    (result, der)
}

fn sha256sum(data: &[u8], scratch: &Path) -> String {
    let file = scratch.join("peer.der");
    std::fs::write(&file, data).unwrap();
    let output = Command::new("sha256sum").arg(&file).output().unwrap();
    String::from_utf8_lossy(&output.stdout).split(' ').next().unwrap().to_string()
}

#[test]
fn rustls_trusts_the_end_entity_kind_but_not_the_ca_kind() {
    let server = Dovecot::start();
    for name in ["localhost", "127.0.0.1"] {
        let (result, der) = rustls_connect(&server, name);
        assert_eq!(result.as_deref(), Ok("* OK"), "as {name}");
        assert_eq!(sha256sum(&der, server.state_dir()), server.cert_sha256_hex());
    }

    let server = Dovecot::builder().cert_kind(CertKind::SelfSignedCa).start();
    let (result, _) = rustls_connect(&server, "localhost");
    let error = result.expect_err("rustls should refuse a CA certificate as end entity");
    assert!(error.contains("CaUsedAsEndEntity"), "{error}");
}
