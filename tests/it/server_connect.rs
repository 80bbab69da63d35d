//! Connecting and logging in, through the library API, against a private Dovecot on
//! 127.0.0.1 (see tests/it/support/dovecot.rs) and, for what Dovecot cannot be made to do
//! (LOGINDISABLED, XOAUTH2, a refused STARTTLS), a scripted fake server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::dovecot::{CertKind, Dovecot};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use smailarchiver::imap::{connect, is_timeout, resolve, Auth, ServerSpec, Session};
use smailarchiver::secret::Secret;

const USER: &str = "alice";
const PASS: &str = "s3cret-Pa55";
const MESSAGE: &[u8] = b"From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n";
/// Short, so that a test of a stalled exchange ends quickly.
const SHORT: Duration = Duration::from_secs(2);
/// Only a guard against a timeout that never fires (the test would hang): far above any
/// timeout under test, so a slow machine never trips it.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn password(user: &str, password: &str) -> Auth {
    Auth::Login { user: user.into(), password: Secret::new(password.into()) }
}

fn server_spec(port: u16, starttls: bool, ca_file: Option<&Path>, pin: Option<&str>) -> ServerSpec {
    ServerSpec::new("127.0.0.1", Some(port), starttls, ca_file, pin).expect("spec")
}

fn try_connect(spec: &ServerSpec, auth: &Auth) -> Result<Session, String> {
    let addrs = resolve(&spec.host, spec.port).map_err(|e| e.to_string())?;
    connect(spec, &addrs, auth).map_err(|e| e.to_string())
}

/// [`try_connect`]'s error, failing the test if it has not come within [`HANG_GUARD`].
fn connect_error_within_guard(spec: &ServerSpec, auth: &Auth) -> String {
    let (spec, auth) = (spec.clone(), auth.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || tx.send(try_connect(&spec, &auth).map(drop)));
    match rx.recv_timeout(HANG_GUARD) {
        Ok(result) => result.expect_err("connected"),
        Err(_) => panic!("no connection error within {HANG_GUARD:?}: the timeout did not fire"),
    }
}

fn server_with_mail(kind: CertKind) -> Dovecot {
    let server = Dovecot::builder().cert_kind(kind).start();
    server.add_user(USER, PASS);
    server.append(USER, PASS, "INBOX", MESSAGE);
    server
}

fn examine_inbox(mut session: Session) {
    let inbox = session.examine("INBOX").expect("EXAMINE INBOX");
    assert_eq!(inbox.exists, 1);
    session.logout().expect("LOGOUT");
}

fn assert_untrusted(error: &str, server: &Dovecot) {
    assert!(error.starts_with("TLS certificate of 127.0.0.1 not trusted: "), "{error}");
    let fingerprint = server.cert_sha256_hex();
    assert!(error.contains(&format!("presented SHA-256 {fingerprint}")), "{error}");
    assert!(error.contains(&format!("--pin-sha256 {fingerprint}")), "{error}");
    assert!(!error.contains('\n'), "{error}");
}

#[test]
fn implicit_tls_with_ca_file_logs_in_and_examines() {
    let server = server_with_mail(CertKind::EndEntity);
    let spec = server_spec(server.imaps_port(), false, Some(&server.cert_pem_path()), None);
    examine_inbox(try_connect(&spec, &password(USER, PASS)).unwrap());
    // Reconnecting with the same spec and addresses, as the backup does after a drop.
    let addrs = resolve("127.0.0.1", spec.port).unwrap();
    for _ in 0..2 {
        examine_inbox(connect(&spec, &addrs, &password(USER, PASS)).unwrap());
    }
}

#[test]
fn starttls_logs_in_and_examines() {
    let server = server_with_mail(CertKind::EndEntity);
    let spec = server_spec(server.imap_port(), true, Some(&server.cert_pem_path()), None);
    examine_inbox(try_connect(&spec, &password(USER, PASS)).unwrap());
}

