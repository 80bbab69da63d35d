//! What the tool does for a given command line: the high-level modes resolved from the
//! flags, and running them with honest exit codes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::account::{Account, Folders};
use crate::cli::flags::{self, LowArgs};
use crate::cli::print::backup::BackupPrinter;
use crate::cli::print::restore::RestorePrinter;
use crate::cli::run_report::RunRecord;
use crate::cli::{config, wizard};
use crate::error::IoContext;
use crate::error::{Error, Result};
use crate::exit::EXIT_FAILURE;
use crate::imap::Session;
use crate::keys::Keys;
use crate::keys::{KeySpec, PasswordSpec};
use crate::sandbox::{self, Confine, Rules};
use crate::secret::Secret;
use crate::{archive, backends, backup, interrupt, restore, upload, verify};
use std::sync::Arc;

/// What the command line asks for.
#[derive(Debug)]
pub enum Mode {
    /// Print the help.
    Help,
    /// Print the version.
    Version,
    /// Print the man page or a completion script (`--generate KIND`).
    Generate(String),
    /// Restore a folder directory, or every folder of a user directory.
    Restore { dir: PathBuf, output: RestoreOutput, keys: KeySpec, uids: Option<restore::UidSet> },
    /// List the messages of a folder or user directory.
    List { path: PathBuf, keys: KeySpec },
    /// List the messages a query selects.
    Search { query: Box<crate::search::query::Query>, path: PathBuf, keys: KeySpec },
    /// Upload a folder directory, or every folder of a user directory, to a server.
    Upload { path: PathBuf, account: Box<Account>, to_folder: Option<String>, keys: KeySpec },
    /// Verify an archive.
    Verify { path: PathBuf, keys: KeySpec },
    /// Report and prove what the sandbox confines.
    SandboxCheck { root: PathBuf, port: u16 },
    /// Back up these accounts; write what happened to `report` (`--report`).
    Backup { accounts: Vec<Account>, report: Option<PathBuf> },
    /// List these accounts' folders.
    ListFolders { accounts: Vec<Account> },
    /// Count what a backup of these accounts would fetch.
    DryRun { accounts: Vec<Account> },
    /// Sign these accounts in to their OAuth 2.0 providers (`--oauth2-login`).
    OAuth2Login { accounts: Vec<Account> },
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
    /// `--to-maildir OUT`, a user directory's folders named as `--maildir-layout` says.
    Maildir(PathBuf, crate::restore::layout::MaildirLayout),
}

pub use crate::report::Output;

pub use crate::cli::print::{warn, Printer};

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
        if let Some(kind) = &self.generate {
            return Ok((Mode::Generate(kind.clone()), out, None));
        }
        if self.sandbox_check {
            let root = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
            return Ok((Mode::SandboxCheck { root, port: self.port.unwrap_or(993) }, out, None));
        }
        if self.report.is_some() && (self.restore.is_some() || self.verify.is_some() || self.list_folders) {
            return Err(Error::usage("--report goes with a backup"));
        }
        let prune = self.prune_older_than.is_some() || self.prune_keep_flagged;
        let elsewhere = self.restore.is_some() || self.verify.is_some() || self.list.is_some() || self.search.is_some();
        if prune && (elsewhere || self.list_folders || self.oauth2_login) {
            return Err(Error::usage("--prune-older-than goes with a backup (or its --dry-run)"));
        }
        if self.oauth2_login {
            return self.oauth2_login(out);
        }
        let restore_only = self.to_maildir.is_some() || self.output.is_some() || self.to_imap || self.uid.is_some();
        if restore_only && self.restore.is_none() {
            return Err(Error::usage("-o, --to-maildir, --to-imap and --uid go with -r DIR"));
        }
        if self.to_folder.is_some() && !self.to_imap {
            return Err(Error::usage("--to-folder goes with -r DIR --to-imap"));
        }
        if let Some(text) = &self.search {
            if self.list.is_some() || self.restore.is_some() || self.verify.is_some() {
                return Err(Error::usage("--search cannot be combined with --list, -r or --verify"));
            }
            let path = self.search_path.clone().or_else(|| self.dir.clone()).unwrap_or_else(|| PathBuf::from("."));
            let query = Box::new(crate::search::query::Query::parse(text)?);
            return Ok((Mode::Search { query, path, keys: self.key_spec() }, out, None));
        }
        if let Some(path) = &self.list {
            if self.restore.is_some() || self.verify.is_some() {
                return Err(Error::usage("--list cannot be combined with -r or --verify"));
            }
            return Ok((Mode::List { path: path.clone(), keys: self.key_spec() }, out, None));
        }
        if self.to_imap {
            if self.uid.is_some() {
                return Err(Error::usage("--uid goes with a restore to mbox or Maildir, not with --to-imap"));
            }
            return self.upload(out);
        }
        if self.to_maildir.is_some() && self.output.is_some() {
            return Err(Error::usage("-o and --to-maildir cannot be combined"));
        }
        let backup_flags = self.user.is_some()
            || self.imap.is_some()
            || self.config.is_some()
            || self.all_folders
            || !self.folders.is_empty()
            || self.since.is_some()
            || self.dry_run
            || self.prune_older_than.is_some()
            || self.prune_keep_flagged;
        if self.dry_run && self.list_folders {
            return Err(Error::usage("--dry-run and --list-folders cannot be combined"));
        }
        if self.maildir_layout.is_some() && self.to_maildir.is_none() {
            return Err(Error::usage("--maildir-layout goes with -r DIR --to-maildir OUT"));
        }
        let layout = self.maildir_layout.as_deref().map(crate::restore::layout::MaildirLayout::parse).transpose()?;
        let layout = layout.unwrap_or_default();
        let mode = match (&self.restore, &self.verify) {
            (Some(_), Some(_)) => return Err(Error::usage("-r and --verify cannot be combined")),
            (Some(_), None) | (None, Some(_)) if backup_flags => {
                return Err(Error::usage(
                    "-r/--verify cannot be combined with backup options (-u, -i, -f, -c, --since, --dry-run, --prune-older-than)",
                ))
            }
            (Some(dir), None) => Mode::Restore {
                dir: dir.clone(),
                output: match (&self.output, &self.to_maildir) {
                    (_, Some(out)) => RestoreOutput::Maildir(out.clone(), layout),
                    (Some(path), None) => RestoreOutput::Mbox(path.clone()),
                    (None, None) => RestoreOutput::Default,
                },
                keys: self.key_spec(),
                uids: self.uid.as_deref().map(restore::UidSet::parse).transpose()?,
            },
            (None, Some(path)) => Mode::Verify { path: path.clone(), keys: self.key_spec() },
            (None, None) if self.count == 0 => Mode::Wizard,
            (None, None) => {
                let (mode, out, sandbox) = self.backup(out)?;
                return Ok(match mode {
                    Mode::Backup { accounts, .. } if self.list_folders => {
                        (Mode::ListFolders { accounts }, out, sandbox)
                    }
                    Mode::Backup { accounts, .. } if self.dry_run => (Mode::DryRun { accounts }, out, sandbox),
                    mode => (mode, out, sandbox),
                });
            }
        };
        Ok((mode, out, None))
    }
}

