//! Text in the charsets mail is written in, decoded to UTF-8 as it streams.
//!
//! Charset labels are resolved as the WHATWG Encoding Standard says (what browsers and
//! most mail readers do: `iso-8859-1` and `us-ascii` read as windows-1252, `gb2312` as GBK,
//! `shift_jis` as windows-31J, `ks_c_5601-1987` as windows-949), and decoded by
//! `encoding_rs`: UTF-8, UTF-16, the ISO-8859 and windows-125x families, KOI8-R/U, IBM866,
//! Macintosh, and the CJK ones (ISO-2022-JP, Shift_JIS, EUC-JP, GBK/GB18030, Big5,
//! EUC-KR). Labels WHATWG maps to its `replacement` encoding (ISO-2022-KR, HZ-GB-2312,
//! ISO-2022-CN) decode to nothing searchable.
//!
//! Text without a charset, labelled US-ASCII, or labelled with a name nobody knows, is
//! read line by line: a line that is valid UTF-8 as UTF-8 (mislabelled UTF-8 is common),
//! any other as windows-1252 (Latin-1 and its superset, the commonest 8-bit text).

use encoding_rs::{Decoder, Encoding, WINDOWS_1252};

/// A line of fallback text held at most before it is decoded as it is.
const MAX_LINE: usize = 64 * 1024;

/// How bytes become text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// A charset `encoding_rs` knows.
    Known(&'static Encoding),
    /// None given, US-ASCII or unknown: UTF-8 where valid, else windows-1252, by line.
    Fallback,
}

impl Charset {
    /// The charset a `charset=` parameter (or an encoded word) names; `None` for none.
    pub fn of_label(label: Option<&[u8]>) -> Charset {
        let Some(label) = label.map(<[u8]>::trim_ascii).filter(|l| !l.is_empty()) else {
            return Charset::Fallback;
        };
        if label.eq_ignore_ascii_case(b"us-ascii") || label.eq_ignore_ascii_case(b"ascii") {
            return Charset::Fallback;
        }
        match Encoding::for_label(label) {
            Some(e) => Charset::Known(e),
            None => Charset::Fallback,
        }
    }
}

/// Decodes a stream of bytes in one charset.
pub struct TextDecoder {
    kind: Kind,
}

enum Kind {
    Known(Decoder),
    Fallback(Vec<u8>),
}

impl TextDecoder {
    /// A decoder of text in `charset`.
    pub fn new(charset: Charset) -> TextDecoder {
        TextDecoder {
            kind: match charset {
                Charset::Known(e) => Kind::Known(e.new_decoder()),
                Charset::Fallback => Kind::Fallback(Vec::new()),
            },
        }
    }

    /// Decodes `bytes` (more to come), appending to `out`.
    pub fn decode(&mut self, bytes: &[u8], out: &mut String) {
        match &mut self.kind {
            Kind::Known(d) => decode_known(d, bytes, out, false),
            Kind::Fallback(line) => {
                let mut rest = bytes;
                while let Some(n) = rest.iter().position(|&b| b == b'\n') {
                    if line.is_empty() {
                        fallback_line(&rest[..=n], out);
                    } else {
                        line.extend_from_slice(&rest[..=n]);
                        fallback_line(line, out);
                        line.clear();
                    }
                    rest = &rest[n + 1..];
                }
                line.extend_from_slice(rest);
                if line.len() > MAX_LINE {
                    fallback_line(line, out);
                    line.clear();
                }
            }
        }
    }

    /// The end of the text: decodes what is held back.
    pub fn finish(&mut self, out: &mut String) {
        match &mut self.kind {
            Kind::Known(d) => decode_known(d, b"", out, true),
            Kind::Fallback(line) => {
                fallback_line(line, out);
                line.clear();
            }
        }
    }
}

fn decode_known(d: &mut Decoder, mut bytes: &[u8], out: &mut String, last: bool) {
    loop {
        let need = d.max_utf8_buffer_length(bytes.len()).unwrap_or(bytes.len().saturating_mul(3) + 16);
        out.reserve(need);
        let (result, read, _) = d.decode_to_string(bytes, out, last);
        bytes = &bytes[read..];
        if result == encoding_rs::CoderResult::InputEmpty {
            return;
        }
    }
}

