//! The header fields a journal keeps of each message (From, To, Subject, Date,
//! Message-ID), so that `--search` answers a query on them without opening the message's
//! file; and the streaming scanner that finds header fields in a message's first bytes,
//! which the backup's writer runs over the bytes it is handed anyway (nothing more is
//! fetched or held: the fields kept are bounded, the rest of the header is only looked at).
//!
//! The scanner reads header lines as Python's `email` feed parser does, so `--search`
//! and its test oracle see the same fields: a line starting with a space or tab continues
//! the field before it; a field name is printable ASCII without a colon or a space, then a
//! colon; an empty line ends the header; any other line ends it too and is the body's
//! first. The first field of a name counts (later ones are ignored). Values are unfolded
//! (line breaks removed, the white space that followed them kept) and trimmed.

/// The fields a journal keeps, by [`Kept`] index: lowercase names.
pub const KEPT: [&[u8]; 5] = [b"from", b"to", b"subject", b"date", b"message-id"];
/// The most bytes a journal keeps of each of [`KEPT`]: a longer field is cut at a white
/// space within its bound, and marked cut (a search that needs the rest opens the file).
pub const BOUNDS: [usize; 5] = [512, 1024, 1024, 128, 512];
/// Header bytes scanned at most: past this the header is taken as ended.
pub const MAX_SCAN: usize = 1 << 20;
/// A field name longer than this makes the line a body line (RFC 5322's line limit).
const MAX_NAME: usize = 998;

/// One of the fields a journal keeps (an index into [`KEPT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// `From:`.
    From = 0,
    /// `To:`.
    To = 1,
    /// `Subject:`.
    Subject = 2,
    /// `Date:`.
    Date = 3,
    /// `Message-ID:`.
    MessageId = 4,
}

/// The kept fields of one message: raw bytes as the message has them (encoded words not
/// decoded), unfolded and trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderFields {
    /// Each field's value, `None` when the message has no such field.
    pub values: [Option<Vec<u8>>; 5],
    /// Bit `i`: field `i` was longer than its bound; its value is a prefix.
    pub cut: u8,
}

impl HeaderFields {
    /// The value of `field`, if the message has it.
    pub fn get(&self, field: Kept) -> Option<&[u8]> {
        self.values[field as usize].as_deref()
    }

    /// Whether `field` was cut at its bound.
    pub fn is_cut(&self, field: Kept) -> bool {
        self.cut & (1 << field as u8) != 0
    }

    /// Heap bytes held (for memory budgets).
    pub fn heap_bytes(&self) -> usize {
        self.values.iter().flatten().map(Vec::capacity).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    LineStart,
    Name,
    Value,
}

/// Finds the first occurrence of some header fields in a message's bytes, fed in pieces
/// of any size, each value kept up to its bound.
#[derive(Clone, Debug)]
pub struct FieldScanner {
    names: &'static [&'static [u8]],
    bounds: &'static [usize],
    values: Vec<Option<Vec<u8>>>,
    cut: u64,
    state: State,
    /// The name being read, lowercase (only its first bytes: longer names are not wanted).
    name: [u8; 32],
    name_len: usize,
    /// The field whose value (or continuation) is being read, when it is wanted.
    current: Option<usize>,
    scanned: usize,
    /// Once ended: whether by an empty line (else by a line that is not a header line).
    ended: Option<bool>,
}

