//! The commands, one file per family: what each sends, how its answers are read and
//! what it hands back. Each file adds methods to [`Session`], which owns the connection.
//!
//! A family's file sends a tagged command and reads its answer through
//! [`Session::run`]: it hands over the live connection ([`Link`], connecting first if
//! needed) and, once the closure returns, does the session's bookkeeping (a failure that
//! breaks the stream drops the connection, a throttled or garbled one is noted for the
//! reconnect). Inside, [`Link::send`] writes commands (pipelined: several in one write)
//! and returns their tags; [`Link::finish`] reads the answers up to a tag's tagged
//! completion, handing each untagged answer ([`Data`](crate::imap::wire::Data)) to a
//! closure, and returns the completion's text, or `Err(ImapError::Refused)` for a NO or
//! BAD (the connection stays usable). For example:
//!
//! ```text
//! impl Session {
//!     /// Creates the mailbox `wire`.
//!     pub fn create(&mut self, wire: &str) -> Result<(), ImapError> {
//!         self.run(|link| {
//!             let tags = link.send(&[format!("CREATE {}", quoted(wire)?)])?;
//!             link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |_data| Ok(()))?;
//!             Ok(())
//!         })
//!     }
//! }
//! ```
//!
//! A folder that must be opened read-write (`SELECT`) is left in the same round trip
//! (see [`store`]): the next command may be an APPEND, which some servers refuse into an
//! open mailbox. Commands whose answers are read later (a fetch while the previous
//! message is stored, uploads) keep their tags on the link (`Link::fetches`,
//! `Link::appends`); see [`fetch`] and [`append`].

mod append;
mod fetch;
mod gmail;
mod mailboxes;
mod prune;
mod select;
mod store;

pub use append::Appending;
pub use fetch::{FlagsAsk, Holding, NewMail, Sampled, HEADER_PREFIX};
pub use gmail::GmailIds;
pub use mailboxes::{ByName, FolderStatus, Listed, Statuses};
pub use prune::{OnArrival, Removal, Removed};
pub use select::{Examined, Found, Then};

use super::error::ImapError;
#[cfg(doc)]
use super::{link::Link, session::Session};

/// A mailbox name as a quoted string; a name that cannot be sent fails its command only.
pub(super) fn quoted(wire: &str) -> std::result::Result<String, ImapError> {
    crate::mailbox_name::quote(wire).map_err(|e| ImapError::Refused(e.to_string()))
}

/// Sizes in UID order, each UID once, only those `wanted` (a server may send answers for
/// UIDs never asked for).
pub(super) fn sorted_sizes(mut sizes: Vec<(u32, u32)>, wanted: impl Fn(u32) -> bool) -> Vec<(u32, u32)> {
    sizes.retain(|&(u, _)| wanted(u));
    sizes.sort_unstable();
    sizes.dedup_by_key(|(u, _)| *u);
    sizes
}

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
    fn sizes_keep_only_what_was_asked() {
        let got = sorted_sizes(vec![(9, 1), (3, 2), (3, 2), (100, 5)], |u| u < 50);
        assert_eq!(got, [(3, 2), (9, 1)]);
    }

    #[test]
    fn sets_fold_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }
}
