//! The folders: LIST (with LIST-STATUS where offered), STATUS, NAMESPACE and CREATE.

use std::collections::HashMap;

use super::quoted;
use crate::hierarchy::Hierarchy;
use crate::imap::error::ImapError;
use crate::imap::link::Link;
use crate::imap::session::Session;
use crate::imap::wire::{Data, ListEntry, MAX_SMALL_LITERAL};

/// Folders one LIST may name.
const MAX_FOLDERS: usize = 100_000;

/// A folder's state as STATUS (or LIST-STATUS) reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderStatus {
    /// UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// The UID the next message will get.
    pub uidnext: Option<u32>,
    /// Messages in the folder.
    pub messages: Option<u32>,
    /// HIGHESTMODSEQ (CONDSTORE, RFC 7162), where the server offers it.
    pub highestmodseq: Option<u64>,
}

/// Values by folder (wire) name, the names borrowed from what holds them anyway (the LIST
/// entries, a run's folders): sorted and searched, where a map with its own copy of each
/// name took three times the memory (10,000 folders' states: 1.5 MiB against 0.5).
#[derive(Debug)]
pub struct ByName<'a, T> {
    sorted: Vec<(&'a str, T)>,
}

impl<T> Default for ByName<'_, T> {
    fn default() -> Self {
        ByName { sorted: Vec::new() }
    }
}

