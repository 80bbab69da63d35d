//! Round trips through the writer and reader chains: every suffix form, both key modes,
//! every message length mod 32, writes of one byte at a time, buffer boundaries.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::support::*;
use smailarchiver::archive::ArchiveFile;
use smailarchiver::codec::{self, Finish, Form, WriteOptions, BUF_SIZE};
use smailarchiver::keys::{self, Keys};
use smailarchiver::mbox::stored_from_line;
use smailarchiver::secret::Secret;

const FORMS: [Form; 4] = [
    Form { compressed: false, encrypted: false },
    Form { compressed: true, encrypted: false },
    Form { compressed: false, encrypted: true },
    Form { compressed: true, encrypted: true },
];

/// Deterministic message bytes: header, then text with `From ` lines and binary runs.
fn message(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut m = b"From: Ann <ann@example.org>\r\nSubject: t\r\n\r\nFrom here\r\n".to_vec();
    while m.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.push(if x.is_multiple_of(7) { (x >> 8) as u8 } else { b"abc de\nFrom \r"[(x % 13) as usize] });
    }
    m.truncate(len);
    m
}

fn write_file(path: &Path, form: Form, keys: Option<&Keys>, msg: &[u8], piece: usize) {
    let sink: Box<dyn Finish> = Box::new(BufWriter::new(File::create(path).unwrap()));
    let mut w = codec::writer(WriteOptions { form, level: 6, keys }, sink).unwrap();
    for chunk in msg.chunks(piece.max(1)) {
        w.write_all(chunk).unwrap();
    }
    w.finish().unwrap();
}

fn read_file(path: &Path, keys: Option<&Keys>) -> (Vec<u8>, Vec<u8>) {
    let f = ArchiveFile::from_path(path.to_path_buf()).unwrap();
    let (from, mut r) = f.open(keys).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut body = Vec::new();
    r.read_to_end(&mut body).unwrap();
    (from, body)
}

fn check(dir: &Path, keys: &Keys, msg: &[u8], piece: usize, tag: &str) {
    for form in FORMS {
        let path = dir.join(format!("1{}", form.suffix()));
        write_file(&path, form, Some(keys), msg, piece);
        let (from, body) = read_file(&path, Some(keys));
        let mut want_from = stored_from_line(msg);
        want_from.pop();
        assert_eq!(from, want_from, "{tag} {form:?} len {}", msg.len());
        assert_same(&body, msg, &format!("{tag} {form:?} len {} piece {piece}", msg.len()));
        if !form.compressed && !form.encrypted {
            // The plain form is exactly the original's: From-line, then the message.
            let mut stored = stored_from_line(msg);
            stored.extend_from_slice(msg);
            assert_same(&std::fs::read(&path).unwrap(), &stored, "plain file bytes");
        }
    }
}

fn both_key_modes(dir: &Path) -> Vec<(&'static str, Keys)> {
    let random = keys::create(&dir.join("random.keys"), None).unwrap();
    let pw = Secret::new("Grüße aus Köln 2013".into());
    let derived = keys::create(&dir.join("pw.keys"), Some(&pw)).unwrap();
    vec![("random", random), ("password", derived)]
}

#[test]
fn every_length_mod_32_and_small_sizes() {
    let tmp = TempDir::new("rt-small");
    for (mode, keys) in both_key_modes(tmp.path()) {
        for len in 0..=200 {
            check(tmp.path(), &keys, &message(len, len as u64), 7, mode);
        }
    }
}

#[test]
fn one_byte_writes_and_buffer_boundaries() {
    let tmp = TempDir::new("rt-bound");
    for (mode, keys) in both_key_modes(tmp.path()) {
        for len in [16383, 16384, 16385, BUF_SIZE - 33, BUF_SIZE - 1, BUF_SIZE, BUF_SIZE + 1, BUF_SIZE + 31] {
            check(tmp.path(), &keys, &message(len, 3), 1, mode);
        }
        for len in [2 * BUF_SIZE - 16, 2 * BUF_SIZE + 16, 100 * 1024] {
            check(tmp.path(), &keys, &message(len, 5), 4093, mode);
        }
    }
}

#[test]
fn random_sizes_up_to_100k() {
    let tmp = TempDir::new("rt-rand");
    let keys = keys::create(&tmp.join("k"), None).unwrap();
    let mut x = 0x1234_5678_u64;
    for i in 0..40 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let len = (x >> 33) as usize % (100 * 1024);
        check(tmp.path(), &keys, &message(len, i), 1 + (x as usize % 9000), "random");
    }
}

#[test]
fn wrong_key_never_releases_plaintext() {
    let tmp = TempDir::new("rt-wrong");
    let right = keys::create(&tmp.join("a"), None).unwrap();
    let wrong = keys::create(&tmp.join("b"), None).unwrap();
    let path = tmp.join("9.mbox.gz.enc");
    write_file(&path, Form { compressed: true, encrypted: true }, Some(&right), &message(5000, 1), 100);
    let f = ArchiveFile::from_path(path).unwrap();
    let err = f.open(Some(&wrong)).err().expect("wrong key must fail before any byte is returned");
    assert!(err.to_string().contains("MAC check failed"), "{err}");
}
