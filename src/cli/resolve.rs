//! What to do, resolved from the flags and the JSON config they name: one [`Job`] with
//! its accounts checked. Where a flag and the config both say something, this file is
//! where the answer is: a config file sets defaults, the flags win.

use std::path::{Path, PathBuf};

use crate::account::{Account, Folders};
use crate::cli::config;
use crate::cli::flags::LowArgs;
use crate::error::{Error, Result};
use crate::keys::{KeySpec, PasswordSpec};
use crate::report::Output;
use crate::secret::Secret;
use crate::{restore, sandbox};

/// What a command line asks the tool to do, and how.
#[derive(Debug)]
pub struct Job {
    /// What to do.
    pub mode: Mode,
    /// How much to say, and how strictly to confine the process.
    pub settings: Settings,
}

/// Turns the flags (and the config file they name) into the job; contradictions are usage
/// errors. `warn` is told what is doubtful but not wrong (unknown config keys, `-p`).
pub fn job(low: &LowArgs, warn: &dyn Fn(&str)) -> Result<Job> {
    let (mode, out, config_sandbox) = low.resolve_mode(warn)?;
    let sandbox = match low.sandbox.as_deref().or(config_sandbox.as_deref()) {
        Some(m) => sandbox::Strictness::parse(m)?,
        None => sandbox::Strictness::default(),
    };
    Ok(Job { mode, settings: Settings { out, sandbox } })
}

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
    Restore {
        /// The folder or user directory.
        dir: PathBuf,
        /// Where it goes.
        output: RestoreOutput,
        /// The key file, used if the files are encrypted.
        keys: KeySpec,
        /// Only these UIDs (`--uid`).
        uids: Option<restore::UidSet>,
    },
    /// List the messages of a folder or user directory.
    List {
        /// The folder directory, user directory or archive root.
        path: PathBuf,
        /// The key file, used if the files are encrypted.
        keys: KeySpec,
    },
    /// List the messages a query selects.
    Search {
        /// The query.
        query: Box<crate::search::query::Query>,
        /// The folder directory, user directory or archive root searched.
        path: PathBuf,
        /// The key file, used if the files are encrypted.
        keys: KeySpec,
    },
    /// Upload a folder directory, or every folder of a user directory, to a server.
    Upload {
        /// The folder or user directory.
        path: PathBuf,
        /// The server and login to upload to.
        account: Box<Account>,
        /// The mailbox to upload a folder directory into (`--to-folder`), instead of the
        /// name it was backed up from.
        to_folder: Option<String>,
        /// The key file, used if the files are encrypted.
        keys: KeySpec,
    },
    /// Verify an archive.
    Verify {
        /// The folder directory, user directory or archive root.
        path: PathBuf,
        /// The key file, used if the files are encrypted.
        keys: KeySpec,
    },
    /// Report and prove what the sandbox confines.
    SandboxCheck {
        /// The directory the confinement is proved on (`--dir`).
        root: PathBuf,
        /// The one port a connection is allowed to (`--port`, default 993).
        port: u16,
    },
    /// Back up these accounts; write what happened to `report` (`--report`).
    Backup {
        /// The accounts, in order.
        accounts: Vec<Account>,
        /// Where the JSON report goes (`--report`).
        report: Option<PathBuf>,
    },
    /// List these accounts' folders.
    ListFolders {
        /// The accounts, in order.
        accounts: Vec<Account>,
    },
    /// Count what a backup of these accounts would fetch.
    DryRun {
        /// The accounts, in order.
        accounts: Vec<Account>,
    },
    /// Sign these accounts in to their OAuth 2.0 providers (`--oauth2-login`).
    OAuth2Login {
        /// The accounts, in order.
        accounts: Vec<Account>,
    },
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

/// What every mode shares: output and confinement.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// How much to say.
    pub out: Output,
    /// How strictly to confine the process.
    pub sandbox: sandbox::Strictness,
}

