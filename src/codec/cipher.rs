//! The encryption layer: AES-256-CBC with the original's 32-byte padding, then
//! HMAC-SHA256 over IV and ciphertext (encrypt-then-MAC).
//!
//! Reading takes two passes over the file: [`check_mac`] authenticates the whole file
//! first, and only then does [`DecryptReader`] release plaintext. The second pass MACs
//! again, so a file changed between the passes is caught too.

use std::io::{self, Read, Write};

use aes::Aes256;
use cbc::cipher::inout::InOutBuf;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::base64::read_full;
use super::{invalid, Finish, BUF_SIZE};
use crate::keys::Keys;

type HmacSha256 = Hmac<Sha256>;

/// AES block size.
const BLOCK: usize = 16;
/// The original pads to this many bytes, not to the AES block size.
pub const PAD_TO: usize = 32;
const IV_LEN: usize = 16;
const TAG_LEN: usize = 32;

fn new_mac(keys: &Keys) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(keys.sig()).expect("HMAC takes any key length")
}

/// Where a finished file's HMAC tag is left for whoever wrote the message (the metadata
/// records it: an encrypted file's digest is its tag, computed anyway).
pub type TagSlot = std::sync::Arc<std::sync::OnceLock<[u8; TAG_LEN]>>;

/// Encrypts everything written to it; the MAC is written by [`Finish::finish`].
pub struct EncryptWriter {
    cipher: cbc::Encryptor<Aes256>,
    mac: HmacSha256,
    buf: Vec<u8>,
    inner: Box<dyn Finish>,
    tag: Option<TagSlot>,
}

impl EncryptWriter {
    /// Starts a file with a fresh random IV, written at once to `inner`.
    pub fn new(keys: &Keys, mut inner: Box<dyn Finish>) -> io::Result<Self> {
        let mut iv = [0u8; IV_LEN];
        crate::os::fill_random(&mut iv)?;
        let cipher = cbc::Encryptor::<Aes256>::new(keys.enc().into(), &iv.into());
        let mut mac = new_mac(keys);
        mac.update(&iv);
        inner.write_all(&iv)?;
        Ok(EncryptWriter { cipher, mac, buf: Vec::with_capacity(BUF_SIZE), inner, tag: None })
    }

    /// Leaves the file's tag in `slot` when it is finished.
    pub fn with_tag_slot(mut self, slot: TagSlot) -> Self {
        self.tag = Some(slot);
        self
    }

    /// Encrypts the buffer (a whole number of blocks) and passes it on.
    fn seal_buffer(&mut self) -> io::Result<()> {
        let (blocks, tail) = InOutBuf::from(&mut self.buf[..]).into_chunks();
        debug_assert!(tail.is_empty());
        self.cipher.encrypt_blocks_inout_mut(blocks);
        self.mac.update(&self.buf);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for EncryptWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BUF_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BUF_SIZE {
            self.seal_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finish for EncryptWriter {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        // BUF_SIZE is a multiple of 32, so the buffer's length mod 32 is the message's.
        let pad = PAD_TO - self.buf.len() % PAD_TO;
        self.buf.resize(self.buf.len() + pad, pad as u8);
        self.seal_buffer()?;
        let tag = self.mac.clone().finalize().into_bytes();
        self.inner.write_all(&tag)?;
        if let Some(slot) = &self.tag {
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(&tag);
            // Set once per writer: a second set cannot happen.
            let _ = slot.set(t);
        }
        self.inner.finish()
    }
}

/// What the MAC pass learned: the file is authentic and holds this much ciphertext.
#[derive(Clone, Copy, Debug)]
pub struct Checked {
    cipher_len: u64,
    tag: [u8; TAG_LEN],
}

impl Checked {
    /// The file's HMAC tag (checked).
    pub fn tag(&self) -> [u8; TAG_LEN] {
        self.tag
    }
}

/// A file whose HMAC does not match the key: the one failure a wrong key causes.
#[derive(Debug)]
pub struct MacMismatch;

impl std::fmt::Display for MacMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MAC check failed: wrong key, or the file was changed")
    }
}

impl std::error::Error for MacMismatch {}

/// Whether `e` is a file's failed MAC check ([`MacMismatch`]).
pub fn is_mac_mismatch(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<MacMismatch>())
}

/// First pass: reads the decoded file to its end and checks its HMAC in constant time.
pub fn check_mac(keys: &Keys, mut r: impl Read) -> io::Result<Checked> {
    let mut mac = new_mac(keys);
    let mut buf = vec![0u8; BUF_SIZE + TAG_LEN];
    // The last TAG_LEN bytes seen so far are held at the front of `buf`: they may be the tag.
    let mut held = 0usize;
    let mut total = 0u64;
    loop {
        let n = read_full(&mut r, &mut buf[held..])?;
        if n == 0 {
            break;
        }
        total += n as u64;
        let have = held + n;
        if have > TAG_LEN {
            mac.update(&buf[..have - TAG_LEN]);
            buf.copy_within(have - TAG_LEN..have, 0);
            held = TAG_LEN;
        } else {
            held = have;
        }
    }
    if total < (IV_LEN + TAG_LEN) as u64 {
        return Err(invalid(format!("too short for an encrypted message ({total} bytes)")));
    }
    mac.verify_slice(&buf[..TAG_LEN]).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, MacMismatch))?;
    let cipher_len = total - (IV_LEN + TAG_LEN) as u64;
    if cipher_len == 0 || !cipher_len.is_multiple_of(BLOCK as u64) {
        return Err(invalid(format!("ciphertext of {cipher_len} bytes is not a whole number of AES blocks")));
    }
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&buf[..TAG_LEN]);
    Ok(Checked { cipher_len, tag })
}

