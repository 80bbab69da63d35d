//! The file behind the archive root's records: `ROOT/.smailarchiver/records.jsonl`, an
//! append-only log of JSON lines. The first line names the format; every other line is one
//! record (an account's or a folder's) as it is now, and a later line about the same
//! directory replaces the earlier one. A change costs one line, whatever the number of
//! folders; when replaced lines outnumber the live ones, the file is rewritten with one line
//! per record (compacted), so its size follows the records, not the changes made to them.
//! Reading goes line by line: memory holds the records, never the file.
//!
//! A crash while appending leaves at worst a torn last line (no line break): it is ignored,
//! and cut off before the next append. A compaction writes a new file and renames it over
//! the old one.
//!
//! The development builds of 0.7 kept the records in one JSON document, `directories.json`
//! (657 bytes a folder, rewritten whole after every new folder). [`read_legacy`] reads it
//! one record at a time, so a 10,000-folder file (6.5 MB) is not held whole; the first
//! backup converts it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::archive::files::atomic::TempFile;
use crate::error::{Error, IoContext, Result};
use crate::os::dir::Dir;

/// The log's name in the tool's directory.
pub const FILE: &str = "records.jsonl";
/// The records file of 0.7's development builds, converted by the first backup.
pub const LEGACY_FILE: &str = "directories.json";
/// The first line's key, with the format as its value.
const MAGIC: &str = "smailarchiver-records";
/// Version of the log's layout.
const FORMAT: u64 = 2;
/// Longest line: a record with a long mailbox name and its evidence is far below this.
const MAX_LINE: usize = 1 << 20;
/// The legacy document's "format".
const LEGACY_FORMAT: u64 = 1;

/// What reading the log found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Record lines (the header left out).
    pub lines: usize,
    /// Length of the file up to its last line break: a torn last line beyond it is cut off
    /// before the next append.
    pub complete: u64,
}

/// Reads the log at `path`, handing each record line, parsed, to `on` with its line number
/// (from 1, the header being line 1). `Ok(None)` when there is no log. A line that is not a
/// JSON object, or one that `on` refuses, is an error naming the file and the line.
pub fn read(path: &Path, on: &mut dyn FnMut(usize, Value) -> std::result::Result<(), String>) -> Result<Option<Found>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut found = Found::default();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).at(path)?;
        if n == 0 || !line.ends_with(b"\n") {
            if line.len() > MAX_LINE {
                return Err(damaged(path, number + 1, format!("a line of more than {MAX_LINE} bytes")));
            }
            // The end, or a line a crash tore: ignored.
            return Ok(Some(found));
        }
        number += 1;
        let value: Value =
            serde_json::from_slice(&line).map_err(|e| damaged(path, number, format!("not a record ({e})")))?;
        if number == 1 {
            if value.get(MAGIC).and_then(Value::as_u64) != Some(FORMAT) {
                return Err(damaged(
                    path,
                    1,
                    format!("not a records file of format {FORMAT} (made by a newer version?)"),
                ));
            }
        } else {
            if !value.is_object() {
                return Err(damaged(path, number, "not a record".into()));
            }
            on(number, value).map_err(|why| damaged(path, number, why))?;
            found.lines += 1;
        }
        found.complete += n as u64;
    }
}

fn damaged(path: &Path, line: usize, why: String) -> Error {
    Error::runtime(format!(
        "{} line {line}: {why}; restore the file from a backup, or move it away to start the records afresh",
        path.display()
    ))
}

/// The log, open for appending records.
#[derive(Debug)]
pub struct Log {
    file: File,
    /// Appended to since the last sync.
    dirty: bool,
}

