//! Mailbox names as a server may send them: modified UTF-7 decoding is strict and
//! canonical (what decodes encodes back to the same text), unescaping and wildcard
//! matching never panic, and directory names are never `.`, `..` or empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smailarchiver::mailbox_name as mn;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let wire = mn::unescape_quoted(&text);
    if let Ok(name) = mn::decode_utf7(&wire) {
        assert_eq!(mn::encode_utf7(&name), wire, "decode is not canonical");
        if let Ok(dir) = mn::folder_dir_name(&name) {
            assert!(!dir.is_empty() && dir != "." && dir != ".." && !dir.contains('/'));
        }
    }
    let encoded = mn::encode_utf7(&text);
    assert_eq!(mn::decode_utf7(&encoded).as_deref(), Ok(&*text), "round trip");
    let mid = text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i);
    let (pattern, name) = text.split_at(mid);
    let _ = mn::wildcard_match(pattern, name, Some('/'));
    let _ = mn::quote(&encoded);
});
