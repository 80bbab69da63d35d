//! What an upload asks of the server it uploads to: its hierarchy, what a mailbox holds
//! (sizes, then the first bytes of the headers whose size matches), CREATE, APPEND, and
//! the removal of copies an upload made twice.
//!
//! A mailbox is opened read-only only together with the commands that read it and is
//! closed again in the same round trip: some servers (Courier) refuse an APPEND into the
//! mailbox a session has open read-only. APPENDs are pipelined where the server takes
//! literals without a go-ahead (LITERAL+, or LITERAL- for small ones); elsewhere each
//! waits for its go-ahead, and the answers of earlier ones that come meanwhile are kept
//! for them.

use std::io::Read;

use super::{quoted, sorted_sizes, Examined, Link, Session};
use crate::hierarchy::Hierarchy;
use crate::imap::error::{quote, ImapError};
use crate::imap::wire::{self, Data, Fetched, Response, Status, MAX_SMALL_LITERAL, MAX_UIDS};

/// How much of each header is compared: the first this many bytes (RFC 5322 headers
/// over 64 KiB exist: long `Received:` and DKIM chains). Asked as a partial fetch, so a
/// header of any size costs this much memory at most.
pub const HEADER_PREFIX: usize = 64 * 1024;
/// UIDs per header-fetching command.
const HEADERS_PER_COMMAND: usize = 500;
/// Largest message sent as a non-synchronizing literal where the server offers LITERAL-
/// (RFC 7888) only.
const LITERAL_MINUS_MAX: u64 = 4096;

/// What a mailbox of the target holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// Its UIDVALIDITY, when reported.
    pub uidvalidity: Option<u32>,
    /// Each message's UID and size (`RFC822.SIZE`), ascending by UID.
    pub sizes: Vec<(u32, u32)>,
}

/// One message for [`Session::send_append`].
pub struct Appending<'a> {
    /// Its flags (`\\Seen`, keywords), as they go on the wire.
    pub flags: &'a [String],
    /// Its INTERNALDATE in IMAP's form (`"30-Nov-2026 13:45:01 +0000"`), if known.
    pub date: Option<&'a str>,
    /// Its exact size: the body must bring that many bytes.
    pub size: u64,
    /// The message.
    pub body: &'a mut dyn Read,
}

/// The command that leaves the mailbox opened read-only: UNSELECT where offered, else
/// CLOSE (which removes nothing from a mailbox opened with EXAMINE, RFC 3501 6.4.2).
fn deselect(link: &Link) -> String {
    if link.has("UNSELECT") { "UNSELECT" } else { "CLOSE" }.to_string()
}

impl Session {
    /// The server's personal namespace: NAMESPACE's where offered, else no prefix and the
    /// separator `LIST "" ""` reports. Both are asked in one round trip.
    pub fn hierarchy(&mut self) -> std::result::Result<Hierarchy, ImapError> {
        let result = (|| {
            let link = self.link()?;
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
        })();
        self.checked(result)
    }

    /// The UID and size of every message of `wire`, the mailbox opened read-only and
    /// closed again in the same round trip; `None` when the server refuses to open it (it
    /// does not exist).
    pub fn holding(&mut self, wire: &str) -> std::result::Result<Option<Holding>, ImapError> {
        let result = (|| {
            let link = self.link()?;
            let close = deselect(link);
            let tags =
                link.send(&[format!("EXAMINE {}", quoted(wire)?), "UID FETCH 1:* (UID RFC822.SIZE)".into(), close])?;
            let mut examined = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                super::note_examined(&mut examined, d);
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
        })();
        self.checked(result)
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
        let result =
            (|| {
                let link = self.link()?;
                let mut commands = vec![format!("EXAMINE {}", quoted(wire)?)];
                commands.extend(uids.chunks(HEADERS_PER_COMMAND).map(|c| {
                    format!("UID FETCH {} (UID BODY.PEEK[HEADER]<0.{HEADER_PREFIX}>)", crate::imap::uid_set(c))
                }));
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
            })();
        self.checked(result)
    }

