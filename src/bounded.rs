//! Size caps on everything read whole from outside the archive (key, `.sha`, CA,
//! password and config files, password and token commands, standard input): a device
//! such as `/dev/zero`, a runaway command or a planted giant file ends in an error at
//! the cap instead of exhausting the memory of a small NAS box.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

/// Key file: base64 of 64 bytes is 88 characters; the rest is room for white space.
pub const KEY_FILE: usize = 4 * 1024;
/// `.sha` password check file: base64 of 32 bytes is 44 characters.
pub const SHA_FILE: usize = 1024;
/// `--ca-file`: a PEM certificate is 1-3 KiB, so this holds a few hundred of them.
pub const CA_FILE: usize = 1024 * 1024;
/// A password or token line (file, standard input, terminal), and the whole output of a
/// password or token command: OAuth2 access tokens run to a few KiB.
pub const SECRET: usize = 64 * 1024;
/// Configuration file: 10,000 accounts of a few hundred bytes each fit.
pub const CONFIG_FILE: usize = 4 * 1024 * 1024;
/// Accounts in one configuration file.
pub const ACCOUNTS: usize = 10_000;

/// The error of a read that went past `cap`: kind [`io::ErrorKind::FileTooLarge`], so
/// callers can add what the input should have been.
fn too_large(what: &str, cap: usize) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, format!("{what} {cap} bytes"))
}

/// Whether `e` is a read that went past its cap.
pub fn is_too_large(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::FileTooLarge
}

/// Everything `reader` gives, or an error once it gives more than `cap` bytes (one byte
/// past the cap is read, so a source of exactly `cap` bytes is accepted).
pub fn read_to_end(reader: impl Read, cap: usize) -> io::Result<Vec<u8>> {
    read_to_end_sized(reader, cap, 0)
}

fn read_to_end_sized(reader: impl Read, cap: usize, size_hint: u64) -> io::Result<Vec<u8>> {
    let limit = cap.saturating_add(1);
    let mut buf = Vec::with_capacity(usize::try_from(size_hint).map_or(limit, |n| n.min(limit)));
    reader.take(limit as u64).read_to_end(&mut buf)?;
    if buf.len() > cap {
        return Err(too_large("larger than", cap));
    }
    Ok(buf)
}

/// The contents of the file at `path`, at most `cap` bytes.
pub fn read_file(path: &Path, cap: usize) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    // A device reports length 0; the hint only saves regrowing for ordinary files.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_to_end_sized(file, cap, hint)
}

/// One line without its line break, or `None` at the end of input before any byte; an
/// error once the line runs past `cap` bytes. Input after the line break stays unread.
pub fn read_line<R: BufRead + ?Sized>(reader: &mut R, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(line));
        }
        any = true;
        let (body, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if line.len() + body.len() > cap {
            return Err(too_large("a line longer than", cap));
        }
        line.extend_from_slice(body);
        reader.consume(used);
        if done {
            return Ok(Some(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_cap_and_no_further() {
        assert_eq!(read_to_end(&b"abcd"[..], 4).unwrap(), b"abcd");
        let e = read_to_end(&b"abcde"[..], 4).unwrap_err();
        assert!(is_too_large(&e) && e.to_string() == "larger than 4 bytes", "{e}");
        let e = read_to_end(io::repeat(0), 4096).unwrap_err();
        assert!(is_too_large(&e));
    }

    #[test]
    fn files_and_devices() {
        let e = read_file(Path::new("/dev/zero"), KEY_FILE).unwrap_err();
        assert_eq!(e.to_string(), "larger than 4096 bytes");
        assert!(read_file(Path::new("/nonexistent/x"), KEY_FILE).unwrap_err().kind() == io::ErrorKind::NotFound);
        assert_eq!(read_file(Path::new("/dev/null"), KEY_FILE).unwrap(), b"");
    }

    #[test]
    fn lines() {
        let mut r = &b"one\r\ntwo\nthree"[..];
        assert_eq!(read_line(&mut r, 5).unwrap().unwrap(), b"one\r");
        assert_eq!(read_line(&mut r, 3).unwrap().unwrap(), b"two");
        assert_eq!(read_line(&mut r, 5).unwrap().unwrap(), b"three");
        assert_eq!(read_line(&mut r, 5).unwrap(), None);
        let mut r = &b"\n"[..];
        assert_eq!(read_line(&mut r, 5).unwrap().unwrap(), b"");
        let mut r = &b"toolong\n"[..];
        let e = read_line(&mut r, 6).unwrap_err();
        assert_eq!(e.to_string(), "a line longer than 6 bytes");
        // Across the reader's buffer boundaries, from an endless source.
        let mut r = io::BufReader::with_capacity(7, io::repeat(b'x'));
        assert!(is_too_large(&read_line(&mut r, 100).unwrap_err()));
    }
}
