//! Connecting to the IMAP server and logging in.
//!
//! Every socket has read and write timeouts, so a stalled server ends a cron job with an
//! error instead of hanging it. TLS is implicit by default; with STARTTLS the plain
//! exchange before the upgrade is done here, by hand, so that nothing the server sent
//! in clear text can leak into the encrypted session.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use imap::types::Capabilities;
use imap::{Authenticator, Client};

use crate::error::{describe_io, Error, Result};
use crate::secret::Secret;
use crate::server::tls::{self, seconds, Shared, Trust};

/// How long any connect, read or write may take before the server is given up on.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The implicit-TLS IMAP port.
pub const IMAPS_PORT: u16 = 993;
/// The plain IMAP port, for STARTTLS.
pub const IMAP_PORT: u16 = 143;

/// A logged-in IMAP session over TLS.
pub type Session = imap::Session<Shared>;

/// Longest line accepted from the server before STARTTLS (a greeting, a tagged reply).
const MAX_LINE: u64 = 8192;
/// Most untagged lines accepted while waiting for the answer to STARTTLS.
const MAX_UNTAGGED: usize = 64;
/// Longest server text quoted in an error.
const MAX_QUOTE: usize = 300;

/// Where the server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Connect in plain text and upgrade with STARTTLS instead of implicit TLS.
    pub starttls: bool,
    /// Which certificates to accept.
    pub trust: Trust,
    /// Limit for connecting and for each read and write.
    pub timeout: Duration,
}

impl ServerSpec {
    /// A spec with the default port for the TLS mode and [`DEFAULT_TIMEOUT`]; reads
    /// `ca_file` now, so call it before the process confines itself.
    pub fn new(
        host: &str,
        port: Option<u16>,
        starttls: bool,
        ca_file: Option<&Path>,
        pin_sha256: Option<&str>,
    ) -> Result<ServerSpec> {
        let host = bare_host(host);
        if host.is_empty() {
            return Err(Error::usage("the server name is empty"));
        }
        Ok(ServerSpec {
            host: host.to_string(),
            port: port.unwrap_or(if starttls { IMAP_PORT } else { IMAPS_PORT }),
            starttls,
            trust: Trust::load(ca_file, pin_sha256)?,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// `host:port` for messages, with IPv6 addresses in brackets.
    pub fn endpoint(&self) -> String {
        endpoint(&self.host, self.port)
    }

    /// An error of the IMAP crate during `what` (a command name) as a one-line message
    /// naming the server; timeouts say so.
    pub fn imap_error(&self, what: &str, e: &imap::Error) -> Error {
        imap_failure(&self.endpoint(), what, e, self.timeout)
    }
}

/// Whether an IMAP error is the socket's timeout running out.
pub fn is_timeout(e: &imap::Error) -> bool {
    matches!(e, imap::Error::Io(io) if io_timeout(io))
}

/// How to log in.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A password: `LOGIN`, or `AUTHENTICATE PLAIN` where LOGIN cannot carry it.
    Login {
        /// The account name.
        user: String,
        /// The account password.
        password: Secret,
    },
    /// An OAuth 2.0 access token: `AUTHENTICATE XOAUTH2`.
    OAuth2 {
        /// The account name.
        user: String,
        /// The bearer token.
        token: Secret,
    },
}

impl Auth {
    /// The account name.
    pub fn user(&self) -> &str {
        match self {
            Auth::Login { user, .. } | Auth::OAuth2 { user, .. } => user,
        }
    }
}

/// Resolves the server's addresses. Done once, before the sandbox (which may hide the
/// resolver's files); every connection then reuses them.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let host = bare_host(host);
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::runtime(format!("cannot resolve {host}: {}", describe_io(&e))))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::runtime(format!("cannot resolve {host}: no address")));
    }
    Ok(addrs)
}

/// Connects to one of `addrs` (from [`resolve`]), sets up TLS, logs in and returns the session.
pub fn connect(spec: &ServerSpec, addrs: &[SocketAddr], auth: &Auth) -> Result<Session> {
    connect_shared(spec, addrs, auth).map(|(session, _)| session)
}

