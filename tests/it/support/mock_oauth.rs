//! A mock OAuth 2.0 provider over HTTPS on 127.0.0.1 (a self-signed certificate for
//! `--ca-file`-style trust), with both token endpoints the tool uses, written from RFC 6749,
//! 7636 and 8628 and from Google's and Microsoft's documentation of them:
//!
//! - `POST /devicecode`: a device code, a user code and `/device` to enter it at; the
//!   token endpoint answers `authorization_pending` until the test [`MockOAuth::approve`]s
//!   the user code, and `slow_down` to a client that polls faster than the interval (or
//!   when scripted to, [`Options::device_answers`]).
//! - `GET /authorize`: the browser's sign-in, approved at once: a 302 to the redirect URI
//!   with a code and the state. The code is good once, for that redirect URI, with the
//!   verifier whose S256 challenge came with it.
//! - `POST /token`: the device code, authorization code and refresh token grants. Access
//!   tokens last [`Options::lifetime`]; with [`Options::rotate`] every refresh hands out a
//!   new refresh token and the old one is refused from then on (strict rotation: a client
//!   that does not keep the new one is locked out). [`MockOAuth::revoke`] refuses every
//!   refresh token (`invalid_grant`), as a password change or a revoked consent does.
//!
//! Every secret it issues starts with `SECRET-`, so a test can look for any of them where
//! none may be (output, process lists, files). [`MockOAuth::check`] tells the scripted IMAP
//! server which access tokens are good.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sha2::{Digest, Sha256};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};

use serde_json::json;

use super::fake_imap::{tls_config, Bearer, BearerCheck, FakeImap};
use super::{bin, TempDir};

/// The user of the accounts these tests sign in.
pub const USER: &str = "alice@example.org";

/// How the provider behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// The registered client.
    pub client_id: &'static str,
    /// Its secret, when it has one (then every token request must carry it).
    pub client_secret: Option<&'static str>,
    /// Access tokens' `expires_in`, in seconds (fractions are honoured by [`MockOAuth::check`],
    /// the answer rounds up).
    pub lifetime: Duration,
    /// Hand out a new refresh token with every refresh, refusing the old one from then on.
    pub rotate: bool,
    /// The device flow's polling interval, in seconds.
    pub interval: u64,
    /// What the first device-code polls get regardless (`authorization_pending`,
    /// `slow_down`), before the real state.
    pub device_answers: Vec<&'static str>,
    /// Answer token requests with `Transfer-Encoding: chunked` (as Google's front ends do).
    pub chunked: bool,
    /// The scope a token request must be for.
    pub scope: &'static str,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            client_id: "client-1",
            client_secret: None,
            lifetime: Duration::from_secs(3600),
            rotate: false,
            interval: 1,
            device_answers: Vec::new(),
            chunked: false,
            scope: "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
        }
    }
}

/// One request the provider got.
#[derive(Clone, Debug)]
pub struct Logged {
    /// When.
    pub at: Instant,
    /// The grant type of a token request.
    pub grant: Option<String>,
    /// What it answered: `ok`, or the OAuth error code.
    pub outcome: String,
}

#[derive(Default)]
struct State {
    options: Options,
    next: u32,
    /// Device code -> (user code, approved).
    devices: HashMap<String, (String, bool)>,
    device_polls: usize,
    last_poll: Option<Instant>,
    interval: u64,
    /// Authorization code -> (redirect URI, challenge).
    codes: HashMap<String, (String, String)>,
    /// Refresh tokens still good.
    refresh: Vec<String>,
    /// Access token -> when it expires.
    access: HashMap<String, Instant>,
    log: Vec<Logged>,
    /// Requests that broke the protocol (a poll faster than the interval, a bad verifier
    /// sent by the client is not one: the provider refuses it).
    violations: Vec<String>,
}

