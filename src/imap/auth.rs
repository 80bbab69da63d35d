//! Credentials and how they are sent: `LOGIN`, or `AUTHENTICATE PLAIN` where LOGIN cannot
//! carry them, or with an OAuth 2.0 token `AUTHENTICATE OAUTHBEARER` (RFC 7628) where the
//! server offers it, else `AUTHENTICATE XOAUTH2` (Google's and Microsoft's own). Every
//! buffer that holds a credential is ours and is wiped when dropped.
//!
//! Also the first exchange on a new connection ([`open`]): the greeting (read through
//! [`wire`]'s line reader), the capabilities, the login or SASL exchange, and ID.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::connect::{self, ServerSpec};
use super::error::{quote, ImapError, Unreached};
use super::link::Link;
use super::wire::{self, Data, Response, Status, MAX_SMALL_LITERAL};
use crate::error::{describe_io, Error, IoContext, Result};
use crate::secret::Secret;

/// How to log in.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A password: `LOGIN`, or `AUTHENTICATE PLAIN` where LOGIN cannot carry it.
    Login {
        /// The account name.
        user: String,
        /// The account password.
        password: Secret,
    },
    /// An OAuth 2.0 access token: `AUTHENTICATE OAUTHBEARER` or `XOAUTH2`.
    OAuth2 {
        /// The account name.
        user: String,
        /// The bearer token.
        token: Secret,
    },
}

impl Auth {
    /// The account name.
    pub fn user(&self) -> &str {
        match self {
            Auth::Login { user, .. } | Auth::OAuth2 { user, .. } => user,
        }
    }

    /// The same login with a fresh password or token.
    pub fn renewed(&self, secret: Secret) -> Auth {
        match self {
            Auth::Login { user, .. } => Auth::Login { user: user.clone(), password: secret },
            Auth::OAuth2 { user, .. } => Auth::OAuth2 { user: user.clone(), token: secret },
        }
    }
}

/// Why a fresh credential is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// A login is about to be made.
    Login,
    /// The server refused the credential in hand.
    Refused,
}

/// Where a fresh credential comes from while a run goes on: the credential helper, which
/// runs the account's token or password command again, or the run's own OAuth 2.0 token
/// source.
#[derive(Clone)]
pub struct Renewal {
    /// Renew before every login of a session after its first, not only when the server
    /// refuses the credential: an access token expires (after about an hour), a password
    /// rarely changes, and its command may ask someone for it.
    pub on_reconnect: bool,
    /// Ask before every login, the first included: the source keeps a token while it is
    /// fresh (so asking is cheap) and renews it before it expires. A refused login asks
    /// again, with [`Ask::Refused`].
    pub every_login: bool,
    /// Gets the fresh password or token.
    pub fetch: Arc<dyn Fn(Ask) -> Result<Secret> + Send + Sync>,
}

impl fmt::Debug for Renewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renewal")
            .field("on_reconnect", &self.on_reconnect)
            .field("every_login", &self.every_login)
            .finish_non_exhaustive()
    }
}

/// Bytes that carry a credential, wiped when dropped. Built at their final size, so no
/// reallocation leaves a copy behind.
pub struct Wiped(Vec<u8>);

impl Wiped {
    /// An empty buffer of `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Wiped {
        Wiped(Vec::with_capacity(capacity))
    }

    /// `len` zero bytes, to be filled in place (see [`Wiped::bytes_mut`]).
    pub fn zeroed(len: usize) -> Wiped {
        Wiped(vec![0; len])
    }

    /// The bytes, to fill in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Appends `bytes` (within the capacity given).
    pub fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base64 of the bytes, wiped too.
    pub fn base64(&self) -> Wiped {
        let mut out = Wiped::with_capacity(self.0.len().div_ceil(3) * 4 + 2);
        let mut text = String::with_capacity(self.0.len().div_ceil(3) * 4);
        STANDARD.encode_string(&self.0, &mut text);
        out.push(text.as_bytes());
        crate::os::wipe_str(&mut text);
        out
    }
}

impl fmt::Debug for Wiped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Wiped(***)")
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(bytes: &mut [u8]) {
    crate::os::wipe(bytes)
}