/// Like [`connect`], and also returns a second handle on the session's stream, for
/// commands whose answers we read ourselves (see [`crate::backup::fetch`]).
pub fn connect_shared(spec: &ServerSpec, addrs: &[SocketAddr], auth: &Auth) -> Result<(Session, Shared)> {
    let endpoint = spec.endpoint();
    let tcp = open_tcp(addrs, &endpoint, spec.timeout)?;
    if spec.starttls {
        starttls(&tcp, &endpoint, spec.timeout)?;
    }
    let stream = Shared::new(tls::handshake(&spec.trust, &spec.host, &endpoint, tcp, spec.timeout)?);
    let raw = stream.clone();
    let mut client = Client::new(stream);
    // After STARTTLS the greeting was the plain one; the TLS session starts without one.
    if !spec.starttls {
        let greeting = client.read_greeting().map_err(|e| imap_failure(&endpoint, "greeting", &e, spec.timeout))?;
        check_greeting(&greeting, &endpoint)?;
    }
    // Asked explicitly: the crate does not keep the capabilities a greeting may carry,
    // and those sent before STARTTLS must not be trusted anyway.
    let caps = client.capabilities().map_err(|e| imap_failure(&endpoint, "CAPABILITY", &e, spec.timeout))?;
    Ok((log_in(client, &caps, auth, &endpoint, spec.timeout)?, raw))
}

fn bare_host(host: &str) -> &str {
    let host = host.trim();
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The first address that accepts, with the socket's timeouts set.
fn open_tcp(addrs: &[SocketAddr], endpoint: &str, timeout: Duration) -> Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => return set_timeouts(tcp, timeout).map_err(|e| connect_failure(endpoint, &e, timeout, 1)),
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"));
    Err(connect_failure(endpoint, &e, timeout, addrs.len()))
}

fn set_timeouts(tcp: TcpStream, timeout: Duration) -> io::Result<TcpStream> {
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    Ok(tcp)
}

fn connect_failure(endpoint: &str, e: &io::Error, timeout: Duration, tried: usize) -> Error {
    let why = if io_timeout(e) { format!("no answer within {}", seconds(timeout)) } else { describe_io(e) };
    let tried = if tried > 1 { format!(" (tried {tried} addresses)") } else { String::new() };
    Error::runtime(format!("cannot connect to {endpoint}: {why}{tried}"))
}

fn io_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The clear-text part of STARTTLS: the greeting, then `a0 STARTTLS` and its tagged OK.
fn starttls(tcp: &TcpStream, endpoint: &str, timeout: Duration) -> Result<()> {
    let mut reader = BufReader::new(tcp);
    let no_greeting = |why: String| {
        Error::runtime(format!(
            "no IMAP greeting from {endpoint}: {why} (an implicit-TLS port? then leave out --starttls)"
        ))
    };
    let greeting = read_line(&mut reader, timeout).map_err(no_greeting)?;
    check_greeting(greeting.as_bytes(), endpoint)?;
    let mut writer = tcp;
    writer
        .write_all(b"a0 STARTTLS\r\n")
        .map_err(|e| Error::runtime(format!("sending STARTTLS to {endpoint}: {}", describe_io(&e))))?;
    let reply = tagged_reply(&mut reader, timeout)
        .map_err(|why| Error::runtime(format!("no answer to STARTTLS from {endpoint}: {why}")))?;
    let (status, text) = reply.split_once(' ').unwrap_or((reply.as_str(), ""));
    if !status.eq_ignore_ascii_case("OK") {
        return Err(Error::runtime(format!("{endpoint} does not offer STARTTLS: {}", quote(text))));
    }
    // Bytes sent before the handshake would be read as if they came over TLS (CVE-2011-0411).
    if !reader.buffer().is_empty() {
        return Err(Error::runtime(format!("{endpoint} sent unexpected data after agreeing to STARTTLS")));
    }
    Ok(())
}

/// The tagged `a0` reply without its tag, skipping untagged lines.
fn tagged_reply(reader: &mut impl BufRead, timeout: Duration) -> std::result::Result<String, String> {
    for _ in 0..MAX_UNTAGGED {
        let line = read_line(reader, timeout)?;
        if let Some(reply) = line.strip_prefix("a0 ") {
            return Ok(reply.to_string());
        }
        if !line.starts_with("* ") {
            return Err(format!("unexpected reply {}", quote(&line)));
        }
    }
    Err("too many untagged lines".into())
}

/// One line, without CRLF; the error is a phrase for the caller's message.
fn read_line(reader: &mut impl BufRead, timeout: Duration) -> std::result::Result<String, String> {
    let mut line = Vec::new();
    match Read::take(&mut *reader, MAX_LINE).read_until(b'\n', &mut line) {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) if !line.ends_with(b"\n") => Err("line too long or cut off".into()),
        Ok(_) => Ok(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string()),
        Err(e) if io_timeout(&e) => Err(format!("nothing received within {}", seconds(timeout))),
        Err(e) => Err(describe_io(&e)),
    }
}