/// The running provider; stopped on drop.
pub struct MockOAuth {
    addr: SocketAddr,
    dir: TempDir,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MockOAuth {
    /// Starts a provider behaving as `options` says.
    pub fn start(options: Options) -> MockOAuth {
        let dir = TempDir::new("mock-oauth");
        let tls = tls_config(&dir);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let interval = options.interval;
        let state = Arc::new(Mutex::new(State { options, interval, ..State::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                let (state, tls) = (state2.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = serve(tcp, &tls, addr, &state);
                });
            }
        });
        MockOAuth { addr, dir, state, stop, thread: Some(thread) }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// The PEM file of its certificate.
    pub fn ca_file(&self) -> String {
        self.dir.join("cert.pem").to_string_lossy().into_owned()
    }

    /// The user approves the sign-in with `user_code` at `/device`.
    pub fn approve(&self, user_code: &str) {
        let mut st = lock(&self.state);
        let found = st.devices.values_mut().find(|(u, _)| u == user_code).expect("no such user code");
        found.1 = true;
    }

    /// Every refresh token is refused from now on.
    pub fn revoke(&self) {
        lock(&self.state).refresh.clear();
    }

    /// Access tokens issued from now on last this long.
    pub fn set_lifetime(&self, lifetime: Duration) {
        lock(&self.state).options.lifetime = lifetime;
    }

    /// The requests so far.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.state).log.clone()
    }

    /// Token requests of `grant` that got tokens.
    pub fn granted(&self, grant: &str) -> usize {
        self.log().iter().filter(|l| l.grant.as_deref() == Some(grant) && l.outcome == "ok").count()
    }

    /// The refresh tokens still good.
    pub fn refresh_tokens(&self) -> Vec<String> {
        lock(&self.state).refresh.clone()
    }

    /// Protocol breaches by the client.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state).violations.clone()
    }

    /// What the provider says of an access token, for the scripted IMAP server.
    pub fn check(&self) -> BearerCheck {
        let state = self.state.clone();
        Arc::new(move |token: &str| match lock(&state).access.get(token) {
            Some(until) if Instant::now() < *until => Bearer::Valid,
            Some(_) => Bearer::Expired,
            None => Bearer::Unknown,
        })
    }
}

impl Drop for MockOAuth {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: method, target, headers' Content-Length body.
fn serve(tcp: TcpStream, tls: &Arc<ServerConfig>, addr: SocketAddr, state: &Mutex<State>) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let conn = ServerConnection::new(tls.clone()).map_err(io::Error::other)?;
    let mut r = BufReader::new(StreamOwned::new(conn, tcp));
    let mut request = String::new();
    r.read_line(&mut request)?;
    let mut length = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let form = pairs(if method == "POST" { std::str::from_utf8(&body).unwrap_or("") } else { query });
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut st = lock(state);
    let chunked = st.options.chunked;
    let (status, extra, json, grant) = match (method, path) {
        ("POST", "/devicecode") => {
            if let Some(e) = client_error(&st, &get) {
                (401, String::new(), error(e), None)
            } else if get("scope").as_deref() != Some(st.options.scope) {
                (400, String::new(), error("invalid_scope"), None)
            } else {
                st.next += 1;
                let (device, user) = (format!("SECRET-DEV-{}", st.next), format!("WXYZ-{:04}", st.next));
                st.devices.insert(device.clone(), (user.clone(), false));
                let body = serde_json::json!({
                    "device_code": device, "user_code": user, "expires_in": 900, "interval": st.interval,
                    "verification_uri": format!("https://127.0.0.1:{}/device", addr.port()),
                    "message": "To sign in, use a web browser.",
                });
                (200, String::new(), body, None)
            }
        }
        ("GET", "/authorize") => {
            let redirect = get("redirect_uri").unwrap_or_default();
            let loopback = redirect.starts_with("http://127.0.0.1:") || redirect.starts_with("http://localhost:");
            let ok = get("response_type").as_deref() == Some("code")
                && get("client_id").as_deref() == Some(st.options.client_id)
                && get("code_challenge_method").as_deref() == Some("S256")
                && get("scope").as_deref() == Some(st.options.scope)
                && get("state").is_some_and(|s| !s.is_empty())
                && loopback;
            if ok {
                st.next += 1;
                let code = format!("SECRET-CODE-{}", st.next);
                st.codes.insert(code.clone(), (redirect.clone(), get("code_challenge").unwrap_or_default()));
                let location = format!(
                    "{redirect}?state={}&code={}&scope=x",
                    encode(&get("state").unwrap_or_default()),
                    encode(&code)
                );
                (302, format!("Location: {location}\r\n"), serde_json::json!({}), None)
            } else {
                (400, String::new(), error("invalid_request"), None)
            }
        }
        ("POST", "/token") => {
            let grant = get("grant_type").unwrap_or_default();
            let answer = match client_error(&st, &get) {
                Some(e) => Err((401, e)),
                None => token(&mut st, &grant, &get),
            };
            match answer {
                Ok(json) => (200, String::new(), json, Some(grant)),
                Err((status, e)) => (status, String::new(), error(e), Some(grant)),
            }
        }
        _ => (404, String::new(), error("not_found"), None),
    };
    let outcome = if status < 400 { "ok".to_string() } else { json["error"].as_str().unwrap_or("?").to_string() };
    st.log.push(Logged { at: Instant::now(), grant: grant.clone(), outcome });
    drop(st);
    let text = json.to_string();
    let reason = match status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let mut out = r.into_inner();
    let head =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n{extra}");
    if chunked && grant.is_some() {
        write!(out, "{head}Transfer-Encoding: chunked\r\n\r\n")?;
        for piece in text.as_bytes().chunks(17) {
            write!(out, "{:x}\r\n", piece.len())?;
            out.write_all(piece)?;
            out.write_all(b"\r\n")?;
        }
        out.write_all(b"0\r\n\r\n")?;
    } else {
        write!(out, "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len())?;
    }
    out.conn.send_close_notify();
    out.flush()
}

fn error(code: &str) -> serde_json::Value {
    serde_json::json!({"error": code, "error_description": format!("the mock says {code}")})
}

/// Client authentication (client_secret_post): the client id, and the secret if it has one.
fn client_error(st: &State, get: &dyn Fn(&str) -> Option<String>) -> Option<&'static str> {
    if get("client_id").as_deref() != Some(st.options.client_id) {
        return Some("invalid_client");
    }
    match (st.options.client_secret, get("client_secret")) {
        (Some(want), Some(got)) if want == got => None,
        (None, None) => None,
        _ => Some("invalid_client"),
    }
}

