//! A private Dovecot 2.3 IMAP server for integration tests.
//!
//! Each [`Dovecot`] is a separate server: its own temporary directory, configuration,
//! `instance_name`, sockets, certificate and pair of free ports on 127.0.0.1, so any
//! number of tests and test binaries can run at once. It is stopped and its directory
//! removed when the value is dropped; do not keep one in a `static` (statics are never
//! dropped, so the server would outlive the test binary).
//!
//! Needs root and Debian 12's `dovecot-imapd` (run `.ci/install-test-deps`). Mail is
//! owned by the unprivileged system user [`MAIL_USER`], created on first use.
//!
//! Mailbox names given to the helpers are sent as they are: pass names already encoded
//! in modified UTF-7 (`Re&AOc-us` for "Reçus"); non-ASCII names are rejected.
//!
//! Dovecot traps this module steps around, learned on 2.3.19:
//! - the auth process delays every login from an IP (2, 4, 8, up to 15 s) once any
//!   login from it failed, and `login_trusted_networks` does not exempt 127.0.0.1; the
//!   penalty is kept by anvil, so the harness removes the `anvil-auth-penalty` socket
//!   before the first login, which makes auth run without penalties. A failed login
//!   still takes about 0.5 s (the failure-delay timer ticks at that rate).
//! - a passwd-file is stat()ed at most once per second and only re-read when its size
//!   or mtime changes; one file per user makes a new user usable at once.
//! - Maildir++ refuses `.` in mailbox names ("Character not allowed in mailbox name").
//! - connections from 127.0.0.1 count as secured, so plaintext LOGIN is always allowed
//!   on the `imap` port, whatever `disable_plaintext_auth` says.
//! - what IMAP serves differs from what was stored: bare LF becomes CRLF, NUL becomes
//!   0x80. Compare with [`Dovecot::fetch_raw`], not with the input.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The system user that owns the mail files (Dovecot will not run mail processes as root).
pub const MAIL_USER: &str = "smailtest";

/// The IMAP ID name of the harness's own sessions, so that [`Dovecot::fetch_stats`] and
/// [`Dovecot::commands_log`] can leave them out and count only the client under test.
const HARNESS_ID_NAME: &str = "smailtest-harness";
/// What the tags of the harness's own commands start with (`h1`, `h2`...); the client
/// under test tags its commands `s1`, `s2`...: the Cyrus and Courier harnesses tell their
/// own sessions in the command logs by it.
pub const HARNESS_TAG_PREFIX: &str = "h";
const DIR_PREFIX: &str = "smailtest-dovecot-";
const NOT_INSTALLED: &str = "dovecot is not installed: run .ci/install-test-deps (apt-get install -y dovecot-imapd)";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: u32 = 5;
const LOG_TAIL_LINES: usize = 40;

/// Which kind of self-signed certificate the server presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CertKind {
    /// `basicConstraints=critical,CA:FALSE`: what rustls accepts as a pinned root.
    #[default]
    EndEntity,
    /// `CA:TRUE`, as `openssl req -x509` makes by default and real NAS boxes ship;
    /// rustls rejects it as its own trust anchor (`CaUsedAsEndEntity`).
    SelfSignedCa,
}

/// Options for [`Dovecot::builder`].
#[derive(Clone, Debug, Default)]
pub struct DovecotBuilder {
    cert_kind: CertKind,
    extra_config: String,
    state_dir: Option<PathBuf>,
}

impl DovecotBuilder {
    pub fn cert_kind(mut self, kind: CertKind) -> Self {
        self.cert_kind = kind;
        self
    }

    /// Appends Dovecot configuration text after the harness's own; a setting given again
    /// there overrides the harness's (e.g. `mail_location = maildir:~/Maildir:LAYOUT=fs`
    /// to allow `.` in mailbox names).
    pub fn extra_config(mut self, text: &str) -> Self {
        self.extra_config.push_str(text);
        self.extra_config.push('\n');
        self
    }

    /// Keeps the server's state in `dir` (made here; it must not exist yet) instead of a
    /// temporary directory that later test binaries reap once its creator has exited:
    /// for a server that outlives its creator ([`Dovecot::keep_running`]).
    #[allow(dead_code, reason = "for tests/tools/try_server.rs, which includes this file")]
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    pub fn start(self) -> Dovecot {
        Dovecot::start_with(self)
    }
}

/// What Dovecot's `imap_logout_format` counters say about the client's sessions of a
/// user: `body_*` for FETCHes that include the message body (`BODY[]`, `RFC822`,
/// `BODY[TEXT]`, `BINARY[]`, partial bodies), `hdr_*` for header-only ones
/// (`BODY[HEADER]`, `RFC822.HEADER`, `HEADER.FIELDS`). ENVELOPE, BODYSTRUCTURE, FLAGS and
/// RFC822.SIZE count in neither. Counts are messages, not FETCH commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    pub sessions: u64,
    pub body_count: u64,
    pub body_bytes: u64,
    pub hdr_count: u64,
    pub hdr_bytes: u64,
}

impl FetchStats {
    /// What happened after `earlier` was taken, e.g. during a second backup run.
    pub fn since(&self, earlier: &FetchStats) -> FetchStats {
        FetchStats {
            sessions: self.sessions - earlier.sessions,
            body_count: self.body_count - earlier.body_count,
            body_bytes: self.body_bytes - earlier.body_bytes,
            hdr_count: self.hdr_count - earlier.hdr_count,
            hdr_bytes: self.hdr_bytes - earlier.hdr_bytes,
        }
    }
}

