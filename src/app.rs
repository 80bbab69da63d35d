//! What the tool does for a given command line: the high-level modes resolved from the
//! flags, and running them with honest exit codes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::account::{Account, Folders, DEFAULT_BUFFER, DEFAULT_CONNECTIONS, DEFAULT_TIMEOUT};
use crate::codec::{Form, DEFAULT_LEVEL};
use crate::error::IoContext;
use crate::error::{Error, Result, EXIT_FAILURE};
use crate::flags::{self, LowArgs};
use crate::keys::Keys;
use crate::keys::{KeySpec, PasswordSpec};
use crate::sandbox::{self, Rules};
use crate::secret::Secret;
use crate::{archive, backends, backup, config, restore, verify, wizard};

/// What the command line asks for.
#[derive(Debug)]
pub enum Mode {
    /// Print the help.
    Help,
    /// Print the version.
    Version,
    /// Restore a folder directory, or every folder of a user directory.
    Restore { dir: PathBuf, output: RestoreOutput, keys: KeySpec },
    /// Verify an archive.
    Verify { path: PathBuf, keys: KeySpec },
    /// Report and prove what the sandbox confines.
    SandboxCheck { root: PathBuf, port: u16 },
    /// Back up these accounts.
    Backup { accounts: Vec<Account> },
    /// List these accounts' folders.
    ListFolders { accounts: Vec<Account> },
    /// Ask for an account, then back it up.
    Wizard,
}

/// Where `-r` writes, as the flags say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreOutput {
    /// The original's `DIR.mbox` (for a user directory: an error asking for `-o`).
    Default,
    /// `-o PATH`: the mbox file, or for a user directory the directory of mbox files.
    Mbox(PathBuf),
    /// `--to-maildir OUT`.
    Maildir(PathBuf),
}

pub use crate::report::Output;

/// Prints a run's messages: results and details on stdout, the rest on stderr, each
/// filtered by the output settings.
pub struct Printer {
    /// How much to say.
    pub out: Output,
}

impl crate::report::Sink for Printer {
    fn result(&self, text: &str) {
        if !self.out.quiet {
            println!("{text}");
        }
    }

    fn detail(&self, text: &str) {
        if self.out.verbose {
            println!("{text}");
        }
    }

    fn warning(&self, text: &str) {
        warn(text);
    }

    fn remark(&self, text: &str) {
        if self.out.verbose {
            warn(text);
        }
    }

    fn error(&self, text: &str) {
        eprintln!("smailarchiver: error: {text}");
    }
}

/// What every mode shares: output and confinement.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// How much to say.
    pub out: Output,
    /// How strictly to confine the process.
    pub sandbox: sandbox::Mode,
}

impl LowArgs {
    /// The key file and password sources the flags describe.
    fn key_spec(&self) -> KeySpec {
        let password = (self.promp || self.key_password_file.is_some() || self.key_password_command.is_some())
            .then(|| PasswordSpec { file: self.key_password_file.clone(), command: self.key_password_command.clone() });
        KeySpec { path: self.keys.clone().unwrap_or_else(|| PathBuf::from("keys")), password }
    }

    /// Turns the flags into what to do; contradictions are usage errors.
    pub fn resolve(&self) -> Result<(Mode, Settings)> {
        let (mode, out, config_sandbox) = self.resolve_mode()?;
        let sandbox = match self.sandbox.as_deref().or(config_sandbox.as_deref()) {
            Some(m) => sandbox::Mode::parse(m)?,
            None => sandbox::Mode::default(),
        };
        Ok((mode, Settings { out, sandbox }))
    }