/// The token endpoint's answer to one grant.
fn token(
    st: &mut State,
    grant: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<serde_json::Value, (u16, &'static str)> {
    match grant {
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let device = get("device_code").unwrap_or_default();
            let now = Instant::now();
            let too_fast = st.last_poll.is_some_and(|t| now.duration_since(t) < Duration::from_secs(st.interval));
            st.last_poll = Some(now);
            st.device_polls += 1;
            if too_fast {
                st.violations.push(format!("poll {} sooner than the interval of {} s", st.device_polls, st.interval));
                st.interval += 5;
                return Err((400, "slow_down"));
            }
            if let Some(scripted) = st.options.device_answers.get(st.device_polls - 1).copied() {
                if scripted == "slow_down" {
                    st.interval += 5;
                }
                return Err((400, if scripted == "slow_down" { "slow_down" } else { "authorization_pending" }));
            }
            match st.devices.get(&device) {
                None => Err((400, "invalid_grant")),
                Some((_, false)) => Err((400, "authorization_pending")),
                Some((_, true)) => {
                    st.devices.remove(&device);
                    Ok(issue(st, true))
                }
            }
        }
        "authorization_code" => {
            let code = get("code").unwrap_or_default();
            let Some((redirect, challenge)) = st.codes.remove(&code) else { return Err((400, "invalid_grant")) };
            let verifier = get("code_verifier").unwrap_or_default();
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if get("redirect_uri").as_deref() != Some(redirect.as_str()) || computed != challenge || verifier.len() < 43
            {
                return Err((400, "invalid_grant"));
            }
            Ok(issue(st, true))
        }
        "refresh_token" => {
            let refresh = get("refresh_token").unwrap_or_default();
            let Some(i) = st.refresh.iter().position(|r| *r == refresh) else { return Err((400, "invalid_grant")) };
            if get("scope").is_some_and(|s| s != st.options.scope) {
                return Err((400, "invalid_scope"));
            }
            let rotate = st.options.rotate;
            if rotate {
                st.refresh.remove(i);
            }
            Ok(issue(st, rotate))
        }
        _ => Err((400, "unsupported_grant_type")),
    }
}

