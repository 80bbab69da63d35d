//! The JSON configuration (`-c FILE`): the original's schema exactly, plus optional keys
//! for the new settings. Booleans follow Python truthiness, as the original read them.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::account::{buffer_size, Account, Folders, MAX_BUFFER, MAX_CONNECTIONS, MIN_BUFFER};
use crate::bounded;
use crate::codec::Form;
use crate::error::{Error, Result};
use crate::keys::{KeySpec, PasswordSpec};
use crate::nearest::edits;
use crate::secret::Secret;

/// Keys an account entry may have.
const ACCOUNT_KEYS: &[&str] = &[
    "user",
    "imap",
    "passwd",
    "folder",
    "encrypt",
    "keys",
    "promp",
    "compress",
    "port",
    "starttls",
    "ca_file",
    "pin_sha256",
    "passwd_cmd",
    "oauth2_token_cmd",
    "oauth2",
    "all_folders",
    "exclude",
    "archive_dir",
    "key_password_cmd",
    "key_password_file",
    "compress_level",
    "buffer_size",
    "timeout",
    "connections",
    "since",
    "pipelining",
    "gmail_mode",
    "prune_older_than",
    "prune_keep_flagged",
];
/// Keys the top level may have.
const TOP_KEYS: &[&str] = &["list", "verbose", "quiet", "archive_dir", "sandbox", "report"];

/// A parsed configuration file.
#[derive(Debug)]
pub struct Config {
    /// The accounts, in file order.
    pub accounts: Vec<Account>,
    /// `"verbose"`.
    pub verbose: bool,
    /// `"quiet"`.
    pub quiet: bool,
    /// `"sandbox"`: auto, require or off.
    pub sandbox: Option<String>,
    /// `"report"`: the file `--report` names.
    pub report: Option<PathBuf>,
    /// Unknown keys, for one warning.
    pub unknown: Vec<String>,
}

/// Python's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Reads and checks a configuration file; `default_root` is `--dir` or the current directory.
pub fn load(path: &Path, default_root: &Path) -> Result<Config> {
    let text = bounded::read_file(path, bounded::CONFIG_FILE).map_err(|e| {
        let why = crate::error::describe_io(&e);
        let hint = if bounded::is_too_large(&e) { ", not a configuration file" } else { "" };
        Error::usage(format!("config {}: {why}{hint}", path.display()))
    })?;
    parse(&text, default_root).map_err(|e| Error::usage(format!("config {}: {}", path.display(), e.message())))
}

/// Parses configuration text.
pub fn parse(text: &[u8], default_root: &Path) -> Result<Config> {
    let top: Value = serde_json::from_slice(text).map_err(|e| Error::usage(format!("not valid JSON ({e})")))?;
    let top = top.as_object().ok_or_else(|| Error::usage("the top level must be a JSON object"))?;
    let mut unknown: Vec<String> =
        top.keys().filter(|k| !TOP_KEYS.contains(&k.as_str())).map(|k| noted(k, TOP_KEYS)).collect();
    let root = match top.get("archive_dir") {
        Some(v) => PathBuf::from(string(v, "archive_dir")?),
        None => default_root.to_path_buf(),
    };
    let list = top.get("list").ok_or_else(|| missing(top, "list", TOP_KEYS))?;
    let list = list.as_array().ok_or_else(|| Error::usage("\"list\" must be a list of accounts"))?;
    if list.len() > bounded::ACCOUNTS {
        return Err(Error::usage(format!(
            "\"list\" holds {} accounts, more than the limit of {}",
            list.len(),
            bounded::ACCOUNTS
        )));
    }
    let mut accounts = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let obj = entry.as_object().ok_or_else(|| Error::usage(format!("account {} is not an object", i + 1)))?;
        let label =
            obj.get("user").and_then(Value::as_str).map_or(format!("account {}", i + 1), |u| format!("account {u}"));
        unknown.extend(
            obj.keys()
                .filter(|k| !ACCOUNT_KEYS.contains(&k.as_str()))
                .map(|k| format!("{label}: {}", noted(k, ACCOUNT_KEYS))),
        );
        accounts.push(account(obj, &root).map_err(|e| Error::usage(format!("{label}: {}", e.message())))?);
    }
    if accounts.is_empty() {
        return Err(Error::usage("\"list\" holds no account"));
    }
    Ok(Config {
        accounts,
        verbose: top.get("verbose").is_some_and(truthy),
        quiet: top.get("quiet").is_some_and(truthy),
        sandbox: top.get("sandbox").map(|v| string(v, "sandbox")).transpose()?,
        report: top.get("report").map(|v| string(v, "report")).transpose()?.map(PathBuf::from),
        unknown,
    })
}

