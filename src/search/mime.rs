//! A message's MIME structure, read as it streams, line by line in a bounded buffer: the
//! header of the message, of each part and of each attached message (message/rfc822 and
//! the other message/* types), and the decoded text of every `text/*` part (transfer
//! encoding undone, charset decoded, HTML markup removed). Parts of other types
//! (attachments: images, PDFs, archives) are skipped without being decoded.
//!
//! The structure is read as Python's `email` feed parser reads it (the test oracle's),
//! which is also what damaged real-world mail needs: a boundary line is `--BOUNDARY`
//! (`--BOUNDARY--` closes), spaces and tabs after it allowed, of the multipart being read
//! or of any multipart around it (one whose closing line is missing ends there); a
//! multipart without a boundary, or whose boundary never comes, has no parts; a
//! Content-Type that is not `type/subtype` is `text/plain`; none at all is `text/plain`
//! (`message/rfc822` in a multipart/digest).

use std::io::{self, BufRead};

use super::charset::{Charset, TextDecoder};
use super::html::HtmlText;
use super::transfer;
use crate::archive::metadata::headers::FieldScanner;

/// Longest piece of a line handled at once (longer lines come in pieces).
const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of multiparts read (deeper ones are skipped).
const MAX_DEPTH: usize = 64;

/// The header fields read: those searched, then those that shape the message.
pub const FIELDS: [&[u8]; 11] = [
    b"from",
    b"to",
    b"subject",
    b"message-id",
    b"date",
    b"sender",
    b"reply-to",
    b"cc",
    b"bcc",
    b"content-type",
    b"content-transfer-encoding",
];
/// The most bytes kept of each of [`FIELDS`].
const BOUNDS: [usize; 11] = [65536, 65536, 65536, 4096, 4096, 65536, 65536, 65536, 65536, 8192, 256];
/// Index of `Content-Type` in [`FIELDS`].
const CONTENT_TYPE: usize = 9;
/// Index of `Content-Transfer-Encoding` in [`FIELDS`].
const TRANSFER_ENCODING: usize = 10;
/// The fields of [`FIELDS`] that are searched (before the MIME ones).
pub const SEARCHED: usize = 9;

/// What a message's reading hands on.
pub trait Sink {
    /// The header of the message (`attached`: of a message attached to it) has ended;
    /// `fields[i]` is the raw value of [`FIELDS`]`[i]`, if present.
    fn header(&mut self, attached: bool, fields: &[Option<Vec<u8>>]);
    /// Whether the text of the parts is still wanted (when not, it is not decoded).
    fn wants_text(&self) -> bool;
    /// A text part starts.
    fn text_begin(&mut self);
    /// More of its text.
    fn text(&mut self, text: &str);
    /// It ends.
    fn text_end(&mut self);
    /// Whether reading can stop here: everything is known.
    fn done(&self) -> bool;
}

/// A multipart being read.
struct Frame {
    /// `--BOUNDARY`.
    delimiter: Vec<u8>,
    /// A multipart/digest: its parts are messages by default.
    digest: bool,
}

/// What the lines being read are.
enum Mode {
    /// A header: of the message or an attached one, or of a part.
    Header { scanner: Box<FieldScanner>, kind: HeaderKind },
    /// A text part's body.
    Text(Box<TextPart>),
    /// Anything not read: a preamble, an epilogue, a part that is not text.
    Skip,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HeaderKind {
    Message { attached: bool },
    Part { digest: bool },
}

struct TextPart {
    transfer: transfer::Decoder,
    charset: TextDecoder,
    html: Option<HtmlText>,
    bytes: Vec<u8>,
    text: String,
    markup: String,
}

impl TextPart {
    fn new(encoding: transfer::Encoding, charset: Charset, html: bool) -> TextPart {
        TextPart {
            transfer: transfer::Decoder::new(encoding),
            charset: TextDecoder::new(charset),
            html: html.then(HtmlText::default),
            bytes: Vec::new(),
            text: String::new(),
            markup: String::new(),
        }
    }

