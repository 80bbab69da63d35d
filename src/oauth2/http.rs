//! The little HTTP an OAuth 2.0 client needs: one `POST` of a form to an `https://`
//! endpoint, one JSON object back. HTTP/1.1 over the same TLS as IMAP (rustls, the Mozilla
//! roots built in, plus a CA file of the user's), one request per connection. Everything
//! that comes back is bounded: the status line and the headers, the body (by
//! `Content-Length`, chunks or the end of the connection), and the time it all takes.
//!
//! The request body carries secrets (a refresh token, an authorization code, a client
//! secret) and the answer an access token: both live in [`Wiped`] buffers, and neither is
//! ever part of an error message.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::{describe_io, Error, Result};
use crate::imap::auth::Wiped;
use crate::imap::error::quote;
use crate::imap::tls::{self, Trust};

/// Longest status line or header line.
const MAX_LINE: usize = 8 * 1024;
/// Most header lines in an answer.
const MAX_HEADERS: usize = 100;
/// Largest answer body: token answers are a few KiB (Microsoft's access tokens about 2).
pub const MAX_BODY: usize = 64 * 1024;
/// How long one request may take in all, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// An `https://` address, split for connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port (443 unless given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    /// Parses `https://host[:port][/path][?query]`; anything else (another scheme, user
    /// information, a fragment, spaces) is refused with the reason.
    pub fn parse(text: &str) -> std::result::Result<Url, String> {
        let rest = text.strip_prefix("https://").ok_or_else(|| format!("{text:?} is not an https:// address"))?;
        if text.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
            return Err(format!("{text:?} has spaces, control characters or a fragment (#)"));
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(format!("{text:?} has user information: not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("{text:?}: bad port {p:?}"))?,
            None => 443,
        };
        Ok(Url { host: host.to_string(), port, target })
    }

    /// `host:port`, IPv6 addresses in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// An endpoint: its address as given (for messages), split, and resolved. Names are
/// resolved once, before the process confines itself (the sandbox hides the resolver's
/// files); a renewal during the run connects to the addresses found then.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The address as configured.
    pub text: String,
    /// Split.
    pub url: Url,
    addrs: Vec<SocketAddr>,
}

impl Endpoint {
    /// Parses and resolves `text`; `what` names the setting in errors.
    pub fn resolve(text: &str, what: &str) -> Result<Endpoint> {
        let url = Url::parse(text).map_err(|e| Error::usage(format!("{what}: {e}")))?;
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| Error::runtime(format!("{what}: cannot resolve {}: {}", url.host, describe_io(&e))))?
            .collect();
        if addrs.is_empty() {
            return Err(Error::runtime(format!("{what}: cannot resolve {}: no address", url.host)));
        }
        Ok(Endpoint { text: text.to_string(), url, addrs })
    }
}

/// What came back: the status and the body's JSON object (`None` when the body was not
/// one; an error answer from a proxy, say).
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON object of the body.
    pub json: Option<Map<String, Value>>,
}

/// The body of an `application/x-www-form-urlencoded` request, wiped when dropped.
pub fn form(fields: &[(&str, &str)]) -> Wiped {
    let size: usize = fields.iter().map(|(k, v)| 3 * (k.len() + v.len()) + 2).sum();
    let mut body = Wiped::with_capacity(size);
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            body.push(b"&");
        }
        push_encoded(&mut body, name);
        body.push(b"=");
        push_encoded(&mut body, value);
    }
    body
}

