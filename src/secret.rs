//! Secrets (passwords, tokens) and where they come from: a file, a command, the
//! environment, or the terminal. A secret is never printed, not even by `Debug`.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};

/// A password or token; its `Debug` form is redacted and its memory wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // SAFETY: zero bytes are valid UTF-8; volatile so the wipe is not optimised away.
        for b in unsafe { self.0.as_bytes_mut() } {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// Where to look for one secret, in order: file, command, environment, terminal/stdin.
#[derive(Clone, Debug, Default)]
pub struct Sources<'a> {
    /// What the secret is, for messages ("key password").
    pub what: &'a str,
    /// A file whose first line is the secret.
    pub file: Option<&'a Path>,
    /// A shell command whose standard output's first line is the secret.
    pub command: Option<&'a str>,
    /// An environment variable holding the secret.
    pub env: Option<&'a str>,
    /// Ask twice on a terminal (a new key file's password).
    pub confirm: bool,
    /// Without a terminal, read one line of standard input (else: an error).
    pub stdin_line: bool,
}

impl Sources<'_> {
    /// Obtains the secret from the first source that is set; empty secrets are errors.
    pub fn obtain(&self) -> Result<Secret> {
        let (secret, origin) = if let Some(path) = self.file {
            let text = fs::read(path).at(path)?;
            (first_line(text), format!("file {}", path.display()))
        } else if let Some(cmd) = self.command {
            (run_command(cmd, self.what)?, "command".to_string())
        } else if let Some(value) = self.env.and_then(|var| std::env::var(var).ok().map(|v| (var, v))) {
            (value.1, format!("environment variable {}", value.0))
        } else if io::stdin().is_terminal() {
            (self.prompt()?, "terminal".to_string())
        } else if !self.stdin_line {
            return Err(Error::runtime(format!("no {} given, and no terminal to ask for it", self.what)));
        } else {
            let mut line = String::new();
            io::stdin().lock().read_line(&mut line).doing(&format!("reading the {} from standard input", self.what))?;
            (trim_newline(line), "standard input".to_string())
        };
        if secret.is_empty() {
            return Err(Error::runtime(format!("empty {} (from {origin})", self.what)));
        }
        Ok(Secret(secret))
    }

    fn prompt(&self) -> Result<String> {
        let ask = |label: &str| -> Result<String> {
            let mut err = io::stderr();
            let _ = write!(err, "{label}: ");
            let _ = err.flush();
            let stdin = io::stdin();
            let _guard = crate::os::EchoOff::new(&stdin).doing("switching terminal echo off")?;
            let mut line = String::new();
            stdin.lock().read_line(&mut line).doing("reading from the terminal")?;
            Ok(trim_newline(line))
        };
        let first = ask(&capitalise(self.what))?;
        if self.confirm && !first.is_empty() && ask(&format!("{} again", capitalise(self.what)))? != first {
            return Err(Error::runtime(format!("the two {}s differ", self.what)));
        }
        Ok(first)
    }
}

/// Runs `cmd` with `sh -c` and returns the first line of its output.
pub fn run_command(cmd: &str, what: &str) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .doing(&format!("running the {what} command"))?;
    if !out.status.success() {
        return Err(Error::runtime(format!("the {what} command failed ({})", out.status)));
    }
    Ok(first_line(out.stdout))
}

fn first_line(bytes: Vec<u8>) -> String {
    let text = String::from_utf8_lossy(&bytes);
    trim_newline(text.lines().next().unwrap_or("").to_string())
}

fn trim_newline(mut s: String) -> String {
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    s
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_command_then_env() {
        let dir = std::env::temp_dir().join(format!("secret-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        fs::write(&file, "from file\nsecond line\n").unwrap();
        let s = Sources { what: "key password", file: Some(&file), command: Some("echo cmd"), ..Default::default() };
        assert_eq!(s.obtain().unwrap().expose(), "from file");
        let s = Sources { what: "key password", command: Some("printf 'cmd pw\\r\\nrest'"), ..Default::default() };
        assert_eq!(s.obtain().unwrap().expose(), "cmd pw");
        let s = Sources { what: "key password", command: Some("exit 3"), ..Default::default() };
        assert!(s.obtain().unwrap_err().to_string().contains("command failed"));
        fs::write(&file, "\n").unwrap();
        let s = Sources { what: "key password", file: Some(&file), ..Default::default() };
        assert!(s.obtain().unwrap_err().to_string().starts_with("empty key password"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "Secret(***)");
    }
}
