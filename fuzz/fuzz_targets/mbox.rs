//! Message bytes through the From-line and mbox code: the stored From-line is one line,
//! the separator is a valid `From ` line, and mboxrd quoting undoes exactly.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use smailarchiver::mbox;

fuzz_target!(|data: &[u8]| {
    let stored = mbox::stored_from_line(data);
    assert!(stored.starts_with(b"From ") && stored.ends_with(b"\n"));
    assert_eq!(stored.iter().filter(|&&b| b == b'\n').count(), 1);
    let sep = mbox::separator_line(data, 0);
    assert!(sep.starts_with(b"From ") && sep.ends_with(b"\n"));
    assert_eq!(sep.iter().filter(|&&b| b == b'\n').count(), 1);
    let mut w = mbox::MboxrdWriter::new(Vec::new());
    for piece in data.chunks(7) {
        w.write_all(piece).expect("Vec write");
    }
    let quoted = w.finish().expect("finish");
    assert_eq!(mbox::unquote_mboxrd(&quoted), data);
});