    fn resolve_mode(&self) -> Result<(Mode, Output, Option<String>)> {
        if self.quiet && self.verbose {
            return Err(Error::usage("--quiet and --verbose contradict each other"));
        }
        let out = Output { quiet: self.quiet, verbose: self.verbose };
        if self.help {
            return Ok((Mode::Help, out, None));
        }
        if self.version {
            return Ok((Mode::Version, out, None));
        }
        if self.sandbox_check {
            let root = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
            return Ok((Mode::SandboxCheck { root, port: self.port.unwrap_or(993) }, out, None));
        }
        if (self.to_maildir.is_some() || self.output.is_some()) && self.restore.is_none() {
            return Err(Error::usage("-o and --to-maildir go with -r DIR"));
        }
        if self.to_maildir.is_some() && self.output.is_some() {
            return Err(Error::usage("-o and --to-maildir cannot be combined"));
        }
        let backup_flags = self.user.is_some()
            || self.imap.is_some()
            || self.config.is_some()
            || self.all_folders
            || !self.folders.is_empty();
        let mode = match (&self.restore, &self.verify) {
            (Some(_), Some(_)) => return Err(Error::usage("-r and --verify cannot be combined")),
            (Some(_), None) | (None, Some(_)) if backup_flags => {
                return Err(Error::usage("-r/--verify cannot be combined with backup options (-u, -i, -f, -c)"))
            }
            (Some(dir), None) => Mode::Restore {
                dir: dir.clone(),
                output: match (&self.output, &self.to_maildir) {
                    (_, Some(out)) => RestoreOutput::Maildir(out.clone()),
                    (Some(path), None) => RestoreOutput::Mbox(path.clone()),
                    (None, None) => RestoreOutput::Default,
                },
                keys: self.key_spec(),
            },
            (None, Some(path)) => Mode::Verify { path: path.clone(), keys: self.key_spec() },
            (None, None) if self.count == 0 => Mode::Wizard,
            (None, None) => {
                let (mode, out, sandbox) = self.backup(out)?;
                return Ok(match mode {
                    Mode::Backup { accounts } if self.list_folders => (Mode::ListFolders { accounts }, out, sandbox),
                    mode => (mode, out, sandbox),
                });
            }
        };
        Ok((mode, out, None))
    }
}

impl LowArgs {
    /// The backup the flags (or the config file they name) describe.
    fn backup(&self, mut out: Output) -> Result<(Mode, Output, Option<String>)> {
        let root = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        if !self.exclude.is_empty() && !self.all_folders && self.config.is_none() {
            return Err(Error::usage("--exclude goes with --all-folders"));
        }
        if self.all_folders && !self.folders.is_empty() {
            return Err(Error::usage("-f and --all-folders cannot be combined"));
        }
        let mut config_sandbox = None;
        let mut accounts = if let Some(path) = &self.config {
            let account_flags = self.user.is_some()
                || self.imap.is_some()
                || self.passwd.is_some()
                || !self.folders.is_empty()
                || self.all_folders
                || self.encrypt
                || self.compress;
            if account_flags {
                return Err(Error::usage(
                    "account options (-u, -i, -p, -f, -e, -z, --all-folders) go in the config file when -c is used",
                ));
            }
            let config = config::load(path, &root)?;
            if !config.unknown.is_empty() && !self.quiet {
                warn(format!("config {}: unknown keys ignored: {}", path.display(), config.unknown.join(", ")));
            }
            out.verbose |= config.verbose && !out.quiet;
            out.quiet |= config.quiet;
            config_sandbox = config.sandbox;
            config.accounts
        } else {
            let (Some(user), Some(host)) = (&self.user, &self.imap) else {
                return Err(Error::usage(
                    "a backup needs -u USER and -i SERVER (or -c CONFIG; or no arguments at all for the wizard)",
                ));
            };
            if self.passwd.is_some() && !self.quiet {
                warn("warning: -p shows the password to every user of this machine (ps); prefer --passwd-command or SMAILARCHIVER_PASSWD");
            }
            vec![Account {
                user: user.clone(),
                host: host.clone(),
                port: self.port,
                starttls: self.starttls,
                ca_file: self.ca_file.clone(),
                pin_sha256: self.pin_sha256.clone(),
                password: self.passwd.clone().map(Secret::new),
                passwd_command: self.passwd_command.clone(),
                oauth2_command: self.oauth2_token_command.clone(),
                folders: if self.all_folders {
                    Folders::All { exclude: self.exclude.clone() }
                } else if self.folders.is_empty() {
                    Folders::Named(vec!["INBOX".into()])
                } else {
                    Folders::Named(self.folders.clone())
                },
                root,
                form: Form { compressed: self.compress, encrypted: self.encrypt },
                level: self.compress_level.unwrap_or(DEFAULT_LEVEL),
                keys: self.encrypt.then(|| self.key_spec()),
                buffer_size: self.buffer_size.unwrap_or(DEFAULT_BUFFER),
                timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
                connections: self.connections.unwrap_or(DEFAULT_CONNECTIONS),
            }]
        };
        for a in &mut accounts {
            if let Some(size) = self.buffer_size {
                a.buffer_size = size;
            }
            if let Some(t) = self.timeout {
                a.timeout = t;
            }
            if let Some(n) = self.connections {
                a.connections = n;
            }
            a.validate()?;
        }
        Ok((Mode::Backup { accounts }, out, config_sandbox))
    }
}

