//! Who issues the tokens and how to ask: Google's and Microsoft's endpoints built in, any
//! other provider by its endpoints; and an account's OAuth 2.0 settings, from the config
//! file's `"oauth2"` object or from the `--oauth2*` flags.
//!
//! There is no client id built in: an application that signs users in to Gmail or Microsoft
//! 365 must be registered with them, and the ids other programs registered (Thunderbird's,
//! say) are theirs. Each user registers their own (README, "Gmail and Microsoft 365").

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// How the user signs in once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Device authorization grant (RFC 8628): a code entered in a browser on any device.
    Device,
    /// Authorization code with PKCE: a browser on this machine (loopback redirect), or the
    /// final address pasted from a browser elsewhere.
    Browser,
}

impl Flow {
    fn parse(text: &str) -> Option<Flow> {
        match text {
            "device" => Some(Flow::Device),
            "browser" => Some(Flow::Browser),
            _ => None,
        }
    }
}

/// A provider's endpoints and the client registered with it.
#[derive(Clone, Debug)]
pub struct Provider {
    /// `google`, `microsoft` or `custom`, for messages.
    pub name: String,
    /// Where the browser signs in (authorization code flow).
    pub authorization_endpoint: Option<String>,
    /// Where tokens are issued.
    pub token_endpoint: String,
    /// Where a device code is asked for (device flow).
    pub device_endpoint: Option<String>,
    /// The registered application's id.
    pub client_id: String,
    /// Its secret, where the provider wants one (Google's "Desktop app" clients).
    pub client_secret: Option<Secret>,
    /// The scopes asked for, space-separated.
    pub scope: String,
    /// The host of the loopback redirect: `127.0.0.1`, or `localhost` where the provider
    /// registers that (Microsoft).
    pub redirect_host: String,
    /// More parameters of the authorization request (Google: `access_type=offline`).
    pub authorize_params: Vec<(String, String)>,
    /// Send the scope with refresh requests too (Microsoft wants it).
    pub scope_on_refresh: bool,
}

/// Google: authorization code with PKCE; its device flow does not allow Gmail's scope.
const GOOGLE_AUTHORIZE: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const GOOGLE_TOKEN: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_SCOPE: &str = "https://mail.google.com/";
/// Microsoft identity platform (v2.0 endpoints); `{tenant}` is the tenant.
const MICROSOFT_BASE: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/";
const MICROSOFT_SCOPE: &str = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access";

/// An account's OAuth 2.0 settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The provider and client.
    pub provider: Provider,
    /// How `--oauth2-login` signs in.
    pub flow: Flow,
    /// Where the refresh token is kept; by default in the archive root (see
    /// [`Settings::token_path`]).
    pub token_file: Option<PathBuf>,
    /// Seal the refresh token with the archive's key.
    pub seal: bool,
    /// More certificates to trust for the endpoints (a provider of one's own, tests).
    pub ca_file: Option<PathBuf>,
    /// The loopback redirect's port (0: any free one).
    pub redirect_port: u16,
}

