//! Arbitrary server answers to the commands a backup sends (EXAMINE, UID SEARCH, UID
//! FETCH sizes and bodies, LIST), then the backup's own handling of what the crate
//! parsed: never a panic; no body longer than everything the server sent; a name that
//! decodes from modified UTF-7 is canonical (encodes back to what was sent), and the
//! directory made of a listed name is never empty, `.` or `..` and holds no `/`.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use smailarchiver::mailbox_name as mn;

/// A stream that answers with the fuzz input and swallows what is sent.
struct Script {
    input: Vec<u8>,
    pos: usize,
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.input.len() - self.pos).min(97);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = b"* OK ready\r\na1 OK logged in\r\n".to_vec();
    input.extend_from_slice(data);
    let client = imap::Client::new(Script { input, pos: 0 });
    let Ok(mut session) = client.login("u", "p").map_err(|e| e.0) else { return };
    if let Ok(mb) = session.examine("INBOX") {
        let _ = mb.uid_validity;
    }
    if let Ok(uids) = session.uid_search("ALL") {
        let _ = uids.len();
    }
    if let Ok(fetches) = session.uid_fetch("1:*", "(UID RFC822.SIZE)") {
        for f in fetches.iter() {
            let _ = (f.uid, f.size);
        }
    }
    if let Ok(fetches) = session.uid_fetch("1:*", "(UID BODY.PEEK[])") {
        for f in fetches.iter() {
            let _ = f.uid;
            assert!(f.body().map_or(0, <[u8]>::len) <= data.len(), "a body longer than the answers");
        }
    }
    if let Ok(names) = session.list(Some(""), Some("*")) {
        for n in names.iter() {
            let wire = mn::unescape_quoted(n.name());
            if let Ok(name) = mn::decode_utf7(&wire) {
                assert_eq!(mn::encode_utf7(&name), wire, "decode is not canonical");
            }
            if let Some(dir) = mn::canonical_dir(&wire) {
                assert!(!dir.is_empty() && dir != "." && dir != ".." && !dir.contains('/'), "{dir:?}");
            }
            let _ = n.delimiter();
        }
    }
});
