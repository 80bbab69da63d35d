//! The driver: runs the [`Job`] a command line resolves to. It alone loads the keys,
//! enters the sandbox (see [`Sandbox`]), handles SIGINT and SIGTERM and picks the exit
//! code; the modes report what happened and [`crate::cli::print`] words it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::account::Account;
use crate::cli::print::backup::BackupPrinter;
use crate::cli::print::restore::RestorePrinter;
use crate::cli::resolve::{self, Job, Mode, RestoreOutput, Settings};
use crate::cli::run_report::RunRecord;
use crate::cli::{flags, wizard};
use crate::error::IoContext;
use crate::error::{Error, Result};
use crate::exit::EXIT_FAILURE;
use crate::imap::Session;
use crate::keys::KeySpec;
use crate::keys::Keys;
use crate::sandbox::{self, Confine, Rules};
use crate::{archive, backends, backup, interrupt, restore, upload, verify};
use std::sync::Arc;

pub use crate::report::Output;

pub use crate::cli::print::{warn, Printer};

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
    let Job { mode, settings } = resolve::job(&low, &|text| warn(text))?;
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
            let dir = crate::archive::files::atomic::parent_of(path);
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
struct Sandbox(sandbox::Strictness);

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
    let name = crate::archive::layout::account::folder_name(dir);
    let target = match output {
        RestoreOutput::Default => restore::Target::Mbox(restore::mbox_path(dir)?),
        RestoreOutput::Mbox(path) => restore::Target::Mbox(path.clone()),
        RestoreOutput::Maildir(path, _) => restore::Target::Maildir(path.clone()),
    };
    let read: Vec<PathBuf> = std::iter::once(dir.to_path_buf()).chain(journal.clone()).collect();
    let rules = match &target {
        restore::Target::Mbox(output) => Rules {
            read_write: vec![crate::archive::files::atomic::parent_of(output).to_path_buf()],
            read,
            ..Rules::default()
        },
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
    let (folders, problem) = crate::archive::layout::account::folders(dir)?;
    if let Some(p) = problem {
        warn(format!("warning: {p}; folders are named after their directories"));
    }
    // Read before confinement: the records are outside the user directory.
    let source = crate::archive::layout::account::source_hierarchy(dir, &folders);
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
    use crate::archive::layout::account;
    use crate::archive::layout::scope::Scope;
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