fn check_greeting(line: &[u8], endpoint: &str) -> Result<()> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    let upper = text.to_ascii_uppercase();
    if upper.starts_with("* OK") {
        Ok(())
    } else if upper.starts_with("* BYE") {
        Err(Error::runtime(format!("{endpoint} refused the connection: {}", quote(&text[5..]))))
    } else if upper.starts_with("* PREAUTH") {
        Err(Error::runtime(format!("{endpoint} logged us in before any credentials (PREAUTH): not supported")))
    } else {
        Err(Error::runtime(format!("{endpoint} is not an IMAP server: it greeted with {}", quote(text))))
    }
}

fn log_in(
    client: Client<Shared>,
    caps: &Capabilities,
    auth: &Auth,
    endpoint: &str,
    timeout: Duration,
) -> Result<Session> {
    let user = auth.user();
    let fail = |(e, _client): (imap::Error, Client<Shared>)| login_failure(user, endpoint, &e, timeout);
    match auth {
        Auth::Login { user, password } => {
            let password = password.expose();
            if [user.as_str(), password].iter().any(|s| s.contains(['\r', '\n', '\0'])) {
                return Err(Error::usage(format!("the user name or password for {user} contains a line break or NUL")));
            }
            if use_plain(caps, user, password, endpoint)? {
                client.authenticate("PLAIN", &Plain::new(user, password)).map_err(fail)
            } else {
                client.login(user, password).map_err(fail)
            }
        }
        Auth::OAuth2 { user, token } => {
            if !has(caps, "AUTH=XOAUTH2") {
                return Err(Error::runtime(format!("{endpoint} does not offer OAuth2 login (AUTH=XOAUTH2)")));
            }
            let xoauth2 = XOAuth2::new(user, token.expose());
            client.authenticate("XOAUTH2", &xoauth2).map_err(|failure| {
                let error = fail(failure);
                match xoauth2.server_error.take() {
                    Some(detail) => Error::runtime(format!("{error} ({detail})")),
                    None => error,
                }
            })
        }
    }
}

/// Whether to send the password with `AUTHENTICATE PLAIN` rather than `LOGIN`: when the
/// server forbids LOGIN, or when LOGIN's quoted strings, which are ASCII by the
/// standard, cannot carry the credentials.
fn use_plain(caps: &Capabilities, user: &str, password: &str, endpoint: &str) -> Result<bool> {
    let plain = has(caps, "AUTH=PLAIN");
    if has(caps, "LOGINDISABLED") {
        if !plain {
            return Err(Error::runtime(format!(
                "{endpoint} refuses LOGIN (LOGINDISABLED) and does not offer AUTH=PLAIN: no way to send a password"
            )));
        }
        return Ok(true);
    }
    Ok(plain && !(user.is_ascii() && password.is_ascii()))
}

/// Capability names are case-insensitive; servers send them in upper case, mostly.
fn has(caps: &Capabilities, name: &str) -> bool {
    caps.has_str(name) || caps.has_str(name.to_ascii_lowercase())
}

/// SASL PLAIN (RFC 4616) without an authorisation identity.
struct Plain<'a> {
    user: &'a str,
    password: &'a str,
    sent: Cell<bool>,
}

impl<'a> Plain<'a> {
    fn new(user: &'a str, password: &'a str) -> Self {
        Plain { user, password, sent: Cell::new(false) }
    }
}

impl Authenticator for Plain<'_> {
    type Response = Vec<u8>;

    // A second challenge would be an error report: never send the password twice.
    fn process(&self, _challenge: &[u8]) -> Vec<u8> {
        if self.sent.replace(true) {
            return Vec::new();
        }
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

/// Google's and Microsoft's XOAUTH2. On failure the server sends a JSON error as a
/// second challenge and expects an empty answer; the JSON is kept for the message.
struct XOAuth2<'a> {
    user: &'a str,
    token: &'a str,
    sent: Cell<bool>,
    server_error: RefCell<Option<String>>,
}

impl<'a> XOAuth2<'a> {
    fn new(user: &'a str, token: &'a str) -> Self {
        XOAuth2 { user, token, sent: Cell::new(false), server_error: RefCell::new(None) }
    }
}

impl Authenticator for XOAuth2<'_> {
    type Response = Vec<u8>;

    fn process(&self, challenge: &[u8]) -> Vec<u8> {
        if self.sent.replace(true) {
            *self.server_error.borrow_mut() = Some(quote(&String::from_utf8_lossy(challenge)));
            return Vec::new();
        }
        format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.token).into_bytes()
    }
}