/// A new access token (and refresh token, with `refresh`).
fn issue(st: &mut State, refresh: bool) -> serde_json::Value {
    st.next += 1;
    let access = format!("SECRET-AT-{}", st.next);
    st.access.insert(access.clone(), Instant::now() + st.options.lifetime);
    let mut json = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": st.options.lifetime.as_secs_f64().ceil() as u64,
        "scope": st.options.scope,
    });
    if refresh {
        let r = format!("SECRET-RT-{}", st.next);
        st.refresh.push(r.clone());
        json["refresh_token"] = r.into();
    }
    json
}

/// Percent-encodes for a query.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Decoded `name=value` pairs of a form or query.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16).unwrap_or(b'?'),
                    );
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// A browser's GET of an `https://` address of the mock (trusting `ca_file`): the status
/// and the `Location` header.
pub fn browser_get(url: &str, ca_file: &str) -> (u16, Option<String>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let rest = url.strip_prefix("https://").expect("an https address");
    let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
    let tcp = TcpStream::connect(authority).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    write!(s, "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let location = answer.lines().find_map(|l| l.strip_prefix("Location: ")).map(str::to_string);
    (status, location)
}

/// A browser's GET of a plain `http://` address (the tool's loopback listener): the
/// status line and the body.
pub fn loopback_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http address");
    let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = authority.replace("localhost", "127.0.0.1");
    let mut s = TcpStream::connect(&authority).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// A config file for one account of `server` with the `"oauth2"` object `oauth2`, the
/// mock's endpoints filled in; `more` are more keys of the account.
pub fn config(
    dir: &Path,
    root: &Path,
    server: &FakeImap,
    mock: &MockOAuth,
    oauth2: serde_json::Value,
    more: serde_json::Value,
) -> PathBuf {
    let mut o = oauth2;
    o["token_endpoint"] = mock.url("/token").into();
    o["device_authorization_endpoint"] = mock.url("/devicecode").into();
    o["authorization_endpoint"] = mock.url("/authorize").into();
    o["ca_file"] = mock.ca_file().into();
    let mut account = json!({
        "user": USER, "imap": "127.0.0.1", "port": server.port(), "ca_file": server.ca_file(),
        "folder": "INBOX", "encrypt": 0, "compress": 0, "oauth2": o,
    });
    for (k, v) in more.as_object().unwrap() {
        account[k] = v.clone();
    }
    let path = dir.join("config.json");
    std::fs::write(&path, json!({"list": [account], "archive_dir": root}).to_string()).unwrap();
    path
}

/// `--oauth2-login -c CONFIG`, its standard error read line by line as it comes.
pub struct Login {
    child: Child,
    lines: Receiver<String>,
    /// The lines read so far.
    pub seen: Vec<String>,
}

impl Login {
    pub fn start(config: &Path) -> Login {
        let mut child = Command::new(bin())
            .args(["-c", config.to_str().unwrap(), "--oauth2-login"])
            .env_remove("SMAILARCHIVER_KEY_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    return;
                }
            }
        });
        Login { child, lines, seen: Vec::new() }
    }

    /// The first line of standard error that `pick` finds something in.
    pub fn wait_for<T>(&mut self, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("not found in: {:#?}", self.seen));
            self.seen.push(line.clone());
            if let Some(t) = pick(&line) {
                return t;
            }
        }
    }

    pub fn write(&mut self, text: &str) {
        self.child.stdin.as_mut().unwrap().write_all(text.as_bytes()).unwrap();
    }

    /// Waits for the end: the output, standard error being what was read.
    pub fn finish(mut self) -> Output {
        drop(self.child.stdin.take());
        let mut o = self.child.wait_with_output().unwrap();
        self.seen.extend(self.lines.iter());
        o.stderr = self.seen.join("\n").into_bytes();
        o
    }
}

/// Signs in with the device flow: the code shown is approved at the provider.
pub fn device_login(config: &Path, mock: &MockOAuth) -> Output {
    let mut login = Login::start(config);
    let code =
        login.wait_for(|l| l.split("enter the code ").nth(1).map(|r| r.split_whitespace().next().unwrap().to_string()));
    mock.approve(&code);
    login.finish()
}
