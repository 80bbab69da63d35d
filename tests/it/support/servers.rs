//! Real IMAP servers for integration tests behind one interface, [`MailServer`]: Dovecot
//! ([`super::dovecot`]), Cyrus IMAP 3.6 in both namespace modes ([`super::cyrus`]) and
//! Courier-IMAP 5.0 ([`super::courier`]), each a private instance with its own
//! configuration, state directory, free ports on 127.0.0.1, self-signed certificate and
//! logins.
//!
//! # How to use
//!
//! ```ignore
//! let server = servers::shared(Kind::Courier);         // started once, for every module
//! server.add_user("alice", "pw");                      // a user name of its own per test
//! let inbox = server.mailbox("INBOX");
//! let nested = server.mailbox("Archive/2023");         // "INBOX.Archive.2023" on Courier
//! server.create_mailbox("alice", "pw", &nested);
//! let uid = server.append("alice", "pw", &nested, &["\\Seen"], Some("01-Jan-2020 10:00:00 +0000"), msg);
//! server.deliver_raw("alice", "pw", &inbox, b"Subject: x\n\nbare LF\n"); // as an MTA would
//! let args = server.client_args("alice", root);        // -u -i --port --ca-file --dir for the tool
//! let before = server.fetch_stats("alice");            // bodies and headers the client fetched
//! let log = server.commands_log("alice");              // every command the client sent
//! ```
//!
//! - [`shared`] starts a server once per test binary (in parallel with [`start_all`]) and
//!   stops it when the binary exits; every module of the one binary shares it, so each
//!   test must use user names of its own, unique across all modules.
//!   [`start`] makes a private one, stopped when dropped.
//! - Mailbox names: helpers take the server's wire names (modified UTF-7, its separator
//!   and prefix); [`MailServer::mailbox`] makes one from a UTF-8 path with `/` between
//!   levels.
//! - [`MailServer::session`] is a logged-in [`ImapSession`] of the harness's own, left out
//!   of [`MailServer::fetch_stats`] and [`MailServer::commands_log`], which count only the
//!   client under test.
//!
//! Needs root and `.ci/install-test-deps` (Dovecot installed; Cyrus and Courier unpacked in
//! [`SERVERS_DIR`]).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::courier::Courier;
use super::cyrus::{Cyrus, CyrusMode};
use super::dovecot::{between, number_after, quote, read_lossy, temp_base, Dovecot, ImapSession};

/// Where `.ci/install-test-deps` unpacks the Cyrus and Courier server packages (they
/// conflict with Dovecot's, so they are never installed as such); `SMAILTEST_SERVERS_DIR`
/// overrides it.
pub const SERVERS_DIR: &str = "/opt/smailarchiver-test-servers";

/// [`SERVERS_DIR`], or the directory the environment names.
pub fn servers_dir() -> PathBuf {
    std::env::var_os("SMAILTEST_SERVERS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(SERVERS_DIR))
}

/// The kinds of server the harness runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Dovecot 2.3, Maildir, `/` separator, no prefix.
    Dovecot,
    /// Cyrus IMAP 3.6 with `altnamespace: no`, `unixhierarchysep: no`: `.` separator,
    /// personal folders under `INBOX.`.
    CyrusDot,
    /// Cyrus IMAP 3.6 with its defaults: `/` separator, personal folders at the top.
    CyrusSlash,
    /// Courier-IMAP 5.0: `.` separator under `INBOX.`, no LITERAL+, CONDSTORE or
    /// LIST-STATUS, UIDNEXT only in STATUS.
    Courier,
}

impl Kind {
    /// Every kind, Dovecot first.
    pub const ALL: [Kind; 4] = [Kind::Dovecot, Kind::CyrusDot, Kind::CyrusSlash, Kind::Courier];

    /// A short name for messages and directory names.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Dovecot => "dovecot",
            Kind::CyrusDot => "cyrus-dot",
            Kind::CyrusSlash => "cyrus-slash",
            Kind::Courier => "courier",
        }
    }
}

