//! RFC 2047 encoded words (`=?UTF-8?B?R3LDvMOfZQ==?=`) in header values, decoded for a
//! person to read (`--list`). Charsets: UTF-8, US-ASCII, ISO-8859-1, ISO-8859-15 and
//! Windows-1252, which cover nearly all mail of Western senders; a word in another charset,
//! or one that does not decode, is shown as it was written.

use base64::Engine;

/// `text` with its encoded words decoded. Whitespace between two adjacent encoded words
/// is dropped (RFC 2047 section 6.2), and adjacent words of one charset are decoded
/// together, so a character split across two words comes out whole.
pub fn decode(text: &str) -> String {
    let mut out = String::new();
    // Bytes of consecutive encoded words in one charset, not yet decoded.
    let mut pending: Option<(Charset, Vec<u8>)> = None;
    // Whitespace after an encoded word, kept only if no encoded word follows.
    let mut gap = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some((charset, bytes, len)) = word(rest) {
            match &mut pending {
                Some((c, b)) if *c == charset => b.extend_from_slice(&bytes),
                _ => {
                    flush(&mut out, pending.take());
                    pending = Some((charset, bytes));
                }
            }
            gap.clear();
            rest = &rest[len..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if pending.is_some() && c.is_whitespace() {
            gap.push(c);
        } else {
            flush(&mut out, pending.take());
            out.push_str(&gap);
            gap.clear();
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut out, pending);
    out.push_str(&gap);
    out
}

fn flush(out: &mut String, pending: Option<(Charset, Vec<u8>)>) {
    if let Some((charset, bytes)) = pending {
        out.push_str(&charset.decode(&bytes));
    }
}

/// The encoded word at the start of `text`: its charset, its bytes and its length in
/// `text`; `None` if it is not one this module decodes.
fn word(text: &str) -> Option<(Charset, Vec<u8>, usize)> {
    let body = text.strip_prefix("=?")?;
    let (name, body) = body.split_once('?')?;
    let (encoding, body) = body.split_once('?')?;
    let end = body.find("?=")?;
    let payload = &body[..end];
    // An encoded word holds no whitespace; a longer match is text that merely looks like one.
    if payload.contains(char::is_whitespace) || name.contains(char::is_whitespace) {
        return None;
    }
    // RFC 2231 adds a language: `UTF-8*en`.
    let charset = Charset::named(name.split('*').next().unwrap_or(name))?;
    let bytes = match encoding {
        "B" | "b" => {
            let trimmed = payload.trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed).ok()?
        }
        "Q" | "q" => q_decode(payload)?,
        _ => return None,
    };
    let len = 2 + name.len() + 1 + encoding.len() + 1 + end + 2;
    Some((charset, bytes, len))
}

/// The "Q" encoding: `_` is a space, `=XX` a byte.
fn q_decode(payload: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len());
    let mut bytes = payload.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            _ => out.push(b),
        }
    }
    Some(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
    Latin9,
    Windows1252,
}

/// Windows-1252's characters for 0x80..=0x9F (unassigned ones as in Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘', '’',
    '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

impl Charset {
    fn named(name: &str) -> Option<Charset> {
        match name.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" | "us-ascii" | "ascii" => Some(Charset::Utf8),
            "iso-8859-1" | "iso8859-1" | "latin1" | "l1" => Some(Charset::Latin1),
            "iso-8859-15" | "iso8859-15" | "latin-9" => Some(Charset::Latin9),
            "windows-1252" | "cp1252" => Some(Charset::Windows1252),
            _ => None,
        }
    }

    fn decode(self, bytes: &[u8]) -> String {
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Charset::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
            Charset::Latin9 => bytes
                .iter()
                .map(|&b| match b {
                    0xA4 => '€',
                    0xA6 => 'Š',
                    0xA8 => 'š',
                    0xB4 => 'Ž',
                    0xB8 => 'ž',
                    0xBC => 'Œ',
                    0xBD => 'œ',
                    0xBE => 'Ÿ',
                    _ => char::from(b),
                })
                .collect(),
            Charset::Windows1252 => bytes
                .iter()
                .map(|&b| if (0x80..0xA0).contains(&b) { CP1252_HIGH[usize::from(b - 0x80)] } else { char::from(b) })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn words_decode() {
        for (text, want) in [
            ("=?UTF-8?B?R3LDvMOfZSBOci4gMTUx?=", "Grüße Nr. 151"),
            ("=?utf-8?q?caf=C3=A9_cr=C3=A8me?=", "café crème"),
            ("=?ISO-8859-1?Q?Andr=E9?= Martin <a@example.org>", "André Martin <a@example.org>"),
            ("=?iso-8859-15?q?=A4uro?=", "€uro"),
            ("=?windows-1252?Q?=93quoted=94?=", "“quoted”"),
            // Whitespace between two encoded words goes; around plain text it stays.
            ("=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"),
            ("Re: =?UTF-8?Q?a?= and =?UTF-8?Q?b?= end", "Re: a and b end"),
            // A character split over two words comes out whole.
            ("=?UTF-8?B?w6k=?= =?UTF-8?B?w6k=?=", "éé"),
            ("=?UTF-8?Q?=C3?= =?UTF-8?Q?=A9?=", "é"),
            ("=?UTF-8*en?Q?hello?=", "hello"),
            ("=?UTF-8?B?8J+Ygw?=", "😃"),
        ] {
            assert_eq!(decode(text), want, "{text}");
        }
    }

    #[test]
    fn what_does_not_decode_is_kept() {
        for text in [
            "plain subject",
            "=?KOI8-R?B?8NLJ18XU?=",
            "=?UTF-8?X?abc?=",
            "=?UTF-8?B?not base64!?=",
            "=?UTF-8?Q?bad=G1?=",
            "=?UTF-8?Q?unterminated",
            "=?",
            "a =? b ?= c",
            "",
        ] {
            assert_eq!(decode(text), text, "{text}");
        }
    }
}