/// Percent-encodes `text` into `out` (RFC 3986 unreserved characters stay as they are).
fn push_encoded(out: &mut Wiped, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(&[b]);
        } else {
            out.push(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Percent-encodes `text` for a URL's query.
pub fn encode(text: &str) -> String {
    let mut out = Wiped::with_capacity(3 * text.len());
    push_encoded(&mut out, text);
    String::from_utf8_lossy(out.bytes()).into_owned()
}

/// Decodes a form or query value (`+` is a space); `None` when it is not UTF-8 after
/// decoding.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The `name=value` pairs of a query string or form, decoded; a pair that does not decode
/// is left out.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// POSTs `body` (a form) to `endpoint` and reads the JSON answer, within [`TIMEOUT`].
pub fn post_form(endpoint: &Endpoint, trust: &Trust, body: &Wiped) -> Result<Answer> {
    let failed = |why: String| Error::runtime(format!("{}: {why}", endpoint.text));
    let deadline = Instant::now() + TIMEOUT;
    let url = &endpoint.url;
    let tcp = connect(&endpoint.addrs, TIMEOUT).map_err(|e| failed(format!("cannot connect: {}", describe_io(&e))))?;
    let stream = tls::handshake(trust, &url.host, &url.authority(), tcp, TIMEOUT)
        .map_err(|e| Error::runtime(format!("{}: {}", endpoint.text, e.error)))?;
    let mut conn = Timed { inner: stream, deadline };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: smailarchiver/{}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.target,
        if url.port == 443 { url.host.clone() } else { url.authority() },
        env!("CARGO_PKG_VERSION"),
        body.bytes().len()
    );
    let mut request = Wiped::with_capacity(head.len() + body.bytes().len());
    request.push(head.as_bytes());
    request.push(body.bytes());
    conn.write_all(request.bytes())
        .and_then(|()| conn.flush())
        .map_err(|e| failed(format!("sending the request: {}", describe_io(&e))))?;
    drop(request);
    let answer = read_answer(&mut io::BufReader::new(conn)).map_err(|e| failed(describe_io(&e)))?;
    Ok(answer)
}

/// The first address of `addrs` that accepts, with read and write timeouts set.
fn connect(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(timeout))?;
                tcp.set_write_timeout(Some(timeout))?;
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A stream that fails once its deadline has passed: a server that trickles an answer
/// byte by byte cannot hold the run.
struct Timed<S> {
    inner: S,
    deadline: Instant,
}

impl<S: Read> Read for Timed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() > self.deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no complete answer in time"));
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Timed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Reads an answer: status line, headers, body; informational (1xx) answers are skipped.
pub fn read_answer(r: &mut impl io::BufRead) -> io::Result<Answer> {
    loop {
        let status_line = line(r)?.ok_or_else(|| bad("the server closed the connection without an answer"))?;
        let status = parse_status(&status_line)?;
        let mut length = None;
        let mut chunked = false;
        let mut count = 0;
        loop {
            let header = line(r)?.ok_or_else(|| bad("the answer ends in its headers"))?;
            if header.is_empty() {
                break;
            }
            count += 1;
            if count > MAX_HEADERS {
                return Err(bad(format!("more than {MAX_HEADERS} header lines")));
            }
            let Some((name, value)) = header.split_once(':') else {
                return Err(bad("a header line without a colon"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value.parse().map_err(|_| bad("a bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad("two different Content-Length headers"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.rsplit(',').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
                if !chunked {
                    return Err(bad(format!("an unsupported Transfer-Encoding {}", quote(value))));
                }
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let mut body = Wiped::with_capacity(MAX_BODY);
        if chunked {
            read_chunked(r, &mut body)?;
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(bad(format!("an answer of {n} bytes, more than the {MAX_BODY} a token answer can need")));
            }
            read_exactly(r, &mut body, n)?;
        } else {
            read_to_close(r, &mut body)?;
        }
        let json = match serde_json::from_slice::<Value>(body.bytes()) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        return Ok(Answer { status, json });
    }
}

fn parse_status(line: &str) -> io::Result<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(bad(format!("not an HTTP answer: {}", quote(line))));
    }
    code.parse().map_err(|_| bad(format!("not an HTTP answer: {}", quote(line))))
}

/// One line without its CR LF, at most [`MAX_LINE`] bytes; `None` at the end of input.
fn line(r: &mut impl io::BufRead) -> io::Result<Option<String>> {
    let Some(bytes) = crate::bounded::read_line(r, MAX_LINE)? else { return Ok(None) };
    let text = String::from_utf8(bytes).map_err(|_| bad("a header line that is not text"))?;
    Ok(Some(text.strip_suffix('\r').unwrap_or(&text).to_string()))
}

fn read_exactly(r: &mut impl Read, body: &mut Wiped, n: usize) -> io::Result<()> {
    let mut left = n;
    let mut buf = [0u8; 4096];
    while left > 0 {
        let want = left.min(buf.len());
        let got = r.read(&mut buf[..want])?;
        if got == 0 {
            return Err(bad("the answer ends before its announced length"));
        }
        body.push(&buf[..got]);
        left -= got;
    }
    buf.fill(0);
    Ok(())
}

fn read_chunked(r: &mut impl io::BufRead, body: &mut Wiped) -> io::Result<()> {
    loop {
        let size_line = line(r)?.ok_or_else(|| bad("the answer ends in a chunk header"))?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("a bad chunk size"))?;
        if size == 0 {
            // Trailer lines up to the empty one.
            for _ in 0..=MAX_HEADERS {
                match line(r)? {
                    None => return Ok(()),
                    Some(l) if l.is_empty() => return Ok(()),
                    Some(_) => {}
                }
            }
            return Err(bad(format!("more than {MAX_HEADERS} trailer lines")));
        }
        if body.bytes().len() + size > MAX_BODY {
            return Err(bad(format!("an answer of more than {MAX_BODY} bytes")));
        }
        read_exactly(r, body, size)?;
        if line(r)?.is_none_or(|l| !l.is_empty()) {
            return Err(bad("a chunk without its line end"));
        }
    }
}

fn read_to_close(r: &mut impl Read, body: &mut Wiped) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let got = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // Servers that close without TLS close_notify: the body is complete or its JSON
            // will not parse.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        if body.bytes().len() + got > MAX_BODY {
            return Err(bad(format!("an answer of more than {MAX_BODY} bytes")));
        }
        body.push(&buf[..got]);
    }
    buf.fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://login.microsoftonline.com/common/oauth2/v2.0/token").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("login.microsoftonline.com", 443, "/common/oauth2/v2.0/token")
        );
        let u = Url::parse("https://127.0.0.1:8443?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.target.as_str()), ("127.0.0.1", 8443, "/?x=1"));
        let u = Url::parse("https://[::1]:9/t").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.authority()), ("::1", 9, "[::1]:9".to_string()));
        for bad in [
            "http://x/t",
            "https://",
            "https://u:p@x/",
            "https://x:0/",
            "https://x:99999/",
            "https://x/a b",
            "https://x/#f",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_and_queries() {
        assert_eq!(form(&[("a", "b c"), ("x", "1/2+&=é")]).bytes(), b"a=b%20c&x=1%2F2%2B%26%3D%C3%A9");
        assert_eq!(decode("b%20c+d%2F"), Some("b c d/".into()));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%C3%A9"), Some("é".into()));
        assert_eq!(
            pairs("code=4%2F0A&state=xyz&&bad=%ff&scope=a+b"),
            [("code".into(), "4/0A".into()), ("state".into(), "xyz".into()), ("scope".into(), "a b".into())]
        );
    }

    fn answer(text: &[u8]) -> io::Result<Answer> {
        read_answer(&mut io::BufReader::new(text))
    }

    #[test]
    fn answers_of_every_shape() {
        let a = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"a\": \"tok\"}\n").unwrap();
        assert_eq!((a.status, a.json.unwrap()["a"].as_str()), (200, Some("tok")));
        let a = answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"e\":\r\n4\r\n \"x\"\r\n1\r\n}\r\n0\r\nT: 1\r\n\r\n").unwrap();
        assert_eq!((a.status, a.json.unwrap()["e"].as_str()), (400, Some("x")));
        let a = answer(b"HTTP/1.0 502 Bad Gateway\r\n\r\n<html>").unwrap();
        assert_eq!(a.status, 502);
        assert!(a.json.is_none());
        let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert!(answer(big.as_bytes()).unwrap_err().to_string().contains("more than"));
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.extend(std::iter::repeat_n(b'x', MAX_BODY + 1));
        assert!(answer(&endless).unwrap_err().to_string().contains("more than"));
        let mut chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            chunks.extend_from_slice(b"1000\r\n");
            chunks.extend(std::iter::repeat_n(b'x', 4096));
            chunks.extend_from_slice(b"\r\n");
        }
        assert!(answer(&chunks).unwrap_err().to_string().contains("more than"));
        let mut headers = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            headers.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        assert!(answer(&headers).unwrap_err().to_string().contains("header lines"));
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "y".repeat(MAX_LINE));
        assert!(answer(long.as_bytes()).is_err());
        for broken in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"",
        ] {
            assert!(answer(broken).is_err(), "{}", String::from_utf8_lossy(broken));
        }
    }
}
