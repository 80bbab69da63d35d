//! SEARCH answers too long for one line, which the session's reader parses as they stream
//! in (`imap::wire`): the input, repeated past the 64 KiB line cap behind `* SEARCH`,
//! gives UIDs or an error, never a panic, never more UIDs than the cap or than numbers
//! sent.
#![no_main]

use std::io::{BufReader, Read};

use libfuzzer_sys::fuzz_target;
use smailarchiver::imap::wire::{read_response, Data, Response, MAX_LINE, MAX_UIDS};

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // How the line ends is the fuzzer's choice too: the last byte says.
    let (body, end) = data.split_at(data.len() - 1);
    let mut line = b"* SEARCH ".to_vec();
    while line.len() <= MAX_LINE && !body.is_empty() {
        line.extend_from_slice(body);
    }
    if end[0] & 1 == 1 {
        line.extend_from_slice(b"\r\n");
    }
    let sent = line.len();
    let mut r = BufReader::with_capacity(97, line.as_slice().chain(&b"a1 OK done\r\n"[..]));
    if let Ok(Response::Data(Data::Search(uids))) = read_response(&mut r, 1 << 16) {
        assert!(uids.len() <= MAX_UIDS && uids.len() <= sent / 2 + 1, "more UIDs than sent or allowed");
    }
});