impl FieldScanner {
    /// A scanner of the fields `names` (lowercase), each kept up to `bounds[i]` bytes.
    pub fn new(names: &'static [&'static [u8]], bounds: &'static [usize]) -> FieldScanner {
        FieldScanner {
            names,
            bounds,
            values: vec![None; names.len()],
            cut: 0,
            state: State::LineStart,
            name: [0; 32],
            name_len: 0,
            current: None,
            scanned: 0,
            ended: None,
        }
    }

    /// The scanner of the fields a journal keeps.
    pub fn kept() -> FieldScanner {
        FieldScanner::new(&KEPT, &BOUNDS)
    }

    /// Whether the header has ended; `Some(true)` when by an empty line.
    pub fn ended(&self) -> Option<bool> {
        self.ended
    }

    /// Reads more of the message; returns what [`FieldScanner::ended`] returns after it.
    pub fn feed(&mut self, data: &[u8]) -> Option<bool> {
        let mut i = 0;
        while i < data.len() && self.ended.is_none() {
            if self.scanned >= MAX_SCAN {
                self.ended = Some(false);
                break;
            }
            match self.state {
                State::LineStart => {
                    let b = data[i];
                    match b {
                        // An empty line (a lone CR is a line break to Python too).
                        b'\n' | b'\r' => self.ended = Some(true),
                        // A continuation: its white space is part of the value.
                        b' ' | b'\t' => {
                            self.state = State::Value;
                            continue;
                        }
                        // An empty name: Python skips the line.
                        b':' => {
                            self.current = None;
                            self.state = State::Value;
                        }
                        0x21..=0x7e => {
                            self.name_len = 0;
                            self.current = None;
                            self.state = State::Name;
                            continue;
                        }
                        _ => self.ended = Some(false),
                    }
                }
                State::Name => {
                    let start = i;
                    while i < data.len() {
                        let b = data[i];
                        if b == b':' {
                            break;
                        }
                        if !(0x21..=0x7e).contains(&b) || self.name_len >= MAX_NAME {
                            self.ended = Some(false);
                            return self.ended;
                        }
                        if self.name_len < self.name.len() {
                            self.name[self.name_len] = b.to_ascii_lowercase();
                        }
                        self.name_len += 1;
                        i += 1;
                    }
                    self.scanned += i - start;
                    if i == data.len() {
                        return None;
                    }
                    i += 1;
                    self.scanned += 1;
                    let name = &self.name[..self.name_len.min(self.name.len())];
                    self.current = if self.name_len <= self.name.len() {
                        self.names.iter().position(|n| *n == name).filter(|&f| self.values[f].is_none())
                    } else {
                        None
                    };
                    if let Some(f) = self.current {
                        self.values[f] = Some(Vec::new());
                    }
                    self.state = State::Value;
                    continue;
                }
                State::Value => {
                    let rest = &data[i..];
                    let (segment, line_end) = match rest.iter().position(|&b| b == b'\n') {
                        Some(n) => (&rest[..n], true),
                        None => (rest, false),
                    };
                    if let Some(f) = self.current {
                        self.append(f, segment);
                    }
                    let used = segment.len() + usize::from(line_end);
                    i += used;
                    self.scanned += used;
                    if line_end {
                        self.state = State::LineStart;
                    }
                    continue;
                }
            }
            i += 1;
            self.scanned += 1;
        }
        self.ended
    }

    fn append(&mut self, f: usize, segment: &[u8]) {
        let bound = self.bounds[f];
        let Some(v) = self.values[f].as_mut() else { return };
        for &b in segment {
            if b == b'\r' {
                continue;
            }
            if v.len() >= bound {
                self.cut |= 1 << f;
                return;
            }
            v.push(b);
        }
    }

    /// The values found (trimmed; a cut one back to its last white space), and which were
    /// cut (bit `i` for field `i`).
    pub fn finish(self) -> (Vec<Option<Vec<u8>>>, u64) {
        let cut = self.cut;
        let values = self
            .values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.map(|mut v| {
                    if cut & (1 << i) != 0 {
                        // What comes after the last white space may be half an encoded word.
                        let keep = v.iter().rposition(|&b| b == b' ' || b == b'\t').unwrap_or(0);
                        v.truncate(keep);
                    }
                    let t = v.trim_ascii();
                    if t.len() == v.len() {
                        v
                    } else {
                        t.to_vec()
                    }
                })
            })
            .collect();
        (values, cut)
    }

    /// [`FieldScanner::finish`] of a scanner of [`KEPT`].
    pub fn finish_kept(self) -> HeaderFields {
        let (values, cut) = self.finish();
        let mut fields = HeaderFields { cut: cut as u8, ..HeaderFields::default() };
        for (slot, v) in fields.values.iter_mut().zip(values) {
            *slot = v;
        }
        fields
    }
}

