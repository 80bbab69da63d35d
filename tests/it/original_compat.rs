//! Archives written by this tool are read by the ORIGINAL program's code, and archives
//! written by the original's code are read by this tool.
//!
//! The oracle is `tests/tools/original.py`: the storage code of SMail Archiver 0.5
//! (github.com/mart-e/smailarchiver, smailarchiver.py) with its behaviour unchanged. It
//! needs python3 and pycryptodome; without them these tests fail (never skip) and say how
//! to install them.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{original_py, TempDir};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use smailarchiver::archive::ArchiveFile;
use smailarchiver::codec::{writer, Finish, Form, WriteOptions};
use smailarchiver::keys::{self, Keys};
use smailarchiver::mbox::stored_from_line;
use smailarchiver::secret::Secret;

/// Every form, in the order of the suffixes' length.
const FORMS: [Form; 4] = [
    Form { compressed: false, encrypted: false },
    Form { compressed: true, encrypted: false },
    Form { compressed: false, encrypted: true },
    Form { compressed: true, encrypted: true },
];

/// Key file modes: random keys, or PBKDF2 salts with a password.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Random,
    Password(&'static str),
}

const ASCII_PASSWORD: Mode = Mode::Password("correct horse battery staple");
/// Not ASCII: the original's KDF gets its Latin-1 bytes, its `.sha` its UTF-8 bytes.
const LATIN1_PASSWORD: Mode = Mode::Password("Grüße aus Köln 2013");

/// Like [`original_py`], and the oracle must succeed.
fn original_py_ok(args: &[&str]) -> Output {
    let out = original_py(args);
    assert!(
        out.status.success(),
        "original.py {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A deterministic byte generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

/// The messages (raw, as IMAP returns them) that both directions store, with a name.
fn messages() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x5a11_a2c4_1fe0);
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("small".into(), b"From: Ann Example <ann@example.org>\r\nSubject: hi\r\n\r\nHello.\r\n".to_vec()),
        (
            "from-lines-in-body".into(),
            b"Return-Path: <b@x.org>\nfrom:   Bob <b@x.org>  \nSubject: mbox\n\n\
              From the start, a line that looks like a separator.\nFrom here\n>From quoted\n\n\
              From b@x.org Mon Jun 24 10:00:00 2013\nbody\nFrom "
                .to_vec(),
        ),
        ("folded-from".into(), b"From:\r\n  Folded <f@x.org>\r\nSubject: x\r\n\r\nbody\r\n".to_vec()),
        ("no-newline-at-end".into(), b"Subject: no from header\n\nlast line without newline".to_vec()),
    ];

    let mut binary = b"From: Bin \xff\xfe <bin@x.org>\r\n\r\n".to_vec();
    binary.extend((0..=255u8).cycle().take(1000));
    binary.extend(rng.bytes(777));
    binary.extend(b"\0\0\r\n\x1f\x8b\x78\x9c");
    out.push(("binary-bytes".into(), binary));

    // The From: header beyond the first 16 KiB: the original does not see it.
    let mut late = Vec::new();
    while late.len() < 16384 {
        late.extend(b"X-Filler: 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\r\n");
    }
    late.extend(b"From: Late <late@x.org>\r\n\r\nbody\r\n");
    out.push(("from-after-16k".into(), late));

    // 64 consecutive lengths of incompressible bytes: the stored bytes and their zlib
    // stream take every length mod 32 (checked in `check_residues`), so the 32-byte
    // padding is exercised with every pad value 1..=32 in both encrypted forms.
    let fill = rng.bytes(63);
    for n in 0..64 {
        out.push((format!("len-{n}"), fill[..n].to_vec()));
    }

    // About 300 KB: text with separator-like lines, and binary stretches.
    let mut big = b"From: \"Big Sender\" <big@example.net>\nSubject: big\nMIME-Version: 1.0\n\n".to_vec();
    let mut i = 0;
    while big.len() < 300_000 {
        big.extend(format!("line {i}: the quick brown fox jumps over the lazy dog\n").as_bytes());
        if i % 97 == 0 {
            big.extend(b"From someone@example.net Sat Jan  1 00:00:00 2000\n");
        }
        if i % 211 == 0 {
            big.extend(rng.bytes(509));
        }
        i += 1;
    }
    // Seven deflate blocks (src/codec/deflate.rs BLOCK), compressed on two threads.
    let four_blocks = big.repeat(3);
    out.push(("big-300k".into(), big));
    // A mail with a base64 attachment of random bytes (a JPEG, a zip): its blocks are coded
    // as literals (src/codec/literals.rs), which the original's zlib must read too.
    let mut attached = b"From: Att <att@example.org>\r\nSubject: photo\r\nContent-Type: multipart/mixed; \
                         boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee the photo.\r\n--b1\r\n\
                         Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    for line in rng.bytes(300_000).chunks(57) {
        attached.extend(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, line).as_bytes());
        attached.extend(b"\r\n");
    }
    attached.extend(b"--b1--\r\n");
    out.push(("base64-attachment".into(), attached));
    out.push(("big-900k".into(), four_blocks));
    out
}