impl LowArgs {
    /// `--oauth2-login`: the accounts to sign in (those of the config that use OAuth2 built
    /// in, or the one of the flags).
    fn oauth2_login(&self, out: Output) -> Result<(Mode, Output, Option<String>)> {
        let elsewhere = self.restore.is_some()
            || self.verify.is_some()
            || self.list.is_some()
            || self.dry_run
            || self.list_folders
            || self.report.is_some();
        if elsewhere {
            return Err(Error::usage("--oauth2-login signs in and exits: it goes with the account's options only"));
        }
        if self.config.is_none() && self.oauth2.is_none() {
            return Err(Error::usage("--oauth2-login needs --oauth2 PROVIDER (or -c CONFIG with \"oauth2\" accounts)"));
        }
        let (mode, out, sandbox) = self.backup(out)?;
        let Mode::Backup { accounts, .. } = mode else { return Err(Error::usage("--oauth2-login needs an account")) };
        let accounts: Vec<Account> = accounts.into_iter().filter(|a| a.oauth2.is_some()).collect();
        if accounts.is_empty() {
            return Err(Error::usage("--oauth2-login: no account of the config file has an \"oauth2\" object"));
        }
        Ok((Mode::OAuth2Login { accounts }, out, sandbox))
    }

    /// The OAuth 2.0 settings the `--oauth2*` flags give (`None` without `--oauth2`).
    fn oauth2_settings(&self) -> Result<Option<crate::oauth2::Settings>> {
        let Some(provider) = &self.oauth2 else {
            let stray = self.oauth2_client_id.is_some()
                || self.oauth2_client_secret_file.is_some()
                || self.oauth2_tenant.is_some()
                || self.oauth2_flow.is_some()
                || self.oauth2_token_file.is_some()
                || self.oauth2_seal;
            if stray {
                return Err(Error::usage("the --oauth2-* options go with --oauth2 PROVIDER"));
            }
            return Ok(None);
        };
        if self.passwd.is_some() || self.passwd_command.is_some() || self.oauth2_token_command.is_some() {
            return Err(Error::usage(
                "--oauth2 logs in with its own tokens: -p, --passwd-command and --oauth2-token-command do not go with it",
            ));
        }
        let given = crate::oauth2::provider::Given {
            provider: Some(provider.clone()),
            tenant: self.oauth2_tenant.clone(),
            client_id: self.oauth2_client_id.clone(),
            client_secret_file: self.oauth2_client_secret_file.clone(),
            flow: self.oauth2_flow.clone(),
            token_file: self.oauth2_token_file.clone(),
            seal: self.oauth2_seal,
            ..Default::default()
        };
        let name = |key: &str| match key {
            "provider" => "--oauth2".to_string(),
            "client_secret" | "client_secret_file" => "--oauth2-client-secret-file".to_string(),
            "client_id" | "tenant" | "flow" | "token_file" => format!("--oauth2-{}", key.replace('_', "-")),
            other => format!("--oauth2 ({other})"),
        };
        given.settings(&name).map(Some)
    }

