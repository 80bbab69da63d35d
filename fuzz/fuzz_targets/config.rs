//! Arbitrary bytes as the JSON configuration: never a panic; either a configuration error
//! (exit code 2, a non-empty message) or at least one account, whose own check gives the
//! same kind of error or passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smailarchiver::cli::config;

fuzz_target!(|data: &[u8]| {
    let clear = |e: &smailarchiver::error::Error| {
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(!e.message().trim().is_empty(), "{e:?}");
    };
    match config::parse(data, std::path::Path::new("/archive")) {
        Ok(c) => {
            assert!(!c.accounts.is_empty(), "a configuration without accounts");
            for a in &c.accounts {
                if let Err(e) = a.validate() {
                    clear(&e);
                }
                assert!(a.label().contains('@'));
            }
        }
        Err(e) => clear(&e),
    }
});