impl Log {
    /// Opens the log in the tool's directory `meta` for appending, cutting off what follows
    /// `complete` (a torn last line); makes a new one (durable, entry included) when there
    /// is none or nothing of it is whole.
    pub fn open(meta: &Dir, found: Option<Found>) -> io::Result<Log> {
        if let Some(found) = found.filter(|f| f.complete > 0) {
            let file = meta.open_file(FILE)?;
            if file.metadata()?.len() > found.complete {
                file.set_len(found.complete)?;
            }
            return Ok(Log { file, dirty: false });
        }
        if found.is_some() {
            meta.remove_file(FILE)?;
        }
        let mut file = meta.create_new(FILE, 0o600)?;
        file.write_all(&header())?;
        file.sync_all()?;
        meta.sync()?;
        Ok(Log { file, dirty: false })
    }

    /// Opens the log in `meta` for appending at its end, as it is (after [`rewrite`]).
    pub fn reopen(meta: &Dir) -> io::Result<Log> {
        Ok(Log { file: meta.open_file(FILE)?, dirty: false })
    }

    /// Appends `records`, one line each, in one write: a crash tears at most the last.
    pub fn append(&mut self, records: &[Value]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(records.len() * 128);
        for r in records {
            serde_json::to_writer(&mut out, r).map_err(io::Error::other)?;
            out.push(b'\n');
        }
        // O_APPEND is not used (it is not needed: one writer holds the root's lock).
        use std::io::Seek;
        self.file.seek(io::SeekFrom::End(0))?;
        self.file.write_all(&out)?;
        self.dirty = true;
        Ok(())
    }

    /// Makes what was appended durable, if anything was.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

fn header() -> Vec<u8> {
    format!("{{\"{MAGIC}\":{FORMAT}}}\n").into_bytes()
}

/// Replaces the log in `meta` by one holding `records`, one line each: written in `tmp`,
/// synced, renamed over the old one, and the rename made durable. Reopen the [`Log`] after.
pub fn rewrite(meta: &Dir, tmp: &Arc<Dir>, records: impl Iterator<Item = Value>) -> io::Result<()> {
    let temp = TempFile::create_at(tmp, FILE, 0o600)?;
    {
        let mut w = io::BufWriter::with_capacity(64 * 1024, temp.file());
        w.write_all(&header())?;
        for r in records {
            serde_json::to_writer(&mut w, &r).map_err(io::Error::other)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    temp.commit_at(meta, FILE, true)
}

/// Reads the legacy records document at `path` one record at a time: each element of its
/// `"accounts"` and `"folders"` arrays goes to `on` with the array's name. `Ok(false)` when
/// there is no such file.
pub fn read_legacy(path: &Path, on: &mut dyn FnMut(&str, Value) -> std::result::Result<(), String>) -> Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).at(path),
    };
    let bad = |why: String| {
        Error::runtime(format!(
            "{}: {why}; restore it from a backup, or move it away to start the records afresh",
            path.display()
        ))
    };
    let mut scanner = Scanner { input: BufReader::with_capacity(64 * 1024, file).bytes().peekable() };
    let format = scanner.document(on).map_err(bad)?;
    if format != Some(LEGACY_FORMAT) {
        return Err(bad(format!("not a records file of format {LEGACY_FORMAT} (made by a newer version?)")));
    }
    Ok(true)
}

/// Walks a JSON document's top-level object by hand, so that only one element of an array
/// is in memory at a time (serde_json parses whole values only).
struct Scanner<R: Iterator<Item = io::Result<u8>>> {
    input: std::iter::Peekable<R>,
}

/// Largest single record accepted in the legacy document.
const MAX_ELEMENT: usize = 1 << 20;

