//! Backup: each account's folders into the archive, incrementally by UID, one crash-safe
//! file per message. One failing account never stops the others.

pub mod fetch;
pub mod folder;
pub mod plan;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::account::{Account, Credential, Folders};
use crate::app::{warn, Output};
use crate::error::{Error, IoContext, Result, EXIT_FAILURE};
use crate::keys::Keys;
use crate::lock::RootLock;
use crate::mailbox_name::Mailbox;
use crate::registry::Registry;
use crate::sandbox::{self, Mode, Rules};
use crate::server::login::{self, Auth, ServerSpec, Session};
use crate::server::Shared;

pub use folder::FolderReport;

/// How often a lost connection is re-established before the account is given up.
const RECONNECTS: u32 = 3;

/// Backs up every account; returns the exit code (0 only when everything worked).
///
/// Three phases, so the sandbox can close in between: everything that needs the wider
/// system (password commands, key files, CA files, DNS) happens first for every account;
/// then the process confines itself to the archive roots and the IMAP ports; then the
/// accounts are backed up. One failing account never stops the others.
pub fn run(accounts: &[Account], out: Output, sandbox: Mode) -> i32 {
    let mut locks: HashMap<PathBuf, RootLock> = HashMap::new();
    let mut code = 0;
    let mut ready = Vec::new();
    for account in accounts {
        match prepare(account, out, &mut locks) {
            Ok(p) => ready.push(p),
            Err(e) => {
                eprintln!("smailarchiver: error: {}: {e}", account.label());
                code = EXIT_FAILURE;
            }
        }
    }
    if ready.is_empty() {
        return code;
    }
    let rules = Rules {
        read_write: locks.keys().cloned().collect(),
        connect_tcp: ready.iter().map(|p| p.spec.port).collect(),
        // Messages are written in the root's temporary directory, then linked into place.
        cross_dir_renames: true,
        ..Rules::default()
    };
    match sandbox::restrict(&rules, sandbox) {
        Ok(status) if out.verbose && !status.fully_enforced() => warn(format!("sandbox: {status}")),
        Ok(_) => {}
        Err(e) => {
            eprintln!("smailarchiver: error: {e}");
            return EXIT_FAILURE;
        }
    }
    for p in ready {
        let label = p.account.label();
        match backup_account(p, out) {
            Ok(reports) => {
                if reports.iter().any(|r| r.failed > 0) {
                    code = EXIT_FAILURE;
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

/// An account with everything it needs from outside the archive already in hand.
struct Prepared<'a> {
    account: &'a Account,
    /// The archive root, as the sandbox knows it.
    root: PathBuf,
    keys: Option<Keys>,
    auth: Auth,
    spec: ServerSpec,
    addrs: Vec<SocketAddr>,
}

/// Phase one: trust anchors, directories, lock, keys, credentials, addresses.
fn prepare<'a>(account: &'a Account, out: Output, locks: &mut HashMap<PathBuf, RootLock>) -> Result<Prepared<'a>> {
    account.validate()?;
    // Before anything is created: a refused CA file leaves no archive root behind.
    let spec = server_spec(account)?;
    make_root(&account.root)?;
    // The real path: the sandbox rules and a symlinked root must agree.
    let root = account.root.canonicalize().at(&account.root)?;
    if !locks.contains_key(&root) {
        locks.insert(root.clone(), RootLock::acquire(&root)?);
    }
    let keys = load_keys(account, out)?;
    let (auth, addrs) = login_and_addresses(account, &spec)?;
    Ok(Prepared { account, root, keys, auth, spec, addrs })
}

/// How to reach the account's server: TLS settings (the CA file is read now) and timeout.
fn server_spec(account: &Account) -> Result<ServerSpec> {
    let mut spec = ServerSpec::new(
        &account.host,
        account.port,
        account.starttls,
        account.ca_file.as_deref(),
        account.pin_sha256.as_deref(),
    )?;
    spec.timeout = Duration::from_secs(account.timeout);
    Ok(spec)
}

/// The credential to log in with and the server's addresses.
fn login_and_addresses(account: &Account, spec: &ServerSpec) -> Result<(Auth, Vec<SocketAddr>)> {
    let auth = match account.credential()? {
        Credential::Password(password) => Auth::Login { user: account.user.clone(), password },
        Credential::OAuth2(token) => Auth::OAuth2 { user: account.user.clone(), token },
    };
    let addrs = login::resolve(&spec.host, spec.port)?;
    Ok((auth, addrs))
}

/// One folder as `--list-folders` shows it.
#[derive(Debug)]
pub struct Listing {
    /// The mailbox.
    pub mailbox: Mailbox,
    /// Its folder directory in the user directory: recorded, or the one a backup would make.
    pub dir: String,
    /// Messages in it (STATUS); `None` when it cannot be selected.
    pub messages: Option<u32>,
    /// Left out by `--exclude` (or not named with `-f`).
    pub excluded: bool,
    /// Whether it can hold messages (not `\Noselect`).
    pub selectable: bool,
}

/// Lists every account's folders with the directory a backup uses for each. Writes
/// nothing: the process is confined to reading the archive roots before it connects.
pub fn list_folders(accounts: &[Account], sandbox: Mode) -> Vec<(String, Result<Vec<Listing>>)> {
    let mut ready = Vec::new();
    let mut results = Vec::new();
    for account in accounts {
        let needs = account.validate().and_then(|()| server_spec(account)).and_then(|spec| {
            let (auth, addrs) = login_and_addresses(account, &spec)?;
            Ok((auth, spec, addrs))
        });
        match needs {
            Ok(s) => ready.push((account, s)),
            Err(e) => results.push((account.label(), Err(e))),
        }
    }
    let rules = Rules {
        read: ready.iter().map(|(a, _)| a.root.clone()).filter(|r| r.is_dir()).collect(),
        connect_tcp: ready.iter().map(|(_, (_, spec, _))| spec.port).collect(),
        ..Rules::default()
    };
    if let Err(e) = sandbox::restrict(&rules, sandbox) {
        return vec![(String::from("sandbox"), Err(e))];
    }
    for (account, (auth, spec, addrs)) in ready {
        let label = account.label();
        let mut conn = Connection {
            spec,
            addrs,
            auth,
            session: None,
            raw: None,
            tags: 0,
            unread: None,
            label: &label,
            reconnects: 0,
        };
        let listed = list_account(account, &mut conn);
        conn.logout();
        results.push((label.clone(), listed));
    }
    results
}

fn list_account(account: &Account, conn: &mut Connection<'_>) -> Result<Vec<Listing>> {
    let mut registry = Registry::read(&account.root)?;
    let account_dir = registry.account_dir(&conn.spec.endpoint(), &account.user);
    let names = conn.session()?.list(Some(""), Some("*")).map_err(|e| conn.spec.imap_error("LIST", &e))?;
    let mut out = Vec::new();
    for n in names.iter() {
        let attributes: Vec<String> = n.attributes().iter().map(|a| format!("{a:?}")).collect();
        let selectable = !attributes.iter().any(|a| a == "NoSelect" || a == "NonExistent");
        let mailbox = Mailbox::from_wire(&crate::mailbox_name::unescape_quoted(n.name()));
        let delim = n.delimiter().and_then(|d| d.chars().next());
        let excluded = match &account.folders {
            Folders::Named(names) => !names.iter().any(|f| Mailbox::from_arg(f) == mailbox),
            Folders::All { exclude } => exclude.iter().any(|p| mailbox.matches(p, delim)),
        };
        let messages = if selectable {
            let status = conn.session()?.status(&mailbox.wire, "(MESSAGES)");
            Some(status.map_err(|e| conn.spec.imap_error("STATUS", &e))?.exists)
        } else {
            None
        };
        out.push(Listing { dir: String::new(), mailbox, messages, excluded, selectable });
    }
    out.sort_by_key(|l| (l.mailbox.name(), l.mailbox.wire.clone()));
    // Directories are handed out as a backup would: the backed-up folders first, in name
    // order, then what an exclude left out; a folder that holds no mail gets none.
    for pass in [false, true] {
        for l in out.iter_mut().filter(|l| l.selectable && l.excluded == pass) {
            l.dir = registry.plan_folder(&account_dir, &l.mailbox);
        }
    }
    for l in out.iter_mut().filter(|l| !l.selectable) {
        l.dir = "-".into();
    }
    Ok(out)
}

/// An IMAP connection that comes back after being lost.
pub struct Connection<'a> {
    spec: ServerSpec,
    addrs: Vec<SocketAddr>,
    auth: Auth,
    session: Option<Session>,
    /// The session's stream, for the answers we read ourselves.
    raw: Option<Shared>,
    /// Numbers our own commands' tags, apart from the crate's.
    tags: u32,
    /// The tag of the `UID FETCH` sent ahead whose answers are not read yet.
    unread: Option<String>,
    label: &'a str,
    reconnects: u32,
}

impl Connection<'_> {
    /// The live session, connecting first if needed.
    pub fn session(&mut self) -> Result<&mut Session> {
        if self.unread.is_some() {
            // A command's answers were left unread (storing failed meanwhile): the stream
            // is out of step with the crate, so connect afresh.
            self.forget();
        }
        if self.session.is_none() {
            let (session, raw) = login::connect_shared(&self.spec, &self.addrs, &self.auth)?;
            self.session = Some(session);
            self.raw = Some(raw);
        }
        self.session.as_mut().ok_or_else(|| Error::runtime("no IMAP session"))
    }

    /// Forgets a session whose stream failed: after an I/O error it is out of sync.
    pub fn lost(&mut self, why: &str) -> Result<()> {
        self.forget();
        self.reconnects += 1;
        if self.reconnects > RECONNECTS {
            return Err(Error::runtime(format!("connection lost {RECONNECTS} times, giving up (last: {why})")));
        }
        warn(format!("{}: connection lost ({why}); reconnecting", self.label));
        std::thread::sleep(Duration::from_secs(1 << (self.reconnects - 1)));
        Ok(())
    }

    /// Sends a `UID FETCH` whose answers [`Connection::read_fetch`] reads later: the
    /// server works on it while we store the previous answers.
    pub fn send_fetch(&mut self, set: &str, query: &str) -> std::result::Result<(), fetch::FetchError> {
        self.session().map_err(|e| fetch::FetchError::Connection(e.to_string()))?;
        let raw = self.raw.as_ref().ok_or_else(|| fetch::FetchError::Connection("no IMAP session".into()))?;
        self.tags += 1;
        let tag = format!("S{}", self.tags);
        fetch::send_uid_fetch(raw, &tag, set, query)?;
        self.unread = Some(tag);
        Ok(())
    }

    /// Whether a `UID FETCH` was sent and its answers are still to be read.
    pub fn awaiting_answer(&self) -> bool {
        self.unread.is_some()
    }

    /// Reads the answers of the `UID FETCH` sent by [`Connection::send_fetch`].
    pub fn read_fetch(&mut self, max_literal: usize) -> std::result::Result<Vec<fetch::Fetched>, fetch::FetchError> {
        let tag = self.unread.take().ok_or_else(|| fetch::FetchError::Connection("no UID FETCH was sent".into()))?;
        let raw = self.raw.as_ref().ok_or_else(|| fetch::FetchError::Connection("no IMAP session".into()))?;
        fetch::read_tagged(raw, &tag, max_literal, self.spec.timeout)
    }

    /// Drops the session without a word to the server.
    fn forget(&mut self) {
        self.session = None;
        self.raw = None;
        self.unread = None;
    }

    fn logout(&mut self) {
        if self.unread.is_some() {
            // The crate would take the unread answers for its own.
            self.forget();
        }
        if let Some(mut s) = self.session.take() {
            let _ = s.logout();
        }
    }
}

