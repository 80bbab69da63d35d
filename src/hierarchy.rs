//! How servers arrange folders, and a folder's name carried from one server to another.
//!
//! A server's personal folders live under a namespace (NAMESPACE, RFC 2342): a prefix
//! (`""` on Dovecot and on Cyrus with `altnamespace`, `INBOX.` on Courier and on Cyrus in
//! its classic mode) and a hierarchy separator (`/` or `.`). `Archive/2023` on one server
//! is `INBOX.Archive.2023` on the other: the same levels, `Archive` and `2023`. A name is
//! carried across by its levels: the source's prefix taken off, split at the source's
//! separator, joined with the target's, the target's prefix put on. Wire names are
//! modified UTF-7, whose encoded runs never hold `/` or `.`, so splitting them is safe.

use std::fmt;

/// A server's personal namespace: where a user's own folders are and how their levels
/// are separated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hierarchy {
    /// What every personal folder's name starts with (`INBOX.`), or nothing.
    pub prefix: String,
    /// The separator between levels; `None` for a flat server.
    pub separator: Option<char>,
}

/// Why a folder's name cannot be given to the target server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unholdable(String);

impl fmt::Display for Unholdable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A folder's name where it came from: its wire name and the hierarchy it was in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceName {
    /// The wire name on the server it was backed up from.
    pub wire: String,
    /// That server's hierarchy, as recorded or inferred ([`infer`]).
    pub hierarchy: Hierarchy,
}

impl SourceName {
    /// The name's levels below the personal namespace: `INBOX.Archive.2023` on a server
    /// with the `INBOX.` prefix is `[Archive, 2023]`; INBOX is `[INBOX]` everywhere.
    pub fn levels(&self) -> Vec<String> {
        let Hierarchy { prefix, separator } = &self.hierarchy;
        let wire = self.wire.as_str();
        if wire.eq_ignore_ascii_case("INBOX") {
            return vec!["INBOX".to_string()];
        }
        let below = match strip_prefix_ci(wire, prefix) {
            Some(rest) if !prefix.is_empty() && !rest.is_empty() => rest,
            _ => wire,
        };
        match separator {
            Some(sep) => below.split(*sep).map(str::to_string).collect(),
            None => vec![below.to_string()],
        }
    }
}

/// `text` without `prefix` at its start (ASCII case ignored: `inbox.` is `INBOX.`).
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// The wire name on a server of hierarchy `target` for a folder of `levels` (from
/// [`SourceName::levels`], the last level perhaps with a suffix such as
/// ` (UIDVALIDITY N)`). A level that holds the target's separator, an empty level, or
/// levels for a flat server cannot be held there.
pub fn target_wire(levels: &[String], target: &Hierarchy) -> Result<String, Unholdable> {
    if levels.len() == 1 && levels[0].eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".to_string());
    }
    if levels.is_empty() || levels.iter().any(String::is_empty) {
        return Err(Unholdable("an empty level in the name (a separator at its start or end, or two in a row)".into()));
    }
    let joined = match target.separator {
        Some(sep) => {
            if let Some(level) = levels.iter().find(|l| l.contains(sep)) {
                return Err(Unholdable(format!(
                    "the level {:?} holds {sep:?}, the target server's hierarchy separator",
                    crate::mailbox_name::Mailbox::from_wire(level).name()
                )));
            }
            levels.join(&sep.to_string())
        }
        None if levels.len() == 1 => levels[0].clone(),
        None => return Err(Unholdable("the target server has no folder hierarchy (no separator)".into())),
    };
    // INBOX's children on a `/` server (`INBOX/Sub`) are the prefix's children on an
    // `INBOX.` server (`INBOX.Sub`): the prefix is not doubled.
    let under_inbox = levels.len() > 1
        && levels[0].eq_ignore_ascii_case("INBOX")
        && target.separator.is_some_and(|sep| target.prefix.eq_ignore_ascii_case(&format!("INBOX{sep}")));
    if under_inbox || target.prefix.is_empty() {
        return Ok(joined);
    }
    Ok(format!("{}{joined}", target.prefix))
}