impl Settings {
    /// The refresh token's file: the one configured, else
    /// `ROOT/.smailarchiver/oauth2/USER@HOST-PORT.token`, every character outside
    /// `[A-Za-z0-9._@+-]` of the name made `_`.
    pub fn token_path(&self, root: &Path, user: &str, host: &str, port: u16) -> PathBuf {
        if let Some(p) = &self.token_file {
            return p.clone();
        }
        let name: String = format!("{user}@{host}-{port}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "._@+-".contains(c) { c } else { '_' })
            .collect();
        let name = if name.starts_with('.') { format!("_{name}") } else { name };
        root.join(crate::archive::layout::META_DIR).join("oauth2").join(format!("{name}.token"))
    }
}

/// What the config or the flags gave, before it is checked.
#[derive(Debug, Default)]
pub struct Given {
    /// `google`, `microsoft` or `custom`.
    pub provider: Option<String>,
    /// Microsoft's tenant (default `common`).
    pub tenant: Option<String>,
    /// The registered application's id ([`Provider::client_id`]).
    pub client_id: Option<String>,
    /// Its secret ([`Provider::client_secret`]).
    pub client_secret: Option<Secret>,
    /// A file whose first line is the secret.
    pub client_secret_file: Option<PathBuf>,
    /// Where the browser signs in ([`Provider::authorization_endpoint`]).
    pub authorization_endpoint: Option<String>,
    /// Where tokens are issued ([`Provider::token_endpoint`]).
    pub token_endpoint: Option<String>,
    /// Where a device code is asked for ([`Provider::device_endpoint`]).
    pub device_endpoint: Option<String>,
    /// The scopes to ask for, space-separated ([`Provider::scope`]).
    pub scope: Option<String>,
    /// `device` or `browser` ([`Settings::flow`]).
    pub flow: Option<String>,
    /// Where the refresh token is kept ([`Settings::token_file`]).
    pub token_file: Option<PathBuf>,
    /// Seal the refresh token with the archive's key ([`Settings::seal`]).
    pub seal: bool,
    /// More certificates to trust for the endpoints ([`Settings::ca_file`]).
    pub ca_file: Option<PathBuf>,
    /// The loopback redirect's port ([`Settings::redirect_port`]).
    pub redirect_port: Option<u16>,
}

/// The keys of the config's `"oauth2"` object.
pub const CONFIG_KEYS: &[&str] = &[
    "provider",
    "tenant",
    "client_id",
    "client_secret",
    "client_secret_file",
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
    "scope",
    "flow",
    "token_file",
    "seal",
    "ca_file",
    "redirect_port",
];

impl Given {
    /// Reads the config's `"oauth2"` object; `truthy` is the config's notion of true.
    pub fn from_config(value: &Value, truthy: fn(&Value) -> bool) -> Result<Given> {
        let obj = value.as_object().ok_or_else(|| Error::usage("\"oauth2\" must be an object"))?;
        if let Some(k) = obj.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
            return Err(Error::usage(format!("\"oauth2\": unknown key \"{k}\" (known: {})", CONFIG_KEYS.join(", "))));
        }
        let text = |key: &str| -> Result<Option<String>> {
            obj.get(key)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::usage(format!("\"oauth2\": \"{key}\" must be a string")))
                })
                .transpose()
        };
        let port = match obj.get("redirect_port") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| Error::usage("\"oauth2\": \"redirect_port\" must be a number from 0 to 65535"))?,
            ),
        };
        Ok(Given {
            provider: text("provider")?,
            tenant: text("tenant")?,
            client_id: text("client_id")?,
            client_secret: text("client_secret")?.map(Secret::new),
            client_secret_file: text("client_secret_file")?.map(PathBuf::from),
            authorization_endpoint: text("authorization_endpoint")?,
            token_endpoint: text("token_endpoint")?,
            device_endpoint: text("device_authorization_endpoint")?,
            scope: text("scope")?,
            flow: text("flow")?,
            token_file: text("token_file")?.map(PathBuf::from),
            seal: obj.get("seal").is_some_and(truthy),
            ca_file: text("ca_file")?.map(PathBuf::from),
            redirect_port: port,
        })
    }

    /// Checks what was given and fills in the provider's defaults; `name` turns a config
    /// key into what the user typed (`"oauth2"."client_id"`, `--oauth2-client-id`).
    pub fn settings(self, name: &dyn Fn(&str) -> String) -> Result<Settings> {
        let bad = |key: &str, why: &str| Error::usage(format!("{}: {why}", name(key)));
        let kind = self.provider.as_deref().unwrap_or("custom");
        let client_id = self.client_id.filter(|c| !c.is_empty()).ok_or_else(|| {
            bad("client_id", "missing: register an application with the provider and give its client id (README, \"Gmail and Microsoft 365\")")
        })?;
        let client_secret = match (self.client_secret, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(bad("client_secret_file", "give the client secret or its file, not both"))
            }
            (Some(s), None) => Some(s),
            (None, Some(path)) => Some(read_secret_file(path).map_err(|e| e.context(name("client_secret_file")))?),
            (None, None) => None,
        };
        let tenant = self.tenant.unwrap_or_else(|| "common".to_string());
        if kind != "microsoft" && self.provider.is_some() && tenant != "common" {
            return Err(bad("tenant", "only Microsoft has tenants"));
        }
        if tenant.is_empty() || !tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err(bad(
                "tenant",
                "not a tenant name or id (common, organizations, consumers, or the directory id)",
            ));
        }
        let ms = |end: &str| format!("{}{end}", MICROSOFT_BASE.replace("{tenant}", &tenant));
        let (mut provider, default_flow) = match kind {
            "google" => (
                Provider {
                    name: "google".into(),
                    authorization_endpoint: Some(GOOGLE_AUTHORIZE.into()),
                    token_endpoint: GOOGLE_TOKEN.into(),
                    device_endpoint: None,
                    client_id,
                    client_secret,
                    scope: GOOGLE_SCOPE.into(),
                    redirect_host: "127.0.0.1".into(),
                    // A refresh token every time, not only at the first consent.
                    authorize_params: vec![
                        ("access_type".into(), "offline".into()),
                        ("prompt".into(), "consent".into()),
                    ],
                    scope_on_refresh: false,
                },
                Flow::Browser,
            ),
            "microsoft" => (
                Provider {
                    name: "microsoft".into(),
                    authorization_endpoint: Some(ms("authorize")),
                    token_endpoint: ms("token"),
                    device_endpoint: Some(ms("devicecode")),
                    client_id,
                    client_secret,
                    scope: MICROSOFT_SCOPE.into(),
                    redirect_host: "localhost".into(),
                    authorize_params: Vec::new(),
                    scope_on_refresh: true,
                },
                Flow::Device,
            ),
            "custom" => {
                let token = self
                    .token_endpoint
                    .clone()
                    .ok_or_else(|| bad("token_endpoint", "missing (a custom provider is given by its endpoints)"))?;
                let scope = self.scope.clone().ok_or_else(|| {
                    bad("scope", "missing (a custom provider needs the scope that grants IMAP access)")
                })?;
                let flow = if self.device_endpoint.is_some() { Flow::Device } else { Flow::Browser };
                (
                    Provider {
                        name: "custom".into(),
                        authorization_endpoint: None,
                        token_endpoint: token,
                        device_endpoint: None,
                        client_id,
                        client_secret,
                        scope,
                        redirect_host: "127.0.0.1".into(),
                        authorize_params: Vec::new(),
                        scope_on_refresh: false,
                    },
                    flow,
                )
            }
            other => return Err(bad("provider", &format!("{other:?} is not one of google, microsoft, custom"))),
        };
        if let Some(e) = self.authorization_endpoint {
            provider.authorization_endpoint = Some(e);
        }
        if let Some(e) = self.token_endpoint {
            provider.token_endpoint = e;
        }
        if let Some(e) = self.device_endpoint {
            provider.device_endpoint = Some(e);
        }
        if let Some(s) = self.scope {
            provider.scope = s;
        }
        for (key, url) in [
            ("authorization_endpoint", provider.authorization_endpoint.as_deref()),
            ("token_endpoint", Some(provider.token_endpoint.as_str())),
            ("device_authorization_endpoint", provider.device_endpoint.as_deref()),
        ] {
            if let Some(u) = url {
                super::http::Url::parse(u).map_err(|e| bad(key, &e))?;
            }
        }
        if provider.scope.trim().is_empty() {
            return Err(bad("scope", "empty"));
        }
        let flow = match self.flow.as_deref() {
            None => default_flow,
            Some(f) => Flow::parse(f).ok_or_else(|| bad("flow", &format!("{f:?} is not one of device, browser")))?,
        };
        match flow {
            Flow::Device if kind == "google" => {
                return Err(bad("flow", "Google does not allow the device flow for Gmail's scope: use browser"))
            }
            Flow::Device if provider.device_endpoint.is_none() => {
                return Err(bad("device_authorization_endpoint", "missing (the device flow needs it)"))
            }
            Flow::Browser if provider.authorization_endpoint.is_none() => {
                return Err(bad("authorization_endpoint", "missing (the browser flow needs it)"))
            }
            _ => {}
        }
        if kind == "google" && provider.client_secret.is_none() {
            return Err(bad(
                "client_secret",
                "missing: Google's token endpoint wants the secret of your \"Desktop app\" client too",
            ));
        }
        if let Some(ca) = &self.ca_file {
            crate::imap::tls::read_pem_certificates(ca)
                .map_err(|e| e.context(format!("{} {}", name("ca_file"), ca.display())))?;
        }
        Ok(Settings {
            provider,
            flow,
            token_file: self.token_file,
            seal: self.seal,
            ca_file: self.ca_file,
            redirect_port: self.redirect_port.unwrap_or(0),
        })
    }
}

