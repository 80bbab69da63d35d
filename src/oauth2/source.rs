//! A run's access tokens for one account: refreshed from the stored refresh token when the
//! run starts, before every later login once less than a quarter of the token's lifetime
//! (at most five minutes) is left, and at once when the server refuses the token in hand.
//! A login therefore never starts with a token about to expire, whatever its lifetime.
//! Rotated refresh tokens (Microsoft sends a new one with every refresh) replace the
//! stored one at once.
//!
//! The run's connections share one source: a refresh made for one serves the others.
//! Refreshing needs the token endpoint's TCP port after the sandbox closed (it is in the
//! rules) and the token file's directory writable (it is too); the endpoint's name was
//! resolved before.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::grant::{Client, Refusal, Tokens};
use super::provider::Settings;
use super::store::{Saved, Store};
use crate::error::{Error, Result};
use crate::imap::auth::{Ask, Renewal};
use crate::secret::Secret;

/// The most of a token's lifetime left unused: it is renewed when less is left.
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// One account's tokens.
#[derive(Debug)]
pub struct TokenSource {
    client: Client,
    store: Store,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    refresh: Secret,
    access: Option<Access>,
    /// A rotated refresh token could not be saved: said once, at the end of the account.
    warning: Option<String>,
}

#[derive(Debug)]
struct Access {
    token: Secret,
    until: Instant,
    lifetime: Duration,
}

impl Access {
    /// Whether it will still be good for a login now: more than a quarter of its lifetime
    /// (or [`MAX_MARGIN`]) left.
    fn fresh(&self, now: Instant) -> bool {
        let margin = (self.lifetime / 4).min(MAX_MARGIN);
        self.until.checked_duration_since(now).is_some_and(|left| left > margin)
    }
}

impl TokenSource {
    /// Reads the token file and sets up the client: call it before the sandbox closes.
    pub fn open(settings: &Settings, store: Store) -> Result<TokenSource> {
        let saved = store.load()?;
        let provider = &settings.provider;
        if saved.client_id != provider.client_id || saved.token_endpoint != provider.token_endpoint {
            return Err(Error::runtime(format!(
                "{} was signed in with another client (client id {} at {}, now {} at {}): sign in again with --oauth2-login",
                store.path().display(),
                crate::imap::error::quote(&saved.client_id),
                crate::imap::error::quote(&saved.token_endpoint),
                crate::imap::error::quote(&provider.client_id),
                crate::imap::error::quote(&provider.token_endpoint),
            )));
        }
        let client = Client::new(settings)?;
        Ok(TokenSource {
            client,
            store,
            state: Mutex::new(State { refresh: saved.refresh, access: None, warning: None }),
        })
    }

    /// The token endpoint's port, for the sandbox.
    pub fn port(&self) -> u16 {
        self.client.token_port()
    }

    /// The token file's directory, which rotated refresh tokens are written in.
    pub fn dir(&self) -> PathBuf {
        crate::archive::files::atomic::parent_of(self.store.path()).to_path_buf()
    }

    /// An access token for a login: the one in hand while it is fresh, unless the server
    /// just refused it; else a new one.
    pub fn token(&self, ask: Ask) -> Result<Secret> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if ask == Ask::Login {
            if let Some(a) = state.access.as_ref().filter(|a| a.fresh(Instant::now())) {
                return Ok(a.token.clone());
            }
        }
        let asked = Instant::now();
        let tokens = match self.client.refresh(&state.refresh)? {
            Ok(t) => t,
            Err(refusal) => return Err(self.refused(&refusal)),
        };
        let Tokens { access, refresh, lifetime } = tokens;
        if let Some(new) = refresh.filter(|r| r != &state.refresh) {
            let saved = Saved {
                client_id: self.client.provider.client_id.clone(),
                token_endpoint: self.client.token_endpoint().into(),
                refresh: new,
            };
            if let Err(e) = self.store.save(&saved) {
                state.warning = Some(format!("{e}; the next run may need --oauth2-login again"));
            }
            state.refresh = saved.refresh;
        }
        state.access = Some(Access { token: access.clone(), until: asked + lifetime, lifetime });
        Ok(access)
    }

    /// A refusal of the refresh token as the one line the user needs.
    fn refused(&self, refusal: &Refusal) -> Error {
        let file = self.store.path().display();
        if refusal.error == "invalid_grant" {
            Error::runtime(format!(
                "the OAuth2 refresh token in {file} was refused ({refusal}): it was revoked or has expired; sign in again with --oauth2-login"
            ))
        } else {
            Error::runtime(format!(
                "{} refused to renew the OAuth2 token ({refusal}): check the client id and secret, or sign in again with --oauth2-login",
                self.client.token_endpoint()
            ))
        }
    }

    /// What went wrong saving a rotated refresh token, once.
    pub fn take_warning(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).warning.take()
    }

    /// The session's way to renew: asked before every login (cheap while the token is
    /// fresh) and again when the server refuses one.
    pub fn renewal(self: &Arc<Self>) -> Renewal {
        let me = Arc::clone(self);
        Renewal { on_reconnect: true, every_login: true, fetch: Arc::new(move |ask| me.token(ask)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_means_more_than_a_quarter_or_five_minutes_left() {
        let now = Instant::now();
        let a = |left: u64, lifetime: u64| Access {
            token: Secret::new("t".into()),
            until: now + Duration::from_secs(left),
            lifetime: Duration::from_secs(lifetime),
        };
        assert!(a(3600, 3600).fresh(now));
        assert!(a(301, 3600).fresh(now));
        assert!(!a(300, 3600).fresh(now));
        assert!(a(3, 8).fresh(now));
        assert!(!a(2, 8).fresh(now));
        assert!(!a(0, 8).fresh(now));
    }
}
