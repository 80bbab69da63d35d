//! A scripted IMAP server for fault tests: implicit TLS on a free local port, just enough
//! of IMAP4rev1 for a backup (CAPABILITY, LOGIN, AUTHENTICATE XOAUTH2 when started with
//! [`FakeImap::start_oauth2`], XOAUTH2 and OAUTHBEARER with the tokens an OAuth 2.0 mock
//! issued when started with [`FakeImap::start_bearer`], EXAMINE, UID SEARCH, UID FETCH of
//! sizes and of whole or partial bodies, LIST, NOOP, LOGOUT), and faults injected at
//! chosen points, which is what a real Dovecot cannot be made to do.
//!
//! Connections are served one after another; connection `i` follows `scripts[i]`, the
//! last script repeating, so "the first connection breaks, the next ones are fine" is
//! `vec![broken, Script::healthy()]` and "every connection breaks" is `vec![broken]`.
//!
//! The server's own failures are the test's: a panic while serving a connection, an I/O
//! error on a connection where no stream-breaking fault was injected (other than the
//! client leaving between commands), or a command the server does not know, are recorded
//! and fail the test when the server is dropped (or at [`FakeImap::assert_no_errors`]).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::TempDir;

mod target;
pub use target::{Persona, Stored};

/// A folder on the server: its name, UIDVALIDITY and messages `(uid, raw bytes)` in UID order.
#[derive(Clone, Debug)]
pub struct Folder {
    pub name: String,
    pub uidvalidity: u32,
    pub messages: Vec<(u32, Vec<u8>)>,
    /// Flags and INTERNALDATE of the messages APPEND stored, by UID.
    pub stored: HashMap<u32, Stored>,
    /// The UID the next message APPEND stores gets (never one used before).
    pub uidnext: u32,
}

impl Folder {
    pub fn new(name: &str, uidvalidity: u32, messages: Vec<(u32, Vec<u8>)>) -> Folder {
        let uidnext = messages.last().map_or(1, |(u, _)| u + 1);
        Folder { name: name.to_string(), uidvalidity, messages, stored: HashMap::new(), uidnext }
    }
}