/// Prints a non-fatal problem on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("smailarchiver: {msg}");
}

/// Runs the tool; returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("smailarchiver: error: {e}");
            e.exit_code()
        }
    }
}

fn run(args: impl IntoIterator<Item = OsString>) -> Result<i32> {
    let low = flags::parse(args)?;
    let (mode, settings) = low.resolve()?;
    let out = settings.out;
    match mode {
        Mode::Help => print!("{}", flags::help()),
        Mode::Version => {
            println!("smailarchiver {}", env!("CARGO_PKG_VERSION"));
            if out.verbose {
                backends::describe().iter().for_each(|(name, value)| println!("{name}: {value}"));
            }
        }
        Mode::Restore { dir, output, keys } => return run_restore(&dir, &output, &keys, settings),
        Mode::Verify { path, keys } => return run_verify(&path, &keys, settings),
        Mode::SandboxCheck { root, port } => {
            let report = sandbox::check(&root, port)?;
            println!("{report}");
            return Ok(if report.passed() { 0 } else { EXIT_FAILURE });
        }
        Mode::Backup { accounts } => return Ok(backup::run(&accounts, out, settings.sandbox, &Printer { out })),
        Mode::ListFolders { accounts } => return Ok(run_list_folders(&accounts, settings)),
        Mode::Wizard => return Ok(backup::run(&[wizard::ask_account()?], out, settings.sandbox, &Printer { out })),
    }
    Ok(0)
}

/// Loads the keys now if any of `files` is encrypted: before the sandbox closes, so a
/// key password command can still run.
fn keys_if_needed(files: &[archive::ArchiveFile], keys: &KeySpec) -> Result<Option<Keys>> {
    if files.iter().any(|f| f.form.encrypted) {
        keys.load().map(Some)
    } else {
        Ok(None)
    }
}

/// Confines the process, saying so in verbose mode when the kernel cannot fully.
fn confine(rules: &Rules, settings: Settings) -> Result<()> {
    let status = sandbox::restrict(rules, settings.sandbox)?;
    if settings.out.verbose && !status.fully_enforced() {
        warn(format!("sandbox: {status}"));
    }
    Ok(())
}

fn loaded(keys: Option<Keys>) -> impl FnOnce() -> Result<Keys> {
    move || keys.ok_or_else(|| Error::runtime("no keys loaded"))
}

fn run_restore(dir: &Path, output: &RestoreOutput, keys: &KeySpec, settings: Settings) -> Result<i32> {
    if restore::account::is_account_dir(dir)? {
        return run_account_restore(dir, output, keys, settings);
    }
    let out = settings.out;
    let keys = keys_if_needed(&archive::list_folder(dir)?, keys)?;
    // Read before confinement: the records are outside the folder directory.
    let name = restore::account::folder_name(dir);
    let target = match output {
        RestoreOutput::Default => restore::Target::Mbox(restore::mbox_path(dir)?),
        RestoreOutput::Mbox(path) => restore::Target::Mbox(path.clone()),
        RestoreOutput::Maildir(path) => restore::Target::Maildir(path.clone()),
    };
    let rules = match &target {
        restore::Target::Mbox(output) => Rules {
            read_write: vec![restore::parent_of(output).to_path_buf()],
            read: vec![dir.to_path_buf()],
            ..Rules::default()
        },
        restore::Target::Maildir(maildir) => {
            std::fs::create_dir_all(maildir).at(maildir)?;
            Rules {
                read_write: vec![maildir.clone()],
                read: vec![dir.to_path_buf()],
                cross_dir_renames: true,
                ..Rules::default()
            }
        }
    };
    confine(&rules, settings)?;
    let report = restore::restore(dir, &target, keys.as_ref(), &mut |path, why| {
        warn(format!("left out {}: {why}", path.display()))
    })?;
    if !out.quiet {
        println!("{}", restored_line(&report, name.as_deref()));
    }
    Ok(if report.failed.is_empty() { 0 } else { EXIT_FAILURE })
}