/// SASL PLAIN (RFC 4616) without an authorisation identity.
pub fn plain(user: &str, password: &str) -> Wiped {
    let mut w = Wiped::with_capacity(user.len() + password.len() + 2);
    w.push(b"\0");
    w.push(user.as_bytes());
    w.push(b"\0");
    w.push(password.as_bytes());
    w
}

/// Google's and Microsoft's XOAUTH2 initial response.
pub fn xoauth2(user: &str, token: &str) -> Wiped {
    let mut w = Wiped::with_capacity(user.len() + token.len() + 20);
    for piece in [b"user=".as_slice(), user.as_bytes(), b"\x01auth=Bearer ", token.as_bytes(), b"\x01\x01"] {
        w.push(piece);
    }
    w
}

/// The OAUTHBEARER initial client response (RFC 7628, 3.1): a GS2 header naming the user,
/// then the server's host and port and the bearer token, separated by ^A.
pub fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> Wiped {
    // In the GS2 header `,` and `=` of the name are written =2C and =3D.
    let user = user.replace('=', "=3D").replace(',', "=2C");
    let port = port.to_string();
    let mut w = Wiped::with_capacity(user.len() + host.len() + token.len() + 40);
    for piece in [
        b"n,a=".as_slice(),
        user.as_bytes(),
        b",\x01host=",
        host.as_bytes(),
        b"\x01port=",
        port.as_bytes(),
        b"\x01auth=Bearer ",
        token.as_bytes(),
        b"\x01\x01",
    ] {
        w.push(piece);
    }
    w
}

/// Which OAuth 2.0 mechanism to use: OAUTHBEARER, the standard one, where offered, else
/// XOAUTH2; `None` when the server offers neither.
pub fn oauth2_mechanism(has: impl Fn(&str) -> bool) -> Option<&'static str> {
    if has("AUTH=OAUTHBEARER") {
        Some("OAUTHBEARER")
    } else if has("AUTH=XOAUTH2") {
        Some("XOAUTH2")
    } else {
        None
    }
}

/// `LOGIN "user" "password"` (after the tag), as an IMAP command line.
pub fn login_command(tag: &str, user: &str, password: &str) -> Wiped {
    let mut w = Wiped::with_capacity(tag.len() + 16 + 2 * (user.len() + password.len()));
    w.push(tag.as_bytes());
    w.push(b" LOGIN ");
    push_quoted(&mut w, user);
    w.push(b" ");
    push_quoted(&mut w, password);
    w.push(b"\r\n");
    w
}

fn push_quoted(w: &mut Wiped, s: &str) {
    w.push(b"\"");
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            w.push(b"\\");
        }
        w.push(&[b]);
    }
    w.push(b"\"");
}

/// Whether to send a password with `AUTHENTICATE PLAIN` rather than `LOGIN`: when the
/// server forbids LOGIN, or when LOGIN's quoted strings, which are ASCII by the standard,
/// cannot carry the credentials. `Err` names why no way is left.
pub fn use_plain(has: impl Fn(&str) -> bool, user: &str, password: &str) -> Result<bool, &'static str> {
    let plain = has("AUTH=PLAIN");
    if has("LOGINDISABLED") {
        if !plain {
            return Err("refuses LOGIN (LOGINDISABLED) and does not offer AUTH=PLAIN: no way to send a password");
        }
        return Ok(true);
    }
    Ok(plain && !(user.is_ascii() && password.is_ascii()))
}

/// Longest greeting line.
const MAX_GREETING: usize = 8192;

/// Replaces a login's credential by a fresh one.
type Renew<'a> = &'a mut dyn FnMut(&mut Auth) -> Result<()>;