impl LowArgs {
    /// The key file and password sources the flags describe.
    fn key_spec(&self) -> KeySpec {
        let password = (self.promp || self.key_password_file.is_some() || self.key_password_command.is_some())
            .then(|| PasswordSpec { file: self.key_password_file.clone(), command: self.key_password_command.clone() });
        KeySpec { path: self.keys.clone().unwrap_or_else(|| PathBuf::from("keys")), password }
    }

    fn resolve_mode(&self, warn: &dyn Fn(&str)) -> Result<(Mode, Output, Option<String>)> {
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
            return self.oauth2_login(out, warn);
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
            return self.upload(out, warn);
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
                let (mode, out, sandbox) = self.backup(out, warn)?;
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
    fn oauth2_login(&self, out: Output, warn: &dyn Fn(&str)) -> Result<(Mode, Output, Option<String>)> {
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
        let (mode, out, sandbox) = self.backup(out, warn)?;
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
    fn upload(&self, out: Output, warn: &dyn Fn(&str)) -> Result<(Mode, Output, Option<String>)> {
        if self.to_maildir.is_some() || self.output.is_some() {
            return Err(Error::usage("--to-imap cannot be combined with -o or --to-maildir"));
        }
        if self.all_folders || !self.folders.is_empty() {
            return Err(Error::usage("--to-imap uploads what -r DIR holds: -f and --all-folders do not apply"));
        }
        let path = self.restore.clone().ok_or_else(|| Error::usage("--to-imap goes with -r DIR"))?;
        let (mode, out, sandbox) = self.backup(out, warn)?;
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
    fn backup(&self, out: Output, warn: &dyn Fn(&str)) -> Result<(Mode, Output, Option<String>)> {
        let root = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        if !self.exclude.is_empty() && !self.all_folders && self.config.is_none() {
            return Err(Error::usage("--exclude goes with --all-folders"));
        }
        if self.all_folders && !self.folders.is_empty() {
            return Err(Error::usage("-f and --all-folders cannot be combined"));
        }
        let (mut accounts, out, config_sandbox, config_report) = match &self.config {
            Some(path) => self.config_accounts(path, &root, out, warn)?,
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
        warn: &dyn Fn(&str),
    ) -> Result<(Vec<Account>, Output, Option<String>, Option<PathBuf>)> {
        let config = config::load(path, root)?;
        if !self.quiet && !self.verbose {
            out.quiet = config.quiet;
            out.verbose = config.verbose && !config.quiet;
        }
        if !config.unknown.is_empty() && !out.quiet {
            warn(&format!("warning: config {}: unknown keys ignored: {}", path.display(), config.unknown.join(", ")));
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::cli::flags::{parse, FLAGS};

    fn p(args: &[&str]) -> Result<LowArgs> {
        parse(args.iter().map(OsString::from))
    }

    /// The completions offer a flag's choices: the tool must take each of them, and name
    /// them all when it refuses another value.
    #[test]
    fn choices_are_what_the_tool_accepts() {
        // A flag checked once the mode is known needs the rest of its command line.
        let context = |long: &str| -> Vec<&str> {
            match long {
                "maildir-layout" => vec!["-r", "d", "--to-maildir", "o"],
                _ => vec![],
            }
        };
        for f in FLAGS.iter().filter(|f| !f.choices().is_empty()) {
            let name = format!("--{}", f.long);
            for c in f.choices() {
                let low = p(&[context(f.long), vec![name.as_str(), c]].concat()).unwrap();
                // Resolving may fail for want of an account, never for this value.
                if let Err(e) = job(&low, &|_| {}) {
                    assert!(!e.to_string().contains(&name), "{name} {c}: {e}");
                }
            }
            let refused = p(&[context(f.long), vec![name.as_str(), "bogus"]].concat())
                .and_then(|a| job(&a, &|_| {}).map(|_| ()))
                .unwrap_err();
            for c in f.choices() {
                assert!(refused.to_string().contains(c), "{name} bogus: {refused}");
            }
        }
    }
}
