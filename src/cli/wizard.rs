//! The interactive wizard (no arguments at all), as the original had: it asks for one
//! account's settings, then backs it up. Answers are read line by line from standard
//! input, so it also works (and is tested) with piped input.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::account::{Account, Folders};
use crate::archive::files::atomic::TempFile;
use crate::bounded;
use crate::error::{Error, IoContext, Result};
use crate::imap::tls::Trust;
use crate::imap::IMAP_PORT;
use crate::keys::{KeySpec, PasswordSpec};
use crate::os::EchoOff;
use crate::secret::Secret;

fn ask(input: &mut dyn BufRead, question: &str, default: Option<&str>) -> Result<String> {
    answer(input, question, default, true)
}

/// Asks `question` until the answer is not empty (end of input ends the wizard).
fn ask_needed(input: &mut dyn BufRead, question: &str) -> Result<String> {
    loop {
        let a = ask(input, question, Some(""))?;
        if !a.is_empty() {
            return Ok(a);
        }
        say("an answer is needed");
    }
}

/// A line of the wizard's on standard error.
fn say(text: &str) {
    eprintln!("  {text}");
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
        return Err(Error::usage(format!("wizard: no answer to \"{question}\" (end of input); nothing saved")));
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

/// Why a trial login failed.
#[derive(Debug)]
pub enum Failure {
    /// The server's certificate is not trusted: its SHA-256 and why.
    Untrusted {
        /// Its SHA-256 fingerprint, to pin it with.
        fingerprint: String,
        /// Why it is not trusted.
        reason: String,
    },
    /// The server refused the user name or password.
    Login(String),
    /// Anything else: no such server, nothing on that port, a timeout.
    Other(String),
}

/// What the wizard set up: the account, and where to save it once a backup with it worked.
pub struct Setup {
    /// The account to back up.
    pub account: Account,
    save: Option<Save>,
}

/// A config file to write.
struct Save {
    path: PathBuf,
    /// The config's `"oauth2"` object, when the account signs in with OAuth2.
    oauth2: Option<Value>,
    /// The command that prints the email password (else it is stored in the file).
    passwd_cmd: Option<String>,
}

impl Setup {
    /// The directory the config file goes to, which the sandbox must leave writable.
    pub fn save_dir(&self) -> Option<PathBuf> {
        self.save.as_ref().map(|s| crate::archive::files::atomic::parent_of(&s.path).to_path_buf())
    }

    /// Saves the config file, if one was asked for, and says so. Call it only once a
    /// backup with the account worked: the wizard saves nothing that did not.
    pub fn save(&self) -> Result<()> {
        let Some(save) = &self.save else { return Ok(()) };
        save_config(&self.account, save.passwd_cmd.as_deref(), save.oauth2.as_ref(), &save.path)?;
        eprintln!(
            "smailarchiver: saved {} (mode 0600); next time run: smailarchiver -c {}",
            save.path.display(),
            save.path.display()
        );
        Ok(())
    }

    /// Says that nothing was saved because the backup failed.
    pub fn not_saved(&self) {
        if let Some(save) = &self.save {
            eprintln!("smailarchiver: {} not saved: the backup did not work", save.path.display());
        }
    }
}

/// Asks for an account on standard error / standard input, trying the connection and the
/// login as soon as it has what they need.
pub fn ask_account() -> Result<Setup> {
    let stdin = io::stdin();
    let terminal = stdin.is_terminal();
    ask_from(&mut stdin.lock(), terminal, &mut try_login)
}

/// Connects and logs in as `account` says; the names of the folders the server lists.
fn try_login(account: &Account) -> std::result::Result<Vec<String>, Failure> {
    let connection = crate::backup::connection(account).map_err(|e| Failure::Other(e.to_string()))?;
    let spec = connection.spec;
    let mut session = crate::imap::Session::new(spec.clone(), connection.addrs, connection.auth);
    if let Err(e) = session.connect() {
        return Err(match spec.trust.refused() {
            Some((fingerprint, reason)) => Failure::Untrusted { fingerprint, reason },
            None if crate::imap::session::is_refused_login(&e) => Failure::Login(e.to_string()),
            None => Failure::Other(e.to_string()),
        });
    }
    let folders = session
        .list(false)
        .map(|l| {
            l.entries
                .iter()
                .filter(|e| e.selectable())
                .map(|e| crate::mailbox_name::Mailbox::from_wire(&e.wire).shown())
                .collect()
        })
        .unwrap_or_default();
    let _ = session.logout();
    Ok(folders)
}

/// A SHA-256 in hex as servers and browsers show it: `AB:CD:...`.
fn colons(hex: &str) -> String {
    hex.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).to_uppercase()).collect::<Vec<_>>().join(":")
}