/// Connects, reads the greeting, logs in and introduces the client (ID, where offered). A
/// refused login is tried once more after `renew` (when given) replaced the credential.
pub(super) fn open(
    spec: &ServerSpec,
    addrs: &[SocketAddr],
    auth: &mut Auth,
    renew: Option<Renew<'_>>,
) -> std::result::Result<Link, Unreached> {
    if crate::interrupt::requested() {
        return Err(Unreached::permanent(Error::interrupted()));
    }
    let endpoint = spec.endpoint();
    let stream = connect::open(spec, addrs)?;
    stream
        .sock
        .tcp()
        .set_read_timeout(Some(crate::interrupt::TICK.min(spec.timeout)))
        .doing("setting the socket timeout")
        .map_err(Unreached::transient)?;
    let mut link = Link::new(stream, spec);
    // A broken stream may be the link's fault and pass; an answer refused or unreadable
    // is the server's.
    let failed = |what: &str, e: &ImapError| {
        let error = spec.imap_error(what, e);
        match e {
            ImapError::Lost(_) | ImapError::Timeout | ImapError::Slow => Unreached::transient(error),
            _ => Unreached::permanent(error),
        }
    };
    // After STARTTLS the greeting was the plain one; the TLS session starts without one,
    // and capabilities sent in clear text must not be trusted.
    if !spec.starttls {
        let mut line = Vec::new();
        match wire::read_raw_line(&mut link.io, MAX_GREETING, &mut line) {
            Ok(0) => {
                return Err(Unreached::transient(Error::runtime(format!(
                    "{endpoint} closed the connection without a greeting"
                ))))
            }
            Ok(_) => {}
            Err(e) => {
                let e = match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ImapError::Timeout,
                    _ => ImapError::Lost(describe_io(&e)),
                };
                return Err(failed("greeting", &e));
            }
        }
        connect::check_greeting(&line, &endpoint)?;
        link.caps = greeting_capabilities(&line);
    }
    if link.caps.is_empty() {
        link.caps = ask_capabilities(&mut link).map_err(|e| failed("CAPABILITY", &e))?;
    }
    let text = match (log_in(&mut link, auth, spec), renew) {
        (Ok(text), _) => text,
        // Not authenticated yet after a NO (RFC 3501, 6.2.2): the same connection may try again.
        (Err(LoginFailure::Refused(_)), Some(renew)) => {
            renew(auth).map_err(Unreached::permanent)?;
            log_in(&mut link, auth, spec)?
        }
        (Err(f), _) => return Err(f.into()),
    };
    // Servers often announce the capabilities that hold after login with its answer.
    match text.strip_prefix("[CAPABILITY ").and_then(|t| t.split_once(']')) {
        Some((caps, _)) => link.caps = caps.split_whitespace().map(str::to_ascii_uppercase).collect(),
        None => link.caps = ask_capabilities(&mut link).map_err(|e| failed("CAPABILITY", &e))?,
    }
    if link.has("ID") {
        // Some servers (NetEase) refuse EXAMINE to a client that did not say who it is. The
        // answer is read with the next command's: no round trip of its own.
        let id = format!("ID (\"name\" \"smailarchiver\" \"version\" \"{}\")", env!("CARGO_PKG_VERSION"));
        link.send(&[id]).map_err(|e| failed("ID", &e))?;
    }
    Ok(link)
}

/// The capabilities a greeting announces (`* OK [CAPABILITY ...]`), if it does.
fn greeting_capabilities(line: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(line);
    let Some(start) = text.find("[CAPABILITY ") else { return Vec::new() };
    let rest = &text[start + 12..];
    let Some(end) = rest.find(']') else { return Vec::new() };
    rest[..end].split_whitespace().map(str::to_ascii_uppercase).collect()
}

/// Asks the server for its capabilities.
fn ask_capabilities(link: &mut Link) -> std::result::Result<Vec<String>, ImapError> {
    let tags = link.send(&["CAPABILITY".to_string()])?;
    let mut caps = Vec::new();
    link.finish(&tags[0], MAX_SMALL_LITERAL, &mut |d| {
        if let Data::Capability(c) = d {
            caps = c;
        }
        Ok(())
    })?;
    Ok(caps)
}

/// Whether `e` is the server refusing the credential (a wrong password), as the first
/// login reports it.
pub fn is_refused_login(e: &Error) -> bool {
    e.message().starts_with("login failed for ")
}

/// Why a login failed.
enum LoginFailure {
    /// The server refused the credential: a fresh one may do.
    Refused(Error),
    /// The connection broke or fell silent: trying again later may do.
    Broken(Error),
    /// Anything else.
    Other(Error),
}