/// The first line of a file holding a secret (a client secret).
fn read_secret_file(path: &Path) -> Result<Secret> {
    let bytes = crate::bounded::read_file(path, crate::bounded::SECRET)
        .map_err(|e| Error::usage(format!("{}: {}", path.display(), crate::error::describe_io(&e))))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::usage(format!("{}: not text", path.display())))?;
    let line = text.lines().next().unwrap_or_default().trim().to_string();
    if line.is_empty() {
        return Err(Error::usage(format!("{}: empty", path.display())));
    }
    Ok(Secret::new(line))
}

/// The `"oauth2"` object of a config entry, if it has one: the account's settings.
pub fn from_config_entry(entry: &Map<String, Value>, truthy: fn(&Value) -> bool) -> Result<Option<Settings>> {
    let Some(value) = entry.get("oauth2") else { return Ok(None) };
    let given = Given::from_config(value, truthy)?;
    given.settings(&|key| format!("\"oauth2\" \"{key}\"")).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: Value) -> Result<Settings> {
        let truthy = |v: &Value| v.as_bool().unwrap_or(false);
        from_config_entry(json!({ "oauth2": v }).as_object().unwrap(), truthy).map(Option::unwrap)
    }

    #[test]
    fn presets_and_overrides() {
        let s = settings(json!({"provider": "microsoft", "client_id": "abc", "tenant": "contoso.onmicrosoft.com"}))
            .unwrap();
        assert_eq!(s.flow, Flow::Device);
        assert_eq!(
            s.provider.token_endpoint,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(s.provider.scope, "https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
        assert!(s.provider.client_secret.is_none() && s.provider.scope_on_refresh);
        let s = settings(json!({"provider": "microsoft", "client_id": "abc", "flow": "browser",
            "token_endpoint": "https://127.0.0.1:8443/token"}))
        .unwrap();
        assert_eq!((s.flow, s.provider.token_endpoint.as_str()), (Flow::Browser, "https://127.0.0.1:8443/token"));
        let s =
            settings(json!({"provider": "google", "client_id": "x.apps.googleusercontent.com", "client_secret": "s"}))
                .unwrap();
        assert_eq!((s.flow, s.provider.scope.as_str()), (Flow::Browser, "https://mail.google.com/"));
        assert!(s.provider.authorize_params.iter().any(|(k, v)| k == "access_type" && v == "offline"));
        let s = settings(json!({"client_id": "c", "token_endpoint": "https://t.example/token",
            "device_authorization_endpoint": "https://t.example/device", "scope": "imap", "seal": true}))
        .unwrap();
        assert_eq!((s.flow, s.seal, s.provider.name.as_str()), (Flow::Device, true, "custom"));
    }

    #[test]
    fn mistakes_are_named() {
        for (v, want) in [
            (json!({"provider": "google", "client_id": "x"}), "\"oauth2\" \"client_secret\": missing"),
            (json!({"provider": "google", "client_id": "x", "client_secret": "s", "flow": "device"}), "device flow"),
            (json!({"provider": "microsoft"}), "\"oauth2\" \"client_id\": missing"),
            (json!({"provider": "yahoo", "client_id": "x"}), "is not one of google, microsoft, custom"),
            (json!({"provider": "microsoft", "client_id": "x", "tenant": "a/b"}), "not a tenant"),
            (json!({"client_id": "x", "scope": "s"}), "\"token_endpoint\": missing"),
            (
                json!({"client_id": "x", "scope": "s", "token_endpoint": "https://t/x"}),
                "\"authorization_endpoint\": missing",
            ),
            (
                json!({"provider": "microsoft", "client_id": "x", "token_endpoint": "http://t/x"}),
                "not an https:// address",
            ),
            (json!({"provider": "microsoft", "client_id": "x", "flow": "magic"}), "not one of device, browser"),
            (json!({"provider": "microsoft", "client_id": "x", "client_ide": "y"}), "unknown key \"client_ide\""),
            (json!({"provider": "microsoft", "client_id": 3}), "must be a string"),
        ] {
            let e = settings(v.clone()).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn default_token_file_is_in_the_archive_root() {
        let s = settings(json!({"provider": "microsoft", "client_id": "abc"})).unwrap();
        let p = s.token_path(Path::new("/arch"), "ann/../x@contoso.com", "outlook.office365.com", 993);
        assert_eq!(p, Path::new("/arch/.smailarchiver/oauth2/ann_.._x@contoso.com@outlook.office365.com-993.token"));
        assert_eq!(
            s.token_path(Path::new("/a"), ".hidden", "h", 1),
            Path::new("/a/.smailarchiver/oauth2/_.hidden@h-1.token")
        );
    }
}