    /// `-r PATH --to-imap`: the account to upload to, from the flags or the config file.
    fn upload(&self, out: Output) -> Result<(Mode, Output, Option<String>)> {
        if self.to_maildir.is_some() || self.output.is_some() {
            return Err(Error::usage("--to-imap cannot be combined with -o or --to-maildir"));
        }
        if self.all_folders || !self.folders.is_empty() {
            return Err(Error::usage("--to-imap uploads what -r DIR holds: -f and --all-folders do not apply"));
        }
        let path = self.restore.clone().ok_or_else(|| Error::usage("--to-imap goes with -r DIR"))?;
        let (mode, out, sandbox) = self.backup(out)?;
        let Mode::Backup { mut accounts, .. } = mode else { return Err(Error::usage("--to-imap needs an account")) };
        if accounts.len() != 1 {
            return Err(Error::usage(format!(
                "--to-imap uploads to one account; the config file has {}",
                accounts.len()
            )));
        }
        let account = accounts.remove(0);
        let keys = account.keys.clone().unwrap_or_else(|| self.key_spec());
        Ok((Mode::Upload { path, account: Box::new(account), to_folder: self.to_folder.clone(), keys }, out, sandbox))
    }

    /// The backup the flags (or the config file they name) describe. A config file sets
    /// defaults and the flags win: `-u`/`-i` pick its accounts, every other flag
    /// overrides the matching key of each account.
    fn backup(&self, out: Output) -> Result<(Mode, Output, Option<String>)> {
        let root = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        if !self.exclude.is_empty() && !self.all_folders && self.config.is_none() {
            return Err(Error::usage("--exclude goes with --all-folders"));
        }
        if self.all_folders && !self.folders.is_empty() {
            return Err(Error::usage("-f and --all-folders cannot be combined"));
        }
        let (mut accounts, out, config_sandbox, config_report) = match &self.config {
            Some(path) => self.config_accounts(path, &root, out)?,
            None => {
                let (Some(user), Some(host)) = (&self.user, &self.imap) else {
                    return Err(Error::usage(
                        "a backup needs -u USER and -i SERVER (or -c CONFIG; or no arguments at all for the wizard)",
                    ));
                };
                (vec![Account::new(user.clone(), host.clone(), root)], out, None, None)
            }
        };
        let since = self.since.as_deref().map(|d| crate::date::Day::parse(d, "--since")).transpose()?;
        for a in &mut accounts {
            self.override_account(a, since)?;
            a.validate()?;
        }
        let report = self.report.clone().or(config_report);
        // Said once the flags are known to make a run: a usage error stays one line.
        if self.passwd.is_some() && !self.quiet {
            warn("warning: -p shows the password to every user of this machine (ps); prefer --passwd-command or SMAILARCHIVER_PASSWD");
        }
        Ok((Mode::Backup { accounts, report }, out, config_sandbox))
    }

    /// The accounts of the config file `path` that `-u`/`-i` pick (all without them), and
    /// the output, sandbox and report it sets where the flags do not.
    #[allow(clippy::type_complexity)]
    fn config_accounts(
        &self,
        path: &Path,
        root: &Path,
        mut out: Output,
    ) -> Result<(Vec<Account>, Output, Option<String>, Option<PathBuf>)> {
        let config = config::load(path, root)?;
        if !self.quiet && !self.verbose {
            out.quiet = config.quiet;
            out.verbose = config.verbose && !config.quiet;
        }
        if !config.unknown.is_empty() && !out.quiet {
            warn(format!("warning: config {}: unknown keys ignored: {}", path.display(), config.unknown.join(", ")));
        }
        let all: Vec<String> = config.accounts.iter().map(Account::label).collect();
        let picked: Vec<Account> = config
            .accounts
            .into_iter()
            .filter(|a| {
                self.user.as_ref().is_none_or(|u| *u == a.user) && self.imap.as_ref().is_none_or(|h| *h == a.host)
            })
            .collect();
        if picked.is_empty() {
            let wanted = match (&self.user, &self.imap) {
                (Some(u), Some(h)) => format!("{u}@{h}"),
                (Some(u), None) => format!("user {u}"),
                (None, Some(h)) => format!("server {h}"),
                (None, None) => unreachable!("a config holds at least one account"),
            };
            return Err(Error::usage(format!(
                "config {}: no account of {wanted} (it has {})",
                path.display(),
                all.join(", ")
            )));
        }
        Ok((picked, out, config.sandbox, config.report))
    }

