//! Peak memory does not grow with message size: a 50 MB message goes through the writer
//! chain, the reader chain, restore and verify, each measured in its own process.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Command;

use crate::support::*;
use sha2::{Digest, Sha256};
use smailarchiver::archive::ArchiveFile;
use smailarchiver::codec::{self, Finish, Form, WriteOptions};
use smailarchiver::keys;

const SIZE: usize = 50 * 1024 * 1024;
/// Peak resident memory allowed for handling the 50 MB message.
const LIMIT_KIB: u64 = 16 * 1024;

/// Produces the message piece by piece, never holding it whole: text with some noise.
fn feed(mut sink: impl FnMut(&[u8])) {
    sink(b"From: Big <big@example.org>\r\nSubject: 50 MB\r\n\r\n");
    let mut x = 42u64;
    let mut line = Vec::with_capacity(100);
    let mut sent = 47;
    while sent < SIZE {
        line.clear();
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.push(if x.is_multiple_of(3) {
                b"abcdefghijklmnopqrstuvwxyz0123456789+/"[(x % 38) as usize]
            } else {
                b'q'
            });
        }
        line.extend_from_slice(b"\r\n");
        let n = line.len().min(SIZE - sent);
        sink(&line[..n]);
        sent += n;
    }
}

fn peak_kib_self() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM value")
}

/// Runs in a child process (started by the test below): writes and reads back the
/// message through the library, then reports its own peak memory.
#[test]
#[ignore = "started in a child process by library_chain_memory_is_bounded"]
fn child_library_chain() {
    let dir = Path::new(&std::env::var("MEMORY_CHILD_DIR").expect("MEMORY_CHILD_DIR")).to_path_buf();
    let keys = keys::create(&dir.join("keys"), None).unwrap();
    let path = dir.join("1.mbox.gz.enc");
    let sink: Box<dyn Finish> = Box::new(BufWriter::new(File::create(&path).unwrap()));
    let mut w = codec::writer(
        WriteOptions { form: Form { compressed: true, encrypted: true }, level: 6, keys: Some(&keys) },
        sink,
    )
    .unwrap();
    let mut want = Sha256::new();
    feed(|piece| {
        want.update(piece);
        w.write_all(piece).unwrap();
    });
    w.finish().unwrap();
    let (_, mut r) = ArchiveFile::from_path(path).unwrap().open(Some(&keys)).unwrap();
    let mut got = Sha256::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.update(&buf[..n]);
    }
    assert_eq!(got.finalize(), want.finalize(), "round trip differs");
    println!("PEAK_KIB={}", peak_kib_self());
}

#[test]
fn library_chain_memory_is_bounded() {
    let tmp = TempDir::new("mem-lib");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "memory::child_library_chain", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env("MEMORY_CHILD_DIR", tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let peak: u64 = text
        .split("PEAK_KIB=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no PEAK_KIB in child output: {text}"));
    println!("library chain, 50 MB -z -e: peak {peak} KiB");
    assert!(peak < LIMIT_KIB, "peak RSS {peak} KiB for a 50 MB message");
    assert!(fs::metadata(tmp.join("1.mbox.gz.enc")).unwrap().len() > 10 * 1024 * 1024);
}

#[test]
fn restore_and_verify_memory_is_bounded() {
    let tmp = TempDir::new("mem-cli");
    let folder = tmp.join("INBOX");
    fs::create_dir(&folder).unwrap();
    let keys = keys::create(&tmp.join("keys"), None).unwrap();
    let mut want = Sha256::new();
    for form in [Form { compressed: true, encrypted: true }, Form { compressed: false, encrypted: true }] {
        let path = folder.join(format!("{}{}", if form.compressed { 1 } else { 2 }, form.suffix()));
        let sink: Box<dyn Finish> = Box::new(BufWriter::new(File::create(&path).unwrap()));
        let mut w = codec::writer(WriteOptions { form, level: 1, keys: Some(&keys) }, sink).unwrap();
        let mut h = Sha256::new();
        feed(|piece| {
            h.update(piece);
            w.write_all(piece).unwrap();
        });
        w.finish().unwrap();
        want = h;
    }
    let want = want.finalize();
    let key = tmp.join("keys");
    let maildir = tmp.join("out");
    for args in [
        vec!["-r", folder.to_str().unwrap(), "-k", key.to_str().unwrap(), "-q"],
        vec!["-r", folder.to_str().unwrap(), "-k", key.to_str().unwrap(), "--to-maildir", maildir.to_str().unwrap()],
        vec!["--verify", folder.to_str().unwrap(), "-k", key.to_str().unwrap()],
    ] {
        // Under GNU time: spawned from this test process, the binary's `ru_maxrss` would
        // start from the peak of the whole test binary (see `measured`).
        let peak_file = tmp.join("peak");
        let child = measured(bin(), &peak_file).args(&args).stdout(std::process::Stdio::null()).spawn().unwrap();
        let (code, peak) = wait_measured(child, &peak_file);
        println!("{args:?}: peak {peak} KiB");
        assert_eq!(code, 0, "{args:?}");
        assert!(peak < LIMIT_KIB, "{args:?}: peak RSS {peak} KiB for two 50 MB messages");
    }
    for entry in fs::read_dir(maildir.join("cur")).unwrap() {
        let data = fs::read(entry.unwrap().path()).unwrap();
        assert_eq!(Sha256::digest(&data), want, "maildir message differs");
    }
    let mbox = fs::metadata(tmp.join("INBOX.mbox")).unwrap().len();
    assert!(mbox > 2 * SIZE as u64, "mbox holds both messages ({mbox} bytes)");
}
