//! Issue 25, item 4: no silent no-op. `-r`, `--list` and `--verify` on an archive root, a
//! user directory or a directory without archive files do the whole-account action or
//! say what they expected, with a non-zero exit; a file in a folder directory that is not
//! named `UID.mbox*` (`foo.mbox.enc`) is named in one warning, verified, listed and
//! restored by its suffix after the UID-named ones, as the original restores it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::*;

/// An archive of the original program: ROOT/ann/INBOX and ROOT/bo/Sent, encrypted with
/// the vectors' random key.
fn original_archive(tmp: &TempDir) -> (PathBuf, String) {
    let root = tmp.dir("root");
    for (user, folder, uids) in [("ann", "INBOX", [1, 30, 32]), ("bo", "Sent", [34, 60, 67])] {
        let dir = root.join(user).join(folder);
        fs::create_dir_all(&dir).unwrap();
        for uid in uids {
            let name = format!("{uid}.mbox.gz.enc");
            fs::copy(vectors().join("random").join(&name), dir.join(&name)).unwrap();
        }
    }
    (root, vectors().join("keys/random.key").to_string_lossy().into_owned())
}

fn listing_of(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                dirs.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_archive_root_is_listed_and_verified_whole_and_not_restored_into_nothing() {
    let tmp = TempDir::new("paths-root");
    let (root, key) = original_archive(&tmp);
    let r = root.to_str().unwrap();
    let before = listing_of(tmp.path());
    // -r ROOT: what to give instead, exit 2, nothing written (it wrote an empty ROOT.mbox).
    let o = run(&["-r", r, "-k", &key], &[]);
    assert_one_line_error(&o, 2, "is an archive root (accounts: ann, bo): restore one account's directory");
    assert_eq!(listing_of(tmp.path()), before);
    // --list ROOT: every account's folders.
    let o = run(&["--list", r, "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(heads, ["# ann/INBOX", "# bo/Sent"], "{text}");
    assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 6, "{text}");
    // --verify ROOT: all of it.
    let o = run(&["--verify", r, "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("verified 6 messages: 6 good, 0 bad"), "{}", stdout(&o));
    // -r ROOT/USER restores every folder of the account.
    let out = tmp.join("out");
    let o = run(&["-r", &format!("{r}/ann"), "-o", out.to_str().unwrap(), "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(parse_mboxrd(&fs::read(out.join("INBOX.mbox")).unwrap()).len(), 3);
}

#[test]
fn a_directory_without_archive_files_is_said_so() {
    let tmp = TempDir::new("paths-empty");
    let empty = tmp.dir("empty");
    fs::create_dir(empty.join("sub")).unwrap();
    fs::write(empty.join("sub/notes.txt"), b"x").unwrap();
    let e = empty.to_str().unwrap();
    let before = listing_of(tmp.path());
    for args in [vec!["-r", e], vec!["--list", e], vec!["--verify", e]] {
        let o = run(&args, &[]);
        assert_one_line_error(&o, 1, "no archive files (UID.mbox[.gz][.enc]) in it or below it");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
    assert_eq!(listing_of(tmp.path()), before, "nothing written (it wrote an empty empty.mbox)");
    let o = run(&["--verify", tmp.join("missing").to_str().unwrap()], &[]);
    assert_one_line_error(&o, 1, "not a directory");
}

#[test]
fn a_file_not_named_after_a_uid_is_named_verified_listed_and_restored_last() {
    let tmp = TempDir::new("paths-odd");
    let (root, key) = original_archive(&tmp);
    let folder = root.join("ann/INBOX");
    fs::copy(vectors().join("random/99.mbox.enc"), folder.join("foo.mbox.enc")).unwrap();
    let f = folder.to_str().unwrap();
    let one_warning = |o: &std::process::Output| {
        let err = stderr(o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("smailarchiver: warning: 1 file not named UID.mbox[.gz][.enc] ("), "{err}");
        assert!(err.contains("foo.mbox.enc"), "{err}");
    };
    // Restored by its suffix, after the others.
    let out = tmp.join("inbox.mbox");
    let o = run(&["-r", f, "-o", out.to_str().unwrap(), "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    one_warning(&o);
    let msgs = parse_mboxrd(&fs::read(&out).unwrap());
    assert_eq!(msgs.len(), 4);
    let expected = fs::read(vectors().join("expected/99.mbox")).unwrap();
    assert_eq!(msgs[3], as_in_mbox(strip_first_line(&expected)), "foo.mbox.enc comes last");
    // Verified.
    let o = run(&["--verify", f, "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    one_warning(&o);
    assert!(stdout(&o).contains("verified 4 messages: 4 good, 0 bad"), "{}", stdout(&o));
    // Listed, its name in the UID column.
    let o = run(&["--list", f, "-k", &key], &[]);
    one_warning(&o);
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("foo.mbox.enc\t"), "{}", stdout(&o));
    // A damaged one is reported like any other file.
    let mut bytes = fs::read(folder.join("foo.mbox.enc")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    fs::write(folder.join("foo.mbox.enc"), bytes).unwrap();
    let o = run(&["--verify", f, "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("foo.mbox.enc: MAC check failed"), "{}", stdout(&o));
    assert!(stdout(&o).contains("verified 4 messages: 3 good, 1 bad (1 damaged, 0 missing)"), "{}", stdout(&o));
    // --uid restores UID-named messages only.
    let o = run(&["-r", f, "--uid", "30", "-o", out.to_str().unwrap(), "-k", &key], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    assert_eq!(parse_mboxrd(&fs::read(&out).unwrap()).len(), 1);
}
