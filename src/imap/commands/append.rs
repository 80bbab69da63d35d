//! Storing messages: APPEND, its body streamed as a literal. APPENDs are pipelined where
//! the server takes literals without a go-ahead (LITERAL+, or LITERAL- for small ones);
//! elsewhere each waits for its go-ahead, and the answers of earlier ones that come
//! meanwhile are kept for them.

use std::io::Read;

use super::quoted;
use crate::imap::error::{quote, ImapError};
use crate::imap::link::Link;
use crate::imap::session::Session;
use crate::imap::wire::{self, Data, Response, Status, MAX_SMALL_LITERAL};

/// Largest message sent as a non-synchronizing literal where the server offers LITERAL-
/// (RFC 7888) only.
const LITERAL_MINUS_MAX: u64 = 4096;

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

impl Session {
    /// Sends an `APPEND` of `message` to `wire`, streaming its body as a literal. Where the
    /// server takes it without a go-ahead (LITERAL+, or LITERAL- for a message of at most
    /// 4096 bytes) nothing is waited for; otherwise the go-ahead comes first, and a refusal
    /// then (a message too big) is `Refused` at once. Either way the answer is read by
    /// [`Session::read_append`], so uploads are pipelined; answers to earlier APPENDs that
    /// come before a go-ahead are kept for it.
    pub fn send_append(&mut self, wire: &str, message: Appending<'_>) -> std::result::Result<(), ImapError> {
        let result = (|| {
            // Behind other uploads in flight is fine: their answers come first.
            let link = self.link_behind()?;
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
        self.peek_link().map_or(0, |l| l.appends.len())
    }

    /// Reads the answer of the oldest `APPEND` sent: the UID the message got where the
    /// server says (APPENDUID, RFC 4315); `Refused` when the server declined the message.
    pub fn read_append(&mut self) -> std::result::Result<Option<u32>, ImapError> {
        let result = (|| {
            let link = self.live_link()?;
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
