//! Every vector written by the original program restores (both outputs) and verifies as
//! documented in README.md ("Format compatibility").

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::support::*;

/// What we do with a vector, where it differs from "the original decodes it".
fn our_outcome(path: &str, key: &str, password: &str, original: &str) -> Result<(), &'static str> {
    match (path, key, password) {
        ("tampered/pad-byte-0.mbox.enc", ..) | ("tampered/pad-byte-33.mbox.enc", ..) => Err("bad padding"),
        ("tampered/pad-inconsistent.mbox.enc", ..) => Err("bad padding"),
        // Real gzip is accepted: the suffix promises it.
        ("tampered/gzip-format.mbox.gz", ..) | ("tampered/gzip-format.mbox.gz.enc", ..) => Ok(()),
        ("tampered/flip-zlib.mbox.gz", ..) => Err("corrupt zlib data"),
        ("tampered/raw-deflate.mbox.gz", ..) => Err("not zlib or gzip data"),
        ("tampered/truncated-base64.mbox.enc", ..) => Err("invalid base64"),
        ("tampered/empty.mbox.enc", ..) => Err("too short for an encrypted message"),
        (_, "keys/pbkdf2.key", "-") => Err("is password-protected"),
        (_, "keys/pbkdf2-nosha.key", _) => Err("cannot check the key password"),
        // A .sha with a trailing newline is tolerated (the original rejected it).
        (_, "keys/pbkdf2-shanl.key", _) => Ok(()),
        (_, "keys/pbkdf2.key", "correct horse battery staplex") => Err("wrong key password"),
        _ if original.contains("Invalid data signature") => Err("MAC check failed"),
        _ if original == "ok" => Ok(()),
        _ => panic!("no documented outcome for {path} {key} {password:?}: {original}"),
    }
}

const MESSAGE_1_SHA: &str = "c3bca4eeb032ec3fe708ca779609ef2a039896242a35e9dc4fd7e7dff2571d46";

struct Row {
    path: String,
    sha: String,
    key: String,
    password: String,
    original: String,
}

fn manifest() -> Vec<Row> {
    let text = fs::read_to_string(vectors().join("MANIFEST.txt")).expect("tests/fixtures/vectors/MANIFEST.txt");
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 5, "bad manifest line {l}");
            Row { path: f[0].into(), sha: f[1].into(), key: f[2].into(), password: f[3].into(), original: f[4].into() }
        })
        .collect();
    assert!(rows.len() > 100, "manifest has only {} rows", rows.len());
    rows
}

/// The expected stored plaintext of each sha256 in the manifest (expected/*.mbox).
fn expected_by_sha() -> HashMap<String, Vec<u8>> {
    fs::read_dir(vectors().join("expected"))
        .expect("expected/")
        .map(|e| fs::read(e.expect("entry").path()).expect("read expected"))
        .map(|data| (sha256_hex(&data), data))
        .collect()
}

fn key_args<'a>(row: &'a Row, key_path: &'a str) -> Vec<&'a str> {
    let mut args = Vec::new();
    if row.key != "-" {
        args.extend(["-k", key_path]);
    }
    if row.password != "-" {
        args.push("-P");
    }
    args
}

