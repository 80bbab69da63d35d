//! Key files and `.sha` files with arbitrary contents, with and without a password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smailarchiver::keys;
use smailarchiver::secret::Secret;

fuzz_target!(|data: &[u8]| {
    // Split the input into key text, .sha text and password at the first two 0xff bytes.
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let key_text = parts.next().unwrap_or_default();
    let sha_text = parts.next();
    let password = parts.next().map(|p| Secret::new(String::from_utf8_lossy(p).into_owned()));
    let path = std::path::Path::new("fuzz.keys");
    let _ = keys::from_texts(path, key_text, sha_text, password.as_ref());
    let _ = keys::from_texts(path, key_text, None, None);
});
