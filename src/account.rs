//! One account to back up, with every setting resolved, whether it came from the
//! command line, the JSON config or the wizard.

use std::path::PathBuf;

use crate::codec::Form;
use crate::error::{Error, Result};
use crate::imap::tls::{Names, FLAG_NAMES};
use crate::keys::KeySpec;
use crate::secret::{self, Secret, Sources};

/// Which folders to back up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Folders {
    /// These folders, by name.
    Named(Vec<String>),
    /// Every selectable folder the server lists, except those matching a pattern.
    All {
        /// IMAP wildcard patterns (`*`, `%`) of folders to skip.
        exclude: Vec<String>,
    },
}

/// Default memory budget of one fetch command: the `imap` crate holds a whole answer,
/// in a vector that may be twice its size, so this is most of the peak memory.
pub const DEFAULT_BUFFER: usize = 1024 * 1024;
/// Default number of connections per account: pipelining already hides the round trips
/// (README, Benchmarks), and each more connection costs memory and counts against the
/// server's per-user limit.
pub const DEFAULT_CONNECTIONS: usize = 1;
/// Most connections per account: servers limit them (Gmail to 15, many to 5-10 per address).
pub const MAX_CONNECTIONS: usize = 8;
/// Default wait for a silent server, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;
/// Smallest budget accepted: below it the fetch overhead dominates.
pub const MIN_BUFFER: usize = 64 * 1024;
/// Largest budget accepted: peak memory is about twice the budget, and beyond this
/// batching gains nothing while a NAS box or router runs out of memory.
pub const MAX_BUFFER: usize = 64 * 1024 * 1024;

/// `n` as a fetch budget, when it is one of the accepted sizes ([`MIN_BUFFER`] to
/// [`MAX_BUFFER`]): the one check of them, whichever way the size is given.
pub fn buffer_size(n: u64) -> Option<usize> {
    usize::try_from(n).ok().filter(|n| (MIN_BUFFER..=MAX_BUFFER).contains(n))
}

/// The accepted buffer sizes, for messages: "from 64K to 64M (65536 to 67108864 bytes)".
pub fn buffer_range() -> String {
    format!("from {}K to {}M ({MIN_BUFFER} to {MAX_BUFFER} bytes)", MIN_BUFFER >> 10, MAX_BUFFER >> 20)
}

/// An account's settings.
#[derive(Clone, Debug)]
pub struct Account {
    /// The login name (`-u`, config `user`).
    pub user: String,
    /// The IMAP server's host name or address (`-i`, config `imap`).
    pub host: String,
    /// Its port (`--port`); `None`: 993, or 143 with STARTTLS.
    pub port: Option<u16>,
    /// Start in plain text and upgrade with STARTTLS (`--starttls`).
    pub starttls: bool,
    /// More certificates to trust for the server (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// The one server certificate to accept, by its SHA-256 fingerprint (`--pin-sha256`).
    pub pin_sha256: Option<String>,
    /// The password given directly (`-p`, config `passwd`).
    pub password: Option<Secret>,
    /// A command whose output is the password (`--passwd-command`).
    pub passwd_command: Option<String>,
    /// A command whose output is an OAuth 2.0 access token (`--oauth2-token-command`).
    pub oauth2_command: Option<String>,
    /// OAuth 2.0 built in (`--oauth2`, config `"oauth2"`): tokens from the stored refresh
    /// token, renewed by the run itself.
    pub oauth2: Option<crate::oauth2::Settings>,
    /// Which folders to back up.
    pub folders: Folders,
    /// The archive root.
    pub root: PathBuf,
    /// The layers of the files written: compressed (`-z`), encrypted (`-e`).
    pub form: Form,
    /// The compression level (`--compress-level`).
    pub level: u8,
    /// The key file, when encrypting.
    pub keys: Option<KeySpec>,
    /// The memory budget for one fetch, in bytes (`--buffer-size`).
    pub buffer_size: usize,
    /// Longest wait for the server, in seconds.
    pub timeout: u64,
    /// Connections to the server at most, each backing up folders of its own.
    pub connections: usize,
    /// `--since`: only messages whose INTERNALDATE is on or after this day.
    pub since: Option<crate::date::Day>,
    /// Send commands that do not wait for each other together (false: `--no-pipelining`,
    /// config `"pipelining": false`, for a server that mishandles it).
    pub pipelining: bool,
    /// Gmail mode where the server offers it (`X-GM-EXT-1`): bodies from All Mail only,
    /// the other folders hard-linked (`--no-gmail-mode`, config `"gmail_mode": 0` turn it off).
    pub gmail_mode: bool,
    /// Verified prune after the backup (`--prune-older-than`, config `"prune_older_than"`);
    /// `None`: the server is never written to.
    pub prune: Option<crate::prune::Settings>,
    /// What its settings are called in messages: the flags, or the config file's keys.
    pub names: &'static Names,
}

