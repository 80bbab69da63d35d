//! What can go wrong talking to the server, told apart because each calls for something
//! else: a refused command fails that command, a lost connection is re-established, an
//! unreadable answer or a timeout ends the session.

use std::fmt;

/// Longest server text quoted in a message.
const MAX_QUOTE: usize = 300;

/// An IMAP failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapError {
    /// The server answered NO or BAD: the session is fine, the command was refused.
    Refused(String),
    /// The connection broke (closed, reset, BYE): reconnecting may help.
    Lost(String),
    /// The answer made no sense or broke a limit: the stream cannot be trusted any more.
    Protocol(String),
    /// The server sent more message data than the messages asked for can hold (sizes it
    /// got wrong, or a hostile server): the stream is given up rather than held in memory,
    /// and those messages are better asked for one at a time, each streamed to disk.
    TooMuch(String),
    /// Nothing arrived in time.
    Timeout,
    /// An answer came, but so slowly that it would never end (a byte now and then).
    Slow,
    /// What was being sent could not be read here (an archive file that changed): the
    /// command is broken off with the connection.
    Local(String),
}

impl ImapError {
    /// Whether the session must be dropped (as opposed to one command having failed).
    pub fn breaks_session(&self) -> bool {
        !matches!(self, ImapError::Refused(_))
    }

    /// The failure as a phrase, a timeout saying how long was waited.
    pub fn describe(&self, timeout: std::time::Duration) -> String {
        match self {
            ImapError::Timeout => format!("no answer within {}", super::tls::seconds(timeout)),
            ImapError::Refused(text) => quote(text),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImapError::Refused(text) => write!(f, "refused: {}", quote(text)),
            ImapError::Lost(why) => f.write_str(why),
            ImapError::Protocol(why) => write!(f, "unreadable answer: {why}"),
            ImapError::TooMuch(why) => f.write_str(why),
            ImapError::Timeout => f.write_str("no answer in time"),
            ImapError::Slow => f.write_str("the answer came too slowly (below 8 KiB/s after the timeout)"),
            ImapError::Local(why) => f.write_str(why),
        }
    }
}

/// Server text fit for a one-line message: control and bidi characters escaped, cut to a
/// sane length.
pub fn quote(text: &str) -> String {
    let clean = crate::printable::escape(text.trim());
    match clean.char_indices().nth(MAX_QUOTE) {
        Some((cut, _)) => format!("{}...", &clean[..cut]),
        None => clean,
    }
}