/// A running Dovecot; stopped, and its state directory removed, on drop. Set
/// `SMAILTEST_KEEP_DOVECOT=1` to keep the directory for a post-mortem.
pub struct Dovecot {
    dir: PathBuf,
    child: Option<Child>,
    /// Set once `try_wait` reaped the master: its pid may then be reused, so its
    /// process group must no longer be signalled.
    reaped: bool,
    imap_port: u16,
    imaps_port: u16,
    cert_kind: CertKind,
    cert_sha256: String,
    mail_uid: u32,
    mail_gid: u32,
    startup: Duration,
    /// Set by [`Dovecot::keep_running`]: drop leaves the server and its directory alone.
    kept: bool,
}

enum StartFailure {
    PortTaken,
    Other(String),
}

impl Dovecot {
    pub fn start() -> Dovecot {
        DovecotBuilder::default().start()
    }

    pub fn builder() -> DovecotBuilder {
        DovecotBuilder::default()
    }

    fn start_with(options: DovecotBuilder) -> Dovecot {
        let began = Instant::now();
        let dovecot = find_program("dovecot").unwrap_or_else(|| panic!("{NOT_INSTALLED}"));
        if !Path::new("/usr/share/dovecot/dh.pem").exists() {
            panic!("{NOT_INSTALLED} (/usr/share/dovecot/dh.pem is missing)");
        }
        let openssl = find_program("openssl").unwrap_or_else(|| {
            panic!("openssl is not installed: run .ci/install-test-deps (apt-get install -y openssl)")
        });
        require_root();
        reap_stale_instances();
        let (mail_uid, mail_gid) = ensure_mail_user();

        // Constructed before anything is started, so that a panic from here on drops it
        // and that stops the server and removes the directory.
        let mut server = Dovecot {
            dir: match &options.state_dir {
                Some(dir) => create_named_state_dir(dir),
                None => create_state_dir(),
            },
            child: None,
            reaped: false,
            imap_port: 0,
            imaps_port: 0,
            cert_kind: options.cert_kind,
            cert_sha256: String::new(),
            mail_uid,
            mail_gid,
            startup: Duration::ZERO,
            kept: false,
        };
        for sub in ["run", "lib", "home", "users"] {
            make_dir(&server.dir.join(sub), 0o755);
        }
        server.cert_sha256 = make_certificate(&openssl, &server.dir, options.cert_kind);

        // A port found free can be taken by another process before Dovecot binds it;
        // then Dovecot exits and we try again with new ports.
        for attempt in 1..=PORT_ATTEMPTS {
            let (imap_port, imaps_port) = free_port_pair();
            server.imap_port = imap_port;
            server.imaps_port = imaps_port;
            let config = server.render_config(&options.extra_config);
            fs::write(server.config_path(), config).expect("write dovecot.conf");
            server.spawn(&dovecot);
            match server.wait_ready(Instant::now() + STARTUP_TIMEOUT) {
                Ok(()) => {
                    server.startup = began.elapsed();
                    return server;
                }
                Err(StartFailure::PortTaken) if attempt < PORT_ATTEMPTS => server.stop(),
                Err(StartFailure::PortTaken) => server.fail("dovecot could not bind its ports after several attempts"),
                Err(StartFailure::Other(why)) => server.fail(&why),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Leaves the server running after this value and its process are gone; its state
    /// directory stays. [`stop_kept`] stops it later.
    #[allow(dead_code, reason = "for tests/tools/try_server.rs, which includes this file")]
    pub fn keep_running(mut self) -> PathBuf {
        self.kept = true;
        // Dropping the handle neither kills nor waits: the master goes on, in its own
        // process group, and is reparented when this process exits.
        self.child = None;
        self.dir.clone()
    }

    /// Port of the `imap` listener: plaintext, STARTTLS available.
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// Port of the `imaps` listener: implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
    }

    pub fn cert_kind(&self) -> CertKind {
        self.cert_kind
    }

    /// The tool's arguments for a backup of `user` from this server (implicit TLS, its
    /// certificate trusted) into `root`.
    pub fn client_args(&self, user: &str, root: &Path) -> Vec<String> {
        let (port, ca) = (self.imaps_port().to_string(), self.cert_pem_path());
        let args = ["-u", user, "-i", "127.0.0.1", "--port", &port, "--ca-file", ca.to_str().unwrap(), "--dir"];
        args.iter().map(|s| s.to_string()).chain([root.to_string_lossy().into_owned()]).collect()
    }

    pub fn cert_pem_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// SHA-256 of the DER certificate, lowercase hex without separators.
    pub fn cert_sha256_hex(&self) -> &str {
        &self.cert_sha256
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`Dovecot::start`] took, certificate generation included.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dovecot.log")
    }

    /// The whole Dovecot log (errors, info and the per-session logout lines).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log(), LOG_TAIL_LINES)
    }

    pub fn user_home(&self, user: &str) -> PathBuf {
        self.dir.join("home").join(user)
    }

    /// Adds a user, or replaces its password. Usable at once when new; a replaced
    /// password takes a second to be seen by Dovecot, and this waits for it.
    ///
    /// Names are lowercase ASCII (`[a-z0-9._-]`) because Dovecot lowercases the login
    /// name before looking it up; passwords may be anything but `:`, CR, LF and NUL.
    pub fn add_user(&self, name: &str, password: &str) {
        let valid_name = !name.is_empty()
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        assert!(valid_name, "user name {name:?} must match [a-z0-9._-]+");
        assert!(
            !password.contains([':', '\r', '\n', '\0']),
            "a passwd-file password cannot contain ':', CR, LF or NUL"
        );

        let home = self.user_home(name);
        for dir in [home.clone(), home.join("rawlog")] {
            make_dir(&dir, 0o700);
            chown(&dir, Some(self.mail_uid), Some(self.mail_gid))
                .unwrap_or_else(|e| panic!("chown {} to {MAIL_USER}: {e}", dir.display()));
        }

        let path = self.dir.join("users").join(name);
        let previous = fs::metadata(&path).ok();
        let line = format!("{name}:{{PLAIN}}{password}:{}:{}::{}::\n", self.mail_uid, self.mail_gid, home.display());
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, line).expect("write passwd-file");
        fs::rename(&tmp, &path).expect("rename passwd-file");