/// `restored N messages (B bytes) [of NAME] to PATH[; K file(s) failed]`.
fn restored_line(report: &restore::Report, name: Option<&str>) -> String {
    format!(
        "restored {} message{} ({} bytes){} to {}{}",
        report.restored,
        if report.restored == 1 { "" } else { "s" },
        report.bytes,
        name.map(|n| format!(" of {}", crate::printable::escape(n))).unwrap_or_default(),
        report.output.display(),
        if report.failed.is_empty() { String::new() } else { format!("; {} file(s) failed", report.failed.len()) }
    )
}

/// `-r ROOT/USER`: every folder of the account, each under its real name.
fn run_account_restore(dir: &Path, output: &RestoreOutput, keys: &KeySpec, settings: Settings) -> Result<i32> {
    use restore::account::{self, AccountTarget};
    let (folders, problem) = account::folders(dir)?;
    if let Some(p) = problem {
        warn(format!("warning: {p}; folders are named after their directories"));
    }
    let target = match output {
        RestoreOutput::Mbox(path) => AccountTarget::MboxDir(path.clone()),
        RestoreOutput::Maildir(path) => AccountTarget::Maildir(path.clone()),
        RestoreOutput::Default => {
            return Err(Error::usage(format!(
                "{} holds the folders of an account ({}): give -o OUTDIR for one mbox file per folder, or --to-maildir OUT for one Maildir++ tree",
                dir.display(),
                folders.len()
            )))
        }
    };
    let keys = keys_if_needed(&archive::walk(dir)?, keys)?;
    let out_dir = match &target {
        AccountTarget::MboxDir(p) | AccountTarget::Maildir(p) => p.clone(),
    };
    std::fs::create_dir_all(&out_dir).at(&out_dir)?;
    confine(
        &Rules {
            read_write: vec![out_dir],
            read: vec![dir.to_path_buf()],
            cross_dir_renames: true,
            ..Rules::default()
        },
        settings,
    )?;
    let mut taken = Vec::new();
    let mut failed = 0;
    for folder in &folders {
        let folder_target = account::output_for(folder, &target, &taken);
        let (restore::Target::Mbox(p) | restore::Target::Maildir(p)) = &folder_target;
        taken.push(p.clone());
        let report = account::restore_folder(folder, &folder_target, keys.as_ref(), &mut |path, why| {
            warn(format!("left out {}: {why}", path.display()))
        })?;
        failed += report.failed.len();
        if !settings.out.quiet {
            println!("{}", restored_line(&report, Some(&folder.name())));
        }
    }
    Ok(if failed == 0 { 0 } else { EXIT_FAILURE })
}

/// `--list-folders`: one line per folder of each account; exit 1 if an account failed.
fn run_list_folders(accounts: &[Account], settings: Settings) -> i32 {
    let mut code = 0;
    for (label, listed) in backup::list_folders(accounts, settings.sandbox) {
        match listed {
            Ok(folders) => {
                println!("{label}:");
                for f in folders {
                    let count = f.messages.map_or_else(|| "-".to_string(), |n| n.to_string());
                    let note = if !f.selectable {
                        "not selectable"
                    } else if f.excluded {
                        "excluded"
                    } else {
                        "backed up"
                    };
                    println!(
                        "  {}\twire {}\tdir {}\t{count} messages\t{note}",
                        f.mailbox.shown(),
                        crate::printable::escape(&f.mailbox.wire),
                        crate::printable::escape(&f.dir),
                    );
                }
            }
            Err(e) => {
                eprintln!("smailarchiver: error: {label}: {e}");
                code = EXIT_FAILURE;
            }
        }
    }
    code
}

fn run_verify(path: &Path, keys: &KeySpec, settings: Settings) -> Result<i32> {
    let out = settings.out;
    let keys = keys_if_needed(&archive::walk(path)?, keys)?;
    confine(&Rules { read: vec![path.to_path_buf()], ..Rules::default() }, settings)?;
    let report = verify::verify(path, loaded(keys), &mut |path, why| println!("BAD {}: {why}", path.display()))?;
    if !out.quiet || !report.bad.is_empty() {
        println!(
            "verified {} file{}: {} good, {} bad ({} message bytes)",
            report.checked,
            if report.checked == 1 { "" } else { "s" },
            report.checked - report.bad.len(),
            report.bad.len(),
            report.bytes
        );
    }
    Ok(if report.bad.is_empty() { 0 } else { EXIT_FAILURE })
}