impl<R: Iterator<Item = io::Result<u8>>> Scanner<R> {
    /// The top-level object: records of its arrays to `on`; returns its `"format"`.
    fn document(
        &mut self,
        on: &mut dyn FnMut(&str, Value) -> std::result::Result<(), String>,
    ) -> std::result::Result<Option<u64>, String> {
        let mut format = None;
        self.expect(b'{')?;
        if self.peek_significant()? == Some(b'}') {
            self.next()?;
            return Ok(None);
        }
        loop {
            let key = match serde_json::from_slice::<Value>(&self.value()?) {
                Ok(Value::String(k)) => k,
                _ => return Err("not valid JSON (a key that is not a string)".into()),
            };
            self.expect(b':')?;
            match key.as_str() {
                "accounts" | "folders" if self.peek_significant()? == Some(b'[') => {
                    self.next()?;
                    if self.peek_significant()? == Some(b']') {
                        self.next()?;
                    } else {
                        loop {
                            let element: Value =
                                serde_json::from_slice(&self.value()?).map_err(|e| format!("not valid JSON ({e})"))?;
                            on(&key, element)?;
                            match self.significant()? {
                                b',' => {}
                                b']' => break,
                                _ => return Err("not valid JSON (an array not closed)".into()),
                            }
                        }
                    }
                }
                _ => {
                    let v: Value =
                        serde_json::from_slice(&self.value()?).map_err(|e| format!("not valid JSON ({e})"))?;
                    if key == "format" {
                        format = v.as_u64();
                    }
                }
            }
            match self.significant()? {
                b',' => {}
                b'}' => return Ok(format),
                _ => return Err("not valid JSON (an object not closed)".into()),
            }
        }
    }

    fn next(&mut self) -> std::result::Result<Option<u8>, String> {
        self.input.next().transpose().map_err(|e| crate::error::describe_io(&e))
    }

    /// The next byte that is not white space, left in the input.
    fn peek_significant(&mut self) -> std::result::Result<Option<u8>, String> {
        loop {
            match self.input.peek() {
                Some(Ok(b)) if b.is_ascii_whitespace() => {
                    self.input.next();
                }
                Some(Ok(b)) => return Ok(Some(*b)),
                Some(Err(_)) => return self.next(),
                None => return Ok(None),
            }
        }
    }

    /// The next byte that is not white space.
    fn significant(&mut self) -> std::result::Result<u8, String> {
        self.peek_significant()?;
        self.next()?.ok_or_else(|| "not valid JSON (cut short)".to_string())
    }

    fn expect(&mut self, want: u8) -> std::result::Result<(), String> {
        match self.significant()? {
            b if b == want => Ok(()),
            b => Err(format!("not valid JSON (expected {:?}, found {:?})", char::from(want), char::from(b))),
        }
    }