/// How a server names nested mailboxes: `Archive/2023` is `PREFIX Archive SEP 2023`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub separator: char,
    /// `"INBOX."` or `""`.
    pub prefix: &'static str,
}

/// What the client under test fetched from a server, over its sessions of one user.
/// Take one before and one after a run and use [`ServerStats::since`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Sessions of the client (not the harness's own).
    pub sessions: u64,
    /// Bytes of message bodies fetched (`BODY[]`, `RFC822`, `BODY[TEXT]`...). Dovecot and
    /// Cyrus count whole messages, Courier only what follows the header.
    pub body_bytes: u64,
    /// Bytes of headers fetched alone (`BODY[HEADER]`, `HEADER.FIELDS`...).
    pub header_bytes: u64,
}

impl ServerStats {
    /// What happened after `earlier` was taken.
    pub fn since(&self, earlier: &ServerStats) -> ServerStats {
        ServerStats {
            sessions: self.sessions - earlier.sessions,
            body_bytes: self.body_bytes - earlier.body_bytes,
            header_bytes: self.header_bytes - earlier.header_bytes,
        }
    }
}

/// A message as the server serves it, with its flags (`\Recent` left out) and INTERNALDATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub raw: Vec<u8>,
    pub flags: Vec<String>,
    /// As the server writes it, e.g. `01-Jan-2020 10:00:00 +0000` (Cyrus in UTC, with a
    /// space-padded day: compare with [`same_date`]).
    pub internaldate: String,
}

/// Whether two INTERNALDATE strings (`"02-Mar-2015 10:11:12 +0100"`) are the same instant
/// (Cyrus gives them in UTC with a space-padded day).
pub fn same_date(a: &str, b: &str) -> bool {
    let (x, y) = (internaldate_epoch(a), internaldate_epoch(b));
    x.is_some() && x == y
}

/// Seconds since the epoch of an INTERNALDATE.
pub fn internaldate_epoch(date: &str) -> Option<i64> {
    let date = date.trim();
    let (day, rest) = date.split_once('-')?;
    let (month, rest) = rest.split_once('-')?;
    let (year, rest) = rest.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = months.iter().position(|n| n.eq_ignore_ascii_case(month))? as i64 + 1;
    let (d, y): (i64, i64) = (day.trim().parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').map(|t| t.parse().ok()).collect::<Option<_>>()?;
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let z: i64 = zone[1..].parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - sign * ((z / 100) * 3600 + (z % 100) * 60))
}

/// One running IMAP server. See the module documentation for how tests use it.
pub trait MailServer: Sync {
    fn kind(&self) -> Kind;
    /// The plaintext listener (STARTTLS available); the harness's own sessions use it.
    fn imap_port(&self) -> u16;
    /// The implicit-TLS listener; [`MailServer::client_args`] points the client at it.
    fn imaps_port(&self) -> u16;
    /// The server's self-signed certificate (end-entity, `DNS:localhost`, `IP:127.0.0.1`).
    fn cert_pem_path(&self) -> PathBuf;
    /// Adds a user (or replaces its password), usable at once. Names are `[a-z0-9_-]`.
    fn add_user(&self, user: &str, password: &str);
    fn hierarchy(&self) -> Hierarchy;
    /// Puts `message` into `mailbox` the way mail arrives without APPEND (an MTA or a
    /// filter), for what APPEND refuses or changes: bare LF, NUL, 8-bit headers. Dovecot
    /// and Courier: a file in the Maildir (the folder is made on disk if missing, so on
    /// Courier it has no `courierimapuiddb`); Cyrus: LMTP into INBOX, then MOVE (Cyrus
    /// adds `Return-Path`, `Received` and other headers). Compare with what the server
    /// serves, never with `message`.
    fn deliver_raw(&self, user: &str, password: &str, mailbox: &str, message: &[u8]);
    /// What the client under test fetched; waits for its sessions to end.
    fn fetch_stats(&self, user: &str) -> ServerStats;
    /// Every command the client under test sent after logging in as `user`, one per line,
    /// sessions in the order they started (literal data included as sent).
    fn commands_log(&self, user: &str) -> String;
    /// The server's log file, for failure messages.
    fn log_path(&self) -> PathBuf;
    /// The server's state directory.
    fn state_dir(&self) -> &Path;