#[test]
fn untrusted_certificate_is_refused_with_its_fingerprint() {
    let server = server_with_mail(CertKind::EndEntity);
    for spec in [server_spec(server.imaps_port(), false, None, None), server_spec(server.imap_port(), true, None, None)]
    {
        let error = try_connect(&spec, &password(USER, PASS)).unwrap_err();
        assert_untrusted(&error, &server);
        assert!(error.contains("not signed by a known certificate authority"), "{error}");
    }
}

#[test]
fn pinned_certificate_is_accepted_and_a_wrong_pin_refused() {
    let server = server_with_mail(CertKind::SelfSignedCa);
    let pin = server.cert_sha256_hex().to_string();
    let colons: Vec<String> =
        pin.to_uppercase().as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into()).collect();
    for form in [pin.clone(), colons.join(":")] {
        let spec = server_spec(server.imaps_port(), false, None, Some(&form));
        examine_inbox(try_connect(&spec, &password(USER, PASS)).unwrap());
    }
    let spec = server_spec(server.imap_port(), true, None, Some(&pin));
    examine_inbox(try_connect(&spec, &password(USER, PASS)).unwrap());

    let wrong = format!("{}{}", &pin[..63], if pin.ends_with('0') { '1' } else { '0' });
    let spec = ServerSpec::new("127.0.0.1", Some(server.imaps_port()), false, None, Some(&wrong)).unwrap();
    let error = try_connect(&spec, &password(USER, PASS)).unwrap_err();
    assert_untrusted(&error, &server);
    assert!(error.contains("not the one given with --pin-sha256"), "{error}");
}

#[test]
fn bad_pin_is_a_usage_error() {
    let error = ServerSpec::new("127.0.0.1", None, false, None, Some("abc")).unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
}

#[test]
fn self_signed_ca_certificate_is_accepted_through_ca_file() {
    let server = server_with_mail(CertKind::SelfSignedCa);
    let spec = server_spec(server.imaps_port(), false, Some(&server.cert_pem_path()), None);
    examine_inbox(try_connect(&spec, &password(USER, PASS)).unwrap());
    // Without --ca-file, webpki's reason is reported, with the fingerprint.
    let error = try_connect(&server_spec(server.imaps_port(), false, None, None), &password(USER, PASS)).unwrap_err();
    assert_untrusted(&error, &server);
}

#[test]
fn wrong_password_names_the_user_and_hides_the_password() {
    let server = server_with_mail(CertKind::EndEntity);
    let wrong = "Wr0ng-Passw0rd";
    let spec = server_spec(server.imaps_port(), false, Some(&server.cert_pem_path()), None);
    let error = try_connect(&spec, &password(USER, wrong)).unwrap_err();
    let endpoint = format!("127.0.0.1:{}", server.imaps_port());
    assert!(error.starts_with(&format!("login failed for {USER} on {endpoint}: ")), "{error}");
    assert!(error.contains("AUTHENTICATIONFAILED"), "{error}");
    assert!(!error.contains(wrong) && !error.contains(PASS), "{error}");
}

#[test]
fn non_ascii_password_logs_in() {
    let server = Dovecot::start();
    let password_text = "pässwörd-ünïcode";
    server.add_user("carol", password_text);
    let spec = server_spec(server.imaps_port(), false, Some(&server.cert_pem_path()), None);
    let mut session = try_connect(&spec, &password("carol", password_text)).unwrap();
    session.examine("INBOX").unwrap();
    session.logout().unwrap();
}

#[test]
fn nothing_listening_is_a_clear_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = try_connect(&server_spec(port, false, None, None), &password(USER, PASS)).unwrap_err();
    assert_eq!(error, format!("cannot connect to 127.0.0.1:{port}: Connection refused"));
}

#[test]
fn starttls_against_the_implicit_tls_port_is_recognised_with_a_hint() {
    let server = Dovecot::start();
    let mut spec = server_spec(server.imaps_port(), true, Some(&server.cert_pem_path()), None);
    // Longer than the guard: only recognising the TLS port, not the timeout, ends the wait.
    spec.timeout = HANG_GUARD * 2;
    let error = connect_error_within_guard(&spec, &password(USER, PASS));
    assert_eq!(
        error,
        format!(
            "no IMAP greeting from 127.0.0.1:{}: it speaks TLS at once, an implicit-TLS port: \
             leave out --starttls (or give the STARTTLS port, usually 143)",
            server.imaps_port()
        )
    );
}

