//! How a server can remove single messages, if it can: `UID STORE \Deleted` and `UID
//! EXPUNGE` where it offers UIDPLUS; `UID MOVE` to its Trash folder (SPECIAL-USE `\Trash`)
//! on Gmail, where `\Deleted` in All Mail only archives, and on servers with MOVE but
//! without UIDPLUS. A server with neither cannot remove only the messages meant (a plain
//! EXPUNGE would take what the user marked `\Deleted` too): prune is refused there.

use crate::imap::wire::ListEntry;
use crate::imap::Removal;

/// What the server offers, as far as removing goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offers {
    /// UIDPLUS (RFC 4315): `UID EXPUNGE`.
    pub uidplus: bool,
    /// MOVE (RFC 6851).
    pub moves: bool,
    /// Gmail (`X-GM-EXT-1`).
    pub gmail: bool,
}

/// Why a server cannot prune.
pub const CANNOT: &str = "the server offers neither UIDPLUS (UID EXPUNGE of single messages) nor MOVE to a Trash \
                          folder: it cannot remove only the messages archived, so nothing is removed";

/// The Trash folder among `entries` (SPECIAL-USE `\Trash`), by wire name.
pub fn trash_of(entries: &[ListEntry]) -> Option<String> {
    entries.iter().find(|e| e.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\Trash"))).map(|e| e.wire.clone())
}

/// How messages of the folder `wire` are removed on a server that `offers` that, with the
/// Trash folder `trash` where it has one; `None` when they cannot be (see [`CANNOT`]).
/// The Trash folder's own messages go with UID EXPUNGE (moving them to itself would keep
/// them).
pub fn removal(offers: Offers, trash: Option<&str>, wire: &str) -> Option<Removal> {
    let to_trash = trash.filter(|t| *t != wire && offers.moves).map(|t| Removal::MoveTo(t.to_string()));
    if offers.gmail {
        return to_trash.or(offers.uidplus.then_some(Removal::Expunge).filter(|_| trash == Some(wire)));
    }
    if offers.uidplus {
        return Some(Removal::Expunge);
    }
    to_trash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_way_of_removing_follows_the_server() {
        let all = Offers { uidplus: true, moves: true, gmail: false };
        assert_eq!(removal(all, Some("Trash"), "INBOX"), Some(Removal::Expunge), "UIDPLUS first: the quota freed");
        let only_move = Offers { uidplus: false, ..all };
        assert_eq!(removal(only_move, Some("Trash"), "INBOX"), Some(Removal::MoveTo("Trash".into())));
        assert_eq!(removal(only_move, None, "INBOX"), None, "MOVE but nowhere to move to");
        assert_eq!(removal(only_move, Some("Trash"), "Trash"), None, "Trash to Trash removes nothing");
        assert_eq!(removal(Offers::default(), Some("Trash"), "INBOX"), None);
        let gmail = Offers { gmail: true, ..all };
        let trash = "[Gmail]/Trash";
        assert_eq!(removal(gmail, Some(trash), "[Gmail]/All Mail"), Some(Removal::MoveTo(trash.into())));
        assert_eq!(removal(gmail, Some(trash), trash), Some(Removal::Expunge), "out of Gmail's Trash for good");
        assert_eq!(removal(gmail, None, "INBOX"), None, "never \\Deleted in Gmail's folders: it only archives");
    }
}