/// The known key an unknown one is a slip of (`"folders"` for `"folder"`): within two
/// edits, and fewer than half its letters.
fn near_miss(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edits(key, k), *k))
        .filter(|&(d, _)| d <= 2 && 2 * d < key.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// The error for the required key `key` missing from `obj`: a slip of it in `obj`
/// explains it better than its absence.
fn missing(obj: &Map<String, Value>, key: &str, known: &[&'static str]) -> Error {
    match obj.keys().find(|u| !known.contains(&u.as_str()) && near_miss(u, known) == Some(key)) {
        Some(u) => Error::usage(format!("unknown key \"{u}\" (did you mean \"{key}\"?)")),
        None => Error::usage(format!("missing key \"{key}\"")),
    }
}

/// An unknown key for the warning, with the known key it may be a slip of.
fn noted(key: &str, known: &[&'static str]) -> String {
    match near_miss(key, known) {
        Some(k) => format!("{key} (did you mean \"{k}\"?)"),
        None => key.to_string(),
    }
}

fn string(v: &Value, key: &str) -> Result<String> {
    v.as_str().map(str::to_string).ok_or_else(|| Error::usage(format!("\"{key}\" must be a string")))
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items.iter().map(|i| string(i, key)).collect(),
        _ => Err(Error::usage(format!("\"{key}\" must be a string or a list of strings"))),
    }
}

fn number(v: &Value, key: &str, range: RangeInclusive<u64>) -> Result<u64> {
    v.as_u64()
        .filter(|n| range.contains(n))
        .ok_or_else(|| Error::usage(format!("\"{key}\" must be a number from {} to {}", range.start(), range.end())))
}

fn account(obj: &Map<String, Value>, root: &Path) -> Result<Account> {
    let get = |k: &str| obj.get(k);
    let required = |k: &str| get(k).ok_or_else(|| missing(obj, k, ACCOUNT_KEYS));
    let flag = |k: &str| get(k).is_some_and(truthy);
    let has_login_source = get("passwd_cmd").is_some() || get("oauth2_token_cmd").is_some() || get("oauth2").is_some();
    if get("oauth2").is_some() {
        if let Some(other) = ["passwd", "passwd_cmd", "oauth2_token_cmd"].into_iter().find(|k| get(k).is_some()) {
            return Err(Error::usage(format!(
                "\"oauth2\" and \"{other}\" exclude each other: the login is one or the other"
            )));
        }
    }
    let user = string(required("user")?, "user")?;
    let host = string(required("imap")?, "imap")?;
    let password = match get("passwd") {
        Some(v) => Some(Secret::new(string(v, "passwd")?)),
        None if has_login_source => None,
        None => return Err(Error::usage("missing key \"passwd\" (or \"passwd_cmd\")")),
    };
    let all_folders = flag("all_folders");
    let folders = if all_folders {
        Folders::All { exclude: get("exclude").map(|v| strings(v, "exclude")).transpose()?.unwrap_or_default() }
    } else {
        Folders::Named(strings(required("folder")?, "folder")?)
    };
    let encrypted = truthy(required("encrypt")?);
    let compressed = truthy(required("compress")?);
    let keys = if encrypted {
        let path = PathBuf::from(string(required("keys")?, "keys")?);
        let password_mode = truthy(required("promp")?);
        let password_spec = PasswordSpec {
            file: get("key_password_file").map(|v| string(v, "key_password_file")).transpose()?.map(PathBuf::from),
            command: get("key_password_cmd").map(|v| string(v, "key_password_cmd")).transpose()?,
        };
        Some(KeySpec { path, password: password_mode.then_some(password_spec) })
    } else {
        None
    };
    let ca_file = get("ca_file").map(|v| string(v, "ca_file")).transpose()?.map(PathBuf::from);
    let pin_sha256 = get("pin_sha256").map(|v| string(v, "pin_sha256")).transpose()?;
    // Checked now, so a bad one is named by its key here rather than as a flag later.
    crate::imap::tls::Trust::load_as(ca_file.as_deref(), pin_sha256.as_deref(), &crate::imap::tls::CONFIG_NAMES)?;
    // The defaults are Account::new's; the entry sets what it names.
    let mut account = Account::new(user, host, root.to_path_buf());
    account.port = get("port").map(|v| number(v, "port", 0..=65535)).transpose()?.map(|p| p as u16);
    account.starttls = flag("starttls");
    (account.ca_file, account.pin_sha256) = (ca_file, pin_sha256);
    account.password = password;
    account.passwd_command = get("passwd_cmd").map(|v| string(v, "passwd_cmd")).transpose()?;
    account.oauth2_command = get("oauth2_token_cmd").map(|v| string(v, "oauth2_token_cmd")).transpose()?;
    account.oauth2 = crate::oauth2::provider::from_config_entry(obj, truthy)?;
    account.folders = folders;
    if let Some(v) = get("archive_dir") {
        account.root = PathBuf::from(string(v, "archive_dir")?);
    }
    account.form = Form { compressed, encrypted };
    if let Some(level) = get("compress_level").map(|v| number(v, "compress_level", 0..=9)).transpose()? {
        account.level = level as u8;
    }
    account.keys = keys;
    if let Some(v) = get("buffer_size") {
        account.buffer_size = v.as_u64().and_then(buffer_size).ok_or_else(|| {
            Error::usage(format!("\"buffer_size\" must be a number from {MIN_BUFFER} to {MAX_BUFFER}"))
        })?;
    }
    if let Some(timeout) = get("timeout").map(|v| number(v, "timeout", 0..=86_400)).transpose()? {
        account.timeout = timeout.max(1);
    }
    if let Some(n) = get("connections").map(|v| number(v, "connections", 1..=MAX_CONNECTIONS as u64)).transpose()? {
        account.connections = n as usize;
    }
    account.since = get("since").map(|v| crate::date::Day::parse(&string(v, "since")?, "\"since\"")).transpose()?;
    account.pipelining = get("pipelining").is_none_or(truthy);
    account.gmail_mode = get("gmail_mode").is_none_or(truthy);
    account.prune = crate::prune::Settings::from_config(get("prune_older_than"), flag("prune_keep_flagged"))?;
    account.names = &crate::imap::tls::CONFIG_NAMES;
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of FORMAT.md, unchanged.
    const EXAMPLE: &str = r#"{"list": [
       {"user": "ann@example.org", "imap": "imap.example.org", "passwd": "secret-1",
        "folder": "INBOX", "encrypt": 1, "keys": "ann.keys", "promp": 1, "compress": 1},
       {"user": "bo@example.net", "imap": "mail.example.net", "passwd": "secret-2",
        "folder": ["INBOX", "Sent"], "encrypt": 0, "compress": 0}
     ],
     "verbose": 1}"#;

    #[test]
    fn the_original_example_works() {
        let c = parse(EXAMPLE.as_bytes(), Path::new("/arch")).unwrap();
        assert!(c.verbose && c.unknown.is_empty());
        let (a, b) = (&c.accounts[0], &c.accounts[1]);
        assert_eq!(a.form, Form { compressed: true, encrypted: true });
        assert!(a.keys.as_ref().unwrap().password.is_some());
        assert_eq!(a.folders, Folders::Named(vec!["INBOX".into()]));
        assert_eq!(b.folders, Folders::Named(vec!["INBOX".into(), "Sent".into()]));
        assert!(b.keys.is_none() && !b.form.compressed);
        assert_eq!(b.root, Path::new("/arch"));
        assert_eq!(b.password.as_ref().unwrap().expose(), "secret-2");
    }

    #[test]
    fn missing_keys_are_named() {
        for (text, want) in [
            (
                r#"{"list": [{"imap": "x", "passwd": "p", "folder": "I", "encrypt": 0, "compress": 0}]}"#,
                "missing key \"user\"",
            ),
            (
                r#"{"list": [{"user": "u", "imap": "x", "passwd": "p", "folder": "I", "encrypt": 1, "compress": 0}]}"#,
                "missing key \"keys\"",
            ),
            (
                r#"{"list": [{"user": "u", "imap": "x", "folder": "I", "encrypt": 0, "compress": 0}]}"#,
                "missing key \"passwd\"",
            ),
            (
                r#"{"list": [{"user": "u", "imap": "x", "passwd": "p", "folder": "I", "encrypt": 0}]}"#,
                "missing key \"compress\"",
            ),
            (r#"{"accounts": []}"#, "missing key \"list\""),
            (r#"[1]"#, "must be a JSON object"),
            (
                r#"{"list": [{"user": "u", "imap": "x", "passwd": "p", "folder": 3, "encrypt": 0, "compress": 0}]}"#,
                "\"folder\" must be",
            ),
        ] {
            let e = parse(text.as_bytes(), Path::new(".")).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    /// A config of `n` minimal accounts.
    fn accounts(n: usize) -> String {
        let one = r#"{"user": "u", "imap": "x", "passwd": "p", "folder": "I", "encrypt": 0, "compress": 0}"#;
        format!(r#"{{"list": [{}]}}"#, vec![one; n].join(","))
    }

    #[test]
    fn limits() {
        assert_eq!(parse(accounts(bounded::ACCOUNTS).as_bytes(), Path::new(".")).unwrap().accounts.len(), 10_000);
        let e = parse(accounts(bounded::ACCOUNTS + 1).as_bytes(), Path::new(".")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "\"list\" holds 10001 accounts, more than the limit of 10000");
        for (size, ok) in [("65535", false), ("65536", true), ("67108864", true), ("67108865", false), ("1e9", false)] {
            let text = accounts(1).replace(r#""compress": 0"#, &format!(r#""compress": 0, "buffer_size": {size}"#));
            match parse(text.as_bytes(), Path::new(".")) {
                Ok(c) => assert!(ok && c.accounts[0].buffer_size.to_string() == size, "{size}"),
                Err(e) => assert!(
                    !ok && e.to_string().contains("\"buffer_size\" must be a number from 65536 to 67108864"),
                    "{size}: {e}"
                ),
            }
        }
        let e = load(Path::new("/dev/zero"), Path::new(".")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "config /dev/zero: larger than 4194304 bytes, not a configuration file");
    }

    #[test]
    fn new_keys_and_unknown_ones() {
        let text = r#"{"list": [{"user": "u", "imap": "x", "passwd_cmd": "pass show x", "all_folders": true,
            "exclude": ["Trash", "Junk*"], "encrypt": false, "compress": "yes", "compress_level": 1, "port": 1993,
            "starttls": 1, "archive_dir": "/a", "colour": "blue"}], "sandbox": "off", "quit": 1}"#;
        let c = parse(text.as_bytes(), Path::new(".")).unwrap();
        let a = &c.accounts[0];
        assert_eq!(a.folders, Folders::All { exclude: vec!["Trash".into(), "Junk*".into()] });
        assert!(a.form.compressed && a.starttls && a.password.is_none());
        assert_eq!((a.level, a.port, a.root.as_path()), (1, Some(1993), Path::new("/a")));
        assert_eq!(c.unknown, vec!["quit (did you mean \"quiet\"?)".to_string(), "account u: colour".to_string()]);
    }

    #[test]
    fn oauth2_objects() {
        let entry = |more: &str| {
            format!(r#"{{"list": [{{"user": "u", "imap": "x", "folder": "I", "encrypt": 0, "compress": 0{more}}}]}}"#)
        };
        let c =
            parse(entry(r#", "oauth2": {"provider": "microsoft", "client_id": "id-1"}"#).as_bytes(), Path::new("."));
        let a = &c.unwrap().accounts[0];
        assert_eq!(a.oauth2.as_ref().map(|o| o.provider.client_id.as_str()), Some("id-1"));
        assert!(a.password.is_none() && a.credential_command().is_none());
        for (more, want) in [
            (r#", "oauth2": {"provider": "microsoft", "client_id": "i"}, "passwd": "p""#, "exclude each other"),
            (
                r#", "oauth2": {"provider": "microsoft", "client_id": "i"}, "oauth2_token_cmd": "c""#,
                "exclude each other",
            ),
            (r#", "oauth2": {"provider": "microsoft"}"#, "account u: \"oauth2\" \"client_id\": missing"),
            (r#", "oauth2": "google""#, "must be an object"),
        ] {
            let e = parse(entry(more).as_bytes(), Path::new(".")).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{more}: {e}");
        }
    }

    #[test]
    fn slips_of_known_keys_are_pointed_out() {
        assert_eq!(near_miss("folders", ACCOUNT_KEYS), Some("folder"));
        assert_eq!(near_miss("ca-file", ACCOUNT_KEYS), Some("ca_file"));
        assert_eq!(near_miss("colour", ACCOUNT_KEYS), None);
        assert_eq!(near_miss("x", TOP_KEYS), None);
        let text =
            r#"{"list": [{"user": "u", "imap": "x", "passwd": "p", "folders": "I", "encrypt": 0, "compress": 0}]}"#;
        let e = parse(text.as_bytes(), Path::new(".")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "account u: unknown key \"folders\" (did you mean \"folder\"?)");
        let e = parse(br#"{"lists": []}"#, Path::new(".")).unwrap_err();
        assert_eq!(e.to_string(), "unknown key \"lists\" (did you mean \"list\"?)");
        let text = text.replace(r#""folders": "I""#, r#""folder": "I", "ca_file": "/nonexistent/ca.pem""#);
        let e = parse(text.as_bytes(), Path::new(".")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("account u: \"ca_file\" /nonexistent/ca.pem: "), "{e}");
    }
}
