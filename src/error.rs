//! The one error type of the tool: a one-line message and the exit code it maps to.

use std::fmt;
use std::io;
use std::path::Path;

pub use crate::exit::{EXIT_FAILURE, EXIT_USAGE};

/// An error with the message the user sees and the exit code it deserves.
#[derive(Debug)]
pub struct Error {
    msg: String,
    usage: bool,
    interrupted: bool,
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A runtime failure (exit code 1).
    pub fn runtime(msg: impl Into<String>) -> Error {
        Error { msg: msg.into(), usage: false, interrupted: false }
    }

    /// A usage or configuration error (exit code 2).
    pub fn usage(msg: impl Into<String>) -> Error {
        Error { msg: msg.into(), usage: true, interrupted: false }
    }

    /// The run was stopped by SIGINT or SIGTERM (exit code 130 or 143).
    pub fn interrupted() -> Error {
        Error { msg: "interrupted".into(), usage: false, interrupted: true }
    }

    /// Whether this is the stop a signal asked for, not a failure.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted
    }

    /// The exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            crate::interrupt::exit_code()
        } else if self.usage {
            EXIT_USAGE
        } else {
            EXIT_FAILURE
        }
    }

    /// The message without the program prefix.
    pub fn message(&self) -> &str {
        &self.msg
    }

    /// The same error with `what: ` in front of its message.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error { msg: format!("{what}: {}", self.msg), ..self }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// Adds the path or action that failed to I/O errors, so messages name the file.
pub trait IoContext<T> {
    /// Prefixes the error with `path`.
    fn at(self, path: &Path) -> Result<T>;
    /// Prefixes the error with a description of what was being done.
    fn doing(self, what: &str) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::runtime(format!("{}: {}", path.display(), describe_io(&e))))
    }

    fn doing(self, what: &str) -> Result<T> {
        self.map_err(|e| Error::runtime(format!("{what}: {}", describe_io(&e))))
    }
}

/// An I/O error as a short phrase: the OS text without Rust's "(os error N)" noise, and
/// without the documentation links some libraries put in their errors (rustls's "peer
/// closed connection without sending TLS close_notify: https://docs.rs/..."): they mean
/// nothing to a user.
pub fn describe_io(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    if e.kind() == io::ErrorKind::UnexpectedEof && text.contains("close_notify") {
        return "the server closed the connection (without ending TLS properly)".into();
    }
    without_links(&text)
}

/// `text` without any `http://` or `https://` link (and the `: ` or ` see ` before it).
pub fn without_links(text: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    for word in text.split(' ') {
        if word.starts_with("http://") || word.starts_with("https://") || word.starts_with("<http") {
            if words.last().is_some_and(|w| w.eq_ignore_ascii_case("see")) {
                words.pop();
            }
            continue;
        }
        words.push(word);
    }
    words.join(" ").trim_end_matches([' ', ':', ';', ',']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_library_link_reaches_a_user() {
        // rustls 0.23's error for a peer that hangs up without close_notify.
        let e = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: \
             https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        let d = describe_io(&e);
        assert!(!d.contains("http") && d.contains("closed the connection"), "{d}");
        let e = io::Error::other("bad thing; see https://example.org/help for more");
        assert_eq!(describe_io(&e), "bad thing; for more");
        assert_eq!(without_links("failed: https://x.y/z"), "failed");
        assert_eq!(describe_io(&io::Error::from_raw_os_error(libc::ECONNREFUSED)), "Connection refused");
    }
}
