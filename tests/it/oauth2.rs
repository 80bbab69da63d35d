//! OAuth 2.0 built in, end to end: `--oauth2-login` against a mock provider (both flows: the
//! device code, which the test approves at the provider; the authorization code with PKCE,
//! the test playing the browser, coming back to the loopback listener or pasting the final
//! address), then unattended backups from a scripted IMAP server that takes only the access
//! tokens the provider issued (XOAUTH2, or OAUTHBEARER too) and ends a session when its
//! token expires, as Exchange Online does. Also: rotated refresh tokens kept, a revoked one
//! ending the run with one line, tokens in no output, no process list and no environment.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::fake_imap::{FakeImap, Folder, Offer, Script};
use crate::support::mock_oauth::{self, config, device_login, Login, MockOAuth, Options, USER};
use crate::support::*;
use serde_json::json;
const GOOGLE_SCOPE: &str = "https://mail.google.com/";

/// A message of about `size` bytes, distinct for each UID.
fn message(uid: u32, size: usize) -> Vec<u8> {
    let mut m = format!("From: Ann <ann@example.org>\r\nSubject: message {uid}\r\n\r\nmessage {uid}\r\n").into_bytes();
    while m.len() < size {
        m.extend_from_slice(format!("line of message {uid}: {}\r\n", "0123456789".repeat(6)).as_bytes());
    }
    m
}

fn inbox(n: u32, size: usize) -> Vec<Folder> {
    vec![Folder::new("INBOX", 7, (1..=n).map(|u| (u, message(u, size))).collect())]
}

/// The scripted server: only the provider's tokens, by `mechanisms`.
fn imap(mock: &MockOAuth, mechanisms: &'static str, folders: Vec<Folder>, offer: Offer) -> FakeImap {
    FakeImap::start_bearer(USER, mock.check(), mechanisms, folders, vec![Script::healthy()], offer)
}

fn microsoft() -> serde_json::Value {
    json!({"provider": "microsoft", "client_id": "client-1"})
}

/// The default token file of the account on `server`.
fn token_file(root: &Path, server: &FakeImap) -> PathBuf {
    root.join(".smailarchiver/oauth2").join(format!("{USER}@127.0.0.1-{}.token", server.port()))
}

/// The authorization address the login shows.
fn authorization_url(login: &mut Login) -> String {
    login.wait_for(|l| l.trim().starts_with("https://").then(|| l.trim().to_string()))
}

fn backup(config: &Path) -> Output {
    run(&["-c", config.to_str().unwrap(), "--buffer-size", "64K"], &[])
}

/// The UIDs archived in INBOX.
fn archived(root: &Path) -> Vec<u32> {
    let mut uids: Vec<u32> =
        sorted_names(&root.join(USER).join("INBOX")).iter().filter_map(|n| n.split('.').next()?.parse().ok()).collect();
    uids.sort_unstable();
    uids
}

/// Asserts no issued secret shows in `o`'s output.
#[track_caller]
fn no_secret_in(o: &Output) {
    for text in [stdout(o), stderr(o)] {
        assert!(!text.contains("SECRET-"), "a secret in the output: {text}");
    }
}

/// The process `pid` and its descendants: (pid, cmdline and environment) of each.
fn process_tree(pid: u32) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let mut seen = Vec::new();
        for f in ["cmdline", "environ"] {
            seen.extend(fs::read(format!("/proc/{p}/{f}")).unwrap_or_default());
        }
        out.push((p, seen));
        for task in fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten().flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            todo.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out
}