#[test]
fn every_vector_restores_and_verifies_as_documented() {
    let expected = expected_by_sha();
    let mut checked = 0;
    for row in manifest() {
        let want = our_outcome(&row.path, &row.key, &row.password, &row.original);
        let tmp = TempDir::new("vec");
        let folder = tmp.join("folder");
        fs::create_dir(&folder).unwrap();
        // Archive files are named by UID; the tampered vectors are named by what was done.
        let file_name = Path::new(&row.path).file_name().unwrap().to_str().unwrap();
        let name = match file_name.split_once(".mbox") {
            Some((stem, suffix)) if !stem.bytes().all(|b| b.is_ascii_digit()) => format!("7.mbox{suffix}"),
            _ => file_name.to_string(),
        };
        fs::copy(vectors().join(&row.path), folder.join(&name)).unwrap();
        let key_path = vectors().join(&row.key).to_string_lossy().into_owned();
        let env: Vec<(&str, &str)> =
            if row.password != "-" { vec![("SMAILARCHIVER_KEY_PASSWORD", row.password.as_str())] } else { vec![] };
        let keys = key_args(&row, &key_path);
        let ctx = format!("{} key={} pw={}", row.path, row.key, row.password);

        let folder_s = folder.to_string_lossy().into_owned();
        let maildir = tmp.join("maildir");
        let maildir_s = maildir.to_string_lossy().into_owned();
        let mut a = vec!["-r", folder_s.as_str()];
        a.extend(&keys);
        let mbox_run = run(&a, &env);
        a.extend(["--to-maildir", maildir_s.as_str()]);
        let maildir_run = run(&a, &env);
        let mut v = vec!["--verify", folder_s.as_str()];
        v.extend(&keys);
        let verify_run = run(&v, &env);
        let mbox = fs::read(tmp.join("folder.mbox"));

        match want {
            Ok(()) => {
                // The gzip vectors (which the original could not read) hold message 1.
                let sha = if row.sha == "-" { MESSAGE_1_SHA } else { row.sha.as_str() };
                let stored = expected.get(sha).unwrap_or_else(|| panic!("{ctx}: no expected file for sha"));
                let msg = strip_first_line(stored);
                assert_eq!(mbox_run.status.code(), Some(0), "{ctx}: {}", stderr(&mbox_run));
                let msgs = parse_mboxrd(&mbox.expect("mbox written"));
                assert_eq!(msgs.len(), 1, "{ctx}");
                assert_same(&msgs[0], &as_in_mbox(msg), &format!("{ctx}: mbox content"));
                assert_eq!(maildir_run.status.code(), Some(0), "{ctx}: {}", stderr(&maildir_run));
                let cur: Vec<_> = fs::read_dir(maildir.join("cur")).unwrap().map(|e| e.unwrap().path()).collect();
                assert_eq!(cur.len(), 1, "{ctx}");
                assert_same(&fs::read(&cur[0]).unwrap(), msg, &format!("{ctx}: maildir content"));
                assert_eq!(verify_run.status.code(), Some(0), "{ctx}: {}", stdout(&verify_run));
            }
            Err(reason) => {
                let key_error = row.path.starts_with("tampered/") || reason.contains("MAC");
                if key_error {
                    // A bad file is left out: the restore completes with exit 1 and names it.
                    assert_eq!(mbox_run.status.code(), Some(1), "{ctx}");
                    assert!(stderr(&mbox_run).contains(reason), "{ctx}: {}", stderr(&mbox_run));
                    assert!(stderr(&mbox_run).contains(&name), "{ctx}: names the file");
                    assert!(parse_mboxrd(&mbox.expect("mbox written")).is_empty(), "{ctx}");
                    assert_eq!(maildir_run.status.code(), Some(1), "{ctx}");
                    assert_eq!(fs::read_dir(maildir.join("cur")).unwrap().count(), 0, "{ctx}");
                    assert_eq!(fs::read_dir(maildir.join("tmp")).unwrap().count(), 0, "{ctx}: no temp left");
                    assert_eq!(verify_run.status.code(), Some(1), "{ctx}");
                    assert!(stdout(&verify_run).contains(reason), "{ctx}: {}", stdout(&verify_run));
                } else {
                    // A key problem stops everything before any output exists.
                    for (what, o) in [("restore", &mbox_run), ("maildir", &maildir_run), ("verify", &verify_run)] {
                        assert_eq!(o.status.code(), Some(1), "{ctx} {what}");
                        let err = stderr(o);
                        assert!(err.starts_with("smailarchiver: error: ") && err.contains(reason), "{ctx}: {err}");
                        assert_eq!(err.lines().count(), 1, "{ctx}: one line: {err}");
                    }
                    assert!(mbox.is_err(), "{ctx}: no mbox on a key error");
                    assert!(!maildir.exists(), "{ctx}: no maildir on a key error");
                }
            }
        }
        checked += 1;
    }
    assert!(checked > 100);
}

#[test]
fn a_folder_restores_in_uid_order_with_bad_files_left_out() {
    let tmp = TempDir::new("order");
    let folder = tmp.join("INBOX");
    fs::create_dir(&folder).unwrap();
    for f in fs::read_dir(vectors().join("random")).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().ends_with(".gz.enc") {
            fs::copy(&p, folder.join(p.file_name().unwrap())).unwrap();
        }
    }
    fs::copy(vectors().join("tampered/flip-iv.mbox.enc"), folder.join("5.mbox.enc")).unwrap();
    let key = vectors().join("keys/random.key");
    let o = run(&["-r", folder.to_str().unwrap(), "-k", key.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("5.mbox.enc: MAC check failed"), "{}", stderr(&o));
    let msgs = parse_mboxrd(&fs::read(tmp.join("INBOX.mbox")).unwrap());
    let uids = [1, 30, 32, 34, 60, 67, 68, 85, 99, 111];
    assert_eq!(msgs.len(), uids.len());
    for (msg, uid) in msgs.iter().zip(uids) {
        let stored = fs::read(vectors().join(format!("expected/{uid}.mbox"))).unwrap();
        assert_same(msg, &as_in_mbox(strip_first_line(&stored)), &format!("uid {uid}"));
    }
    // Nothing but the output is left beside the folder.
    let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
