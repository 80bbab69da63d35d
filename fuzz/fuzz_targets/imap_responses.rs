//! Arbitrary server answers, read one after another by the session's bounded reader
//! (`imap::wire`): never a panic; no literal beyond the limit given and no body longer than
//! everything the server sent; no more UIDs than the cap; a listed name that decodes from
//! modified UTF-7 is canonical (encodes back to what was sent), and the directory made of
//! it is never empty, `.` or `..` and holds no `/`.
#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use smailarchiver::imap::wire::{read_response, Data, Response, MAX_UIDS};
use smailarchiver::archive::layout::naming;
use smailarchiver::mailbox_name as mn;

fuzz_target!(|data: &[u8]| {
    let mut r = BufReader::with_capacity(97, data);
    for _ in 0..10_000 {
        let Ok(response) = read_response(&mut r, 1 << 16) else { return };
        let Response::Data(d) = response else { continue };
        match d {
            Data::Fetch(f) => {
                let len = f.body.map_or(0, |b| b.len());
                assert!(len <= 1 << 16 && len <= data.len(), "a body longer than allowed or sent");
            }
            Data::Search(uids) => assert!(uids.len() <= MAX_UIDS && uids.len() <= data.len()),
            Data::List(entry) => {
                let wire = entry.wire;
                if let Ok(name) = mn::decode_utf7(&wire) {
                    assert_eq!(mn::encode_utf7(&name), wire, "decode is not canonical");
                }
                if let Some(dir) = naming::canonical_dir(&wire) {
                    assert!(!dir.is_empty() && dir != "." && dir != ".." && !dir.contains('/'), "{dir:?}");
                }
            }
            _ => {}
        }
    }
});
