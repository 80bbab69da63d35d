//! The server's answers, read and parsed by us, bounded: every line has a length cap, every
//! literal a size cap chosen by the command that expects it, a SEARCH answer is parsed as
//! it streams in (a million UIDs never sit in one line buffer), and the number of UIDs one
//! answer may carry is capped. Each literal is read in one piece (mail is millions of short
//! lines; a parser that looks at every line again would spend the backup's CPU there).

use std::io::{self, BufRead, Read};

use super::error::ImapError;

/// Longest line outside a literal (a SEARCH answer excepted, which is streamed).
pub const MAX_LINE: usize = 64 * 1024;
/// Most UIDs one SEARCH answer may carry: far above any real folder, far below what would
/// hurt a router's memory (4 bytes each).
pub const MAX_UIDS: usize = 4_000_000;
/// Largest literal outside a FETCH body (a mailbox name, a SASL challenge).
pub const MAX_SMALL_LITERAL: usize = 64 * 1024;

/// A piece of one response: text up to a line end, or a literal's bytes.
#[derive(Debug)]
enum Part {
    Text(Vec<u8>),
    Literal(Vec<u8>),
    /// A FETCH body handed to a [`BodySink`] as it came: its size.
    Streamed(u64),
}

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

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// Refused.
    No,
    /// Not understood.
    Bad,
}

/// One answer from the server.
#[derive(Debug)]
pub enum Response {
    /// The end of the command tagged `tag`.
    Tagged {
        /// The command's tag.
        tag: String,
        /// How it ended.
        status: Status,
        /// The human-readable text, with any response code.
        text: String,
    },
    /// `+ ...`: the server waits for more of the command.
    Continue(String),
    /// `* ...`: data.
    Data(Data),
}

/// The untagged answers the tool uses; anything else is [`Data::Other`].
#[derive(Debug, PartialEq, Eq)]
pub enum Data {
    /// `* OK/NO/BAD [CODE ARGS] text`.
    State {
        /// OK, NO or BAD.
        status: Status,
        /// The response code's name (`UIDVALIDITY`), upper case, if any.
        code: Option<String>,
        /// The code's arguments.
        args: String,
    },
    /// `* BYE text`: the server is closing the connection.
    Bye(String),
    /// `* CAPABILITY ...`, upper case.
    Capability(Vec<String>),
    /// `* LIST (attributes) delimiter name`.
    List(ListEntry),
    /// A LIST entry whose name is not text (so it cannot be sent back), as the server sent
    /// it, made printable.
    UnusableName(String),
    /// `* STATUS name (ITEM n ...)`.
    MailboxStatus {
        /// The mailbox's wire name.
        wire: String,
        /// Items and their numbers, names upper case.
        items: Vec<(String, u64)>,
    },
    /// `* N EXISTS`.
    Exists(u32),
    /// `* SEARCH n n n`.
    Search(Vec<u32>),
    /// `* N FETCH (...)`.
    Fetch(Fetched),
    /// `* NAMESPACE (("" "/")) NIL NIL`: the first personal namespace, if any.
    Namespace(Option<crate::hierarchy::Hierarchy>),
    /// Anything else.
    Other,
}

/// One entry of a LIST answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// Attributes as sent (`\Noselect`), compared case-insensitively.
    pub attributes: Vec<String>,
    /// The hierarchy delimiter, if any.
    pub delimiter: Option<char>,
    /// The mailbox's wire name.
    pub wire: String,
}

impl ListEntry {
    /// Whether the mailbox can hold messages.
    pub fn selectable(&self) -> bool {
        !self.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"))
    }
}

/// One message's FETCH answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Its UID, when the answer carried it.
    pub uid: Option<u32>,
    /// `RFC822.SIZE`.
    pub size: Option<u32>,
    /// The body section's data (`BODY[]`, `BODY[]<offset>`, `BODY[HEADER]` or
    /// `BODY[HEADER]<offset>` or `BODY[HEADER.FIELDS (...)]`); `None` when absent.
    pub body: Option<Vec<u8>>,
    /// The size of a `BODY[]` that went to a [`BodySink`] instead of `body`.
    pub streamed: Option<u64>,
    /// `FLAGS`, as sent; at most [`MAX_FLAGS`] of at most [`MAX_FLAG_LEN`] bytes each
    /// (more fails the answer), names that are not IMAP atoms left out.
    pub flags: Option<Vec<String>>,
    /// `INTERNALDATE` (`"17-Jul-1996 02:44:25 -0700"`), when it had that form.
    pub internal_date: Option<String>,
    /// Gmail's `X-GM-MSGID`: the message's one id across all its folders.
    pub gm_msgid: Option<u64>,
    /// Gmail's `X-GM-THRID`: its conversation.
    pub gm_thrid: Option<u64>,
    /// Gmail's `X-GM-LABELS`, as sent (modified UTF-7 names, system labels with `\`); at
    /// most [`MAX_LABELS`] of at most [`MAX_LABEL_LEN`] bytes each (more fails the answer).
    pub gm_labels: Option<Vec<String>>,
}