impl<'a, T> ByName<'a, T> {
    /// The pairs, searchable by name (of two with one name, either is found).
    pub fn new(pairs: impl IntoIterator<Item = (&'a str, T)>) -> ByName<'a, T> {
        let mut sorted: Vec<(&'a str, T)> = pairs.into_iter().collect();
        sorted.sort_unstable_by_key(|&(name, _)| name);
        ByName { sorted }
    }

    /// The value of the folder named `wire`.
    pub fn get(&self, wire: &str) -> Option<&T> {
        let i = self.sorted.binary_search_by_key(&wire, |&(name, _)| name).ok()?;
        Some(&self.sorted[i].1)
    }

    /// Every pair, in name order.
    pub fn pairs(&self) -> &[(&'a str, T)] {
        &self.sorted
    }
}

/// Folders' states by wire name.
pub type Statuses<'a> = ByName<'a, FolderStatus>;

impl<'a> ByName<'a, FolderStatus> {
    /// The states of `states` whose names are among `names`; the others are left out.
    pub fn keep(mut states: HashMap<String, FolderStatus>, names: impl IntoIterator<Item = &'a str>) -> Statuses<'a> {
        let kept: Vec<_> = names.into_iter().filter_map(|name| Some((name, states.remove(name)?))).collect();
        ByName::new(kept)
    }
}

/// What LIST reports.
#[derive(Debug, Default)]
pub struct Listed {
    /// The folders, in the server's order.
    pub entries: Vec<ListEntry>,
    /// Each folder's state, by wire name, when the server sent it with the list.
    pub statuses: HashMap<String, FolderStatus>,
    /// Names that are not text and cannot be asked for, made printable.
    pub unusable: Vec<String>,
    /// The personal namespace, where the server offers NAMESPACE (asked with the list).
    pub namespace: Option<Hierarchy>,
}

impl Session {
    /// Every folder the server lists; with `with_status` and a server offering
    /// LIST-STATUS (RFC 5819), each selectable folder's status too, in the same answer.
    pub fn list(&mut self, with_status: bool) -> std::result::Result<Listed, ImapError> {
        self.run(|link| {
            let command = if with_status && link.has("LIST-STATUS") {
                format!("LIST \"\" \"*\" RETURN (STATUS ({}))", status_items(link))
            } else {
                "LIST \"\" \"*\"".to_string()
            };
            // The namespace comes in the same round trip; it is recorded with the folders.
            let namespace = link.has("NAMESPACE");
            let commands = if namespace { vec!["NAMESPACE".to_string(), command] } else { vec![command] };
            let tags = link.send(&commands)?;
            let mut listed = Listed::default();
            link.finish(&tags[tags.len() - 1], MAX_SMALL_LITERAL, &mut |d| {
                match d {
                    Data::Namespace(n) => listed.namespace = n,
                    Data::List(e) => {
                        if listed.entries.len() >= MAX_FOLDERS {
                            return Err(ImapError::Protocol(format!(
                                "a LIST answer of more than {MAX_FOLDERS} folders"
                            )));
                        }
                        listed.entries.push(e);
                    }
                    Data::MailboxStatus { wire, items } => {
                        listed.statuses.insert(wire, folder_status(&items));
                    }
                    Data::UnusableName(name) if listed.unusable.len() < MAX_FOLDERS => listed.unusable.push(name),
                    _ => {}
                }
                Ok(())
            })?;
            Ok(listed)
        })
    }

    /// The status of each of `wires`, all asked at once. A folder the server refuses
    /// (it does not exist) is left out of the answer.
    pub fn statuses(&mut self, wires: &[String]) -> std::result::Result<HashMap<String, FolderStatus>, ImapError> {
        self.run(|link| {
            let mut commands = Vec::new();
            for w in wires {
                commands.push(format!("STATUS {} ({})", quoted(w)?, status_items(link)));
            }
            let tags = link.send(&commands)?;
            let mut statuses = HashMap::new();
            for tag in &tags {
                let answer = link.finish(tag, MAX_SMALL_LITERAL, &mut |d| {
                    if let Data::MailboxStatus { wire, items } = d {
                        statuses.insert(wire, folder_status(&items));
                    }
                    Ok(())
                });
                match answer {
                    Ok(_) | Err(ImapError::Refused(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(statuses)
        })
    }

    /// The server's personal namespace: NAMESPACE's where offered, else no prefix and the
    /// separator `LIST "" ""` reports. Both are asked in one round trip.
    pub fn hierarchy(&mut self) -> std::result::Result<Hierarchy, ImapError> {
        self.run(|link| {
            let mut commands = vec!["LIST \"\" \"\"".to_string()];
            if link.has("NAMESPACE") {
                commands.insert(0, "NAMESPACE".to_string());
            }
            let tags = link.send(&commands)?;
            let (mut namespace, mut separator) = (None, None);
            link.finish(&tags[tags.len() - 1], MAX_SMALL_LITERAL, &mut |d| {
                match d {
                    Data::Namespace(n) => namespace = n,
                    Data::List(e) => separator = e.delimiter,
                    _ => {}
                }
                Ok(())
            })?;
            Ok(namespace.unwrap_or(Hierarchy { prefix: String::new(), separator }))
        })
    }

    /// Creates the mailbox `wire`; one that exists already is fine.
    pub fn create(&mut self, wire: &str) -> std::result::Result<(), ImapError> {
        self.run(|link| {
            let tags = link.send(&[format!("CREATE {}", quoted(wire)?)])?;
            match link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |_| Ok(())) {
                Err(ImapError::Refused(text)) if text.to_ascii_uppercase().contains("ALREADYEXISTS") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }
}

/// The STATUS items asked: HIGHESTMODSEQ too where the server offers CONDSTORE, so a
/// folder whose flags changed is told from one that did not without opening it.
fn status_items(link: &Link) -> &'static str {
    if link.has("CONDSTORE") {
        "UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ"
    } else {
        "UIDVALIDITY UIDNEXT MESSAGES"
    }
}

fn folder_status(items: &[(String, u64)]) -> FolderStatus {
    let get = |name: &str| items.iter().find(|(n, _)| n == name).and_then(|(_, v)| u32::try_from(*v).ok());
    let modseq = items.iter().find(|(n, _)| n == "HIGHESTMODSEQ").map(|(_, v)| *v);
    FolderStatus {
        uidvalidity: get("UIDVALIDITY"),
        uidnext: get("UIDNEXT"),
        messages: get("MESSAGES"),
        highestmodseq: modseq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: u32) -> FolderStatus {
        FolderStatus { uidvalidity: Some(v), ..FolderStatus::default() }
    }

    #[test]
    fn statuses_are_found_by_wire_name_and_only_for_names_held() {
        // Cyrillic, CJK and Hebrew names as a server sends them (modified UTF-7), unsorted.
        let names = ["&BBIEMAQ2BD0EPgQ1-", "INBOX", "&ZeVnLIqe-", "&BdEF2QXnBdQ-", "Archive/2019"];
        let mut states: HashMap<String, FolderStatus> =
            names.iter().enumerate().map(|(i, n)| (n.to_string(), status(i as u32))).collect();
        states.insert("Unheld".to_string(), status(99));
        // A name held twice (listed, and a folder of the run) is kept once.
        let held = names.iter().copied().chain(["INBOX"]);
        let kept = Statuses::keep(states, held);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(kept.get(n), Some(&status(i as u32)), "{n}");
        }
        assert_eq!(kept.get("Unheld"), None, "a state no held name has is left out");
        assert_eq!(kept.get("inbox"), None, "wire names compare exactly");
        assert_eq!(kept.pairs().len(), names.len());
        assert!(kept.pairs().windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(Statuses::default().get("INBOX"), None);
    }
}