/// One line of fallback text: UTF-8 when valid, else windows-1252.
fn fallback_line(line: &[u8], out: &mut String) {
    match std::str::from_utf8(line) {
        Ok(text) => out.push_str(text),
        Err(_) => {
            let mut d = WINDOWS_1252.new_decoder_without_bom_handling();
            decode_known(&mut d, line, out, true);
        }
    }
}

/// All of `bytes` in `charset`.
pub fn decode_all(charset: Charset, bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut d = TextDecoder::new(charset);
    d.decode(bytes, &mut out);
    d.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(l: &str) -> Charset {
        Charset::of_label(Some(l.as_bytes()))
    }

    #[test]
    fn the_common_charsets_decode() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("utf-8", "Привет".as_bytes(), "Привет"),
            ("ISO-8859-1", b"caf\xe9", "café"),
            ("iso-8859-2", b"\xb1", "ą"),
            ("iso-8859-5", b"\xbf\xe0\xd8\xd2\xd5\xe2", "Привет"),
            ("iso-8859-7", b"\xe3\xe5\xe9\xdc", "γειά"),
            ("iso-8859-8", b"\xf9\xec\xe5\xed", "שלום"),
            ("iso-8859-15", b"\xa4", "€"),
            ("windows-1250", b"\x9a", "š"),
            ("windows-1251", b"\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"),
            ("windows-1252", b"\x80", "€"),
            ("windows-1253", b"\xe3", "γ"),
            ("windows-1255", b"\xf9", "ש"),
            ("koi8-r", b"\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"),
            ("koi8-u", b"\xa4", "є"),
            ("iso-2022-jp", b"\x1b$B$3$s$K$A$O\x1b(B", "こんにちは"),
            ("shift_jis", b"\x82\xb1\x82\xf1", "こん"),
            ("euc-jp", b"\xa4\xb3\xa4\xf3", "こん"),
            ("gb2312", b"\xc4\xe3\xba\xc3", "你好"),
            ("big5", b"\xa7\x41\xa6\x6e", "你好"),
            ("euc-kr", b"\xbe\xc8\xb3\xe7", "안녕"),
            ("ks_c_5601-1987", b"\xbe\xc8\xb3\xe7", "안녕"),
        ];
        for (l, bytes, want) in cases {
            assert_eq!(decode_all(label(l), bytes), *want, "{l}");
        }
    }

    #[test]
    fn unlabelled_text_is_utf8_where_valid_else_windows_1252_by_line() {
        let mut out = String::new();
        let mut d = TextDecoder::new(Charset::of_label(None));
        // A UTF-8 character split between two calls stays whole; a Latin-1 line beside.
        d.decode(b"caf\xc3", &mut out);
        d.decode(b"\xa9\r\nna\xefve\n", &mut out);
        d.decode(b"end", &mut out);
        d.finish(&mut out);
        assert_eq!(out, "café\r\nnaïve\nend");
        assert_eq!(label("us-ascii"), Charset::Fallback);
        assert_eq!(label("x-no-such-charset"), Charset::Fallback);
        assert_eq!(decode_all(label("x-unknown"), b"\xe9t\xe9"), "été");
    }

    #[test]
    fn split_multibyte_input_decodes_whole() {
        let text = "日本語のテキスト".as_bytes();
        for charset in [label("utf-8"), label("shift_jis")] {
            let bytes = match charset {
                Charset::Known(e) => e.encode(std::str::from_utf8(text).unwrap()).0.into_owned(),
                Charset::Fallback => unreachable!(),
            };
            let mut out = String::new();
            let mut d = TextDecoder::new(charset);
            for b in bytes.chunks(1) {
                d.decode(b, &mut out);
            }
            d.finish(&mut out);
            assert_eq!(out, "日本語のテキスト");
        }
    }
}