/// What the original stores for a raw message: its From-line, then the message.
fn stored(msg: &[u8]) -> Vec<u8> {
    let mut v = stored_from_line(msg);
    v.extend_from_slice(msg);
    v
}

/// Creates a key file in `dir` with this crate; returns its path and the keys.
fn create_keys(dir: &Path, mode: Mode) -> (PathBuf, Keys) {
    let path = dir.join("keys");
    let keys = match mode {
        Mode::Random => keys::create(&path, None),
        Mode::Password(pw) => keys::create(&path, Some(&Secret::new(pw.into()))),
    }
    .expect("create key file");
    (path, keys)
}

/// The oracle's key arguments for a key file.
fn key_args(key_file: &Path, mode: Mode) -> Vec<String> {
    let mut args = vec!["--keys".to_string(), s(key_file).to_string()];
    if let Mode::Password(pw) = mode {
        args.extend(["--password".to_string(), pw.to_string()]);
    }
    args
}

/// Writes one message through this crate's writer chain, in uneven chunks.
fn write_with_rust(path: &Path, form: Form, keys: &Keys, msg: &[u8]) {
    let sink: Box<dyn Finish> = Box::new(BufWriter::new(File::create(path).expect("create archive file")));
    let mut w = writer(WriteOptions { form, level: 6, keys: Some(keys) }, sink).expect("writer chain");
    for chunk in msg.chunks(4093) {
        w.write_all(chunk).expect("write message");
    }
    w.finish().expect("finish archive file");
}

/// The file name of message `i` in `form`.
fn name(i: usize, form: Form) -> String {
    format!("{i}{}", form.suffix())
}

/// The original's format, beyond "it decodes": one line of strict base64 without a
/// newline, whose payload is IV (16) + the plaintext padded to the next multiple of 32
/// (1..=32 bytes added) + HMAC (32); a zlib stream with the default level's header.
fn check_shape(dir: &Path, i: usize, msg: &[u8]) {
    let plain = stored(msg);
    let gz = fs::read(dir.join(name(i, FORMS[1]))).expect("read .mbox.gz");
    assert_eq!(&gz[..2], b"\x78\x9c", "message {i}: .mbox.gz is not a level-6 zlib stream");
    for (form, inner_len) in [(FORMS[2], plain.len()), (FORMS[3], gz.len())] {
        let text = fs::read(dir.join(name(i, form))).expect("read encrypted file");
        let raw =
            STANDARD.decode(&text).unwrap_or_else(|e| panic!("message {i}{}: not strict base64: {e}", form.suffix()));
        let padded = inner_len + 32 - inner_len % 32;
        assert_eq!(raw.len(), 16 + padded + 32, "message {i}{}: not the original's 32-byte padding", form.suffix());
    }
}

