//! The integration tests, one binary: one module per suite (named after what it proves,
//! docs/DEVELOPMENT.md lists them) and `support`, the helpers they share (running the
//! binary, temporary directories, the compatibility vectors, the scripted IMAP server, the
//! fault proxy, the private Dovecot, Cyrus and Courier servers).
//!
//! `cargo test --test it NAME::` runs one suite (a filter is a substring of
//! `module::test`: `backup::` also matches `servers_backup::`).

#![deny(clippy::undocumented_unsafe_blocks)]

mod support;

mod archive_paths;
mod backup;
mod claims;
mod cli;
mod cross_smoke;
mod dovecot_harness;
mod dry_run_since;
mod faults;
mod generated_docs;
mod gmail;
mod hardening;
mod install_docs;
mod interrupt;
mod journal_damage;
mod layout;
mod left_server;
mod local_limits;
mod mbox_dovecot;
mod mbox_readers;
mod memory;
mod metadata;
mod microsoft365;
mod oauth2;
mod original_compat;
mod packaging;
mod prune;
mod records;
mod report;
mod roundtrip;
mod sandbox;
mod sandbox_cli;
mod search;
mod server_connect;
mod servers_backup;
mod servers_harness;
mod servers_maildir;
mod servers_quirks;
mod servers_rebase;
mod token_refresh;
mod try_server;
mod two_runs;
mod upload;
mod upload_cross;
mod upload_link;
mod upload_servers;
mod vectors;
mod wizard;
mod wrong_key;
