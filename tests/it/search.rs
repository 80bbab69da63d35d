//! `--search` over real archives (a backup from the scripted server, plain and `-z -e`):
//! its hits agree with a Python oracle built on the standard library's `email` package
//! (tests/tools/search_oracle.py) for every message of the corpus (tests/fixtures/search,
//! made by tests/tools/make_search_corpus.py: QP and base64 parts in Cyrillic, CJK, Greek
//! and Latin charsets, HTML, attached messages, encoded words, raw 8-bit headers, cut
//! header fields; and the compatibility vectors' messages), with metadata and without
//! (an archive of 0.6); header-only queries open no file; a hit's line is `--list`'s line.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fake_imap::{FakeImap, Folder, Script};
use crate::support::*;
use smailarchiver::archive::metadata::{journal_of_dir, Entry, Index, Journal};

const USER: &str = "seeker";
const PW: &str = "search pw";

/// Queries with fields from the metadata only (flags, labels, INTERNALDATEs set below).
const META_QUERIES: &[&str] = &[
    "flag:seen",
    "flag:\\Flagged OR label:Travel",
    "label:\"Important Stuff\"",
    "-flag:seen since:2024-01-01",
    "before:2020-01-01 flag:seen",
];

/// Queries the oracle answers from the messages alone.
const QUERIES: &[&str] = &[
    "quarterly report",
    "café",
    "привет",
    "квартал",
    "бухгалтерия",
    "коллеги",
    "こんにちは",
    "会議",
    "東京",
    "你好",
    "臺灣",
    "안녕",
    "οδος",
    "καλημέρα",
    "grüße",
    "münchen",
    "from:jörg",
    "from:müller",
    "to:lastperson",
    "to:person3",
    "carol",
    "subject:köln",
    "subject:endmarker",
    "subject:\"hello world\"",
    "zebra",
    "giraffe",
    "subject:zebra",
    "secretword",
    "world",
    "brulée",
    "crème",
    "scriptword",
    "hidden comment",
    "€",
    "“quoted”",
    "needle",
    "mango papaya",
    "kiwi",
    "id:corpus.example",
    "id:vectors.example -from:example.org",
    "from:example.org -subject:report",
    "(zebra OR café) -from:ann",
    "since:2024-01-01",
    "before:2014-01-01",
    "since:2023-12-31 before:2024-01-01",
    "larger:50K",
    "smaller:600",
    "budget OR archive",
    "server NOT budget",
    "donald",
    "au lait",
    "100€",
    "2024",
];

fn backup(server: &FakeImap, root: &Path, extra: &[&str]) {
    let o = Command::new(bin())
        .args(["-u", USER, "-i", "127.0.0.1", "--port", &server.port().to_string(), "--ca-file", &server.ca_file()])
        .args(["--dir", root.to_str().unwrap(), "--all-folders"])
        .args(extra)
        .env("SMAILARCHIVER_PASSWD", PW)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "backup {extra:?}: {}", stderr(&o));
}

/// The corpus: (folder, UID, file of the raw message).
fn corpus() -> Vec<(String, u32, PathBuf)> {
    let mut out = Vec::new();
    for (folder, dir) in [
        ("INBOX", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search")),
        ("Old", vectors().join("input")),
    ] {
        let mut files: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        out.extend(files.into_iter().enumerate().map(|(i, p)| (folder.to_string(), i as u32 + 1, p)));
    }
    out
}

/// What the test adds to a message's metadata: UID, flags, INTERNALDATE, Gmail labels.
type Note = (u32, Vec<String>, Option<&'static str>, Option<Vec<String>>);

/// What the test adds to INBOX's metadata.
fn annotations() -> Vec<Note> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (1, s(&["\\Seen"]), Some("02-Jan-2019 23:30:00 -0800"), Some(s(&["Travel", "Important Stuff"]))),
        (2, s(&["\\Seen", "\\Flagged"]), None, None),
        (3, s(&["$Forwarded"]), Some("31-Dec-2023 23:59:59 +0000"), Some(s(&["\\Inbox"]))),
        (29, s(&["\\Seen"]), None, Some(s(&["important stuff"]))),
    ]
}

