//! Arbitrary bytes as the JSON configuration: a clear error or accounts, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smailarchiver::config;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = config::parse(data, std::path::Path::new("/archive")) {
        for a in &c.accounts {
            let _ = a.validate();
            let _ = a.label();
        }
    }
});
