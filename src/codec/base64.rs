//! The base64 layer of encrypted files: one line, standard alphabet, `=` padding.
//! Reading ignores ASCII white space, so wrapped or newline-terminated files decode.

use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::engine::GeneralPurpose;
use base64::read::DecoderReader;
use base64::write::EncoderWriter;

use super::{invalid, Finish};

/// Base64-encodes everything written to it into the next layer.
pub struct Base64Writer {
    enc: EncoderWriter<'static, GeneralPurpose, Box<dyn Finish>>,
}

impl Base64Writer {
    /// Wraps `inner`, which receives the base64 text.
    pub fn new(inner: Box<dyn Finish>) -> Self {
        Base64Writer { enc: EncoderWriter::new(inner, &STANDARD) }
    }
}

impl Write for Base64Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.enc.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.enc.flush()
    }
}

impl Finish for Base64Writer {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let inner = self.enc.finish()?;
        inner.finish()
    }
}

/// Drops ASCII white space from a byte stream.
struct SkipWhitespace<R> {
    inner: R,
}

impl<R: Read> Read for SkipWhitespace<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let data = &mut buf[..n];
            // Files are one line: most reads hold no white space at all.
            let Some(first) = data.iter().position(|b| is_space(*b)) else { return Ok(n) };
            let mut kept = first;
            for i in first..n {
                let b = data[i];
                if !is_space(b) {
                    data[kept] = b;
                    kept += 1;
                }
            }
            // A read of only white space must not look like the end of the file.
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

/// ASCII white space, vertical tab included (Python's `b64decode` skips it too).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Decodes base64 text, ignoring white space; malformed text is an `InvalidData` error.
pub struct Base64Reader<R: Read> {
    dec: DecoderReader<'static, GeneralPurpose, SkipWhitespace<R>>,
}

impl<R: Read> Base64Reader<R> {
    /// Wraps a reader of base64 text.
    pub fn new(inner: R) -> Self {
        Base64Reader { dec: DecoderReader::new(SkipWhitespace { inner }, &STANDARD) }
    }
}

impl<R: Read> Read for Base64Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.dec.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => invalid(format!("invalid base64 ({e})")),
            _ => e,
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_wrapping_are_ignored() {
        let text = b"aGVs\nbG8g\r\n d29y bGQ=\n\n";
        let mut out = Vec::new();
        Base64Reader::new(&text[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn truncated_text_is_invalid_data() {
        let mut out = Vec::new();
        let err = Base64Reader::new(&b"aGVsbG8gd29ybGQ"[..1 + 12]).read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn writer_is_one_line_with_padding() {
        let (sink, out) = crate::codec::shared_sink();
        let mut w = Box::new(Base64Writer::new(sink));
        w.write_all(b"hello world").unwrap();
        w.finish().unwrap();
        assert_eq!(*out.lock().unwrap(), b"aGVsbG8gd29ybGQ=");
    }
}
