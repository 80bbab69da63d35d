//! Issue 25, items 5 and 6, against a real Dovecot: `--verify` reports all damage (files
//! damaged first in the folder, a file deleted, one copied over another UID's, a damaged
//! journal record) with counts in messages and the journals apart, never a file committed
//! by a backup running meanwhile as missing; a journal with one damaged byte costs one
//! record (restore and `--list` keep every other message's flags) and the next backup
//! repairs it without fetching a message again; journals of millions of records are read
//! in bounded memory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::dovecot::Dovecot;
use crate::support::*;
use smailarchiver::archive::metadata::{reader::Source, record::Record};

const PW: &str = "s3cret pass";

fn message(i: usize) -> Vec<u8> {
    format!("From: a{i}@example.org\r\nSubject: m{i}\r\n\r\nbody {i} {}\r\n", "x".repeat(i * 13)).into_bytes()
}

/// The only journal of `user`.
fn journal_of(root: &Path, user: &str) -> PathBuf {
    let mut all: Vec<PathBuf> =
        fs::read_dir(root.join(".smailarchiver/meta").join(user)).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// The line number of `uid`'s message record in `journal`.
fn line_of(journal: &Path, key: Option<&Path>, uid: u32) -> u64 {
    let keys = key.map(|k| smailarchiver::keys::load(k, || Ok(None)).unwrap());
    let src = Arc::new(Source::open(journal, keys.as_ref()).unwrap());
    for mut records in [src.base(), src.tail()] {
        while let Some(r) = records.next_record() {
            if let Ok((Record::Message { uid: u, .. }, line)) = r {
                if u == uid {
                    return line;
                }
            }
        }
    }
    panic!("no record of UID {uid} in {}", journal.display());
}

/// Changes one byte in the middle of line `line` (1-based) of `path`.
fn flip_in_line(path: &Path, line: u64) {
    let mut bytes = fs::read(path).unwrap();
    let starts: Vec<usize> =
        std::iter::once(0).chain(bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1)).collect();
    let (a, b) = (starts[line as usize - 1], starts[line as usize] - 1);
    let at = (a + b) / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    fs::write(path, bytes).unwrap();
}

fn flip_file(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    fs::write(path, bytes).unwrap();
}

fn file_of(folder: &Path, uid: u32) -> PathBuf {
    fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{uid}.")))
        .unwrap_or_else(|| panic!("no file of UID {uid}"))
}

fn verify(path: &Path, keys: &[&str]) -> (i32, String) {
    let mut args = vec!["--verify", path.to_str().unwrap()];
    args.extend(keys);
    let o = run(&args, &[]);
    (o.status.code().unwrap_or(-1), stdout(&o))
}

/// `--verify` goes on past damaged files (the first three of the folder), blames the key
/// only when nothing authenticates, counts messages, names a missing file as recorded and
/// every damaged journal record.
#[test]
fn verify_reports_every_damage_and_counts_messages() {
    let d = Dovecot::start();
    let user = "vdamage";
    d.add_user(user, PW);
    for i in 0..30 {
        d.append(user, PW, "INBOX", &message(i));
    }
    let tmp = TempDir::new("verify-damage");
    let key = tmp.join("keys");
    let k = key.to_str().unwrap();
    let sealed = tmp.dir("sealed");
    backup_ok(&d, user, PW, &sealed, &["-z", "-e", "-k", k], &[]);
    let folder = sealed.join(user).join("INBOX");
    for uid in 1..=3 {
        flip_file(&file_of(&folder, uid));
    }
    let (code, out) = verify(&folder, &["-k", k]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("does not match"), "{out}");
    assert_eq!(out.matches("MAC check failed").count(), 3, "{out}");
    assert!(out.contains("verified 30 messages: 27 good, 3 bad (3 damaged, 0 missing)"), "{out}");
    assert!(out.ends_with("; 1 metadata journal\n"), "{out}");
    // A wrong key is still one line: nothing of a sample over the archive opens.
    let wrong = tmp.join("wrong");
    fs::copy(vectors().join("keys/random.key"), &wrong).unwrap();
    let o = run(&["--verify", sealed.to_str().unwrap(), "-k", wrong.to_str().unwrap()], &[]);
    assert_one_line_error(&o, 1, "does not match the archive");

    // The damage mix, plain and compressed: a file deleted (named as recorded), one
    // copied over another UID's, a damaged file, a damaged journal record.
    let plain = tmp.dir("plain");
    backup_ok(&d, user, PW, &plain, &["-z"], &[]);
    let folder = plain.join(user).join("INBOX");
    let journal = journal_of(&plain, user);
    fs::remove_file(folder.join("9.mbox.gz")).unwrap();
    fs::copy(folder.join("10.mbox.gz"), folder.join("11.mbox.gz")).unwrap();
    flip_file(&folder.join("12.mbox.gz"));
    let line = line_of(&journal, None, 20);
    flip_in_line(&journal, line);
    let (code, out) = verify(&plain, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "BAD {}: UID 9 was archived but its file is missing",
            folder.join("9.mbox.gz").display()
        )),
        "{out}"
    );
    assert!(out.contains("11.mbox.gz: not the message archived as UID 11"), "{out}");
    assert!(out.contains("12.mbox.gz: "), "{out}");
    assert!(out.contains(&format!("BAD {}: line {line}: checksum mismatch", journal.display())), "{out}");
    assert!(out.contains("repaired by the next backup"), "{out}");
    assert!(
        out.contains("verified 30 messages: 27 good, 3 bad (2 damaged, 1 missing)")
            && out.ends_with("; 1 metadata journal, 1 damaged record\n"),
        "{out}"
    );
    // A folder whose files were all deleted fails, each message named.
    for e in fs::read_dir(&folder).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    let (code, out) = verify(&folder, &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("was archived but its file is missing").count(), 29, "{out}");
    assert!(out.contains("verified 29 messages: 0 good, 29 bad (0 damaged, 29 missing)"), "{out}");
    let (code, out) = verify(&plain, &[]);
    assert_eq!(code, 1, "the whole root: {out}");
}

