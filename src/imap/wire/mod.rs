//! The server's answers, read and parsed by us, bounded: every line has a length cap, every
//! literal a size cap chosen by the command that expects it, a SEARCH answer is parsed as
//! it streams in (a million UIDs never sit in one line buffer), and the number of UIDs one
//! answer may carry is capped. Each literal is read in one piece (mail is millions of short
//! lines; a parser that looks at every line again would spend the backup's CPU there).

use std::io::{self, BufRead, Read};

use super::error::ImapError;

mod answer;
mod parse;
#[cfg(test)]
mod tests;

pub use answer::*;
pub use parse::{flag_ok, internal_date_ok};
use parse::{parse, starts_with_ci, Part};

/// Longest line outside a literal (a SEARCH answer excepted, which is streamed).
pub const MAX_LINE: usize = 64 * 1024;
/// Largest literal outside a FETCH body (a mailbox name, a SASL challenge).
pub const MAX_SMALL_LITERAL: usize = 64 * 1024;

/// Where the body of a FETCH answer goes instead of memory: piece by piece, as read from
/// the socket, so a message of any size passes through a fixed buffer.
pub struct BodySink<'a> {
    /// The message whose body is wanted: a body on a line naming another UID is read as
    /// usual (a line naming none is taken, and its answer checked once parsed).
    pub uid: u32,
    /// The largest body taken.
    pub max: u64,
    /// A body bigger than `max` but at most this big is read and thrown away (the
    /// connection stays usable); a bigger one fails the answer unread ([`ImapError::TooMuch`]).
    pub drain: u64,
    /// The size of a body thrown away for being bigger than `max`.
    pub over: Option<u64>,
    /// Whether a body was taken: one is, at most.
    pub taken: bool,
    /// Takes each piece in order. An error stops the reading (the stream is then mid-answer
    /// and the connection must go).
    pub piece: &'a mut dyn FnMut(&[u8]) -> Result<(), ImapError>,
}

/// Reads one response, with literals of up to `max_literal` bytes.
pub fn read_response(r: &mut impl BufRead, max_literal: usize) -> Result<Response, ImapError> {
    read_response_into(r, max_literal, None)
}

/// Reads one response like [`read_response`], except that a `BODY[]` literal goes to
/// `sink`, if given: the first one on a line naming the sink's UID or none; any other is
/// read as usual. Whose body it was shows only once the answer is parsed: the caller
/// checks it (`Session::read_fetch_into`).
pub fn read_response_into(
    r: &mut impl BufRead,
    max_literal: usize,
    mut sink: Option<&mut BodySink<'_>>,
) -> Result<Response, ImapError> {
    let mut parts = Vec::new();
    loop {
        let (line, complete) = read_line(r)?;
        if !complete {
            if parts.is_empty() && starts_with_ci(&line, b"* SEARCH") {
                let uids = stream_search(&line, r)?;
                return Ok(Response::Data(Data::Search(uids)));
            }
            return Err(ImapError::Protocol(format!("a line of more than {MAX_LINE} bytes")));
        }
        let literal = literal_size(&line);
        parts.push(Part::Text(line));
        let Some(size) = literal else { break };
        let size = size.ok_or_else(|| ImapError::Protocol("a literal size that is not a number".into()))?;
        if let (Some(sink), Some(Part::Text(line))) = (sink.as_deref_mut(), parts.last()) {
            let first = parts.len() == 1;
            if !sink.taken && announces_body(line) && (!first || line_uid(line).is_none_or(|u| u == sink.uid)) {
                if size as u64 > sink.drain.max(sink.max) {
                    return Err(ImapError::TooMuch(format!(
                        "the server announced a message of {size} bytes where at most {} were expected",
                        sink.max
                    )));
                }
                if size as u64 > sink.max {
                    sink.over = Some(size as u64);
                    stream_literal(r, size, &mut |_| Ok(()))?;
                } else {
                    stream_literal(r, size, sink.piece)?;
                }
                parts.push(Part::Streamed(size as u64));
                sink.taken = true;
                continue;
            }
        }
        if size > max_literal {
            return Err(ImapError::TooMuch(format!(
                "the server announced a literal of {size} bytes where at most {max_literal} were expected"
            )));
        }
        let mut data = vec![0u8; size];
        r.read_exact(&mut data).map_err(io_error)?;
        parts.push(Part::Literal(data));
    }
    parse(parts)
}

/// Whether a line ends with the announcement of a whole message's literal: `BODY[] {N}`.
fn announces_body(line: &[u8]) -> bool {
    let Some(open) = line.iter().rposition(|&b| b == b'{') else { return false };
    let before = &line[..open];
    before.len() >= 7 && before[before.len() - 7..].eq_ignore_ascii_case(b"BODY[] ")
}