    fn label(&self) -> &'static str {
        self.kind().label()
    }

    /// A logged-in session of the harness's own (see [`MailServer::fetch_stats`]).
    fn session(&self, user: &str, password: &str) -> ImapSession {
        let mut session = ImapSession::connect(self.imap_port()).with_log(self.log_path());
        session.login(user, password);
        session
    }

    /// The tool's arguments for `user` on this server (implicit TLS, its certificate
    /// trusted) with the archive root `root`.
    fn client_args(&self, user: &str, root: &Path) -> Vec<String> {
        let port = self.imaps_port().to_string();
        let ca = self.cert_pem_path().to_string_lossy().into_owned();
        let args = ["-u", user, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "--dir"];
        args.iter().map(|s| s.to_string()).chain([root.to_string_lossy().into_owned()]).collect()
    }

    /// The wire name of the mailbox at `path` (UTF-8, `/` between levels: `Archive/2023`,
    /// `Отправленные`) on this server: `INBOX.Archive.2023` on Courier and Cyrus in `.`
    /// mode. `INBOX` stays `INBOX`.
    fn mailbox(&self, path: &str) -> String {
        if path.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        let h = self.hierarchy();
        let levels: Vec<String> = path.split('/').map(smailarchiver::mailbox_name::encode_utf7).collect();
        format!("{}{}", h.prefix, levels.join(&h.separator.to_string()))
    }

    fn create_mailbox(&self, user: &str, password: &str, mailbox: &str) {
        let mut s = self.session(user, password);
        s.ok(&format!("CREATE {}", quote(mailbox)));
        s.logout();
    }

    fn delete_mailbox(&self, user: &str, password: &str, mailbox: &str) {
        let mut s = self.session(user, password);
        s.ok(&format!("DELETE {}", quote(mailbox)));
        s.logout();
    }

    /// APPENDs with flags and an INTERNALDATE (`"01-Jan-2020 10:00:00 +0000"`); returns
    /// the UID (APPENDUID: all three servers have UIDPLUS).
    fn append(
        &self,
        user: &str,
        password: &str,
        mailbox: &str,
        flags: &[&str],
        date: Option<&str>,
        message: &[u8],
    ) -> u32 {
        let mut s = self.session(user, password);
        let (_, uid) = s.append_at(mailbox, flags, date, message);
        s.logout();
        uid
    }

    fn mailbox_uidvalidity(&self, user: &str, password: &str, mailbox: &str) -> u32 {
        let mut s = self.session(user, password);
        let r = s.ok(&format!("STATUS {} (UIDVALIDITY)", quote(mailbox)));
        s.logout();
        r.untagged
            .iter()
            .find_map(|u| number_after(&u.text, "UIDVALIDITY "))
            .unwrap_or_else(|| panic!("no UIDVALIDITY in {r:?}"))
    }

    /// UIDs of the messages in a mailbox, ascending.
    fn uids(&self, user: &str, password: &str, mailbox: &str) -> Vec<u32> {
        self.messages(user, password, mailbox).keys().copied().collect()
    }

    /// Every message of `mailbox` as the server serves it (`BODY.PEEK[]`), by UID.
    fn all_raw(&self, user: &str, password: &str, mailbox: &str) -> BTreeMap<u32, Vec<u8>> {
        self.messages(user, password, mailbox).into_iter().map(|(uid, m)| (uid, m.raw)).collect()
    }

    /// Every message of `mailbox` with its flags and INTERNALDATE, by UID.
    fn messages(&self, user: &str, password: &str, mailbox: &str) -> BTreeMap<u32, Served> {
        let mut s = self.session(user, password);
        let examined = s.ok(&format!("EXAMINE {}", quote(mailbox)));
        let exists = examined.untagged.iter().find_map(|u| {
            let rest = u.text.strip_prefix("* ")?;
            let (n, word) = rest.split_once(' ')?;
            (word == "EXISTS").then(|| n.parse::<u32>().ok()).flatten()
        });
        let mut out = BTreeMap::new();
        if exists == Some(0) {
            s.logout();
            return out;
        }
        let r = s.ok("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])");
        s.logout();
        for u in r.untagged.iter().filter(|u| u.text.contains(" FETCH ") && u.text.contains("BODY[]")) {
            let uid = number_after(&u.text, "UID ").unwrap_or_else(|| panic!("no UID in {:?}", u.text));
            let raw = if u.text.contains("BODY[] \"\"") { Vec::new() } else { u.literals[0].clone() };
            let flags = between(&u.text, "FLAGS (", ")")
                .unwrap_or("")
                .split_whitespace()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .map(str::to_string)
                .collect();
            let internaldate = between(&u.text, "INTERNALDATE \"", "\"").unwrap_or("").to_string();
            out.insert(uid, Served { raw, flags, internaldate });
        }
        out
    }

    /// Mailbox names as the server lists them (wire names), in server order.
    fn list_mailboxes(&self, user: &str, password: &str) -> Vec<String> {
        let mut s = self.session(user, password);
        let r = s.ok("LIST \"\" \"*\"");
        s.logout();
        r.untagged.iter().filter(|u| u.text.starts_with("* LIST ")).map(super::dovecot::parse_list_name).collect()
    }

    /// Removes one message for good.
    fn expunge(&self, user: &str, password: &str, mailbox: &str, uid: u32) {
        let mut s = self.session(user, password);
        s.ok(&format!("SELECT {}", quote(mailbox)));
        s.ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
        s.ok(&format!("UID EXPUNGE {uid}"));
        s.logout();
    }
}

