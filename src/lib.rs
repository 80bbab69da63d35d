//! smailarchiver: back up IMAP mailboxes one file per message, compressed and encrypted,
//! in the format of SMail Archiver 0.5, through fixed-size buffers.

pub mod account;
pub mod app;
pub mod archive;
pub mod atomic;
pub mod backends;
pub mod backup;
pub mod bounded;
pub mod codec;
pub mod config;
pub mod credential_helper;
pub mod date;
pub mod dir;
pub mod error;
pub mod flags;
pub mod imap;
pub mod interrupt;
pub mod keys;
pub mod listing;
pub mod lock;
pub mod mailbox_name;
pub mod mbox;
pub mod metadata;
pub mod os;
pub mod printable;
pub mod progress;
pub mod readahead;
pub mod registry;
pub mod report;
pub mod restore;
pub mod run_report;
pub mod sandbox;
pub mod secret;
pub mod upload;
pub mod verify;
pub mod wizard;
