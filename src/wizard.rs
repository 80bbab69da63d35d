//! The interactive wizard (no arguments at all), as the original had: it asks for one
//! account's settings, then backs it up. Answers are read line by line from standard
//! input, so it also works (and is tested) with piped input.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use crate::account::{Account, Folders, DEFAULT_BUFFER, DEFAULT_TIMEOUT};
use crate::bounded;
use crate::codec::{Form, DEFAULT_LEVEL};
use crate::error::{Error, IoContext, Result};
use crate::keys::{KeySpec, PasswordSpec};
use crate::secret::{Secret, Sources};

fn ask(input: &mut dyn BufRead, question: &str, default: Option<&str>) -> Result<String> {
    let mut err = io::stderr();
    match default {
        Some(d) if !d.is_empty() => write!(err, "{question} [{d}]: "),
        _ => write!(err, "{question}: "),
    }
    .and_then(|_| err.flush())
    .doing("writing the question")?;
    let line = bounded::read_line(input, bounded::SECRET).map_err(|e| {
        Error::usage(format!("wizard: reading the answer to \"{question}\": {}", crate::error::describe_io(&e)))
    })?;
    let Some(line) = line else {
        return Err(Error::usage(format!("wizard: no answer to \"{question}\" (end of input)")));
    };
    let answer = String::from_utf8(line)
        .map_err(|_| Error::usage(format!("wizard: the answer to \"{question}\" is not valid UTF-8")))?
        .trim()
        .to_string();
    match (answer.is_empty(), default) {
        (true, Some(d)) => Ok(d.to_string()),
        (true, None) => Err(Error::usage(format!("wizard: \"{question}\" needs an answer"))),
        (false, _) => Ok(answer),
    }
}

fn yes(input: &mut dyn BufRead, question: &str) -> Result<bool> {
    let a = ask(input, question, Some("n"))?.to_ascii_lowercase();
    Ok(a == "y" || a == "yes" || a == "o" || a == "oui")
}

/// Asks for an account on standard error / standard input.
pub fn ask_account() -> Result<Account> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    eprintln!("smailarchiver {}: back up an IMAP mailbox (Ctrl-C to stop)", env!("CARGO_PKG_VERSION"));
    let user = ask(&mut input, "Email user name", None)?;
    let host = ask(&mut input, "IMAP server", None)?;
    let port = ask(&mut input, "IMAP port (implicit TLS)", Some("993"))?;
    let port: u16 = port.parse().map_err(|_| Error::usage(format!("wizard: '{port}' is not a port number")))?;
    let ca_file = ask(&mut input, "Extra CA certificate file, for a self-signed server (empty: none)", Some(""))?;
    let password = if io::stdin().is_terminal() {
        drop(input);
        let pw = Sources { what: "email password", ..Sources::default() }.obtain()?;
        input = stdin.lock();
        pw
    } else {
        Secret::new(ask(&mut input, "Email password", None)?)
    };
    let folders = ask(&mut input, "Folders, separated by commas", Some("INBOX"))?;
    let folders: Vec<String> = folders.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
    let compressed = yes(&mut input, "Compress the messages? (y/n)")?;
    let encrypted = yes(&mut input, "Encrypt the messages? (y/n)")?;
    let keys = if encrypted {
        let path = PathBuf::from(ask(&mut input, "Key file", Some("keys"))?);
        let protect = yes(&mut input, "Protect the key file with a password? (y/n)")?;
        Some(KeySpec { path, password: protect.then(PasswordSpec::default) })
    } else {
        None
    };
    let root = PathBuf::from(ask(&mut input, "Archive directory", Some("."))?);
    Ok(Account {
        user,
        host,
        port: Some(port),
        starttls: false,
        ca_file: (!ca_file.is_empty()).then(|| PathBuf::from(ca_file)),
        pin_sha256: None,
        password: Some(password),
        passwd_command: None,
        oauth2_command: None,
        folders: Folders::Named(folders),
        root,
        form: Form { compressed, encrypted },
        level: DEFAULT_LEVEL,
        keys,
        buffer_size: DEFAULT_BUFFER,
        timeout: DEFAULT_TIMEOUT,
        connections: crate::account::DEFAULT_CONNECTIONS,
        since: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_lines_up_to_the_cap() {
        let mut input = &b"  ann \n\nx"[..];
        assert_eq!(ask(&mut input, "User", None).unwrap(), "ann");
        assert_eq!(ask(&mut input, "Port", Some("993")).unwrap(), "993");
        assert_eq!(ask(&mut input, "Folder", None).unwrap(), "x");
        assert!(ask(&mut input, "More", None).unwrap_err().to_string().contains("end of input"));
        let mut endless = io::BufReader::new(io::repeat(b'y'));
        let e = ask(&mut endless, "Email password", None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "wizard: reading the answer to \"Email password\": a line longer than 65536 bytes");
    }
}
