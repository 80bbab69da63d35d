//! Key files and `.sha` files with arbitrary contents, with and without a password: never
//! a panic, and keys only where the formats allow them, as checked here apart from the
//! loader: the key file is base64 of exactly 64 bytes (surrounding white space allowed);
//! without a password there is no `.sha` file; with one, the `.sha` file is base64 of
//! SHA-256 of those 64 bytes and the password's UTF-8. Every refusal is a one-line error.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use smailarchiver::keys;
use smailarchiver::secret::Secret;

fuzz_target!(|data: &[u8]| {
    // Split the input into key text, .sha text and password at the first two 0xff bytes.
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let key_text = parts.next().unwrap_or_default();
    let sha_text = parts.next();
    let password = parts.next().map(|p| String::from_utf8_lossy(p).into_owned());
    let path = std::path::Path::new("fuzz.keys");

    let raw = STANDARD.decode(key_text.trim_ascii()).ok().filter(|r| r.len() == 64);
    let expected = match (&raw, sha_text, &password) {
        (None, _, _) => false,
        (Some(_), None, None) => true,
        (Some(_), Some(_), None) | (Some(_), None, Some(_)) => false,
        (Some(r), Some(sha), Some(pw)) => {
            let check = Sha256::new().chain_update(r).chain_update(pw.as_bytes()).finalize();
            STANDARD.decode(sha.trim_ascii()).is_ok_and(|s| s == check.as_slice())
        }
    };
    let secret = password.map(Secret::new);
    for (result, expected) in [
        (keys::from_texts(path, key_text, sha_text, secret.as_ref()), expected),
        (keys::from_texts(path, key_text, None, None), raw.is_some()),
    ] {
        match result {
            Ok(_) => assert!(expected, "keys from texts the formats do not allow"),
            Err(e) => {
                assert!(!expected, "refused: {e}");
                assert!(!e.message().is_empty() && !e.message().contains('\n'), "{e:?}");
            }
        }
    }
});
