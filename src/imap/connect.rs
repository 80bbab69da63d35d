//! Reaching the IMAP server: where it is, TCP with timeouts, TLS (implicit, or after the
//! clear-text part of STARTTLS), and the greeting.
//!
//! Every socket has read and write timeouts, so a stalled server ends a cron job with an
//! error instead of hanging it. With STARTTLS the plain exchange before the upgrade is done
//! here, by hand, so that nothing the server sent in clear text can leak into the
//! encrypted session.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::waited;
use super::error::{quote, ImapError, Unreached};
use super::tls::{self, Stream, Trust};
use super::wire;
use crate::error::{describe_io, Error, Result};

/// How long any connect, read or write may take before the server is given up on.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The implicit-TLS IMAP port.
pub const IMAPS_PORT: u16 = 993;
/// The plain IMAP port, for STARTTLS.
pub const IMAP_PORT: u16 = 143;

/// Longest line accepted from the server before STARTTLS (a greeting, a tagged reply).
const MAX_LINE: usize = 8192;
/// Most untagged lines accepted while waiting for the answer to STARTTLS.
const MAX_UNTAGGED: usize = 64;
/// How long STARTTLS waits for the greeting before it asks, on a second connection,
/// whether the port is an implicit-TLS one (which waits for the client: silence).
const GREETING_PROBE: Duration = Duration::from_secs(2);

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
    /// Send one command at a time, never several before their answers (a server that
    /// mishandles pipelining, found out or configured). Shared by the copies of the spec:
    /// every connection of the account learns it once one found out.
    pub one_at_a_time: Arc<AtomicBool>,
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
        ServerSpec::named(host, port, starttls, ca_file, pin_sha256, &tls::FLAG_NAMES)
    }

    /// [`ServerSpec::new`], naming the settings in errors as `names` says.
    pub fn named(
        host: &str,
        port: Option<u16>,
        starttls: bool,
        ca_file: Option<&Path>,
        pin_sha256: Option<&str>,
        names: &'static tls::Names,
    ) -> Result<ServerSpec> {
        let host = bare_host(host);
        if host.is_empty() {
            return Err(Error::usage("the server name is empty"));
        }
        Ok(ServerSpec {
            host: host.to_string(),
            port: port.unwrap_or(if starttls { IMAP_PORT } else { IMAPS_PORT }),
            starttls,
            trust: Trust::load_as(ca_file, pin_sha256, names)?,
            timeout: DEFAULT_TIMEOUT,
            one_at_a_time: Arc::default(),
        })
    }

    /// Whether commands go one at a time (see [`ServerSpec::one_at_a_time`]).
    pub fn serial(&self) -> bool {
        self.one_at_a_time.load(Ordering::Relaxed)
    }

    /// `host:port` for messages, with IPv6 addresses in brackets.
    pub fn endpoint(&self) -> String {
        endpoint(&self.host, self.port)
    }

    /// An IMAP failure during `what` (a command name) as a one-line message naming the
    /// server; timeouts say how long was waited.
    pub fn imap_error(&self, what: &str, e: &ImapError) -> Error {
        Error::runtime(format!("{} failed during {what}: {}", self.endpoint(), e.describe(self.timeout)))
    }
}

/// Whether an IMAP failure is the socket's timeout running out.
pub fn is_timeout(e: &ImapError) -> bool {
    matches!(e, ImapError::Timeout)
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

/// Connects to one of `addrs` (from [`resolve`]) and sets up TLS (after the clear-text
/// part of STARTTLS if asked); the greeting of an implicit-TLS server is still to be read.
/// Each step (connecting, the greeting, the answer to STARTTLS, the TLS handshake) has the
/// timeout to complete, and an error says how long it really waited.
pub fn open(spec: &ServerSpec, addrs: &[SocketAddr]) -> std::result::Result<Stream, Unreached> {
    let endpoint = spec.endpoint();
    let tcp = open_tcp(addrs, &endpoint, spec.timeout).map_err(Unreached::transient)?;
    if spec.starttls {
        starttls(&tcp, spec, &endpoint)?;
    }
    tls::handshake(&spec.trust, &spec.host, &endpoint, tcp, spec.timeout)
}

pub(crate) fn bare_host(host: &str) -> &str {
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
    let began = Instant::now();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => return set_timeouts(tcp, timeout).map_err(|e| connect_failure(endpoint, &e, began, 1)),
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"));
    Err(connect_failure(endpoint, &e, began, addrs.len()))
}

fn set_timeouts(tcp: TcpStream, timeout: Duration) -> io::Result<TcpStream> {
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    Ok(tcp)
}

/// Each address had the whole timeout: with several, the wait said is what they took together.
fn connect_failure(endpoint: &str, e: &io::Error, began: Instant, tried: usize) -> Error {
    let why = if io_timeout(e) { format!("no answer within {}", waited(began)) } else { describe_io(e) };
    let tried = if tried > 1 { format!(" (tried {tried} addresses)") } else { String::new() };
    Error::runtime(format!("cannot connect to {endpoint}: {why}{tried}"))
}

/// A reader of the socket that must be done by `deadline`: each read may only wait what is
/// left, so a server that sends a byte now and then cannot stretch a step beyond its
/// timeout.
struct Until<'a> {
    tcp: &'a TcpStream,
    deadline: Instant,
}