/// The stored and compressed lengths of the `len-N` messages cover every residue mod 32.
fn check_residues(dir: &Path, msgs: &[(String, Vec<u8>)]) {
    let mut plain = [false; 32];
    let mut gz = [false; 32];
    for (i, (label, msg)) in msgs.iter().enumerate() {
        if label.starts_with("len-") {
            plain[stored(msg).len() % 32] = true;
            gz[fs::metadata(dir.join(name(i, FORMS[1]))).expect("stat .mbox.gz").len() as usize % 32] = true;
        }
    }
    assert!(plain.iter().all(|&b| b), "stored lengths miss residues mod 32: {plain:?}");
    assert!(gz.iter().all(|&b| b), "zlib stream lengths miss residues mod 32: {gz:?}");
}

/// (a) Every message in every form, written by this crate, is decoded by the original's
/// code to exactly the bytes the original would have stored.
fn rust_writes_original_reads(mode: Mode, tag: &str) {
    let tmp = TempDir::new(tag);
    let (key_file, keys) = create_keys(&tmp.join(""), mode);
    let written = tmp.dir("written");
    let decoded = tmp.dir("decoded");
    let msgs = messages();

    let mut files = Vec::new();
    for (i, (_, msg)) in msgs.iter().enumerate() {
        for form in FORMS {
            let path = written.join(name(i, form));
            write_with_rust(&path, form, &keys, msg);
            files.push(path);
        }
        check_shape(&written, i, msg);
    }
    check_residues(&written, &msgs);

    let mut args = vec!["decode".to_string()];
    args.extend(files.iter().map(|p| s(p).to_string()));
    args.extend(key_args(&key_file, mode));
    args.extend(["--out-dir".to_string(), s(&decoded).to_string()]);
    original_py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    for (i, (label, msg)) in msgs.iter().enumerate() {
        let want = stored(msg);
        for form in FORMS {
            let got = fs::read(decoded.join(name(i, form))).expect("decoded file");
            assert!(
                got == want,
                "{label}{}: the original decoded {} bytes, expected {} (first difference at {:?})",
                form.suffix(),
                got.len(),
                want.len(),
                got.iter().zip(&want).position(|(a, b)| a != b)
            );
        }
    }
}