/// The hierarchy of a server whose folders were recorded without it (archives of the
/// original program and of versions before 0.7), guessed from their wire names (or
/// directory names) with `known`, a separator recorded for some of them:
/// - every folder but INBOX named `INBOX` and the separator (`.` when none is known):
///   that separator under the `INBOX.` prefix (Courier, Cyrus in its classic mode);
/// - else a separator known, or `/` when a name holds one, or `.` when a name holds one
///   (a Dovecot with Maildir++'s default), with no prefix;
/// - else no separator (every name is one level).
pub fn infer<'a>(names: impl IntoIterator<Item = &'a str>, known: Option<char>) -> Hierarchy {
    let names: Vec<&str> = names.into_iter().filter(|n| !n.eq_ignore_ascii_case("INBOX")).collect();
    let sep = known.unwrap_or('.');
    let inbox_prefix = format!("INBOX{sep}");
    if !names.is_empty() && names.iter().all(|n| strip_prefix_ci(n, &inbox_prefix).is_some_and(|r| !r.is_empty())) {
        return Hierarchy { prefix: inbox_prefix, separator: Some(sep) };
    }
    let separator = known.or_else(|| {
        if names.iter().any(|n| n.contains('/')) {
            Some('/')
        } else if names.iter().any(|n| n.contains('.')) {
            Some('.')
        } else {
            None
        }
    });
    Hierarchy { prefix: String::new(), separator }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(prefix: &str, sep: char) -> Hierarchy {
        Hierarchy { prefix: prefix.into(), separator: Some(sep) }
    }

    fn carry(wire: &str, from: &Hierarchy, to: &Hierarchy) -> Result<String, Unholdable> {
        target_wire(&SourceName { wire: wire.into(), hierarchy: from.clone() }.levels(), to)
    }

    #[test]
    fn names_cross_between_slash_and_dot_servers() {
        let (slash, courier) = (h("", '/'), h("INBOX.", '.'));
        assert_eq!(carry("Archive/2023", &slash, &courier).unwrap(), "INBOX.Archive.2023");
        assert_eq!(carry("INBOX.Archive.2023", &courier, &slash).unwrap(), "Archive/2023");
        assert_eq!(carry("INBOX", &courier, &slash).unwrap(), "INBOX");
        assert_eq!(carry("inbox", &slash, &courier).unwrap(), "INBOX");
        assert_eq!(carry("Re&AOc-us", &slash, &courier).unwrap(), "INBOX.Re&AOc-us");
        assert_eq!(carry("INBOX/Sub", &slash, &courier).unwrap(), "INBOX.Sub", "no INBOX.INBOX.Sub");
        assert_eq!(carry("Sent Items", &courier, &slash).unwrap(), "Sent Items", "outside the prefix: as is");
        // Same hierarchy: unchanged.
        assert_eq!(carry("INBOX.a.b", &courier, &courier).unwrap(), "INBOX.a.b");
        assert_eq!(carry("a/b/c", &slash, &slash).unwrap(), "a/b/c");
        // Cyrus `.` without prefix (a Dovecot with Maildir++'s default) to Courier.
        assert_eq!(carry("a.b", &h("", '.'), &courier).unwrap(), "INBOX.a.b");
    }

    #[test]
    fn names_a_target_cannot_hold_are_refused() {
        let (slash, courier) = (h("", '/'), h("INBOX.", '.'));
        let e = carry("R.D/2023", &slash, &courier).unwrap_err();
        assert!(e.to_string().contains("\"R.D\""), "{e}");
        assert!(carry("a//b", &slash, &courier).is_err());
        let flat = Hierarchy { prefix: String::new(), separator: None };
        assert!(carry("a/b", &slash, &flat).is_err());
        assert_eq!(carry("a", &slash, &flat).unwrap(), "a");
    }

    #[test]
    fn old_archives_get_an_inferred_hierarchy() {
        assert_eq!(infer(["INBOX", "INBOX.Sent", "INBOX.a.b"], None), h("INBOX.", '.'));
        assert_eq!(infer(["INBOX", "Sent", "Archive/2023"], None), h("", '/'));
        assert_eq!(infer(["INBOX", "Sent", "Archive.2023"], None), h("", '.'));
        assert_eq!(infer(["INBOX", "Sent"], None), Hierarchy { prefix: String::new(), separator: None });
        assert_eq!(infer(["INBOX", "INBOX/x"], Some('/')), h("INBOX/", '/'));
        assert_eq!(infer(["INBOX", "INBOX.x", "Sent"], None), h("", '.'));
    }
}