impl MailServer for Dovecot {
    fn kind(&self) -> Kind {
        Kind::Dovecot
    }
    fn imap_port(&self) -> u16 {
        Dovecot::imap_port(self)
    }
    fn imaps_port(&self) -> u16 {
        Dovecot::imaps_port(self)
    }
    fn cert_pem_path(&self) -> PathBuf {
        Dovecot::cert_pem_path(self)
    }
    fn add_user(&self, user: &str, password: &str) {
        Dovecot::add_user(self, user, password)
    }
    fn hierarchy(&self) -> Hierarchy {
        Hierarchy { separator: '/', prefix: "" }
    }
    fn deliver_raw(&self, user: &str, password: &str, mailbox: &str, message: &[u8]) {
        // Maildir++ as the harness configures it: INBOX at the top, other folders in
        // `.NAME` with `.` between levels, names in modified UTF-7.
        let maildir = self.user_home(user).join("Maildir");
        let folder = if mailbox.eq_ignore_ascii_case("INBOX") {
            maildir
        } else {
            if !self.list_mailboxes(user, password).iter().any(|m| m == mailbox) {
                Dovecot::create_mailbox(self, user, password, mailbox);
            }
            maildir.join(format!(".{}", mailbox.replace('/', ".")))
        };
        let (uid, gid) = super::dovecot::ensure_mail_user();
        drop_into_maildir(&folder, message, uid, gid);
    }
    fn fetch_stats(&self, user: &str) -> ServerStats {
        let s = Dovecot::fetch_stats(self, user);
        ServerStats { sessions: s.sessions, body_bytes: s.body_bytes, header_bytes: s.hdr_bytes }
    }
    fn commands_log(&self, user: &str) -> String {
        Dovecot::commands_log(self, user)
    }
    fn log_path(&self) -> PathBuf {
        Dovecot::log_path(self)
    }
    fn state_dir(&self) -> &Path {
        Dovecot::state_dir(self)
    }
    fn session(&self, user: &str, password: &str) -> ImapSession {
        Dovecot::session(self, user, password)
    }
}

