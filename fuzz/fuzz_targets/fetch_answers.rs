//! Arbitrary server answers to a body `UID FETCH`, read by the session's reader behind a
//! FETCH head: an error or messages, never a panic, and never more than the literal limit
//! held.
#![no_main]

use std::io::{BufReader, Read};

use libfuzzer_sys::fuzz_target;
use smailarchiver::imap::wire::{read_response, Data, Response};

fuzz_target!(|data: &[u8]| {
    let input = b"* 1 FETCH (UID 1 BODY[] ".chain(data);
    let mut r = BufReader::with_capacity(97, input);
    for _ in 0..1000 {
        match read_response(&mut r, 1 << 16) {
            Ok(Response::Data(Data::Fetch(f))) => {
                assert!(f.body.map_or(0, |b| b.len()) <= 1 << 16, "more held than the limits allow");
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
});
