//! The connection to the IMAP server: TCP with timeouts, TLS (implicit or STARTTLS) with
//! a certificate check the user can widen to a self-signed server (`--ca-file`,
//! `--pin-sha256`) but never switch off, and the login.
//!
//! Name resolution and reading the trust settings happen once, before the process
//! confines itself; [`connect`] then only needs the network, so reconnects work inside
//! the sandbox.

pub mod login;
pub mod tls;

pub use login::{connect, is_timeout, resolve, Auth, ServerSpec, Session, DEFAULT_TIMEOUT, IMAPS_PORT, IMAP_PORT};
pub use tls::{Shared, Stream, Trust};
