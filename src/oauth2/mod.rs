//! OAuth 2.0 built in: a one-time `--oauth2-login` that works on a box without a browser,
//! then unattended runs that renew their access tokens themselves.
//!
//! - [`provider`]: who issues the tokens (Google and Microsoft presets, or any provider by
//!   its endpoints) and an account's settings.
//! - [`http`]: the bounded HTTPS client that talks to the endpoints.
//! - [`grant`]: token requests and their answers.
//! - [`device`]: the device authorization grant (RFC 8628): a code to enter on any device.
//! - [`pkce`]: the authorization code grant with PKCE (RFC 7636) and a loopback redirect
//!   (RFC 8252), or the final address pasted from a browser elsewhere.
//! - [`store`]: the refresh token's file (mode 0600, written atomically, optionally sealed
//!   with the archive's key).
//! - [`source`]: a run's access tokens, renewed before they expire and when refused.
//! - [`login`]: `--oauth2-login` for one account.

pub mod device;
pub mod grant;
pub mod http;
pub mod login;
pub mod pkce;
pub mod provider;
pub mod source;
pub mod store;

pub use provider::{Flow, Provider, Settings};
pub use source::TokenSource;