/// Writes `message` into the Maildir folder `folder` (made with `cur`, `new`, `tmp` when
/// missing) as a delivery agent does: into `tmp`, then renamed into `new`; owned by the
/// mail user.
pub fn drop_into_maildir(folder: &Path, message: &[u8], uid: u32, gid: u32) {
    static N: AtomicU32 = AtomicU32::new(0);
    for sub in ["", "cur", "new", "tmp"] {
        let d = folder.join(sub);
        if !d.is_dir() {
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let name = format!(
        "{}.M{}P{}Q{}.smailtest",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = folder.join("tmp").join(&name);
    fs::write(&tmp, message).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).unwrap();
    fs::rename(&tmp, folder.join("new").join(&name)).unwrap();
}

/// A private server of `kind`, stopped when dropped.
pub fn start(kind: Kind) -> Box<dyn MailServer + Send> {
    match kind {
        Kind::Dovecot => Box::new(Dovecot::start()),
        Kind::CyrusDot => Box::new(Cyrus::start(CyrusMode::Dot)),
        Kind::CyrusSlash => Box::new(Cyrus::start(CyrusMode::Slash)),
        Kind::Courier => Box::new(Courier::start()),
    }
}

static DOVECOT: OnceLock<Dovecot> = OnceLock::new();
static CYRUS_DOT: OnceLock<Cyrus> = OnceLock::new();
static CYRUS_SLASH: OnceLock<Cyrus> = OnceLock::new();
static COURIER: OnceLock<Courier> = OnceLock::new();

/// The server of `kind` shared by the tests of this binary: started on first use, stopped
/// (and its directory removed) when the binary exits. Tests sharing it must use user names
/// of their own, unique across all modules.
pub fn shared(kind: Kind) -> &'static dyn MailServer {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function with no arguments, run once at exit.
        let r = unsafe { libc::atexit(stop_shared) };
        assert_eq!(r, 0, "atexit");
    });
    match kind {
        Kind::Dovecot => DOVECOT.get_or_init(Dovecot::start),
        Kind::CyrusDot => CYRUS_DOT.get_or_init(|| Cyrus::start(CyrusMode::Dot)),
        Kind::CyrusSlash => CYRUS_SLASH.get_or_init(|| Cyrus::start(CyrusMode::Slash)),
        Kind::Courier => COURIER.get_or_init(Courier::start),
    }
}