/// Most Gmail labels one message may carry in an answer.
pub const MAX_LABELS: usize = 1000;
/// Longest Gmail label name accepted.
pub const MAX_LABEL_LEN: usize = 1024;

/// Most flags one message may carry in an answer: far above any real mailbox's keywords.
pub const MAX_FLAGS: usize = 64;
/// Longest flag name accepted.
pub const MAX_FLAG_LEN: usize = 128;

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

fn starts_with_ci(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A value in a response.
#[derive(Debug)]
enum Value {
    Atom(Vec<u8>),
    Str(Vec<u8>),
    List(Vec<Value>),
    Nil,
    /// A literal that went to a [`BodySink`]: its size.
    Streamed(u64),
}

impl Value {
    fn text(&self) -> Option<String> {
        match self {
            Value::Atom(a) | Value::Str(a) => Some(String::from_utf8_lossy(a).into_owned()),
            _ => None,
        }
    }

    fn number(&self) -> Option<u64> {
        match self {
            Value::Atom(a) if !a.is_empty() && a.len() <= 20 && a.iter().all(u8::is_ascii_digit) => {
                std::str::from_utf8(a).ok()?.parse().ok()
            }
            _ => None,
        }
    }
}

/// Reads values from a response's parts.
struct Tokens {
    parts: std::vec::IntoIter<Part>,
    text: Vec<u8>,
    pos: usize,
    /// Lists open around the value being read.
    depth: usize,
}

/// Deepest nesting of lists read: far beyond any answer the tool asks for, and a bound on
/// the parser's recursion (a line of 64 KiB of `(` would otherwise overflow the stack of a
/// connection's thread and crash the process).
const MAX_NESTING: usize = 100;

impl Tokens {
    fn new(parts: Vec<Part>) -> Tokens {
        let mut parts = parts.into_iter();
        let text = match parts.next() {
            Some(Part::Text(t)) => t,
            _ => Vec::new(),
        };
        Tokens { parts, text, pos: 0, depth: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied().filter(|b| !matches!(b, b'\r' | b'\n'))
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// The rest of the current line, as text.
    fn rest(&mut self) -> String {
        let end = self.text.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(self.text.len());
        let s = String::from_utf8_lossy(&self.text[self.pos.min(end)..end]).into_owned();
        self.pos = end;
        s
    }

    fn value(&mut self) -> Result<Value, ImapError> {
        self.skip_spaces();
        let bad = |what: &str| ImapError::Protocol(format!("cannot read {what} in an answer"));
        match self.peek() {
            None => Err(bad("a value (the answer ends early)")),
            Some(b'(') => {
                if self.depth >= MAX_NESTING {
                    return Err(ImapError::Protocol(format!("lists nested more than {MAX_NESTING} deep")));
                }
                self.pos += 1;
                self.depth += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        Some(b')') => {
                            self.pos += 1;
                            self.depth -= 1;
                            return Ok(Value::List(items));
                        }
                        None => return Err(bad("a list (no closing parenthesis)")),
                        _ => items.push(self.value()?),
                    }
                }
            }
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(bad("a quoted string")),
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Value::Str(out));
                        }
                        Some(b'\\') => {
                            self.pos += 1;
                            out.extend(self.peek());
                            self.pos += 1;
                        }
                        Some(b) => {
                            out.push(b);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                // The line ends with the literal's announcement; the literal follows.
                let value = match self.parts.next() {
                    Some(Part::Literal(data)) => Value::Str(data),
                    Some(Part::Streamed(size)) => Value::Streamed(size),
                    _ => return Err(bad("a literal")),
                };
                self.text = match self.parts.next() {
                    Some(Part::Text(t)) => t,
                    _ => return Err(bad("the text after a literal")),
                };
                self.pos = 0;
                // After a literal the answer goes on with a space or a closing parenthesis,
                // or ends: anything else means it was not as long as announced.
                if !matches!(self.text.first(), Some(b' ' | b')' | b'\r' | b'\n')) {
                    return Err(ImapError::Protocol("a literal was longer than announced".into()));
                }
                Ok(value)
            }
            Some(_) => {
                let start = self.pos;
                let mut depth = 0;
                while let Some(b) = self.peek() {
                    match b {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b' ' | b'(' | b')' if depth <= 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                let atom = self.text[start..self.pos].to_vec();
                if atom.eq_ignore_ascii_case(b"NIL") {
                    Ok(Value::Nil)
                } else {
                    Ok(Value::Atom(atom))
                }
            }
        }
    }
}

fn status_of(word: &str) -> Option<Status> {
    match word.to_ascii_uppercase().as_str() {
        "OK" => Some(Status::Ok),
        "NO" => Some(Status::No),
        "BAD" => Some(Status::Bad),
        _ => None,
    }
}

fn parse(parts: Vec<Part>) -> Result<Response, ImapError> {
    let mut t = Tokens::new(parts);
    let first = t.value()?.text().unwrap_or_default();
    if first == "+" {
        t.skip_spaces();
        return Ok(Response::Continue(t.rest()));
    }
    if first != "*" {
        t.skip_spaces();
        let word = match t.value()? {
            Value::Atom(a) => String::from_utf8_lossy(&a).into_owned(),
            _ => String::new(),
        };
        let status = status_of(&word)
            .ok_or_else(|| ImapError::Protocol(format!("unexpected answer {}", super::error::quote(&first))))?;
        t.skip_spaces();
        return Ok(Response::Tagged { tag: first, status, text: t.rest() });
    }
    let head = t.value()?;
    let word = head.text().unwrap_or_default().to_ascii_uppercase();
    if let Some(n) = head.number() {
        t.skip_spaces();
        let kind = t.value()?.text().unwrap_or_default().to_ascii_uppercase();
        return Ok(Response::Data(match kind.as_str() {
            "EXISTS" => Data::Exists(u32::try_from(n).unwrap_or(u32::MAX)),
            "FETCH" => Data::Fetch(fetched(t.value()?)?),
            _ => Data::Other,
        }));
    }
    let data = match word.as_str() {
        "OK" | "NO" | "BAD" => {
            t.skip_spaces();
            let rest = t.rest();
            let (code, args) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((inside, _)) => {
                    let (name, args) = inside.split_once(' ').unwrap_or((inside, ""));
                    (Some(name.to_ascii_uppercase()), args.to_string())
                }
                None => (None, String::new()),
            };
            Data::State { status: status_of(&word).unwrap_or(Status::Ok), code, args }
        }
        "BYE" => {
            t.skip_spaces();
            Data::Bye(t.rest())
        }
        "CAPABILITY" => {
            t.skip_spaces();
            Data::Capability(t.rest().split_whitespace().map(|c| c.to_ascii_uppercase()).collect())
        }
        "SEARCH" => {
            let mut uids = Vec::new();
            while t.peek().is_some() {
                let v = t.value()?;
                let n = v.number().filter(|&n| n <= u64::from(u32::MAX));
                // ESEARCH-style or MODSEQ extras would not be plain numbers: refuse them.
                let n = n.ok_or_else(|| ImapError::Protocol("unexpected text in a SEARCH answer".into()))?;
                if uids.len() >= MAX_UIDS {
                    return Err(ImapError::Protocol(format!("a SEARCH answer of more than {MAX_UIDS} UIDs")));
                }
                uids.push(n as u32);
                t.skip_spaces();
            }
            Data::Search(uids)
        }
        "LIST" => {
            let Value::List(attrs) = t.value()? else {
                return Err(ImapError::Protocol("a LIST answer without attributes".into()));
            };
            let delimiter = match t.value()? {
                Value::Str(d) | Value::Atom(d) => d.first().map(|&b| char::from(b)),
                _ => None,
            };
            // One such entry fails that folder, not the whole list.
            match t.value()? {
                Value::Atom(a) | Value::Str(a) if std::str::from_utf8(&a).is_err() => {
                    Data::UnusableName(crate::printable::escape(&String::from_utf8_lossy(&a)))
                }
                name => {
                    let wire = mailbox_name(name)?;
                    let attributes = attrs.iter().filter_map(Value::text).collect();
                    Data::List(ListEntry { attributes, delimiter, wire })
                }
            }
        }
        "STATUS" => {
            let wire = mailbox_name(t.value()?)?;
            let Value::List(list) = t.value()? else {
                return Err(ImapError::Protocol("a STATUS answer without items".into()));
            };
            let mut items = Vec::new();
            for pair in list.chunks(2) {
                if let [name, value] = pair {
                    if let (Some(name), Some(n)) = (name.text(), value.number()) {
                        items.push((name.to_ascii_uppercase(), n));
                    }
                }
            }
            Data::MailboxStatus { wire, items }
        }
        "NAMESPACE" => Data::Namespace(personal_namespace(t.value()?)),
        _ => Data::Other,
    };
    Ok(Response::Data(data))
}