/// One damaged byte in a folder's journal costs one message's metadata: restore and
/// `--list` keep every other message's flags and say so; `--verify` names the record and
/// the remedy; the next backup repairs it from the server without fetching a message.
fn flipped_byte(mode: &str, options: &[&str]) {
    let d = Dovecot::start();
    let user = format!("flip{mode}");
    d.add_user(&user, PW);
    let mut s = d.session(&user, PW);
    for i in 0..10 {
        let flags: &[&str] = if i % 2 == 0 { &["\\Seen"] } else { &["\\Flagged", "Work"] };
        s.append_at("INBOX", flags, Some("02-Jan-2020 10:00:00 +0100"), &message(i));
    }
    s.logout();
    let tmp = TempDir::new(&format!("flip-{mode}"));
    let root = tmp.dir("root");
    let key = tmp.join("keys");
    let mut extra: Vec<&str> = options.to_vec();
    let mut keys: Vec<&str> = Vec::new();
    if options.contains(&"-e") {
        keys = vec!["-k", key.to_str().unwrap()];
        extra.extend(&keys);
    }
    backup_ok(&d, &user, PW, &root, &extra, &[]);
    let folder = root.join(&user).join("INBOX");
    let journal = journal_of(&root, &user);
    flip_in_line(&journal, line_of(&journal, options.contains(&"-e").then_some(key.as_path()), 5));
    let want = |uid: u32| if uid % 2 == 1 { "\\Seen" } else { "Work \\Flagged" };
    let sorted = |flags: &str| {
        let mut v: Vec<&str> = flags.split(' ').collect();
        v.sort_unstable();
        v.join(" ")
    };

    let mut args = vec!["--list", folder.to_str().unwrap()];
    args.extend(&keys);
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
    assert!(stderr(&o).contains("1 damaged metadata record left out (see --verify)"), "{mode}: {}", stderr(&o));
    for line in stdout(&o).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let uid: u32 = f[0].parse().unwrap();
        if uid == 5 {
            assert_eq!((f[1], f[5]), ("-", "-"), "{mode}: {line}");
        } else {
            assert_eq!(sorted(f[5]), sorted(want(uid)), "{mode}: {line}");
        }
    }
    let out = tmp.join("md");
    let mut args = vec!["-r", folder.to_str().unwrap(), "--to-maildir", out.to_str().unwrap()];
    args.extend(&keys);
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
    assert!(stderr(&o).contains("1 damaged metadata record left out"), "{mode}: {}", stderr(&o));
    let names: Vec<String> =
        fs::read_dir(out.join("cur")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 10);
    for n in &names {
        let uid: u32 = n.split([':', '.']).next().unwrap().parse().unwrap();
        let letters = n.split_once(":2,").unwrap().1;
        let expected = match uid {
            5 => "",
            u if u % 2 == 1 => "S",
            _ => "F",
        };
        assert_eq!(letters, expected, "{mode}: {n}");
    }
    let mut args = vec!["--verify", folder.to_str().unwrap()];
    args.extend(&keys);
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(1), "{mode}");
    assert!(stdout(&o).contains("a damaged metadata record") && stdout(&o).contains("next backup"), "{}", stdout(&o));

    // The next backup (nothing new on the server) repairs it; no message is fetched.
    let fetched = d.fetch_count(&user);
    let o = backup_ok(&d, &user, PW, &root, &extra, &[]);
    assert!(stderr(&o).contains("the metadata journal had 1 damaged record"), "{mode}: {}", stderr(&o));
    assert_eq!(d.fetch_count(&user), fetched, "{mode}: a message was fetched again");
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "{mode}: {}", stdout(&o));
    let mut args = vec!["--list", folder.to_str().unwrap()];
    args.extend(&keys);
    let o = run(&args, &[]);
    assert_eq!(stderr(&o), "", "{mode}");
    for line in stdout(&o).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let uid: u32 = f[0].parse().unwrap();
        assert_eq!(sorted(f[5]), sorted(want(uid)), "{mode}: {line}");
        assert!(f[1].starts_with("2020-01-02 "), "{mode}: the arrival time, asked again: {line}");
        assert_ne!(f[4], "-", "{mode}: the size, asked again: {line}");
    }
    // A no-op rerun after the repair reads nothing whole (its journal is intact).
    let before = d.commands_log(&user).len();
    backup_ok(&d, &user, PW, &root, &extra, &[]);
    let log = d.commands_log(&user)[before..].to_string();
    assert!(!log.contains("FETCH"), "{mode}: {log}");
}