    /// Decodes a piece of the body and hands its text on.
    fn feed(&mut self, piece: &[u8], sink: &mut dyn Sink) {
        self.bytes.clear();
        self.transfer.decode(piece, &mut self.bytes);
        self.emit(false, sink);
    }

    fn emit(&mut self, last: bool, sink: &mut dyn Sink) {
        self.text.clear();
        self.charset.decode(&self.bytes, &mut self.text);
        if last {
            self.charset.finish(&mut self.text);
        }
        match &mut self.html {
            Some(h) => {
                self.markup.clear();
                h.feed(&self.text, &mut self.markup);
                if last {
                    h.finish(&mut self.markup);
                }
                if !self.markup.is_empty() {
                    sink.text(&self.markup);
                }
            }
            None => {
                if !self.text.is_empty() {
                    sink.text(&self.text);
                }
            }
        }
    }

    fn finish(&mut self, sink: &mut dyn Sink) {
        self.bytes.clear();
        self.transfer.finish(&mut self.bytes);
        self.emit(true, sink);
        sink.text_end();
    }
}

/// A header's Content-Type, as Python's `email` reads it.
#[derive(Debug, PartialEq, Eq)]
struct ContentType {
    main: String,
    sub: String,
    charset: Option<Vec<u8>>,
    boundary: Option<Vec<u8>>,
}

impl ContentType {
    fn parse(value: Option<&[u8]>, in_digest: bool) -> ContentType {
        let default =
            |main: &str, sub: &str| ContentType { main: main.into(), sub: sub.into(), charset: None, boundary: None };
        let Some(value) = value else {
            return if in_digest { default("message", "rfc822") } else { default("text", "plain") };
        };
        let params = params(value);
        let kind = params.first().map(|(n, _)| n.to_ascii_lowercase()).unwrap_or_default();
        let kind = String::from_utf8_lossy(kind.trim_ascii()).into_owned();
        let mut ct = match kind.split_once('/') {
            Some((main, sub)) if !sub.contains('/') => default(main, sub),
            _ => default("text", "plain"),
        };
        let param = |name: &[u8]| {
            params
                .iter()
                .skip(1)
                .find(|(n, v)| n.eq_ignore_ascii_case(name) && v.is_some())
                .and_then(|(_, v)| v.clone())
        };
        ct.charset = param(b"charset").filter(|c| c.is_ascii());
        ct.boundary = param(b"boundary").map(|b| b.trim_ascii_end().to_vec());
        ct
    }
}

/// A header value's parameters, as Python's `email.message._parseparam` splits them
/// (`;` outside quotes), each `(name, value)`, the value unquoted; the first is the
/// value before the first `;`.
fn params(value: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        let mut end = None;
        let mut quotes = 0usize;
        for (i, &b) in rest.iter().enumerate() {
            if b == b'"' && (i == 0 || rest[i - 1] != b'\\') {
                quotes += 1;
            }
            if b == b';' && quotes.is_multiple_of(2) {
                end = Some(i);
                break;
            }
        }
        let end = end.unwrap_or(rest.len());
        let piece = &rest[..end];
        match piece.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let name = piece[..eq].trim_ascii().to_vec();
                out.push((name, Some(unquote(piece[eq + 1..].trim_ascii()))));
            }
            None => out.push((piece.trim_ascii().to_vec(), None)),
        }
        if end >= rest.len() {
            return out;
        }
        rest = &rest[end + 1..];
    }
}

/// A parameter value without its quotes (`\\` and `\"` inside undone).
fn unquote(v: &[u8]) -> Vec<u8> {
    match v {
        [b'"', inner @ .., b'"'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut i = 0;
            while i < inner.len() {
                if inner[i] == b'\\' && matches!(inner.get(i + 1), Some(b'\\' | b'"')) {
                    i += 1;
                }
                out.push(inner[i]);
                i += 1;
            }
            out
        }
        [b'<', inner @ .., b'>'] => inner.to_vec(),
        _ => v.to_vec(),
    }
}

/// Whether `line` (its line break included) is a boundary line of `delimiter`, and if so
/// whether it closes.
fn boundary(line: &[u8], delimiter: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(delimiter)?;
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    rest.iter().all(|&b| b == b' ' || b == b'\t').then_some(close)
}

