//! The interactive wizard (no arguments at all), as the original had: it asks for one
//! account's settings, then backs it up. Answers are read line by line from standard
//! input, so it also works (and is tested) with piped input.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::account::{Account, Folders, DEFAULT_BUFFER, DEFAULT_TIMEOUT};
use crate::atomic::TempFile;
use crate::bounded;
use crate::codec::{Form, DEFAULT_LEVEL};
use crate::error::{Error, IoContext, Result};
use crate::imap::tls::Trust;
use crate::imap::IMAP_PORT;
use crate::keys::{KeySpec, PasswordSpec};
use crate::os::EchoOff;
use crate::secret::Secret;

fn ask(input: &mut dyn BufRead, question: &str, default: Option<&str>) -> Result<String> {
    answer(input, question, default, true)
}

/// Asks `question`; the answer's spaces are kept unless `trim` (a password's are its own).
fn answer(input: &mut dyn BufRead, question: &str, default: Option<&str>, trim: bool) -> Result<String> {
    let mut err = io::stderr();
    match default {
        Some(d) if !d.is_empty() => write!(err, "{question} [{d}]: "),
        _ => write!(err, "{question}: "),
    }
    .and_then(|_| err.flush())
    .doing("writing the question")?;
    let line = bounded::read_line(input, bounded::SECRET).map_err(|e| {
        Error::usage(format!("wizard: reading the answer to \"{question}\": {}", crate::error::describe_io(&e)))
    })?;
    let Some(line) = line else {
        return Err(Error::usage(format!("wizard: no answer to \"{question}\" (end of input)")));
    };
    let line = String::from_utf8(line)
        .map_err(|_| Error::usage(format!("wizard: the answer to \"{question}\" is not valid UTF-8")))?;
    let answer = if trim { line.trim() } else { line.trim_end_matches(['\n', '\r']) }.to_string();
    match (answer.is_empty(), default) {
        (true, Some(d)) => Ok(d.to_string()),
        (true, None) => Err(Error::usage(format!("wizard: \"{question}\" needs an answer"))),
        (false, _) => Ok(answer),
    }
}

fn yes(input: &mut dyn BufRead, question: &str) -> Result<bool> {
    let a = ask(input, question, Some("n"))?.to_ascii_lowercase();
    Ok(a == "y" || a == "yes" || a == "o" || a == "oui")
}

/// A question whose default is yes: true only for an explicit no.
fn no(input: &mut dyn BufRead, question: &str) -> Result<bool> {
    let a = ask(input, question, Some("y"))?.to_ascii_lowercase();
    Ok(a == "n" || a == "no" || a == "non")
}

/// Asks for an account on standard error / standard input; on request, saves the answers
/// as a config file for `-c` (and says so).
pub fn ask_account() -> Result<Account> {
    let stdin = io::stdin();
    let terminal = stdin.is_terminal();
    ask_from(&mut stdin.lock(), terminal)
}