#[test]
fn a_flipped_byte_in_a_plain_journal() {
    flipped_byte("plain", &[]);
}

#[test]
fn a_flipped_byte_in_a_sealed_journal() {
    flipped_byte("ze", &["-z", "-e"]);
}

/// `--verify` run again and again while backups commit new mail never reports a file
/// committed during its own run as missing.
#[test]
fn verify_during_backups_never_reports_new_files_missing() {
    let d = Dovecot::start();
    let user = "vrace";
    d.add_user(user, PW);
    for i in 0..20 {
        d.append(user, PW, "INBOX", &message(i));
    }
    let tmp = TempDir::new("verify-race");
    let root = tmp.dir("root");
    backup_ok(&d, user, PW, &root, &["-q"], &[]);
    let folder = root.join(user).join("INBOX");
    let stop = Arc::new(AtomicBool::new(false));
    let verifier = {
        let (stop, folder) = (stop.clone(), folder.clone());
        std::thread::spawn(move || {
            let (mut runs, mut failures) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let o = Command::new(bin())
                    .args(["--verify", folder.to_str().unwrap(), "-q"])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                runs += 1;
                if o.status.code() != Some(0) {
                    failures.push(format!("{}{}", stdout(&o), stderr(&o)));
                }
            }
            (runs, failures)
        })
    };
    for round in 0..30 {
        let mut s = d.session(user, PW);
        for i in 0..10 {
            s.append("INBOX", &[], &message(100 + round * 10 + i));
        }
        s.logout();
        backup_ok(&d, user, PW, &root, &["-q", "--buffer-size", "64K"], &[]);
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, failures) = verifier.join().unwrap();
    assert!(failures.is_empty(), "{} of {runs} verify runs failed: {}", failures.len(), failures[0]);
    assert!(runs >= 10, "only {runs} verify runs");
}

/// What a plain journal line of `text` is in the journal `journal` of user directory
/// `user` (the checksum covers the journal's name).
fn plain_line(binding: &str, text: &str) -> String {
    let sum = sha256_hex(format!("{binding}\n{text}").as_bytes());
    format!("{text}\t#{}\n", &sum[..16])
}

/// Runs the binary under GNU time; its exit code and peak RSS in KiB.
fn peak(args: &[&str], tmp: &TempDir) -> (i32, u64) {
    let file = tmp.join("peak");
    let child = measured(bin(), &file)
        .args(args)
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_measured(child, &file)
}