/// Starts the shared servers of `kinds` at once (each takes a second or so) and returns them.
pub fn start_all(kinds: &[Kind]) -> Vec<&'static dyn MailServer> {
    std::thread::scope(|s| {
        let handles: Vec<_> = kinds.iter().map(|&k| s.spawn(move || shared(k))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

extern "C" fn stop_shared() {
    if let Some(d) = DOVECOT.get() {
        d.shut_down();
    }
    for c in [CYRUS_DOT.get(), CYRUS_SLASH.get()].into_iter().flatten() {
        c.shut_down();
    }
    if let Some(c) = COURIER.get() {
        c.shut_down();
    }
}

// ----- pieces shared by the Cyrus and Courier harnesses -----

/// A fresh state directory `TMP/PREFIX<pid>-<n>-<nanos>`, mode 0755 (the servers' own users
/// must reach it). The pid lets [`reap_stale`] find directories of dead test binaries.
fn make_state_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = temp_base().join(format!("{prefix}{}-{n}-{nanos:x}", std::process::id()));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod state dir");
    dir
}

/// What a start-up check found.
pub(crate) enum Startup {
    Ready,
    /// The ports were taken meanwhile: try others.
    PortsTaken,
    Failed,
    Waiting,
}

/// How long a server may take to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Pairs of free ports tried before giving up.
const PORT_ATTEMPTS: u32 = 5;

/// A server the harness runs: its state directory and the session its processes run in
/// (each process it starts stays in that session, also those that make process groups of
/// their own, as couriertcpd does). Stopped, and the directory removed, when dropped or
/// by [`Supervised::shut_down`]; the variable `keep_var` set keeps the directory.
pub(crate) struct Supervised {
    pub dir: PathBuf,
    /// The session's leader.
    child: std::sync::Mutex<Option<Child>>,
    sid: AtomicU32,
    keep_var: &'static str,
    what: &'static str,
}

impl Supervised {
    /// A fresh state directory named `PREFIX<pid>-...` (after removing those of dead test
    /// binaries), nothing running yet.
    pub fn new(prefix: &str, keep_var: &'static str, what: &'static str) -> Supervised {
        reap_stale(prefix);
        Supervised {
            dir: make_state_dir(prefix),
            child: std::sync::Mutex::new(None),
            sid: AtomicU32::new(0),
            keep_var,
            what,
        }
    }

    /// Starts the server on a pair of free ports: `launch(imap, imaps)` writes what it
    /// needs and gives the command to run (its output goes to the file `out` in the state
    /// directory); `check(imap, imaps)` is asked every 20 ms what became of it. The ports,
    /// or `None` when it failed (after trying other ports when they were taken).
    pub fn start(
        &self,
        out: &str,
        mut launch: impl FnMut(u16, u16) -> Command,
        check: impl Fn(u16, u16) -> Startup,
    ) -> Option<(u16, u16)> {
        for _ in 0..PORT_ATTEMPTS {
            let (imap, imaps) = super::dovecot::free_port_pair();
            let child = spawn_session(&mut launch(imap, imaps), &self.dir.join(out));
            self.sid.store(child.id(), Ordering::SeqCst);
            fs::write(self.dir.join("session.pid"), child.id().to_string()).expect("write session.pid");
            *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            let found = loop {
                match check(imap, imaps) {
                    Startup::Waiting if Instant::now() < deadline => sleep(Duration::from_millis(20)),
                    Startup::Waiting => break Startup::Failed,
                    other => break other,
                }
            };
            match found {
                Startup::Ready => return Some((imap, imaps)),
                Startup::PortsTaken => self.stop(),
                _ => return None,
            }
        }
        None
    }

    /// Whether the session's leader has exited.
    pub fn exited(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            kill_session(self.sid.load(Ordering::SeqCst));
            let _ = child.wait();
        }
    }

    /// Stops the server and removes its directory (also through a shared reference: for
    /// a server kept in a static for the whole test binary, at exit).
    pub fn shut_down(&self) {
        self.stop();
        remove_state_dir(&self.dir, self.keep_var, self.what);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{} harness: test panicked; state dir {}", self.what, self.dir.display());
        }
        self.shut_down();
    }
}

/// Gives `path` and everything below it to `uid`:`gid`.
pub(crate) fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() && !path.is_symlink() {
        for e in fs::read_dir(path).unwrap().filter_map(Result::ok) {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// Spawns `cmd` as the leader of a new session (so that every process it starts, even
/// those that make process groups of their own, can be found and killed by
/// [`kill_session`]); its output goes to `out`.
fn spawn_session(cmd: &mut Command, out: &Path) -> Child {
    let stdout = fs::File::create(out).expect("create output file");
    let stderr = stdout.try_clone().expect("clone output file");
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr).spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// Processes of session `sid` that are alive (not zombies), with their command lines.
fn session_members(sid: u32) -> Vec<(i32, String)> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = read_lossy(&e.path().join("stat"));
            let (_, after) = stat.rsplit_once(") ")?;
            let fields: Vec<&str> = after.split(' ').collect();
            let alive = fields.len() > 3 && fields[0] != "Z" && fields[0] != "X";
            (alive && fields[3] == sid.to_string()).then(|| {
                let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
                (pid, String::from_utf8_lossy(&cmdline).replace('\0', " "))
            })
        })
        .collect()
}

/// SIGKILLs every process of session `sid` and waits (up to 5 s) until none is left.
pub(crate) fn kill_session(sid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = session_members(sid);
        if members.is_empty() || Instant::now() > deadline {
            return;
        }
        for (pid, _) in members {
            // SAFETY: a plain signal to a process of the session the harness started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        sleep(Duration::from_millis(10));
    }
}

