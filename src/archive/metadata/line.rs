//! A journal line: one record, checked on its own. Plain journals end each record with a
//! checksum; encrypted ones seal each in the archive's framing (base64 of IV,
//! AES-256-CBC and HMAC-SHA256). Either way the check covers the journal's name, so a
//! line copied from another folder's journal is damage too.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::codec::{base64::Base64Writer, cipher, Finish};
use crate::keys::Keys;

/// Why a line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The MAC does not match: damage, or another key.
    Mac,
    /// Anything else: not base64, a bad checksum, not text, another folder's line.
    Damaged(String),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Mac => f.write_str("MAC check failed"),
            LineError::Damaged(why) => f.write_str(why),
        }
    }
}

/// Encodes and checks the lines of one journal.
#[derive(Clone)]
pub struct LineCodec {
    keys: Option<Keys>,
    /// SHA-256 fed with what each plain line's checksum covers besides its record: the
    /// journal's name and a line feed.
    prefix: Sha256,
    /// The journal's name as sealed records carry it: 16 hex digits of its SHA-256.
    bind_tag: String,
}

impl LineCodec {
    /// The codec of the journal named by `binding` ([`super::reader::binding`]); sealed
    /// with `keys` when given.
    pub fn new(keys: Option<Keys>, binding: String) -> LineCodec {
        let mut prefix = Sha256::new();
        prefix.update(binding.as_bytes());
        prefix.update(b"\n");
        let bind_tag = super::hex(&Sha256::digest(binding.as_bytes())[..8]);
        LineCodec { keys, prefix, bind_tag }
    }

    /// The keys lines are sealed with, if they are.
    pub fn keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }

    /// The line of `text`, without its line break.
    pub fn encode(&self, text: &str) -> io::Result<Vec<u8>> {
        match &self.keys {
            None => {
                let mut line = text.as_bytes().to_vec();
                line.extend_from_slice(b"\t#");
                line.extend_from_slice(self.checksum(text).as_bytes());
                Ok(line)
            }
            Some(keys) => {
                let (sink, out) = crate::codec::shared_sink();
                let mut w = cipher::EncryptWriter::new(keys, Box::new(Base64Writer::new(sink)))?;
                w.write_all(self.bind_tag.as_bytes())?;
                w.write_all(b"\t")?;
                w.write_all(text.as_bytes())?;
                Box::new(w).finish()?;
                let sealed = out.lock().map_err(|_| io::Error::other("poisoned"))?.clone();
                Ok(sealed)
            }
        }
    }

    /// The record text of `line` (without its line break), checked.
    pub fn decode(&self, line: &[u8]) -> Result<String, LineError> {
        let damaged = |why: &str| LineError::Damaged(why.to_string());
        match &self.keys {
            None => {
                let text = std::str::from_utf8(line).map_err(|_| damaged("not text"))?;
                let (record, sum) = text.rsplit_once("\t#").ok_or_else(|| damaged("no checksum"))?;
                let want = self.digest(record);
                let sum = sum.as_bytes();
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let matches = sum.len() == 16
                    && sum
                        .chunks(2)
                        .zip(&want[..8])
                        .all(|(pair, &byte)| pair == [DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 15)]]);
                if !matches {
                    return Err(damaged("checksum mismatch"));
                }
                Ok(record.to_string())
            }
            Some(keys) => {
                let plain = unseal(keys, line)?;
                let text = String::from_utf8(plain).map_err(|_| damaged("not text"))?;
                let (tag, record) = text.split_once('\t').ok_or_else(|| damaged("no journal name"))?;
                if tag != self.bind_tag {
                    return Err(damaged("a record of another journal"));
                }
                Ok(record.to_string())
            }
        }
    }

    fn digest(&self, text: &str) -> [u8; 32] {
        let mut h = self.prefix.clone();
        h.update(text.as_bytes());
        h.finalize().into()
    }

    fn checksum(&self, text: &str) -> String {
        super::hex(&self.digest(text)[..8])
    }
}

/// Opens a sealed line, checking its MAC first.
pub fn unseal(keys: &Keys, line: &[u8]) -> Result<Vec<u8>, LineError> {
    let raw = STANDARD.decode(line).map_err(|_| LineError::Damaged("not base64".into()))?;
    cipher::open_sealed(keys, &raw).map_err(|e| {
        if cipher::is_mac_mismatch(&e) {
            LineError::Mac
        } else {
            LineError::Damaged(crate::error::describe_io(&e))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_checked_and_bound_to_their_journal() {
        let text = b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
        let keys = crate::keys::from_texts(std::path::Path::new("k"), text, None, None).unwrap();
        for keys in [None, Some(keys)] {
            let c = LineCodec::new(keys.clone(), "folder a/b".into());
            let line = c.encode("M\t1\ts=2").unwrap();
            assert_eq!(c.decode(&line).unwrap(), "M\t1\ts=2");
            let other = LineCodec::new(keys.clone(), "folder a/c".into());
            assert!(other.decode(&line).is_err(), "another journal's line");
            let mut bad = line.clone();
            let at = bad.len() / 3;
            bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
            assert!(c.decode(&bad).is_err());
        }
    }
}
