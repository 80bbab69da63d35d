//! What an upload learns of a message before sending it, in one streamed pass: its exact
//! size (an IMAP literal announces it first), the size a server reports for it, and its
//! header, which tells whether the target already holds it.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// The most of a header kept (and compared); longer headers are compared on this much.
pub const MAX_HEADER: usize = 64 * 1024;

/// A message, measured.
#[derive(Debug)]
pub struct Measured {
    /// Its bytes.
    pub bytes: u64,
    /// `RFC822.SIZE` as servers report it: every line end counted as CRLF.
    pub virtual_size: u64,
    /// Its header, up to the blank line that ends it (at most [`MAX_HEADER`] bytes).
    pub header: Vec<u8>,
}

/// Reads `r` to its end.
pub fn measure(r: &mut dyn Read) -> io::Result<Measured> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut m = Measured { bytes: 0, virtual_size: 0, header: Vec::new() };
    let mut previous = 0u8;
    let mut header_done = false;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let piece = &buf[..n];
        m.bytes += n as u64;
        let mut bare = 0u64;
        for &b in piece {
            if b == b'\n' && previous != b'\r' {
                bare += 1;
            }
            previous = b;
        }
        m.virtual_size += n as u64 + bare;
        if !header_done {
            let room = MAX_HEADER - m.header.len();
            m.header.extend_from_slice(&piece[..room.min(n)]);
            if let Some(end) = header_end(&m.header) {
                m.header.truncate(end);
                header_done = true;
            } else if m.header.len() == MAX_HEADER {
                header_done = true;
            }
        }
    }
    Ok(m)
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

/// A header's fingerprint: line ends do not count (servers send CRLF whatever they
/// stored), a header cut at [`MAX_HEADER`] is compared on what was kept.
pub fn fingerprint(header: &[u8]) -> [u8; 16] {
    let header = &header[..header_end(header).unwrap_or(header.len()).min(MAX_HEADER)];
    let mut h = Sha256::new();
    for piece in header.split(|&b| b == b'\r') {
        h.update(piece);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_header() {
        let msg = b"From: a\nSubject: b\n\nbody\r\nmore\n";
        let m = measure(&mut &msg[..]).unwrap();
        assert_eq!(m.bytes, msg.len() as u64);
        assert_eq!(m.virtual_size, msg.len() as u64 + 4);
        assert_eq!(m.header, b"From: a\nSubject: b\n\n");
        assert_eq!(fingerprint(&m.header), fingerprint(b"From: a\r\nSubject: b\r\n\r\n"));
        assert_ne!(fingerprint(&m.header), fingerprint(b"From: a\r\nSubject: c\r\n\r\n"));
        // What a server sends for BODY[HEADER] ends with the blank line too.
        assert_eq!(fingerprint(b"From: a\r\nSubject: b\r\n\r\nbody"), fingerprint(&m.header));
    }

    #[test]
    fn a_header_longer_than_kept() {
        let mut msg = b"X: ".to_vec();
        msg.extend(std::iter::repeat_n(b'y', 3 * MAX_HEADER));
        msg.extend_from_slice(b"\r\n\r\nbody");
        let m = measure(&mut &msg[..]).unwrap();
        assert_eq!(m.header.len(), MAX_HEADER);
        assert_eq!(fingerprint(&m.header), fingerprint(&msg));
    }
}