/// The first namespace of a NAMESPACE answer's personal list (`(("INBOX." "."))`), if
/// it has one with a text prefix.
fn personal_namespace(v: Value) -> Option<crate::hierarchy::Hierarchy> {
    let Value::List(namespaces) = v else { return None };
    let Value::List(first) = namespaces.into_iter().next()? else { return None };
    let mut parts = first.into_iter();
    let prefix = String::from_utf8(match parts.next()? {
        Value::Str(p) | Value::Atom(p) => p,
        _ => return None,
    })
    .ok()?;
    let separator = match parts.next() {
        Some(Value::Str(d) | Value::Atom(d)) if d.len() == 1 && d[0].is_ascii() => Some(char::from(d[0])),
        _ => None,
    };
    Some(crate::hierarchy::Hierarchy { prefix, separator })
}

/// A mailbox name as the server sent it (an atom, a quoted string or a literal). Names
/// that are not valid UTF-8 cannot be sent back in a quoted string: they are refused.
fn mailbox_name(v: Value) -> Result<String, ImapError> {
    match v {
        Value::Atom(a) | Value::Str(a) => {
            String::from_utf8(a).map_err(|_| ImapError::Protocol("a mailbox name that is not text".into()))
        }
        _ => Err(ImapError::Protocol("a mailbox name is missing".into())),
    }
}