        if let Some(previous) = previous {
            let now = fs::metadata(&path).expect("stat passwd-file");
            if now.size() == previous.size() && now.mtime() == previous.mtime() {
                let later = UNIX_EPOCH + Duration::from_secs(previous.mtime() as u64 + 1);
                fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(later))
                    .expect("bump passwd-file mtime");
            }
            // Dovecot may have stat()ed the file earlier in this very second.
            sleep(Duration::from_millis(1100));
        }
    }

    /// A logged-in session marked as the harness's own: left out of
    /// [`Dovecot::fetch_stats`] and [`Dovecot::commands_log`].
    pub fn session(&self, user: &str, password: &str) -> ImapSession {
        let mut session = self.client_session(user, password);
        session.ok(&format!("ID (\"name\" \"{HARNESS_ID_NAME}\")"));
        session
    }

    /// A logged-in session that counts like the client under test would.
    pub fn client_session(&self, user: &str, password: &str) -> ImapSession {
        let mut session = ImapSession::connect(self.imap_port);
        session.log_path = Some(self.log_path());
        session.login(user, password);
        session
    }

    /// APPENDs a message and returns its UID (from APPENDUID).
    pub fn append(&self, user: &str, password: &str, mailbox: &str, message: &[u8]) -> u32 {
        let mut session = self.session(user, password);
        let (_, uid) = session.append(mailbox, &[], message);
        session.logout();
        uid
    }

    pub fn create_mailbox(&self, user: &str, password: &str, mailbox: &str) {
        let mut session = self.session(user, password);
        session.ok(&format!("CREATE {}", quote(mailbox)));
        session.logout();
    }

    pub fn delete_mailbox(&self, user: &str, password: &str, mailbox: &str) {
        let mut session = self.session(user, password);
        session.ok(&format!("DELETE {}", quote(mailbox)));
        session.logout();
    }

    pub fn mailbox_uidvalidity(&self, user: &str, password: &str, mailbox: &str) -> u32 {
        let mut session = self.session(user, password);
        let response = session.ok(&format!("STATUS {} (UIDVALIDITY)", quote(mailbox)));
        session.logout();
        response
            .untagged
            .iter()
            .find_map(|u| number_after(&u.text, "UIDVALIDITY "))
            .unwrap_or_else(|| panic!("no UIDVALIDITY in STATUS response: {response:?}"))
    }

    /// The message as IMAP serves it (`BODY.PEEK[]`), which is not always what was
    /// appended: see the module documentation.
    pub fn fetch_raw(&self, user: &str, password: &str, mailbox: &str, uid: u32) -> Vec<u8> {
        let mut session = self.session(user, password);
        session.ok(&format!("EXAMINE {}", quote(mailbox)));
        let response = session.ok(&format!("UID FETCH {uid} (BODY.PEEK[])"));
        session.logout();
        response
            .untagged
            .iter()
            .find(|u| u.text.contains(" FETCH ") && u.text.contains("BODY[] "))
            .and_then(|u| if u.text.contains("BODY[] \"\"") { Some(Vec::new()) } else { u.literals.first().cloned() })
            .unwrap_or_else(|| panic!("no BODY[] for UID {uid} in {mailbox}: {response:?}"))
    }

    /// UIDs of the messages in a mailbox, ascending.
    pub fn uids(&self, user: &str, password: &str, mailbox: &str) -> Vec<u32> {
        let mut session = self.session(user, password);
        session.ok(&format!("EXAMINE {}", quote(mailbox)));
        let response = session.ok("UID SEARCH ALL");
        session.logout();
        let mut uids: Vec<u32> = response
            .untagged
            .iter()
            .filter_map(|u| u.text.strip_prefix("* SEARCH"))
            .flat_map(|rest| rest.split_whitespace().map(|n| n.parse::<u32>().unwrap()))
            .collect();
        uids.sort_unstable();
        uids
    }

    /// Mailbox names as the server lists them (modified UTF-7), in server order.
    pub fn list_mailboxes(&self, user: &str, password: &str) -> Vec<String> {
        let mut session = self.session(user, password);
        let response = session.ok("LIST \"\" \"*\"");
        session.logout();
        response.untagged.iter().filter(|u| u.text.starts_with("* LIST ")).map(parse_list_name).collect()
    }

    /// Removes one message for good (STORE \Deleted, then UID EXPUNGE).
    pub fn expunge(&self, user: &str, password: &str, mailbox: &str, uid: u32) {
        let mut session = self.session(user, password);
        session.ok(&format!("SELECT {}", quote(mailbox)));
        session.ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
        session.ok(&format!("UID EXPUNGE {uid}"));
        session.logout();
    }

    /// Totals over every finished session of `user` except the harness's own, taken from
    /// the logout line Dovecot writes per session. Waits (up to 15 s, then panics) until
    /// each session that logged in has logged out, so call it after the client is done.
    /// Take one before and one after a run and use [`FetchStats::since`].
    pub fn fetch_stats(&self, user: &str) -> FetchStats {
        let mut stats = FetchStats::default();
        for session in self.wait_for_logouts(user) {
            if session.harness {
                continue;
            }
            let get = |key: &str| session.counters.get(key).copied().unwrap_or(0);
            stats.sessions += 1;
            stats.body_count += get("body_count");
            stats.body_bytes += get("body_bytes");
            stats.hdr_count += get("hdr_count");
            stats.hdr_bytes += get("hdr_bytes");
        }
        stats
    }

    /// Number of messages whose body the client under test fetched, over all its
    /// sessions of `user` so far. See [`Dovecot::fetch_stats`].
    pub fn fetch_count(&self, user: &str) -> u64 {
        self.fetch_stats(user).body_count
    }

    /// Every command the client under test sent after logging in as `user`, one per
    /// line, sessions in the order they started, from Dovecot's rawlog (LOGIN itself is
    /// handled before the rawlog starts, so passwords never appear). The harness's own
    /// sessions are left out. Waits for the sessions to end, like
    /// [`Dovecot::fetch_stats`].
    pub fn commands_log(&self, user: &str) -> String {
        self.wait_for_logouts(user);
        let dir = self.user_home(user).join("rawlog");
        let mut sessions: Vec<(String, String)> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e} (was the user added with add_user?)", dir.display()))
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                if path.extension()? != "in" {
                    return None;
                }
                let text = read_lossy(&path);
                if text.contains(&format!("ID (\"name\" \"{HARNESS_ID_NAME}\")")) {
                    return None;
                }
                // Lines start with "SECONDS.MICROS ", so the first one orders sessions.
                let key = text.split(' ').next().unwrap_or_default().to_string();
                Some((key, text))
            })
            .collect();
        sessions.sort();
        let mut out = String::new();
        for (_, text) in sessions {
            for line in text.lines() {
                out.push_str(strip_rawlog_timestamp(line));
                out.push('\n');
            }
        }
        out
    }

    /// Waits until every session of `user` that logged in has also logged out.
    pub fn wait_for_all_logouts(&self, user: &str) {
        self.wait_for_logouts(user);
    }

    fn wait_for_logouts(&self, user: &str) -> Vec<SessionRecord> {
        let deadline = Instant::now() + LOGOUT_TIMEOUT;
        loop {
            let sessions = parse_sessions(&self.log(), user);
            let open: Vec<&str> = sessions.iter().filter(|s| !s.closed).map(|s| s.id.as_str()).collect();
            if open.is_empty() {
                return sessions;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "sessions of {user} still open after {LOGOUT_TIMEOUT:?}: {open:?} \
                     (is the client still connected?)"
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("dovecot.conf")
    }

    fn render_config(&self, extra: &str) -> String {
        let dir = self.dir.display();
        let name = self.dir.file_name().unwrap().to_string_lossy();
        let (uid, gid) = (self.mail_uid, self.mail_gid);
        let (imap, imaps) = (self.imap_port, self.imaps_port);
        format!(
            r#"# Written by tests/it/support/dovecot.rs; self-contained, reads nothing from /etc/dovecot.
instance_name = {name}
base_dir = {dir}/run
state_dir = {dir}/lib
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
debug_log_path = {dir}/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
auth_verbose = yes

protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
ssl_dh = </usr/share/dovecot/dh.pem

disable_plaintext_auth = no
auth_mechanisms = plain login
# 2.3.19 still waits for the next 0.5 s tick, but not the default 2 s.
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull

first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir

# One file per user: Dovecot opens a new user's file on first lookup, while a shared
# file would be re-read at most once per second.
passdb {{
  driver = passwd-file
  args = {dir}/users/%u
}}
userdb {{
  driver = passwd-file
  args = {dir}/users/%u
}}

namespace inbox {{
  separator = /
  inbox = yes
}}

# The logout line carries the fetch counters; the ID log marks the harness's sessions;
# the rawlog keeps every command of every post-login session.
imap_logout_format = in=%i out=%o deleted=%{{deleted}} expunged=%{{expunged}} trashed=%{{trashed}} hdr_count=%{{fetch_hdr_count}} hdr_bytes=%{{fetch_hdr_bytes}} body_count=%{{fetch_body_count}} body_bytes=%{{fetch_body_bytes}}
imap_id_log = *
protocol imap {{
  rawlog_dir = %h/rawlog
  mail_max_userip_connections = 100
}}

service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}

{extra}"#
        )
    }

    fn spawn(&mut self, dovecot: &Path) {
        let stderr = fs::File::create(self.dir.join("dovecot.stderr")).expect("create stderr file");
        let stdout = stderr.try_clone().expect("clone stderr file");
        // -F keeps the master our child, so we can reap it; its own process group lets
        // Drop kill the master and all its children at once.
        let child = Command::new(dovecot)
            .arg("-F")
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", dovecot.display()));
        self.child = Some(child);
    }

    fn wait_ready(&mut self, deadline: Instant) -> Result<(), StartFailure> {
        let penalty_socket = self.dir.join("run/anvil-auth-penalty");
        let mut penalty_handled = false;
        let mut waited_for_socket = Duration::ZERO;
        loop {
            if let Some(status) = self.child_exit() {
                let output = format!("{}\n{}", self.stderr_text(), self.log());
                if output.contains("Address already in use") {
                    return Err(StartFailure::PortTaken);
                }
                return Err(StartFailure::Other(format!("dovecot exited during start-up ({status})")));
            }
            if Instant::now() > deadline {
                return Err(StartFailure::Other(format!(
                    "dovecot did not accept connections on 127.0.0.1:{} and :{} within {STARTUP_TIMEOUT:?}",
                    self.imap_port, self.imaps_port
                )));
            }
            // The auth process connects to this socket when it starts, on the first
            // login; without it auth runs with no login-failure penalty (see module docs).
            // Nothing may connect to the ports before it is gone.
            if !penalty_handled {
                if fs::remove_file(&penalty_socket).is_ok() {
                    penalty_handled = true;
                } else if waited_for_socket > Duration::from_secs(3) {
                    eprintln!(
                        "dovecot harness: {} never appeared; failed logins will slow later ones",
                        penalty_socket.display()
                    );
                    penalty_handled = true;
                } else {
                    sleep(Duration::from_millis(5));
                    waited_for_socket += Duration::from_millis(5);
                    continue;
                }
            }
            if greets(self.imap_port) && accepts(self.imaps_port) {
                return Ok(());
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn child_exit(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().expect("wait for dovecot"));
        self.reaped |= status.is_some();
        status
    }

    fn stderr_text(&self) -> String {
        read_lossy(&self.dir.join("dovecot.stderr"))
    }

    /// Stops the server and removes its directory through a shared reference: for a server
    /// kept for the whole test binary (`servers::shared`), whose static is never dropped,
    /// at the binary's exit. The value must not be used afterwards.
    pub fn shut_down(&self) {
        if let Some(child) = &self.child {
            let pgid = child.id();
            kill_group(pgid);
            let deadline = Instant::now() + Duration::from_secs(5);
            while group_alive(pgid) && Instant::now() < deadline {
                sleep(Duration::from_millis(5));
            }
        }
        if std::env::var_os("SMAILTEST_KEEP_DOVECOT").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// Kills the whole server. SIGTERM would make the master wait over a second for its
    /// children, and nothing here needs a clean shutdown: the state is thrown away.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id();
        // Until the master is reaped its pid cannot be reused, so the group id still
        // names only this server's processes. Once reaped (it died during start-up), its
        // children notice and exit by themselves.
        if !std::mem::take(&mut self.reaped) {
            kill_group(pgid);
        }
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_alive(pgid) && Instant::now() < deadline {
            sleep(Duration::from_millis(5));
        }
    }

    fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\nstate dir: {}\n--- dovecot stderr ---\n{}\n--- dovecot log (tail) ---\n{}",
            self.dir.display(),
            self.stderr_text().trim_end(),
            self.log_tail()
        )
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "dovecot harness: test panicked; state dir {}\n--- dovecot log (tail) ---\n{}",
                self.dir.display(),
                self.log_tail()
            );
        }
        self.stop();
        if std::env::var_os("SMAILTEST_KEEP_DOVECOT").is_some() {
            eprintln!("dovecot harness: kept {}", self.dir.display());
            return;
        }
        // Never panic in Drop: during unwinding that would abort the whole test binary.
        for _ in 0..20 {
            match fs::remove_dir_all(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => sleep(Duration::from_millis(50)),
            }
        }
        eprintln!("dovecot harness: could not remove {}", self.dir.display());
    }
}

