//! Our own reader for the answers to `UID FETCH ... (UID BODY.PEEK[...])`. The `imap`
//! crate parses a pending answer again after every line it reads, which took three
//! quarters of a backup's CPU (mail is millions of short lines); here each literal is
//! read in one piece. Everything else still goes through the crate.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use crate::server::login::quote;
use crate::server::Shared;

/// Longest line outside a literal; a server sending more is broken or hostile.
const MAX_LINE: u64 = 64 * 1024;

/// One message's answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Its UID.
    pub uid: u32,
    /// The body section's data; `None` when the answer carried no body (flags only).
    pub body: Option<Vec<u8>>,
}

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// The server answered NO or BAD: the session is fine, the command was refused.
    Refused(String),
    /// The stream broke or made no sense: the session must be dropped.
    Connection(String),
}

/// A piece of one untagged answer: text, or the bytes of a literal.
enum Part {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

/// Sends `UID FETCH set query` under `tag`; [`read_tagged`] reads its answers.
pub fn send_uid_fetch(stream: &Shared, tag: &str, set: &str, query: &str) -> Result<(), FetchError> {
    let broken = |e: std::io::Error| FetchError::Connection(format!("sending UID FETCH: {e}"));
    let mut w = stream.clone();
    w.write_all(format!("{tag} UID FETCH {set} {query}\r\n").as_bytes()).map_err(broken)?;
    w.flush().map_err(broken)
}

/// Reads the answers to the command tagged `tag`, sent last, to its tagged end.
/// Literals bigger than `max_literal` are refused, so a server cannot make us hold more.
pub fn read_tagged(
    stream: &Shared,
    tag: &str,
    max_literal: usize,
    timeout: Duration,
) -> Result<Vec<Fetched>, FetchError> {
    let mut r = BufReader::with_capacity(64 * 1024, stream.clone());
    let out = read_answers(&mut r, tag, max_literal, timeout)?;
    // Nothing else was asked for yet: our reader must not keep bytes that belong to
    // the crate's next answer.
    if !r.buffer().is_empty() {
        return Err(FetchError::Connection("the server sent more than the answer".into()));
    }
    Ok(out)
}

/// Reads untagged answers up to the one tagged `tag`; returns the FETCH answers.
pub fn read_answers(
    r: &mut impl BufRead,
    tag: &str,
    max_literal: usize,
    timeout: Duration,
) -> Result<Vec<Fetched>, FetchError> {
    let mut out = Vec::new();
    loop {
        let parts = read_answer(r, max_literal, timeout)?;
        let Some(Part::Text(first)) = parts.first() else {
            return Err(FetchError::Connection("an answer started with a literal".into()));
        };
        if let Some(rest) = first.strip_prefix(tag.as_bytes()).and_then(|r| r.strip_prefix(b" ")) {
            let text = String::from_utf8_lossy(rest).trim().to_string();
            let word = text.split(' ').next().unwrap_or_default().to_ascii_uppercase();
            return match word.as_str() {
                "OK" => Ok(out),
                "NO" | "BAD" => Err(FetchError::Refused(text)),
                _ => Err(FetchError::Connection(format!("unexpected answer: {}", quote(&text)))),
            };
        }
        if !first.starts_with(b"* ") {
            return Err(FetchError::Connection(format!(
                "unexpected answer: {}",
                quote(&String::from_utf8_lossy(first))
            )));
        }
        let words: Vec<&[u8]> = first[2..].splitn(3, |&b| b == b' ').collect();
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case(b"BYE")) {
            return Err(FetchError::Connection("the server hung up (BYE)".into()));
        }
        if words.get(1).is_some_and(|w| w.eq_ignore_ascii_case(b"FETCH") || w.starts_with(b"FETCH")) {
            if let Some(f) = interpret(parts)? {
                out.push(f);
            }
        }
    }
}

/// Reads one answer: a line, and while it ends in a literal marker, the literal and the
/// line that continues it.
fn read_answer(r: &mut impl BufRead, max_literal: usize, timeout: Duration) -> Result<Vec<Part>, FetchError> {
    let mut parts = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|e| FetchError::Connection(io_text(&e, timeout)))?;
        if n == 0 {
            return Err(FetchError::Connection("the server closed the connection".into()));
        }
        if !line.ends_with(b"\n") {
            return Err(FetchError::Connection("a line of the answer is too long".into()));
        }
        let literal = literal_size(&line);
        parts.push(Part::Text(line));
        let Some(size) = literal else { return Ok(parts) };
        if size > max_literal {
            return Err(FetchError::Connection(format!("the server announced a literal of {size} bytes")));
        }
        let mut data = vec![0u8; size];
        r.read_exact(&mut data).map_err(|e| FetchError::Connection(io_text(&e, timeout)))?;
        parts.push(Part::Literal(data));
    }
}