/// A small sealed text held whole in memory (a journal record: `IV || ciphertext || tag`),
/// authenticated and decrypted in one go: one HMAC pass and no 64 KiB buffers, which the
/// two passes of [`check_mac`] and [`DecryptReader`] cost each of a journal's records.
pub fn open_sealed(keys: &Keys, sealed: &[u8]) -> io::Result<Vec<u8>> {
    if sealed.len() < IV_LEN + TAG_LEN {
        return Err(invalid(format!("too short for an encrypted message ({} bytes)", sealed.len())));
    }
    let (data, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let mut mac = new_mac(keys);
    mac.update(data);
    mac.verify_slice(tag).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, MacMismatch))?;
    let (iv, ciphertext) = data.split_at(IV_LEN);
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK) {
        return Err(invalid(format!("ciphertext of {} bytes is not a whole number of AES blocks", ciphertext.len())));
    }
    let mut plain = ciphertext.to_vec();
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| invalid("no IV"))?;
    let (blocks, _) = InOutBuf::from(&mut plain[..]).into_chunks();
    cbc::Decryptor::<Aes256>::new(keys.enc().into(), &iv.into()).decrypt_blocks_inout_mut(blocks);
    let keep = unpad(&plain, ciphertext.len() as u64)?;
    plain.truncate(keep);
    Ok(plain)
}

/// Second pass: decrypts a file that [`check_mac`] accepted and strips its padding.
pub struct DecryptReader<R: Read> {
    inner: R,
    keys: Keys,
    cipher: Option<cbc::Decryptor<Aes256>>,
    mac: HmacSha256,
    checked: Checked,
    remaining: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> DecryptReader<R> {
    /// Wraps the decoded file (from its start), as authenticated by `checked`.
    pub fn new(keys: &Keys, checked: Checked, inner: R) -> Self {
        DecryptReader {
            inner,
            keys: keys.clone(),
            cipher: None,
            mac: new_mac(keys),
            checked,
            remaining: checked.cipher_len,
            buf: Vec::with_capacity(BUF_SIZE),
            pos: 0,
        }
    }

    fn changed() -> io::Error {
        invalid("the file changed while it was being read")
    }

    /// Decrypts the next piece into `buf`; false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        if self.remaining == 0 {
            return Ok(false);
        }
        let cipher = match self.cipher.as_mut() {
            Some(c) => c,
            None => {
                let mut iv = [0u8; IV_LEN];
                if read_full(&mut self.inner, &mut iv)? != IV_LEN {
                    return Err(Self::changed());
                }
                self.mac.update(&iv);
                self.cipher.insert(cbc::Decryptor::<Aes256>::new(self.keys.enc().into(), &iv.into()))
            }
        };
        // The padding may span two blocks: the last piece is never shorter than PAD_TO.
        let mut size = self.remaining.min(BUF_SIZE as u64);
        let after = self.remaining - size;
        if after > 0 && after < PAD_TO as u64 {
            size = self.remaining - PAD_TO as u64;
        }
        let size = size as usize;
        self.buf.resize(size, 0);
        if read_full(&mut self.inner, &mut self.buf)? != size {
            return Err(Self::changed());
        }
        self.mac.update(&self.buf);
        let (blocks, _) = InOutBuf::from(&mut self.buf[..]).into_chunks();
        cipher.decrypt_blocks_inout_mut(blocks);
        self.remaining -= size as u64;
        self.pos = 0;
        if self.remaining == 0 {
            self.mac.clone().verify_slice(&self.checked.tag).map_err(|_| Self::changed())?;
            let keep = unpad(&self.buf, self.checked.cipher_len)?;
            self.buf.truncate(keep);
        }
        Ok(true)
    }
}

/// Checks the padding at the end of the last piece; returns how many bytes to keep.
/// Pad values 1..=32 whose bytes all agree are accepted (the original's writer, and
/// PKCS#7 to 16 bytes); anything else is refused rather than silently cutting data.
fn unpad(last: &[u8], cipher_len: u64) -> io::Result<usize> {
    let pad = *last.last().ok_or_else(|| invalid("empty ciphertext"))? as usize;
    if pad == 0 || pad > PAD_TO || pad as u64 > cipher_len || pad > last.len() {
        return Err(invalid(format!("bad padding (last byte {pad}, expected 1 to 32)")));
    }
    if last[last.len() - pad..].iter().any(|&b| b as usize != pad) {
        return Err(invalid(format!("bad padding (the last {pad} bytes are not all {pad})")));
    }
    Ok(last.len() - pad)
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rules() {
        let mut block = vec![7u8; 32];
        assert_eq!(unpad(&block, 32).unwrap(), 25);
        block[31] = 0;
        assert!(unpad(&block, 32).is_err());
        block[31] = 33;
        assert!(unpad(&block, 64).is_err());
        let mut pkcs16 = vec![0u8; 16];
        pkcs16[15] = 1;
        assert_eq!(unpad(&pkcs16, 16).unwrap(), 15);
        let mut mixed = vec![17u8; 32];
        mixed[20] = 3;
        assert!(unpad(&mixed, 32).is_err());
    }
}