struct SessionRecord {
    id: String,
    harness: bool,
    closed: bool,
    counters: HashMap<String, u64>,
}

/// Sessions of `user` in the order they first appear in the log. Lines of one session
/// are keyed by Dovecot's session id: `imap-login: ... Login: user=<u>, ... session=<S>`
/// then `imap(u)<PID><S>: ...` lines, the last being the logout line.
fn parse_sessions(log: &str, user: &str) -> Vec<SessionRecord> {
    let mut sessions: Vec<SessionRecord> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut record = |id: &str| -> usize {
        *index.entry(id.to_string()).or_insert_with(|| {
            sessions.push(SessionRecord {
                id: id.to_string(),
                harness: false,
                closed: false,
                counters: HashMap::new(),
            });
            sessions.len() - 1
        })
    };
    let login_marker = format!("imap-login: Info: Login: user=<{user}>,");
    let session_marker = format!(" imap({user})<");
    let mut updates: Vec<(usize, &str)> = Vec::new();
    for line in log.lines() {
        if line.contains(&login_marker) {
            if let Some(id) = between(line, "session=<", ">") {
                record(id);
            }
        } else if let Some(pos) = line.find(&session_marker) {
            // "<PID><SESSION>: Level: message"
            let rest = &line[pos + session_marker.len()..];
            let Some((_, rest)) = rest.split_once("><") else { continue };
            let Some((id, message)) = rest.split_once(">: ") else { continue };
            updates.push((record(id), message));
        }
    }
    for (i, message) in updates {
        let session = &mut sessions[i];
        if let Some(fields) = message.strip_prefix("Info: ID sent: ") {
            session.harness |= fields.split(", ").any(|f| f == format!("name={HARNESS_ID_NAME}"));
        } else if message.starts_with("Info: Disconnected")
            || message.starts_with("Info: Logged out")
            || message.starts_with("Fatal:")
        {
            session.closed = true;
            for token in message.split_whitespace() {
                if let Some((key, value)) = token.split_once('=') {
                    if let Ok(n) = value.parse() {
                        session.counters.insert(key.to_string(), n);
                    }
                }
            }
        }
    }
    sessions
}