    /// Creates the mailbox `wire`; one that exists already is fine.
    pub fn create(&mut self, wire: &str) -> std::result::Result<(), ImapError> {
        let result = (|| {
            let link = self.link()?;
            let tags = link.send(&[format!("CREATE {}", quoted(wire)?)])?;
            match link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |_| Ok(())) {
                Err(ImapError::Refused(text)) if text.to_ascii_uppercase().contains("ALREADYEXISTS") => Ok(()),
                other => other.map(|_| ()),
            }
        })();
        self.checked(result)
    }

    /// Sends an `APPEND` of `message` to `wire`, streaming its body as a literal. Where the
    /// server takes it without a go-ahead (LITERAL+, or LITERAL- for a message of at most
    /// 4096 bytes) nothing is waited for; otherwise the go-ahead comes first, and a refusal
    /// then (a message too big) is `Refused` at once. Either way the answer is read by
    /// [`Session::read_append`], so uploads are pipelined; answers to earlier APPENDs that
    /// come before a go-ahead are kept for it.
    pub fn send_append(&mut self, wire: &str, message: Appending<'_>) -> std::result::Result<(), ImapError> {
        let result = (|| {
            // Behind other uploads in flight is fine: their answers come first.
            if self.link.is_none() {
                self.link()?;
            }
            let link = self.link.as_mut().ok_or_else(|| ImapError::Lost("no connection".into()))?;
            let flags = message.flags.join(" ");
            let date = message.date.map(|d| format!(" \"{d}\"")).unwrap_or_default();
            let plus = link.has("LITERAL+") || (link.has("LITERAL-") && message.size <= LITERAL_MINUS_MAX);
            let size = message.size;
            let head = format!("APPEND {} ({flags}){date} {{{size}{}}}", quoted(wire)?, if plus { "+" } else { "" });
            // Uploads pipeline their APPENDs even one command at a time: each waits for
            // its go-ahead, or the server said it takes literals without one.
            link.unqueue()?;
            let tag = link.tag();
            link.write(format!("{tag} {head}\r\n").as_bytes())?;
            link.in_flight.push_back(tag.clone());
            if !plus {
                wait_for_go_ahead(link, &tag)?;
            }
            // Whole 64 KiB pieces: a decoder hands out a few KiB a read, and each write
            // would otherwise leave as a TLS record (and a system call) of its own.
            let mut buf = vec![0u8; 64 * 1024];
            let mut sent = 0u64;
            while sent < size {
                let want = buf.len().min((size - sent) as usize);
                let n = fill(message.body, &mut buf[..want])
                    .map_err(|e| ImapError::Local(crate::error::describe_io(&e)))?;
                if n == 0 {
                    return Err(ImapError::Local(format!("the message ended after {sent} of {size} bytes")));
                }
                link.write(&buf[..n])?;
                sent += n as u64;
            }
            link.write(b"\r\n")?;
            link.appends.push_back(tag);
            Ok(())
        })();
        self.checked(result)
    }

    /// `APPEND` commands sent whose answers are still to be read.
    pub fn appends_in_flight(&self) -> usize {
        self.link.as_ref().map_or(0, |l| l.appends.len())
    }

    /// Reads the answer of the oldest `APPEND` sent: the UID the message got where the
    /// server says (APPENDUID, RFC 4315); `Refused` when the server declined the message.
    pub fn read_append(&mut self) -> std::result::Result<Option<u32>, ImapError> {
        let result = (|| {
            let link = self.link.as_mut().ok_or_else(|| ImapError::Lost("no connection".into()))?;
            let tag = link.appends.pop_front().ok_or_else(|| ImapError::Protocol("no APPEND was sent".into()))?;
            let text = match link.answered.remove(&tag) {
                Some((Status::Ok, text)) => text,
                Some((_, text)) => return Err(ImapError::Refused(text)),
                None => link.finish(&tag, MAX_SMALL_LITERAL, &mut |_| Ok(()))?,
            };
            link.progressed = true;
            Ok(appended_uid(&text))
        })();
        self.checked(result)
    }

    /// Removes exactly the messages `uids` of `wire` (UID STORE `\Deleted`, then UID
    /// EXPUNGE of those UIDs: the server must offer UIDPLUS), unless the mailbox's
    /// UIDVALIDITY is no longer `uidvalidity`. The mailbox is opened read-write only for
    /// this and left without removing anything else.
    pub fn remove_copies(&mut self, wire: &str, uidvalidity: u32, uids: &[u32]) -> std::result::Result<(), ImapError> {
        let result = (|| {
            let link = self.link()?;
            if !link.has("UIDPLUS") {
                return Err(ImapError::Refused("the server does not offer UIDPLUS (UID EXPUNGE)".into()));
            }
            let tags = link.send(&[format!("SELECT {}", quoted(wire)?)])?;
            let mut selected = Examined::default();
            let opened = link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
                super::note_examined(&mut selected, d);
                Ok(())
            });
            let mut commands = Vec::new();
            let set = crate::imap::uid_set(uids);
            let same = opened.is_ok() && selected.uid_validity == Some(uidvalidity);
            if same {
                commands.push(format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"));
                commands.push(format!("UID EXPUNGE {set}"));
            }
            // Left without CLOSE, which would remove every message marked \Deleted.
            if link.has("UNSELECT") {
                commands.push("UNSELECT".into());
            } else {
                commands.extend([format!("EXAMINE {}", quoted(wire)?), "CLOSE".to_string()]);
            }
            let tags = link.send(&commands)?;
            let mut outcome = opened.map(drop);
            for tag in &tags {
                match link.finish(tag, MAX_SMALL_LITERAL, &mut |_| Ok(())) {
                    Ok(_) => {}
                    Err(e @ ImapError::Refused(_)) => outcome = outcome.and(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            outcome?;
            if !same {
                return Err(ImapError::Refused(
                    "the mailbox's UIDVALIDITY changed: its UIDs name other messages".into(),
                ));
            }
            Ok(())
        })();
        self.checked(result)
    }
}

/// Reads answers until the server's go-ahead for the literal of the `APPEND` tagged
/// `tag`. Earlier commands may end meanwhile: an `APPEND`'s answer is kept for
/// [`Session::read_append`], another's outcome is not needed.
fn wait_for_go_ahead(link: &mut Link, tag: &str) -> std::result::Result<(), ImapError> {
    link.io.get_mut().restart();
    loop {
        match wire::read_response(&mut link.io, MAX_SMALL_LITERAL)? {
            Response::Continue(_) => return Ok(()),
            Response::Tagged { tag: t, status, text } => {
                if link.in_flight.front() != Some(&t) {
                    return Err(ImapError::Protocol(format!("an answer tagged {} out of turn", quote(&t))));
                }
                link.in_flight.pop_front();
                if t == tag {
                    return match status {
                        Status::Ok => Err(ImapError::Protocol("APPEND ended before its message".into())),
                        Status::No | Status::Bad => Err(ImapError::Refused(text)),
                    };
                }
                if link.appends.contains(&t) {
                    link.answered.insert(t, (status, text));
                }
            }
            Response::Data(Data::Bye(text)) => {
                return Err(ImapError::Lost(format!("the server hung up: {}", quote(&text))))
            }
            Response::Data(_) => {}
        }
    }
}

/// The UID of `[APPENDUID uidvalidity uid]` in an APPEND's answer, if there.
fn appended_uid(text: &str) -> Option<u32> {
    let upper = text.to_ascii_uppercase();
    let start = upper.find("[APPENDUID ")? + "[APPENDUID ".len();
    let inside = text[start..].split(']').next()?;
    let mut words = inside.split_whitespace();
    words.next()?;
    words.next()?.parse().ok()
}

/// A refused UNSELECT or CLOSE leaves the mailbox open read-only, where some servers
/// refuse the APPENDs that come next: said as such.
fn still_open(wire: &str, e: ImapError) -> ImapError {
    match e {
        ImapError::Refused(text) => ImapError::Refused(format!(
            "{} stays open read-only (the server refused to close it: {})",
            crate::mailbox_name::Mailbox::from_wire(wire).shown(),
            quote(&text)
        )),
        other => other,
    }
}

/// Reads into `buf` until it is full or the reader ends; the number of bytes read.
fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appenduid_is_read_from_the_answer() {
        assert_eq!(appended_uid("[APPENDUID 38505 3955] APPEND completed"), Some(3955));
        assert_eq!(appended_uid("[appenduid 1 7] ok"), Some(7));
        assert_eq!(appended_uid("APPEND completed"), None);
        assert_eq!(appended_uid("[APPENDUID 1 2:4] ok"), None, "one message, one UID");
    }
}