/// Journals of 3 million records (one UID's flags changed 3 million times; 3 million
/// UIDs) are read by `--list`, restore, `--verify` and a backup in at most 16 MiB.
#[test]
fn journals_of_millions_of_records_are_read_in_bounded_memory() {
    const LINES: u32 = 3_000_000;
    const LIMIT_KIB: u64 = 16 * 1024;
    let d = Dovecot::start();
    let user = "bigjournal";
    d.add_user(user, PW);
    for i in 0..3 {
        d.append(user, PW, "INBOX", &message(i));
    }
    let tmp = TempDir::new("big-journal");
    let root = tmp.dir("root");
    backup_ok(&d, user, PW, &root, &[], &[]);
    let folder = root.join(user).join("INBOX");
    let journal = journal_of(&root, user);
    let binding = format!("folder {user}/{}", journal.file_name().unwrap().to_string_lossy());
    // A message far up, so lookups go through the whole journal.
    let far = LINES + 10;
    fs::copy(folder.join("1.mbox"), folder.join(format!("{far}.mbox"))).unwrap();
    let header = "smailarchiver-metadata 2 plain\n";
    let head = |base_end: u64, count: u64| plain_line(&binding, &format!("H\tb={base_end:020}\tn={count:020}"));
    let real = |uid: u32| format!("M\t{uid}\ts=100\tt=1577955600\tz=60\tf=\\Seen");
    let start = (header.len() + head(0, 0).len()) as u64;
    use std::io::{Seek, SeekFrom, Write};
    // One UID's flags, 3 million times, after the messages' records: all tail.
    let tail_journal = tmp.join("tail.journal");
    {
        let mut w = std::io::BufWriter::new(fs::File::create(&tail_journal).unwrap());
        w.write_all(header.as_bytes()).unwrap();
        w.write_all(head(start, 0).as_bytes()).unwrap();
        for uid in [1, 2, 3, far] {
            w.write_all(plain_line(&binding, &real(uid)).as_bytes()).unwrap();
        }
        for i in 0..LINES {
            w.write_all(plain_line(&binding, &format!("U\t2\tf=\\Seen $k{}", i % 7)).as_bytes()).unwrap();
        }
        w.flush().unwrap();
    }
    // 3 million UIDs, sorted: a compacted journal's base.
    let base_journal = tmp.join("base.journal");
    {
        let mut w = std::io::BufWriter::new(fs::File::create(&base_journal).unwrap());
        w.write_all(header.as_bytes()).unwrap();
        w.write_all(head(0, 0).as_bytes()).unwrap();
        let mut end = start;
        for uid in (1..=LINES).chain([far]) {
            let text =
                if uid <= 3 || uid == far { real(uid) } else { format!("M\t{uid}\tt=1577955600\tz=60\tf=\\Answered") };
            let line = plain_line(&binding, &text);
            end += line.len() as u64;
            w.write_all(line.as_bytes()).unwrap();
        }
        let mut file = w.into_inner().unwrap();
        file.seek(SeekFrom::Start(header.len() as u64)).unwrap();
        file.write_all(head(end, u64::from(LINES) + 1).as_bytes()).unwrap();
    }
    let f = folder.to_str().unwrap();
    let mbox = tmp.join("out.mbox");
    let mut client = d.client_args(user, &root);
    client.push("-q".into());
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    for (kind, source) in [("3 million records of one UID", &tail_journal), ("3 million UIDs", &base_journal)] {
        let runs: [(&str, Vec<&str>); 4] = [
            ("--list", vec!["--list", f]),
            ("restore", vec!["-r", f, "-o", mbox.to_str().unwrap()]),
            ("--verify", vec!["--verify", f]),
            ("backup", client.clone()),
        ];
        for (what, args) in runs {
            fs::copy(source, &journal).unwrap();
            let started = std::time::Instant::now();
            let (code, kib) = peak(&args, &tmp);
            assert!(code == 0 || (what == "--verify" && code == 1), "{kind}: {what} exit {code}");
            assert!(kib <= LIMIT_KIB, "{kind}: {what} took {kib} KiB");
            eprintln!("{kind}: {what}: {kib} KiB, {:.1} s", started.elapsed().as_secs_f64());
        }
        // What the backup left is read right: the server's flags (none) for the messages.
        let o = run(&["--list", f], &[]);
        let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 4, "{kind}: {}", stdout(&o));
        assert!(lines[1].starts_with("2\t2020-01-02 ") && lines[1].ends_with("\t-\t-"), "{kind}: {}", lines[1]);
    }
    // A journal of an earlier 0.7.0 build (format 1): 3 million lines of one UID.
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(fs::File::create(&journal).unwrap());
        w.write_all(b"smailarchiver-metadata 1 plain\n").unwrap();
        for i in 0..LINES {
            writeln!(w, "F\t1\t\\Seen $k{}", i % 5).unwrap();
        }
        w.flush().unwrap();
    }
    let (code, kib) = peak(&["--list", f], &tmp);
    assert_eq!(code, 0);
    assert!(kib <= LIMIT_KIB, "format 1: --list took {kib} KiB");
}
