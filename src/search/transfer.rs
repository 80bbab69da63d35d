//! Content-Transfer-Encodings undone as the bytes stream: quoted-printable and base64,
//! leniently, with the rules of Python's `binascii` (what the `email` package, and so
//! the test oracle, use), which are also what damaged real-world mail needs:
//!
//! * quoted-printable: `=XX` (either case) is a byte; `=` at a line's end joins the next
//!   line; `==` is one `=`; any other `=` stays as it is; a `=` at the very end goes.
//! * base64: characters outside the alphabet are skipped; the first complete padding
//!   ends the data (the rest of the part is not read, as RFC 2045 allows); a final partial
//!   group gives the bytes it holds.

/// Which transfer encoding, from a `Content-Transfer-Encoding` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// 7bit, 8bit, binary, or anything unknown: the bytes as they are.
    Identity,
    /// quoted-printable.
    QuotedPrintable,
    /// base64.
    Base64,
}

impl Encoding {
    /// The encoding a header value names.
    pub fn of(value: Option<&[u8]>) -> Encoding {
        let v = value.map(<[u8]>::trim_ascii).unwrap_or_default();
        if v.eq_ignore_ascii_case(b"quoted-printable") {
            Encoding::QuotedPrintable
        } else if v.eq_ignore_ascii_case(b"base64") {
            Encoding::Base64
        } else {
            Encoding::Identity
        }
    }
}

/// Undoes one transfer encoding, fed in pieces.
pub struct Decoder {
    encoding: Encoding,
    /// Quoted-printable: bytes held back (a `=` near the end of a piece); base64: unused.
    held: Vec<u8>,
    b64: Base64,
}

impl Decoder {
    /// A decoder of `encoding`.
    pub fn new(encoding: Encoding) -> Decoder {
        Decoder { encoding, held: Vec::new(), b64: Base64::default() }
    }

