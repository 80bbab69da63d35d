//! Reading archive files with two cores: a thread of its own authenticates and decrypts
//! the files, in order, ahead of the caller, who inflates and writes them out. The two
//! halves cost about the same, and the queue between them is bounded, so memory stays
//! flat whatever the message size. The files may be handed over as the caller finds them
//! (an iterator over a channel), so a folder of any size needs no list of paths.

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::archive::ArchiveFile;
use crate::codec::base64::read_full;
use crate::codec::{self, fromline, Form, BUF_SIZE};
use crate::error::{IoContext, Result};
use crate::keys::Keys;

/// Pieces the queue holds: at most this many times `BUF_SIZE` of decrypted data waits.
const QUEUE: usize = 8;

enum Piece {
    /// The next file starts; its layers.
    Begin(Form),
    Data(Vec<u8>),
    /// The file's end, with its HMAC tag when it is encrypted.
    End(Option<[u8; 32]>),
    Failed(io::Error),
}

/// The decrypting thread and its queue; [`ReadAhead::next_message`] yields the files'
/// messages in the order they were given.
pub struct ReadAhead {
    /// The HMAC tag of the last encrypted file read to its end.
    last_tag: Option<[u8; 32]>,
    pieces: Option<Receiver<Piece>>,
    spare: SyncSender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading `files` (a list, or files handed over as they are found: the thread
    /// waits for each).
    pub fn spawn<I>(files: I, keys: Option<Keys>) -> Result<ReadAhead>
    where
        I: IntoIterator<Item = ArchiveFile>,
        I::IntoIter: Send + 'static,
    {
        let files = files.into_iter();
        let (tx, pieces) = mpsc::sync_channel(QUEUE);
        // Buffers come back to the thread for reuse; one more than can be in flight.
        let (spare, spare_rx) = mpsc::sync_channel(QUEUE + 2);
        let thread = std::thread::Builder::new()
            .name("decrypt".into())
            .spawn(move || decode_all(files, keys.as_ref(), &tx, &spare_rx))
            .doing("starting the decrypting thread")?;
        Ok(ReadAhead { last_tag: None, pieces: Some(pieces), spare, thread: Some(thread) })
    }

    /// The next file's stored From-line and a reader of its message, as
    /// [`ArchiveFile::open`] gives them. Errors of that file (a failed MAC, bad data) come
    /// out of this call or of the reads; dropping the reader skips the rest of the message.
    pub fn next_message(&mut self) -> io::Result<(Vec<u8>, BufReader<impl Read + '_>)> {
        let form = match self.recv() {
            Ok(Piece::Begin(form)) => form,
            _ => return Err(io::Error::other("no more archive files")),
        };
        self.last_tag = None;
        let sealed = Sealed { ahead: self, buf: Vec::new(), pos: 0, done: false };
        fromline::split_stored(codec::inflated(sealed, form))
    }

    /// The HMAC tag of the message last read to its end, if its file is encrypted (the
    /// MAC was checked before its first byte came).
    pub fn last_tag(&self) -> Option<[u8; 32]> {
        self.last_tag
    }

    fn recv(&mut self) -> io::Result<Piece> {
        self.pieces
            .as_ref()
            .and_then(|p| p.recv().ok())
            .ok_or_else(|| io::Error::other("the decrypting thread stopped"))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Without its queue the thread's next send fails and it ends.
        self.pieces = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One file's decrypted (still compressed) bytes, as the thread produces them.
struct Sealed<'a> {
    ahead: &'a mut ReadAhead,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for Sealed<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.ahead.recv() {
                Ok(Piece::Data(data)) => {
                    let used = std::mem::replace(&mut self.buf, data);
                    if used.capacity() > 0 {
                        // A full spare queue only means the thread has buffers enough.
                        let _ = self.ahead.spare.try_send(used);
                    }
                    self.pos = 0;
                }
                Ok(Piece::End(tag)) => {
                    self.ahead.last_tag = tag;
                    self.done = true;
                }
                Ok(Piece::Failed(e)) | Err(e) => {
                    self.done = true;
                    return Err(e);
                }
                Ok(Piece::Begin(_)) => {
                    self.done = true;
                    return Err(io::Error::other("a file's end was not marked"));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Sealed<'_> {
    fn drop(&mut self) {
        // The next message starts after this one's end marker.
        while !self.done {
            match self.ahead.recv() {
                Ok(Piece::Data(_)) => {}
                Ok(Piece::End(tag)) => {
                    self.ahead.last_tag = tag;
                    self.done = true;
                }
                Ok(Piece::Failed(_) | Piece::Begin(_)) | Err(_) => self.done = true,
            }
        }
    }
}

/// The thread: each file's layers, its decrypted bytes in pieces of up to `BUF_SIZE`, then
/// its end or error.
fn decode_all(
    files: impl Iterator<Item = ArchiveFile>,
    keys: Option<&Keys>,
    tx: &SyncSender<Piece>,
    spare: &Receiver<Vec<u8>>,
) {
    for f in files {
        if tx.send(Piece::Begin(f.form)).is_err() {
            return;
        }
        let last = match decode_one(&f, keys, tx, spare) {
            Ok(Some(tag)) => Piece::End(tag),
            // The reader went away: nobody wants the rest.
            Ok(None) => return,
            Err(e) => Piece::Failed(e),
        };
        if tx.send(last).is_err() {
            return;
        }
    }
}

/// Sends one file's decrypted bytes; at the end its tag (if encrypted), `None` if the
/// reader went away.
fn decode_one(
    f: &ArchiveFile,
    keys: Option<&Keys>,
    tx: &SyncSender<Piece>,
    spare: &Receiver<Vec<u8>>,
) -> io::Result<Option<Option<[u8; 32]>>> {
    let (mut msg, tag) = codec::open_sealed_tagged(f.open_raw()?, f.form, keys)?;
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(BUF_SIZE, 0);
        let n = read_full(&mut msg, &mut buf)?;
        if n == 0 {
            return Ok(Some(tag));
        }
        buf.truncate(n);
        if tx.send(Piece::Data(buf)).is_err() {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Form;

    fn plain_file(dir: &std::path::Path, uid: u32, body: &[u8]) -> ArchiveFile {
        let path = dir.join(format!("{uid}.mbox"));
        let mut data = b"From a@b Thu Jan  1 00:00:00 1970\n".to_vec();
        data.extend_from_slice(body);
        std::fs::write(&path, data).unwrap();
        ArchiveFile::from_path(path).unwrap()
    }

    #[test]
    fn messages_come_in_order_and_a_skipped_one_does_not_leak_into_the_next() {
        let dir = std::env::temp_dir().join(format!("sa-readahead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big: Vec<u8> = (0..BUF_SIZE * 20 + 7).map(|i| b'a' + (i % 26) as u8).collect();
        let files = vec![
            plain_file(&dir, 1, b"one\n"),
            plain_file(&dir, 2, &big),
            plain_file(&dir, 3, b"three\n"),
            ArchiveFile {
                path: dir.join("4.mbox.gz"),
                uid: Some(4),
                form: Form { compressed: true, encrypted: false },
            },
            plain_file(&dir, 5, &big),
        ];
        let mut ahead = ReadAhead::spawn(files, None).unwrap();
        let whole = |ahead: &mut ReadAhead| -> io::Result<Vec<u8>> {
            let (from, mut r) = ahead.next_message()?;
            assert_eq!(from, b"From a@b Thu Jan  1 00:00:00 1970");
            let mut s = Vec::new();
            r.read_to_end(&mut s)?;
            Ok(s)
        };
        assert_eq!(whole(&mut ahead).unwrap(), b"one\n");
        // Read only a little of the big one; the rest is skipped.
        let mut part = [0u8; 10];
        ahead.next_message().unwrap().1.read_exact(&mut part).unwrap();
        assert_eq!(&part, b"abcdefghij");
        assert_eq!(whole(&mut ahead).unwrap(), b"three\n");
        // A missing file is an error of its own message only.
        assert!(whole(&mut ahead).is_err());
        assert_eq!(whole(&mut ahead).unwrap(), big);
        // Past the end there is nothing more.
        assert!(whole(&mut ahead).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