/// The UID a FETCH answer's first line names (`* 5 FETCH (UID 42 ...`), if it does.
fn line_uid(line: &[u8]) -> Option<u32> {
    let at = line.windows(5).position(|w| matches!(w[0], b'(' | b' ') && w[1..].eq_ignore_ascii_case(b"UID "))?;
    let digits: Vec<u8> = line[at + 5..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Passes a literal of `size` bytes to `piece` straight from the reader's buffer.
fn stream_literal(
    r: &mut impl BufRead,
    size: usize,
    piece: &mut dyn FnMut(&[u8]) -> Result<(), ImapError>,
) -> Result<(), ImapError> {
    let mut left = size;
    while left > 0 {
        let buf = r.fill_buf().map_err(io_error)?;
        if buf.is_empty() {
            return Err(ImapError::Lost("the server closed the connection in the middle of an answer".into()));
        }
        let n = buf.len().min(left);
        piece(&buf[..n])?;
        r.consume(n);
        left -= n;
    }
    Ok(())
}

/// Reads one line with its line end into `line`, at most `max` bytes: the client's one
/// line reader (answers, the greeting, the clear-text part of STARTTLS). The bytes read: 0
/// when the stream had ended; a line without its end was cut at `max` or by the end.
pub fn read_raw_line(r: &mut impl BufRead, max: usize, line: &mut Vec<u8>) -> io::Result<usize> {
    r.by_ref().take(max as u64).read_until(b'\n', line)
}

/// One line with its line end; `false` when the cap was reached first.
fn read_line(r: &mut impl BufRead) -> Result<(Vec<u8>, bool), ImapError> {
    let mut line = Vec::new();
    let n = read_raw_line(r, MAX_LINE, &mut line).map_err(io_error)?;
    if n == 0 {
        return Err(ImapError::Lost("the server closed the connection".into()));
    }
    let complete = line.ends_with(b"\n");
    if !complete && line.len() < MAX_LINE {
        return Err(ImapError::Lost("the server closed the connection in the middle of an answer".into()));
    }
    Ok((line, complete))
}

/// The numbers of a SEARCH answer too long for one line, read as they stream in.
fn stream_search(start: &[u8], r: &mut impl BufRead) -> Result<Vec<u32>, ImapError> {
    let mut uids = Vec::new();
    let mut number: Option<u64> = None;
    let mut push = |b: u8, number: &mut Option<u64>| -> Result<bool, ImapError> {
        match b {
            b'0'..=b'9' => {
                let n = number.unwrap_or(0) * 10 + u64::from(b - b'0');
                if n > u64::from(u32::MAX) {
                    return Err(ImapError::Protocol("a UID in a SEARCH answer is too large".into()));
                }
                *number = Some(n);
            }
            b' ' | b'\r' | b'\n' => {
                if let Some(n) = number.take() {
                    if uids.len() >= MAX_UIDS {
                        return Err(ImapError::Protocol(format!("a SEARCH answer of more than {MAX_UIDS} UIDs")));
                    }
                    uids.push(n as u32);
                }
                return Ok(b == b'\n');
            }
            _ => return Err(ImapError::Protocol("unexpected text in a SEARCH answer".into())),
        }
        Ok(false)
    };
    for &b in &start[8..] {
        push(b, &mut number)?;
    }
    loop {
        let buf = r.fill_buf().map_err(io_error)?;
        if buf.is_empty() {
            return Err(ImapError::Lost("the server closed the connection in the middle of an answer".into()));
        }
        let mut used = 0;
        let mut done = false;
        for &b in buf {
            used += 1;
            if push(b, &mut number)? {
                done = true;
                break;
            }
        }
        r.consume(used);
        if done {
            return Ok(uids);
        }
    }
}

/// The size of the literal a line announces at its end (`{N}` or `{N+}`), if it does:
/// `Some(None)` when the braces hold no number.
fn literal_size(line: &[u8]) -> Option<Option<usize>> {
    let body = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n"))?;
    let body = body.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return Some(None);
    }
    Some(std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()))
}

/// The text of the error the session's pace check raises.
pub const TOO_SLOW: &str = "the answer came too slowly";

fn io_error(e: io::Error) -> ImapError {
    if e.get_ref().is_some_and(|inner| inner.to_string() == TOO_SLOW) {
        return ImapError::Slow;
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ImapError::Timeout,
        io::ErrorKind::UnexpectedEof => {
            ImapError::Lost("the server closed the connection in the middle of an answer".into())
        }
        _ => ImapError::Lost(crate::error::describe_io(&e)),
    }
}