/// Kills the servers and removes the state directories (named `PREFIX<pid>-...`) left by
/// test binaries that died without stopping them. Only a session one of whose processes
/// names the directory on its command line is killed (a session id of a dead server may
/// have been reused).
fn reap_stale(prefix: &str) {
    static DONE: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|p| p == prefix) {
        return;
    }
    done.push(prefix.to_string());
    let Ok(entries) = fs::read_dir(temp_base()) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else { continue };
        let Some(creator) = rest.split('-').next().filter(|p| !p.is_empty()) else { continue };
        if Path::new("/proc").join(creator).exists() {
            continue;
        }
        let dir = entry.path();
        if let Ok(sid) = read_lossy(&dir.join("session.pid")).trim().parse::<u32>() {
            let members = session_members(sid);
            if members.iter().any(|(_, cmdline)| cmdline.contains(&*dir.to_string_lossy())) {
                kill_session(sid);
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// Removes a state directory, retrying a little (processes may still be exiting).
fn remove_state_dir(dir: &Path, keep_var: &str, what: &str) {
    if std::env::var_os(keep_var).is_some() {
        eprintln!("{what} harness: kept {}", dir.display());
        return;
    }
    for _ in 0..20 {
        match fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => sleep(Duration::from_millis(50)),
        }
    }
    eprintln!("{what} harness: could not remove {}", dir.display());
}

/// Checks a user name the servers all accept as it is (Dovecot lowercases, Cyrus treats
/// `.` as a separator in `.` mode).
pub(crate) fn check_user_name(name: &str) {
    let valid =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
    assert!(valid, "user name {name:?} must match [a-z0-9_-]+");
}

/// Counts what the body- and header-fetching answers in `text` (a server's output)
/// carry: `BODY[] {N}`, `RFC822 {N}`, `BODY[TEXT] {N}` and friends as body bytes,
/// `BODY[HEADER...] {N}` and `RFC822.HEADER {N}` as header bytes. The N bytes after each
/// are skipped, so messages that quote such answers do not count.
pub(crate) fn count_fetched(text: &[u8], stats: &mut ServerStats) {
    let mut i = 0;
    while let Some(pos) = find(&text[i..], b"{") {
        let at = i + pos;
        let close = find(&text[at..], b"}\r\n").map(|c| at + c);
        let Some(close) = close.filter(|&c| c - at <= 12) else {
            i = at + 1;
            continue;
        };
        let Ok(n) = std::str::from_utf8(&text[at + 1..close]).unwrap_or("").parse::<u64>() else {
            i = at + 1;
            continue;
        };
        let item = item_name(&text[at.saturating_sub(4096)..at]).unwrap_or_default().to_ascii_uppercase();
        if item.starts_with("BODY[HEADER") || item == "RFC822.HEADER" || item.contains(".HEADER") {
            stats.header_bytes += n;
        } else if item.starts_with("BODY[") || item == "RFC822" || item == "RFC822.TEXT" || item.starts_with("BINARY[")
        {
            stats.body_bytes += n;
        }
        i = (close + 3 + n as usize).min(text.len());
    }
}

/// The FETCH item whose value a literal is: the text before `{` back to the space that
/// starts the item (spaces inside `[...]` belong to it).
fn item_name(before: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(before);
    let text = text.trim_end();
    let mut depth = 0;
    for (i, c) in text.char_indices().rev() {
        match c {
            ']' => depth += 1,
            '[' => depth -= 1,
            ' ' | '(' if depth == 0 => return Some(text[i + 1..].to_string()),
            _ => {}
        }
    }
    None
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Lines `user` had, as a map from session key (sortable) to its command text, built by
/// the server harnesses from their logs.
pub(crate) fn join_sessions(mut sessions: Vec<(String, String)>) -> String {
    sessions.sort();
    let mut out = String::new();
    for (_, text) in sessions {
        out.push_str(&text);
        if !text.is_empty() && !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Whether a session's first command (`TAG COMMAND...`) is the harness's own.
pub(crate) fn harness_command(first_line: &str) -> bool {
    let tag = first_line.split(' ').next().unwrap_or("");
    tag.strip_prefix(super::dovecot::HARNESS_TAG_PREFIX).is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        && !tag.is_empty()
}

/// `key=value` pairs of a log line, numbers only.
pub(crate) fn counters(line: &str) -> HashMap<String, u64> {
    line.split([',', ' '])
        .filter_map(|t| t.split_once('='))
        .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
        .collect()
}
