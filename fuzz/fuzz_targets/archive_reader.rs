//! Arbitrary bytes as an archive file, in every suffix form: decoding may fail, never panic,
//! and never return plaintext from an encrypted file whose MAC is wrong. Checked two ways:
//! against an HMAC-SHA256 computed here, apart from the reader's own code (any byte read
//! out, From-line included, means the input's MAC was good); and by sealing the input as a
//! message, reading it back whole, then changing one character of the sealed file, which
//! must read as an error with not one byte of plaintext. A plain `.mbox` that reads must be
//! the input itself.
#![no_main]

use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use smailarchiver::codec::{self, fromline, Finish, Form, WriteOptions};
use smailarchiver::keys::{self, Keys};

/// The key file's 64 bytes: the AES key, then the HMAC key. Fixed, so that the corpus
/// holds files that pass the MAC.
const RAW_KEYS: [u8; 64] = [0; 64];

fn keys() -> Keys {
    let text = STANDARD.encode(RAW_KEYS);
    keys::from_texts(std::path::Path::new("fuzz.keys"), text.as_bytes(), None, None).expect("fixed keys")
}

/// Whether `text` is base64 (white space ignored, as the reader does) of at least an IV
/// and a tag, whose last 32 bytes are the HMAC-SHA256 of the rest under the HMAC key.
fn mac_is_good(text: &[u8]) -> bool {
    let compact: Vec<u8> =
        text.iter().copied().filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)).collect();
    let Ok(raw) = STANDARD.decode(compact) else { return false };
    if raw.len() < 16 + 32 {
        return false;
    }
    let (sealed, tag) = raw.split_at(raw.len() - 32);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&RAW_KEYS[32..]).expect("any key length");
    mac.update(sealed);
    mac.verify_slice(tag).is_ok()
}

/// Everything the reader chain gives out for `file` (From-line and its `\n`, then the
/// message) up to the end or the first error, and how it ended.
fn read_all(file: &[u8], form: Form, keys: &Keys) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let result = codec::open(Cursor::new(file.to_vec()), form, Some(keys)).and_then(fromline::split_stored).and_then(
        |(line, mut message)| {
            out.extend_from_slice(&line);
            out.push(b'\n');
            message.read_to_end(&mut out).map(drop)
        },
    );
    (out, result)
}

/// A sink the test can read after the writer chain consumed it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
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

/// `message` written as an archive file of `form`.
fn seal(message: &[u8], form: Form, keys: &Keys) -> Vec<u8> {
    let sink = Shared::default();
    let mut w = codec::writer(WriteOptions { form, level: 1, keys: Some(keys) }, Box::new(sink.clone())).unwrap();
    w.write_all(message).unwrap();
    w.finish().unwrap();
    let sealed = sink.0.lock().unwrap().clone();
    sealed
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fuzz_target!(|data: &[u8]| {
    let k = keys();
    for (compressed, encrypted) in [(false, false), (true, false), (false, true), (true, true)] {
        let form = Form { compressed, encrypted };
        let (out, result) = read_all(data, form, &k);
        if encrypted && (!out.is_empty() || result.is_ok()) {
            assert!(mac_is_good(data), "{form:?}: {} bytes read from a file whose MAC is wrong", out.len());
        }
        if !compressed && !encrypted && result.is_ok() {
            assert_eq!(out, data, "a plain file reads as something else");
        }
    }

    for compressed in [false, true] {
        let form = Form { compressed, encrypted: true };
        let sealed = seal(data, form, &k);
        let (out, result) = read_all(&sealed, form, &k);
        result.unwrap_or_else(|e| panic!("{form:?}: reading back what was just written: {e}"));
        let (line, message) = out.split_at(out.iter().position(|&b| b == b'\n').unwrap() + 1);
        assert_eq!(message, data, "{form:?}: read back something else");
        assert!(line.starts_with(b"From "));

        // One character changed, where and to what the input decides.
        let seed = data.iter().fold(data.len(), |h, &b| h.wrapping_mul(31).wrapping_add(b.into()));
        let at = seed % sealed.len();
        let original = sealed[at];
        // '=' padding is not in the alphabet: any letter replaces it.
        let old = ALPHABET.iter().position(|&c| c == original).unwrap_or(0);
        let mut tampered = sealed;
        tampered[at] = ALPHABET[(old + 1 + seed / 64 % 63) % 64];
        assert_ne!(tampered[at], original);
        let (out, result) = read_all(&tampered, form, &k);
        assert!(result.is_err(), "{form:?}: a file changed at byte {at} read without error");
        assert!(out.is_empty(), "{form:?}: {} bytes read from a file changed at byte {at}", out.len());
    }
});
