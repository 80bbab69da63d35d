//! What an upload learns of a message before sending it, in one streamed pass: the size
//! it goes up with (an IMAP literal announces it first), the fingerprint of its header,
//! which tells whether the target already holds it, and its `Date:`.
//!
//! A message goes up with CRLF line ends ([`Crlf`]): RFC 5322 wants them, servers report
//! sizes counting them, and some (Cyrus) refuse a message with a bare LF.
//!
//! The fingerprint is taken of what survives what servers do to a stored message: the
//! first [`HEADER_PREFIX`] bytes of the header as sent (what a partial fetch of the
//! target's `BODY[HEADER]` returns), with CRs left out (bare LF or CRLF), every byte
//! that is not 7-bit text as `X` (Cyrus's `munge8bit` stores raw 8-bit header bytes as
//! `X`; Dovecot serves NUL as 0x80), and trailing line ends left out (a header-only
//! message gains or loses its blank line).

use std::io::{self, Read};

use sha2::{Digest, Sha256};

pub use crate::imap::HEADER_PREFIX;

/// A header's fingerprint.
pub type Print = [u8; 16];

/// A message, measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Its size as sent, with CRLF line ends: what servers report as `RFC822.SIZE`.
    pub size: u64,
    /// Its header's fingerprint ([`fingerprint`]).
    pub print: Print,
    /// Its `Date:` header as Unix time, when readable.
    pub date: Option<i64>,
}

/// Reads `r` to its end.
pub fn measure(r: &mut dyn Read) -> io::Result<Measured> {
    let mut crlf = Crlf::new(r);
    let mut buf = vec![0u8; 64 * 1024];
    let mut header = Vec::new();
    let mut header_done = false;
    let mut size = 0u64;
    loop {
        let n = match crlf.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        size += n as u64;
        if !header_done {
            let room = HEADER_PREFIX - header.len();
            header.extend_from_slice(&buf[..room.min(n)]);
            if let Some(end) = header_end(&header) {
                header.truncate(end);
                header_done = true;
            } else if header.len() == HEADER_PREFIX {
                header_done = true;
            }
        }
    }
    let date = crate::mbox::header_field(&header, b"date").and_then(|v| crate::mbox::parse_rfc5322_date(&v));
    Ok(Measured { size, print: fingerprint(&header), date })
}

/// Where the header ends (after its blank line), if it does within `data`.
fn header_end(data: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            let line = &data[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// The fingerprint of a header as sent or as a server returns it (see the module's
/// documentation): `header` may run on past its end (it is cut at its blank line) and
/// is compared on its first [`HEADER_PREFIX`] bytes.
pub fn fingerprint(header: &[u8]) -> Print {
    let header = &header[..header.len().min(HEADER_PREFIX)];
    let header = &header[..header_end(header).unwrap_or(header.len())];
    let mut kept: Vec<u8> =
        header.iter().filter(|&&b| b != b'\r').map(|&b| if b == 0 || b >= 0x80 { b'X' } else { b }).collect();
    while kept.last() == Some(&b'\n') {
        kept.pop();
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&Sha256::digest(&kept)[..16]);
    out
}

/// A reader that gives a message with CRLF line ends: a LF without a CR before it gets one.
pub struct Crlf<R> {
    inner: R,
    /// The last byte handed out was a CR.
    after_cr: bool,
    /// A LF owed after the CR put in front of it.
    owed_lf: bool,
    buf: Vec<u8>,
}

impl<R: Read> Crlf<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Crlf<R> {
        Crlf { inner, after_cr: false, owed_lf: false, buf: vec![0u8; 32 * 1024] }
    }
}

impl<R: Read> Read for Crlf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        if self.owed_lf {
            out[0] = b'\n';
            self.owed_lf = false;
            self.after_cr = false;
            n = 1;
        }
        // Each input byte may become two: read at most half of what is left.
        let want = ((out.len() - n) / 2).clamp(1, self.buf.len());
        let got = if n == out.len() { 0 } else { self.inner.read(&mut self.buf[..want])? };
        for &b in &self.buf[..got] {
            if b == b'\n' && !self.after_cr {
                out[n] = b'\r';
                n += 1;
                if n == out.len() {
                    // Only when `out` held one byte: the LF comes with the next read.
                    self.owed_lf = true;
                    self.after_cr = true;
                    continue;
                }
            }
            out[n] = b;
            n += 1;
            self.after_cr = b == b'\r';
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(data: &[u8], chunk: usize) -> Vec<u8> {
        let mut r = Crlf::new(data);
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn bare_lf_becomes_crlf_whatever_the_reads() {
        let input = b"a\nb\r\nc\r\rd\n\n\re";
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(crlf(input, chunk), b"a\r\nb\r\nc\r\rd\r\n\r\n\re", "chunk {chunk}");
        }
    }

    #[test]
    fn sizes_and_header() {
        let msg = b"From: a\nSubject: b\nDate: 5 Jan 2019 08:00:00 -0500\n\nbody\r\nmore\n";
        let m = measure(&mut &msg[..]).unwrap();
        assert_eq!(m.size, msg.len() as u64 + 5);
        assert_eq!(m.date, Some(1546693200));
        let served = b"From: a\r\nSubject: b\r\nDate: 5 Jan 2019 08:00:00 -0500\r\n\r\n";
        assert_eq!(m.print, fingerprint(served));
        assert_ne!(m.print, fingerprint(b"From: a\r\nSubject: c\r\n\r\n"));
        // What a server sends for BODY[HEADER] ends with the blank line; BODY[] goes on.
        assert_eq!(fingerprint(b"From: a\r\nSubject: b\r\n\r\nbody"), fingerprint(b"From: a\r\nSubject: b\r\n\r\n"));
    }

    #[test]
    fn what_servers_rewrite_does_not_count() {
        let sent = "From: a\r\nSubject: Reçus 日本\r\n\r\n".as_bytes();
        let munged = b"From: a\r\nSubject: ReXXus XXXXXX\r\n\r\n";
        assert_eq!(fingerprint(sent), fingerprint(munged), "Cyrus munge8bit");
        assert_eq!(fingerprint(b"A: \0x\r\n\r\n"), fingerprint(b"A: \x80x\r\n\r\n"), "Dovecot's NUL");
        // A header-only message with and without its blank line, or a trailing newline.
        assert_eq!(fingerprint(b"From: a\r\nSubject: b"), fingerprint(b"From: a\r\nSubject: b\r\n\r\n"));
        assert_eq!(fingerprint(b"From: a\r\nSubject: b\r\n"), fingerprint(b"From: a\r\nSubject: b\r\n\r\n"));
    }

    #[test]
    fn a_header_longer_than_compared() {
        let mut msg = b"X: ".to_vec();
        msg.extend(std::iter::repeat_n(b'y', 2 * HEADER_PREFIX));
        msg.extend_from_slice(b"\r\n\r\nbody");
        let m = measure(&mut &msg[..]).unwrap();
        assert_eq!(m.print, fingerprint(&msg[..HEADER_PREFIX]), "what a partial fetch returns");
        let mut other = msg.clone();
        other[HEADER_PREFIX + 10] = b'z';
        assert_eq!(measure(&mut &other[..]).unwrap().print, m.print, "compared on the prefix");
    }
}