/// Reads a message from `input`, handing its headers and text to `sink`, until the end
/// or until `sink` is done.
pub fn read(input: &mut dyn BufRead, sink: &mut dyn Sink) -> io::Result<()> {
    let mut r = Reader { frames: Vec::new(), mode: new_header(HeaderKind::Message { attached: false }) };
    let mut line = Vec::with_capacity(4096);
    let mut at_start = true;
    loop {
        if let Mode::Text(_) | Mode::Skip = r.mode {
            // A part's body goes on to the next line that may be a boundary: up to there,
            // what the buffer holds is handed on (or skipped) at once.
            let buf = input.fill_buf()?;
            let n = body_run(buf, at_start, !r.frames.is_empty());
            if n > 0 {
                if let Mode::Text(part) = &mut r.mode {
                    part.feed(&buf[..n], sink);
                }
                at_start = buf[n - 1] == b'\n';
                input.consume(n);
                if sink.done() {
                    return Ok(());
                }
                continue;
            }
        }
        line.clear();
        let complete = read_piece(input, &mut line)?;
        if line.is_empty() {
            break;
        }
        r.line(&line, at_start, sink);
        if sink.done() {
            return Ok(());
        }
        at_start = complete;
    }
    r.end(sink);
    Ok(())
}

/// How many bytes at the start of `buf` (a part's body; `at_start`: at a line's start) are
/// body for sure: all of them outside a multipart, else up to the first line that starts
/// with `--`, or may when more comes (`-` at the buffer's end).
fn body_run(buf: &[u8], at_start: bool, in_multipart: bool) -> usize {
    if !in_multipart {
        return buf.len();
    }
    let mut start = if at_start { 0 } else { buf.iter().position(|&b| b == b'\n').map_or(buf.len(), |n| n + 1) };
    while start < buf.len() {
        let rest = &buf[start..];
        if rest.starts_with(b"--") || rest == b"-" {
            return start;
        }
        start += rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |n| n + 1);
    }
    buf.len()
}

fn new_header(kind: HeaderKind) -> Mode {
    Mode::Header { scanner: Box::new(FieldScanner::new(&FIELDS, &BOUNDS)), kind }
}

/// Reads up to a line break (included) or [`MAX_LINE`] bytes; returns whether a line
/// break ended it.
fn read_piece(input: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let room = MAX_LINE - line.len();
        let avail = &buf[..buf.len().min(room)];
        if let Some(n) = avail.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&avail[..=n]);
            input.consume(n + 1);
            return Ok(true);
        }
        let n = avail.len();
        line.extend_from_slice(avail);
        input.consume(n);
        if line.len() >= MAX_LINE {
            return Ok(false);
        }
    }
}

struct Reader {
    frames: Vec<Frame>,
    mode: Mode,
}

impl Reader {
    fn line(&mut self, line: &[u8], at_start: bool, sink: &mut dyn Sink) {
        if at_start && line.starts_with(b"--") {
            let found =
                self.frames.iter().enumerate().rev().find_map(|(i, f)| Some((i, boundary(line, &f.delimiter)?)));
            if let Some((i, close)) = found {
                self.end_part(sink);
                let digest = self.frames[i].digest;
                if close {
                    self.frames.truncate(i);
                    self.mode = Mode::Skip;
                } else {
                    self.frames.truncate(i + 1);
                    self.mode = new_header(HeaderKind::Part { digest });
                }
                return;
            }
        }
        match &mut self.mode {
            Mode::Skip => {}
            Mode::Text(part) => part.feed(line, sink),
            Mode::Header { scanner, kind } => {
                let kind = *kind;
                let Some(by_empty_line) = scanner.feed(line) else { return };
                let scanner = std::mem::replace(scanner, Box::new(FieldScanner::new(&[], &[])));
                self.header_ended(*scanner, kind, sink);
                if !by_empty_line {
                    // The line that ended it is the body's first.
                    self.line(line, at_start, sink);
                }
            }
        }
    }