    /// Sets what the flags say on an account (from the config file or from `-u`/`-i`).
    fn override_account(&self, a: &mut Account, since: Option<crate::date::Day>) -> Result<()> {
        if let Some(settings) = self.oauth2_settings()? {
            a.oauth2 = Some(settings);
            a.password = None;
        }
        if self.no_pipelining {
            a.pipelining = false;
        }
        if self.no_gmail_mode {
            a.gmail_mode = false;
        }
        if self.port.is_some() {
            a.port = self.port;
        }
        a.starttls |= self.starttls;
        if self.ca_file.is_some() || self.pin_sha256.is_some() {
            a.ca_file = self.ca_file.clone();
            a.pin_sha256 = self.pin_sha256.clone();
        }
        if self.starttls || self.ca_file.is_some() || self.pin_sha256.is_some() {
            a.names = &crate::imap::tls::FLAG_NAMES;
        }
        if let Some(pw) = &self.passwd {
            a.password = Some(Secret::new(pw.clone()));
            a.oauth2_command = None;
        }
        if let Some(cmd) = &self.passwd_command {
            a.passwd_command = Some(cmd.clone());
            if self.passwd.is_none() {
                a.password = None;
            }
            a.oauth2_command = None;
        }
        if let Some(cmd) = &self.oauth2_token_command {
            a.oauth2_command = Some(cmd.clone());
        }
        if self.all_folders {
            a.folders = Folders::All { exclude: self.exclude.clone() };
        } else if !self.folders.is_empty() {
            a.folders = Folders::Named(self.folders.clone());
        } else if !self.exclude.is_empty() {
            match &mut a.folders {
                Folders::All { exclude } => exclude.clone_from(&self.exclude),
                Folders::Named(_) => {
                    return Err(Error::usage(format!(
                        "{}: --exclude goes with --all-folders (or \"all_folders\" in the config)",
                        a.label()
                    )))
                }
            }
        }
        if let Some(dir) = &self.dir {
            a.root = dir.clone();
        }
        a.form.compressed |= self.compress;
        if let Some(level) = self.compress_level {
            a.level = level;
        }
        if self.encrypt && !a.form.encrypted {
            a.form.encrypted = true;
        }
        if a.form.encrypted {
            let flags = self.key_spec();
            let keys = a.keys.get_or_insert_with(|| flags.clone());
            if self.keys.is_some() {
                keys.path = flags.path.clone();
            }
            if let Some(flag_password) = flags.password {
                let spec = keys.password.get_or_insert_with(PasswordSpec::default);
                if flag_password.file.is_some() || flag_password.command.is_some() {
                    *spec = flag_password;
                }
            }
        }
        if let Some(size) = self.buffer_size {
            a.buffer_size = size;
        }
        if let Some(t) = self.timeout {
            a.timeout = t;
        }
        if let Some(n) = self.connections {
            a.connections = n;
        }
        if since.is_some() {
            a.since = since;
        }
        if let Some(days) = self.prune_older_than {
            let keep_flagged = a.prune.as_ref().is_some_and(|p| p.keep_flagged);
            a.prune = Some(crate::prune::Settings { days: Some(days), folders: Vec::new(), keep_flagged });
        }
        if self.prune_keep_flagged {
            match &mut a.prune {
                Some(p) => p.keep_flagged = true,
                None => return Err(Error::usage(
                    "--prune-keep-flagged goes with --prune-older-than DAYS (or \"prune_older_than\" in the config)",
                )),
            }
        }
        Ok(())
    }
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
    match mode {
        Mode::Help => print!("{}", flags::help()),
        Mode::Version => {
            println!("smailarchiver {}", env!("CARGO_PKG_VERSION"));
            if settings.out.verbose {
                backends::describe().iter().for_each(|(name, value)| println!("{name}: {value}"));
            }
        }
        Mode::Generate(kind) => print!("{}", generate(&kind)),
        Mode::Restore { dir, output, keys, uids } => {
            let what = match &output {
                RestoreOutput::Maildir(out, _) => format!(
                    "the Maildir {} holds only part of the messages (each of them whole); run the restore again",
                    out.display()
                ),
                _ => "the mbox file being written was removed (one appears only when complete); run the restore again"
                    .to_string(),
            };
            return interruptible(what, || run_restore(&dir, &output, &keys, uids.as_ref(), settings));
        }
        Mode::List { path, keys } => return run_list(&path, &keys, settings),
        Mode::Search { query, path, keys } => {
            let what = "the search stopped before the end (it writes nothing)".to_string();
            return interruptible(what, || run_search(&query, &path, &keys, settings));
        }
        Mode::Verify { path, keys } => {
            let what = "the verification stopped before the end (it writes nothing); run it again".to_string();
            return interruptible(what, || run_verify(&path, &keys, settings));
        }
        Mode::Upload { path, account, to_folder, keys } => {
            let what = "what was uploaded stays on the server; run it again (nothing is sent twice)".to_string();
            return interruptible(what, || run_upload(&path, &account, to_folder.as_deref(), &keys, settings));
        }
        Mode::SandboxCheck { root, port } => {
            let report = sandbox::check(&root, port)?;
            println!("{report}");
            return Ok(if report.passed() { 0 } else { EXIT_FAILURE });
        }
        Mode::Backup { accounts, report } => return run_backup(&accounts, report.as_deref(), settings, None),
        Mode::ListFolders { accounts } => return Ok(run_list_folders(&accounts, settings)),
        Mode::DryRun { accounts } => {
            let printer = BackupPrinter::new(Printer { out: settings.out }, None);
            let summary = backup::dry_run::run(&accounts, &Sandbox(settings.sandbox), &printer);
            return Ok(exit_code(summary.failed));
        }
        Mode::OAuth2Login { accounts } => {
            let what = "the sign-in was abandoned; no token was kept".to_string();
            return interruptible(what, || Ok(run_oauth2_login(&accounts)));
        }
        Mode::Wizard => {
            let setup = wizard::ask_account()?;
            if setup.account.oauth2.is_some() {
                let code = run_oauth2_login(std::slice::from_ref(&setup.account));
                if code != 0 {
                    setup.not_saved();
                    return Ok(code);
                }
            }
            let code = run_backup(std::slice::from_ref(&setup.account), None, settings, setup.save_dir())?;
            // Only a config that just worked is saved.
            if code == 0 {
                setup.save()?;
            } else {
                setup.not_saved();
            }
            return Ok(code);
        }
    }
    Ok(0)
}