#[test]
fn starttls_against_a_port_that_sends_tls_first_is_recognised() {
    // A TLS alert record where the greeting should be (some TLS front ends send one).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]).unwrap();
        // Held open until the client gives up: only the first byte can have told it.
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest);
    });
    let mut spec = server_spec(port, true, None, None);
    spec.timeout = HANG_GUARD * 2;
    let error = connect_error_within_guard(&spec, &password(USER, PASS));
    assert!(error.contains("it speaks TLS at once, an implicit-TLS port: leave out --starttls"), "{error}");
    server.join().unwrap();
}

#[test]
fn starttls_against_a_silent_plain_port_times_out_with_a_hint() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut spec = server_spec(port, true, None, None);
    spec.timeout = SHORT;
    // The message names the timeout that fired: the port said nothing, not even to TLS.
    let error = connect_error_within_guard(&spec, &password(USER, PASS));
    assert_eq!(
        error,
        format!(
            "no IMAP greeting from 127.0.0.1:{port}: nothing received within 2 s \
             (an implicit-TLS port? then leave out --starttls)"
        )
    );
    drop(listener);
}

#[test]
fn implicit_tls_against_the_plain_port_fails_fast_with_a_hint() {
    let server = Dovecot::start();
    let mut spec = server_spec(server.imap_port(), false, Some(&server.cert_pem_path()), None);
    // Fast means on the server's answer, not by a timeout: one longer than the guard
    // would make the guard fail the test.
    spec.timeout = HANG_GUARD * 2;
    let error = connect_error_within_guard(&spec, &password(USER, PASS));
    assert!(!error.contains("within"), "{error}");
    let expected = format!("TLS handshake with 127.0.0.1:{} failed: ", server.imap_port());
    assert!(error.starts_with(&expected), "{error}");
    assert!(error.contains("use --starttls"), "{error}");
}

#[test]
fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut spec = server_spec(port, false, None, None);
    spec.timeout = SHORT;
    let began = Instant::now();
    let error = connect_error_within_guard(&spec, &password(USER, PASS));
    assert_eq!(error, format!("TLS handshake with 127.0.0.1:{port} failed: no answer within 2 s"));
    // It waited for the timeout rather than failing at once.
    assert!(began.elapsed() >= SHORT / 2, "gave up after {:?}", began.elapsed());
    drop(listener);
}

// ---- a scripted server, for what Dovecot will not do ----

/// What the fake server saw: each client line, SASL responses base64-decoded.
type Transcript = JoinHandle<Vec<String>>;

/// Serves one TLS connection with Dovecot's certificate, advertising `caps`; accepts
/// `alice`/`PASS` through AUTHENTICATE PLAIN and the token `good-token` through XOAUTH2,
/// and refuses LOGIN.
fn fake_tls_server(server: &Dovecot, caps: &'static str) -> (u16, Transcript) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(server.cert_pem_path()).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(server.state_dir().join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        serve(BufReader::new(rustls::StreamOwned::new(conn, tcp)), caps)
    });
    (port, handle)
}

fn serve<S: Read + Write>(mut io: BufReader<S>, caps: &str) -> Vec<String> {
    let mut seen = Vec::new();
    send(&mut io, "* OK fake IMAP ready");
    while let Some(line) = receive(&mut io) {
        seen.push(line.clone());
        let (tag, command) = line.split_once(' ').unwrap_or((&line, ""));
        let reply = match command.to_ascii_uppercase().as_str() {
            "CAPABILITY" => format!("* CAPABILITY IMAP4rev1 {caps}\r\n{tag} OK done"),
            "LOGOUT" => format!("* BYE bye\r\n{tag} OK done"),
            "AUTHENTICATE PLAIN" => sasl_exchange(&mut io, &mut seen, tag, "\0alice\0".to_string() + PASS),
            "AUTHENTICATE XOAUTH2" => {
                sasl_exchange(&mut io, &mut seen, tag, "user=alice\x01auth=Bearer good-token\x01\x01".into())
            }
            // A stalled server: no answer at all.
            "EXAMINE \"STALL\"" => continue,
            c if c.starts_with("LOGIN ") => format!("{tag} NO [AUTHENTICATIONFAILED] LOGIN is disabled"),
            _ => format!("{tag} OK done"),
        };
        send(&mut io, &reply);
        if command.eq_ignore_ascii_case("LOGOUT") {
            break;
        }
    }
    seen
}

