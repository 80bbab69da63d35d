//! Reading messages and what is known of them: `UID FETCH` of sizes, flags, dates, header
//! fields and bodies, pipelined where the answers do not depend on each other, and the
//! fetches whose answers are read later ([`Session::send_fetch`], [`Session::read_fetch`]).

use std::collections::HashMap;

use super::select::{deselect, note_examined, still_open, Examined};
use super::uid_set;
use super::{quoted, sorted_sizes};
use crate::imap::error::ImapError;
use crate::imap::session::Session;
use crate::imap::wire::{self, Data, Fetched, MAX_SMALL_LITERAL, MAX_UIDS};

/// UIDs per `UID FETCH (UID RFC822.SIZE)` command.
const SIZES_PER_COMMAND: usize = 5000;
/// How much of each header is compared: the first this many bytes (RFC 5322 headers
/// over 64 KiB exist: long `Received:` and DKIM chains). Asked as a partial fetch, so a
/// header of any size costs this much memory at most.
pub const HEADER_PREFIX: usize = 64 * 1024;

/// UIDs per header-fetching command.
const HEADERS_PER_COMMAND: usize = 500;

/// What a mailbox of the target holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// Its UIDVALIDITY, when reported.
    pub uidvalidity: Option<u32>,
    /// Each message's UID and size (`RFC822.SIZE`), ascending by UID.
    pub sizes: Vec<(u32, u32)>,
}

/// What [`Session::header_samples`] found in one folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sampled {
    /// The folder's UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// UID, size and the header fields asked for of each message asked for that is there.
    pub messages: Vec<(u32, u32, Vec<u8>)>,
}

/// What [`Session::new_mail`] hands over, folder by folder, in order.
#[derive(Debug)]
pub enum NewMail {
    /// Folder `index` was opened (or refused, with the server's text).
    Opened(usize, std::result::Result<Examined, String>),
    /// A message of folder `index`: UID, size and the first bytes asked for.
    Message(usize, Fetched),
    /// Folder `index` is done (the fetch refused, with the server's text).
    Done(usize, Option<String>),
}

/// One folder for [`Session::flags`].
#[derive(Clone, Copy, Debug)]
pub struct FlagsAsk<'a> {
    /// The mailbox's wire name.
    pub wire: &'a str,
    /// The UIDVALIDITY its recorded UIDs belong to.
    pub uidvalidity: u32,
    /// Ask only the flags changed since this HIGHESTMODSEQ (CONDSTORE's `CHANGEDSINCE`).
    pub changed_since: Option<u64>,
}

impl Session {
    /// The sizes of `uids` (ascending), asked in commands of a few thousand sent at once;
    /// a UID missing from the answers was expunged meanwhile.
    pub fn sizes(&mut self, uids: &[u32]) -> std::result::Result<Vec<(u32, u32)>, ImapError> {
        let mut sizes = Vec::new();
        self.fetch_each(uids, "UID RFC822.SIZE", &mut |f| {
            if let Fetched { uid: Some(uid), size: Some(size), .. } = f {
                sizes.push((uid, size));
            }
        })?;
        Ok(sorted_sizes(sizes, |u| uids.binary_search(&u).is_ok()))
    }

    /// `UID FETCH` of `items` for `uids` in commands of a few thousand UIDs, sent at once;
    /// each answer goes to `on`.
    fn fetch_each(
        &mut self,
        uids: &[u32],
        items: &str,
        on: &mut dyn FnMut(Fetched),
    ) -> std::result::Result<(), ImapError> {
        self.fetch_each_within(uids, items, MAX_SMALL_LITERAL, on)
    }

