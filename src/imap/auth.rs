//! Credentials and how they are sent: `LOGIN`, or `AUTHENTICATE PLAIN` where LOGIN cannot
//! carry them, or with an OAuth 2.0 token `AUTHENTICATE OAUTHBEARER` (RFC 7628) where the
//! server offers it, else `AUTHENTICATE XOAUTH2` (Google's and Microsoft's own). Every
//! buffer that holds a credential is ours and is wiped when dropped.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::Result;
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
        wipe(unsafe_bytes(text.as_mut_str()));
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

fn unsafe_bytes(s: &mut str) -> &mut [u8] {
    // SAFETY: only zero bytes are written through it, which keeps the string valid UTF-8.
    unsafe { s.as_bytes_mut() }
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

#[cfg(test)]
mod tests {
    use super::*;

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