/// The wizard's questions, answered from `input`; on a `terminal` the password is typed
/// without echo.
fn ask_from(mut input: &mut dyn BufRead, terminal: bool) -> Result<Account> {
    eprintln!("smailarchiver {}: back up an IMAP mailbox (Ctrl-C to stop)", env!("CARGO_PKG_VERSION"));
    let user = ask(&mut input, "Email user name", None)?;
    let host = ask(&mut input, "IMAP server", None)?;
    let port = ask(&mut input, "IMAP port (993: TLS from the start; 143: plain, then STARTTLS)", Some("993"))?;
    let port: u16 = port.parse().map_err(|_| Error::usage(format!("wizard: '{port}' is not a port number")))?;
    // Port 143 speaks plain text first: STARTTLS is then the only safe way, so it is the default.
    let starttls = if port == IMAP_PORT {
        !no(&mut input, "Upgrade the connection with STARTTLS? (Y/n)")?
    } else {
        yes(&mut input, "Upgrade a plain connection with STARTTLS? (y/n)")?
    };
    let ca_file = ask(&mut input, "Extra CA certificate file, for a self-signed server (empty: none)", Some(""))?;
    let pin_sha256 = if ca_file.is_empty() {
        ask(&mut input, "Or: SHA-256 fingerprint of the server's certificate, to pin it (empty: none)", Some(""))?
    } else {
        String::new()
    };
    let ca_file = (!ca_file.is_empty()).then(|| PathBuf::from(ca_file));
    let pin_sha256 = (!pin_sha256.is_empty()).then_some(pin_sha256);
    // Checked now rather than after every other question.
    Trust::load(ca_file.as_deref(), pin_sha256.as_deref()).map_err(|e| e.context("wizard"))?;
    let (password, oauth2) = match ask_login(&mut input, terminal, &host)? {
        Login::Password(p) => (Some(p), None),
        Login::OAuth2(o) => (None, Some(o)),
    };
    let settings = match &oauth2 {
        Some(o) => {
            let mut entry = Map::new();
            entry.insert("oauth2".into(), o.clone());
            crate::oauth2::provider::from_config_entry(&entry, |v| v.as_bool().unwrap_or(false))
                .map_err(|e| e.context("wizard"))?
        }
        None => None,
    };
    let folders = ask(&mut input, "Folders, separated by commas (* for all of them)", Some("INBOX"))?;
    let folders: Vec<String> = folders.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
    let folders =
        if folders.iter().any(|f| f == "*") { Folders::All { exclude: Vec::new() } } else { Folders::Named(folders) };
    let compressed = yes(&mut input, "Compress the messages? (y/n)")?;
    let encrypted = yes(&mut input, "Encrypt the messages? (y/n)")?;
    let keys = if encrypted {
        let path = PathBuf::from(ask(&mut input, "Key file", Some("keys"))?);
        let protect = yes(&mut input, "Protect the key file with a password? (y/n)")?;
        let password = if protect {
            // Unattended runs (a saved config under cron) have no terminal to type it in.
            let cmd = ask(&mut input, "Command that prints the key password (empty: type it in)", Some(""))?;
            Some(PasswordSpec { file: None, command: (!cmd.is_empty()).then_some(cmd) })
        } else {
            None
        };
        Some(KeySpec { path, password })
    } else {
        None
    };
    let root = PathBuf::from(ask(&mut input, "Archive directory", Some("."))?);
    let account = Account {
        user,
        host,
        port: Some(port),
        starttls,
        ca_file,
        pin_sha256,
        password,
        passwd_command: None,
        oauth2_command: None,
        oauth2: settings,
        folders,
        root,
        form: Form { compressed, encrypted },
        level: DEFAULT_LEVEL,
        keys,
        buffer_size: DEFAULT_BUFFER,
        timeout: DEFAULT_TIMEOUT,
        connections: crate::account::DEFAULT_CONNECTIONS,
        since: None,
        pipelining: true,
        gmail_mode: true,
    };
    let save = ask(&mut input, "Save these settings as a config file for -c (empty: do not save)", Some(""))?;
    if Path::new(&save).exists() && !save.is_empty() {
        return Err(Error::usage(format!("wizard: {save} exists: not overwritten")));
    }
    if !save.is_empty() {
        let command = if oauth2.is_some() {
            String::new()
        } else {
            ask(
                &mut input,
                "Command that prints the email password, e.g. pass show mail (empty: store the password in the file)",
                Some(""),
            )?
        };
        let path = PathBuf::from(save);
        save_config(&account, (!command.is_empty()).then_some(command.as_str()), oauth2.as_ref(), &path)?;
        eprintln!(
            "smailarchiver: saved {} (mode 0600); next time run: smailarchiver -c {}",
            path.display(),
            path.display()
        );
    }
    Ok(account)
}

/// The provider behind a well-known IMAP host, whose login needs steps of its own.
fn provider_of(host: &str) -> Option<&'static str> {
    match host.trim_end_matches('.').to_ascii_lowercase().as_str() {
        "imap.gmail.com" | "imap.googlemail.com" => Some("google"),
        "outlook.office365.com" | "outlook.office.com" | "imap-mail.outlook.com" => Some("microsoft"),
        _ => None,
    }
}

