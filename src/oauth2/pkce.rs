//! The authorization code grant with PKCE (RFC 7636) for a tool without a browser of its
//! own: the user opens the authorization address in a browser; the provider sends the
//! browser back to `http://127.0.0.1:PORT/` (or `localhost`, RFC 8252's loopback
//! redirect), where a listener of ours takes the code. When the browser runs on another
//! machine that address does not load there: the user copies it from the address bar and
//! pastes it here (or just the code). Either way the `state` must be the one sent (a code
//! from another sign-in is refused), and the code is only good with the verifier that never
//! left this process.

use std::io::{self, BufReader, Write};
use std::net::{Ipv6Addr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::grant::{Client, Tokens};
use super::http;
use crate::error::{Error, IoContext, Result};
use crate::imap::error::quote;
use crate::secret::Secret;

/// How long the user has to sign in.
pub const WAIT: Duration = Duration::from_secs(15 * 60);
/// Longest request line or header from the browser, and most header lines.
const MAX_LINE: usize = 8 * 1024;
const MAX_HEADERS: usize = 100;

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`.
    pub challenge: String,
}

impl Pkce {
    /// A fresh verifier of 43 characters (32 random bytes).
    pub fn new() -> Result<Pkce> {
        let verifier = Secret::new(random_text()?);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose().as_bytes()));
        Ok(Pkce { verifier, challenge })
    }
}

/// 32 random bytes as URL-safe base64 (43 characters).
pub fn random_text() -> Result<String> {
    let mut bytes = [0u8; 32];
    crate::os::fill_random(&mut bytes).doing("reading random bytes")?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The address the user opens.
pub fn authorization_url(client: &Client, endpoint: &str, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let p = &client.provider;
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &p.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", &p.scope),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    params.extend(p.authorize_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", http::encode(k), http::encode(v))).collect();
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{}", query.join("&"))
}

/// Where the code came from, for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The browser came back to our listener.
    Loopback,
    /// The user pasted the address or the code.
    Pasted,
}

/// Signs in: shows the address with `say`, waits for the code, exchanges it. `port` is
/// the listener's (0: any free one).
pub fn sign_in(client: &Client, port: u16, say: &mut dyn FnMut(&str)) -> Result<(Tokens, Via)> {
    let endpoint = client
        .provider
        .authorization_endpoint
        .clone()
        .ok_or_else(|| Error::usage("the browser flow needs the provider's authorization endpoint"))?;
    let listeners = listen(port)?;
    let port = listeners[0].local_addr().doing("reading the listener's port")?.port();
    let redirect_uri = format!("http://{}:{port}/", client.provider.redirect_host);
    let pkce = Pkce::new()?;
    let state = random_text()?;
    let url = authorization_url(client, &endpoint, &redirect_uri, &state, &pkce.challenge);
    say(&format!("open this address in a browser and sign in:\n\n  {url}\n"));
    say(&format!(
        "waiting for the browser to come back to {redirect_uri} (up to {} minutes). If the browser runs on \
         another machine, its last page does not load: copy that page's address (it starts with {redirect_uri}) \
         and paste it here, then press Enter.",
        WAIT.as_secs() / 60
    ));
    let (code, via) = wait_for_code(&listeners, &state, Instant::now() + WAIT, say)?;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", pkce.verifier.expose()),
    ];
    match client.token_request(&fields)? {
        Ok(tokens) => Ok((tokens, via)),
        Err(r) => Err(Error::runtime(format!("{} refused the code ({r})", client.token_endpoint()))),
    }
}

/// Listens on 127.0.0.1 (and on ::1 at the same port where it can: a browser may try
/// `localhost` there first).
fn listen(port: u16) -> Result<Vec<TcpListener>> {
    let v4 = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        Error::runtime(format!("cannot listen on 127.0.0.1:{port} for the browser: {}", crate::error::describe_io(&e)))
    })?;
    let port = v4.local_addr().doing("reading the listener's port")?.port();
    let mut all = vec![v4];
    if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
        all.push(v6);
    }
    for l in &all {
        l.set_nonblocking(true).doing("setting up the listener")?;
    }
    Ok(all)
}

/// Lines of standard input, read by a thread of their own (one for the whole run, so a
/// second account's sign-in reads on where the first stopped); `None` at its end.
fn pasted_lines() -> &'static Mutex<Receiver<Option<String>>> {
    static LINES: OnceLock<Mutex<Receiver<Option<String>>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let stdin = io::stdin();
            loop {
                let line = crate::bounded::read_line(&mut stdin.lock(), MAX_LINE).ok().flatten();
                let done = line.is_none();
                if tx.send(line.map(|l| String::from_utf8_lossy(&l).into_owned())).is_err() || done {
                    return;
                }
            }
        });
        Mutex::new(rx)
    })
}

/// Waits for the browser at `listeners` or a pasted line, until `deadline`.
fn wait_for_code(
    listeners: &[TcpListener],
    state: &str,
    deadline: Instant,
    say: &mut dyn FnMut(&str),
) -> Result<(Secret, Via)> {
    let lines = pasted_lines().lock().unwrap_or_else(PoisonError::into_inner);
    let mut input_open = true;
    loop {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        if Instant::now() > deadline {
            return Err(Error::runtime(format!(
                "no sign-in within {} minutes: run --oauth2-login again",
                WAIT.as_secs() / 60
            )));
        }
        for l in listeners {
            match l.accept() {
                Ok((stream, _)) => {
                    if let Some(outcome) = serve_redirect(stream, state) {
                        return outcome.map(|code| (code, Via::Loopback));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(Error::runtime(format!("waiting for the browser: {}", crate::error::describe_io(&e))))
                }
            }
        }
        let tick = Duration::from_millis(100);
        if !input_open {
            std::thread::sleep(tick);
            continue;
        }
        match lines.recv_timeout(tick) {
            Ok(Some(line)) => match pasted(&line, state) {
                Ok(Some(code)) => return Ok((code, Via::Pasted)),
                Ok(None) => {}
                Err(why) => say(&format!("{why}; paste the address of the browser's last page (or the code)")),
            },
            Ok(None) | Err(RecvTimeoutError::Disconnected) => input_open = false,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// The outcome of a redirect's query: the code, the provider's refusal, or `None` when
/// it is not for this sign-in (another `state`) or carries neither.
fn outcome_of(query: &str, state: &str) -> Option<std::result::Result<Secret, String>> {
    let pairs = http::pairs(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("state").as_deref() != Some(state) {
        return None;
    }
    if let Some(error) = get("error") {
        let detail = get("error_description").map(|d| format!(": {}", quote(&d))).unwrap_or_default();
        return Some(Err(format!("the sign-in was refused ({}{detail})", quote(&error))));
    }
    get("code").filter(|c| !c.is_empty()).map(|c| Ok(Secret::new(c)))
}

/// A pasted line: the final address (its `state` checked), or the code alone; `Ok(None)`
/// for an empty line.
fn pasted(line: &str, state: &str) -> std::result::Result<Option<Secret>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if line.starts_with("http://") || line.starts_with("https://") {
        let query = line.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or_default()).unwrap_or_default();
        return match outcome_of(query, state) {
            Some(Ok(code)) => Ok(Some(code)),
            Some(Err(why)) => Err(why),
            None => {
                Err("that address is not the one this sign-in ends at (no code, or another sign-in's state)".into())
            }
        };
    }
    if line.contains(char::is_whitespace) || line.contains(['&', '=']) {
        return Err("that is neither an address nor a code".into());
    }
    Ok(Some(Secret::new(line.to_string())))
}

/// Answers one browser request at the listener: `Some` with the outcome when it was the
/// redirect of this sign-in, `None` to keep waiting (a favicon, a stray request).
fn serve_redirect(stream: TcpStream, state: &str) -> Option<Result<Secret>> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let request = crate::bounded::read_line(&mut reader, MAX_LINE).ok().flatten()?;
    for _ in 0..MAX_HEADERS {
        match crate::bounded::read_line(&mut reader, MAX_LINE) {
            Ok(Some(l)) if l.iter().all(|&b| b == b'\r') => break,
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
    let request = String::from_utf8_lossy(&request).into_owned();
    let target = request.strip_prefix("GET ").and_then(|r| r.split(' ').next()).unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let outcome = if path == "/" { outcome_of(query, state) } else { None };
    let (status, text) = match &outcome {
        Some(Ok(_)) => ("200 OK", "Signed in. You can close this page and go back to smailarchiver.".to_string()),
        Some(Err(why)) => ("200 OK", format!("smailarchiver: {why}.")),
        None if path == "/" => ("400 Bad Request", "This is not the sign-in smailarchiver is waiting for.".to_string()),
        None => ("404 Not Found", "Not found.".to_string()),
    };
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>smailarchiver</title></head><body><p>{}</p></body></html>\n",
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\r\n{body}",
        body.len()
    );
    let _ = (&stream).write_all(answer.as_bytes());
    let _ = (&stream).flush();
    outcome.map(|o| o.map_err(Error::runtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::new().unwrap();
        assert_eq!((p.verifier.expose().len(), p.challenge.len()), (43, 43));
        assert_ne!(Pkce::new().unwrap().challenge, p.challenge);
    }

    #[test]
    fn pasted_addresses_and_codes() {
        let code = |r: std::result::Result<Option<Secret>, String>| r.map(|c| c.map(|c| c.expose().to_string()));
        let url = "http://127.0.0.1:5000/?state=S1&code=4%2F0AbC&scope=https%3A%2F%2Fmail.google.com%2F";
        assert_eq!(code(pasted(url, "S1")), Ok(Some("4/0AbC".into())));
        assert!(pasted(url, "S2").is_err());
        assert_eq!(code(pasted("  4/0AbC-xyz \n", "S")), Ok(Some("4/0AbC-xyz".into())));
        assert_eq!(code(pasted("", "S")), Ok(None));
        assert!(pasted("code=1&state=2", "S").is_err());
        let refused = "http://localhost:1/?error=access_denied&error_description=The+user+said+no&state=S";
        assert_eq!(pasted(refused, "S").unwrap_err(), "the sign-in was refused (access_denied: The user said no)");
        assert!(pasted("http://127.0.0.1:5000/", "S").is_err());
    }

    #[test]
    fn the_listener_takes_only_this_sign_ins_redirect() {
        let listeners = listen(0).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        let get = move |target: &str| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(s, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
            let mut answer = String::new();
            io::Read::read_to_string(&mut s, &mut answer).unwrap();
            answer
        };
        let browser = std::thread::spawn(move || {
            let a = get("/favicon.ico");
            let b = get("/?state=other&code=x");
            let c = get("/?state=mine&code=the%2Fcode");
            (a, b, c)
        });
        let (code, via) =
            wait_for_code(&listeners, "mine", Instant::now() + Duration::from_secs(20), &mut |_| {}).unwrap();
        assert_eq!((code.expose(), via), ("the/code", Via::Loopback));
        let (a, b, c) = browser.join().unwrap();
        assert!(a.starts_with("HTTP/1.1 404"), "{a}");
        assert!(b.starts_with("HTTP/1.1 400"), "{b}");
        assert!(c.starts_with("HTTP/1.1 200") && c.contains("Signed in"), "{c}");
    }
}