    /// The end of the input.
    fn end(&mut self, sink: &mut dyn Sink) {
        if let Mode::Header { scanner, kind } = &mut self.mode {
            let kind = *kind;
            let scanner = std::mem::replace(scanner, Box::new(FieldScanner::new(&[], &[])));
            self.header_ended(*scanner, kind, sink);
        }
        self.end_part(sink);
    }

    fn end_part(&mut self, sink: &mut dyn Sink) {
        if let Mode::Text(part) = &mut self.mode {
            part.finish(sink);
        }
        self.mode = Mode::Skip;
    }

    /// A header is complete: hands it on, and reads what follows as its Content-Type says.
    fn header_ended(&mut self, scanner: FieldScanner, kind: HeaderKind, sink: &mut dyn Sink) {
        let (fields, _) = scanner.finish();
        if let HeaderKind::Message { attached } = kind {
            sink.header(attached, &fields);
        }
        let in_digest = matches!(kind, HeaderKind::Part { digest: true });
        let ct = ContentType::parse(fields[CONTENT_TYPE].as_deref(), in_digest);
        self.mode = Mode::Skip;
        match ct.main.as_str() {
            "multipart" => {
                if let Some(b) = ct.boundary.filter(|_| self.frames.len() < MAX_DEPTH) {
                    let mut delimiter = b"--".to_vec();
                    delimiter.extend_from_slice(&b);
                    self.frames.push(Frame { delimiter, digest: ct.sub == "digest" });
                }
            }
            "message" if ct.sub != "delivery-status" => {
                self.mode = new_header(HeaderKind::Message { attached: true });
            }
            "text" if sink.wants_text() => {
                let encoding = transfer::Encoding::of(fields[TRANSFER_ENCODING].as_deref());
                let charset = Charset::of_label(ct.charset.as_deref());
                sink.text_begin();
                self.mode = Mode::Text(Box::new(TextPart::new(encoding, charset, ct.sub == "html")));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what a reading hands on.
    #[derive(Default)]
    struct Record {
        events: Vec<String>,
        text: String,
    }

    impl Sink for Record {
        fn header(&mut self, attached: bool, fields: &[Option<Vec<u8>>]) {
            let subject = fields[2].as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            self.events.push(format!("header{} {subject}", if attached { " (attached)" } else { "" }));
        }
        fn wants_text(&self) -> bool {
            true
        }
        fn text_begin(&mut self) {
            self.text.clear();
        }
        fn text(&mut self, text: &str) {
            self.text.push_str(text);
        }
        fn text_end(&mut self) {
            let t = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
            self.events.push(format!("text {t}"));
        }
        fn done(&self) -> bool {
            false
        }
    }

    fn events(message: &str) -> Vec<String> {
        let mut sink = Record::default();
        read(&mut message.replace('\n', "\r\n").as_bytes(), &mut sink).unwrap();
        sink.events
    }

    #[test]
    fn nested_multiparts_with_every_encoding() {
        let m = "From: a\nSubject: top\nContent-Type: multipart/mixed; boundary=\"outer b\"\n\npreamble\n\
            --outer b\nContent-Type: multipart/alternative; boundary=inner\n\n\
            --inner\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n\
            caf=E9 quarter=\nly\n--inner\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
            PHA+SGVsbG8gPGI+d29ybGQ8L2I+PC9wPg==\n--inner--\nepilogue\n\
            --outer b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n\
            --outer b\nContent-Type: message/rfc822\n\nSubject: inner one\nContent-Type: text/plain\n\nattached body\n\
            --outer b--\n";
        assert_eq!(
            events(m),
            [
                "header top",
                "text café quarterly",
                "text Hello world",
                "header (attached) inner one",
                "text attached body"
            ]
        );
    }

    #[test]
    fn broken_structure_is_read_as_python_reads_it() {
        // The inner multipart's closing line is missing: the outer boundary ends it.
        let m = "Subject: s\nContent-Type: multipart/mixed; boundary=o\n\n--o\n\
            Content-Type: multipart/alternative; boundary=i\n\n--i\n\none\n--o\n\ntwo\n--o--\n";
        assert_eq!(events(m), ["header s", "text one", "text two"]);
        // No boundary parameter: the multipart has no parts.
        assert_eq!(events("Subject: s\nContent-Type: multipart/mixed\n\n--x\n\ntext\n"), ["header s"]);
        // A Content-Type that is not type/subtype is text/plain.
        assert_eq!(events("Subject: s\nContent-Type: garbage\n\nbody\n"), ["header s", "text body"]);
        // A header line that is not one starts the body.
        assert_eq!(events("Subject: s\nthis is the body\n"), ["header s", "text this is the body"]);
        // No body at all.
        assert_eq!(events("Subject: s"), ["header s", "text "]);
        // Boundary lines with trailing white space; a digest's parts are messages.
        let m = "Subject: d\nContent-Type: multipart/digest; boundary=d\n\n--d \t\n\nSubject: one\n\nfirst\n--d--  \n";
        assert_eq!(events(m), ["header d", "header (attached) one", "text first"]);
    }

    /// Bodies go on at once up to a line that may be a boundary: whatever the sizes of the
    /// pieces the input comes in (a boundary, a `--` line that is none, a quoted-printable
    /// soft line break, a base64 group split between two), the same events come.
    #[test]
    fn the_same_whatever_the_input_buffer() {
        let messages: [&[u8]; 2] = [
            b"From: a\nSubject: top\nContent-Type: multipart/mixed; boundary=\"outer b\"\n\npreamble\n\
            --outer b\nContent-Type: multipart/alternative; boundary=inner\n\n\
            --inner\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n\
            caf=E9 quar=\nterly re=\nport\n-- \n--not a boundary\n-\n--inner\n\
            Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
            PHA+SGVsbG8gPGI+d29y\nbGQ8L2I+PC9wPg==\n--inner--\nepilogue\n\
            --outer b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--\n\
            --outer b\nContent-Type: message/rfc822\n\nSubject: inner one\nContent-Type: text/plain\n\nattached body\n\
            --outer b--\ntrailing text\n",
            b"Subject: one part\nContent-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n--x\nend",
        ];
        for m in messages {
            let m: Vec<u8> = m.iter().flat_map(|&b| if b == b'\n' { b"\r\n".to_vec() } else { vec![b] }).collect();
            let read_by = |capacity: usize| {
                let mut sink = Record::default();
                read(&mut std::io::BufReader::with_capacity(capacity, &m[..]), &mut sink).unwrap();
                sink.events
            };
            let whole = read_by(m.len());
            let texts = ["text café quarterly report -- --not a boundary -", "text Привет --x end"];
            assert!(whole.iter().any(|e| texts.contains(&e.as_str())), "{whole:?}");
            for capacity in [1, 2, 3, 5, 8, 13, 64] {
                assert_eq!(read_by(capacity), whole, "read {capacity} bytes at a time");
            }
        }
        assert_eq!(body_run(b"abc\n--b\n", true, true), 4);
        assert_eq!(body_run(b"abc\n-", true, true), 4);
        assert_eq!(body_run(b"--b\n", true, true), 0);
        assert_eq!(body_run(b"--b\nabc\n--", false, true), 8);
        assert_eq!(body_run(b"abc\n--b\n", true, false), 8);
    }

    #[test]
    fn content_type_parameters() {
        let ct = ContentType::parse(Some(b"Text/HTML; charset=\"UTF-8\"; boundary=\"a;b\\\"c\" "), false);
        assert_eq!((ct.main.as_str(), ct.sub.as_str()), ("text", "html"));
        assert_eq!(ct.charset.as_deref(), Some(&b"UTF-8"[..]));
        assert_eq!(ct.boundary.as_deref(), Some(&b"a;b\"c"[..]));
        assert_eq!(boundary(b"--a;b\"c--\r\n", b"--a;b\"c"), Some(true));
        assert_eq!(boundary(b"--a;b\"c \r\n", b"--a;b\"c"), Some(false));
        assert_eq!(boundary(b"--a;b\"cd\r\n", b"--a;b\"c"), None);
    }
}
