//! Terms found in text: each document (a header field's value, a text part) is normalized
//! as it streams (lowercase, the final sigma as a sigma, every run of white space as one
//! space) and the terms not found yet are looked for in it, a window at a time, so a
//! term is found across line breaks, a part of any size costs a fixed buffer, and a term
//! never spans two documents.

/// Terms one query can hold (one bit each).
pub const MAX_TERMS: usize = 64;
/// Normalized text searched at once.
const WINDOW: usize = 64 * 1024;

/// The documents of a message a term can be found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doc {
    /// A text part (its decoded text).
    Body = 0,
    /// The message's From.
    From = 1,
    /// Its To.
    To = 2,
    /// Its Subject.
    Subject = 3,
    /// Its Message-ID.
    MessageId = 4,
    /// Its Date.
    Date = 5,
    /// Its Sender, Reply-To, Cc, Bcc.
    OtherAddress = 6,
    /// A header field (of those above) of a message attached to it (message/rfc822).
    Attached = 7,
}

/// A set of [`Doc`]s, one bit each.
pub type Docs = u16;
/// What free text is looked for in: the body and the header fields above.
pub const FREE_TEXT: Docs = 0xff;

/// The bit of `doc`.
pub const fn bit(doc: Doc) -> Docs {
    1 << doc as u16
}

/// A term: normalized text and where it is looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// Its text, normalized (see [`normalize`]).
    pub text: String,
    /// The documents it is looked for in.
    pub docs: Docs,
}

/// `text` as terms and documents are compared: lowercase, `ς` as `σ`, each run of white
/// space one space, none at the ends.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    push_normalized(text, &mut out, &mut space);
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The ASCII characters as [`normalize`] makes them: lowercase, white space (vertical
/// tab included) a space.
const ASCII_NORMAL: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        table[i] = if b.is_ascii_whitespace() || b == 0x0b { b' ' } else { b.to_ascii_lowercase() };
        i += 1;
    }
    table
};

/// Appends `text` normalized; `space` says whether what was appended last is a space
/// (or nothing).
fn push_normalized(text: &str, out: &mut String, space: &mut bool) {
    out.reserve(text.len());
    let bytes = text.as_bytes();
    // Mail is mostly ASCII: runs of it go through a small buffer, a byte at a time without
    // a branch (a space after a space is written, then not counted).
    let mut buf = [0u8; 256];
    let mut i = 0;
    while i < bytes.len() {
        let (mut n, mut after_space) = (0, *space);
        while let (Some(&b), true) = (bytes.get(i), n < buf.len()) {
            let Some(&c) = ASCII_NORMAL.get(usize::from(b)) else { break };
            let is_space = c == b' ';
            buf[n] = c;
            n += usize::from(!(is_space && after_space));
            after_space = is_space;
            i += 1;
        }
        *space = after_space;
        // Only ASCII was written: this cannot fail.
        out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
        if bytes.get(i).is_none_or(u8::is_ascii) {
            continue;
        }
        let Some(c) = text[i..].chars().next() else { break };
        i += c.len_utf8();
        if c.is_whitespace() {
            if !*space {
                out.push(' ');
                *space = true;
            }
        } else {
            for l in c.to_lowercase() {
                out.push(if l == 'ς' { 'σ' } else { l });
            }
            *space = false;
        }
    }
}

/// Looks for terms in a message's documents, one document at a time.
pub struct Matcher<'t> {
    terms: &'t [Term],
    found: u64,
    window: String,
    space: bool,
    doc: Docs,
    /// Bytes kept from one window to the next: a term can span them.
    overlap: usize,
}