/// (b) Every message in every form, written by the original's code with a key file made
/// by this crate, is read by this crate to exactly the message and its From-line.
fn original_writes_rust_reads(mode: Mode, tag: &str) {
    let tmp = TempDir::new(tag);
    let (key_file, keys) = create_keys(&tmp.join(""), mode);
    let input = tmp.dir("input");
    let written = tmp.dir("written");
    let msgs = messages();

    let mut inputs = Vec::new();
    for (i, (_, msg)) in msgs.iter().enumerate() {
        let path = input.join(format!("{i}.stored"));
        fs::write(&path, stored(msg)).expect("write input");
        inputs.push(path);
    }
    for form in FORMS {
        let mut args = vec!["encode".to_string()];
        for (i, src) in inputs.iter().enumerate() {
            args.extend([s(src).to_string(), s(&written.join(name(i, form))).to_string()]);
        }
        args.extend(["--form".to_string(), form.suffix()[1..].to_string()]);
        args.extend(key_args(&key_file, mode));
        original_py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    for (i, (label, msg)) in msgs.iter().enumerate() {
        let want_from = stored_from_line(msg);
        for form in FORMS {
            let path = written.join(name(i, form));
            let (from, body) = read_with_rust(&path, &keys);
            assert_eq!(from, want_from[..want_from.len() - 1], "{label}{}: From-line", form.suffix());
            assert!(body == *msg, "{label}{}: read {} bytes, expected {}", form.suffix(), body.len(), msg.len());
        }
    }
}

/// Reads an archive file with this crate: the stored From-line and the message.
fn read_with_rust(path: &Path, keys: &Keys) -> (Vec<u8>, Vec<u8>) {
    let file = ArchiveFile::from_path(path.to_path_buf()).expect("an archive file name");
    let (from, mut reader) = file.open(Some(keys)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut body = Vec::new();
    reader.read_to_end(&mut body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (from, body)
}

#[test]
fn original_reads_rust_archives_random_keys() {
    rust_writes_original_reads(Mode::Random, "a-random");
}

#[test]
fn original_reads_rust_archives_ascii_password() {
    rust_writes_original_reads(ASCII_PASSWORD, "a-ascii");
}

#[test]
fn original_reads_rust_archives_latin1_password() {
    rust_writes_original_reads(LATIN1_PASSWORD, "a-latin1");
}

#[test]
fn rust_reads_original_archives_random_keys() {
    original_writes_rust_reads(Mode::Random, "b-random");
}

#[test]
fn rust_reads_original_archives_ascii_password() {
    original_writes_rust_reads(ASCII_PASSWORD, "b-ascii");
}

#[test]
fn rust_reads_original_archives_latin1_password() {
    original_writes_rust_reads(LATIN1_PASSWORD, "b-latin1");
}

/// The oracle is faithful: it reproduces every outcome the real original program had on
/// the vectors (tests/fixtures/vectors/MANIFEST.txt), errors included, and the original's
/// From-line of every input.
#[test]
fn oracle_reproduces_the_original_on_the_vectors() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vectors/MANIFEST.txt");
    let out = original_py_ok(&["check", s(&manifest)]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(" 0 mismatches"), "{report}");
}

/// The checks are not vacuous: the original rejects a file of ours under other keys, and
/// rejects our password-mode key file with a wrong password.
#[test]
fn original_rejects_wrong_keys() {
    let tmp = TempDir::new("wrong-keys");
    let ours = tmp.dir("ours");
    let other = tmp.dir("other");
    let (_, keys) = create_keys(&ours, Mode::Random);
    let (other_file, _) = create_keys(&other, Mode::Random);
    let (pw_file, _) = create_keys(&tmp.dir("pw"), LATIN1_PASSWORD);
    let file = tmp.join("1.mbox.gz.enc");
    write_with_rust(&file, FORMS[3], &keys, b"From: a@b.c\r\n\r\nx\r\n");

    let out = original_py(&["decode", s(&file), "--keys", s(&other_file)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("AssertionError: Invalid data signature"), "{err}");

    let out = original_py(&["decode", s(&file), "--keys", s(&pw_file), "--password", "Grüsse aus Köln 2013"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("AssertionError: Hash validation failed"), "{err}");
}

/// The From-line this crate computes is the one the original's fetch code computes
/// (with Python 2's `unknown@unknown` where Python 3 crashed).
#[test]
fn from_line_matches_the_original() {
    let tmp = TempDir::new("from-line");
    let (key_file, keys) = create_keys(&tmp.join(""), Mode::Random);
    let raw = tmp.dir("raw");
    let written = tmp.dir("written");
    let msgs = messages();
    let mut args = vec!["encode".to_string()];
    for (i, (_, msg)) in msgs.iter().enumerate() {
        let src = raw.join(format!("{i}.eml"));
        fs::write(&src, msg).expect("write raw message");
        args.extend([s(&src).to_string(), s(&written.join(name(i, FORMS[0]))).to_string()]);
    }
    args.extend(["--form", "mbox", "--add-from-line"].map(String::from));
    args.extend(key_args(&key_file, Mode::Random));
    original_py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, (label, msg)) in msgs.iter().enumerate() {
        let (from, body) = read_with_rust(&written.join(name(i, FORMS[0])), &keys);
        let want = stored_from_line(msg);
        assert_eq!(
            String::from_utf8_lossy(&from),
            String::from_utf8_lossy(&want[..want.len() - 1]),
            "{label}: From-line differs from the original's"
        );
        assert!(body == *msg, "{label}: message");
    }
}