const GMAIL_STEPS: &str = "\
Gmail: an app password is simplest (Google Account, Security, 2-Step Verification on, then
https://myaccount.google.com/apppasswords). Or OAuth2 (no password kept):
  1. https://console.cloud.google.com/ : a project; Google Auth Platform: External (or
     Internal), you as a test user, then Publish app (a \"Testing\" app's sign-in lasts 7 days).
  2. Clients, Create client, Desktop app: note the client id, save the secret in a file (0600).
  3. Answer below; the tool then prints an address to open in any browser. From another
     machine the last page does not load: paste its address here.
(README, \"Gmail and Microsoft 365\".)";

const MICROSOFT_STEPS: &str = "\
Microsoft 365 takes OAuth2 only. Once, at https://entra.microsoft.com/ :
  1. App registrations, New registration (no redirect URI): note the application (client)
     id and the directory (tenant) id.
  2. Authentication: Allow public client flows: Yes.
  3. API permissions: Office 365 Exchange Online, Delegated, IMAP.AccessAsUser.All, and
     Microsoft Graph offline_access; grant admin consent if your tenant asks for it.
  4. IMAP on for the mailbox (Exchange admin center, the mailbox, Email apps).
Then answer below; the tool prints a code to enter at Microsoft's address from any device.
(README, \"Gmail and Microsoft 365\".)";

/// How the wizard's account logs in.
enum Login {
    Password(Secret),
    /// The config's `"oauth2"` object.
    OAuth2(Value),
}

/// Asks how the account logs in: a password, or for Gmail and Microsoft 365 (told by the
/// host) the OAuth2 client, after the steps to register one.
fn ask_login(mut input: &mut dyn BufRead, terminal: bool, host: &str) -> Result<Login> {
    let password = |input: &mut dyn BufRead, question: &str| -> Result<Login> {
        let stdin = io::stdin();
        let _echo_off = terminal.then(|| EchoOff::new(&stdin)).transpose().doing("switching terminal echo off")?;
        Ok(Login::Password(Secret::new(answer(input, question, None, false)?)))
    };
    match provider_of(host) {
        Some("google") => {
            eprintln!("{GMAIL_STEPS}");
            let how = ask(&mut input, "Log in with an app password or OAuth2? (a/o)", Some("a"))?;
            if !how.eq_ignore_ascii_case("o") && !how.eq_ignore_ascii_case("oauth2") {
                return password(input, "App password");
            }
            let id = ask(&mut input, "OAuth2 client id (ends in .apps.googleusercontent.com)", None)?;
            let secret = ask(&mut input, "File holding the client secret", None)?;
            let secret = std::path::absolute(&secret).doing("making the path absolute")?;
            let mut o = Map::new();
            o.insert("provider".into(), "google".into());
            o.insert("client_id".into(), id.into());
            o.insert("client_secret_file".into(), secret.to_string_lossy().into_owned().into());
            Ok(Login::OAuth2(Value::Object(o)))
        }
        Some(_) => {
            eprintln!("{MICROSOFT_STEPS}");
            let id = ask(&mut input, "Application (client) id", None)?;
            let tenant = ask(&mut input, "Directory (tenant) id or domain", Some("common"))?;
            let mut o = Map::new();
            o.insert("provider".into(), "microsoft".into());
            o.insert("client_id".into(), id.into());
            o.insert("tenant".into(), tenant.into());
            Ok(Login::OAuth2(Value::Object(o)))
        }
        None => password(input, "Email password"),
    }
}

/// The config file (`-c`) that backs up `account` as the wizard set it up; the password
/// is `passwd_cmd` when given, else stored (none with `oauth2`, the `"oauth2"` object).
/// Paths are made absolute, so the file works from any directory (cron's is not this one).
fn config_text(account: &Account, passwd_cmd: Option<&str>, oauth2: Option<&Value>) -> Result<String> {
    let absolute = |p: &Path| -> Result<String> {
        Ok(std::path::absolute(p).doing("making the path absolute")?.to_string_lossy().into_owned())
    };
    let mut entry = Map::new();
    entry.insert("user".into(), account.user.clone().into());
    entry.insert("imap".into(), account.host.clone().into());
    entry.insert("port".into(), account.port().into());
    entry.insert("starttls".into(), account.starttls.into());
    if let Some(ca) = &account.ca_file {
        entry.insert("ca_file".into(), absolute(ca)?.into());
    }
    if let Some(pin) = &account.pin_sha256 {
        entry.insert("pin_sha256".into(), pin.clone().into());
    }
    match (oauth2, passwd_cmd, &account.password) {
        (Some(o), _, _) => entry.insert("oauth2".into(), o.clone()),
        (None, Some(cmd), _) => entry.insert("passwd_cmd".into(), cmd.into()),
        (None, None, Some(pw)) => entry.insert("passwd".into(), pw.expose().into()),
        (None, None, None) => None,
    };
    match &account.folders {
        Folders::All { .. } => entry.insert("all_folders".into(), true.into()),
        Folders::Named(names) => entry.insert("folder".into(), names.clone().into()),
    };
    entry.insert("compress".into(), account.form.compressed.into());
    entry.insert("encrypt".into(), account.form.encrypted.into());
    if let Some(keys) = &account.keys {
        entry.insert("keys".into(), absolute(&keys.path)?.into());
        entry.insert("promp".into(), keys.password.is_some().into());
        if let Some(cmd) = keys.password.as_ref().and_then(|p| p.command.as_ref()) {
            entry.insert("key_password_cmd".into(), cmd.clone().into());
        }
    }
    let mut top = Map::new();
    top.insert("list".into(), Value::Array(vec![Value::Object(entry)]));
    top.insert("archive_dir".into(), absolute(&account.root)?.into());
    let text = serde_json::to_string_pretty(&Value::Object(top))
        .map_err(|e| Error::runtime(format!("writing the config: {e}")))?;
    Ok(text + "\n")
}

/// Writes the config file: complete or not at all, readable by its owner only (it may
/// hold the password), never over an existing file.
fn save_config(account: &Account, passwd_cmd: Option<&str>, oauth2: Option<&Value>, path: &Path) -> Result<()> {
    let text = config_text(account, passwd_cmd, oauth2)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = crate::restore::parent_of(path);
    let tmp = TempFile::create_in(parent, &name, 0o600).at(parent)?;
    let mut file = tmp.file();
    file.write_all(text.as_bytes()).at(tmp.path())?;
    tmp.commit(path, false).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::usage(format!("wizard: {} exists: not overwritten, nothing saved", path.display()))
        } else {
            Error::runtime(format!("{}: {}", path.display(), crate::error::describe_io(&e)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_143_offers_starttls_and_a_star_means_every_folder() {
        let answers = "ann\nimap.x\n143\n\n\n\n pw \n*\nn\nn\narch\n\n";
        let a = ask_from(&mut answers.as_bytes(), false).unwrap();
        assert_eq!((a.port(), a.starttls, a.ca_file.clone(), a.pin_sha256.clone()), (143, true, None, None));
        assert_eq!(a.password.as_ref().map(Secret::expose), Some(" pw "));
        assert_eq!(a.folders, Folders::All { exclude: Vec::new() });
        assert_eq!((a.form, a.root.clone()), (Form { compressed: false, encrypted: false }, PathBuf::from("arch")));
        // No on port 143; on 993 the default is no, and folders are names.
        let a = ask_from(&mut "ann\nimap.x\n143\nn\n\n\npw\nINBOX, Sent\nn\nn\n.\n\n".as_bytes(), false).unwrap();
        assert!(!a.starttls);
        assert_eq!(a.folders, Folders::Named(vec!["INBOX".into(), "Sent".into()]));
        let a = ask_from(&mut "ann\nimap.x\n\n\n\n\npw\n\nn\nn\n.\n\n".as_bytes(), false).unwrap();
        assert_eq!((a.port(), a.starttls), (993, false));
        // A bad pin is refused at once, before the password is asked.
        let e = ask_from(&mut "ann\nimap.x\n\n\n\nzz\n".as_bytes(), false).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("wizard: --pin-sha256: "), "{e}");
    }

    #[test]
    fn gmail_and_microsoft_365_ask_for_their_login() {
        // Microsoft 365: the OAuth2 client, no password; saved as an "oauth2" object.
        let answers =
            "ann@contoso.com\noutlook.office365.com\n\n\n\n\nclient-9\ncontoso.onmicrosoft.com\n\nn\nn\n.\n\n";
        let a = ask_from(&mut answers.as_bytes(), false).unwrap();
        assert!(a.password.is_none());
        let o = a.oauth2.as_ref().unwrap();
        assert_eq!(o.provider.client_id, "client-9");
        assert_eq!(
            o.provider.token_endpoint,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let object =
            serde_json::json!({"provider": "microsoft", "client_id": "client-9", "tenant": "contoso.onmicrosoft.com"});
        let text = config_text(&a, None, Some(&object)).unwrap();
        let c = crate::config::parse(text.as_bytes(), Path::new("/")).unwrap();
        assert_eq!(c.accounts[0].oauth2.as_ref().map(|o| o.provider.client_id.as_str()), Some("client-9"));
        assert!(!text.contains("passwd"), "{text}");
        // Gmail: an app password by default; OAuth2 on request (client id and secret file).
        let a = ask_from(&mut "ann@gmail.com\nimap.gmail.com\n\n\n\n\n\nabcd efgh\n\nn\nn\n.\n\n".as_bytes(), false)
            .unwrap();
        assert_eq!((a.password.as_ref().map(Secret::expose), a.oauth2.is_none()), (Some("abcd efgh"), true));
        let secret = std::env::temp_dir().join(format!("wizard-google-secret-{}", std::process::id()));
        std::fs::write(&secret, "s3cret\n").unwrap();
        let answers = format!(
            "ann@gmail.com\nimap.gmail.com\n\n\n\n\no\nid.apps.googleusercontent.com\n{}\n\nn\nn\n.\n\n",
            secret.display()
        );
        let a = ask_from(&mut answers.as_bytes(), false).unwrap();
        std::fs::remove_file(&secret).unwrap();
        let o = a.oauth2.as_ref().unwrap();
        assert_eq!(
            (o.provider.name.as_str(), o.provider.client_secret.as_ref().map(Secret::expose)),
            ("google", Some("s3cret"))
        );
    }

    #[test]
    fn a_saved_config_reads_back_as_the_same_account() {
        let account = Account {
            user: "ann".into(),
            host: "imap.example.org".into(),
            port: Some(143),
            starttls: true,
            ca_file: None,
            pin_sha256: Some("ab".repeat(32)),
            password: Some(Secret::new("pw \" quoted".into())),
            passwd_command: None,
            oauth2_command: None,
            oauth2: None,
            folders: Folders::All { exclude: Vec::new() },
            root: PathBuf::from("arch"),
            form: Form { compressed: true, encrypted: true },
            level: DEFAULT_LEVEL,
            keys: Some(KeySpec {
                path: PathBuf::from("ann.keys"),
                password: Some(PasswordSpec { file: None, command: Some("pass show key".into()) }),
            }),
            buffer_size: DEFAULT_BUFFER,
            timeout: DEFAULT_TIMEOUT,
            connections: 1,
            since: None,
            pipelining: true,
            gmail_mode: true,
        };
        let here = std::env::current_dir().unwrap();
        for cmd in [None, Some("pass show mail")] {
            let text = config_text(&account, cmd, None).unwrap();
            let c = crate::config::parse(text.as_bytes(), Path::new("/elsewhere")).unwrap();
            assert!(c.unknown.is_empty(), "{:?}", c.unknown);
            let a = &c.accounts[0];
            assert_eq!(
                (a.user.as_str(), a.host.as_str(), a.port(), a.starttls),
                ("ann", "imap.example.org", 143, true)
            );
            assert_eq!(a.pin_sha256, account.pin_sha256);
            assert_eq!(a.folders, Folders::All { exclude: Vec::new() });
            assert_eq!(a.form, account.form);
            assert_eq!(a.root, here.join("arch"));
            let keys = a.keys.as_ref().unwrap();
            assert_eq!(keys.path, here.join("ann.keys"));
            assert_eq!(keys.password.as_ref().and_then(|p| p.command.as_deref()), Some("pass show key"));
            assert_eq!(
                a.password.as_ref().map(|p| p.expose().to_string()),
                cmd.is_none().then(|| "pw \" quoted".into())
            );
            assert_eq!(a.passwd_command.as_deref(), cmd);
        }
    }

    #[test]
    fn answers_are_lines_up_to_the_cap() {
        let mut input = &b"  ann \n\nx"[..];
        assert_eq!(ask(&mut input, "User", None).unwrap(), "ann");
        assert_eq!(ask(&mut input, "Port", Some("993")).unwrap(), "993");
        assert_eq!(ask(&mut input, "Folder", None).unwrap(), "x");
        assert!(ask(&mut input, "More", None).unwrap_err().to_string().contains("end of input"));
        let mut endless = io::BufReader::new(io::repeat(b'y'));
        let e = ask(&mut endless, "Email password", None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.to_string(), "wizard: reading the answer to \"Email password\": a line longer than 65536 bytes");
    }
}