fn strip_rawlog_timestamp(line: &str) -> &str {
    let Some((stamp, rest)) = line.split_once(' ') else {
        return line;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_stamp = stamp.split_once('.').is_some_and(|(secs, micros)| digits(secs) && digits(micros));
    if is_stamp {
        rest
    } else {
        line
    }
}

/// One server response: a line plus any literals it carried. In `text` each literal
/// stays as its `{N}` marker and its bytes are in `literals`, in order.
#[derive(Clone, Debug, Default)]
pub struct Untagged {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// The outcome of one command: the untagged responses and the tagged status line.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub untagged: Vec<Untagged>,
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The rest of the tagged line, response code included.
    pub text: String,
}

impl Response {
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }
}

/// A minimal synchronous IMAP client over plaintext TCP, for setting up and inspecting
/// mailboxes. It panics with the exchange and the server log on anything unexpected.
pub struct ImapSession {
    reader: BufReader<TcpStream>,
    next_tag: u32,
    log_path: Option<PathBuf>,
    /// Every line sent and received, for panic messages.
    transcript: Vec<String>,
}

enum Piece<'a> {
    Text(String),
    Literal(&'a [u8]),
}

impl ImapSession {
    /// Connects and reads the greeting; not logged in.
    pub fn connect(port: u16) -> ImapSession {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut session =
            ImapSession { reader: BufReader::new(stream), next_tag: 1, log_path: None, transcript: Vec::new() };
        let greeting = session.read_unit();
        if !greeting.text.starts_with("* OK") {
            session.fail(&format!("unexpected greeting {:?}", greeting.text));
        }
        session
    }