/// The items of a FETCH answer that the tool uses.
fn fetched(v: Value) -> Result<Fetched, ImapError> {
    let Value::List(items) = v else {
        return Err(ImapError::Protocol("a FETCH answer without items".into()));
    };
    let mut out = Fetched::default();
    let mut items = items.into_iter();
    while let Some(name) = items.next() {
        let Some(name) = name.text() else { continue };
        let value = items.next().ok_or_else(|| ImapError::Protocol(format!("FETCH item {name} has no value")))?;
        let upper = name.to_ascii_uppercase();
        if upper == "UID" {
            out.uid = value.number().and_then(|n| u32::try_from(n).ok());
        } else if upper == "RFC822.SIZE" {
            out.size = value.number().and_then(|n| u32::try_from(n).ok());
        } else if upper == "FLAGS" {
            out.flags = Some(flags(value)?);
        } else if upper == "INTERNALDATE" {
            out.internal_date = value.text().filter(|d| internal_date_ok(d));
        } else if upper == "X-GM-MSGID" {
            out.gm_msgid = value.number();
        } else if upper == "X-GM-THRID" {
            out.gm_thrid = value.number();
        } else if upper == "X-GM-LABELS" {
            out.gm_labels = Some(labels(value)?);
        } else if upper == "BODY[]"
            || upper == "BODY[HEADER]"
            || upper.starts_with("BODY[HEADER.FIELDS ")
            || ((upper.starts_with("BODY[]<") || upper.starts_with("BODY[HEADER]<")) && upper.ends_with('>'))
        {
            // NIL is how Dovecot answers for a message expunged meanwhile: no body at all,
            // not an empty message.
            out.body = match value {
                Value::Str(data) | Value::Atom(data) => Some(data),
                Value::Nil => None,
                Value::Streamed(size) if upper == "BODY[]" => {
                    out.streamed = Some(size);
                    None
                }
                Value::List(_) | Value::Streamed(_) => {
                    return Err(ImapError::Protocol("cannot read the body in a FETCH answer".into()))
                }
            };
        }
    }
    Ok(out)
}

