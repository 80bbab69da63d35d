//! Metadata journals (format 2, and format 1 as earlier builds wrote it). Two inputs in one:
//!
//! - The bytes as a journal file, plain and sealed with fixed keys: reading may report
//!   damage, never panic, and yields each UID once, in ascending order.
//! - The bytes' lines as record texts: those that parse are written as a well-formed plain
//!   journal (a sorted base of the message records, then every record as its tail, lines
//!   that are not records left in as damage), which must read as an independent model
//!   says (the base, then each tail record applied in order), whatever the window budget
//!   (a budget of a few hundred bytes makes the reader take the tail in many passes), and
//!   again after the writer rewrote (compacted) it. A text that parses prints back to the
//!   same record.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use smailarchiver::keys::{self, Keys};
use smailarchiver::archive::metadata::record::{self, Fields, Record};
use smailarchiver::archive::metadata::{Index, Journal};

fn keys() -> Keys {
    let text = STANDARD.encode([7u8; 64]);
    keys::from_texts(std::path::Path::new("fuzz.keys"), text.as_bytes(), None, None).expect("fixed keys")
}

/// A journal path of this process: `.../meta/user/NAME`, in memory where there is a tmpfs
/// (a compaction syncs its file: on a disk that would be most of the time).
fn path() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let dir = base.join(format!("sa-fuzz-journal-{}", std::process::id())).join("user");
    fs::create_dir_all(&dir).expect("a temporary directory");
    dir.join("0123456789abcdef-7")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A plain journal line of `text` at `path`.
fn line(path: &std::path::Path, text: &str) -> String {
    let binding = format!(
        "folder {}/{}",
        path.parent().and_then(|p| p.file_name()).unwrap().to_string_lossy(),
        path.file_name().unwrap().to_string_lossy()
    );
    let sum = Sha256::digest(format!("{binding}\n{text}").as_bytes());
    format!("{text}\t#{}\n", &hex(&sum)[..16])
}

/// Every UID of `index` with its fields, in order (checking the order), at `budget`.
fn read(index: &Index, budget: usize) -> BTreeMap<u32, Fields> {
    let mut out = BTreeMap::new();
    let mut cursor = index.entries_within(budget);
    let mut last = 0;
    while let Some((uid, fields)) = cursor.next_fields() {
        assert!(uid > last, "UID {uid} after {last}");
        last = uid;
        out.insert(uid, fields);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    let k = keys();
    // The bytes as a file.
    fs::write(&path, data).expect("writing the journal");
    for keys in [None, Some(&k)] {
        if let Ok(index) = Index::load(&path, keys, true) {
            read(&index, 300);
            let _ = index.lookup(5);
            let _ = index.lookup(2);
            let _ = index.damage();
        }
        let _ = smailarchiver::archive::metadata::summary(&path, keys);
    }

    // The lines as records.
    let text = String::from_utf8_lossy(data);
    let mut records = Vec::new();
    let mut lines = Vec::new();
    for l in text.lines() {
        match record::parse(l) {
            Some(r) => {
                if r != Record::Unknown {
                    assert_eq!(record::parse(&r.text()), Some(r.clone()), "{l:?} prints back as {:?}", r.text());
                }
                lines.push(line(&path, &r.text()));
                records.push(r);
            }
            // Not a record: damage in the journal.
            None if !l.contains('\n') => lines.push(format!("{l}\n")),
            None => {}
        }
    }
    let mut base: BTreeMap<u32, Fields> = BTreeMap::new();
    for r in &records {
        if let Record::Message { uid, fields } = r {
            base.insert(*uid, fields.clone());
        }
    }
    let mut model = base.clone();
    for r in &records {
        match r {
            Record::Message { uid, fields } => {
                model.insert(*uid, fields.clone());
            }
            Record::Update { uid, fields } => model.entry(*uid).or_default().update(fields),
            _ => {}
        }
    }
    let header = "smailarchiver-metadata 2 plain\n";
    let head = |end: u64, n: u64| line(&path, &Record::Head { base_end: end, count: n }.text());
    let start = (header.len() + head(0, 0).len()) as u64;
    let base_lines: String =
        base.iter().map(|(uid, f)| line(&path, &Record::Message { uid: *uid, fields: f.clone() }.text())).collect();
    let mut file = String::from(header);
    file += &head(start + base_lines.len() as u64, base.len() as u64);
    file += &base_lines;
    for l in &lines {
        file += l;
    }
    fs::write(&path, file).expect("writing the journal");
    let index = Index::load(&path, None, true).expect("a well-formed journal opens");
    assert_eq!(read(&index, 1 << 22), model);
    assert_eq!(read(&index, 200), model, "read in windows");
    let mut j = Journal::new(path.clone(), None);
    j.checked(true);
    j.sync().expect("a compaction");
    let index = Index::load(&path, None, true).expect("a compacted journal opens");
    assert_eq!(read(&index, 200), model, "after a compaction");
    assert!(index.damage().is_empty());
});