/// One SASL round; a wrong response gets Google's JSON error challenge first.
fn sasl_exchange<S: Read + Write>(io: &mut BufReader<S>, seen: &mut Vec<String>, tag: &str, good: String) -> String {
    send(io, "+ ");
    let response = decode(&receive(io).unwrap());
    seen.push(response.clone());
    if response == good {
        return format!("{tag} OK logged in");
    }
    send(io, &format!("+ {}", BASE64.encode(r#"{"status":"401","schemes":"Bearer"}"#)));
    seen.push(format!("after error: {:?}", receive(io).unwrap()));
    format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
}

fn decode(line: &str) -> String {
    String::from_utf8(BASE64.decode(line).unwrap()).unwrap()
}

fn send<S: Read + Write>(io: &mut BufReader<S>, text: &str) {
    io.get_mut().write_all(format!("{text}\r\n").as_bytes()).unwrap();
    io.get_mut().flush().unwrap();
}

fn receive<S: Read + Write>(io: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    match io.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

fn fake_spec(server: &Dovecot, port: u16) -> ServerSpec {
    server_spec(port, false, Some(&server.cert_pem_path()), None)
}

#[test]
fn logindisabled_switches_to_authenticate_plain() {
    let server = Dovecot::start();
    let (port, transcript) = fake_tls_server(&server, "LOGINDISABLED AUTH=PLAIN");
    let session = try_connect(&fake_spec(&server, port), &password(USER, PASS)).unwrap();
    drop(session);
    let seen = transcript.join().unwrap();
    assert!(seen.iter().all(|l| !l.contains("LOGIN ")), "{seen:?}");
    assert!(seen.iter().any(|l| l.ends_with(" AUTHENTICATE PLAIN")), "{seen:?}");
    assert!(seen.contains(&format!("\0{USER}\0{PASS}")), "{seen:?}");
}

#[test]
fn non_ascii_password_is_sent_with_authenticate_plain() {
    let server = Dovecot::start();
    let (port, transcript) = fake_tls_server(&server, "AUTH=PLAIN");
    let error = try_connect(&fake_spec(&server, port), &password(USER, "pässwörd")).unwrap_err();
    assert!(error.starts_with("login failed for alice"), "{error}");
    let seen = transcript.join().unwrap();
    assert!(seen.iter().all(|l| !l.contains("LOGIN ")), "{seen:?}");
    assert!(seen.contains(&format!("\0{USER}\0pässwörd")), "{seen:?}");
}

#[test]
fn stalled_session_times_out() {
    let server = Dovecot::start();
    let (port, _transcript) = fake_tls_server(&server, "LOGINDISABLED AUTH=PLAIN");
    let mut spec = fake_spec(&server, port);
    spec.timeout = SHORT;
    let mut session = try_connect(&spec, &password(USER, PASS)).unwrap();
    // No hang guard needed: the fake server hangs up after its own 10 s read timeout,
    // which gives another error than the one asserted here.
    let began = Instant::now();
    let error = session.examine("STALL").unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert!(began.elapsed() >= SHORT / 2, "gave up after {:?}", began.elapsed());
    let message = spec.imap_error("EXAMINE", &error).to_string();
    assert_eq!(message, format!("127.0.0.1:{port} failed during EXAMINE: no answer within 2 s"));
}

#[test]
fn logindisabled_without_plain_is_a_clear_error() {
    let server = Dovecot::start();
    let (port, _transcript) = fake_tls_server(&server, "LOGINDISABLED AUTH=XOAUTH2");
    let error = try_connect(&fake_spec(&server, port), &password(USER, PASS)).unwrap_err();
    assert!(error.contains("LOGINDISABLED") && error.contains("AUTH=PLAIN"), "{error}");
}

#[test]
fn xoauth2_sends_the_bearer_token() {
    let server = Dovecot::start();
    let (port, transcript) = fake_tls_server(&server, "AUTH=XOAUTH2");
    let auth = Auth::OAuth2 { user: USER.into(), token: Secret::new("good-token".into()) };
    drop(try_connect(&fake_spec(&server, port), &auth).unwrap());
    let seen = transcript.join().unwrap();
    assert!(seen.contains(&"user=alice\x01auth=Bearer good-token\x01\x01".to_string()), "{seen:?}");
}

#[test]
fn xoauth2_rejection_quotes_the_server_and_hides_the_token() {
    let server = Dovecot::start();
    let (port, transcript) = fake_tls_server(&server, "AUTH=XOAUTH2");
    let auth = Auth::OAuth2 { user: USER.into(), token: Secret::new("expired-token".into()) };
    let error = try_connect(&fake_spec(&server, port), &auth).unwrap_err();
    assert_eq!(
        error,
        format!(
            "login failed for alice on 127.0.0.1:{port}: [AUTHENTICATIONFAILED] Invalid credentials (Failure) \
             ({{\"status\":\"401\",\"schemes\":\"Bearer\"}})"
        )
    );
    let seen = transcript.join().unwrap();
    // The error challenge is answered with an empty line, not with the token again.
    assert_eq!(seen.last().map(String::as_str), Some("after error: \"\""), "{seen:?}");
}

#[test]
fn xoauth2_needs_the_capability() {
    let server = Dovecot::start();
    let (port, _transcript) = fake_tls_server(&server, "AUTH=PLAIN");
    let auth = Auth::OAuth2 { user: USER.into(), token: Secret::new("good-token".into()) };
    let error = try_connect(&fake_spec(&server, port), &auth).unwrap_err();
    assert!(error.contains("does not offer OAuth2 login"), "{error}");
}

/// A plain-text server that greets and answers STARTTLS with `reply` (CRLF-separated lines).
fn fake_plain_server(reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut io = BufReader::new(tcp);
        send(&mut io, "* OK plain only");
        if receive(&mut io).as_deref() == Some("a0 STARTTLS") {
            send(&mut io, reply);
        }
        // Held open until the client gives up, so that it sees our answer and not a hang-up.
        let _ = receive(&mut io);
    });
    port
}

#[test]
fn server_without_starttls_is_a_clear_error() {
    let port = fake_plain_server("a0 BAD Unknown command STARTTLS");
    let mut spec = server_spec(port, true, None, None);
    spec.timeout = SHORT;
    let error = try_connect(&spec, &password(USER, PASS)).unwrap_err();
    assert_eq!(error, format!("127.0.0.1:{port} does not offer STARTTLS: Unknown command STARTTLS"));
}

#[test]
fn data_injected_after_starttls_is_refused() {
    let port = fake_plain_server("a0 OK Begin TLS\r\n* OK injected");
    let mut spec = server_spec(port, true, None, None);
    spec.timeout = SHORT;
    let error = try_connect(&spec, &password(USER, PASS)).unwrap_err();
    assert!(error.contains("unexpected data after agreeing to STARTTLS"), "{error}");
}

#[test]
fn addresses_are_tried_in_turn() {
    let server = server_with_mail(CertKind::EndEntity);
    let dead: SocketAddr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let spec = server_spec(server.imaps_port(), false, Some(&server.cert_pem_path()), None);
    let live = resolve("127.0.0.1", server.imaps_port()).unwrap();
    examine_inbox(connect(&spec, &[dead, live[0]], &password(USER, PASS)).unwrap());
    let error = connect(&spec, &[dead, dead], &password(USER, PASS)).unwrap_err().to_string();
    assert!(error.ends_with("Connection refused (tried 2 addresses)"), "{error}");
}