/// Sets flags, INTERNALDATEs and labels in INBOX's journal, as a Gmail backup records them.
fn annotate(root: &Path, keys: Option<&Path>) {
    let dir = root.join(USER).join("INBOX");
    let path = journal_of_dir(&dir).expect("INBOX has a journal");
    let keys = keys.map(|k| smailarchiver::keys::load(k, || Ok(None)).unwrap());
    let index = Index::load(&path, keys.as_ref(), true).unwrap();
    let mut journal = Journal::new(path, keys);
    let mut entries = Vec::new();
    for (uid, flags, date, labels) in annotations() {
        let m = index.lookup(uid).unwrap();
        assert!(m.headers.is_some(), "UID {uid}: the backup recorded no header fields");
        entries.push(Entry {
            uid,
            size: m.size.unwrap(),
            digest: m.digest.unwrap(),
            internal_date: date.map(str::to_string).or(m.internal_date),
            flags,
            form: m.form,
            headers: m.headers,
            labels,
        });
    }
    journal.messages(&entries).unwrap();
    journal.sync().unwrap();
}

/// The oracle's hits for each query, as `FOLDER/UID` keys; `with_meta`: with the
/// annotations (else as an archive without metadata: nothing but the messages).
fn oracle(queries: &[&str], with_meta: bool, tmp: &Path) -> Vec<BTreeSet<String>> {
    let manifest = tmp.join(format!("manifest-{with_meta}"));
    let notes = annotations();
    let mut text = String::new();
    for (folder, uid, path) in corpus() {
        let note = notes.iter().find(|n| folder == "INBOX" && n.0 == uid).filter(|_| with_meta);
        let flags = note.map_or("-".into(), |n| if n.1.is_empty() { "-".into() } else { n.1.join(" ") });
        let date = note.and_then(|n| n.2).unwrap_or("-");
        let labels = note.and_then(|n| n.3.as_ref()).map_or("-".into(), |l| l.join("|"));
        text += &format!("{folder}/{uid}\t{}\t{date}\t{flags}\t{labels}\n", path.display());
    }
    fs::write(&manifest, text).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/search_oracle.py");
    let o = Command::new("python3").arg(script).arg(&manifest).args(queries).output().expect("python3");
    assert!(o.status.success(), "oracle: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines.len(), queries.len() + 1, "oracle output: {out}");
    lines[..queries.len()].iter().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// Runs `--search QUERY ROOT`; its hits as `FOLDER/UID` keys, its stdout and stderr.
fn search(query: &str, root: &Path, keys: Option<&Path>) -> (BTreeSet<String>, String, String) {
    let mut args = vec!["--search", query, root.to_str().unwrap()];
    if let Some(k) = keys {
        args.extend(["-k", k.to_str().unwrap()]);
    }
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "--search {query:?}: {}", stderr(&o));
    let out = stdout(&o);
    let hits = out
        .lines()
        .map(|l| {
            let mut cols = l.split('\t');
            let folder = Path::new(cols.next().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            format!("{folder}/{}", cols.next().unwrap())
        })
        .collect();
    (hits, out, stderr(&o))
}

/// A backup of the corpus in `root`.
fn archive(root: &Path, extra: &[&str]) -> FakeImap {
    let mut folders = Vec::new();
    for name in ["INBOX", "Old"] {
        let messages = corpus().into_iter().filter(|c| c.0 == name).map(|(_, uid, p)| (uid, fs::read(p).unwrap()));
        folders.push(Folder::new(name, 5, messages.collect()));
    }
    let server = FakeImap::start(USER, PW, folders, vec![Script::healthy()]);
    backup(&server, root, extra);
    server
}

fn agrees_with_the_oracle(extra: &[&str]) {
    let tmp = TempDir::new("search-oracle");
    let root = tmp.dir("archive");
    let keys = extra.contains(&"-e").then(|| tmp.join("keys"));
    let mut args = extra.to_vec();
    if let Some(k) = &keys {
        args.extend(["-k", k.to_str().unwrap()]);
    }
    let _server = archive(&root, &args);
    annotate(&root, keys.as_deref());
    let all: Vec<&str> = QUERIES.iter().chain(META_QUERIES).copied().collect();
    let want = oracle(&all, true, tmp.path());
    let mut wrong = Vec::new();
    for (query, want) in all.iter().zip(&want) {
        let (got, _, _) = search(query, &root, keys.as_deref());
        if got != *want {
            wrong.push(format!("{query:?}: found {got:?}, the oracle {want:?}"));
        }
    }
    assert!(!QUERIES.iter().zip(&want).all(|(_, w)| w.is_empty()), "the oracle found nothing at all");
    // The same archive without metadata (as 0.6 wrote it): every answer from the files.
    fs::remove_dir_all(root.join(smailarchiver::archive::layout::META_DIR)).unwrap();
    let want = oracle(QUERIES, false, tmp.path());
    for (query, want) in QUERIES.iter().zip(&want) {
        let (got, _, err) = search(query, &root, keys.as_deref());
        assert!(!err.contains("decided by the metadata alone, 0 files read") || got.is_empty(), "{err}");
        if got != *want {
            wrong.push(format!("without metadata {query:?}: found {got:?}, the oracle {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn plain_archive_agrees_with_the_python_oracle() {
    agrees_with_the_oracle(&[]);
}

#[test]
fn compressed_encrypted_archive_agrees_with_the_python_oracle() {
    agrees_with_the_oracle(&["-z", "-e"]);
}

/// Header-only queries are answered from the metadata: with every message file emptied,
/// they find the same messages and read no file; a hit's line is `--list`'s line.
#[test]
fn header_queries_read_no_file_and_hits_are_list_lines() {
    let tmp = TempDir::new("search-meta");
    let root = tmp.dir("archive");
    let _server = archive(&root, &[]);
    annotate(&root, None);
    let queries = [
        "from:jörg",
        "id:koi8 OR from:dan",
        "flag:seen since:2019-01-01",
        "label:travel",
        "-from:ann before:2020-01-01",
    ];
    let before: Vec<_> = queries.iter().map(|q| search(q, &root, None)).collect();
    let inbox = root.join(USER).join("INBOX");
    let list = |dir: &Path| stdout(&run(&["--list", dir.to_str().unwrap()], &[]));
    for (query, (hits, out, err)) in queries.iter().zip(&before) {
        assert!(!hits.is_empty(), "{query}: nothing found");
        assert!(err.contains(", 0 files read)"), "{query}: {err}");
        for line in out.lines() {
            let (folder, rest) = line.split_once('\t').unwrap();
            let listed = list(Path::new(folder));
            assert!(listed.lines().any(|l| l == rest), "{query}: {rest:?} is not a line of --list:\n{listed}");
        }
    }
    for folder in [&inbox, &root.join(USER).join("Old")] {
        for entry in fs::read_dir(folder).unwrap() {
            fs::write(entry.unwrap().path(), b"").unwrap();
        }
    }
    for (query, (hits, _, _)) in queries.iter().zip(&before) {
        assert_eq!(&search(query, &root, None).0, hits, "{query}");
    }
    // A query on a field cut at its bound (Subject, To) needs the file: the damage is said.
    let o = run(&["--search", "to:lastperson", root.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("could not be read"), "{}", stderr(&o));
}

#[test]
fn bad_queries_are_usage_errors() {
    let tmp = TempDir::new("search-usage");
    for (args, needle) in [
        (&["--search", "since:2024-13-01", "."][..], "not a date"),
        (&["--search", "(a", "."], "not closed"),
        (&["--search", "a", ".", "--list", "."], "cannot be combined"),
    ] {
        let o = run(args, &[]);
        assert_one_line_error(&o, 2, needle);
    }
    let o = run(&["--search", "a", tmp.join("nothing").to_str().unwrap()], &[]);
    assert_ne!(o.status.code(), Some(0));
}

/// Hits come out in UID order whatever answers first: those the metadata decides
/// (`subject:m7`) among those the workers read from the files (`kumquat`, in the body),
/// over more messages than are read ahead; and the summary counts every file read.
#[test]
fn hits_come_in_uid_order() {
    let tmp = TempDir::new("search-order");
    let root = tmp.dir("archive");
    let keys = tmp.join("keys");
    let messages: Vec<(u32, Vec<u8>)> = (1..=700u32)
        .map(|uid| {
            // Some bodies are long, so that batches take uneven times.
            let body = if uid % 3 == 0 { "a kumquat harvest" } else { "nothing here" };
            let filler = "lorem ipsum dolor\r\n".repeat(if uid % 50 == 1 { 20_000 } else { 1 });
            let m = format!("From: a@example.org\r\nSubject: m{uid}\r\n\r\n{filler}{body}\r\n");
            (uid, m.into_bytes())
        })
        .collect();
    let want: Vec<u32> = (1..=700u32).filter(|u| u % 3 == 0 || u.to_string().starts_with('7')).collect();
    let server = FakeImap::start(USER, PW, vec![Folder::new("INBOX", 5, messages)], vec![Script::healthy()]);
    backup(&server, &root, &["-z", "-e", "-k", keys.to_str().unwrap()]);
    let (_, out, err) = search("kumquat OR subject:m7", &root, Some(&keys));
    let got: Vec<u32> = out.lines().map(|l| l.split('\t').nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(got, want, "{err}");
    let summary = format!("{} found (12 decided by the metadata alone, 688 files read)", want.len());
    assert!(err.contains(&summary), "{err}");
}