/// Phase three: one account's folders.
fn backup_account(p: Prepared<'_>, out: Output) -> Result<Vec<FolderReport>> {
    let Prepared { account, root, keys, auth, spec, addrs } = p;
    let label = account.label();
    let mut registry = Registry::open(&root)?;
    let account_dir = registry.claim_account(&spec.endpoint(), &account.user)?;
    let mut conn =
        Connection { spec, addrs, auth, session: None, raw: None, tags: 0, unread: None, label: &label, reconnects: 0 };
    conn.session()?;
    let folders = choose_folders(account, &mut conn)?;
    let mut reports = Vec::new();
    let ctx = folder::Context { account, keys: keys.as_ref(), out };
    for mailbox in &folders {
        let mut place = folder::Place { registry: &mut registry, account_dir: &account_dir };
        match folder::backup(&ctx, &mut conn, &mut place, mailbox) {
            Ok(r) => {
                if !out.quiet {
                    println!("{} {}", account.user, r.summary());
                }
                reports.push(r);
            }
            Err(e) => {
                eprintln!("smailarchiver: error: {label} {}: {e}", mailbox.shown());
                reports.push(FolderReport { failed: 1, ..FolderReport::new(&mailbox.shown()) });
                if conn.reconnects > RECONNECTS {
                    break;
                }
            }
        }
    }
    conn.logout();
    Ok(reports)
}