impl<'t> Matcher<'t> {
    /// A matcher of `terms` (at most [`MAX_TERMS`]).
    pub fn new(terms: &'t [Term]) -> Matcher<'t> {
        let longest = terms.iter().map(|t| t.text.len()).max().unwrap_or(0);
        Matcher { terms, found: 0, window: String::new(), space: true, doc: 0, overlap: longest.saturating_sub(1) }
    }

    /// Starts over, for another message (its buffer kept).
    pub fn reset(&mut self) {
        self.found = 0;
        self.window.clear();
        self.space = true;
        self.doc = 0;
    }

    /// The terms found so far, one bit each.
    pub fn found(&self) -> u64 {
        self.found
    }

    /// Whether a term not found yet is looked for in `doc`.
    pub fn wants(&self, doc: Doc) -> bool {
        self.terms.iter().enumerate().any(|(i, t)| self.found & (1 << i) == 0 && t.docs & bit(doc) != 0)
    }

    /// A whole document at once (a header field's value); true if a term was found.
    pub fn document(&mut self, doc: Doc, text: &str) -> bool {
        self.begin(doc);
        self.text(text);
        self.end()
    }

    /// Starts a document.
    pub fn begin(&mut self, doc: Doc) {
        self.window.clear();
        self.space = true;
        self.doc = bit(doc);
    }

    /// More of the document's text; true if a term was found.
    pub fn text(&mut self, text: &str) -> bool {
        push_normalized(text, &mut self.window, &mut self.space);
        if self.window.len() < WINDOW {
            return false;
        }
        let found = self.search();
        let mut keep = self.window.len().saturating_sub(self.overlap);
        while !self.window.is_char_boundary(keep) {
            keep -= 1;
        }
        self.window.drain(..keep);
        found
    }

    /// The document's end; true if a term was found.
    pub fn end(&mut self) -> bool {
        let found = self.search();
        self.window.clear();
        self.doc = 0;
        found
    }

    fn search(&mut self) -> bool {
        let before = self.found;
        for (i, t) in self.terms.iter().enumerate() {
            if self.found & (1 << i) == 0 && t.docs & self.doc != 0 && self.window.contains(t.text.as_str()) {
                self.found |= 1 << i;
            }
        }
        self.found != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(text: &str, docs: Docs) -> Term {
        Term { text: normalize(text), docs }
    }

    #[test]
    fn normalized_text() {
        assert_eq!(normalize("  Quarterly\r\n\tREPORT  "), "quarterly report");
        assert_eq!(normalize("ΟΔΟΣ Straße İ"), "οδοσ straße i\u{307}");
        assert_eq!(normalize("a\u{a0}\u{3000}b"), "a b");
        assert_eq!(normalize("already normal  Not\tthis  É é"), "already normal not this é é");
        assert_eq!(normalize(" a "), "a");
    }

    /// [`normalize`] by its definition, a character at a time.
    fn normalized_char_by_char(text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            if c.is_whitespace() {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            } else {
                out.extend(c.to_lowercase().map(|l| if l == 'ς' { 'σ' } else { l }));
            }
        }
        if out.ends_with(' ') {
            out.pop();
        }
        out
    }

    /// The ASCII runs go through a buffer: runs longer than it, white space at its edges,
    /// control characters, and text given in pieces (a run of spaces across two) come out
    /// as the definition says.
    #[test]
    fn normalized_in_pieces_as_defined() {
        let alphabet: Vec<char> = "aZ09 \t\r\n\u{b}\u{c}\0\u{1f}\u{7f}-ÉΣςİ\u{212a}\u{a0}\u{3000}日".chars().collect();
        let mut seed = 7u32;
        for len in [0, 1, 5, 255, 256, 257, 511, 600, 2000] {
            for round in 0..20 {
                let text: String = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        // Mostly letters, as mail is; a space run now and then.
                        let r = (seed >> 16) as usize;
                        if round % 2 == 0 && !r.is_multiple_of(4) {
                            'q'
                        } else {
                            alphabet[r % alphabet.len()]
                        }
                    })
                    .collect();
                let want = normalized_char_by_char(&text);
                assert_eq!(normalize(&text), want, "{text:?}");
                let cuts: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).step_by(97).collect();
                let (mut out, mut space, mut from) = (String::new(), true, 0);
                for &cut in cuts.iter().chain([&text.len()]) {
                    push_normalized(&text[from..cut], &mut out, &mut space);
                    from = cut;
                }
                assert_eq!(out.trim_end_matches(' '), want, "{text:?} in pieces");
            }
        }
    }

    #[test]
    fn terms_are_found_across_lines_and_windows_not_across_documents() {
        let terms = [term("quarterly report", FREE_TEXT), term("Привет", bit(Doc::Subject)), term("zz", FREE_TEXT)];
        let mut m = Matcher::new(&terms);
        m.begin(Doc::Body);
        let filler = "x ".repeat(WINDOW / 2 - 4);
        assert!(!m.text(&filler));
        m.text("QUARTERLY\r\n");
        m.text("  report and ПРИВЕТ z");
        assert!(m.end());
        assert_eq!(m.found(), 0b001, "Привет is looked for in the Subject only");
        assert!(m.wants(Doc::Subject) && m.wants(Doc::Date));
        m.document(Doc::Subject, "=> привет <=");
        assert_eq!(m.found(), 0b011);
        // The end of one document and the start of the next do not make a term.
        m.document(Doc::Body, "z");
        m.document(Doc::Body, "z");
        assert_eq!(m.found(), 0b011);
    }
}