fn login_failure(user: &str, endpoint: &str, e: &imap::Error, timeout: Duration) -> Error {
    match e {
        imap::Error::No(no) => {
            Error::runtime(format!("login failed for {user} on {endpoint}: {}", quote(&no.information)))
        }
        imap::Error::Bad(bad) => {
            Error::runtime(format!("login failed for {user} on {endpoint}: {}", quote(&bad.information)))
        }
        _ => imap_failure(endpoint, "login", e, timeout),
    }
}

/// An error of the IMAP crate during `what`, as a one-line message naming the server.
fn imap_failure(endpoint: &str, what: &str, e: &imap::Error, timeout: Duration) -> Error {
    let why = match e {
        imap::Error::Io(io) if io_timeout(io) => format!("no answer within {}", seconds(timeout)),
        imap::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection".into()
        }
        imap::Error::Io(io) => describe_io(io),
        imap::Error::ConnectionLost => "the server closed the connection".into(),
        imap::Error::No(no) => quote(&no.information),
        imap::Error::Bad(bad) => quote(&bad.information),
        imap::Error::Bye(bye) => format!("the server hung up: {}", quote(&bye.information)),
        other => other.to_string(),
    };
    Error::runtime(format!("{endpoint} failed during {what}: {why}"))
}

/// Server text fit for a one-line message: control characters (which could drive the
/// terminal) replaced, and cut to a sane length.
pub(crate) fn quote(text: &str) -> String {
    let clean: String = text.trim().chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    match clean.char_indices().nth(MAX_QUOTE) {
        Some((cut, _)) => format!("{}...", &clean[..cut]),
        None => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_responses() {
        let plain = Plain::new("ann", "pässword");
        assert_eq!(plain.process(b""), "\0ann\0pässword".as_bytes());
        assert!(plain.process(b"again").is_empty(), "the password is sent once only");

        let xoauth2 = XOAuth2::new("ann@example.org", "tok");
        assert_eq!(xoauth2.process(b""), b"user=ann@example.org\x01auth=Bearer tok\x01\x01");
        assert!(xoauth2.process(br#"{"status":"401"}"#).is_empty());
        assert_eq!(xoauth2.server_error.take().as_deref(), Some(r#"{"status":"401"}"#));
    }

    #[test]
    fn endpoints_and_hosts() {
        assert_eq!(endpoint("127.0.0.1", 993), "127.0.0.1:993");
        assert_eq!(endpoint("::1", 993), "[::1]:993");
        assert_eq!(bare_host(" [::1] "), "::1");
        let spec = ServerSpec::new("[::1]", None, true, None, None).unwrap();
        assert_eq!((spec.host.as_str(), spec.port, spec.timeout), ("::1", IMAP_PORT, DEFAULT_TIMEOUT));
        assert_eq!(ServerSpec::new("h", None, false, None, None).unwrap().port, IMAPS_PORT);
        assert_eq!(ServerSpec::new(" ", None, false, None, None).unwrap_err().exit_code(), crate::error::EXIT_USAGE);
    }

    #[test]
    fn greetings() {
        assert!(check_greeting(b"* OK [CAPABILITY IMAP4rev1] ready\r\n", "h:1").is_ok());
        let e = check_greeting(b"* BYE too many connections\r\n", "h:1").unwrap_err();
        assert_eq!(e.message(), "h:1 refused the connection: too many connections");
        let e = check_greeting(b"SSH-2.0-OpenSSH_9.2\r\n", "h:1").unwrap_err();
        assert!(e.message().contains("not an IMAP server"), "{e}");
    }

    #[test]
    fn quoting_defuses_server_text() {
        assert_eq!(quote("a\x1b[31mb\r\n"), "a?[31mb");
        assert_eq!(quote(&"x".repeat(1000)).len(), MAX_QUOTE + 3);
    }

    #[test]
    fn tagged_replies() {
        let mut input = io::Cursor::new(b"* CAPABILITY IMAP4rev1\r\na0 OK Begin TLS\r\n".to_vec());
        assert_eq!(tagged_reply(&mut input, DEFAULT_TIMEOUT).unwrap(), "OK Begin TLS");
        let mut input = io::Cursor::new(b"* OK".to_vec());
        assert!(tagged_reply(&mut input, DEFAULT_TIMEOUT).unwrap_err().contains("cut off"));
        let mut input = io::Cursor::new(Vec::new());
        assert!(tagged_reply(&mut input, DEFAULT_TIMEOUT).unwrap_err().contains("closed"));
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let auth = Auth::OAuth2 { user: "ann".into(), token: Secret::new("tok-123".into()) };
        assert!(!format!("{auth:?}").contains("tok-123"));
        assert_eq!(auth.user(), "ann");
    }
}