    /// Decodes `data` (more may come), appending to `out`.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match self.encoding {
            Encoding::Identity => out.extend_from_slice(data),
            Encoding::Base64 => self.b64.decode(data, out),
            Encoding::QuotedPrintable => {
                if self.held.is_empty() {
                    let used = qp(data, out, false);
                    self.held.extend_from_slice(&data[used..]);
                } else {
                    let mut joined = std::mem::take(&mut self.held);
                    joined.extend_from_slice(data);
                    let used = qp(&joined, out, false);
                    self.held.extend_from_slice(&joined[used..]);
                }
            }
        }
    }

    /// The end of the data.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.encoding == Encoding::QuotedPrintable {
            let held = std::mem::take(&mut self.held);
            qp(&held, out, true);
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes quoted-printable `data` into `out`; returns the bytes used: all of them when
/// `last`, else up to a `=` whose meaning depends on what follows.
fn qp(data: &[u8], out: &mut Vec<u8>, last: bool) -> usize {
    let mut i = 0;
    while i < data.len() {
        let Some(eq) = data[i..].iter().position(|&b| b == b'=') else {
            out.extend_from_slice(&data[i..]);
            return data.len();
        };
        out.extend_from_slice(&data[i..i + eq]);
        i += eq;
        // `data[i]` is `=`.
        let next = data.get(i + 1).copied();
        match next {
            None if last => return data.len(),
            None => return i,
            Some(b'\n') => i += 2,
            Some(b'\r') => match data[i + 2..].iter().position(|&b| b == b'\n') {
                Some(n) => i += 3 + n,
                None if last => return data.len(),
                None => return i,
            },
            Some(b'=') => {
                out.push(b'=');
                i += 2;
            }
            Some(h) => match (hex(h), data.get(i + 2).copied()) {
                (Some(_), None) if !last => return i,
                (Some(hi), Some(l)) if hex(l).is_some() => {
                    out.push(hi << 4 | hex(l).unwrap_or(0));
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
        }
    }
    data.len()
}

/// All of quoted-printable `data` decoded.
#[cfg(test)]
fn qp_all(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    qp(data, &mut out, true);
    out
}

/// The bytes of an encoded word's `Q` text: `_` is a space, `=XX` (either case) a byte,
/// anything else itself.
pub fn qp_header(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match (data[i], data.get(i + 1).copied().and_then(hex), data.get(i + 2).copied().and_then(hex)) {
            (b'=', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'_', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A lenient base64 decoder (see the module's doc).
#[derive(Default)]
pub struct Base64 {
    bits: u32,
    /// Characters of the current group of four.
    n: u8,
    pads: u8,
    ended: bool,
}

impl Base64 {
    /// Decodes more characters, appending to `out`.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        for &c in data {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => {
                    if self.n >= 2 {
                        self.pads += 1;
                        if self.n + self.pads >= 4 {
                            self.ended = true;
                            return;
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            self.bits = self.bits << 6 | u32::from(v);
            self.n += 1;
            match self.n {
                2 => out.push((self.bits >> 4) as u8),
                3 => out.push((self.bits >> 2) as u8),
                4 => {
                    out.push(self.bits as u8);
                    self.n = 0;
                    self.bits = 0;
                    self.pads = 0;
                }
                _ => {}
            }
        }
    }
}

/// All of base64 `data` decoded.
pub fn base64_all(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 3);
    Base64::default().decode(data, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp_pieces(data: &[u8], piece: usize) -> Vec<u8> {
        let mut d = Decoder::new(Encoding::QuotedPrintable);
        let mut out = Vec::new();
        for p in data.chunks(piece) {
            d.decode(p, &mut out);
        }
        d.finish(&mut out);
        out
    }

    /// The expected values are Python's `quopri.decodestring` (`binascii.a2b_qp`).
    #[test]
    fn quoted_printable_as_python_decodes_it() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"caf=C3=A9 quarter=\r\nly", b"caf\xc3\xa9 quarterly"),
            (b"a=c3=a9b", b"a\xc3\xa9b"),
            (b"x=ZZy", b"x=ZZy"),
            (b"soft= \r\nbreak", b"soft= \r\nbreak"),
            (b"end=", b"end"),
            (b"a==41b", b"a=41b"),
            (b"x=4", b"x=4"),
            (b"tab\t=\r\n\tx", b"tab\t\tx"),
            (b"a=\rjunk\nb", b"ab"),
            (b"a=\nb", b"ab"),
        ];
        for (input, want) in cases {
            for piece in [1, 2, 3, 100] {
                assert_eq!(qp_pieces(input, piece), *want, "{:?} in pieces of {piece}", String::from_utf8_lossy(input));
            }
            assert_eq!(qp_all(input), *want);
        }
    }

    /// The expected values are Python's `email._encoded_words.decode_b` (which
    /// `get_payload(decode=True)` uses), but for a dangling last character.
    #[test]
    fn base64_as_python_decodes_it() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"QUJDREVG", b"ABCDEF"),
            (b"QUJD\r\nREVG\r\n", b"ABCDEF"),
            (b"QUJD*REVG", b"ABCDEF"),
            (b"QUI=QUJD", b"AB"),
            (b"QUJDRA", b"ABCD"),
            (b"QU JD", b"ABC"),
            (b"QQ==QUJD", b"A"),
            (b"QUJD=REVG", b"ABCDEF"),
            // Python returns the text itself here; a search skips the dangling character.
            (b"QUJDR", b"ABC"),
        ];
        for (input, want) in cases {
            for piece in [1, 3, 100] {
                let mut d = Decoder::new(Encoding::Base64);
                let mut out = Vec::new();
                for p in input.chunks(piece) {
                    d.decode(p, &mut out);
                }
                d.finish(&mut out);
                assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(input));
            }
        }
    }

    #[test]
    fn encodings_are_named_loosely() {
        assert_eq!(Encoding::of(Some(b" Base64 ")), Encoding::Base64);
        assert_eq!(Encoding::of(Some(b"QUOTED-PRINTABLE")), Encoding::QuotedPrintable);
        assert_eq!(Encoding::of(Some(b"8bit")), Encoding::Identity);
        assert_eq!(Encoding::of(None), Encoding::Identity);
    }
}
