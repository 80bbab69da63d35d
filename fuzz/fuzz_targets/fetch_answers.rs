//! Arbitrary server answers to a body `UID FETCH`, read by the backup's own reader: an
//! error or messages, never a panic, and never more than the literal limit held.
#![no_main]

use std::io::BufReader;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use smailarchiver::backup::fetch::read_answers;

fuzz_target!(|data: &[u8]| {
    let mut r = BufReader::with_capacity(97, data);
    if let Ok(answers) = read_answers(&mut r, "S1", 1 << 16, Duration::from_secs(1)) {
        for a in answers {
            assert!(a.body.map_or(0, |b| b.len()) <= 1 << 16, "more held than the limits allow");
        }
    }
});
