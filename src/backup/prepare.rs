//! Phase one of a backup, before the sandbox closes: for each account, everything it
//! needs from outside the archive (trust anchors, credentials, addresses, the root, keys).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::event::{Event, Sink};
use super::roots;
use crate::account::{Account, Credential};
use crate::archive::layout::registry::Registry;
use crate::error::Result;
use crate::imap::auth::{Ask, Renewal};
use crate::imap::{self, Auth, ServerSpec};
use crate::keys::Keys;
use crate::oauth2::TokenSource;

/// An account with everything it needs from outside the archive already in hand.
pub(super) struct Prepared<'a> {
    pub(super) account: &'a Account,
    /// The archive root, as the sandbox knows it.
    pub(super) root: PathBuf,
    pub(super) keys: Option<Keys>,
    /// The key file was made by this run, for the user directory `guessed_dir` (the one
    /// recorded for the server, or the one that would be made).
    pub(super) keys_created: bool,
    pub(super) guessed_dir: String,
    pub(super) auth: Auth,
    /// Where a fresh credential comes from during the run (the credential helper, or the
    /// account's OAuth 2.0 token source).
    pub(super) renewal: Option<Renewal>,
    /// The account's OAuth 2.0 token source, when it has OAuth 2.0 built in.
    pub(super) source: Option<Arc<TokenSource>>,
    pub(super) spec: ServerSpec,
    pub(super) addrs: Vec<SocketAddr>,
}

/// The token endpoints' ports of the accounts with OAuth 2.0 built in: renewing a token
/// mid-run connects there.
pub(super) fn oauth2_ports<'p>(ready: &'p [Prepared<'_>]) -> impl Iterator<Item = u16> + 'p {
    ready.iter().filter_map(|p| p.source.as_ref().map(|s| s.port()))
}

/// The token files' directories: a provider that rotates refresh tokens (Microsoft) has
/// the new one written there mid-run.
pub(super) fn oauth2_dirs<'p>(ready: &'p [Prepared<'_>]) -> impl Iterator<Item = PathBuf> + 'p {
    ready.iter().filter_map(|p| p.source.as_ref().map(|s| s.dir()))
}

/// Phase one: trust anchors, credentials, addresses, the root (made when missing, its
/// lock checked, its records read and checked), keys.
pub(super) fn prepare<'a>(account: &'a Account, sink: &dyn Sink, roots: &mut roots::Roots) -> Result<Prepared<'a>> {
    account.validate()?;
    // Before anything is created: a refused CA file, password or server name leaves no
    // archive root, lock or key file behind.
    let spec = server_spec(account)?;
    // A sealed OAuth2 token opens with the archive's key: loaded first, and used for both.
    let early_keys = crate::oauth2::login::keys_for(account)?;
    let source = crate::oauth2::login::source_for(account, early_keys.as_ref())?;
    let (auth, addrs) = login_and_addresses(account, &spec, source.as_deref())?;
    // The real path: the sandbox rules and a symlinked root must agree.
    let root = roots.prepare(&account.root)?;
    // Records that give a directory two owners are refused here, before anything is
    // fetched or moved.
    let guessed_dir = Registry::read(&root)?.account_dir(&spec.endpoint(), &account.user);
    let (keys, keys_created) = load_keys(account, &root, &guessed_dir, sink, early_keys)?;
    let renewal = source.as_ref().map(TokenSource::renewal);
    Ok(Prepared { account, root, keys, keys_created, guessed_dir, auth, renewal, source, spec, addrs })
}

/// Everything needed to connect to an account's server, obtained before the sandbox
/// closes.
pub struct Connection {
    /// TLS settings and timeout.
    pub spec: ServerSpec,
    /// The first credential.
    pub auth: Auth,
    /// The server's addresses.
    pub addrs: Vec<SocketAddr>,
    /// The account's OAuth 2.0 token source, when it has OAuth 2.0 built in: a session
    /// renews through it, and the sandbox lets it reach the token endpoint and write the
    /// token file's directory.
    pub source: Option<Arc<TokenSource>>,
}

/// Everything needed to connect to the account's server, obtained now (before the
/// sandbox closes): TLS settings, the credential and the addresses.
pub fn connection(account: &Account) -> Result<Connection> {
    let spec = server_spec(account)?;
    let keys = crate::oauth2::login::keys_for(account)?;
    let source = crate::oauth2::login::source_for(account, keys.as_ref())?;
    let (auth, addrs) = login_and_addresses(account, &spec, source.as_deref())?;
    Ok(Connection { spec, auth, addrs, source })
}

/// How to reach the account's server: TLS settings (the CA file is read now) and timeout.
fn server_spec(account: &Account) -> Result<ServerSpec> {
    let mut spec = ServerSpec::named(
        &account.host,
        account.port,
        account.starttls,
        account.ca_file.as_deref(),
        account.pin_sha256.as_deref(),
        account.names,
    )?;
    spec.timeout = Duration::from_secs(account.timeout);
    if !account.pipelining {
        spec.one_at_a_time.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(spec)
}

/// The credential to log in with (from the account's OAuth 2.0 token `source`, if it has
/// one) and the server's addresses.
fn login_and_addresses(
    account: &Account,
    spec: &ServerSpec,
    source: Option<&TokenSource>,
) -> Result<(Auth, Vec<SocketAddr>)> {
    let auth = match source {
        Some(s) => Auth::OAuth2 { user: account.user.clone(), token: s.token(Ask::Login)? },
        None => match account.credential()? {
            Credential::Password(password) => Auth::Login { user: account.user.clone(), password },
            Credential::OAuth2(token) => Auth::OAuth2 { user: account.user.clone(), token },
        },
    };
    let addrs = imap::resolve(&spec.host, spec.port)?;
    Ok((auth, addrs))
}

/// The account's keys and whether this run made the key file; a new key file is made
/// only for an archive without encrypted messages or metadata (a second key could not
/// read them), and said so even with `--quiet`: it is the one thing to copy somewhere
/// safe. An existing key is checked against what the archive holds sealed before
/// anything is written with it.
fn load_keys(
    account: &Account,
    root: &std::path::Path,
    account_dir: &str,
    sink: &dyn Sink,
    loaded: Option<Keys>,
) -> Result<(Option<Keys>, bool)> {
    let Some(spec) = &account.keys else { return Ok((None, false)) };
    let user_dir = root.join(account_dir);
    let sealed =
        || crate::archive::any_encrypted(&user_dir) || crate::archive::key_check::any_sealed_journal(root, account_dir);
    if !spec.path.exists() && sealed() {
        return Err(crate::error::Error::runtime(format!(
            "the key file {} is missing, but {} holds encrypted messages that a new key could not read: \
             put the key file back (or name it with -k / \"keys\")",
            spec.path.display(),
            user_dir.display()
        )));
    }
    let (keys, created) = match loaded {
        Some(keys) => (keys, false),
        None => spec.load_or_create()?,
    };
    if !created {
        crate::archive::key_check::check_account(&keys, &spec.path, root, account_dir)?;
    }
    if created {
        sink.event(Event::KeyCreated { account, path: &spec.path, sha: spec.password.is_some() });
    }
    Ok((Some(keys), created))
}