/// Whether `text` reads as a shell command rather than a secret typed by mistake: its
/// first word is a program on the PATH, a file that can run, or a shell builtin.
fn looks_like_command(text: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    const BUILTINS: &[&str] =
        &[".", "eval", "exec", "command", "read", "printf", "echo", "cd", "set", "export", "test"];
    let Some(first) = text.split_whitespace().next() else { return false };
    if BUILTINS.contains(&first) || first.contains('=') || first.starts_with('$') {
        return true;
    }
    let runnable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if first.contains('/') {
        return runnable(Path::new(first));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).any(|dir| runnable(&dir.join(first)))
}

/// Asks for a command that prints a secret until the answer is one (or empty: none).
fn ask_command(input: &mut dyn BufRead, question: &str) -> Result<Option<String>> {
    loop {
        let cmd = ask(input, question, Some(""))?;
        if cmd.is_empty() {
            return Ok(None);
        }
        if looks_like_command(&cmd) {
            return Ok(Some(cmd));
        }
        let first = cmd.split_whitespace().next().unwrap_or_default();
        say(&format!(
            "there is no program \"{first}\" here: a command is asked, not the secret itself \
             (e.g. pass show mail-key, or cat /root/.key-password)"
        ));
    }
}

/// The wizard's questions, answered from `input`; on a `terminal` the password is typed
/// without echo. `login` tries the connection once the server and the password are known.
fn ask_from(
    mut input: &mut dyn BufRead,
    terminal: bool,
    login: &mut dyn FnMut(&Account) -> std::result::Result<Vec<String>, Failure>,
) -> Result<Setup> {
    eprintln!("smailarchiver {}: back up an IMAP mailbox (Ctrl-C to stop)", env!("CARGO_PKG_VERSION"));
    let user = ask_needed(&mut input, "Email user name")?;
    let mut account = Account::new(user, String::new(), PathBuf::from("."));
    let ask_server = |input: &mut dyn BufRead, account: &mut Account| -> Result<()> {
        account.host = ask_needed(input, "IMAP server")?;
        let port = loop {
            let port = ask(input, "IMAP port (993: TLS from the start; 143: plain, then STARTTLS)", Some("993"))?;
            match port.parse::<u16>() {
                Ok(p) if p > 0 => break p,
                _ => say(&format!("'{port}' is not a port number (1 to 65535)")),
            }
        };
        account.port = Some(port);
        // Port 143 speaks plain text first: STARTTLS is then the only safe way, so it is the default.
        account.starttls = if port == IMAP_PORT {
            !no(input, "Upgrade the connection with STARTTLS? (Y/n)")?
        } else {
            yes(input, "Upgrade a plain connection with STARTTLS? (y/n)")?
        };
        (account.ca_file, account.pin_sha256) = (None, None);
        Ok(())
    };
    ask_server(&mut input, &mut account)?;
    let ask_password = |input: &mut dyn BufRead| -> Result<Secret> {
        let stdin = io::stdin();
        let _echo_off = terminal.then(|| EchoOff::new(&stdin)).transpose().doing("switching terminal echo off")?;
        loop {
            let pw = answer(input, "Email password", Some(""), false)?;
            if terminal {
                eprintln!();
            }
            if !pw.is_empty() {
                return Ok(Secret::new(pw));
            }
            say("an answer is needed");
        }
    };
    // Gmail and Microsoft 365 are told by the host: their sign-in is asked as they need it.
    let oauth2: Option<Value> = if provider_of(&account.host).is_none() {
        account.password = Some(ask_password(&mut input)?);
        None
    } else {
        match ask_login(&mut input, terminal, &account.host)? {
            Login::Password(p) => {
                account.password = Some(p);
                None
            }
            Login::OAuth2(o) => {
                let mut entry = Map::new();
                entry.insert("oauth2".into(), o.clone());
                account.oauth2 = crate::oauth2::provider::from_config_entry(&entry, |v| v.as_bool().unwrap_or(false))
                    .map_err(|e| e.context("wizard"))?;
                Some(o)
            }
        }
    };
    // The connection and the login, tried now: a wrong answer is asked again at once (an
    // OAuth2 sign-in comes after the questions, in the browser).
    let server_folders = if oauth2.is_some() {
        Vec::new()
    } else {
        loop {
            say(&format!("connecting to {}:{} ...", account.host, account.port()));
            match login(&account) {
                Ok(folders) => {
                    say("logged in");
                    break folders;
                }
                Err(Failure::Login(why)) => {
                    say(&format!("{why}; try again"));
                    account.password = Some(ask_password(&mut input)?);
                }
                Err(Failure::Untrusted { fingerprint, reason }) => {
                    say(&format!("the server's certificate is not trusted: {reason}"));
                    say(&format!("its SHA-256 fingerprint is {}", colons(&fingerprint)));
                    say("if your server (its admin page, or `openssl x509 -noout -fingerprint -sha256`) shows the same,");
                    if yes(&mut input, "trust exactly this certificate (pin it)? (y/n)")? {
                        account.pin_sha256 = Some(fingerprint);
                        continue;
                    }
                    loop {
                        let ca = ask(&mut input, "CA certificate file that signed it (empty: stop here)", Some(""))?;
                        if ca.is_empty() {
                            return Err(Error::usage("wizard: the server's certificate is not trusted; nothing saved"));
                        }
                        match Trust::load(Some(Path::new(&ca)), None) {
                            Ok(_) => {
                                account.ca_file = Some(PathBuf::from(ca));
                                break;
                            }
                            Err(e) => say(&e.to_string()),
                        }
                    }
                }
                Err(Failure::Other(why)) => {
                    say(&format!("{why}; check the server and the port"));
                    ask_server(&mut input, &mut account)?;
                }
            }
        }
    };
    account.folders = loop {
        let folders = ask(&mut input, "Folders, separated by commas (* for all of them)", Some("INBOX"))?;
        let folders: Vec<String> = folders.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
        if folders.iter().any(|f| f == "*") {
            break Folders::All { exclude: Vec::new() };
        }
        let missing: Vec<&String> = folders
            .iter()
            .filter(|f| !server_folders.is_empty() && !f.eq_ignore_ascii_case("INBOX") && !server_folders.contains(f))
            .collect();
        let Some(first) = missing.first() else { break Folders::Named(folders) };
        let near = crate::nearest::closest(first, server_folders.iter().map(String::as_str), 3);
        say(&match near.as_slice() {
            [] => format!("the server has no folder \"{first}\""),
            _ => format!("the server has no folder \"{first}\"; closest: {}", near.join(", ")),
        });
    };
    account.form.compressed = yes(&mut input, "Compress the messages? (y/n)")?;
    account.form.encrypted = yes(&mut input, "Encrypt the messages? (y/n)")?;
    if account.form.encrypted {
        let path = PathBuf::from(ask(&mut input, "Key file", Some("keys"))?);
        let protect = yes(&mut input, "Protect the key file with a password? (y/n)")?;
        let password = if protect {
            // Unattended runs (a saved config under cron) have no terminal to type it in.
            let command =
                ask_command(&mut input, "Command that prints the key password (empty: type it in at every run)")?;
            Some(PasswordSpec { file: None, command })
        } else {
            None
        };
        account.keys = Some(KeySpec { path, password });
    }
    account.root = PathBuf::from(ask(&mut input, "Archive directory", Some("."))?);
    let save = loop {
        let save = ask(&mut input, "Save these settings as a config file for -c (empty: do not save)", Some(""))?;
        if save.is_empty() || !Path::new(&save).exists() {
            break save;
        }
        say(&format!("{save} exists: not overwritten; give another name"));
    };
    if save.is_empty() {
        return Ok(Setup { account, save: None });
    }
    let passwd_cmd = if oauth2.is_some() {
        None
    } else {
        ask_command(
            &mut input,
            "Command that prints the email password, e.g. pass show mail (empty: store the password in the file)",
        )?
    };
    let typed = account.keys.as_mut().and_then(|k| k.password.as_mut()).filter(|p| p.command.is_none());
    if let Some(spec) = typed {
        say("the key password is to be typed in at every run: cron cannot, so the saved config");
        say("would only run at a terminal. A command that prints it runs unattended.");
        spec.command = ask_command(&mut input, "Command that prints the key password (empty: keep typing it in)")?;
    }
    Ok(Setup { account, save: Some(Save { path: PathBuf::from(save), oauth2, passwd_cmd }) })
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
    let parent = crate::archive::files::atomic::parent_of(path);
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
    use crate::codec::Form;

    /// A login that works at once, on a server with these folders.
    fn works(_: &Account) -> std::result::Result<Vec<String>, Failure> {
        Ok(vec!["INBOX".into(), "Sent".into(), "Sent Messages".into()])
    }

    fn wizard(answers: &str) -> Result<Setup> {
        ask_from(&mut answers.as_bytes(), false, &mut works)
    }

    #[test]
    fn port_143_offers_starttls_and_a_star_means_every_folder() {
        let a = wizard("ann\nimap.x\n143\n\n pw \n*\nn\nn\narch\n\n").unwrap().account;
        assert_eq!((a.port(), a.starttls, a.ca_file.clone(), a.pin_sha256.clone()), (143, true, None, None));
        assert_eq!(a.password.as_ref().map(Secret::expose), Some(" pw "));
        assert_eq!(a.folders, Folders::All { exclude: Vec::new() });
        assert_eq!((a.form, a.root.clone()), (Form { compressed: false, encrypted: false }, PathBuf::from("arch")));
        // No on port 143; on 993 the default is no, and folders are names.
        let a = wizard("ann\nimap.x\n143\nn\npw\nINBOX, Sent\nn\nn\n.\n\n").unwrap().account;
        assert!(!a.starttls);
        assert_eq!(a.folders, Folders::Named(vec!["INBOX".into(), "Sent".into()]));
        let a = wizard("ann\nimap.x\n\n\npw\n\nn\nn\n.\n\n").unwrap().account;
        assert_eq!((a.port(), a.starttls), (993, false));
    }

    #[test]
    fn bad_and_empty_answers_are_asked_again() {
        // Empty user, server and password; a port that is none; a folder the server lacks.
        let a = wizard("\nann\n\nimap.x\nhttps\n0\n993\n\n\npw\nSent Items\nSent\nn\nn\n.\n\n").unwrap().account;
        assert_eq!((a.user.as_str(), a.host.as_str(), a.port()), ("ann", "imap.x", 993));
        assert_eq!(a.folders, Folders::Named(vec!["Sent".into()]));
        // End of input is the end: nothing to save.
        let e = wizard("\n\n").err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("end of input"), "{e}");
    }

    #[test]
    fn the_login_is_tried_before_anything_else_is_asked() {
        // A wrong password, then an untrusted certificate pinned, then it works.
        let mut tries = Vec::new();
        let mut login = |a: &Account| {
            tries.push((a.password.as_ref().map(|p| p.expose().to_string()), a.pin_sha256.clone()));
            match tries.len() {
                1 => Err(Failure::Login("login failed for ann on imap.x:993: NO wrong".into())),
                2 => Err(Failure::Untrusted { fingerprint: "ab".repeat(32), reason: "self-signed".into() }),
                _ => Ok(Vec::new()),
            }
        };
        let answers = "ann\nimap.x\n\n\nwrong\nright\ny\n\nn\nn\n.\n\n";
        let a = ask_from(&mut answers.as_bytes(), false, &mut login).unwrap().account;
        assert_eq!(a.pin_sha256, Some("ab".repeat(32)));
        assert_eq!(
            tries,
            [(Some("wrong".into()), None), (Some("right".into()), None), (Some("right".into()), Some("ab".repeat(32)))]
        );
        // A certificate not trusted, nor a CA given: the wizard stops, nothing to save.
        let mut untrusted = |_: &Account| Err(Failure::Untrusted { fingerprint: "cd".repeat(32), reason: "x".into() });
        let e = ask_from(&mut "ann\nimap.x\n\n\npw\nn\n\n".as_bytes(), false, &mut untrusted).err().unwrap();
        assert_eq!(e.to_string(), "wizard: the server's certificate is not trusted; nothing saved");
    }

    #[test]
    fn a_command_is_told_from_a_secret() {
        assert!(looks_like_command("echo 'key pass'") && looks_like_command("KEY=1 prog"));
        assert!(looks_like_command("cat /root/key") && looks_like_command("/bin/sh -c x"));
        assert!(!looks_like_command("keypass1") && !looks_like_command("/nonexistent/prog"));
        // A password typed where the command is asked: asked again; a typed key password
        // in a saved config: warned, and the command asked once more.
        let answers = "ann\nimap.x\n\n\npw\n\nn\ny\nk\ny\nkeypass1\n\n.\nsaved.json\nmailpass\n\necho key\n";
        let setup = wizard(answers).unwrap();
        let keys = setup.account.keys.as_ref().unwrap();
        assert_eq!(keys.password.as_ref().unwrap().command.as_deref(), Some("echo key"));
        let save = setup.save.as_ref().unwrap();
        assert_eq!((save.path.as_path(), save.passwd_cmd.as_deref()), (Path::new("saved.json"), None));
    }

    #[test]
    fn gmail_and_microsoft_365_ask_for_their_login() {
        // Microsoft 365: the OAuth2 client, no password; saved as an "oauth2" object.
        let answers = "ann@contoso.com\noutlook.office365.com\n\n\nclient-9\ncontoso.onmicrosoft.com\n\nn\nn\n.\n\n";
        let a = ask_from(&mut answers.as_bytes(), false, &mut works).unwrap().account;
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
        let c = crate::cli::config::parse(text.as_bytes(), Path::new("/")).unwrap();
        assert_eq!(c.accounts[0].oauth2.as_ref().map(|o| o.provider.client_id.as_str()), Some("client-9"));
        assert!(!text.contains("passwd"), "{text}");
        // Gmail: an app password by default; OAuth2 on request (client id and secret file).
        let a = ask_from(
            &mut "ann@gmail.com\nimap.gmail.com\n\n\n\nabcd efgh\n\nn\nn\n.\n\n".as_bytes(),
            false,
            &mut works,
        )
        .unwrap()
        .account;
        assert_eq!((a.password.as_ref().map(Secret::expose), a.oauth2.is_none()), (Some("abcd efgh"), true));
        let secret = std::env::temp_dir().join(format!("wizard-google-secret-{}", std::process::id()));
        std::fs::write(&secret, "s3cret\n").unwrap();
        let answers = format!(
            "ann@gmail.com\nimap.gmail.com\n\n\no\nid.apps.googleusercontent.com\n{}\n\nn\nn\n.\n\n",
            secret.display()
        );
        let a = ask_from(&mut answers.as_bytes(), false, &mut works).unwrap().account;
        std::fs::remove_file(&secret).unwrap();
        let o = a.oauth2.as_ref().unwrap();
        assert_eq!(
            (o.provider.name.as_str(), o.provider.client_secret.as_ref().map(Secret::expose)),
            ("google", Some("s3cret"))
        );
    }

    #[test]
    fn a_saved_config_reads_back_as_the_same_account() {
        let mut account = Account::new("ann".into(), "imap.example.org".into(), PathBuf::from("arch"));
        (account.port, account.starttls) = (Some(143), true);
        account.pin_sha256 = Some("ab".repeat(32));
        account.password = Some(Secret::new("pw \" quoted".into()));
        account.folders = Folders::All { exclude: Vec::new() };
        account.form = Form { compressed: true, encrypted: true };
        account.keys = Some(KeySpec {
            path: PathBuf::from("ann.keys"),
            password: Some(PasswordSpec { file: None, command: Some("pass show key".into()) }),
        });
        let here = std::env::current_dir().unwrap();
        for cmd in [None, Some("pass show mail")] {
            let text = config_text(&account, cmd, None).unwrap();
            let c = crate::cli::config::parse(text.as_bytes(), Path::new("/elsewhere")).unwrap();
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