/// Runs a backup of `config`, looking at its process list and environment (and its
/// children's) every 50 ms while it runs: no issued secret may show there.
fn watched_backup(config: &Path) -> (Output, usize) {
    let child = Command::new(bin())
        .args(["-c", config.to_str().unwrap(), "--buffer-size", "64K"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let watcher = std::thread::spawn(move || {
        let mut looks = 0;
        while rx.try_recv().is_err() {
            for (p, text) in process_tree(pid) {
                assert!(!String::from_utf8_lossy(&text).contains("SECRET-"), "a secret in /proc/{p}");
            }
            looks += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        looks
    });
    let o = child.wait_with_output().unwrap();
    tx.send(()).unwrap();
    (o, watcher.join().unwrap())
}

/// Microsoft 365: the device code flow (the provider first says `authorization_pending`,
/// then `slow_down`), an unattended backup with the stored refresh token, then the refresh
/// token revoked: one clear line, exit 1, and what was archived stays.
#[test]
fn device_code_login_then_unattended_backups_then_a_revoked_token() {
    let options =
        Options { interval: 1, device_answers: vec!["authorization_pending", "slow_down"], ..Options::default() };
    let mock = MockOAuth::start(options);
    let server = imap(&mock, "XOAUTH2", inbox(3, 2000), Offer::default());
    let (dir, root) = (TempDir::new("oauth2-device"), TempDir::new("oauth2-device-root"));
    let config = config(dir.path(), root.path(), &server, &mock, microsoft(), json!({}));

    let o = device_login(&config, &mock);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    no_secret_in(&o);
    assert!(stderr(&o).contains(&format!("open {} in a browser", mock.url("/device"))), "{}", stderr(&o));
    let file = token_file(root.path(), &server);
    assert!(
        stdout(&o).contains(&format!("signed in; the refresh token is in {} (mode 0600)", file.display())),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("IMAP login to 127.0.0.1:"), "{}", stdout(&o));
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["refresh_token"].as_str(), mock.refresh_tokens().first().map(String::as_str));
    // RFC 8628: the interval first, then 5 s more after slow_down, never sooner.
    let polls: Vec<Instant> = mock
        .log()
        .iter()
        .filter(|l| l.grant.as_deref().is_some_and(|g| g.ends_with("device_code")))
        .map(|l| l.at)
        .collect();
    assert_eq!(polls.len(), 3, "{:?}", mock.log());
    assert!(polls[2] - polls[1] >= Duration::from_secs(6), "{:?}", polls[2] - polls[1]);
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
    assert!(server.commands()[0].iter().any(|c| c == "AUTH OK"), "{:?}", server.commands());

    let o = backup(&config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    no_secret_in(&o);
    assert_eq!(archived(root.path()), [1, 2, 3]);
    assert_eq!(mock.granted("refresh_token"), 1);

    mock.revoke();
    server.append("INBOX", 4, message(4, 2000));
    let o = backup(&config);
    no_secret_in(&o);
    assert_one_line_error(&o, 1, "invalid_grant");
    assert!(
        stderr(&o).contains(&format!("the OAuth2 refresh token in {} was refused", file.display())),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("sign in again with --oauth2-login"), "{}", stderr(&o));
    assert_eq!(archived(root.path()), [1, 2, 3]);
    // No login was tried without a token.
    assert_eq!(server.connections(), 2, "{:?}", server.commands());
}

/// Google: the authorization code with PKCE, the browser on this machine coming back to
/// the loopback listener; the client secret from a file; token answers in chunks; the
/// backup then logs in with OAUTHBEARER, which the server offers next to XOAUTH2.
#[test]
fn browser_login_through_the_loopback_listener() {
    let options =
        Options { client_secret: Some("SECRET-CLIENT"), chunked: true, scope: GOOGLE_SCOPE, ..Options::default() };
    let mock = MockOAuth::start(options);
    let server = imap(&mock, "XOAUTH2 OAUTHBEARER", inbox(2, 2000), Offer::default());
    let (dir, root) = (TempDir::new("oauth2-loopback"), TempDir::new("oauth2-loopback-root"));
    let secret = dir.join("client-secret");
    fs::write(&secret, "SECRET-CLIENT\n").unwrap();
    let google = json!({"provider": "google", "client_id": "client-1", "client_secret_file": secret});
    let config = config(dir.path(), root.path(), &server, &mock, google, json!({}));

    let mut login = Login::start(&config);
    let url = authorization_url(&mut login);
    assert!(url.starts_with(&mock.url("/authorize?")), "{url}");
    for want in ["code_challenge_method=S256", "access_type=offline", "redirect_uri=http%3A%2F%2F127.0.0.1%3A"] {
        assert!(url.contains(want), "{want} not in {url}");
    }
    let (status, location) = mock_oauth::browser_get(&url, &mock.ca_file());
    assert_eq!(status, 302);
    let page = mock_oauth::loopback_get(&location.unwrap());
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("Signed in"), "{page}");
    let o = login.finish();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    no_secret_in(&o);
    assert!(stdout(&o).contains("signed in (browser)"), "{}", stdout(&o));
    assert_eq!(mock.granted("authorization_code"), 1);

    let o = backup(&config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    no_secret_in(&o);
    assert_eq!(archived(root.path()), [1, 2]);
    let last = server.commands().pop().unwrap();
    assert!(last.iter().any(|c| c.starts_with("OAUTHBEARER RESPONSE \"n,a=alice@example.org,")), "{last:?}");
    assert!(last.iter().any(|c| c == "AUTH OK"), "{last:?}");
}

/// The browser on another machine: its last page does not load, so the user pastes its
/// address (after a slip: a line that is neither an address nor a code).
#[test]
fn browser_login_by_pasting_the_final_address() {
    let options = Options { client_secret: Some("SECRET-CLIENT"), scope: GOOGLE_SCOPE, ..Options::default() };
    let mock = MockOAuth::start(options);
    let server = imap(&mock, "XOAUTH2 OAUTHBEARER", inbox(1, 500), Offer::default());
    let (dir, root) = (TempDir::new("oauth2-paste"), TempDir::new("oauth2-paste-root"));
    let google = json!({"provider": "google", "client_id": "client-1", "client_secret": "SECRET-CLIENT"});
    let config = config(dir.path(), root.path(), &server, &mock, google, json!({}));

    let mut login = Login::start(&config);
    let url = authorization_url(&mut login);
    let (_, location) = mock_oauth::browser_get(&url, &mock.ca_file());
    login.write("yes I did it\n");
    login.wait_for(|l| l.contains("neither an address nor a code").then_some(()));
    login.write(&format!("{}\n", location.unwrap()));
    let o = login.finish();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("signed in (pasted address)"), "{}", stdout(&o));
    // The code and its verifier were checked by the provider, and the redirect matched.
    assert_eq!(mock.granted("authorization_code"), 1);
    let o = backup(&config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(root.path()), [1]);
}

/// Microsoft 365 with short-lived tokens and a slow link: tokens expire mid-run again and
/// again and the server ends the session each time ("AccessTokenExpired"); every reconnect
/// logs in with a fresh token, none is refused, the run finishes, and the refresh tokens
/// the provider rotates are kept (the old ones it refuses from then on). Nothing secret in
/// the process list or environment meanwhile.
#[test]
fn tokens_that_expire_mid_run_are_renewed_without_a_failed_login() {
    let options = Options { rotate: true, ..Options::default() };
    let mock = MockOAuth::start(options);
    let offer = Offer { pace: Duration::from_millis(200), ..Offer::default() };
    let server = imap(&mock, "XOAUTH2", inbox(30, 40_000), offer);
    let (dir, root) = (TempDir::new("oauth2-expiry"), TempDir::new("oauth2-expiry-root"));
    let config = config(dir.path(), root.path(), &server, &mock, microsoft(), json!({}));
    let o = device_login(&config, &mock);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    mock.set_lifetime(Duration::from_secs(1));
    let (o, looks) = watched_backup(&config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    no_secret_in(&o);
    assert!(looks > 10, "the process list was looked at {looks} times");
    assert_eq!(archived(root.path()), (1..=30).collect::<Vec<_>>());
    let commands = server.commands();
    // The login's connection, then the backup's: five expiries at least, each followed by a
    // good login.
    let backup_connections = &commands[1..];
    assert!(backup_connections.len() >= 6, "{} connections", backup_connections.len());
    // Each loss said as a warning (the server's BYE, or a write into the closed socket).
    assert!(stderr(&o).contains("AccessTokenExpired"), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("reconnecting").count(), backup_connections.len() - 1, "{}", stderr(&o));
    assert!(!stderr(&o).contains("not refreshed"), "{}", stderr(&o));
    assert!(commands.iter().flatten().all(|c| c != "AUTH NO"), "a refused login: {commands:?}");
    assert_eq!(commands.iter().flatten().filter(|c| *c == "AUTH OK").count(), commands.len());
    // One refresh at the start, one per reconnect.
    assert!(mock.granted("refresh_token") >= backup_connections.len(), "{:?}", mock.log());
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(token_file(root.path(), &server)).unwrap()).unwrap();
    assert_eq!(mock.refresh_tokens(), [saved["refresh_token"].as_str().unwrap().to_string()]);

    // The rotated token the run kept is the one the next run uses.
    mock.set_lifetime(Duration::from_secs(3600));
    server.append("INBOX", 31, message(31, 500));
    let o = backup(&config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(root.path()).len(), 31);
}

/// `"seal": true` with an encrypted archive: the refresh token is sealed with the
/// archive's key (made by the login), so the file alone reveals nothing; backups open it.
#[test]
fn a_sealed_token_file_opens_only_with_the_archive_key() {
    let mock = MockOAuth::start(Options::default());
    let server = imap(&mock, "XOAUTH2", inbox(2, 1000), Offer::default());
    let (dir, root) = (TempDir::new("oauth2-sealed"), TempDir::new("oauth2-sealed-root"));
    let keys = dir.join("archive.keys");
    let sealed = json!({"provider": "microsoft", "client_id": "client-1", "seal": true});
    let config =
        config(dir.path(), root.path(), &server, &mock, sealed, json!({"encrypt": 1, "keys": keys, "promp": 0}));
    let o = device_login(&config, &mock);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("created the key file"), "{}", stderr(&o));
    assert!(stdout(&o).contains("sealed with the archive's key"), "{}", stdout(&o));
    let text = fs::read_to_string(token_file(root.path(), &server)).unwrap();
    assert!(text.contains("sealed_refresh_token") && !text.contains("SECRET-"), "{text}");
    let o = backup(&config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(archived(root.path()), [1, 2]);
    // Without the key file: one line saying so.
    fs::rename(&keys, dir.join("elsewhere.keys")).unwrap();
    let o = backup(&config);
    assert_one_line_error(&o, 1, "the OAuth2 token is sealed with the archive's key, but the key file");
}

/// What goes wrong before any sign-in: one line each, and no token file written.
#[test]
fn mistakes_before_signing_in() {
    let o = run(&["-u", USER, "-i", "127.0.0.1", "--oauth2-login"], &[]);
    assert_one_line_error(&o, 2, "--oauth2-login needs --oauth2 PROVIDER");
    let o = run(&["-u", USER, "-i", "127.0.0.1", "--oauth2", "yahoo"], &[]);
    assert_one_line_error(&o, 2, "'yahoo' is not one of google, microsoft");
    let o =
        run(&["-u", USER, "-i", "127.0.0.1", "--oauth2", "google", "--oauth2-client-id", "x", "--oauth2-login"], &[]);
    assert_one_line_error(&o, 2, "--oauth2-client-secret-file: missing");
    let o =
        run(&["-u", USER, "-i", "127.0.0.1", "--oauth2", "microsoft", "--oauth2-client-id", "x", "--oauth2-seal"], &[]);
    assert_one_line_error(&o, 2, "sealing the OAuth2 token needs the archive's key");
    let o = run(&["-u", USER, "-i", "127.0.0.1", "--oauth2-client-id", "x"], &[]);
    assert_one_line_error(&o, 2, "the --oauth2-* options go with --oauth2 PROVIDER");
    let o = run(&["-u", USER, "-i", "127.0.0.1", "--oauth2", "microsoft", "--oauth2-client-id", "x", "-p", "pw"], &[]);
    assert_one_line_error(&o, 2, "-p, --passwd-command and --oauth2-token-command do not go with it");

    // A backup before any sign-in, and one whose token file is a symlink.
    let mock = MockOAuth::start(Options::default());
    let server = imap(&mock, "XOAUTH2", inbox(1, 100), Offer::default());
    let (dir, root) = (TempDir::new("oauth2-mistakes"), TempDir::new("oauth2-mistakes-root"));
    let config = config(dir.path(), root.path(), &server, &mock, microsoft(), json!({}));
    let o = backup(&config);
    assert_one_line_error(&o, 1, "no OAuth2 token file");
    let file = token_file(root.path(), &server);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(dir.join("config.json"), &file).unwrap();
    let o = backup(&config);
    assert_one_line_error(&o, 1, "is a symbolic link, not a token file");
    assert_eq!(server.connections(), 0);
    assert!(mock.log().is_empty(), "{:?}", mock.log());
}