/// The size of the literal a line announces at its end (`{N}\r\n`), if any.
fn literal_size(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n"))?;
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The UID and the body of one FETCH answer.
fn interpret(parts: Vec<Part>) -> Result<Option<Fetched>, FetchError> {
    let mut uid = None;
    let mut body = None;
    let mut parts = parts.into_iter().peekable();
    while let Some(part) = parts.next() {
        let Part::Text(text) = part else { continue };
        if uid.is_none() {
            uid = find_uid(&text);
        }
        let Some(at) = find_ci(&text, b"BODY[]") else { continue };
        let mut rest = &text[at + 6..];
        if rest.first() == Some(&b'<') {
            let close = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len() - 1);
            rest = &rest[close + 1..];
        }
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        body = if rest.first() == Some(&b'{') {
            let Some(Part::Literal(data)) = parts.next() else {
                return Err(FetchError::Connection("a literal is missing".into()));
            };
            // After a literal the answer goes on with another item or ends: anything else
            // means the literal was not as long as announced.
            if let Some(Part::Text(next)) = parts.peek() {
                if !matches!(next.first(), Some(b')' | b' ')) {
                    return Err(FetchError::Connection("a literal was longer than announced".into()));
                }
            }
            Some(data)
        } else if rest.first() == Some(&b'"') {
            Some(unquote(&rest[1..])?)
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"NIL") {
            Some(Vec::new())
        } else {
            return Err(FetchError::Connection("cannot read the body in a FETCH answer".into()));
        };
    }
    Ok(uid.map(|uid| Fetched { uid, body }))
}

/// The number after `UID ` in an answer's text.
fn find_uid(text: &[u8]) -> Option<u32> {
    let mut from = 0;
    while let Some(at) = find_ci(&text[from..], b"UID ") {
        let start = from + at;
        let boundary = start == 0 || matches!(text[start - 1], b'(' | b' ');
        let digits: Vec<u8> = text[start + 4..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
        if boundary && !digits.is_empty() {
            return std::str::from_utf8(&digits).ok()?.parse().ok();
        }
        from = start + 4;
    }
    None
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// The contents of a quoted string whose opening quote was already taken.
fn unquote(s: &[u8]) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        match b {
            b'"' => return Ok(out),
            b'\\' => out.push(*it.next().ok_or_else(|| FetchError::Connection("bad quoted string".into()))?),
            _ => out.push(b),
        }
    }
    Err(FetchError::Connection("unterminated quoted string".into()))
}

fn io_text(e: &std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the server closed the connection".into(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {}", crate::server::tls::seconds(timeout))
        }
        _ => crate::error::describe_io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &[&[u8]]) -> Vec<Part> {
        text.iter()
            .enumerate()
            .map(|(i, t)| if i % 2 == 0 { Part::Text(t.to_vec()) } else { Part::Literal(t.to_vec()) })
            .collect()
    }

    #[test]
    fn literal_markers() {
        assert_eq!(literal_size(b"* 1 FETCH (UID 5 BODY[] {123}\r\n"), Some(123));
        assert_eq!(literal_size(b"* 1 FETCH (UID 5 BODY[] {12+}\r\n"), Some(12));
        assert_eq!(literal_size(b"* 1 FETCH (UID 5 FLAGS (\\Seen))\r\n"), None);
        assert_eq!(literal_size(b"{}\r\n"), None);
    }

    #[test]
    fn answers() {
        let f = interpret(parts(&[b"* 3 FETCH (UID 17 BODY[] {5}\r\n", b"hello", b")\r\n"])).unwrap();
        assert_eq!(f, Some(Fetched { uid: 17, body: Some(b"hello".to_vec()) }));
        let f = interpret(parts(&[b"* 3 FETCH (BODY[]<65536> {3}\r\n", b"abc", b" UID 9)\r\n"])).unwrap();
        assert_eq!(f, Some(Fetched { uid: 9, body: Some(b"abc".to_vec()) }));
        let f = interpret(parts(&[b"* 3 FETCH (UID 9 BODY[]<70000> \"\")\r\n"])).unwrap();
        assert_eq!(f, Some(Fetched { uid: 9, body: Some(Vec::new()) }));
        let f = interpret(parts(&[b"* 3 FETCH (UID 9 FLAGS (\\Seen))\r\n"])).unwrap();
        assert_eq!(f, Some(Fetched { uid: 9, body: None }));
        let f = interpret(parts(&[b"* 3 FETCH (UID 9 BODY[] \"a\\\"b\")\r\n"])).unwrap();
        assert_eq!(f.unwrap().body.unwrap(), b"a\"b");
        assert!(interpret(parts(&[b"* 3 FETCH (UID 9 BODY[] {3}\r\n"])).is_err());
        assert!(interpret(parts(&[b"* 3 FETCH (UID 9 BODY[] {3}\r\n", b"abc", b"XX)\r\n"])).is_err());
        assert_eq!(find_uid(b"* 1 FETCH (X-UID 4 UID 8)"), Some(8));
    }
}
