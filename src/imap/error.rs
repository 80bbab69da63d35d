//! What can go wrong talking to the server, told apart because each calls for something
//! else: a refused command fails that command, a lost connection is re-established, an
//! unreadable answer or a timeout ends the session.

use std::fmt;

use crate::error::Error;

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
    /// The server answered `BAD Command Error. 10` (Exchange's) to a command sent while
    /// another was still unanswered: it mishandles pipelined commands. Its answers
    /// on this connection cannot be trusted; the next connection sends one at a time.
    Garbled(String),
    /// The server is throttling the account (`NO [THROTTLED]`, `[UNAVAILABLE]`,
    /// Exchange's `Request is throttled. Suggested Backoff Time: N milliseconds`): wait,
    /// reconnect and go on.
    Throttled(String),
}

impl ImapError {
    /// Whether the session must be dropped (as opposed to one command having failed).
    pub fn breaks_session(&self) -> bool {
        !matches!(self, ImapError::Refused(_))
    }

    /// The failure as a phrase, a timeout saying how long was waited.
    pub fn describe(&self, timeout: std::time::Duration) -> String {
        match self {
            ImapError::Timeout => format!("no answer within {}", super::clock::seconds(timeout)),
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
            ImapError::Garbled(text) => {
                write!(f, "the server refused a pipelined command ({}): it mishandles pipelining", quote(text))
            }
            ImapError::Throttled(text) => write!(f, "the server is throttling the account: {}", quote(text)),
        }
    }
}

/// Why a server could not be reached (connected to, greeted by, logged in to), and whether
/// trying again later may help: a refused or dropped connection, silence or a busy server
/// may pass (a NAS whose network is not up yet, a faulty link); an untrusted certificate,
/// a wrong password or a port that speaks another protocol will not.
#[derive(Debug)]
pub struct Unreached {
    /// What to tell the user.
    pub error: Error,
    /// Trying again may help.
    pub transient: bool,
}

impl Unreached {
    /// A failure that may pass.
    pub fn transient(error: Error) -> Unreached {
        Unreached { error, transient: true }
    }

    /// A failure that will not pass by itself.
    pub fn permanent(error: Error) -> Unreached {
        Unreached { error, transient: false }
    }
}

impl From<Unreached> for Error {
    fn from(u: Unreached) -> Error {
        u.error
    }
}

impl From<Error> for Unreached {
    fn from(error: Error) -> Unreached {
        Unreached::permanent(error)
    }
}

/// Whether a refusal's text says the server is throttling or briefly unavailable (RFC 5530
/// `[UNAVAILABLE]`; `[THROTTLED]`; Exchange Online's "Request is throttled" and "Server
/// Unavailable. 15"), rather than refusing the command itself.
pub fn is_throttling(text: &str) -> bool {
    let upper = text.trim_start().to_ascii_uppercase();
    upper.starts_with("[THROTTLED]")
        || upper.starts_with("[UNAVAILABLE]")
        || upper.starts_with("REQUEST IS THROTTLED")
        || upper.starts_with("SERVER UNAVAILABLE")
}

/// Whether a BAD's text is Exchange's answer to a command line it garbled: `Command Error.
/// 10` (its argument errors, `Command Argument Error. 11`, are about the command itself).
/// Only a pipelined command's BAD is taken so; other servers' BADs stay refusals.
pub fn is_garbled_command(text: &str) -> bool {
    let upper = text.trim_start().to_ascii_uppercase();
    upper.starts_with("COMMAND ERROR")
}

/// The wait a throttling text suggests (Exchange: "Suggested Backoff Time: 299961
/// milliseconds"), if it names one.
pub fn suggested_backoff(text: &str) -> Option<std::time::Duration> {
    let lower = text.to_ascii_lowercase();
    let rest = &lower[lower.find("backoff time:")? + "backoff time:".len()..];
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = rest.trim_start()[digits.len()..].trim_start();
    if unit.starts_with("ms") || unit.starts_with("milli") {
        Some(std::time::Duration::from_millis(n))
    } else {
        Some(std::time::Duration::from_secs(n))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn throttling_texts() {
        for t in [
            "Request is throttled. Suggested Backoff Time: 299961 milliseconds",
            "[THROTTLED] slow down",
            "[UNAVAILABLE] Temporary failure",
            "Server Unavailable. 15",
        ] {
            assert!(is_throttling(t), "{t}");
        }
        for t in ["Command Error. 10", "[AUTHENTICATIONFAILED] no", "Unavailable folder name"] {
            assert!(!is_throttling(t), "{t}");
        }
        assert_eq!(
            suggested_backoff("Request is throttled. Suggested Backoff Time: 299961 milliseconds"),
            Some(Duration::from_millis(299_961))
        );
        assert_eq!(suggested_backoff("[THROTTLED] Suggested backoff time: 5 s"), Some(Duration::from_secs(5)));
        assert_eq!(suggested_backoff("Server Unavailable. 15"), None);
        assert!(is_garbled_command("Command Error. 10"));
        assert!(!is_garbled_command("Command Argument Error. 11") && !is_garbled_command("internal error"));
    }
}