/// A header value (or label) as a record holds it: `%XX` for `%`, control characters and
/// (unless the value is UTF-8) bytes above 127; the rest as it is.
pub fn escape(value: &[u8]) -> String {
    let utf8 = std::str::from_utf8(value).is_ok();
    let mut out = String::with_capacity(value.len());
    let mut plain_from = 0;
    for (i, &b) in value.iter().enumerate() {
        let keep = b != b'%' && b >= 0x20 && b != 0x7f && (b < 0x80 || utf8);
        if keep {
            continue;
        }
        out.push_str(&String::from_utf8_lossy(&value[plain_from..i]));
        out.push_str(&format!("%{b:02X}"));
        plain_from = i + 1;
    }
    out.push_str(&String::from_utf8_lossy(&value[plain_from..]));
    out
}

/// The bytes of an [`escape`]d value; `None` for a `%` not followed by two hex digits.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(message: &[u8], piece: usize) -> HeaderFields {
        let mut s = FieldScanner::kept();
        for chunk in message.chunks(piece) {
            s.feed(chunk);
        }
        s.finish_kept()
    }

    #[test]
    fn fields_are_found_in_any_pieces() {
        let message = b"Received: from x\r\n\tby y\r\nFrom: Ann\r\n <ann@example.org>\r\nTO: bob@example.org\r\n\
            Subject: =?utf-8?q?Caf=C3=A9?=\r\n  and more\r\nsubject: second\r\nX-Long-Name-That-Is-Not-Kept-At-All: v\r\n\
            Message-ID: <1@x>\r\n\r\nFrom: body\r\n";
        for piece in [1, 2, 3, 7, 64, 4096] {
            let f = scan_in_pieces(message, piece);
            assert_eq!(f.get(Kept::From), Some(&b"Ann <ann@example.org>"[..]), "{piece}");
            assert_eq!(f.get(Kept::To), Some(&b"bob@example.org"[..]));
            assert_eq!(f.get(Kept::Subject), Some(&b"=?utf-8?q?Caf=C3=A9?=  and more"[..]));
            assert_eq!(f.get(Kept::Date), None);
            assert_eq!(f.get(Kept::MessageId), Some(&b"<1@x>"[..]));
            assert_eq!(f.cut, 0);
        }
    }

    #[test]
    fn the_header_ends_where_python_ends_it() {
        // A line that is not a header line ends the header (and is the body's).
        let f = scan_in_pieces(b"From: a\nnot a header line\nTo: b\n\n", 5);
        assert_eq!((f.get(Kept::From), f.get(Kept::To)), (Some(&b"a"[..]), None));
        // A space before the colon is not a field name to Python.
        let mut s = FieldScanner::kept();
        assert_eq!(s.feed(b"Subject : x\n"), Some(false));
        // An empty name is skipped, the header goes on.
        let f = scan_in_pieces(b": odd\nTo: b\n\n", 3);
        assert_eq!(f.get(Kept::To), Some(&b"b"[..]));
        let mut s = FieldScanner::kept();
        assert_eq!(s.feed(b"To: b\r\n\r\nbody"), Some(true));
    }

    #[test]
    fn long_fields_are_cut_at_a_space() {
        let long = format!("To: {}\n\n", "someone@example.org, ".repeat(200));
        let f = scan_in_pieces(long.as_bytes(), 100);
        let to = f.get(Kept::To).unwrap();
        assert!(f.is_cut(Kept::To) && to.len() <= BOUNDS[1] && to.ends_with(b","), "{}", to.len());
        let f = scan_in_pieces(format!("Subject: {}\n\n", "x".repeat(5000)).as_bytes(), 100);
        assert_eq!((f.get(Kept::Subject), f.is_cut(Kept::Subject)), (Some(&b""[..]), true));
    }

    #[test]
    fn values_escape_and_come_back() {
        for v in [&b"plain"[..], b"100% \t tab", "Jörg".as_bytes(), b"caf\xe9 \x01\x7f", b""] {
            let e = escape(v);
            assert!(!e.contains('\t') && !e.contains('\n'), "{e}");
            assert_eq!(unescape(&e).as_deref(), Some(v), "{e}");
        }
        assert_eq!(escape("Jörg".as_bytes()), "Jörg");
        assert_eq!(unescape("%4"), None);
        assert_eq!(unescape("%zz"), None);
    }
}
