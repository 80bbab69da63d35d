//! Everything about talking to the IMAP server, in one place: where it is and how to reach
//! it ([`connect`]: TCP, STARTTLS, TLS with [`tls`]'s certificate check), how to log in
//! ([`auth`]), reading its answers within fixed bounds ([`wire`]), and the [`Session`]
//! that owns one connection, what is in flight on it, and reconnects.
//!
//! Name resolution and reading the trust settings happen once, before the process
//! confines itself; connecting then only needs the network, so reconnects work inside
//! the sandbox.

pub mod auth;
pub mod connect;
pub mod error;
pub mod session;
pub mod tls;
pub mod wire;

pub use auth::Auth;
pub use connect::{is_timeout, resolve, ServerSpec, DEFAULT_TIMEOUT, IMAPS_PORT, IMAP_PORT};
pub use error::ImapError;
pub use session::{connect, Examined, FolderStatus, Found, Listed, NewMail, Removal, Removed, Sampled, Session, Then};
pub use tls::{Stream, Trust};

/// An IMAP sequence set for sorted UIDs, with runs folded into ranges (`1:5,9,12:13`).
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_fold_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }
}
