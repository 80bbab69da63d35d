//! Header values as text: raw 8-bit bytes and RFC 2047 encoded words
//! (`=?charset?Q|B?text?=`) decoded.
//!
//! Encoded words are found as leniently as Python's `email` package finds them in
//! unstructured values (what real mail needs, and what the test oracle does): also inside
//! quoted strings and glued to other text (`Re:=?utf-8?q?...?=`); white space between two
//! encoded words goes; a malformed one stays as it is written. Raw 8-bit bytes outside
//! encoded words (headers that were never encoded) are read as UTF-8 where valid, else as
//! windows-1252.

use std::borrow::Cow;

use super::charset::{self, Charset};
use super::transfer;

/// The text of a header value.
pub fn decode_value(raw: &[u8]) -> Cow<'_, str> {
    // Most values are plain ASCII: nothing to decode, nothing to copy.
    if raw.is_ascii() && !raw.windows(2).any(|w| w == b"=?") {
        return Cow::Borrowed(std::str::from_utf8(raw).unwrap_or_default());
    }
    let text = charset::decode_all(Charset::Fallback, raw);
    if !text.contains("=?") {
        return Cow::Owned(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    // The last token pushed: white space (and where it started in `out`), an encoded word.
    let mut last_ws: Option<usize> = None;
    let mut last_was_word = false;
    let mut before_last_was_word = false;
    // After a malformed encoded word, Python stops splitting words at `=?`.
    let mut split_words = true;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
        if ws > 0 {
            last_ws = Some(out.len());
            out.push_str(&rest[..ws]);
            rest = &rest[ws..];
            before_last_was_word = last_was_word;
            last_was_word = false;
            continue;
        }
        if rest.starts_with("=?") {
            match encoded_word(rest) {
                Word::Decoded(decoded, after) => {
                    // White space between two encoded words is not text.
                    if let (Some(at), true) = (last_ws, before_last_was_word) {
                        out.truncate(at);
                    }
                    out.push_str(&decoded);
                    rest = after;
                    last_ws = None;
                    before_last_was_word = false;
                    last_was_word = true;
                    continue;
                }
                Word::Malformed => split_words = false,
                Word::NotOne => {}
            }
        }
        // A word of text, up to the next white space, or to an encoded word inside it.
        let end = rest.find([' ', '\t', '\r', '\n']).unwrap_or(rest.len());
        let mut word = &rest[..end];
        if split_words && contains_encoded(word) {
            if let Some(at) = word.find("=?").filter(|&at| at > 0) {
                word = &word[..at];
            }
        }
        out.push_str(word);
        rest = &rest[word.len()..];
        last_ws = None;
        before_last_was_word = false;
        last_was_word = false;
    }
    Cow::Owned(out)
}

enum Word<'a> {
    /// An encoded word's text, and what follows it.
    Decoded(String, &'a str),
    /// It has the shape of one but does not decode (an unknown encoding letter...).
    Malformed,
    /// No `?=` ends it.
    NotOne,
}

/// Whether `word` holds something of an encoded word's shape (Python's `rfc2047_matcher`).
fn contains_encoded(word: &str) -> bool {
    word.match_indices("=?").any(|(i, _)| looks_encoded(&word[i..]))
}

/// Whether `text` starts with something of an encoded word's shape.
fn looks_encoded(text: &str) -> bool {
    let Some(body) = text.strip_prefix("=?") else { return false };
    let Some(q) = body.find('?') else { return false };
    let after = &body[q + 1..];
    let mut chars = after.chars();
    matches!(chars.next(), Some('q' | 'Q' | 'b' | 'B')) && chars.next() == Some('?') && after[2..].contains("?=")
}

/// The encoded word at the start of `text` (which starts with `=?`), as Python's
/// `get_encoded_word` reads it.
fn encoded_word(text: &str) -> Word<'_> {
    let body = &text[2..];
    let Some(end) = body.find("?=") else { return Word::NotOne };
    let mut tok = &body[..end];
    let mut after = &body[end + 2..];
    // `?=` followed by two hex digits, with the encoding's `?` not seen yet, was `?` then
    // a quoted-printable `=XX`: the word goes on to the next `?=`.
    let hex2 = after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit);
    if hex2 && tok.matches('?').count() < 2 {
        if let Some(next) = after.find("?=") {
            tok = &body[..end + 2 + next];
            after = &after[next + 2..];
        } else {
            tok = body;
            after = "";
        }
    }
    let parts: Vec<&str> = tok.split('?').collect();
    let [charset, encoding, encoded] = parts.as_slice() else { return Word::Malformed };
    let charset = charset.split('*').next().unwrap_or_default();
    let bytes = match *encoding {
        "q" | "Q" => transfer::qp_header(encoded.as_bytes()),
        "b" | "B" => transfer::base64_all(encoded.as_bytes()),
        _ => return Word::Malformed,
    };
    let decoded = match Charset::of_label(Some(charset.as_bytes())) {
        Charset::Known(e) => charset::decode_all(Charset::Known(e), &bytes),
        // Python decodes an unknown charset's bytes as UTF-8 where they are valid.
        Charset::Fallback => String::from_utf8_lossy(&bytes).into_owned(),
    };
    Word::Decoded(decoded, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected values are `str()` of Python's `UnstructuredHeader` of the same value.
    #[test]
    fn values_decode_as_python_decodes_them() {
        let cases: &[(&str, &str)] = &[
            ("Re: =?utf-8?q?Caf=C3=A9?=", "Re: Café"),
            ("Re:=?utf-8?q?Caf=C3=A9?=x", "Re:Caféx"),
            ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
            ("=?utf-8?q?a?=  \r\n =?utf-8?q?b?= c", "ab c"),
            ("\"=?utf-8?q?J=C3=B6rg?=\" <j@x.org>", "\"Jörg\" <j@x.org>"),
            ("=?utf-8?b?0J/RgNC40LLQtdGC?=", "Привет"),
            ("=?utf-8?q?hello world?=", "hello world"),
            ("=?iso-8859-1*fr?q?caf=E9?=", "café"),
            ("a =?utf-8?x?b?= c", "a =?utf-8?x?b?= c"),
            ("=?koi8-r?b?8NLJ18XU?=", "Привет"),
            ("=?utf-8?q?a_b?=", "a b"),
            ("=?utf-8?b?0J/RgNC40LLQtdGC?==?utf-8?b?0J/RgNC40LLQtdGC?=", "ПриветПривет"),
            ("=?utf-8?q?=41?=", "A"),
            ("no words", "no words"),
            ("=?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=", "こんにちは"),
            ("=?x-unknown?q?caf=C3=A9?=", "café"),
            ("a =? b", "a =? b"),
            ("x=?utf-8?q?y?=", "xy"),
            ("a=?b=?utf-8?q?x?= c", "a=?b=?utf-8?q?x?= c"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_value(raw.as_bytes()), *want, "{raw}");
        }
    }

    #[test]
    fn raw_8bit_values_are_utf8_or_windows_1252() {
        assert_eq!(decode_value("Grüße".as_bytes()), "Grüße");
        assert_eq!(decode_value(b"Gr\xfc\xdfe"), "Grüße");
    }
}