impl From<Error> for LoginFailure {
    fn from(e: Error) -> LoginFailure {
        LoginFailure::Other(e)
    }
}

impl From<LoginFailure> for Unreached {
    fn from(f: LoginFailure) -> Unreached {
        match f {
            LoginFailure::Broken(e) => Unreached::transient(e),
            LoginFailure::Refused(e) | LoginFailure::Other(e) => Unreached::permanent(e),
        }
    }
}

/// Logs in; returns the text of the server's OK.
fn log_in(link: &mut Link, auth: &Auth, spec: &ServerSpec) -> std::result::Result<String, LoginFailure> {
    let endpoint = spec.endpoint();
    let user = auth.user();
    let failure = |e: ImapError| match e {
        ImapError::Refused(text) => {
            LoginFailure::Refused(Error::runtime(format!("login failed for {user} on {endpoint}: {}", quote(&text))))
        }
        other @ (ImapError::Lost(_) | ImapError::Timeout | ImapError::Slow) => {
            LoginFailure::Broken(spec.imap_error("login", &other))
        }
        other => LoginFailure::Other(spec.imap_error("login", &other)),
    };
    match auth {
        Auth::Login { user, password } => {
            let password = password.expose();
            if [user.as_str(), password].iter().any(|s| s.contains(['\r', '\n', '\0'])) {
                return Err(
                    Error::usage(format!("the user name or password for {user} contains a line break or NUL")).into()
                );
            }
            let use_plain = use_plain(|c| link.has(c), user, password)
                .map_err(|why| LoginFailure::Other(Error::runtime(format!("{endpoint} {why}"))))?;
            if use_plain {
                sasl(link, "PLAIN", &plain(user, password), b"\r\n").map_err(|(e, _)| failure(e))
            } else {
                let tag = link.tag();
                link.write(login_command(&tag, user, password).bytes()).map_err(failure)?;
                link.in_flight.push_back(tag.clone());
                link.finish(&tag, MAX_SMALL_LITERAL, &mut |_| Ok(())).map_err(failure)
            }
        }
        Auth::OAuth2 { user, token } => {
            let Some(mechanism) = oauth2_mechanism(|c| link.has(c)) else {
                return Err(Error::runtime(format!(
                    "{endpoint} does not offer OAuth2 login (AUTH=OAUTHBEARER or AUTH=XOAUTH2)"
                ))
                .into());
            };
            // After a failure both send a JSON error as a challenge; the client's answer
            // ends the exchange: an empty line (XOAUTH2) or ^A (OAUTHBEARER, RFC 7628 3.2.3).
            let (response, cancel) = if mechanism == "OAUTHBEARER" {
                (oauthbearer(user, &spec.host, spec.port, token.expose()), &b"AQ==\r\n"[..])
            } else {
                (xoauth2(user, token.expose()), &b"\r\n"[..])
            };
            sasl(link, mechanism, &response, cancel).map_err(|(e, detail)| {
                let with_detail = |error: Error| match &detail {
                    Some(detail) => Error::runtime(format!("{error} ({detail})")),
                    None => error,
                };
                match failure(e) {
                    LoginFailure::Refused(e) => LoginFailure::Refused(with_detail(e)),
                    LoginFailure::Broken(e) => LoginFailure::Broken(with_detail(e)),
                    LoginFailure::Other(e) => LoginFailure::Other(with_detail(e)),
                }
            })
        }
    }
}