    /// LOGIN, sending each argument as a quoted string or, when it needs it (non-ASCII,
    /// CR, LF), as a literal.
    pub fn login(&mut self, user: &str, password: &str) {
        let response = self.try_login(user, password);
        if !response.is_ok() {
            self.fail(&format!("LOGIN as {user} failed: {} {}", response.status, response.text));
        }
    }

    /// LOGIN that returns the server's answer instead of panicking on NO.
    pub fn try_login(&mut self, user: &str, password: &str) -> Response {
        let mut pieces = vec![Piece::Text("LOGIN ".into())];
        pieces.extend(astring(user));
        pieces.push(Piece::Text(" ".into()));
        pieces.extend(astring(password));
        self.send(&pieces, &format!("LOGIN {user} ***"))
    }

    /// Runs one command line (without tag or CRLF) and returns whatever the server said.
    pub fn run(&mut self, command: &str) -> Response {
        self.send(&[Piece::Text(command.to_string())], command)
    }

    /// Runs one command line and panics unless the server answers OK.
    pub fn ok(&mut self, command: &str) -> Response {
        let response = self.run(command);
        if !response.is_ok() {
            self.fail(&format!("{command:?} failed: {} {}", response.status, response.text));
        }
        response
    }

    /// APPENDs with the given flags (e.g. `&["\\Seen"]`); returns (UIDVALIDITY, UID).
    pub fn append(&mut self, mailbox: &str, flags: &[&str], message: &[u8]) -> (u32, u32) {
        self.append_at(mailbox, flags, None, message)
    }

    /// [`ImapSession::append`] with the INTERNALDATE `date` (`"01-Jan-2020 10:00:00 +0000"`)
    /// when given.
    pub fn append_at(&mut self, mailbox: &str, flags: &[&str], date: Option<&str>, message: &[u8]) -> (u32, u32) {
        let flags = if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(" ")) };
        let date = date.map(|d| format!(" \"{d}\"")).unwrap_or_default();
        let head = format!("APPEND {}{flags}{date} ", quote(mailbox));
        let summary = format!("{head}{{{}}}", message.len());
        let response = self.send(&[Piece::Text(head), Piece::Literal(message)], &summary);
        if !response.is_ok() {
            self.fail(&format!("{summary} failed: {} {}", response.status, response.text));
        }
        let code = between(&response.text, "[APPENDUID ", "]")
            .unwrap_or_else(|| self.fail(&format!("no APPENDUID in {:?}", response.text)));
        let mut numbers = code.split(' ').map(|n| n.parse::<u32>().ok());
        match (numbers.next().flatten(), numbers.next().flatten()) {
            (Some(uidvalidity), Some(uid)) => (uidvalidity, uid),
            _ => self.fail(&format!("bad APPENDUID {code:?}")),
        }
    }

    pub fn logout(mut self) {
        self.ok("LOGOUT");
    }

    /// Names the server log whose tail a failure prints.
    pub fn with_log(mut self, path: PathBuf) -> Self {
        self.log_path = Some(path);
        self
    }

    fn send(&mut self, pieces: &[Piece], summary: &str) -> Response {
        let tag = format!("{HARNESS_TAG_PREFIX}{}", self.next_tag);
        self.next_tag += 1;
        self.transcript.push(format!("C: {tag} {summary}"));
        let mut untagged = Vec::new();
        self.write(format!("{tag} ").as_bytes());
        for piece in pieces {
            match piece {
                Piece::Text(text) => self.write(text.as_bytes()),
                Piece::Literal(bytes) => {
                    self.write(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                    // A synchronizing literal: the server may refuse it instead.
                    loop {
                        let unit = self.read_unit();
                        if unit.text.starts_with('+') {
                            break;
                        }
                        if let Some(done) = tagged(&unit.text, &tag) {
                            return Response { untagged, ..done };
                        }
                        untagged.push(unit);
                    }
                    self.write(bytes);
                }
            }
        }
        self.write(b"\r\n");
        loop {
            let unit = self.read_unit();
            if let Some(done) = tagged(&unit.text, &tag) {
                return Response { untagged, ..done };
            }
            if unit.text.starts_with('+') {
                self.fail("unexpected continuation request");
            }
            untagged.push(unit);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Err(e) = self.reader.get_mut().write_all(bytes) {
            self.fail(&format!("write to server: {e}"));
        }
    }

    /// Reads one response line, following `{N}` literals to the line's real end.
    fn read_unit(&mut self) -> Untagged {
        let mut unit = Untagged::default();
        loop {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => self.fail("server closed the connection"),
                Ok(_) => {}
                Err(e) => self.fail(&format!("read from server: {e}")),
            }
            if !line.ends_with(b"\r\n") {
                self.fail(&format!("line not ended by CRLF: {:?}", String::from_utf8_lossy(&line)));
            }
            line.truncate(line.len() - 2);
            let text = String::from_utf8_lossy(&line).into_owned();
            unit.text.push_str(&text);
            match literal_length(&text) {
                Some(length) => {
                    let mut bytes = vec![0; length];
                    if let Err(e) = self.reader.read_exact(&mut bytes) {
                        self.fail(&format!("read {length}-byte literal: {e}"));
                    }
                    unit.literals.push(bytes);
                }
                None => break,
            }
        }
        self.transcript.push(format!("S: {}", unit.text));
        unit
    }

    fn fail(&self, why: &str) -> ! {
        let start = self.transcript.len().saturating_sub(20);
        let exchange = self.transcript[start..].join("\n");
        let log = self.log_path.as_ref().map(|p| tail(&read_lossy(p), LOG_TAIL_LINES)).unwrap_or_default();
        panic!("IMAP: {why}\n--- exchange ---\n{exchange}\n--- server log (tail) ---\n{log}")
    }
}

