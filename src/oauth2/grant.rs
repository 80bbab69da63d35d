//! Token requests (RFC 6749, section 4 and 6) and their answers: the tokens, or the
//! provider's refusal with its error code, which the flows act on (`authorization_pending`,
//! `slow_down`, `invalid_grant`).

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::http::{self, Answer, Endpoint};
use super::provider::{Provider, Settings};
use crate::error::{Error, Result};
use crate::imap::error::quote;
use crate::imap::tls::{Names, Trust};
use crate::secret::Secret;

/// The lifetime assumed for an access token whose answer does not say (RFC 6749 only
/// recommends `expires_in`): the hour Google and Microsoft give.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// What a token request gave.
#[derive(Debug)]
pub struct Tokens {
    /// The access token, for IMAP.
    pub access: Secret,
    /// A refresh token, when the provider gave one (a new one replaces the old).
    pub refresh: Option<Secret>,
    /// How long the access token lasts from now.
    pub lifetime: Duration,
}

/// A provider's "no" (RFC 6749, 5.2): its error code and description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// `error`: `invalid_grant`, `authorization_pending`, ...
    pub error: String,
    /// `error_description`, if any.
    pub description: Option<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            // Microsoft's descriptions end in trace and correlation ids, over lines.
            Some(d) => write!(f, "{}: {}", quote(&self.error), quote(d.lines().next().unwrap_or_default())),
            None => f.write_str(&quote(&self.error)),
        }
    }
}

/// A provider, its endpoints resolved and its certificates trusted.
#[derive(Debug)]
pub struct Client {
    /// The provider and client.
    pub provider: Provider,
    trust: Trust,
    token: Endpoint,
}

/// How the OAuth 2.0 CA file is named in errors.
const CA_NAMES: Names = Names { ca_file: "\"oauth2\" \"ca_file\"", pin: "-" };

impl Client {
    /// Reads the trust settings and resolves the token endpoint: call it before the
    /// process confines itself.
    pub fn new(settings: &Settings) -> Result<Client> {
        let trust = Trust::load_as(settings.ca_file.as_deref(), None, &CA_NAMES)?;
        let token = Endpoint::resolve(&settings.provider.token_endpoint, "the token endpoint")?;
        Ok(Client { provider: settings.provider.clone(), trust, token })
    }

    /// The token endpoint's port, for the sandbox's rules.
    pub fn token_port(&self) -> u16 {
        self.token.url.port
    }

    /// The token endpoint as configured, for messages.
    pub fn token_endpoint(&self) -> &str {
        &self.token.text
    }

    /// POSTs `fields` (and the client's id and secret) to `endpoint`.
    pub fn post(&self, endpoint: &Endpoint, fields: &[(&str, &str)]) -> Result<Answer> {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("client_id", &self.provider.client_id));
        if let Some(s) = &self.provider.client_secret {
            all.push(("client_secret", s.expose()));
        }
        http::post_form(endpoint, &self.trust, &http::form(&all))
    }

    /// Asks the token endpoint; `Ok(Err(_))` is the provider's refusal.
    pub fn token_request(&self, fields: &[(&str, &str)]) -> Result<std::result::Result<Tokens, Refusal>> {
        let answer = self.post(&self.token, fields)?;
        tokens_of(answer, &self.token.text)
    }

    /// A fresh access token for `refresh` (RFC 6749, 6).
    pub fn refresh(&self, refresh: &Secret) -> Result<std::result::Result<Tokens, Refusal>> {
        let mut fields = vec![("grant_type", "refresh_token"), ("refresh_token", refresh.expose())];
        if self.provider.scope_on_refresh {
            fields.push(("scope", &self.provider.scope));
        }
        self.token_request(&fields)
    }
}

/// The refusal in an error answer, if it is one (4xx with an `error`).
pub fn refusal_of(answer: &Answer) -> Option<Refusal> {
    let json = answer.json.as_ref()?;
    let error = json.get("error")?.as_str()?.to_string();
    let description = json.get("error_description").and_then(Value::as_str).map(str::to_string);
    Some(Refusal { status: answer.status, error, description })
}

/// The tokens of a token endpoint's answer, or its refusal; anything else is an error.
pub fn tokens_of(answer: Answer, endpoint: &str) -> Result<std::result::Result<Tokens, Refusal>> {
    if answer.status != 200 {
        return match refusal_of(&answer) {
            Some(r) if (400..500).contains(&answer.status) => Ok(Err(r)),
            Some(r) => Err(Error::runtime(format!("{endpoint}: HTTP {}: {r}", answer.status))),
            None => Err(Error::runtime(format!("{endpoint}: HTTP {} without an OAuth error", answer.status))),
        };
    }
    let Some(mut json) = answer.json else {
        return Err(Error::runtime(format!("{endpoint}: the answer is not a JSON object")));
    };
    let kind = json.get("token_type").and_then(Value::as_str).unwrap_or("Bearer");
    if !kind.eq_ignore_ascii_case("bearer") {
        return Err(Error::runtime(format!("{endpoint}: a token of type {} (not Bearer)", quote(kind))));
    }
    let access = take_secret(&mut json, "access_token")
        .ok_or_else(|| Error::runtime(format!("{endpoint}: the answer has no access_token")))?;
    let refresh = take_secret(&mut json, "refresh_token");
    let lifetime = seconds(&json, "expires_in").map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok(Ok(Tokens { access, refresh, lifetime }))
}

/// Moves a string out of `json` into a [`Secret`] (no copy is left behind); an empty or
/// multi-line one counts as absent.
pub fn take_secret(json: &mut Map<String, Value>, key: &str) -> Option<Secret> {
    match json.remove(key) {
        Some(Value::String(s)) if !s.is_empty() && !s.contains(['\r', '\n', '\0']) => Some(Secret::new(s)),
        _ => None,
    }
}

/// A number of seconds, as a JSON number or a string of digits (both are met).
pub fn seconds(json: &Map<String, Value>, key: &str) -> Option<u64> {
    match json.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, v: Value) -> Answer {
        Answer { status, json: v.as_object().cloned() }
    }

    #[test]
    fn answers() {
        let t = tokens_of(
            answer(
                200,
                json!({"access_token": "a1", "expires_in": "3599", "refresh_token": "r1",
            "token_type": "bearer"}),
            ),
            "e",
        )
        .unwrap()
        .unwrap();
        assert_eq!((t.access.expose(), t.refresh.unwrap().expose(), t.lifetime.as_secs()), ("a1", "r1", 3599));
        let t = tokens_of(answer(200, json!({"access_token": "a2"})), "e").unwrap().unwrap();
        assert_eq!((t.refresh.is_none(), t.lifetime), (true, DEFAULT_LIFETIME));
        let r = tokens_of(
            answer(
                400,
                json!({"error": "invalid_grant", "error_description":
            "AADSTS70000: The refresh token has expired.\r\nTrace ID: 1"}),
            ),
            "e",
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(r.to_string(), "invalid_grant: AADSTS70000: The refresh token has expired.");
        assert!(tokens_of(answer(500, json!({"error": "x"})), "e").unwrap_err().to_string().contains("HTTP 500"));
        assert!(tokens_of(Answer { status: 502, json: None }, "e").is_err());
        assert!(tokens_of(answer(200, json!({"token_type": "Bearer"})), "e").is_err());
        assert!(tokens_of(answer(200, json!({"access_token": "a", "token_type": "mac"})), "e").is_err());
        assert!(tokens_of(answer(200, json!({"access_token": "a\r\nb"})), "e").is_err());
    }
}
