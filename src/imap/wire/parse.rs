//! Parsing one response, read whole (its text and literals), into a [`Response`]: a
//! tokenizer of IMAP values (atoms, strings, literals, lists, bounded in nesting) and the
//! reading of the answers the tool uses.

use super::answer::{
    Data, Fetched, ListEntry, Response, Status, MAX_FLAGS, MAX_FLAG_LEN, MAX_LABELS, MAX_LABEL_LEN, MAX_UIDS,
};
use crate::imap::error::{quote, ImapError};

/// A piece of one response: text up to a line end, or a literal's bytes.
#[derive(Debug)]
pub(super) enum Part {
    Text(Vec<u8>),
    Literal(Vec<u8>),
    /// A FETCH body handed to a `BodySink` as it came: its size.
    Streamed(u64),
}

/// Whether `text` starts with `prefix`, ASCII case ignored.
pub(super) fn starts_with_ci(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A value in a response.
#[derive(Debug)]
enum Value {
    Atom(Vec<u8>),
    Str(Vec<u8>),
    List(Vec<Value>),
    Nil,
    /// A literal that went to a `BodySink`: its size.
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

pub(super) fn parse(parts: Vec<Part>) -> Result<Response, ImapError> {
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
        let status =
            status_of(&word).ok_or_else(|| ImapError::Protocol(format!("unexpected answer {}", quote(&first))))?;
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