impl Read for Until<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.tcp.set_read_timeout(Some(left))?;
        let mut tcp = self.tcp;
        tcp.read(buf)
    }
}

fn io_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The clear-text part of STARTTLS: the greeting, then `a0 STARTTLS` and its tagged OK.
/// The greeting and the answer each have the timeout, counted from when they were awaited.
fn starttls(tcp: &TcpStream, spec: &ServerSpec, endpoint: &str) -> std::result::Result<(), Unreached> {
    let timeout = spec.timeout;
    let began = Instant::now();
    let starttls = spec.trust.names().starttls;
    let mut reader = BufReader::new(Until { tcp, deadline: began + timeout });
    let no_greeting = |why: String| {
        Unreached::transient(Error::runtime(format!(
            "no IMAP greeting from {endpoint}: {why} (an implicit-TLS port? then leave out {starttls})"
        )))
    };
    let implicit_tls = || {
        Unreached::permanent(Error::runtime(format!(
            "no IMAP greeting from {endpoint}: it speaks TLS at once, an implicit-TLS port: \
             leave out {starttls} (or give the STARTTLS port, usually {IMAP_PORT})"
        )))
    };
    wait_for_greeting(tcp, &mut reader, spec).map_err(|e| match e {
        Greeting::Tls => implicit_tls(),
        Greeting::Failed(why) => no_greeting(why),
    })?;
    let greeting = read_line(&mut reader, began).map_err(no_greeting)?;
    check_greeting(greeting.as_bytes(), endpoint)?;
    let mut writer = tcp;
    writer.write_all(b"a0 STARTTLS\r\n").map_err(|e| {
        Unreached::transient(Error::runtime(format!("sending STARTTLS to {endpoint}: {}", describe_io(&e))))
    })?;
    let asked = Instant::now();
    reader.get_mut().deadline = asked + timeout;
    let reply = tagged_reply(&mut reader, asked)
        .map_err(|why| Unreached::transient(Error::runtime(format!("no answer to STARTTLS from {endpoint}: {why}"))))?;
    let (status, text) = reply.split_once(' ').unwrap_or((reply.as_str(), ""));
    if !status.eq_ignore_ascii_case("OK") {
        return Err(Unreached::permanent(Error::runtime(format!(
            "{endpoint} does not offer STARTTLS: {}",
            quote(text)
        ))));
    }
    // Bytes sent before the handshake would be read as if they came over TLS (CVE-2011-0411).
    if !reader.buffer().is_empty() {
        return Err(Unreached::permanent(Error::runtime(format!(
            "{endpoint} sent unexpected data after agreeing to STARTTLS"
        ))));
    }
    tcp.set_read_timeout(Some(timeout)).map_err(|e| Unreached::transient(Error::runtime(describe_io(&e))))?;
    Ok(())
}

/// Why no greeting came.
enum Greeting {
    /// The server speaks TLS: an implicit-TLS port.
    Tls,
    /// Anything else, as a phrase.
    Failed(String),
}