fn load_keys(account: &Account, out: Output) -> Result<Option<Keys>> {
    let Some(spec) = &account.keys else { return Ok(None) };
    let (keys, created) = spec.load_or_create()?;
    if created && !out.quiet {
        warn(format!(
            "created the key file {}{}: keep a copy in a safe place, without it the archive cannot be read",
            spec.path.display(),
            if spec.password.is_some() { " (and its .sha)" } else { "" }
        ));
    }
    Ok(Some(keys))
}

/// The folders to back up: the named ones, or all selectable ones minus the excluded,
/// in name order, each once.
fn choose_folders(account: &Account, conn: &mut Connection<'_>) -> Result<Vec<Mailbox>> {
    let exclude = match &account.folders {
        Folders::Named(names) => {
            let mut out: Vec<Mailbox> = Vec::new();
            for m in names.iter().map(|n| Mailbox::from_arg(n)) {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            return Ok(out);
        }
        Folders::All { exclude } => exclude,
    };
    let names = loop {
        let listed = conn.session()?.list(Some(""), Some("*"));
        match listed {
            Ok(n) => break n,
            Err(e) if folder::is_connection_error(&e) => conn.lost(&e.to_string())?,
            Err(e) => return Err(conn.spec.imap_error("LIST", &e)),
        }
    };
    let mut out = Vec::new();
    for n in names.iter() {
        // The crate does not re-export imap-proto's NameAttribute; its Debug name is stable.
        if n.attributes().iter().any(|a| matches!(format!("{a:?}").as_str(), "NoSelect" | "NonExistent")) {
            continue;
        }
        // A name that is not valid modified UTF-7 is still the server's name for it: it
        // is backed up under that name rather than refused.
        let mailbox = Mailbox::from_wire(&crate::mailbox_name::unescape_quoted(n.name()));
        let delim = n.delimiter().and_then(|d| d.chars().next());
        if exclude.iter().any(|p| mailbox.matches(p, delim)) {
            continue;
        }
        out.push(mailbox);
    }
    out.sort_by_key(|m| (m.name(), m.wire.clone()));
    out.dedup();
    Ok(out)
}

/// Makes the archive root (mode 0700 when new: it holds mail) with its parents.
fn make_root(root: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if root.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(root).at(root)
}
