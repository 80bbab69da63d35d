//! The device authorization grant (RFC 8628): the provider hands out a short code, the
//! user enters it at the provider's address in a browser on any device (a phone will do),
//! and meanwhile the tool asks the token endpoint every few seconds whether it is done.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::grant::{self, Client, Tokens};
use super::http::Endpoint;
use crate::error::{Error, Result};
use crate::imap::error::quote;

/// Polling interval when the provider names none (RFC 8628, 3.2).
const DEFAULT_INTERVAL: u64 = 5;
/// What `slow_down` adds to the interval (RFC 8628, 3.5).
const SLOW_DOWN: u64 = 5;
/// Longest interval accepted from a provider.
const MAX_INTERVAL: u64 = 60;
/// Longest wait for the user, whatever the provider says.
const MAX_WAIT: u64 = 30 * 60;

/// What the user is to do.
#[derive(Clone, Debug)]
pub struct Prompt {
    /// Where to go.
    pub verification_uri: String,
    /// The code to enter there.
    pub user_code: String,
    /// How long the code is good for.
    pub expires_in: Duration,
}

/// Asks for a device code, shows it with `show`, and waits until the user signed in (or
/// refused, or the code expired).
pub fn sign_in(client: &Client, show: &mut dyn FnMut(&Prompt)) -> Result<Tokens> {
    let endpoint_text = client
        .provider
        .device_endpoint
        .clone()
        .ok_or_else(|| Error::usage("the device flow needs the provider's device authorization endpoint"))?;
    let endpoint = Endpoint::resolve(&endpoint_text, "the device authorization endpoint")?;
    let answer = client.post(&endpoint, &[("scope", &client.provider.scope)])?;
    if answer.status != 200 {
        return Err(match grant::refusal_of(&answer) {
            Some(r) => Error::runtime(format!("{endpoint_text} refused to start a sign-in ({r})")),
            None => Error::runtime(format!("{endpoint_text}: HTTP {}", answer.status)),
        });
    }
    let Some(mut json) = answer.json else {
        return Err(Error::runtime(format!("{endpoint_text}: the answer is not a JSON object")));
    };
    let text = |json: &serde_json::Map<String, Value>, k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
    // Google's answer said verification_url.
    let (Some(user_code), Some(verification_uri)) =
        (text(&json, "user_code"), text(&json, "verification_uri").or_else(|| text(&json, "verification_url")))
    else {
        return Err(Error::runtime(format!("{endpoint_text}: the answer has no user_code or verification_uri")));
    };
    let device_code = grant::take_secret(&mut json, "device_code")
        .ok_or_else(|| Error::runtime(format!("{endpoint_text}: the answer has no device_code")))?;
    let expires_in = grant::seconds(&json, "expires_in").unwrap_or(900).min(MAX_WAIT);
    let mut interval = grant::seconds(&json, "interval").unwrap_or(DEFAULT_INTERVAL).min(MAX_INTERVAL);
    show(&Prompt {
        verification_uri: quote(&verification_uri),
        user_code: quote(&user_code),
        expires_in: Duration::from_secs(expires_in),
    });
    let deadline = Instant::now() + Duration::from_secs(expires_in);
    loop {
        wait(Duration::from_secs(interval), deadline)?;
        let fields =
            [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code.expose())];
        match client.token_request(&fields)? {
            Ok(tokens) => return Ok(tokens),
            Err(r) if r.error == "authorization_pending" => {}
            Err(r) if r.error == "slow_down" => interval = (interval + SLOW_DOWN).min(MAX_INTERVAL),
            Err(r) if r.error == "access_denied" => {
                return Err(Error::runtime(format!("the sign-in was declined ({r})")))
            }
            Err(r) if r.error == "expired_token" => {
                return Err(Error::runtime(format!(
                    "the code expired before the sign-in was done ({r}): run --oauth2-login again"
                )))
            }
            Err(r) => return Err(Error::runtime(format!("{} refused the sign-in ({r})", client.token_endpoint()))),
        }
    }
}

/// Sleeps `pause`, listening for Ctrl-C; an error once `deadline` has passed.
fn wait(pause: Duration, deadline: Instant) -> Result<()> {
    let until = Instant::now() + pause;
    while Instant::now() < until {
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        std::thread::sleep(crate::interrupt::TICK.min(until.saturating_duration_since(Instant::now())));
    }
    if Instant::now() > deadline {
        return Err(Error::runtime("the code expired before the sign-in was done: run --oauth2-login again"));
    }
    Ok(())
}
