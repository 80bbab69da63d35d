//! Everything about talking to the IMAP server, in one place: where it is and how to reach
//! it ([`connect`]: TCP, STARTTLS, TLS with [`tls`]'s certificate check), how to log in
//! ([`auth`]), reading its answers within fixed bounds ([`wire`]), and the [`Session`]
//! that owns one connection, what is in flight on it, and reconnects.
//!
//! Name resolution and reading the trust settings happen once, before the process
//! confines itself; connecting then only needs the network, so reconnects work inside
//! the sandbox.

pub mod auth;
pub mod clock;
pub mod commands;
pub mod connect;
pub mod error;
mod link;
pub mod reconnect;
pub mod session;
pub mod tls;
pub mod wire;

pub use auth::Auth;
pub use commands::{
    uid_set, Appending, ByName, Examined, FlagsAsk, FolderStatus, Found, GmailIds, Holding, Listed, NewMail, Removal,
    Removed, Sampled, Statuses, Then, HEADER_PREFIX,
};
pub use connect::{is_timeout, resolve, ServerSpec, DEFAULT_TIMEOUT, IMAPS_PORT, IMAP_PORT};
pub use error::ImapError;
pub use session::{connect, Session};
pub use tls::{Stream, Trust};