    /// The bytes of the next value (an object or array with everything in it, a string, or
    /// a bare number or word), for serde_json to parse.
    fn value(&mut self) -> std::result::Result<Vec<u8>, String> {
        let first = self.significant()?;
        let mut out = vec![first];
        let too_big = || format!("a record of more than {MAX_ELEMENT} bytes");
        match first {
            b'{' | b'[' => {
                let mut depth = 1usize;
                let mut in_string = false;
                let mut escaped = false;
                while depth > 0 {
                    let b = self.next()?.ok_or("not valid JSON (cut short)")?;
                    out.push(b);
                    if out.len() > MAX_ELEMENT {
                        return Err(too_big());
                    }
                    if in_string {
                        match (escaped, b) {
                            (true, _) => escaped = false,
                            (false, b'\\') => escaped = true,
                            (false, b'"') => in_string = false,
                            _ => {}
                        }
                    } else {
                        match b {
                            b'"' => in_string = true,
                            b'{' | b'[' => depth += 1,
                            b'}' | b']' => depth -= 1,
                            _ => {}
                        }
                    }
                }
            }
            b'"' => {
                let mut escaped = false;
                loop {
                    let b = self.next()?.ok_or("not valid JSON (cut short)")?;
                    out.push(b);
                    if out.len() > MAX_ELEMENT {
                        return Err(too_big());
                    }
                    match (escaped, b) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => break,
                        _ => {}
                    }
                }
            }
            _ => {
                while let Some(Ok(b)) = self.input.peek() {
                    if b.is_ascii_whitespace() || matches!(b, b',' | b'}' | b']') {
                        break;
                    }
                    out.push(*b);
                    self.input.next();
                    if out.len() > MAX_ELEMENT {
                        return Err(too_big());
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Tmp(std::path::PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("records-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("tmp")).unwrap();
        Tmp(p)
    }

    fn all(path: &Path) -> Result<(Vec<Value>, Option<Found>)> {
        let mut v = Vec::new();
        let found = read(path, &mut |_, r| {
            v.push(r);
            Ok(())
        })?;
        Ok((v, found))
    }

    #[test]
    fn appended_lines_are_read_back_and_a_torn_one_is_cut_off() {
        let t = tmp("append");
        let meta = Dir::open(&t.0).unwrap();
        let path = t.0.join(FILE);
        assert!(all(&path).unwrap().1.is_none());
        let mut log = Log::open(&meta, None).unwrap();
        log.append(&[json!({"a": 1}), json!({"b": 2})]).unwrap();
        log.sync().unwrap();
        // A crash in the middle of an append.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"c\":").unwrap();
        let (v, found) = all(&path).unwrap();
        assert_eq!(v, [json!({"a": 1}), json!({"b": 2})]);
        let mut log = Log::open(&meta, found).unwrap();
        log.append(&[json!({"d": 4})]).unwrap();
        assert_eq!(all(&path).unwrap().0, [json!({"a": 1}), json!({"b": 2}), json!({"d": 4})]);
        // A compaction replaces the whole.
        rewrite(&meta, &Arc::new(Dir::open(&t.0.join("tmp")).unwrap()), [json!({"e": 5})].into_iter()).unwrap();
        let (v, found) = all(&path).unwrap();
        assert_eq!((v, found.map(|f| f.lines)), (vec![json!({"e": 5})], Some(1)));
    }

    #[test]
    fn damage_is_named_with_its_line() {
        let t = tmp("damage");
        let path = t.0.join(FILE);
        std::fs::write(&path, "{\"smailarchiver-records\":2}\n{\"a\":1}\n{\"a\":\n{\"b\":2}\n").unwrap();
        let e = all(&path).unwrap_err().to_string();
        assert!(e.contains("line 3: not a record") && e.contains("move it away"), "{e}");
        std::fs::write(&path, "{\"smailarchiver-records\":9}\n").unwrap();
        assert!(all(&path).unwrap_err().to_string().contains("made by a newer version"));
        let e = read(&path, &mut |_, _| Err("refused".into()));
        assert!(e.is_err());
    }

    #[test]
    fn the_legacy_document_is_read_record_by_record() {
        let t = tmp("legacy");
        let path = t.0.join(LEGACY_FILE);
        let doc = json!({"format": 1, "accounts": [{"dir": "a", "server": "h:1", "user": "u"}],
                         "folders": [{"account": "a", "dir": "x]{\"", "mailbox": "M \\\" }"}, {"account": "a", "dir": "y"}],
                         "other": {"nested": [1, {"x": "]"}]}});
        for text in [serde_json::to_string_pretty(&doc).unwrap(), doc.to_string()] {
            std::fs::write(&path, text).unwrap();
            let mut got = Vec::new();
            assert!(read_legacy(&path, &mut |k, v| {
                got.push((k.to_string(), v));
                Ok(())
            })
            .unwrap());
            assert_eq!(got.len(), 3);
            assert_eq!(got[1], ("folders".to_string(), doc["folders"][0].clone()));
            assert_eq!(got[0].1, doc["accounts"][0]);
        }
        std::fs::write(&path, "{\"format\": 1, \"folders\": [{\"a\": 1}").unwrap();
        assert!(read_legacy(&path, &mut |_, _| Ok(())).is_err());
        std::fs::write(&path, "{\"format\": 3}").unwrap();
        assert!(read_legacy(&path, &mut |_, _| Ok(())).unwrap_err().to_string().contains("newer version"));
        assert!(!read_legacy(&t.0.join("none"), &mut |_, _| Ok(())).unwrap());
    }
}
