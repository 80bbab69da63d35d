//! The compression layer: a zlib stream (RFC 1950) as the original wrote it. Reading
//! also accepts a real gzip member (RFC 1952), which the `.gz` suffix suggests.

use std::io::{self, Read, Write};

use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use super::base64::read_full;
use super::{invalid, Finish, BUF_SIZE};

/// Compresses everything written to it into a zlib stream.
pub struct DeflateWriter {
    state: Box<CompressorOxide>,
    out: Vec<u8>,
    inner: Box<dyn Finish>,
}

impl DeflateWriter {
    /// Compresses at `level` (0..=10; values above are clamped) into `inner`.
    pub fn new(inner: Box<dyn Finish>, level: u8) -> Self {
        // Positive window bits ask miniz for the zlib header and Adler-32 trailer.
        let flags = create_comp_flags_from_zip_params(i32::from(level.min(10)), 15, 0);
        let state = Box::new(CompressorOxide::new(flags));
        DeflateWriter { state, out: vec![0u8; BUF_SIZE], inner }
    }

    /// Runs the compressor over `input`; returns how much of it was consumed.
    fn run(&mut self, input: &[u8], flush: MZFlush) -> io::Result<(usize, bool)> {
        let res = miniz_oxide::deflate::stream::deflate(&mut self.state, input, &mut self.out, flush);
        self.inner.write_all(&self.out[..res.bytes_written])?;
        match res.status {
            Ok(MZStatus::StreamEnd) => Ok((res.bytes_consumed, true)),
            Ok(_) => Ok((res.bytes_consumed, false)),
            // Buf means "no progress possible": with input consumed and no flush, fine.
            Err(MZError::Buf) => Ok((res.bytes_consumed, false)),
            Err(e) => Err(io::Error::other(format!("zlib compression failed: {e:?}"))),
        }
    }
}

impl Write for DeflateWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        loop {
            let (used, _) = self.run(data, MZFlush::None)?;
            if used > 0 {
                return Ok(used);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for DeflateWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        while !self.run(&[], MZFlush::Finish)?.1 {}
        self.inner.finish()
    }
}

/// Which container the compressed stream came in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Container {
    Zlib,
    Gzip,
}

/// Decompresses a zlib stream or a gzip member, checking its checksum at the end.
pub struct InflateReader<R: Read> {
    inner: R,
    state: Option<Box<InflateState>>,
    container: Container,
    input: Vec<u8>,
    in_pos: usize,
    in_end: usize,
    done: bool,
    crc: u32,
    size: u32,
}

impl<R: Read> InflateReader<R> {
    /// Wraps a reader of compressed bytes.
    pub fn new(inner: R) -> Self {
        InflateReader {
            inner,
            state: None,
            container: Container::Zlib,
            input: vec![0u8; BUF_SIZE],
            in_pos: 0,
            in_end: 0,
            done: false,
            crc: 0,
            size: 0,
        }
    }

    /// Looks at the first bytes to tell zlib from gzip; skips a gzip header.
    fn start(&mut self) -> io::Result<()> {
        self.in_end = read_full(&mut self.inner, &mut self.input)?;
        if self.in_end >= 2 && self.input[0] == 0x1f && self.input[1] == 0x8b {
            self.container = Container::Gzip;
            self.in_pos = self.gzip_header_len()?;
            self.state = Some(InflateState::new_boxed(DataFormat::Raw));
        } else {
            if self.in_end < 2 {
                return Err(invalid("compressed data is too short"));
            }
            let (cmf, flg) = (self.input[0], self.input[1]);
            if cmf & 0x0f != 8 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
                return Err(invalid("not zlib or gzip data (bad header)"));
            }
            self.state = Some(InflateState::new_boxed(DataFormat::Zlib));
        }
        Ok(())
    }

    /// Length of the gzip header in the first buffer (RFC 1952 section 2.3).
    fn gzip_header_len(&self) -> io::Result<usize> {
        let h = &self.input[..self.in_end];
        let short = || invalid("gzip header is cut short");
        if h.len() < 10 || h[2] != 8 {
            return Err(invalid("unsupported gzip header"));
        }
        let flags = h[3];
        let mut pos = 10;
        if flags & 0x04 != 0 {
            let xlen =
                usize::from(*h.get(pos).ok_or_else(short)?) | usize::from(*h.get(pos + 1).ok_or_else(short)?) << 8;
            pos += 2 + xlen;
        }
        for bit in [0x08, 0x10] {
            if flags & bit != 0 {
                let nul = h.get(pos..).ok_or_else(short)?.iter().position(|&b| b == 0).ok_or_else(short)?;
                pos += nul + 1;
            }
        }
        if flags & 0x02 != 0 {
            pos += 2;
        }
        if pos > h.len() {
            return Err(short());
        }
        Ok(pos)
    }

    /// Reads `n` trailer bytes that follow the deflate data.
    fn trailer(&mut self, n: usize) -> io::Result<[u8; 8]> {
        let mut t = [0u8; 8];
        let from_buf = (self.in_end - self.in_pos).min(n);
        t[..from_buf].copy_from_slice(&self.input[self.in_pos..self.in_pos + from_buf]);
        self.in_pos += from_buf;
        if read_full(&mut self.inner, &mut t[from_buf..n])? != n - from_buf {
            return Err(invalid("gzip trailer is cut short"));
        }
        Ok(t)
    }

    /// After the stream's end, the file must end too.
    fn expect_end(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        if self.in_pos < self.in_end || read_full(&mut self.inner, &mut probe)? != 0 {
            return Err(invalid("unexpected data after the end of the compressed stream"));
        }
        Ok(())
    }
}

impl<R: Read> Read for InflateReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        if self.state.is_none() {
            self.start()?;
        }
        loop {
            if self.in_pos == self.in_end {
                self.in_end = read_full(&mut self.inner, &mut self.input)?;
                self.in_pos = 0;
            }
            let eof = self.in_end == 0;
            let state = self.state.as_mut().ok_or_else(|| io::Error::other("inflate state missing"))?;
            let res =
                miniz_oxide::inflate::stream::inflate(state, &self.input[self.in_pos..self.in_end], out, MZFlush::None);
            self.in_pos += res.bytes_consumed;
            let written = &out[..res.bytes_written];
            if self.container == Container::Gzip {
                self.crc = crc32_update(self.crc, written);
                self.size = self.size.wrapping_add(written.len() as u32);
            }
            match res.status {
                Ok(MZStatus::StreamEnd) => {
                    if self.container == Container::Gzip {
                        let t = self.trailer(8)?;
                        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
                        if crc != self.crc || size != self.size {
                            return Err(invalid("gzip checksum mismatch: the data is corrupt"));
                        }
                    }
                    self.expect_end()?;
                    self.done = true;
                    return Ok(res.bytes_written);
                }
                Ok(_) | Err(MZError::Buf) => {
                    if res.bytes_written > 0 {
                        return Ok(res.bytes_written);
                    }
                    if eof {
                        return Err(invalid("compressed data is cut short"));
                    }
                }
                Err(MZError::Data) => {
                    return Err(invalid(if self.container == Container::Zlib {
                        "corrupt zlib data (bad deflate block or Adler-32 checksum)"
                    } else {
                        "corrupt gzip data"
                    }))
                }
                Err(e) => return Err(invalid(format!("decompression failed: {e:?}"))),
            }
        }
    }
}

/// CRC-32 (IEEE) as gzip uses it; table built at compile time.
fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_answer() {
        assert_eq!(crc32_update(0, b"123456789"), 0xcbf4_3926);
    }
}