    /// [`Session::fetch_each`] with literals of up to `max_literal` bytes.
    fn fetch_each_within(
        &mut self,
        uids: &[u32],
        items: &str,
        max_literal: usize,
        on: &mut dyn FnMut(Fetched),
    ) -> std::result::Result<(), ImapError> {
        self.run(|link| {
            let commands: Vec<String> =
                uids.chunks(SIZES_PER_COMMAND).map(|c| format!("UID FETCH {} ({items})", uid_set(c))).collect();
            let tags = link.send(&commands)?;
            for tag in &tags {
                link.finish(tag, max_literal, &mut |d| {
                    if let Data::Fetch(f) = d {
                        on(f);
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })
    }

    /// The size, flags, INTERNALDATE and the header fields `fields` (`MESSAGE-ID DATE`...)
    /// of the messages `uids` (ascending) of the folder opened last, each answer handed to
    /// `on` as it comes (the fields in [`Fetched::body`]); with `all`, asked as `1:*` in one
    /// command. Fields of more than `max` bytes fail the command.
    pub fn header_fields(
        &mut self,
        uids: &[u32],
        all: bool,
        fields: &str,
        max: usize,
        on: &mut dyn FnMut(Fetched),
    ) -> std::result::Result<(), ImapError> {
        let items = format!("UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS ({fields})]");
        if !all {
            return self.fetch_each_within(uids, &items, max, on);
        }
        self.run(|link| {
            let tags = link.send(&[format!("UID FETCH 1:* ({items})")])?;
            link.finish(&tags[0], max, &mut |d| {
                if let Data::Fetch(f) = d {
                    on(f);
                }
                Ok(())
            })?;
            Ok(())
        })
    }

    /// For each `(wire, from)`: EXAMINE the folder and fetch the UID, size and first `head`
    /// bytes of every message from UID `from` on. All commands go out at once, so every
    /// folder's new mail costs one round trip together; answers are handed to `on` as they
    /// come, one message at a time (memory holds one `head` at most). `on` returns false
    /// to stop: the connection is then dropped.
    pub fn new_mail(
        &mut self,
        folders: &[(String, u32)],
        head: usize,
        on: &mut dyn FnMut(NewMail) -> bool,
    ) -> std::result::Result<bool, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let mut commands = Vec::new();
            for (wire, from) in folders {
                commands.push(format!("EXAMINE {}", quoted(wire)?));
                commands.push(format!("UID FETCH {from}:* (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[]<0.{head}>)"));
            }
            let tags = link.send(&commands)?;
            for (index, pair) in tags.chunks(2).enumerate() {
                let mut examined = Examined::default();
                let opened = link.finish(&pair[0], MAX_SMALL_LITERAL, &mut |d| {
                    note_examined(&mut examined, d);
                    Ok(())
                });
                let opened = match opened {
                    Ok(_) => Ok(examined),
                    Err(ImapError::Refused(text)) => Err(text),
                    Err(e) => return Err(e),
                };
                if !on(NewMail::Opened(index, opened)) {
                    return Ok(false);
                }
                let mut go_on = true;
                let fetched = link.finish(&pair[1], head + 1024, &mut |d| {
                    if let (true, Data::Fetch(f)) = (go_on, d) {
                        go_on = on(NewMail::Message(index, f));
                    }
                    Ok(())
                });
                let refused = match fetched {
                    Ok(_) => None,
                    Err(ImapError::Refused(text)) => Some(text),
                    Err(e) => return Err(e),
                };
                if !go_on || !on(NewMail::Done(index, refused)) {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        if matches!(result, Ok(false)) {
            // Answers of the commands not read yet would be taken for the next command's.
            self.forget_link();
        }
        self.checked(result)
    }

    /// The flags of the messages of each folder of `asks` (those changed since a
    /// HIGHESTMODSEQ where one is given), handed to `on` with the folder's index; with
    /// `condstore` the folders are opened with CONDSTORE, so EXAMINE reports HIGHESTMODSEQ.
    /// Nothing reaches `on` for a folder whose UIDVALIDITY is not the one asked (its UIDs
    /// name other messages). Every folder is asked at once: one round trip for all. Each
    /// folder's outcome is its own (a refusal fails that folder); the `Err` is for a
    /// session that broke.
    pub fn flags(
        &mut self,
        asks: &[FlagsAsk<'_>],
        condstore: bool,
        on: &mut dyn FnMut(usize, u32, Vec<String>),
    ) -> std::result::Result<Vec<std::result::Result<Examined, ImapError>>, ImapError> {
        self.run(|link| {
            let mut commands = Vec::new();
            for ask in asks {
                commands.push(format!("EXAMINE {}{}", quoted(ask.wire)?, if condstore { " (CONDSTORE)" } else { "" }));
                commands.push(match ask.changed_since {
                    Some(m) => format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {m})"),
                    None => "UID FETCH 1:* (UID FLAGS)".to_string(),
                });
            }
            let tags = link.send(&commands)?;
            let mut outcomes = Vec::new();
            for (k, (ask, pair)) in asks.iter().zip(tags.chunks(2)).enumerate() {
                let mut examined = Examined::default();
                let opened = link.finish(&pair[0], MAX_SMALL_LITERAL, &mut |d| {
                    note_examined(&mut examined, d);
                    Ok(())
                });
                let same = examined.uid_validity == Some(ask.uidvalidity);
                // One answer per message, and some to spare for changes while it runs: a
                // server that sends more would have its answers fill the journal.
                let cap = examined.exists as usize + 1000;
                let mut answers = 0usize;
                let fetched = link.finish(&pair[1], MAX_SMALL_LITERAL, &mut |d| {
                    if let (true, Data::Fetch(Fetched { uid: Some(uid), flags: Some(flags), .. })) = (same, d) {
                        answers += 1;
                        if answers > cap {
                            return Err(ImapError::Protocol(format!(
                                "more than {cap} FLAGS answers for a folder of {} messages",
                                examined.exists
                            )));
                        }
                        on(k, uid, flags);
                    }
                    Ok(())
                });
                let outcome = opened.and(fetched).map(|_| examined);
                if outcome.as_ref().is_err_and(ImapError::breaks_session) {
                    return Err(outcome.err().unwrap_or(ImapError::Lost("no connection".into())));
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
    }

    /// The INTERNALDATE of each of `uids` (ascending) in the folder opened last (by
    /// [`Session::flags`]), handed to `on`; commands of a few thousand UIDs sent at once.
    pub fn internal_dates(
        &mut self,
        uids: &[u32],
        on: &mut dyn FnMut(u32, String),
    ) -> std::result::Result<(), ImapError> {
        self.fetch_each(uids, "UID INTERNALDATE", &mut |f| {
            if let Fetched { uid: Some(uid), internal_date: Some(date), .. } = f {
                if uids.binary_search(&uid).is_ok() {
                    on(uid, date);
                }
            }
        })
    }

    /// Sends a `UID FETCH` whose answers [`Session::read_fetch`] reads later: the server
    /// works on it while the answers before it are stored.
    pub fn send_fetch(&mut self, set: &str, query: &str) -> std::result::Result<(), ImapError> {
        // A server that hung up may have answered the fetches sent before: those answers
        // are still read (the failure shows when they run out), not thrown away.
        let answers_pending = self.awaiting_fetch();
        let result = (|| {
            // Behind other fetches in flight is fine: their answers come first.
            let link = self.link_behind()?;
            let tags = link.send(&[format!("UID FETCH {set} {query}")])?;
            link.fetches.extend(tags);
            Ok(())
        })();
        if answers_pending && result.is_err() {
            return result;
        }
        self.checked(result)
    }

    /// Whether a `UID FETCH` was sent and its answers are still to be read.
    pub fn awaiting_fetch(&self) -> bool {
        self.peek_link().is_some_and(|l| !l.fetches.is_empty())
    }

    /// Reads the answers of the oldest `UID FETCH` sent by [`Session::send_fetch`], with
    /// literals of up to `max_literal` bytes. Only answers for `wanted` UIDs are kept, the
    /// last one of each, and at most `max_total` bytes of bodies: a server that sends more
    /// than was asked for fails the command instead of filling the memory.
    pub fn read_fetch(
        &mut self,
        max_literal: usize,
        max_total: usize,
        wanted: &dyn Fn(u32) -> bool,
    ) -> std::result::Result<Vec<Fetched>, ImapError> {
        self.read_fetch_into(max_literal, max_total, wanted, None)
    }

    /// [`Session::read_fetch`] for one message fetched alone: its `BODY[]` goes to `sink`
    /// as it comes, in pieces (the answer's [`Fetched::streamed`] then gives its size).
    pub fn read_fetch_into(
        &mut self,
        max_literal: usize,
        max_total: usize,
        wanted: &dyn Fn(u32) -> bool,
        mut sink: Option<&mut wire::BodySink<'_>>,
    ) -> std::result::Result<Vec<Fetched>, ImapError> {
        let result = (|| {
            let link = self.live_link()?;
            let tag =
                link.fetches.front().cloned().ok_or_else(|| ImapError::Protocol("no UID FETCH was sent".into()))?;
            let mut kept: HashMap<u32, Fetched> = HashMap::new();
            let mut total = 0usize;
            // Whose FETCH answer carried the body the sink took.
            let mut streamed_for: Option<Option<u32>> = None;
            let want = sink.as_ref().map(|s| s.uid);
            link.finish_into(&tag, max_literal, sink.as_deref_mut(), &mut |d| {
                let Data::Fetch(f) = d else { return Ok(()) };
                if f.streamed.is_some() {
                    streamed_for = Some(f.uid);
                }
                let Some(uid) = f.uid.filter(|&u| wanted(u)) else { return Ok(()) };
                total += f.body.as_ref().map_or(0, Vec::len);
                if total > max_total {
                    return Err(ImapError::TooMuch(format!(
                        "the server sent more than {max_total} bytes for messages that add up to less"
                    )));
                }
                // A flags-only answer must not replace the one that carries the body, nor
                // anything the one whose body went to the sink (already written).
                let streamed = kept.get(&uid).is_some_and(|k| k.streamed.is_some());
                if !streamed && (f.body.is_some() || f.streamed.is_some() || !kept.contains_key(&uid)) {
                    kept.insert(uid, f);
                }
                Ok(())
            })?;
            // The sink's bytes went to a message being written: they must have been that
            // message's body, not another's (or one outside any FETCH answer).
            if let Some(s) = sink.as_ref().filter(|s| s.taken && streamed_for != Some(want)) {
                return Err(ImapError::Protocol(format!(
                    "the server sent the body of another message than UID {} asked for",
                    s.uid
                )));
            }
            let mut out: Vec<Fetched> = kept.into_values().collect();
            out.sort_by_key(|f| f.uid);
            Ok(out)
        })();
        self.checked(result)
    }

    /// For each `(wire, uids)`: opens the folder read-only and asks the size and the header
    /// `fields` of those messages (`BODY.PEEK[HEADER.FIELDS (fields)]`: no body, no flag
    /// changes), each at most `head` bytes. Every command goes out at once: one round trip
    /// for all the folders. A folder the server does not open gives `None`.
    pub fn header_samples(
        &mut self,
        asks: &[(String, Vec<u32>)],
        fields: &str,
        head: usize,
    ) -> std::result::Result<Vec<Option<Sampled>>, ImapError> {
        self.run(|link| {
            let mut commands = Vec::new();
            for (wire, uids) in asks {
                commands.push(format!("EXAMINE {}", quoted(wire)?));
                commands
                    .push(format!("UID FETCH {} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({fields})])", uid_set(uids)));
            }
            let tags = link.send(&commands)?;
            let mut out = Vec::new();
            for ((_, uids), tags) in asks.iter().zip(tags.chunks(2)) {
                let mut examined = Examined::default();
                let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                    note_examined(&mut examined, d);
                    Ok(())
                });
                let mut messages = Vec::new();
                // Read whole even when longer than asked for (a pathological Subject): what
                // is kept is cut below.
                let asked = link.finish(&tags[1], head.max(256 * 1024), &mut |d| {
                    if let Data::Fetch(Fetched { uid: Some(uid), size: Some(size), body: Some(header), .. }) = d {
                        if uids.contains(&uid) && !messages.iter().any(|&(u, _, _)| u == uid) {
                            let mut header = header;
                            header.truncate(head);
                            messages.push((uid, size, header));
                        }
                    }
                    Ok(())
                });
                match (opened, asked) {
                    (Ok(_), Ok(_)) => out.push(Some(Sampled { uidvalidity: examined.uid_validity, messages })),
                    (Err(ImapError::Refused(_)), _) | (_, Err(ImapError::Refused(_))) => out.push(None),
                    (Err(e), _) | (_, Err(e)) => return Err(e),
                }
            }
            Ok(out)
        })
    }

    /// The UID and size of every message of `wire`, the mailbox opened read-only and
    /// closed again in the same round trip; `None` when the server refuses to open it (it
    /// does not exist).
    pub fn holding(&mut self, wire: &str) -> std::result::Result<Option<Holding>, ImapError> {
        self.run(|link| {
            let close = deselect(link);
            let tags =
                link.send(&[format!("EXAMINE {}", quoted(wire)?), "UID FETCH 1:* (UID RFC822.SIZE)".into(), close])?;
            let mut examined = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                note_examined(&mut examined, d);
                Ok(())
            });
            let mut sizes = Vec::new();
            let asked = link.finish(&tags[1], MAX_SMALL_LITERAL, &mut |d| {
                if let Data::Fetch(Fetched { uid: Some(uid), size: Some(size), .. }) = d {
                    if sizes.len() >= MAX_UIDS {
                        return Err(ImapError::Protocol("more messages than a folder can hold".into()));
                    }
                    sizes.push((uid, size));
                }
                Ok(())
            });
            let closed = link.finish(&tags[2], MAX_SMALL_LITERAL, &mut |_| Ok(()));
            match opened {
                Ok(_) => {}
                Err(ImapError::Refused(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
            match asked {
                Ok(_) => {}
                // Some servers refuse `1:*` in an empty folder.
                Err(ImapError::Refused(_)) if examined.exists == 0 => {}
                Err(e) => return Err(e),
            }
            closed.map_err(|e| still_open(wire, e))?;
            Ok(Some(Holding { uidvalidity: examined.uid_validity, sizes: sorted_sizes(sizes, |_| true) }))
        })
    }

    /// The first [`HEADER_PREFIX`] bytes of the header of each of `uids` (ascending) in
    /// `wire`, handed to `on` as they come; the mailbox is opened read-only and closed
    /// again in the same round trip.
    pub fn header_prefixes(
        &mut self,
        wire: &str,
        uids: &[u32],
        on: &mut dyn FnMut(u32, Vec<u8>),
    ) -> std::result::Result<(), ImapError> {
        self.run(|link| {
            let mut commands = vec![format!("EXAMINE {}", quoted(wire)?)];
            commands.extend(
                uids.chunks(HEADERS_PER_COMMAND)
                    .map(|c| format!("UID FETCH {} (UID BODY.PEEK[HEADER]<0.{HEADER_PREFIX}>)", uid_set(c))),
            );
            commands.push(deselect(link));
            let tags = link.send(&commands)?;
            let mut outcome = Ok(());
            for tag in &tags[..tags.len() - 1] {
                let answer = link.finish(tag, HEADER_PREFIX, &mut |d| {
                    if let Data::Fetch(Fetched { uid: Some(uid), body: Some(header), .. }) = d {
                        if uids.binary_search(&uid).is_ok() {
                            on(uid, header);
                        }
                    }
                    Ok(())
                });
                match answer {
                    Ok(_) => {}
                    Err(e @ ImapError::Refused(_)) => outcome = outcome.and(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            let closed = link.finish(&tags[tags.len() - 1], MAX_SMALL_LITERAL, &mut |_| Ok(()));
            outcome?;
            closed.map_err(|e| still_open(wire, e))?;
            Ok(())
        })
    }
}
