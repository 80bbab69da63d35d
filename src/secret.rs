//! Secrets (passwords, tokens) and where they come from: a file, a command, the
//! environment, or the terminal. A secret is never printed, not even by `Debug`.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::bounded;
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
        crate::os::wipe_str(&mut self.0);
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
    /// The ways to give the secret, for the error when none did (", or ...").
    pub hint: &'a str,
}

impl Sources<'_> {
    /// Obtains the secret from the first source that is set; empty secrets are errors.
    pub fn obtain(&self) -> Result<Secret> {
        let (secret, origin) = if let Some(path) = self.file {
            let line = File::open(path)
                .and_then(|f| bounded::read_line(&mut BufReader::new(f), bounded::SECRET))
                .map_err(|e| self.line_error(&format!("{} file {}", self.what, path.display()), &e))?;
            (trim_newline(lossy(line.unwrap_or_default())), format!("file {}", path.display()))
        } else if let Some(cmd) = self.command {
            (run_command(cmd, self.what)?, "command".to_string())
        } else if let Some(value) = self.env.and_then(|var| std::env::var(var).ok().map(|v| (var, v))) {
            (value.1, format!("environment variable {}", value.0))
        } else if io::stdin().is_terminal() {
            (self.prompt()?, "terminal".to_string())
        } else if !self.stdin_line {
            return Err(self.none_given("no terminal to ask for it"));
        } else {
            let line = read_text_line(&mut io::stdin().lock())
                .map_err(|e| self.line_error(&format!("{} from standard input", self.what), &e))?;
            // Standard input at its end (cron's /dev/null) gave nothing: say what would.
            let Some(line) = line else { return Err(self.none_given("standard input is empty")) };
            (trim_newline(line), "standard input".to_string())
        };
        if secret.is_empty() {
            return Err(Error::runtime(format!("empty {} (from {origin})", self.what)));
        }
        Ok(Secret(secret))
    }

    /// No source gave the secret: the error names the ways to give it.
    fn none_given(&self, why: &str) -> Error {
        Error::runtime(format!("no {} given, and {why}{}", self.what, self.hint))
    }

    fn prompt(&self) -> Result<String> {
        let ask = |label: &str| -> Result<String> {
            let mut err = io::stderr();
            let _ = write!(err, "{label}: ");
            let _ = err.flush();
            let stdin = io::stdin();
            let _guard = crate::os::EchoOff::new(&stdin).doing("switching terminal echo off")?;
            let line = read_text_line(&mut stdin.lock())
                .map_err(|e| self.line_error(&format!("{} from the terminal", self.what), &e))?;
            Ok(trim_newline(line.unwrap_or_default()))
        };
        let first = ask(&capitalise(self.what))?;
        if self.confirm && !first.is_empty() && ask(&format!("{} again", capitalise(self.what)))? != first {
            return Err(Error::runtime(format!("the two {}s differ", self.what)));
        }
        Ok(first)
    }

    /// A failed read of the secret's line from `source`; an overlong line says it cannot
    /// be the secret.
    fn line_error(&self, source: &str, e: &io::Error) -> Error {
        let why = crate::error::describe_io(e);
        if bounded::is_too_large(e) {
            Error::runtime(format!("{source}: {why}, not {}", a(self.what)))
        } else {
            Error::runtime(format!("{source}: {why}"))
        }
    }
}

/// One line of UTF-8 text, at most [`bounded::SECRET`] bytes; `None` at the end of input.
/// The buffer becomes the string without a copy, so the [`Secret`] holding it wipes the
/// only copy.
fn read_text_line(input: &mut impl BufRead) -> io::Result<Option<String>> {
    let Some(line) = bounded::read_line(input, bounded::SECRET)? else { return Ok(None) };
    String::from_utf8(line).map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// How a secret's command went wrong, wherever it ran: here, or in the credential helper
/// (`crate::credential_helper`); one wording for both.
#[derive(Debug)]
pub enum CommandError {
    /// It could not be started.
    Start(io::Error),
    /// Its output could not be read; it was stopped.
    Read(io::Error),
    /// It printed more than [`bounded::SECRET`] bytes; it was stopped.
    TooLarge,
    /// It ended unsuccessfully.
    Failed(ExitStatus),
}

impl CommandError {
    /// The one-line error, `what` naming the secret ("OAuth2 token").
    pub fn error(&self, what: &str) -> Error {
        Error::runtime(match self {
            CommandError::Start(e) => format!("running the {what} command: {}", crate::error::describe_io(e)),
            CommandError::Read(e) => {
                format!("the {what} command reading its output: {}", crate::error::describe_io(e))
            }
            CommandError::TooLarge => {
                format!("the {what} command printed more than {} bytes, not {}; stopped it", bounded::SECRET, a(what))
            }
            CommandError::Failed(status) => format!("the {what} command failed ({status})"),
        })
    }
}

/// Runs `cmd` with `sh -c` and returns the first line of its output. The whole output
/// is read (a command may print more lines, and must not die of a closed pipe before it
/// exits) but only up to [`bounded::SECRET`] bytes: past that the command is killed.
pub fn run_command(cmd: &str, what: &str) -> Result<String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CommandError::Start(e).error(what))?;
    let output = match child.stdout.take() {
        // Dropping the pipe here lets anything still writing to it fail with EPIPE.
        Some(stdout) => bounded::read_to_end(stdout, bounded::SECRET),
        None => Err(io::Error::other("no pipe to its output")),
    };
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            // Killing only the shell is enough: a grandchild still writing meets the
            // closed pipe. The result of kill does not matter, the command may have ended.
            let _ = child.kill();
            let _ = child.wait();
            let failure = if bounded::is_too_large(&e) { CommandError::TooLarge } else { CommandError::Read(e) };
            return Err(failure.error(what));
        }
    };
    let status = child.wait().doing(&format!("waiting for the {what} command"))?;
    if !status.success() {
        return Err(CommandError::Failed(status).error(what));
    }
    Ok(first_line(&output))
}

/// The first line of a command's output, without its line end; invalid UTF-8 replaced.
pub fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    trim_newline(text.lines().next().unwrap_or("").to_string())
}

/// Text from bytes, invalid UTF-8 replaced (as the file source always did); valid text is
/// taken over without a copy.
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `what` with its indefinite article, for "not a key password", "not an OAuth2 token".
fn a(what: &str) -> String {
    let vowel = what.chars().next().is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {what}", if vowel { "an" } else { "a" })
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
    use std::fs;

    const SECRET_CAP: usize = bounded::SECRET;

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
    fn endless_sources_stop_at_the_cap() {
        let s = Sources { what: "key password", file: Some(Path::new("/dev/zero")), ..Default::default() };
        assert_eq!(
            s.obtain().unwrap_err().to_string(),
            "key password file /dev/zero: a line longer than 65536 bytes, not a key password"
        );
        let e = run_command("yes", "OAuth2 token").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the OAuth2 token command printed more than 65536 bytes, not an OAuth2 token; stopped it"
        );
        // Output up to the cap is fine, whatever follows the first line.
        let long = format!("printf 'pw\\n'; head -c {} /dev/zero", SECRET_CAP - 3);
        assert_eq!(run_command(&long, "key password").unwrap(), "pw");
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "Secret(***)");
    }
}