/// When a fault strikes.
#[derive(Clone, Debug)]
pub enum When {
    /// Instead of the greeting.
    Greeting,
    /// At the `nth` (from 1) command of the connection whose text (tag left out,
    /// compared in upper case) contains `containing`.
    Command { containing: &'static str, nth: usize },
}

/// What goes wrong.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer the command `NO text`.
    No(&'static str),
    /// Answer the command `BAD text`.
    Bad(&'static str),
    /// Send `* BYE` instead of the answer, then hang up.
    Bye,
    /// Send these bytes instead of the answer (or greeting), then hang up.
    Garbage(&'static [u8]),
    /// Never answer; the connection stays open until the client leaves.
    Stall,
    /// Answer, but hang up (no TLS close_notify) after this many bytes of the first literal.
    DropMidLiteral(usize),
    /// Send this many bytes more in each literal than its `{N}` announces.
    LongLiteral(usize),
    /// Precede each message's data with an unsolicited `FETCH (UID u FLAGS (\Seen))`,
    /// which RFC 3501 (7.4.2) lets a server send at any time.
    FlagsFirst,
    /// Leave this UID out of a body fetch's answer (its size was given before), as a
    /// server does for a message another session expunged in between.
    Omit(u32),
    /// Answer this UID's body fetch with `BODY[] NIL` and then `* n EXPUNGE`, which is
    /// what Dovecot sends for a message another session expunged while this one still
    /// sees it. Give the batch's last UID: later sequence numbers are not shifted.
    NilBody(u32),
    /// Send the answer one byte every 50 ms: never silent, never done.
    Trickle,
    /// Before the answer's end, send this many answers for a UID never asked for (999999),
    /// each with a 256 KiB literal.
    Unasked(usize),
    /// Before the answer, send a 100,000-byte body whose FETCH names its UID (999999) only
    /// after the body, as if it were the body asked for.
    ForeignBody,
    /// Sizes lie: `RFC822.SIZE` answers say 100 bytes for every message.
    SmallSizes,
    /// Answer a body fetch with this many bytes of filler in place of the message: a body
    /// far bigger than the size given for it.
    Oversized(usize),
    /// Send a line of this many bytes without a line end, then hang up.
    LongLine(usize),
    /// At an APPEND: never answer it (as [`Fault::Stall`]), but store its message just
    /// before the server stores the `n`-th APPEND it gets after it, on any connection: a
    /// stalled link that delivers what the client sent long after the client gave up.
    LandLate(usize),
    /// Answer a `UID SEARCH` with UIDs 1 to this number, all on one line.
    HugeSearch(u32),
    /// Send this many untagged `* OK noise` lines, then the answer.
    Noise(usize),
    /// Add a LIST entry whose name is these bytes (a literal), before the answer's end.
    ExtraListName(&'static [u8]),
}

/// The faults of one connection.
#[derive(Clone, Debug, Default)]
pub struct Script(Vec<(When, Fault)>);

impl Script {
    /// A connection where nothing goes wrong.
    pub fn healthy() -> Script {
        Script::default()
    }

    /// Adds `fault` at the `nth` command containing `containing`.
    pub fn at(mut self, containing: &'static str, nth: usize, fault: Fault) -> Script {
        self.0.push((When::Command { containing, nth }, fault));
        self
    }

    /// Replaces the greeting by `fault`.
    pub fn at_greeting(mut self, fault: Fault) -> Script {
        self.0.push((When::Greeting, fault));
        self
    }
}

/// What a server started with [`FakeImap::start_expiring`] takes.
#[derive(Clone, Copy, Debug)]
pub enum Expiring {
    /// AUTHENTICATE XOAUTH2 with access tokens that start with this (no LOGIN).
    Tokens(&'static str),
    /// LOGIN with passwords that start with this.
    Passwords(&'static str),
}

/// When a connection was accepted, and when the server closed it (`None` while served).
pub type ConnectionTimes = (Instant, Option<Instant>);

/// What an OAuth 2.0 provider says of an access token (see [`FakeImap::start_bearer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer {
    /// Issued, and good now.
    Valid,
    /// Issued, but its lifetime is over.
    Expired,
    /// Never issued.
    Unknown,
}

/// Asks the provider about an access token.
pub type BearerCheck = Arc<dyn Fn(&str) -> Bearer + Send + Sync>;

/// The pause a test sets with [`FakeImap::pause_at`].
#[derive(Default)]
struct Pause {
    state: Mutex<PauseState>,
    changed: Condvar,
}

#[derive(Default)]
struct PauseState {
    /// What command to hold, and where in its answer.
    armed: Option<(String, Option<usize>)>,
    /// A command met it.
    reached: bool,
    released: bool,
}

impl Pause {
    /// Whether `cmd` is the command to hold (the pause is then used up): where to hold
    /// its answer.
    fn meets(&self, cmd: &str) -> Option<Option<usize>> {
        let mut st = lock(&self.state);
        let (containing, mid_literal) = st.armed.as_ref()?;
        if !cmd.to_ascii_uppercase().contains(containing.as_str()) {
            return None;
        }
        let mid_literal = *mid_literal;
        st.armed = None;
        st.reached = true;
        self.changed.notify_all();
        Some(mid_literal)
    }

    fn wait_released(&self) {
        let mut st = lock(&self.state);
        while !st.released {
            st = self.changed.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The running server; stopped on drop.
pub struct FakeImap {
    addr: SocketAddr,
    dir: TempDir,
    log: Arc<Mutex<Vec<Vec<String>>>>,
    /// When each connection was accepted and when the server was done with it (its
    /// socket closed).
    times: Arc<Mutex<Vec<ConnectionTimes>>>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    folders: Arc<Mutex<Vec<Folder>>>,
    pause: Arc<Pause>,
    thread: Option<JoinHandle<()>>,
}

/// What a server offers beyond the basics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offer {
    /// Capabilities added to `IMAP4rev1 AUTH=PLAIN` (`ID`, `LIST-STATUS`, `SASL-IR`).
    pub capabilities: &'static str,
    /// EXAMINE is refused until the client sent ID, as NetEase (163.com, 126.com) does.
    pub require_id: bool,
    /// Connections served at once; more are turned away with a BYE (as Dovecot's
    /// `mail_max_userip_connections` does).
    pub max_connections: Option<usize>,
    /// EXAMINE gives no `[UIDNEXT]` (it is only in STATUS), as Courier-IMAP does.
    pub no_uidnext_on_examine: bool,
    /// How the server names folders and takes uploads (see [`Persona`]).
    pub persona: Persona,
    /// A pause before each answer that carries message bodies: a slow link, so a run
    /// lasts long enough for tokens to expire in it.
    pub pace: Duration,
    /// `RFC822.SIZE` is an estimate, as Exchange's is without `EnableExactRFC822Size`: a
    /// quarter below the real size for odd UIDs, a quarter above for even ones.
    pub estimated_sizes: bool,
    /// Pipelining garbled, as Exchange and Microsoft 365 do: a command that arrives while
    /// the one before it is still being answered gets `BAD Command Error. 10`.
    pub garbles_pipelining: bool,
}

impl Offer {
    /// Microsoft 365 (Exchange Online) as its documentation and users' session logs show
    /// it: IMAP4rev1 without CONDSTORE, LIST-STATUS or LITERAL-, sizes that are estimates,
    /// pipelining that garbles answers. Start it with [`FakeImap::start_bearer`] and
    /// `"XOAUTH2"` (basic authentication is off); throttling comes by [`Script`]:
    /// [`Fault::No`] with [`EXCHANGE_THROTTLED`].
    pub fn microsoft365() -> Offer {
        Offer {
            capabilities: "SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+",
            estimated_sizes: true,
            garbles_pipelining: true,
            ..Offer::default()
        }
    }
}

/// Exchange Online's throttling answer (its real suggestions are minutes; the tests' is
/// short).
pub const EXCHANGE_THROTTLED: &str = "Request is throttled. Suggested Backoff Time: 30 milliseconds";

impl FakeImap {
    /// Starts a server for `user`/`password` with `folders`, following `scripts`.
    pub fn start(user: &str, password: &str, folders: Vec<Folder>, scripts: Vec<Script>) -> FakeImap {
        FakeImap::start_offering(user, password, folders, scripts, Offer::default())
    }

    /// Starts a server that also offers what `offer` says.
    pub fn start_offering(
        user: &str,
        password: &str,
        folders: Vec<Folder>,
        scripts: Vec<Script>,
        offer: Offer,
    ) -> FakeImap {
        FakeImap::start_with(Account::new(user, password, None, None, folders, offer), scripts)
    }

    /// Starts a server that also offers `AUTH=XOAUTH2` and takes `user` with the access
    /// token `token` (LOGIN is refused: there is no password).
    pub fn start_oauth2(user: &str, token: &str, folders: Vec<Folder>, scripts: Vec<Script>) -> FakeImap {
        FakeImap::start_with(Account::new(user, "", Some(token), None, folders, Offer::default()), scripts)
    }

    /// Starts a server whose passwords or tokens expire: it takes `user` with any that
    /// starts with the prefix `credentials` gives, each one for `logins` logins only; then
    /// a login with it is refused, as Google and Microsoft refuse a token after its hour.
    /// (The connection it opened stays up, unless a script's fault ends it.)
    pub fn start_expiring(
        user: &str,
        credentials: Expiring,
        logins: usize,
        folders: Vec<Folder>,
        scripts: Vec<Script>,
    ) -> FakeImap {
        let (password, token) = match credentials {
            Expiring::Tokens(prefix) => ("", Some(prefix)),
            Expiring::Passwords(prefix) => (prefix, None),
        };
        FakeImap::start_with(Account::new(user, password, token, Some(logins), folders, Offer::default()), scripts)
    }

    /// Starts a server that takes `user` with any access token `check` calls valid, by
    /// AUTHENTICATE with the SASL mechanisms `mechanisms` (`"XOAUTH2"`, `"XOAUTH2
    /// OAUTHBEARER"`); no password. A connection whose token expires meanwhile is ended at
    /// its next command with `* BYE Session invalidated - AccessTokenExpired`, as Exchange
    /// Online does. Each AUTHENTICATE's outcome is logged as `AUTH OK` or `AUTH NO`.
    pub fn start_bearer(
        user: &str,
        check: BearerCheck,
        mechanisms: &'static str,
        folders: Vec<Folder>,
        scripts: Vec<Script>,
        offer: Offer,
    ) -> FakeImap {
        let mut account = Account::new(user, "", None, None, folders, offer);
        account.bearer = Some((check, mechanisms));
        FakeImap::start_with(account, scripts)
    }

    fn start_with(account: Account, scripts: Vec<Script>) -> FakeImap {
        let folders = account.folders.clone();
        assert!(!scripts.is_empty(), "at least one script");
        let dir = TempDir::new("fake-imap");
        let tls = tls_config(&dir);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let times = Arc::new(Mutex::new(Vec::new()));
        let pause = Arc::new(Pause::default());
        let (log2, errors2, stop2, times2) = (log.clone(), errors.clone(), stop.clone(), times.clone());
        let pause2 = pause.clone();
        let thread = std::thread::spawn(move || {
            let active = AtomicUsize::new(0);
            // Connections are served at once, each on a thread of its own, as a real server
            // does; leaving the scope waits for them all.
            std::thread::scope(|scope| {
                for tcp in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let accepted = Instant::now();
                    let tcp = match tcp {
                        Ok(tcp) => tcp,
                        Err(e) => {
                            lock(&errors2).push(format!("accept: {e}"));
                            continue;
                        }
                    };
                    let n = {
                        let mut log = lock(&log2);
                        log.push(Vec::new());
                        lock(&times2).push((accepted, None));
                        log.len() - 1
                    };
                    let (account, scripts, tls, active, pause) = (&account, &scripts, &tls, &active, &pause2);
                    let (log2, errors2, times2) = (&log2, &errors2, &times2);
                    scope.spawn(move || {
                        let busy = active.fetch_add(1, Ordering::SeqCst);
                        if account.offer.max_connections.is_some_and(|max| busy >= max) {
                            refuse(tcp, tls);
                        } else {
                            let script = &scripts[n.min(scripts.len() - 1)];
                            serve_one(account, script, pause, tls, tcp, n, (log2, errors2));
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                        // The socket is closed by now.
                        if let Some(t) = lock(times2).get_mut(n) {
                            t.1 = Some(Instant::now());
                        }
                    });
                }
            });
        });
        FakeImap { addr, dir, log, times, errors, stop, folders, pause, thread: Some(thread) }
    }

    /// Gives `folder` the UIDVALIDITY `uidvalidity` and its messages new UIDs from `first`
    /// on, in the same order, as Courier does to a folder never opened read-write and a
    /// provider's server migration does to every folder.
    pub fn renumber(&self, folder: &str, uidvalidity: u32, first: u32) {
        let mut folders = lock(&self.folders);
        let f = folders.iter_mut().find(|f| f.name == folder).expect("no such folder on the fake server");
        f.uidvalidity = uidvalidity;
        for (i, m) in f.messages.iter_mut().enumerate() {
            m.0 = first + i as u32;
        }
    }

    /// Delivers a message to `folder` (its UID must be above the folder's others).
    pub fn append(&self, folder: &str, uid: u32, message: Vec<u8>) {
        let mut folders = lock(&self.folders);
        let f = folders.iter_mut().find(|f| f.name == folder).expect("no such folder on the fake server");
        assert!(f.messages.last().is_none_or(|(u, _)| *u < uid), "UIDs only grow");
        f.messages.push((uid, message));
        f.uidnext = f.uidnext.max(uid + 1);
    }

    /// The folders as they are now (with what uploads stored).
    pub fn folders(&self) -> Vec<Folder> {
        lock(&self.folders).clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The PEM file of the server's self-signed certificate, for `--ca-file`.
    pub fn ca_file(&self) -> String {
        self.dir.join("cert.pem").to_string_lossy().into_owned()
    }

    /// Holds the answer to the next command (on any connection) whose text contains
    /// `containing` (compared in upper case): none of it is sent, or with `Some(n)` the
    /// answer up to `n` bytes into its first literal (a message body stalled halfway),
    /// until [`FakeImap::release`]. The client waits on, or is killed meanwhile.
    pub fn pause_at(&self, containing: &str, mid_literal: Option<usize>) {
        let mut st = lock(&self.pause.state);
        assert!(st.armed.is_none() && !st.reached, "one pause at a time");
        *st = PauseState { armed: Some((containing.to_ascii_uppercase(), mid_literal)), ..PauseState::default() };
    }

    /// Waits (up to `within`) until a command met the pause of [`FakeImap::pause_at`].
    #[track_caller]
    pub fn wait_paused(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut st = lock(&self.pause.state);
        while !st.reached {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no command met the pause within {within:?}");
            st = self.pause.changed.wait_timeout(st, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// Lets the answer held by the pause go on.
    pub fn release(&self) {
        lock(&self.pause.state).released = true;
        self.pause.changed.notify_all();
    }

    /// The commands received (tags left out), one list per connection.
    pub fn commands(&self) -> Vec<Vec<String>> {
        lock(&self.log).clone()
    }

    pub fn connections(&self) -> usize {
        lock(&self.log).len()
    }

    /// For each connection, when it was accepted and when the server closed it (`None`
    /// while it is being served).
    pub fn connection_times(&self) -> Vec<ConnectionTimes> {
        lock(&self.times).clone()
    }

    /// The serving failures so far, forgotten: for a test whose client fails on purpose.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.errors))
    }

    /// Fails the test if serving went wrong so far (see the module documentation).
    #[track_caller]
    pub fn assert_no_errors(&self) {
        let errors = lock(&self.errors);
        assert!(errors.is_empty(), "the fake IMAP server failed:\n{}", errors.join("\n"));
    }
}

impl Drop for FakeImap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A connection held by a pause is let go: its client is gone or done.
        self.release();
        // accept() has no timeout: a connection of our own wakes it up to see the flag.
        let woken = TcpStream::connect(self.addr);
        let joined = self.thread.take().map_or(Ok(()), JoinHandle::join);
        // A second panic while the test is already failing would abort the whole binary.
        if std::thread::panicking() {
            return;
        }
        woken.expect("waking the fake IMAP server to stop it");
        if let Err(panic) = joined {
            panic!("the fake IMAP server's thread panicked: {}", panic_text(&*panic));
        }
        self.assert_no_errors();
    }
}

/// Serves connection `n` following `script`; its failures are recorded in `errors`.
fn serve_one(
    account: &Account,
    script: &Script,
    pause: &Pause,
    tls: &Arc<ServerConfig>,
    tcp: TcpStream,
    n: usize,
    (log, errors): (&Mutex<Vec<Vec<String>>>, &Mutex<Vec<String>>),
) {
    let mut conn = Conn { account, script, pause, log, errors, n, counts: HashMap::new(), broken: false, bearer: None };
    // Caught so that the client meets a closed connection rather than a server gone for
    // good, and the panic is reported with the others.
    let served = catch_unwind(AssertUnwindSafe(|| conn.serve(tcp, tls)));
    let failure = match served {
        Ok(Ok(())) => None,
        Ok(Err(e)) if conn.broken => {
            drop(e);
            None
        }
        Ok(Err(e)) => Some(format!("connection {n}: {e} (no fault was injected)")),
        Err(panic) => Some(format!("connection {n}: panicked: {}", panic_text(&*panic))),
    };
    lock(errors).extend(failure);
}

/// Turns a connection away as a server at its limit does: a BYE instead of a greeting.
fn refuse(tcp: TcpStream, tls: &Arc<ServerConfig>) {
    let Ok(session) = ServerConnection::new(tls.clone()) else { return };
    let mut s: Tls = BufReader::new(StreamOwned::new(session, tcp));
    let _ = send(&mut s, b"* BYE [UNAVAILABLE] Maximum number of connections from user+IP exceeded\r\n");
    s.get_mut().conn.send_close_notify();
    let _ = s.get_mut().flush();
}

/// Locks `m`; a poisoned lock only means a connection panicked, which is reported itself.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(not a string)".into(),
    }
}

/// A TLS server configuration with a fresh self-signed certificate (`dir`/cert.pem,
/// `key.pem`) for 127.0.0.1 and localhost.
pub fn tls_config(dir: &TempDir) -> Arc<ServerConfig> {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-days", "2", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl req failed");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

struct Account {
    user: String,
    password: String,
    /// The OAuth2 access token AUTHENTICATE XOAUTH2 takes; `None`: XOAUTH2 not offered.
    token: Option<String>,
    /// Logins each password or token is good for, `password` and `token` then being the
    /// prefixes of those taken; `None`: the one password or token, any number of times.
    logins: Option<usize>,
    /// Logins tried with each password or token.
    uses: Mutex<HashMap<String, usize>>,
    folders: Arc<Mutex<Vec<Folder>>>,
    offer: Offer,
    /// APPENDs held back by [`Fault::LandLate`], and the count they wait for.
    landing: Mutex<target::Landing>,
    /// Access tokens checked with the provider, by these SASL mechanisms (no password).
    bearer: Option<(BearerCheck, &'static str)>,
}

impl Account {
    fn new(
        user: &str,
        password: &str,
        token: Option<&str>,
        logins: Option<usize>,
        folders: Vec<Folder>,
        offer: Offer,
    ) -> Account {
        Account {
            user: user.to_string(),
            password: password.to_string(),
            token: token.map(String::from),
            logins,
            uses: Mutex::default(),
            folders: Arc::new(Mutex::new(folders)),
            offer,
            landing: Mutex::default(),
            bearer: None,
        }
    }

    /// Whether a login with `given` works where `expected` is the password or token
    /// (counting the login, when each is good for a number of them only).
    fn takes(&self, expected: &str, given: &str) -> bool {
        let Some(logins) = self.logins else { return given == expected };
        let mut uses = lock(&self.uses);
        let used = uses.entry(given.to_string()).or_default();
        *used += 1;
        given.starts_with(expected) && *used <= logins
    }

    fn capabilities(&self) -> String {
        if let Some((_, mechanisms)) = &self.bearer {
            let auth: Vec<String> = mechanisms.split_whitespace().map(|m| format!("AUTH={m}")).collect();
            return format!("IMAP4rev1 {} {}", auth.join(" "), self.offer.capabilities).trim_end().to_string();
        }
        let base = if self.token.is_some() { "IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2" } else { "IMAP4rev1 AUTH=PLAIN" };
        format!("{base} {}", self.offer.capabilities).trim_end().to_string()
    }

    fn offers(&self, cap: &str) -> bool {
        self.offer.capabilities.split_whitespace().any(|c| c.eq_ignore_ascii_case(cap))
    }
}

/// What one connection's commands changed.
#[derive(Default)]
struct State {
    /// The folder EXAMINE (or SELECT) opened.
    selected: Option<String>,
    /// It was opened with SELECT: read-write.
    writable: bool,
    /// The client sent ID.
    id: bool,
}

pub(super) type Tls = BufReader<StreamOwned<ServerConnection, TcpStream>>;

/// One connection being served.
struct Conn<'a> {
    account: &'a Account,
    script: &'a Script,
    pause: &'a Pause,
    log: &'a Mutex<Vec<Vec<String>>>,
    errors: &'a Mutex<Vec<String>>,
    n: usize,
    /// How many commands matched each fault's pattern so far.
    counts: HashMap<usize, usize>,
    /// A fault that may make the client drop the connection anywhere was injected.
    broken: bool,
    /// The access token this connection logged in with ([`FakeImap::start_bearer`]).
    bearer: Option<String>,
}

impl Conn<'_> {
    fn serve(&mut self, tcp: TcpStream, tls: &Arc<ServerConfig>) -> io::Result<()> {
        // A client that never goes away must not hang the test run.
        tcp.set_read_timeout(Some(Duration::from_secs(90)))?;
        let session = ServerConnection::new(tls.clone()).map_err(io::Error::other)?;
        let mut s: Tls = BufReader::new(StreamOwned::new(session, tcp));
        let greeting_fault = self.script.0.iter().find(|(w, _)| matches!(w, When::Greeting)).map(|(_, f)| f);
        match greeting_fault {
            Some(f) => {
                self.broken = true;
                return inject(&mut s, f, "*", Vec::new(), Vec::new()).map(drop);
            }
            None => send(&mut s, format!("* OK [CAPABILITY {}] ready\r\n", self.account.capabilities()).as_bytes())?,
        }
        let mut state = State::default();
        let mut garble_next = false;
        loop {
            let mut line = String::new();
            match s.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // The client leaving between commands, with or without TLS close_notify.
                Err(e) if line.is_empty() && client_left(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
            let line = line.trim_end();
            let (tag, cmd) = line.split_once(' ').unwrap_or((line, ""));
            lock(self.log)[self.n].push(cmd.to_string());
            if let Some(rest) = cmd.strip_prefix("AUTHENTICATE ").or_else(|| cmd.strip_prefix("authenticate ")) {
                if self.account.bearer.is_some() {
                    self.authenticate_bearer(&mut s, tag, rest)?;
                } else {
                    self.authenticate(&mut s, tag, rest)?;
                }
                continue;
            }
            if let (Some(token), Some((check, _))) = (&self.bearer, &self.account.bearer) {
                if check(token) != Bearer::Valid && !cmd.eq_ignore_ascii_case("LOGOUT") {
                    // The client learns of it only now: whatever it sent meanwhile is lost.
                    self.broken = true;
                    send(&mut s, b"* BYE Session invalidated - AccessTokenExpired\r\n")?;
                    s.get_mut().conn.send_close_notify();
                    return s.get_mut().flush();
                }
            }
            if std::mem::take(&mut garble_next) {
                lock(self.log)[self.n].push("GARBLED".into());
                send(&mut s, format!("{tag} BAD Command Error. 10\r\n").as_bytes())?;
                continue;
            }
            // The next command came before this one was answered: it will be garbled.
            garble_next = self.account.offer.garbles_pipelining && !s.buffer().is_empty();
            if !self.account.offer.pace.is_zero() && cmd.to_ascii_uppercase().contains("BODY.PEEK[]") {
                std::thread::sleep(self.account.offer.pace);
            }
            let fault = self.fault_for(cmd);
            if let Some((size, plus)) = target::announced(cmd) {
                // An APPEND: its message comes as a literal.
                if !plus && matches!(fault, Some(Fault::Stall)) {
                    self.broken = true;
                    return inject(&mut s, &Fault::Stall, tag, Vec::new(), Vec::new()).map(drop);
                }
                let Some(message) = target::read_literal(&mut s, self.account, size, plus, self.errors, self.n)? else {
                    return Ok(());
                };
                match fault {
                    Some(Fault::LandLate(n)) => {
                        self.broken = true;
                        target::hold(self.account, cmd, message, n);
                        return inject(&mut s, &Fault::Stall, tag, Vec::new(), Vec::new()).map(drop);
                    }
                    Some(f @ Fault::Stall) => {
                        self.broken = true;
                        return inject(&mut s, &f, tag, Vec::new(), Vec::new()).map(drop);
                    }
                    _ => {}
                }
                let reply = target::append(self.account, &state, tag, cmd, message);
                send(&mut s, &reply)?;
                continue;
            }
            self.broken |= fault.as_ref().is_some_and(|f| {
                !matches!(
                    f,
                    Fault::No(_)
                        | Fault::Bad(_)
                        | Fault::FlagsFirst
                        | Fault::Omit(_)
                        | Fault::NilBody(_)
                        | Fault::Unasked(_)
                        | Fault::ExtraListName(_)
                )
            });
            let Some((reply, literals)) = answer(self.account, &mut state, tag, cmd, fault.as_ref()) else {
                lock(self.errors).push(format!("connection {}: a command the server does not know: {cmd}", self.n));
                send(&mut s, format!("{tag} BAD unknown command\r\n").as_bytes())?;
                continue;
            };
            if fault.is_none() {
                if let Some(held) = self.pause.meets(cmd) {
                    // The client may be killed while it waits: whatever it does is fine.
                    self.broken = true;
                    let split =
                        held.map_or(0, |n| literals.first().map_or(reply.len(), |&at| (at + n).min(reply.len())));
                    send(&mut s, &reply[..split])?;
                    self.pause.wait_released();
                    send(&mut s, &reply[split..])?;
                    continue;
                }
            }
            let go_on = match &fault {
                Some(f) => inject(&mut s, f, tag, reply, literals)?,
                None => send(&mut s, &reply).map(|()| true)?,
            };
            if !go_on || cmd.eq_ignore_ascii_case("LOGOUT") {
                return Ok(());
            }
        }
    }

    /// AUTHENTICATE: only XOAUTH2, only on a server started with a token. The client's
    /// response (SASL-IR or after an empty challenge) is recorded, decoded, as a command
    /// `XOAUTH2 RESPONSE {text:?}`. A wrong one gets the JSON error challenge Google sends,
    /// then, after the client's empty answer, NO.
    fn authenticate(&mut self, s: &mut Tls, tag: &str, args: &str) -> io::Result<()> {
        let (mech, initial) = args.split_once(' ').map_or((args, None), |(m, i)| (m, Some(i)));
        let token = self.account.token.as_deref().filter(|_| mech.eq_ignore_ascii_case("XOAUTH2"));
        let Some(token) = token else {
            return send(s, format!("{tag} NO unsupported mechanism\r\n").as_bytes());
        };
        let line = match initial {
            Some(i) => i.to_string(),
            None => {
                send(s, b"+ \r\n")?;
                let mut line = String::new();
                s.read_line(&mut line)?;
                line.trim_end().to_string()
            }
        };
        let response = base64::engine::general_purpose::STANDARD.decode(&line).unwrap_or_default();
        let response = String::from_utf8_lossy(&response).into_owned();
        lock(self.log)[self.n].push(format!("XOAUTH2 RESPONSE {response:?}"));
        let bearer = response
            .strip_prefix(&format!("user={}\x01auth=Bearer ", self.account.user))
            .and_then(|rest| rest.strip_suffix("\x01\x01"));
        if bearer.is_some_and(|b| self.account.takes(token, b)) {
            return send(s, format!("{tag} OK authenticated\r\n").as_bytes());
        }
        let error = base64::engine::general_purpose::STANDARD.encode(r#"{"status":"401","schemes":"bearer"}"#);
        send(s, format!("+ {error}\r\n").as_bytes())?;
        let mut empty = String::new();
        s.read_line(&mut empty)?;
        send(s, format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n").as_bytes())
    }

    /// AUTHENTICATE on a server started with [`FakeImap::start_bearer`]: XOAUTH2 or
    /// OAUTHBEARER (those offered), the token asked of the provider. The client's response
    /// is logged decoded, as `MECHANISM RESPONSE {text:?}`, then `AUTH OK` or `AUTH NO`. A
    /// refused token gets the JSON error challenge, then, after the client's answer (an
    /// empty line for XOAUTH2, ^A for OAUTHBEARER), NO.
    fn authenticate_bearer(&mut self, s: &mut Tls, tag: &str, args: &str) -> io::Result<()> {
        let (mech, initial) = args.split_once(' ').map_or((args, None), |(m, i)| (m, Some(i)));
        let mech = mech.to_ascii_uppercase();
        let Some((check, offered)) = &self.account.bearer else { unreachable!() };
        if !offered.split_whitespace().any(|m| m == mech) {
            return send(s, format!("{tag} NO unsupported mechanism\r\n").as_bytes());
        }
        let line = match initial {
            Some(i) => i.to_string(),
            None => {
                send(s, b"+ \r\n")?;
                let mut line = String::new();
                s.read_line(&mut line)?;
                line.trim_end().to_string()
            }
        };
        let response = base64::engine::general_purpose::STANDARD.decode(&line).unwrap_or_default();
        let response = String::from_utf8_lossy(&response).into_owned();
        lock(self.log)[self.n].push(format!("{mech} RESPONSE {response:?}"));
        let user = &self.account.user;
        let bearer = if mech == "XOAUTH2" {
            response.strip_prefix(&format!("user={user}\x01auth=Bearer ")).and_then(|r| r.strip_suffix("\x01\x01"))
        } else {
            // RFC 7628: "n,a=USER," then key=value pairs separated by ^A.
            let (gs2, rest) = response.split_once('\x01').unwrap_or_default();
            let fields: Vec<&str> = rest.split('\x01').collect();
            let named = gs2 == format!("n,a={user},");
            let has_host = fields.contains(&"host=127.0.0.1");
            let has_port = fields.iter().any(|f| f.starts_with("port="));
            fields
                .iter()
                .find_map(|f| f.strip_prefix("auth=Bearer "))
                .filter(|_| named && has_host && has_port && response.ends_with("\x01\x01"))
        };
        if let Some(token) = bearer.filter(|b| check(b) == Bearer::Valid) {
            self.bearer = Some(token.to_string());
            lock(self.log)[self.n].push("AUTH OK".into());
            return send(
                s,
                format!("{tag} OK [CAPABILITY {}] authenticated\r\n", self.account.capabilities()).as_bytes(),
            );
        }
        lock(self.log)[self.n].push("AUTH NO".into());
        let error =
            base64::engine::general_purpose::STANDARD.encode(r#"{"status":"invalid_token","schemes":"bearer"}"#);
        send(s, format!("+ {error}\r\n").as_bytes())?;
        let mut answer = String::new();
        s.read_line(&mut answer)?;
        let want = if mech == "XOAUTH2" { "" } else { "AQ==" };
        if answer.trim_end() != want {
            lock(self.errors).push(format!("connection {}: {mech} error challenge answered {answer:?}", self.n));
        }
        send(s, format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n").as_bytes())
    }

    /// The fault that strikes at this command, counting it for every pattern it matches.
    fn fault_for(&mut self, cmd: &str) -> Option<Fault> {
        let upper = cmd.to_ascii_uppercase();
        let mut hit = None;
        for (i, (when, fault)) in self.script.0.iter().enumerate() {
            if let When::Command { containing, nth } = when {
                if upper.contains(containing) {
                    let seen = self.counts.entry(i).or_default();
                    *seen += 1;
                    if *seen == *nth && hit.is_none() {
                        hit = Some(fault.clone());
                    }
                }
            }
        }
        hit
    }
}

pub(super) fn client_left(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted)
}

pub(super) fn send(s: &mut Tls, bytes: &[u8]) -> io::Result<()> {
    s.get_mut().write_all(bytes)?;
    s.get_mut().flush()
}

/// Carries out `fault` in place of (or on) the normal `reply`; false when that ended the
/// connection (every fault but a refusal or a changed answer does).
fn inject(s: &mut Tls, fault: &Fault, tag: &str, reply: Vec<u8>, literals: Vec<usize>) -> io::Result<bool> {
    match fault {
        Fault::No(text) => return send(s, format!("{tag} NO {text}\r\n").as_bytes()).map(|()| true),
        Fault::Bad(text) => return send(s, format!("{tag} BAD {text}\r\n").as_bytes()).map(|()| true),
        Fault::LongLiteral(_)
        | Fault::FlagsFirst
        | Fault::Omit(_)
        | Fault::NilBody(_)
        | Fault::SmallSizes
        | Fault::Oversized(_) => return send(s, &reply).map(|()| true),
        Fault::LongLine(n) => {
            let piece = vec![b'x'; 64 * 1024];
            let mut left = *n;
            while left > 0 {
                let k = left.min(piece.len());
                // The client stops reading long before the end: its refusal is the point.
                if send(s, &piece[..k]).is_err() {
                    return Ok(false);
                }
                left -= k;
            }
        }
        Fault::HugeSearch(n) => {
            let mut line = b"* SEARCH".to_vec();
            for uid in 1..=*n {
                line.extend_from_slice(format!(" {uid}").as_bytes());
                if line.len() >= 64 * 1024 {
                    if send(s, &line).is_err() {
                        return Ok(false);
                    }
                    line.clear();
                }
            }
            line.extend_from_slice(format!("\r\n{tag} OK searched\r\n").as_bytes());
            return send(s, &line).map(|()| true);
        }
        Fault::Noise(n) => {
            let noise = b"* OK noise\r\n".repeat(1000);
            for _ in 0..n.div_ceil(1000) {
                if send(s, &noise).is_err() {
                    return Ok(false);
                }
            }
            return send(s, &reply).map(|()| true);
        }
        Fault::ExtraListName(name) => {
            let end = reply[..reply.len() - 2].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            send(s, &reply[..end])?;
            send(s, format!("* LIST () \"/\" {{{}}}\r\n", name.len()).as_bytes())?;
            send(s, name)?;
            send(s, b"\r\n")?;
            return send(s, &reply[end..]).map(|()| true);
        }
        Fault::Unasked(n) => {
            // Everything but the tagged end, then the unasked answers, then the end.
            let end = reply[..reply.len() - 2].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            send(s, &reply[..end])?;
            let junk = vec![b'j'; 256 * 1024];
            for _ in 0..*n {
                send(s, format!("* 1 FETCH (UID 999999 BODY[] {{{}}}\r\n", junk.len()).as_bytes())?;
                send(s, &junk)?;
                send(s, b")\r\n")?;
            }
            return send(s, &reply[end..]).map(|()| true);
        }
        Fault::ForeignBody => {
            let junk = vec![b'j'; 100_000];
            send(s, format!("* 1 FETCH (BODY[] {{{}}}\r\n", junk.len()).as_bytes())?;
            send(s, &junk)?;
            send(s, b" UID 999999)\r\n")?;
            return send(s, &reply).map(|()| true);
        }
        Fault::Trickle => {
            for b in reply {
                send(s, &[b])?;
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(true);
        }
        Fault::Bye => send(s, b"* BYE server shutting down\r\n")?,
        Fault::Garbage(bytes) => send(s, bytes)?,
        Fault::DropMidLiteral(n) => {
            let cut = literals.first().map_or(reply.len(), |start| (start + n).min(reply.len()));
            // Dropping the stream without close_notify is how a dead connection looks.
            send(s, &reply[..cut])?;
            // Closed with the client's pipelined commands unread, the socket would send a
            // reset, and the client's kernel would drop the answers it has not read yet: a
            // hang-up that loses more than a real one does, some of the time. Stop sending,
            // then take what the client sends until it leaves.
            let tcp = &mut s.get_mut().sock;
            let _ = tcp.shutdown(std::net::Shutdown::Write);
            let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = io::copy(tcp, &mut io::sink());
            return Ok(false);
        }
        Fault::Stall | Fault::LandLate(_) => {
            // Drain what the client sends until it gives up, answering nothing.
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
            return Ok(false);
        }
    }
    s.get_mut().conn.send_close_notify();
    s.get_mut().flush().map(|()| false)
}

/// The normal answer to `cmd`, shaped by an answer-changing `fault`, with the offsets of
/// the literals' first bytes; `None` for a command this server does not know.
fn answer(
    account: &Account,
    state: &mut State,
    tag: &str,
    cmd: &str,
    fault: Option<&Fault>,
) -> Option<(Vec<u8>, Vec<usize>)> {
    let (verb, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
    if let Some(reply) = target::answer(account, state, tag, verb, rest) {
        return Some((reply, Vec::new()));
    }
    let mut out = Vec::new();
    let mut literals = Vec::new();
    let ok = |out: &mut Vec<u8>, text: &str| out.extend_from_slice(format!("{tag} OK {text}\r\n").as_bytes());
    let folders = lock(&account.folders).clone();
    let status_line = |f: &Folder| {
        let next = f.messages.last().map_or(1, |(u, _)| u + 1).max(f.uidnext);
        format!(
            "* STATUS \"{}\" (UIDVALIDITY {} UIDNEXT {next} MESSAGES {})\r\n",
            f.name,
            f.uidvalidity,
            f.messages.len()
        )
    };
    match verb.to_ascii_uppercase().as_str() {
        "CAPABILITY" => {
            out.extend_from_slice(format!("* CAPABILITY {}\r\n", account.capabilities()).as_bytes());
            ok(&mut out, "done");
        }
        "NOOP" => ok(&mut out, "done"),
        "ID" if account.offers("ID") => {
            state.id = true;
            out.extend_from_slice(b"* ID (\"name\" \"fake\")\r\n");
            ok(&mut out, "ID completed");
        }
        "LOGOUT" => {
            out.extend_from_slice(b"* BYE logging out\r\n");
            ok(&mut out, "done");
        }
        "LOGIN" => match args(rest).as_slice() {
            [u, p] if *u == account.user && account.token.is_none() && account.takes(&account.password, p) => {
                ok(&mut out, "logged in")
            }
            _ => {
                out.extend_from_slice(format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n").as_bytes())
            }
        },
        "LIST" => {
            let with_status = rest.to_ascii_uppercase().contains("RETURN (STATUS");
            if with_status && !account.offers("LIST-STATUS") {
                return None;
            }
            for f in &folders {
                let sep = account.offer.persona.separator;
                out.extend_from_slice(format!("* LIST () \"{sep}\" \"{}\"\r\n", f.name).as_bytes());
                if with_status {
                    out.extend_from_slice(status_line(f).as_bytes());
                }
            }
            ok(&mut out, "done");
        }
        "STATUS" => {
            let name = args(rest).into_iter().next().unwrap_or_default();
            match folders.iter().find(|f| f.name == name) {
                Some(f) => {
                    out.extend_from_slice(status_line(f).as_bytes());
                    ok(&mut out, "status");
                }
                None => out.extend_from_slice(format!("{tag} NO no such folder\r\n").as_bytes()),
            }
        }
        "EXAMINE" => {
            let name = args(rest).into_iter().next().unwrap_or_default();
            if account.offer.require_id && !state.id {
                let refusal = format!("{tag} NO [UNAVAILABLE] Unsafe Login. Please contact kefu@188.com for help\r\n");
                out.extend_from_slice(refusal.as_bytes());
                return Some((out, literals));
            }
            state.selected = folders.iter().find(|f| f.name == name).map(|f| f.name.clone());
            state.writable = false;
            match folders.iter().find(|f| f.name == name) {
                Some(f) => {
                    let next = f.messages.last().map_or(1, |(u, _)| u + 1).max(f.uidnext);
                    let uidnext = if account.offer.no_uidnext_on_examine {
                        String::new()
                    } else {
                        format!("* OK [UIDNEXT {next}] ok\r\n")
                    };
                    let head = format!(
                        "* FLAGS (\\Seen)\r\n* {} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {}] ok\r\n{uidnext}",
                        f.messages.len(),
                        f.uidvalidity
                    );
                    out.extend_from_slice(head.as_bytes());
                    ok(&mut out, "[READ-ONLY] examined");
                }
                None => out.extend_from_slice(format!("{tag} NO no such folder\r\n").as_bytes()),
            }
        }
        "UID" => {
            match (rest.split_once(' '), state.selected.as_ref().and_then(|n| folders.iter().find(|f| &f.name == n))) {
                (Some((sub, args)), Some(folder)) if sub.eq_ignore_ascii_case("SEARCH") && args == "ALL" => {
                    let uids: Vec<String> = folder.messages.iter().map(|(u, _)| u.to_string()).collect();
                    out.extend_from_slice(format!("* SEARCH {}\r\n", uids.join(" ")).trim_end().as_bytes());
                    out.extend_from_slice(b"\r\n");
                    ok(&mut out, "searched");
                }
                (Some((sub, args)), Some(folder)) if sub.eq_ignore_ascii_case("FETCH") => {
                    fetch(folder, args, fault, account.offer.estimated_sizes, &mut out, &mut literals);
                    ok(&mut out, "fetched");
                }
                _ => return None,
            }
        }
        _ => return None,
    }
    Some((out, literals))
}

/// The untagged answers to `UID FETCH set (items)`.
fn fetch(
    folder: &Folder,
    args: &str,
    fault: Option<&Fault>,
    estimated: bool,
    out: &mut Vec<u8>,
    literals: &mut Vec<usize>,
) {
    let (set, items) = args.split_once(' ').unwrap_or((args, ""));
    let items = items.to_ascii_uppercase();
    if items.contains("BODY.PEEK[HEADER]") {
        return target::headers(folder, set, &items, out);
    }
    // `<origin.length>` of a partial body fetch.
    let partial = items.split_once("BODY.PEEK[]<").and_then(|(_, r)| {
        let (o, l) = r.split_once('>')?.0.split_once('.')?;
        Some((o.parse::<usize>().ok()?, l.parse::<usize>().ok()?))
    });
    for (i, (uid, body)) in folder.messages.iter().enumerate() {
        if !in_set(*uid, set, folder.messages.last().map_or(0, |m| m.0)) {
            continue;
        }
        let seq = i + 1;
        if let Some(fields) = header_fields_asked(&items) {
            // Size and the header fields asked for, as Dovecot answers them.
            let block = header_fields(body, &fields);
            let names = fields.join(" ");
            out.extend_from_slice(
                format!(
                    "* {seq} FETCH (UID {uid} RFC822.SIZE {} BODY[HEADER.FIELDS ({names})] {{{}}}\r\n",
                    body.len(),
                    block.len()
                )
                .as_bytes(),
            );
            literals.push(out.len());
            out.extend_from_slice(&block);
            out.extend_from_slice(b")\r\n");
            continue;
        }
        let with_body = items.contains("BODY.PEEK[]");
        // Asked together, size and body come in one answer, as Dovecot sends them.
        let told = match fault {
            Some(Fault::SmallSizes) => 100,
            _ if estimated && uid % 2 == 1 => body.len() * 3 / 4,
            _ if estimated => body.len() * 5 / 4,
            _ => body.len(),
        };
        let size = if items.contains("RFC822.SIZE") { format!(" RFC822.SIZE {told}") } else { String::new() };
        if !size.is_empty() && !with_body {
            out.extend_from_slice(format!("* {seq} FETCH (UID {uid}{size})\r\n").as_bytes());
        }
        if !with_body || matches!(fault, Some(Fault::Omit(u)) if u == uid) {
            continue;
        }
        if matches!(fault, Some(Fault::NilBody(u)) if u == uid) {
            out.extend_from_slice(format!("* {seq} FETCH (UID {uid} BODY[] NIL)\r\n* {seq} EXPUNGE\r\n").as_bytes());
            continue;
        }
        if matches!(fault, Some(Fault::FlagsFirst)) {
            out.extend_from_slice(format!("* {seq} FETCH (UID {uid} FLAGS (\\Seen))\r\n").as_bytes());
        }
        let filler;
        let (origin, data) = match partial {
            _ if matches!(fault, Some(Fault::Oversized(_))) => {
                filler = vec![b'x'; if let Some(Fault::Oversized(n)) = fault { *n } else { 0 }];
                (String::new(), &filler[..])
            }
            Some((o, l)) => (format!("<{o}>"), &body[o.min(body.len())..(o + l).min(body.len())]),
            None => (String::new(), &body[..]),
        };
        out.extend_from_slice(
            format!("* {seq} FETCH (UID {uid}{size} BODY[]{origin} {{{}}}\r\n", data.len()).as_bytes(),
        );
        literals.push(out.len());
        out.extend_from_slice(data);
        if let Some(Fault::LongLiteral(extra)) = fault {
            out.extend(std::iter::repeat_n(b'X', *extra));
        }
        out.extend_from_slice(b")\r\n");
    }
}

/// The field names of a `BODY.PEEK[HEADER.FIELDS (...)]` item, upper case.
fn header_fields_asked(items: &str) -> Option<Vec<String>> {
    let (_, rest) = items.split_once("BODY.PEEK[HEADER.FIELDS (")?;
    let (names, _) = rest.split_once(")]")?;
    Some(names.split_whitespace().map(|n| n.trim_matches('"').to_string()).collect())
}

/// The header fields of `message` named in `fields` (with their continuation lines), in
/// message order, then the blank line: what `HEADER.FIELDS` answers.
pub(super) fn header_fields(message: &[u8], fields: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or(b"");
            keep = fields.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(name));
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether `uid` is in the IMAP set `set` (`1:3,7,9:*`), `*` being the highest UID `max`.
pub(super) fn in_set(uid: u32, set: &str, max: u32) -> bool {
    let num = |s: &str| if s == "*" { Some(max) } else { s.parse().ok() };
    set.split(',').any(|part| match part.split_once(':') {
        Some((a, b)) => match (num(a), num(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
            _ => false,
        },
        None => num(part) == Some(uid),
    })
}

/// The arguments of a command: atoms and quoted strings (with `\"` and `\\` escapes).
pub(super) fn args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => s.extend(chars.next()),
                    c => s.push(c),
                }
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(c) = chars.next_if(|&c| c != ' ') {
                s.push(c);
            }
            out.push(s);
        }
    }
    out
}