fn tagged(text: &str, tag: &str) -> Option<Response> {
    let rest = text.strip_prefix(tag)?.strip_prefix(' ')?;
    let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Response { untagged: Vec::new(), status: status.to_ascii_uppercase(), text: text.to_string() })
}

/// `{N}` (or `{N+}`) at the end of a line announces N bytes of literal data.
pub(crate) fn literal_length(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

/// A quoted string. Only printable ASCII: mailbox names must already be in modified
/// UTF-7, which is ASCII.
pub fn quote(s: &str) -> String {
    if let Some(c) = s.chars().find(|c| !(' '..='~').contains(c)) {
        panic!(
            "{s:?} contains {c:?}: the harness sends names as they are, so pass mailbox names \
             already encoded in modified UTF-7 (e.g. \"Re&AOc-us\" for \"Reçus\")"
        );
    }
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn astring(s: &str) -> Vec<Piece<'_>> {
    if s.chars().all(|c| (' '..='~').contains(&c)) {
        vec![Piece::Text(quote(s))]
    } else {
        vec![Piece::Literal(s.as_bytes())]
    }
}

/// The name in `* LIST (flags) "/" NAME`: a quoted string, a literal or an atom.
pub(crate) fn parse_list_name(unit: &Untagged) -> String {
    let text = &unit.text;
    let after_flags = &text[text.find(')').map_or(0, |i| i + 1)..];
    let after_flags = after_flags.trim_start();
    // The delimiter: a quoted character or NIL.
    let rest = if let Some(quoted) = after_flags.strip_prefix('"') {
        let mut escaped = false;
        let end = quoted
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(quoted.len(), |(i, _)| i + 1);
        &quoted[end..]
    } else {
        after_flags.strip_prefix("NIL").unwrap_or(after_flags)
    };
    let name = rest.trim_start();
    if let Some(quoted) = name.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
        }
        out
    } else if literal_length(name).is_some() {
        String::from_utf8_lossy(unit.literals.last().expect("literal")).into_owned()
    } else {
        name.to_string()
    }
}

pub(crate) fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

pub(crate) fn number_after(text: &str, key: &str) -> Option<u32> {
    let from = text.find(key)? + key.len();
    let digits: String = text[from..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(crate) fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// True once the server answers with a greeting: a listening socket alone is not enough,
/// the login process behind it must be up too.
pub(crate) fn greets(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 4];
    let greeted = stream.read_exact(&mut buf).is_ok() && &buf == b"* OK";
    let _ = stream.write_all(b"x LOGOUT\r\n");
    greeted
}

pub(crate) fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

pub(crate) fn free_port_pair() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    // Both held at once so that they differ.
    let (a, b) = (bind(), bind());
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // cargo may run without the sbin directories in PATH, where dovecot and useradd live.
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

pub(crate) fn require_root() {
    let uid = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    if uid != 0 {
        panic!(
            "the Dovecot test harness must run as root (uid {uid} here): dovecot needs it to \
             switch to the mail user {MAIL_USER}"
        );
    }
}

pub(crate) fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == name {
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// Returns the mail user's (uid, gid), creating the user if needed. Several test
/// binaries may try at once: useradd then fails on the lock or because the user exists,
/// so what counts is whether the user exists afterwards.
pub(crate) fn ensure_mail_user() -> (u32, u32) {
    let mut last_error = String::new();
    for _ in 0..50 {
        if let Some(ids) = lookup_user(MAIL_USER) {
            return ids;
        }
        let useradd = find_program("useradd")
            .unwrap_or_else(|| panic!("useradd not found: run .ci/install-test-deps to create the user {MAIL_USER}"));
        let output = Command::new(useradd)
            .args(["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"])
            .arg(MAIL_USER)
            .output()
            .expect("run useradd");
        if output.status.success() {
            continue;
        }
        last_error = String::from_utf8_lossy(&output.stderr).trim().to_string();
        sleep(Duration::from_millis(100));
    }
    panic!("could not create the system user {MAIL_USER} for the test mail: {last_error}")
}

/// Short names matter: Dovecot's sockets live in `DIR/run`, and a Unix socket path
/// must fit in 108 bytes.
pub(crate) fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    if base.as_os_str().len() > 40 {
        PathBuf::from("/tmp")
    } else {
        base
    }
}

fn create_state_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = temp_base();
    // The mail processes run as the mail user and must be able to reach the homes.
    for dir in base.ancestors() {
        let mode = fs::metadata(dir).map(|m| m.mode()).unwrap_or(0);
        assert!(
            mode & 0o001 != 0,
            "{} is not searchable by others, so {MAIL_USER} cannot reach its mail under it: \
             set TMPDIR to a directory like /tmp",
            dir.display()
        );
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("{DIR_PREFIX}{}-{n}-{nanos:x}", std::process::id()));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod state dir");
    dir
}

