//! The stored message layer: `From <sender>\n` in front of the raw message, as the
//! original wrote it. The sender comes from the message's first 16 KiB, so that much is
//! held back before anything goes on.

use std::io::{self, BufRead, BufReader, Read, Write};

use super::{invalid, Finish, BUF_SIZE};
use crate::mbox::{stored_from_line, FROM_SCAN_LIMIT};

/// Puts the original's From-line in front of the message written to it.
pub struct FromLineWriter {
    head: Vec<u8>,
    started: bool,
    inner: Box<dyn Finish>,
}

impl FromLineWriter {
    /// Wraps the next layer.
    pub fn new(inner: Box<dyn Finish>) -> Self {
        FromLineWriter { head: Vec::with_capacity(FROM_SCAN_LIMIT), started: false, inner }
    }

    fn start(&mut self) -> io::Result<()> {
        self.inner.write_all(&stored_from_line(&self.head))?;
        self.inner.write_all(&self.head)?;
        self.head = Vec::new();
        self.started = true;
        Ok(())
    }
}

impl Write for FromLineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.started {
            return self.inner.write(data);
        }
        let n = data.len().min(FROM_SCAN_LIMIT - self.head.len());
        self.head.extend_from_slice(&data[..n]);
        if self.head.len() == FROM_SCAN_LIMIT {
            self.start()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for FromLineWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.started {
            self.start()?;
        }
        self.inner.finish()
    }
}

/// The longest stored From-line a reader accepts: the sender comes from the first 16 KiB.
const MAX_FROM_LINE: u64 = FROM_SCAN_LIMIT as u64 + 64;

/// Reads the stored From-line off a decoded archive file; returns the line (without its
/// `\n`) and a reader of the raw message that follows.
pub fn split_stored(r: impl Read) -> io::Result<(Vec<u8>, BufReader<impl Read>)> {
    let mut r = BufReader::with_capacity(BUF_SIZE, r);
    let mut line = Vec::new();
    (&mut r).take(MAX_FROM_LINE).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(invalid("no stored From line (not a message written by SMail Archiver)"));
    }
    line.pop();
    if !line.starts_with(b"From ") {
        return Err(invalid("the first line is not a stored From line"));
    }
    Ok((line, r))
}
