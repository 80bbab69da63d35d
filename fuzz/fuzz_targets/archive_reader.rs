//! Arbitrary bytes as an archive file, in every suffix form: decoding may fail, never panic,
//! and never return plaintext from an encrypted file whose MAC is wrong.
#![no_main]

use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use smailarchiver::codec::{self, fromline, Form};
use smailarchiver::keys;

fuzz_target!(|data: &[u8]| {
    // Fixed keys (all zero bytes): inputs that pass the MAC were made with them.
    let key_text = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    let k = keys::from_texts(std::path::Path::new("fuzz.keys"), key_text, None, None).expect("fixed keys");
    for (compressed, encrypted) in [(false, false), (true, false), (false, true), (true, true)] {
        let form = Form { compressed, encrypted };
        let Ok(r) = codec::open(Cursor::new(data.to_vec()), form, Some(&k)) else { continue };
        if let Ok((_, mut msg)) = fromline::split_stored(r) {
            let mut sink = Vec::new();
            let _ = msg.read_to_end(&mut sink);
        }
    }
});