/// The credential an account logs in with.
#[derive(Clone, Debug)]
pub enum Credential {
    /// LOGIN / AUTHENTICATE PLAIN.
    Password(Secret),
    /// AUTHENTICATE XOAUTH2 with an access token.
    OAuth2(Secret),
}

/// The command an account's credential comes from (see [`Account::credential_command`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialCommand<'a> {
    /// The shell command.
    pub command: &'a str,
    /// It prints an OAuth2 access token, not a password.
    pub oauth2: bool,
}

impl CredentialCommand<'_> {
    /// What it prints, for messages.
    pub fn what(&self) -> &'static str {
        if self.oauth2 {
            "OAuth2 token"
        } else {
            "email password"
        }
    }
}

impl Account {
    /// An account with every setting at its default: INBOX, neither compressed nor
    /// encrypted, named by the command line's flags in messages.
    pub fn new(user: String, host: String, root: PathBuf) -> Account {
        Account {
            user,
            host,
            port: None,
            starttls: false,
            ca_file: None,
            pin_sha256: None,
            password: None,
            passwd_command: None,
            oauth2_command: None,
            folders: Folders::Named(vec!["INBOX".into()]),
            root,
            form: Form { compressed: false, encrypted: false },
            level: crate::codec::DEFAULT_LEVEL,
            keys: None,
            buffer_size: DEFAULT_BUFFER,
            timeout: DEFAULT_TIMEOUT,
            connections: DEFAULT_CONNECTIONS,
            since: None,
            pipelining: true,
            gmail_mode: true,
            prune: None,
            oauth2: None,
            names: &FLAG_NAMES,
        }
    }

    /// The command [`Account::credential`] gets the credential from, if it does (the
    /// same order): a backup runs it again for a fresh one during the run.
    pub fn credential_command(&self) -> Option<CredentialCommand<'_>> {
        if self.oauth2.is_some() {
            return None;
        }
        if let Some(command) = &self.oauth2_command {
            return Some(CredentialCommand { command, oauth2: true });
        }
        if self.password.is_some() {
            return None;
        }
        self.passwd_command.as_deref().map(|command| CredentialCommand { command, oauth2: false })
    }

    /// `user@host` for messages.
    pub fn label(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.starttls { 143 } else { 993 })
    }

    /// Checks settings that can be checked before any work.
    pub fn validate(&self) -> Result<()> {
        if self.user.is_empty() || self.host.is_empty() {
            return Err(Error::usage("the user name and the IMAP server must not be empty"));
        }
        if let Folders::Named(f) = &self.folders {
            if f.is_empty() {
                return Err(Error::usage(format!("{}: no folder to back up", self.label())));
            }
        }
        if self.oauth2.as_ref().is_some_and(|o| o.seal) && self.keys.is_none() {
            return Err(Error::usage(format!(
                "{}: sealing the OAuth2 token needs the archive's key: encrypt the archive (-e, config \"encrypt\")",
                self.label()
            )));
        }
        Ok(())
    }

    /// Obtains the credential: token command, given password, password command,
    /// `SMAILARCHIVER_PASSWD`, else the terminal.
    pub fn credential(&self) -> Result<Credential> {
        if self.oauth2.is_some() {
            // Its token comes from its token source (`oauth2::login::source_for`).
            return Err(Error::runtime("the OAuth2 token comes from the token file, not from a command"));
        }
        if let Some(cmd) = &self.oauth2_command {
            let token = secret::run_command(cmd, "OAuth2 token")?;
            if token.is_empty() {
                return Err(Error::runtime("the OAuth2 token command printed nothing"));
            }
            return Ok(Credential::OAuth2(Secret::new(token)));
        }
        if let Some(pw) = &self.password {
            return Ok(Credential::Password(pw.clone()));
        }
        let sources = Sources {
            what: "email password",
            command: self.passwd_command.as_deref(),
            env: Some("SMAILARCHIVER_PASSWD"),
            // As the key password: one line of piped input (read first when both are).
            stdin_line: true,
            hint:
                ": give --passwd-command (config \"passwd_cmd\"), SMAILARCHIVER_PASSWD, or one line on standard input",
            ..Sources::default()
        };
        // No label here: the backup names the account in front of every error of it.
        sources.obtain().map(Credential::Password)
    }
}