/// Waits until the server has sent something, within the timeout. An implicit-TLS server
/// sends nothing until the client speaks, which would cost the whole timeout: after
/// [`GREETING_PROBE`] of silence, a second connection asks the port whether it speaks TLS
/// (its time counts in the timeout).
fn wait_for_greeting(
    tcp: &TcpStream,
    reader: &mut BufReader<Until<'_>>,
    spec: &ServerSpec,
) -> std::result::Result<(), Greeting> {
    let began = Instant::now();
    // Half the timeout at most, so that the probe fits in it too.
    let first_wait = GREETING_PROBE.min(spec.timeout / 2);
    let deadline = began + spec.timeout;
    let silence = || Greeting::Failed(format!("nothing received within {}", waited(began)));
    reader.get_mut().deadline = began + first_wait;
    let mut probed = false;
    let first = loop {
        match reader.fill_buf() {
            Ok([]) => break Err(Greeting::Failed("the server closed the connection".into())),
            Ok(buf) => break Ok(buf[0]),
            Err(e) if io_timeout(&e) && !probed => {
                probed = true;
                let addr = tcp.peer_addr().map_err(|e| Greeting::Failed(describe_io(&e)))?;
                let left = deadline.saturating_duration_since(Instant::now());
                if !left.is_zero() && tls::speaks_tls(&spec.trust, &spec.host, addr, first_wait.min(left)) {
                    break Err(Greeting::Tls);
                }
                if Instant::now() >= deadline {
                    break Err(silence());
                }
                reader.get_mut().deadline = deadline;
            }
            Err(e) if io_timeout(&e) => break Err(silence()),
            Err(e) => break Err(Greeting::Failed(describe_io(&e))),
        }
    };
    reader.get_mut().deadline = deadline;
    match first? {
        b if tls::is_tls_record(b) => Err(Greeting::Tls),
        _ => Ok(()),
    }
}

/// The tagged `a0` reply without its tag, skipping untagged lines; awaited since `began`.
fn tagged_reply(reader: &mut impl BufRead, began: Instant) -> std::result::Result<String, String> {
    for _ in 0..MAX_UNTAGGED {
        let line = read_line(reader, began)?;
        if let Some(reply) = line.strip_prefix("a0 ") {
            return Ok(reply.to_string());
        }
        if !line.starts_with("* ") {
            return Err(format!("unexpected reply {}", quote(&line)));
        }
    }
    Err("too many untagged lines".into())
}

/// One line, without CRLF; the error is a phrase for the caller's message (awaited since
/// `began`, for a timeout's).
fn read_line(reader: &mut impl BufRead, began: Instant) -> std::result::Result<String, String> {
    let mut line = Vec::new();
    match wire::read_raw_line(reader, MAX_LINE, &mut line) {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) if !line.ends_with(b"\n") => Err("line too long or cut off".into()),
        Ok(_) => Ok(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string()),
        Err(e) if io_timeout(&e) => Err(format!("nothing received within {}", waited(began))),
        Err(e) => Err(describe_io(&e)),
    }
}

/// Checks a server's first line: `* OK`, or a clear refusal (`* BYE`: busy, may pass).
pub fn check_greeting(line: &[u8], endpoint: &str) -> std::result::Result<(), Unreached> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    let upper = text.to_ascii_uppercase();
    if upper.starts_with("* OK") {
        Ok(())
    } else if upper.starts_with("* BYE") {
        Err(Unreached::transient(Error::runtime(format!("{endpoint} refused the connection: {}", quote(&text[5..])))))
    } else if upper.starts_with("* PREAUTH") {
        Err(Unreached::permanent(Error::runtime(format!(
            "{endpoint} logged us in before any credentials (PREAUTH): not supported"
        ))))
    } else {
        Err(Unreached::permanent(Error::runtime(format!(
            "{endpoint} is not an IMAP server: it greeted with {}",
            quote(text)
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(e.error.message(), "h:1 refused the connection: too many connections");
        assert!(e.transient, "a busy server may take us later");
        let e = check_greeting(b"SSH-2.0-OpenSSH_9.2\r\n", "h:1").unwrap_err();
        assert!(e.error.message().contains("not an IMAP server") && !e.transient, "{}", e.error);
    }

    #[test]
    fn tagged_replies() {
        let now = Instant::now();
        let mut input = io::Cursor::new(b"* CAPABILITY IMAP4rev1\r\na0 OK Begin TLS\r\n".to_vec());
        assert_eq!(tagged_reply(&mut input, now).unwrap(), "OK Begin TLS");
        let mut input = io::Cursor::new(b"* OK".to_vec());
        assert!(tagged_reply(&mut input, now).unwrap_err().contains("cut off"));
        let mut input = io::Cursor::new(Vec::new());
        assert!(tagged_reply(&mut input, now).unwrap_err().contains("closed"));
    }
}