/// A FETCH answer's flag list, bounded and sorted; a name that is not a flag atom (it could
/// not be stored again with APPEND) is left out.
fn flags(v: Value) -> Result<Vec<String>, ImapError> {
    let Value::List(items) = v else {
        return Err(ImapError::Protocol("FLAGS without a list in a FETCH answer".into()));
    };
    if items.len() > MAX_FLAGS {
        return Err(ImapError::Protocol(format!("a message with more than {MAX_FLAGS} flags")));
    }
    let mut out = Vec::new();
    for item in items {
        let Value::Atom(a) = item else { continue };
        if a.len() > MAX_FLAG_LEN {
            return Err(ImapError::Protocol(format!("a flag name of more than {MAX_FLAG_LEN} bytes")));
        }
        // \Recent belongs to a session, not to the message (and APPEND cannot set it).
        if flag_ok(&a) && !a.eq_ignore_ascii_case(b"\\Recent") {
            out.extend(String::from_utf8(a).ok());
        }
    }
    // In one order, so a refresh compares sets, not the server's whims.
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A FETCH answer's Gmail label list (atoms, quoted strings or literals), bounded, sorted.
fn labels(v: Value) -> Result<Vec<String>, ImapError> {
    let Value::List(items) = v else {
        return Err(ImapError::Protocol("X-GM-LABELS without a list in a FETCH answer".into()));
    };
    if items.len() > MAX_LABELS {
        return Err(ImapError::Protocol(format!("a message with more than {MAX_LABELS} labels")));
    }
    let mut out = Vec::new();
    for item in items {
        let (Value::Atom(a) | Value::Str(a)) = item else { continue };
        if a.len() > MAX_LABEL_LEN {
            return Err(ImapError::Protocol(format!("a label name of more than {MAX_LABEL_LEN} bytes")));
        }
        out.push(String::from_utf8_lossy(&a).into_owned());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Whether `name` is a flag as IMAP writes them: `\` then an atom, or a keyword atom.
pub fn flag_ok(name: &[u8]) -> bool {
    let atom = name.strip_prefix(b"\\").unwrap_or(name);
    !atom.is_empty()
        && atom.len() <= MAX_FLAG_LEN
        && atom.iter().all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

/// Whether `d` has the form of an IMAP date-time, `dd-Mon-yyyy hh:mm:ss +zzzz` (the day
/// may be space-padded).
pub fn internal_date_ok(d: &str) -> bool {
    let b = d.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    b.len() == 26
        && (b[0] == b' ' || b[0].is_ascii_digit())
        && b[1].is_ascii_digit()
        && b[2] == b'-'
        && b[3..6].iter().all(u8::is_ascii_alphabetic)
        && b[6] == b'-'
        && digits(7..11)
        && b[11] == b' '
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && matches!(b[21], b'+' | b'-')
        && digits(22..26)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], max: usize) -> Result<Response, ImapError> {
        read_response(&mut io::Cursor::new(input.to_vec()), max)
    }

    fn data(input: &[u8]) -> Data {
        match read(input, 1 << 20).unwrap() {
            Response::Data(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lists_nested_too_deep_are_refused_not_a_crash() {
        let mut line = b"* 1 FETCH ".to_vec();
        line.extend(std::iter::repeat_n(b'(', 60_000));
        line.extend_from_slice(b"\r\n");
        // On a thread with a small stack, as a connection's is.
        let e = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || read(&line, 1 << 20).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(e, ImapError::Protocol("lists nested more than 100 deep".into()));
        let ok = format!("* 1 FETCH (UID 1 X {}{})\r\n", "(".repeat(90), ")".repeat(90));
        assert!(matches!(read(ok.as_bytes(), 100).unwrap(), Response::Data(Data::Fetch(_))));
    }

    #[test]
    fn tagged_and_state() {
        match read(b"a1 NO [TRYCREATE] no such mailbox\r\n", 0).unwrap() {
            Response::Tagged { tag, status, text } => {
                assert_eq!((tag.as_str(), status, text.as_str()), ("a1", Status::No, "[TRYCREATE] no such mailbox"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            data(b"* OK [UIDVALIDITY 1234] UIDs valid\r\n"),
            Data::State { status: Status::Ok, code: Some("UIDVALIDITY".into()), args: "1234".into() }
        );
        assert_eq!(data(b"* BYE shutting down\r\n"), Data::Bye("shutting down".into()));
        assert_eq!(data(b"* 17 EXISTS\r\n"), Data::Exists(17));
        assert_eq!(
            data(b"* CAPABILITY IMAP4rev1 id LIST-STATUS\r\n"),
            Data::Capability(vec!["IMAP4REV1".into(), "ID".into(), "LIST-STATUS".into()])
        );
        assert!(matches!(read(b"+ go on\r\n", 0).unwrap(), Response::Continue(t) if t == "go on"));
    }

    #[test]
    fn namespace_and_partial_headers() {
        use crate::hierarchy::Hierarchy;
        let ns = |prefix: &str, sep| Data::Namespace(Some(Hierarchy { prefix: prefix.into(), separator: sep }));
        assert_eq!(data(b"* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n"), ns("INBOX.", Some('.')));
        assert_eq!(
            data(b"* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Shared/\" \"/\"))\r\n"),
            ns("", Some('/'))
        );
        assert_eq!(data(b"* NAMESPACE ((\"\" NIL)) NIL NIL\r\n"), ns("", None));
        assert_eq!(data(b"* NAMESPACE NIL NIL NIL\r\n"), Data::Namespace(None));
        let Data::Fetch(f) = data(b"* 2 FETCH (UID 9 BODY[HEADER]<0> {4}\r\nA: b)\r\n") else { panic!() };
        assert_eq!((f.uid, f.body.as_deref()), (Some(9), Some(&b"A: b"[..])));
    }

    #[test]
    fn list_and_status() {
        assert_eq!(
            data(b"* LIST (\\HasNoChildren) \"/\" \"Re&AOc-us\"\r\n"),
            Data::List(ListEntry {
                attributes: vec!["\\HasNoChildren".into()],
                delimiter: Some('/'),
                wire: "Re&AOc-us".into()
            })
        );
        let Data::List(e) = data(b"* LIST (\\Noselect) NIL {7}\r\na\"b\\c d\r\n") else { panic!() };
        assert_eq!((e.wire.as_str(), e.delimiter, e.selectable()), ("a\"b\\c d", None, false));
        let Data::List(e) = data(b"* LIST () \".\" \"q\\\"x\"\r\n") else { panic!() };
        assert_eq!(e.wire, "q\"x");
        assert_eq!(data(b"* LIST () \"/\" {4}\r\nR\xe9\x1bx\r\n"), Data::UnusableName("R\u{fffd}\\u{1b}x".into()));
        assert_eq!(
            data(b"* STATUS \"Sent Items\" (UIDNEXT 12 UIDVALIDITY 9 MESSAGES 3)\r\n"),
            Data::MailboxStatus {
                wire: "Sent Items".into(),
                items: vec![("UIDNEXT".into(), 12), ("UIDVALIDITY".into(), 9), ("MESSAGES".into(), 3)]
            }
        );
    }

    /// Reads `input` with a sink for UID `uid` (tiny reads: pieces cross every boundary);
    /// returns the responses and what the sink got.
    fn read_streamed(input: &[u8], uid: u32, max: u64) -> (Vec<Result<Response, ImapError>>, Vec<u8>) {
        let mut got = Vec::new();
        let mut responses = Vec::new();
        {
            let mut piece = |d: &[u8]| {
                got.extend_from_slice(d);
                Ok(())
            };
            let mut sink = BodySink { uid, max, drain: 20, over: None, taken: false, piece: &mut piece };
            let mut r = io::BufReader::with_capacity(7, input);
            while !r.fill_buf().unwrap().is_empty() {
                let res = read_response_into(&mut r, 100, Some(&mut sink));
                let stop = res.is_err();
                responses.push(res);
                if stop {
                    break;
                }
            }
        }
        (responses, got)
    }

    #[test]
    fn a_body_streams_to_the_sink_once_and_only_for_its_uid() {
        let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut input = b"* 1 FETCH (UID 5 FLAGS (\\Seen))\r\n* 2 FETCH (UID 6 BODY[] {3}\r\nabc)\r\n".to_vec();
        input.extend(format!("* 3 FETCH (UID 7 FLAGS () BODY[] {{{}}}\r\n", body.len()).as_bytes());
        input.extend(&body);
        input.extend(b" INTERNALDATE \" 7-Jul-2019 02:44:25 -0700\")\r\n* 4 FETCH (UID 7 BODY[] {2}\r\nhi)\r\n");
        let (responses, got) = read_streamed(&input, 7, 5000);
        assert_eq!(got, body, "the body of UID 7, bigger than max_literal, went to the sink whole");
        let fetched: Vec<Fetched> = responses
            .into_iter()
            .map(|r| match r {
                Ok(Response::Data(Data::Fetch(f))) => f,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fetched[1].body.as_deref(), Some(&b"abc"[..]), "UID 6's body is read as usual");
        assert_eq!((fetched[2].uid, fetched[2].body.as_ref(), fetched[2].streamed), (Some(7), None, Some(1000)));
        assert_eq!(fetched[2].internal_date.as_deref(), Some(" 7-Jul-2019 02:44:25 -0700"));
        assert_eq!(fetched[3].body.as_deref(), Some(&b"hi"[..]), "a second body is not streamed");
        // A UID after the body: taken, to be checked by the caller.
        let (responses, got) = read_streamed(b"* 3 FETCH (BODY[] {4}\r\nwxyz UID 9)\r\n", 7, 10);
        assert_eq!(got, b"wxyz");
        assert!(
            matches!(&responses[0], Ok(Response::Data(Data::Fetch(f))) if f.uid == Some(9) && f.streamed == Some(4))
        );
        // Bigger than the sink allows: read and thrown away up to the drain size, refused
        // before a byte is read beyond it.
        let (responses, got) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {11}\r\nhello world)\r\n", 7, 10);
        assert!(got.is_empty());
        assert!(matches!(&responses[0], Ok(Response::Data(Data::Fetch(f))) if f.streamed == Some(11)), "{responses:?}");
        let (responses, got) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {21}\r\nhello world hello wor)\r\n", 7, 10);
        assert!(got.is_empty());
        assert!(matches!(&responses[0], Err(ImapError::TooMuch(_))), "{responses:?}");
        // Longer than announced: the answer fails after the bytes went to the sink.
        let (responses, _) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {3}\r\nhello)\r\n", 7, 10);
        assert!(matches!(&responses[0], Err(ImapError::Protocol(_))), "{responses:?}");
        // Cut short: the connection is lost.
        let (responses, _) = read_streamed(b"* 3 FETCH (UID 7 BODY[] {30}\r\nhello", 7, 100);
        assert!(matches!(&responses[0], Err(ImapError::Lost(_))), "{responses:?}");
    }

    #[test]
    fn gmail_items() {
        let Data::Fetch(f) = data(
            b"* 1 FETCH (X-GM-THRID 1266894439832287888 X-GM-MSGID 1278455344230334865 \
              X-GM-LABELS (\\Inbox \"Work/2019\" {5}\r\n&AOc- \\Sent) UID 4)\r\n",
        ) else {
            panic!()
        };
        assert_eq!(f.uid, Some(4));
        assert_eq!((f.gm_msgid, f.gm_thrid), (Some(1278455344230334865), Some(1266894439832287888)));
        assert_eq!(f.gm_labels.unwrap(), ["&AOc-", "Work/2019", "\\Inbox", "\\Sent"]);
        let Data::Fetch(f) = data(b"* 1 FETCH (X-GM-LABELS () UID 4)\r\n") else { panic!() };
        assert_eq!(f.gm_labels, Some(vec![]));
        let many = format!("* 1 FETCH (X-GM-LABELS ({}) UID 4)\r\n", "a ".repeat(MAX_LABELS + 1));
        assert!(read(many.as_bytes(), 100).is_err());
    }

    #[test]
    fn fetch_answers() {
        let Data::Fetch(f) = data(b"* 3 FETCH (UID 7 RFC822.SIZE 5 BODY[] {5}\r\nhello)\r\n") else { panic!() };
        assert_eq!(f, Fetched { uid: Some(7), size: Some(5), body: Some(b"hello".to_vec()), ..Fetched::default() });
        let Data::Fetch(f) = data(b"* 3 FETCH (BODY[]<4096> {3}\r\nabc UID 8)\r\n") else { panic!() };
        assert_eq!((f.uid, f.body.as_deref()), (Some(8), Some(&b"abc"[..])));
        let Data::Fetch(f) = data(b"* 3 FETCH (UID 8 RFC822.SIZE 90 BODY[HEADER]<0> {4}\r\nA: b)\r\n") else {
            panic!()
        };
        assert_eq!((f.uid, f.size, f.body.as_deref()), (Some(8), Some(90), Some(&b"A: b"[..])));
        let Data::Fetch(f) = data(b"* 1 FETCH (UID 2 FLAGS (\\Seen))\r\n") else { panic!() };
        assert_eq!((f.uid, f.body, f.flags), (Some(2), None, Some(vec!["\\Seen".to_string()])));
        let Data::Fetch(f) = data(
            b"* 4 FETCH (UID 9 FLAGS (\\Seen \\Recent \\Answered $Forwarded \"q x\" \\) INTERNALDATE \" 7-Jul-2019 02:44:25 -0700\" MODSEQ (12) BODY[] {2}\r\nhi)\r\n",
        ) else {
            panic!()
        };
        assert_eq!(
            f.flags.unwrap(),
            ["$Forwarded", "\\Answered", "\\Seen"],
            "sorted; \\Recent, a quoted name and a bare backslash are left out"
        );
        assert_eq!(
            (f.internal_date.as_deref(), f.body.as_deref()),
            (Some(" 7-Jul-2019 02:44:25 -0700"), Some(&b"hi"[..]))
        );
        // Header fields, their names echoed quoted (Courier) or as atoms (Cyrus, Dovecot).
        for answer in [
            &b"* 2 FETCH (UID 5 RFC822.SIZE 40 BODY[HEADER.FIELDS (\"MESSAGE-ID\" \"SUBJECT\")] {15}\r\nSubject: hi\r\n\r\n)\r\n"[..],
            b"* 2 FETCH (UID 5 RFC822.SIZE 40 BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {15}\r\nSubject: hi\r\n\r\n)\r\n",
        ] {
            let Data::Fetch(f) = data(answer) else { panic!() };
            assert_eq!((f.uid, f.size, f.body.as_deref()), (Some(5), Some(40), Some(&b"Subject: hi\r\n\r\n"[..])));
        }
        let Data::Fetch(f) = data(b"* 4 FETCH (UID 9 INTERNALDATE \"yesterday\")\r\n") else { panic!() };
        assert_eq!(f.internal_date, None);
        let many = format!("* 1 FETCH (UID 2 FLAGS ({}))\r\n", vec!["k"; MAX_FLAGS + 1].join(" "));
        assert!(read(many.as_bytes(), 0).unwrap_err().to_string().contains("flags"));
        let long = format!("* 1 FETCH (UID 2 FLAGS ({}))\r\n", "k".repeat(MAX_FLAG_LEN + 1));
        assert!(read(long.as_bytes(), 0).unwrap_err().to_string().contains("flag name"));
        let Data::Fetch(f) = data(b"* 1 FETCH (UID 2 BODY[] \"\")\r\n") else { panic!() };
        assert_eq!(f.body, Some(Vec::new()));
        let Data::Fetch(f) = data(b"* 298 FETCH (UID 298 BODY[] NIL)\r\n") else { panic!() };
        assert_eq!((f.uid, f.body), (Some(298), None), "expunged meanwhile: no body");
        let e = read(b"* 3 FETCH (UID 7 BODY[] {3}\r\nhello)\r\n", 100).unwrap_err();
        assert!(e.to_string().contains("longer than announced"), "{e}");
        let e = read(b"* 3 FETCH (UID 7 BODY[] {300}\r\n", 100).unwrap_err();
        assert!(e.to_string().contains("literal of 300 bytes"), "{e}");
    }

    #[test]
    fn search_streams_past_the_line_cap() {
        assert_eq!(data(b"* SEARCH 1 5 9\r\n"), Data::Search(vec![1, 5, 9]));
        assert_eq!(data(b"* SEARCH\r\n"), Data::Search(vec![]));
        let mut long = b"* SEARCH".to_vec();
        for uid in 1..=50_000u32 {
            long.extend_from_slice(format!(" {uid}").as_bytes());
        }
        long.extend_from_slice(b"\r\na1 OK done\r\n");
        let mut r = io::Cursor::new(long);
        let Response::Data(Data::Search(uids)) = read_response(&mut r, 0).unwrap() else { panic!() };
        assert_eq!(uids, (1..=50_000).collect::<Vec<u32>>());
        assert!(matches!(read_response(&mut r, 0).unwrap(), Response::Tagged { .. }));
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut long = b"* OK ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        assert!(read(&long, 0).unwrap_err().to_string().contains("more than"));
        assert!(matches!(read(b"", 0).unwrap_err(), ImapError::Lost(_)));
        assert!(matches!(read(b"* OK half", 0).unwrap_err(), ImapError::Lost(_)));
        assert!(read(b"* SEARCH 1 x\r\n", 0).is_err());
        assert!(read(b"* LIST (\\X) \"/\" {99999999}\r\n", 0).is_err());
        assert!(read(b"junk line\r\n", 0).is_err());
    }
}