/// What `--generate KIND` prints (KIND is one of [`flags::GENERATE_KINDS`]).
fn generate(kind: &str) -> String {
    match kind {
        "man" => crate::cli::manpage::render(),
        "complete-bash" => crate::cli::completions::bash(),
        "complete-zsh" => crate::cli::completions::zsh(),
        _ => crate::cli::completions::fish(),
    }
}

/// Backs up `accounts`; writes `report` at the end, also after a failure or an interrupt.
/// `also_writable` is a directory the sandbox leaves writable for what follows the backup.
fn run_backup(
    accounts: &[Account],
    report: Option<&Path>,
    settings: Settings,
    also_writable: Option<PathBuf>,
) -> Result<i32> {
    let mut writable = match report {
        Some(path) => {
            let dir = restore::parent_of(path);
            if !dir.is_dir() {
                return Err(Error::usage(format!("--report {}: no directory {}", path.display(), dir.display())));
            }
            vec![dir.to_path_buf()]
        }
        None => Vec::new(),
    };
    writable.extend(also_writable);
    let record = Arc::new(
        RunRecord::new(accounts.iter().map(|a| (a.user.as_str(), a.host.as_str()))).keeping_folders(report.is_some()),
    );
    let last_words = {
        let (record, report) = (Arc::clone(&record), report.map(Path::to_path_buf));
        move |code: i32| {
            if interrupt::requested() {
                let (messages, bytes) = record.stored();
                say_interrupted(&format!(
                    "{messages} message{} ({} KiB) archived by this run are kept; run it again to continue",
                    if messages == 1 { "" } else { "s" },
                    bytes / 1024
                ));
            }
            match report.as_deref().map(|path| record.write(path, code, interrupt::requested())) {
                Some(Err(e)) => {
                    eprintln!("smailarchiver: error: {e}");
                    EXIT_FAILURE.max(code)
                }
                _ => code,
            }
        }
    };
    let last_words = Arc::new(last_words);
    {
        let last_words = Arc::clone(&last_words);
        interrupt::install(Box::new(move || {
            last_words(interrupt::exit_code());
        }))
        .doing("setting up signal handling")?;
    }
    let out = settings.out;
    let printer = BackupPrinter::new(Printer { out }, Some(&record));
    let summary = backup::run(accounts, out, &Sandbox(settings.sandbox), &writable, &printer);
    let code = exit_code(summary.failing());
    take_last_word();
    Ok(last_words(code))
}

/// The exit code of a run that `failed` or not: a signal's when one stopped it.
fn exit_code(failed: bool) -> i32 {
    if interrupt::requested() {
        interrupt::exit_code()
    } else if failed {
        EXIT_FAILURE
    } else {
        crate::exit::EXIT_SUCCESS
    }
}

/// Claims the run's last words from a forced exit; when that is already under way, waits
/// for it to end the process.
fn take_last_word() {
    if !interrupt::claim() {
        loop {
            std::thread::park();
        }
    }
}

/// The line an interrupted run ends with; `what` says what it leaves.
fn say_interrupted(what: &str) {
    crate::cli::print::progress::clear_line();
    warn(format!("interrupted by {}: {what}", interrupt::signal_name()));
}

/// Runs a restore or verify that SIGINT and SIGTERM stop; `what` is what the stop leaves.
fn interruptible(what: String, work: impl FnOnce() -> Result<i32>) -> Result<i32> {
    let shared = Arc::new(what);
    let said = Arc::clone(&shared);
    interrupt::install(Box::new(move || say_interrupted(&said))).doing("setting up signal handling")?;
    let result = work();
    take_last_word();
    match result {
        Err(e) if e.is_interrupted() => {
            say_interrupted(&shared);
            Ok(e.exit_code())
        }
        other => other,
    }
}

/// Loads the keys now if any of `files` is encrypted or any of `journals` sealed: before
/// the sandbox closes, so a key password command can still run. A key that opens nothing
/// of a sample spread over them (see [`crate::archive::key_check`]) stops here, before anything is
/// read or written with it; `archive` names what was given.
fn keys_if_needed(
    files: &[archive::ArchiveFile],
    journals: &[PathBuf],
    archive: &Path,
    keys: &KeySpec,
) -> Result<Option<Keys>> {
    let sealed = journals.iter().any(|j| crate::archive::metadata::reader::is_sealed(j) == Some(true));
    if files.iter().any(|f| f.form.encrypted) || sealed {
        let loaded = keys.load()?;
        crate::archive::key_check::check(files, journals, &loaded, &keys.path, archive)?;
        Ok(Some(loaded))
    } else {
        Ok(None)
    }
}

/// Warns once of the files of `files` not named after a UID (they are taken anyway).
fn warn_odd_files(files: &[archive::ArchiveFile]) {
    if let Some(text) = archive::odd_names(files) {
        warn(format!("warning: {text}"));
    }
}

