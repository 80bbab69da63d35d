//! The archive file layers, as streaming adapters: a writer chain and a reader chain,
//! both built from a file's suffixes, so every form goes through one code path.
//!
//! Writing: message -> From-line -> zlib -> AES-CBC + HMAC -> base64 -> sink.
//! Reading undoes the layers in reverse order. No layer holds more than a fixed buffer.

pub mod base64;
pub mod cipher;
pub mod deflate;
pub mod fromline;
pub mod literals;
pub mod relay;

use std::io::{self, BufReader, Read, Seek, Write};

use crate::keys::Keys;

/// Buffer size of every layer; small enough for a router, large enough for few syscalls.
pub const BUF_SIZE: usize = 64 * 1024;

/// Default zlib level. The original used 6; on a realistic corpus (tests/bench) level 1
/// compresses twice as fast for 1-2% more bytes, because attachments, already compressed,
/// dominate mail. Any level makes a zlib stream the original reads.
pub const DEFAULT_LEVEL: u8 = 1;

/// A writer that must be told when the data ends, so it can write its trailer.
pub trait Finish: Write + Send {
    /// Writes any buffered data and trailer, then finishes the layers beneath.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

impl Finish for Vec<u8> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for io::Sink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send> Finish for io::BufWriter<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.flush()
    }
}

/// Which layers a file has, as its suffixes say: `.mbox[.gz][.enc]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Form {
    /// `.gz`: a zlib stream (gzip accepted when reading).
    pub compressed: bool,
    /// `.enc`: AES-256-CBC + HMAC-SHA256, base64.
    pub encrypted: bool,
}

impl Form {
    /// The suffix for this form, e.g. `.mbox.gz.enc`.
    pub fn suffix(self) -> &'static str {
        match (self.compressed, self.encrypted) {
            (false, false) => ".mbox",
            (true, false) => ".mbox.gz",
            (false, true) => ".mbox.enc",
            (true, true) => ".mbox.gz.enc",
        }
    }

    /// Every form a message's file may have.
    pub const ALL: [Form; 4] = [
        Form { compressed: true, encrypted: true },
        Form { compressed: false, encrypted: true },
        Form { compressed: true, encrypted: false },
        Form { compressed: false, encrypted: false },
    ];

    /// Splits an archive file name into its stem and form; `None` for other files.
    pub fn parse(name: &str) -> Option<(&str, Form)> {
        Form::ALL.into_iter().find_map(|form| {
            let stem = name.strip_suffix(form.suffix())?;
            (!stem.is_empty() && !stem.starts_with('.')).then_some((stem, form))
        })
    }
}

/// Options of the writer chain.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions<'k> {
    /// The layers to apply.
    pub form: Form,
    /// zlib level 0..=10 (miniz's scale; 6 is zlib's default).
    pub level: u8,
    /// The keys, required when `form.encrypted`.
    pub keys: Option<&'k Keys>,
}

/// Builds the writer chain: what is written to the result is a raw message, what reaches
/// `sink` is the archive file's bytes. Call [`Finish::finish`] at the end of the message.
pub fn writer(opts: WriteOptions<'_>, sink: Box<dyn Finish>) -> io::Result<Box<dyn Finish>> {
    writer_tagged(opts, sink, None)
}

/// [`writer`], an encrypted file's HMAC tag left in `tag` once the chain is finished.
pub fn writer_tagged(
    opts: WriteOptions<'_>,
    sink: Box<dyn Finish>,
    tag: Option<cipher::TagSlot>,
) -> io::Result<Box<dyn Finish>> {
    let mut w = sink;
    if opts.form.encrypted {
        let keys = opts.keys.ok_or_else(|| io::Error::other("encryption needs a key file"))?;
        let mut enc = cipher::EncryptWriter::new(keys, Box::new(base64::Base64Writer::new(w)))?;
        if let Some(slot) = tag {
            enc = enc.with_tag_slot(slot);
        }
        w = Box::new(enc);
    }
    if opts.form.compressed {
        if opts.form.encrypted {
            // Both layers cost CPU: compress on this thread, encrypt on another.
            w = Box::new(relay::Relay::new(w)?);
        }
        w = Box::new(deflate::DeflateWriter::new(w, opts.level));
    }
    Ok(Box::new(fromline::FromLineWriter::new(w)))
}

/// Opens an archive file for reading: returns a reader of the stored bytes (From-line
/// included). For encrypted files the whole file's MAC is checked first, so nothing
/// decrypted is returned from a file that fails it.
pub fn open<F>(file: F, form: Form, keys: Option<&Keys>) -> io::Result<Box<dyn Read + Send>>
where
    F: Read + Seek + Send + 'static,
{
    Ok(inflated(open_sealed(file, form, keys)?, form))
}

/// The first half of [`open`]: undoes the encryption layer only, so the result is still
/// compressed when the form says so. Finish with [`inflated`].
pub fn open_sealed<F>(file: F, form: Form, keys: Option<&Keys>) -> io::Result<Box<dyn Read + Send>>
where
    F: Read + Seek + Send + 'static,
{
    Ok(open_sealed_tagged(file, form, keys)?.0)
}

/// An encrypted file's HMAC-SHA256 tag.
pub type Tag = [u8; 32];

/// [`open_sealed`], with an encrypted file's HMAC tag (checked before anything is read).
pub fn open_sealed_tagged<F>(
    mut file: F,
    form: Form,
    keys: Option<&Keys>,
) -> io::Result<(Box<dyn Read + Send>, Option<Tag>)>
where
    F: Read + Seek + Send + 'static,
{
    Ok(if form.encrypted {
        let keys = keys.ok_or_else(|| io::Error::other("encrypted file, but no key file given"))?;
        let checked =
            cipher::check_mac(keys, base64::Base64Reader::new(BufReader::with_capacity(BUF_SIZE, &mut file)))?;
        file.rewind()?;
        let reader = cipher::DecryptReader::new(
            keys,
            checked,
            base64::Base64Reader::new(BufReader::with_capacity(BUF_SIZE, file)),
        );
        (Box::new(reader), Some(checked.tag()))
    } else {
        (Box::new(BufReader::with_capacity(BUF_SIZE, file)), None)
    })
}

/// The second half of [`open`]: undoes the compression layer, if the form has one.
pub fn inflated<'a>(layer: impl Read + Send + 'a, form: Form) -> Box<dyn Read + Send + 'a> {
    if form.compressed {
        Box::new(deflate::InflateReader::new(layer))
    } else {
        Box::new(layer)
    }
}

/// Reads a whole stream, for callers that decode into nothing.
pub fn drain(r: &mut impl Read) -> io::Result<u64> {
    pump(r, &mut io::sink())
}

/// Reads everything from `r` into `w` through one fixed buffer.
pub fn pump(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// An `InvalidData` error: the file's content is wrong, not the disk.
pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A sink whose bytes can be read after a chain consumed it (tests; the metadata's
/// sealed frames).
pub(crate) fn shared_sink() -> (Box<dyn Finish>, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().map_err(|_| io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Finish for Shared {
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    (Box::new(Shared(out.clone())), out)
}
