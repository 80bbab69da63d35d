//! smailarchiver: back up IMAP mailboxes one file per message, compressed and encrypted,
//! in the format of SMail Archiver 0.5, through fixed-size buffers.

// Every unsafe block says why it is sound; every public item says what it is.
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod account;
pub mod archive;
pub mod backends;
pub mod backup;
pub mod bounded;
pub mod cli;
pub mod codec;
pub mod credential_helper;
pub mod date;
pub mod encoded_words;
pub mod error;
pub mod events;
pub mod exit;
pub mod hierarchy;
pub mod imap;
pub mod interrupt;
pub mod janitor;
pub mod keys;
pub mod listing;
pub mod mailbox_name;
pub mod mailstore;
pub mod mbox;
pub mod nearest;
pub mod oauth2;
pub mod os;
pub mod printable;
pub mod probe;
pub mod prune;
pub mod report;
pub mod restore;
pub mod sandbox;
pub mod search;
pub mod secret;
pub mod upload;
pub mod verify;