/// `dir` made as a server's state directory, for [`DovecotBuilder::state_dir`].
fn create_named_state_dir(dir: &Path) -> PathBuf {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent = fs::canonicalize(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    for d in parent.ancestors() {
        let mode = fs::metadata(d).map(|m| m.mode()).unwrap_or(0);
        assert!(
            mode & 0o001 != 0,
            "{} is not searchable by others, so {MAIL_USER} cannot reach its mail under it: \
             choose a directory under one like /tmp",
            d.display()
        );
    }
    let dir = parent.join(dir.file_name().unwrap_or_else(|| panic!("{}: no directory name", dir.display())));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod state dir");
    dir
}

pub(crate) fn make_dir(dir: &Path, mode: u32) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
}

/// Writes `cert.pem` and `key.pem` into `dir`; returns the certificate's SHA-256.
pub(crate) fn make_certificate(openssl: &Path, dir: &Path, kind: CertKind) -> String {
    let constraints = match kind {
        CertKind::EndEntity => "basicConstraints=critical,CA:FALSE",
        CertKind::SelfSignedCa => "basicConstraints=critical,CA:TRUE",
    };
    let output = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650"])
        .args(["-subj", "/CN=localhost"])
        // DNS:127.0.0.1 too, for clients that match host names only (mbsync).
        .args(["-addext", "subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1"])
        .args(["-addext", constraints])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("run openssl req");
    assert!(output.status.success(), "openssl req failed: {}", String::from_utf8_lossy(&output.stderr));
    let output = Command::new(openssl)
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.join("cert.pem"))
        .output()
        .expect("run openssl x509");
    let text = String::from_utf8_lossy(&output.stdout);
    let hex: String =
        text.split_once('=').map(|(_, h)| h.trim().replace(':', "").to_ascii_lowercase()).unwrap_or_default();
    assert!(
        output.status.success() && hex.len() == 64,
        "openssl x509 -fingerprint failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    hex
}

/// SIGKILL to a process group. Through sh's builtin `kill`, since std cannot send
/// signals and the procps `kill` binary is not on every Debian image.
pub(crate) fn kill_group(pgid: u32) {
    let _ = Command::new("sh").arg("-c").arg(format!("kill -s KILL -- -{pgid}")).stderr(Stdio::null()).status();
}

/// Whether any live process is in process group `pgid`. Zombies do not count: the
/// killed children are reparented to init, which reaps them in its own time.
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let stat = read_lossy(&entry.path().join("stat"));
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some((_, after)) = stat.rsplit_once(") ") else {
            return false;
        };
        let fields: Vec<&str> = after.split(' ').collect();
        fields.len() > 2 && fields[0] != "Z" && fields[0] != "X" && fields[2] == pgid.to_string()
    })
}

/// Kills the servers and removes the directories left by test binaries that died
/// without dropping their instances (killed, or aborted). Only directories whose
/// creating process is gone are touched, and only a master whose command line names
/// that directory is killed.
/// Kills the server whose state directory is `dir`, if one runs: the process group of
/// the master named in its pid file, when that process is a Dovecot of this directory.
/// Returns whether there was one to kill.
fn kill_instance(dir: &Path) -> bool {
    let master = read_lossy(&dir.join("run/master.pid")).trim().to_string();
    if master.is_empty() {
        return false;
    }
    let cmdline = read_lossy(&Path::new("/proc").join(&master).join("cmdline"));
    match (cmdline.contains(&*dir.to_string_lossy()), master.parse()) {
        (true, Ok(pgid)) => {
            kill_group(pgid);
            true
        }
        _ => false,
    }
}

/// Stops a server left running by [`Dovecot::keep_running`] and removes its state
/// directory. Returns whether a server was running.
#[allow(dead_code, reason = "for tests/tools/try_server.rs, which includes this file")]
pub fn stop_kept(dir: &Path) -> bool {
    let master = read_lossy(&dir.join("run/master.pid")).trim().parse::<u32>().ok();
    let running = kill_instance(dir);
    if let (true, Some(pgid)) = (running, master) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_alive(pgid) && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
    }
    let _ = fs::remove_dir_all(dir);
    running
}

/// Whether the server of state directory `dir` runs.
#[allow(dead_code, reason = "for tests/tools/try_server.rs, which includes this file")]
pub fn kept_running(dir: &Path) -> bool {
    let master = read_lossy(&dir.join("run/master.pid")).trim().to_string();
    !master.is_empty()
        && read_lossy(&Path::new("/proc").join(&master).join("cmdline")).contains(&*dir.to_string_lossy())
}

fn reap_stale_instances() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(temp_base()) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
                continue;
            };
            let Some(creator) = rest.split('-').next().filter(|p| !p.is_empty()) else {
                continue;
            };
            if Path::new("/proc").join(creator).exists() {
                continue;
            }
            let dir = entry.path();
            if kill_instance(&dir) {
                sleep(Duration::from_millis(100));
            }
            let _ = fs::remove_dir_all(&dir);
        }
    });
}
