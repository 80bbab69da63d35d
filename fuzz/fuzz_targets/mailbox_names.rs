//! Mailbox names as a server may send them: modified UTF-7 decoding is strict and
//! canonical (what decodes encodes back to the same text), wildcard
//! matching never panic, and directory names, canonical or fallback, are never empty,
//! `.`, `..` or the tool's own, hold no `/`, fit in a file name, and a fallback never
//! equals a canonical name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smailarchiver::archive::layout::naming;
use smailarchiver::mailbox_name as mn;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let wire: &str = &text;
    if let Ok(name) = mn::decode_utf7(&wire) {
        assert_eq!(mn::encode_utf7(&name), wire, "decode is not canonical");
    }
    let canonical = naming::canonical_dir(&wire);
    if let Some(dir) = &canonical {
        assert_usable(dir);
        assert!(dir.len() <= naming::MAX_DIR_NAME && !dir.starts_with(naming::RESERVED_PREFIX), "{dir:?}");
    }
    for n in [1, 2] {
        let fallback = naming::fallback_dir(&wire, &text, n);
        assert_usable(&fallback);
        assert!(!fallback.starts_with(naming::RESERVED_PREFIX), "{fallback:?}");
        assert_ne!(canonical.as_ref(), Some(&fallback));
    }
    let encoded = mn::encode_utf7(&text);
    assert_eq!(mn::decode_utf7(&encoded).as_deref(), Ok(&*text), "round trip");
    let mid = text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i);
    let (pattern, name) = text.split_at(mid);
    let _ = mn::wildcard_match(pattern, name, Some('/'));
    let _ = mn::quote(&encoded);
});

/// A name `mkdir` takes as one new directory entry, inside its parent.
fn assert_usable(dir: &str) {
    assert!(!dir.is_empty() && dir != "." && dir != ".." && !dir.contains(['/', '\0']), "{dir:?}");
    assert!(dir.len() <= 255, "{} bytes", dir.len());
}
