//! `--oauth2-login` for one account: sign in by the account's flow, keep the refresh token,
//! and prove it by logging in to the IMAP server with the access token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::grant::Client;
use super::provider::{Flow, Settings};
use super::source::TokenSource;
use super::store::{Saved, Store};
use super::{device, pkce};
use crate::account::Account;
use crate::error::{Error, Result};
use crate::imap::{self, Auth, ServerSpec, Session};
use crate::keys::Keys;

/// What a sign-in did.
#[derive(Debug)]
pub struct Signed {
    /// Where the refresh token is.
    pub file: PathBuf,
    /// It is sealed with the archive's key.
    pub sealed: bool,
    /// The IMAP server it was tried on (`host:port`).
    pub server: String,
    /// How the code came (the browser flow).
    pub via: Option<pkce::Via>,
}

/// The account's token file.
pub fn store(account: &Account, settings: &Settings, keys: Option<&Keys>) -> Store {
    let path = settings.token_path(&account.root, &account.user, &account.host, account.port());
    Store::new(path, &account.user, keys, settings.seal)
}

/// The account's OAuth 2.0 token source, when it signs in with OAuth 2.0 built in: reads
/// the token file (with the archive's `keys`, when sealed). Before the sandbox closes.
pub fn source_for(account: &Account, keys: Option<&Keys>) -> Result<Option<Arc<TokenSource>>> {
    let Some(settings) = &account.oauth2 else { return Ok(None) };
    TokenSource::open(settings, store(account, settings, keys)).map(|s| Some(Arc::new(s)))
}

/// The archive's keys, when the account's token file may be sealed with them and they
/// exist: loaded once, before the token is read, and used for the archive too.
pub fn keys_for(account: &Account) -> Result<Option<Keys>> {
    let Some(settings) = &account.oauth2 else { return Ok(None) };
    match &account.keys {
        Some(spec) if spec.path.exists() => spec.load().map(Some),
        Some(spec) if settings.seal => Err(Error::runtime(format!(
            "the OAuth2 token is sealed with the archive's key, but the key file {} is missing",
            spec.path.display()
        ))),
        None if settings.seal => Err(Error::usage(
            "sealing the OAuth2 token needs the archive's key: encrypt the archive (-e, config \"encrypt\")",
        )),
        _ => Ok(None),
    }
}

/// Signs `account` in by its flow (`say` tells the user what to do), keeps the refresh
/// token in its file, and logs in to the IMAP server with the access token.
pub fn login(account: &Account, keys: Option<&Keys>, say: &mut dyn FnMut(&str)) -> Result<Signed> {
    let settings = account.oauth2.as_ref().ok_or_else(|| {
        Error::usage(format!("{}: no OAuth2 settings (--oauth2, or \"oauth2\" in the config)", account.label()))
    })?;
    let store = store(account, settings, keys);
    // Checked before the user spends a minute signing in.
    let spec = ServerSpec::new(
        &account.host,
        account.port,
        account.starttls,
        account.ca_file.as_deref(),
        account.pin_sha256.as_deref(),
    )?;
    let spec = ServerSpec { timeout: Duration::from_secs(account.timeout), ..spec };
    let addrs = imap::resolve(&spec.host, spec.port)?;
    store.ensure_dir()?;
    let client = Client::new(settings)?;
    let (tokens, via) = match settings.flow {
        Flow::Device => {
            let tokens = device::sign_in(&client, &mut |p| {
                say(&format!(
                    "to sign in, open {} in a browser (on any device) and enter the code {} (good for {} minutes)",
                    p.verification_uri,
                    p.user_code,
                    p.expires_in.as_secs().div_ceil(60)
                ))
            })?;
            (tokens, None)
        }
        Flow::Browser => {
            let (tokens, via) = pkce::sign_in(&client, settings.redirect_port, say)?;
            (tokens, Some(via))
        }
    };
    let refresh = tokens.refresh.ok_or_else(|| {
        Error::runtime(format!(
            "{} gave no refresh token: an unattended run could not renew the access token (Microsoft: the scope needs offline_access)",
            client.token_endpoint()
        ))
    })?;
    let saved = Saved {
        client_id: settings.provider.client_id.clone(),
        token_endpoint: client.token_endpoint().to_string(),
        refresh,
    };
    store.save(&saved)?;
    let server = spec.endpoint();
    let mut session = Session::new(spec, addrs, Auth::OAuth2 { user: account.user.clone(), token: tokens.access });
    session.connect().map_err(|e| {
        Error::runtime(format!(
            "signed in and kept the token in {}, but the IMAP login with it failed: {e}",
            store.path().display()
        ))
    })?;
    let _ = session.logout();
    Ok(Signed { file: store.path().to_path_buf(), sealed: settings.seal, server, via })
}