/// One SASL exchange with a single client response (with SASL-IR in the command itself).
/// On failure, OAuth 2.0 servers send a JSON error as a challenge first: it comes back with
/// the error, after `cancel` answered it.
fn sasl(
    link: &mut Link,
    mechanism: &str,
    response: &Wiped,
    cancel: &[u8],
) -> std::result::Result<String, (ImapError, Option<String>)> {
    let tag = link.tag();
    let encoded = response.base64();
    let ir = link.has("SASL-IR");
    let mut command = Wiped::with_capacity(tag.len() + mechanism.len() + encoded.bytes().len() + 20);
    command.push(format!("{tag} AUTHENTICATE {mechanism}").as_bytes());
    if ir {
        command.push(b" ");
        command.push(encoded.bytes());
    }
    command.push(b"\r\n");
    link.write(command.bytes()).map_err(|e| (e, None))?;
    link.in_flight.push_back(tag.clone());
    let mut sent = ir;
    let mut detail = None;
    loop {
        match wire::read_response(&mut link.io, MAX_SMALL_LITERAL).map_err(|e| (e, detail.clone()))? {
            Response::Continue(challenge) => {
                if sent {
                    // A second challenge is an error report: never send the credential twice.
                    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, challenge.trim())
                        .unwrap_or_else(|_| challenge.into_bytes());
                    detail = Some(quote(&String::from_utf8_lossy(&decoded)));
                    link.write(cancel).map_err(|e| (e, detail.clone()))?;
                } else {
                    let mut line = Wiped::with_capacity(encoded.bytes().len() + 2);
                    line.push(encoded.bytes());
                    line.push(b"\r\n");
                    link.write(line.bytes()).map_err(|e| (e, None))?;
                    sent = true;
                }
            }
            Response::Tagged { tag: t, status, text } if t == tag => {
                link.in_flight.pop_front();
                return match status {
                    Status::Ok => Ok(text),
                    _ => Err((ImapError::Refused(text), detail)),
                };
            }
            Response::Data(Data::Bye(text)) => {
                return Err((ImapError::Lost(format!("the server hung up: {}", quote(&text))), detail))
            }
            Response::Data(_) => {}
            Response::Tagged { .. } => {
                return Err((ImapError::Protocol("an answer tagged out of turn during login".into()), detail))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_capabilities_are_read() {
        assert_eq!(
            greeting_capabilities(b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID] Dovecot ready.\r\n"),
            ["IMAP4REV1", "SASL-IR", "ID"]
        );
        assert!(greeting_capabilities(b"* OK ready\r\n").is_empty());
    }

    #[test]
    fn credentials_are_encoded_and_hidden() {
        assert_eq!(plain("ann", "pässword").bytes(), "\0ann\0pässword".as_bytes());
        assert_eq!(xoauth2("ann@example.org", "tok").bytes(), b"user=ann@example.org\x01auth=Bearer tok\x01\x01");
        // RFC 7628, 4.1, with the user escaped as RFC 5801 says.
        assert_eq!(
            oauthbearer("user@example.com", "server.example.com", 143, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==").bytes(),
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert!(oauthbearer("a,b=c", "h", 1, "t").bytes().starts_with(b"n,a=a=2Cb=3Dc,\x01"));
        assert_eq!(
            login_command("a1", "ann", r#"p"w\x"#).bytes(),
            br#"a1 LOGIN "ann" "p\"w\\x""#.iter().chain(b"\r\n").copied().collect::<Vec<u8>>()
        );
        assert_eq!(plain("a", "b").base64().bytes(), b"AGEAYg==");
        assert_eq!(format!("{:?}", plain("a", "secret")), "Wiped(***)");
        let auth = Auth::OAuth2 { user: "ann".into(), token: Secret::new("tok-123".into()) };
        assert!(!format!("{auth:?}").contains("tok-123"));
    }

    #[test]
    fn mechanism_choice() {
        let caps = |list: &'static [&'static str]| move |c: &str| list.contains(&c);
        assert_eq!(oauth2_mechanism(caps(&["AUTH=XOAUTH2", "AUTH=OAUTHBEARER"])), Some("OAUTHBEARER"));
        assert_eq!(oauth2_mechanism(caps(&["AUTH=XOAUTH2"])), Some("XOAUTH2"));
        assert_eq!(oauth2_mechanism(caps(&["AUTH=PLAIN"])), None);
        assert_eq!(use_plain(caps(&["AUTH=PLAIN"]), "ann", "pw"), Ok(false));
        assert_eq!(use_plain(caps(&["AUTH=PLAIN"]), "ann", "pä"), Ok(true));
        assert_eq!(use_plain(caps(&["LOGINDISABLED", "AUTH=PLAIN"]), "ann", "pw"), Ok(true));
        assert!(use_plain(caps(&["LOGINDISABLED"]), "ann", "pw").is_err());
        assert_eq!(use_plain(caps(&[]), "ann", "pä"), Ok(false));
    }
}
