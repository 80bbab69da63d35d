//! Arbitrary server answers to a body `UID FETCH`, read by the session's reader behind a
//! FETCH head, half of the runs with a body sink as a message fetched alone uses: an error
//! or messages, never a panic, never more than the literal limit held, never more than the
//! sink's limit passed to it, and one body at most.
#![no_main]

use std::io::{BufReader, Read};

use libfuzzer_sys::fuzz_target;
use smailarchiver::imap::wire::{read_response_into, BodySink, Data, Response};

fuzz_target!(|data: &[u8]| {
    let streaming = data.first().is_some_and(|b| b & 1 == 1);
    let input = b"* 1 FETCH (UID 1 BODY[] ".chain(data);
    let mut r = BufReader::with_capacity(97, input);
    let mut got = 0u64;
    let mut piece = |d: &[u8]| {
        got += d.len() as u64;
        Ok(())
    };
    let mut sink = BodySink { uid: 1, max: 1 << 17, drain: 1 << 18, over: None, taken: false, piece: &mut piece };
    for _ in 0..1000 {
        let res = read_response_into(&mut r, 1 << 16, streaming.then_some(&mut sink));
        match res {
            Ok(Response::Data(Data::Fetch(f))) => {
                assert!(f.body.map_or(0, |b| b.len()) <= 1 << 16, "more held than the limits allow");
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(got <= 1 << 17, "more passed on than the sink allows");
});