/// The sandbox as `--sandbox` (or the config) sets it: the one way into it, for the modes
/// the driver confines and those that confine themselves once connected.
struct Sandbox(sandbox::Mode);

impl Confine for Sandbox {
    fn confine(&self, rules: &Rules) -> Result<sandbox::Status> {
        let status = sandbox::restrict(rules, self.0)?;
        crate::probe::after_confinement();
        Ok(status)
    }
}

/// Confines the process, saying so in verbose mode when the kernel cannot fully.
fn confine(rules: &Rules, settings: Settings) -> Result<()> {
    let status = Sandbox(settings.sandbox).confine(rules)?;
    if settings.out.verbose && !status.fully_enforced() {
        warn(format!("sandbox: {status}"));
    }
    Ok(())
}

fn run_restore(
    dir: &Path,
    output: &RestoreOutput,
    keys: &KeySpec,
    uids: Option<&restore::UidSet>,
    settings: Settings,
) -> Result<i32> {
    use crate::archive::layout::scope::Scope;
    match crate::archive::layout::scope::classify(dir)? {
        Scope::Folder(_) => {}
        Scope::Account(_) => {
            if uids.is_some() {
                return Err(Error::usage("--uid needs a folder directory: UIDs are per folder"));
            }
            return run_account_restore(dir, output, keys, settings);
        }
        Scope::Root { accounts, .. } => {
            let names: Vec<String> =
                accounts.iter().filter_map(|a| a.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
            return Err(Error::usage(format!(
                "{} is an archive root ({}): restore one account's directory (-r {}/USER -o OUTDIR) or one folder's",
                dir.display(),
                if names.is_empty() {
                    "no account in it".to_string()
                } else {
                    format!("accounts: {}", names.join(", "))
                },
                dir.display()
            )));
        }
        Scope::Empty(_) => return Err(crate::archive::layout::scope::nothing_there(dir)),
    }
    let files = archive::list_folder(dir)?;
    if files.is_empty() {
        return Err(Error::runtime(format!(
            "{}: no archive files (UID.mbox[.gz][.enc]) to restore: its messages' files are all gone (see --verify)",
            dir.display()
        )));
    }
    // Read before confinement: the records and metadata are outside the folder directory.
    let journal = crate::archive::metadata::journal_of_dir(dir);
    let keys = keys_if_needed(&files, journal.as_slice(), dir, keys)?;
    if uids.is_none() {
        warn_odd_files(&files);
    }
    let name = restore::account::folder_name(dir);
    let target = match output {
        RestoreOutput::Default => restore::Target::Mbox(restore::mbox_path(dir)?),
        RestoreOutput::Mbox(path) => restore::Target::Mbox(path.clone()),
        RestoreOutput::Maildir(path, _) => restore::Target::Maildir(path.clone()),
    };
    let read: Vec<PathBuf> = std::iter::once(dir.to_path_buf()).chain(journal.clone()).collect();
    let rules = match &target {
        restore::Target::Mbox(output) => {
            Rules { read_write: vec![restore::parent_of(output).to_path_buf()], read, ..Rules::default() }
        }
        restore::Target::Maildir(maildir) => {
            std::fs::create_dir_all(maildir).at(maildir)?;
            Rules { read_write: vec![maildir.clone()], read, cross_dir_renames: true, ..Rules::default() }
        }
    };
    confine(&rules, settings)?;
    let unix_line_ends = matches!(output, RestoreOutput::Maildir(_, layout) if layout.unix_line_ends());
    let opts = restore::Options { keys: keys.as_ref(), uids, journal: journal.as_deref(), unix_line_ends };
    let printer = RestorePrinter { out: settings.out };
    let report = restore::restore(dir, &target, &opts, &printer)?;
    printer.folder_done(&report, name.as_deref());
    Ok(if report.failed.is_empty() { 0 } else { EXIT_FAILURE })
}

/// `-r ROOT/USER`: every folder of the account, each under its real name.
fn run_account_restore(dir: &Path, output: &RestoreOutput, keys: &KeySpec, settings: Settings) -> Result<i32> {
    use restore::account::{self, AccountTarget};
    let (folders, problem) = account::folders(dir)?;
    if let Some(p) = problem {
        warn(format!("warning: {p}; folders are named after their directories"));
    }
    // Read before confinement: the records are outside the user directory.
    let source = account::source_hierarchy(dir, &folders);
    let target = match output {
        RestoreOutput::Mbox(path) => AccountTarget::MboxDir(path.clone()),
        RestoreOutput::Maildir(path, layout) => AccountTarget::Maildir(path.clone(), *layout),
        RestoreOutput::Default => {
            return Err(Error::usage(format!(
                "{} holds the folders of an account ({}): give -o OUTDIR for one mbox file per folder, or --to-maildir OUT for one Maildir++ tree",
                dir.display(),
                folders.len()
            )))
        }
    };
    let files = archive::files_of(folders.iter().map(|f| f.dir.as_path()))?;
    let journals: Vec<PathBuf> = folders.iter().filter_map(|f| f.journal.clone()).collect();
    let keys = keys_if_needed(&files, &journals, dir, keys)?;
    warn_odd_files(&files);
    let out_dir = match &target {
        AccountTarget::MboxDir(p) | AccountTarget::Maildir(p, _) => p.clone(),
    };
    std::fs::create_dir_all(&out_dir).at(&out_dir)?;
    let read: Vec<PathBuf> =
        std::iter::once(dir.to_path_buf()).chain(folders.iter().filter_map(|f| f.journal.clone())).collect();
    confine(&Rules { read_write: vec![out_dir], read, cross_dir_renames: true, ..Rules::default() }, settings)?;
    let mut taken = Vec::new();
    let mut failed = 0;
    for folder in &folders {
        let folder_target = account::output_for(folder, &target, &source, &taken);
        let (restore::Target::Mbox(p) | restore::Target::Maildir(p)) = &folder_target;
        taken.push(p.clone());
        let unix_line_ends = matches!(target, AccountTarget::Maildir(_, layout) if layout.unix_line_ends());
        let opts =
            restore::Options { keys: keys.as_ref(), uids: None, journal: folder.journal.as_deref(), unix_line_ends };
        let printer = RestorePrinter { out: settings.out };
        let report = account::restore_folder(folder, &folder_target, &opts, &printer)?;
        failed += report.failed.len();
        printer.folder_done(&report, Some(&folder.name()));
    }
    Ok(if failed == 0 { 0 } else { EXIT_FAILURE })
}

/// `-r PATH --to-imap`: every message of PATH's folders into the account's mailboxes.
fn run_upload(
    path: &Path,
    account: &Account,
    to_folder: Option<&str>,
    keys: &KeySpec,
    settings: Settings,
) -> Result<i32> {
    let (dests, problem) = upload::destinations(path, to_folder)?;
    if let Some(p) = problem {
        warn(format!("warning: {p}; folders are named after their directories"));
    }
    let journals: Vec<PathBuf> = dests.iter().filter_map(|d| d.journal.clone()).collect();
    let files = archive::files_of(dests.iter().map(|d| d.dir.as_path()))?;
    let keys = keys_if_needed(&files, &journals, path, keys)?;
    let label = account.label();
    let backup::Connection { spec, auth, addrs, source } =
        backup::connection(account).map_err(|e| Error::runtime(format!("{label}: {e}")))?;
    // The archive (and its metadata) is only read; the one connection allowed is to the
    // server's port (and an OAuth2 token endpoint's, whose rotated refresh tokens are
    // written in the token file's directory).
    let mut read = vec![path.canonicalize().at(path)?];
    read.extend(dests.iter().filter_map(|d| d.journal.as_deref()?.parent()).map(Path::to_path_buf));
    let connect_tcp = std::iter::once(spec.port).chain(source.as_ref().map(|s| s.port())).collect();
    let read_write = source.as_ref().map(|s| s.dir()).into_iter().collect();
    confine(&Rules { read, read_write, connect_tcp, ..Rules::default() }, settings)?;
    let sink = Printer { out: settings.out };
    let grace = spec.timeout;
    let renewal = source.as_ref().map(crate::oauth2::TokenSource::renewal);
    let mut session = Session::new(spec, addrs, auth).renewing(renewal);
    session
        .connect_retrying(&mut |notice| warn(format!("warning: {label}: {notice}")))
        .map_err(|e| Error::runtime(format!("{label}: {e}")))?;
    let sink = crate::cli::print::upload::UploadPrinter { printer: sink, label: &label };
    let outcome = upload::upload_all(&mut session, &dests, keys.as_ref(), grace, &sink);
    let _ = session.logout();
    Ok(if outcome?.failing > 0 { EXIT_FAILURE } else { 0 })
}

/// `--oauth2-login`: signs each account in, one after the other; exit 1 if one failed.
fn run_oauth2_login(accounts: &[Account]) -> i32 {
    let mut code = 0;
    for account in accounts {
        let label = account.label();
        let seal = account.oauth2.as_ref().is_some_and(|o| o.seal);
        let signed = (|| {
            // A sealed token needs the archive's key: made now if the archive has none yet.
            let keys = match &account.keys {
                Some(spec) if seal => {
                    let (keys, created) = spec.load_or_create()?;
                    if created {
                        warn(format!(
                            "{label}: created the key file {}: keep a copy in a safe place, without it the archive cannot be read",
                            spec.path.display()
                        ));
                    }
                    Some(keys)
                }
                _ => None,
            };
            crate::oauth2::login::login(account, keys.as_ref(), &mut |line| warn(format!("{label}: {line}")))
        })();
        match signed {
            Ok(s) => println!(
                "{label}: signed in{}; the refresh token is in {} (mode 0600{}); IMAP login to {} with it worked",
                match s.via {
                    Some(crate::oauth2::pkce::Via::Pasted) => " (pasted address)",
                    Some(crate::oauth2::pkce::Via::Loopback) => " (browser)",
                    None => "",
                },
                s.file.display(),
                if s.sealed { ", sealed with the archive's key" } else { "" },
                s.server
            ),
            Err(e) if e.is_interrupted() => return e.exit_code(),
            Err(e) => {
                eprintln!("smailarchiver: error: {label}: {e}");
                code = EXIT_FAILURE.max(e.exit_code());
            }
        }
    }
    code
}

/// `--list-folders`: one line per folder of each account; exit 1 if an account failed.
fn run_list_folders(accounts: &[Account], settings: Settings) -> i32 {
    let mut code = 0;
    for (label, listed) in backup::list_folders(accounts, &Sandbox(settings.sandbox)) {
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

/// A folder to list: the name its `#` line shows (none for one folder), its directory and
/// journal.
type Listed = (Option<String>, PathBuf, Option<PathBuf>);

/// `--list PATH`: one line per message of a folder directory, or of every folder of a
/// user directory (each under a `# NAME` line), or of every account of an archive root
/// (`# USERDIR/NAME`).
fn run_list(path: &Path, keys: &KeySpec, settings: Settings) -> Result<i32> {
    use crate::archive::layout::scope::Scope;
    use restore::account;
    let named = |user_dir: &Path, prefix: Option<String>| -> Result<Vec<Listed>> {
        let (folders, problem) = account::folders(user_dir)?;
        if let Some(p) = problem {
            warn(format!("warning: {p}; folders are named after their directories"));
        }
        Ok(folders
            .into_iter()
            .map(|f| {
                let shown = match &prefix {
                    Some(a) => format!("{a}/{}", f.shown()),
                    None => f.shown(),
                };
                (Some(shown), f.dir, f.journal)
            })
            .collect())
    };
    let folders = match crate::archive::layout::scope::classify(path)? {
        Scope::Folder(_) => vec![(None, path.to_path_buf(), crate::archive::metadata::journal_of_dir(path))],
        Scope::Account(_) => named(path, None)?,
        Scope::Root { accounts, .. } => {
            let mut all = Vec::new();
            for a in &accounts {
                let prefix = a.file_name().map(|n| crate::printable::escape(&n.to_string_lossy()));
                all.extend(named(a, prefix)?);
            }
            all
        }
        Scope::Empty(_) => return Err(crate::archive::layout::scope::nothing_there(path)),
    };
    let files = archive::files_of(folders.iter().map(|f| f.1.as_path()))?;
    if files.is_empty() && folders.iter().all(|f| f.2.is_none()) {
        return Err(crate::archive::layout::scope::nothing_there(path));
    }
    let journals: Vec<PathBuf> = folders.iter().filter_map(|f| f.2.clone()).collect();
    let keys = keys_if_needed(&files, &journals, path, keys)?;
    warn_odd_files(&files);
    let read = std::iter::once(path.to_path_buf()).chain(journals).collect();
    confine(&Rules { read, ..Rules::default() }, settings)?;
    let mut code = 0;
    let printer = crate::cli::print::list::ListPrinter::default();
    for (name, dir, journal) in folders {
        if let Some(name) = name {
            printer.heading(&name);
        }
        // `--list ... | head` closes the pipe early: stop quietly then.
        if crate::events::Sink::gone(&printer) {
            break;
        }
        if crate::listing::list(&dir, keys.as_ref(), journal.as_deref(), &printer)?.failed > 0 {
            code = EXIT_FAILURE;
        }
    }
    Ok(code)
}

/// `--search QUERY PATH`: the messages of PATH's folders that QUERY selects.
fn run_search(query: &crate::search::query::Query, path: &Path, keys: &KeySpec, settings: Settings) -> Result<i32> {
    let scope = crate::archive::layout::scope::classify(path)?;
    if let crate::archive::layout::scope::Scope::Empty(_) = scope {
        return Err(crate::archive::layout::scope::nothing_there(path));
    }
    // Found before confinement: the journals may be outside PATH.
    let folders = crate::archive::layout::scope::folders(&scope)?;
    let journals = verify::journals(&folders);
    let sample = crate::search::key_sample(&folders);
    let keys = keys_if_needed(&sample, &journals, path, keys)?;
    let read = std::iter::once(path.to_path_buf()).chain(journals).collect();
    confine(&Rules { read, ..Rules::default() }, settings)?;
    let printer = crate::cli::print::search::SearchPrinter::default();
    let report = crate::search::search(&folders, query, keys.as_ref(), &printer)?;
    drop(printer);
    if !settings.out.quiet {
        warn(crate::cli::print::search::summary(&report));
    }
    Ok(if report.failed.is_empty() { 0 } else { EXIT_FAILURE })
}

fn run_verify(path: &Path, keys: &KeySpec, settings: Settings) -> Result<i32> {
    let out = settings.out;
    let scope = crate::archive::layout::scope::classify(path)?;
    if let crate::archive::layout::scope::Scope::Empty(_) = scope {
        return Err(crate::archive::layout::scope::nothing_there(path));
    }
    // Found before confinement: the records and journals may be outside PATH.
    let folders = crate::archive::layout::scope::folders(&scope)?;
    let journals = verify::journals(&folders);
    let files = archive::files_of(folders.iter().map(|f| f.dir.as_path()))?;
    let keys = keys_if_needed(&files, &journals, path, keys)?;
    warn_odd_files(&files);
    drop(files);
    let read = std::iter::once(path.to_path_buf()).chain(journals).collect();
    confine(&Rules { read, ..Rules::default() }, settings)?;
    let printer = crate::cli::print::verify::VerifyPrinter::default();
    let report = verify::verify(&folders, keys.as_ref(), &printer)?;
    printer.finish(&report, out.quiet);
    Ok(if report.is_bad() { EXIT_FAILURE } else { 0 })
}
