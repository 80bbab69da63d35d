//! Long runs with a token or password command: the token expires mid-run, and the
//! confined backup gets a fresh one through the credential helper, a process forked
//! before the sandbox closed. Against a scripted server whose tokens (or passwords) are
//! each good for one login (`FakeImap::start_expiring`); the command prints `tok-N` (or
//! `pw-N`), N counting its runs in a file outside the archive (which the confined backup
//! could neither write nor run a program to write). Also: the sandboxed process itself
//! cannot execute anything, while the helper it started before still can.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::fake_imap::{Expiring, FakeImap, Fault, Folder, Script};
use crate::support::*;
use smailarchiver::credential_helper::CredentialHelper;
use smailarchiver::sandbox::{self, Rules, Strictness, Support};

const USER: &str = "alice";

/// A message of about `size` bytes, distinct for each UID.
fn message(uid: u32, size: usize) -> Vec<u8> {
    let mut m = format!("From: Ann <ann@example.org>\r\nSubject: message {uid}\r\n\r\nmessage {uid}\r\n").into_bytes();
    while m.len() < size {
        m.extend_from_slice(format!("line of message {uid}: {}\r\n", "0123456789".repeat(6)).as_bytes());
    }
    m
}

fn messages(uids: &[u32], size: usize) -> Vec<(u32, Vec<u8>)> {
    uids.iter().map(|&u| (u, message(u, size))).collect()
}

/// A command printing `tok-N` on its Nth run (counted in `count`); from run `fail_from`
/// on (if given) it fails instead, saying so on its error output.
fn token_command(count: &Path, fail_from: Option<u32>) -> String {
    secret_command(count, "tok-", fail_from)
}

/// A command printing `PREFIX-N` on its Nth run; see [`token_command`].
fn secret_command(count: &Path, prefix: &str, fail_from: Option<u32>) -> String {
    let count = count.display();
    let fail = fail_from.map_or(String::new(), |n| {
        format!("if [ $n -ge {n} ]; then echo 'token endpoint unreachable' >&2; exit 3; fi; ")
    });
    format!("n=$(( $(cat '{count}' 2>/dev/null || echo 0) + 1 )); echo $n > '{count}'; {fail}echo {prefix}$n")
}

/// How often the token command ran.
fn runs(count: &Path) -> u32 {
    fs::read_to_string(count).map_or(0, |s| s.trim().parse().expect("a count"))
}

/// Backs up from `server` into `root` with `--oauth2-token-command command`.
fn backup(server: &FakeImap, root: &Path, command: &str, extra: &[&str]) -> Output {
    backup_with(server, root, &["--oauth2-token-command", command], extra)
}

fn backup_with(server: &FakeImap, root: &Path, login: &[&str], extra: &[&str]) -> Output {
    let (port, ca) = (server.port().to_string(), server.ca_file());
    let mut args = vec!["-u", USER, "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca];
    args.extend(["--dir", root.to_str().unwrap()]);
    args.extend(login);
    args.extend(extra);
    run(&args, &[])
}

/// The tokens (XOAUTH2) or passwords (LOGIN) each connection logged in with, in order.
fn tokens(server: &FakeImap) -> Vec<Vec<String>> {
    let bearer = format!("XOAUTH2 RESPONSE \"user={USER}\\u{{1}}auth=Bearer ");
    let login = format!("LOGIN \"{USER}\" \"");
    let secret = |c: &String| {
        let rest = c.strip_prefix(&bearer).or_else(|| c.strip_prefix(&login))?;
        rest.split(['\\', '"']).next().map(String::from)
    };
    server.commands().iter().map(|c| c.iter().filter_map(secret).collect()).collect()
}

/// The UIDs archived in folder `folder` of `root`, each checked to restore to exactly the
/// message served.
fn archived(root: &Path, folder: &str, served: &[(u32, Vec<u8>)]) -> Vec<u32> {
    let dir = root.join(USER).join(folder);
    // A folder's directory is made with the others before any is fetched: it may be empty.
    if !dir.exists() || fs::read_dir(&dir).unwrap().next().is_none() {
        return Vec::new();
    }
    let out = TempDir::new("token-restore");
    let maildir = out.join("md");
    let o = run(&["-r", dir.to_str().unwrap(), "--to-maildir", maildir.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "restore: {}", stderr(&o));
    let mut uids = Vec::new();
    for entry in fs::read_dir(maildir.join("cur")).unwrap() {
        let path = entry.unwrap().path();
        let uid: u32 = path.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().parse().unwrap();
        let (_, want) = served.iter().find(|(u, _)| *u == uid).expect("archived but never served");
        assert_same(&fs::read(&path).unwrap(), want, &format!("UID {uid}"));
        uids.push(uid);
    }
    uids.sort_unstable();
    uids
}

fn error_lines(o: &Output) -> Vec<String> {
    stderr(o).lines().filter(|l| l.starts_with("smailarchiver: error:")).map(String::from).collect()
}

/// Four messages to fetch a few at a time (with a 64 KiB budget) from a server whose
/// passwords or tokens are good for one login each and whose first connection hangs up at
/// the second fetch.
fn hanging_up_at_the_second_fetch(credentials: Expiring) -> (Vec<(u32, Vec<u8>)>, FakeImap) {
    let served = messages(&[1, 2, 3, 4], 40_000);
    let hang_up = Script::healthy().at("BODY.PEEK", 2, Fault::Bye);
    let folders = vec![Folder::new("INBOX", 7, served.clone())];
    let server = FakeImap::start_expiring(USER, credentials, 1, folders, vec![hang_up, Script::healthy()]);
    (served, server)
}

/// The server hangs up mid-run, as it does when the token's hour is up, and refuses the
/// old token at the next login. The reconnect logs in with a fresh token at once: no
/// refused login.
#[test]
fn a_token_that_expires_mid_run_is_renewed_on_reconnect() {
    let (served, server) = hanging_up_at_the_second_fetch(Expiring::Tokens("tok-"));
    let (root, state) = (TempDir::new("token-expiry"), TempDir::new("token-expiry-state"));
    let count = state.join("count");
    let o = backup(&server, root.path(), &token_command(&count, None), &["--buffer-size", "64K"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("connection lost"), "{}", stderr(&o));
    assert_eq!(tokens(&server), [vec!["tok-1"], vec!["tok-2"]], "{:?}", server.commands());
    assert_eq!(runs(&count), 2);
    assert_eq!(archived(root.path(), "INBOX", &served), [1, 2, 3, 4]);
    assert!(stdout(&o).contains("INBOX: 4 new, 0 already archived, 0 failed"), "{}", stdout(&o));
}

/// Five expiries in one run, each followed by a good login with a fresh token: every
/// connection delivers a message, then the server hangs up (its token's hour is over).
/// Each loss after progress leaves the reconnect budget whole, so the run completes; it
/// used to end in "connection lost 3 times, giving up".
#[test]
fn five_expiries_each_followed_by_a_good_login_do_not_end_the_run() {
    let served = messages(&[1, 2, 3, 4, 5, 6], 40_000);
    let hang_up = Script::healthy().at("BODY.PEEK", 2, Fault::Bye);
    let folders = vec![Folder::new("INBOX", 7, served.clone())];
    let server = FakeImap::start_expiring(USER, Expiring::Tokens("tok-"), 1, folders, vec![hang_up]);
    let (root, state) = (TempDir::new("token-five"), TempDir::new("token-five-state"));
    let count = state.join("count");
    let o = backup(&server, root.path(), &token_command(&count, None), &["--buffer-size", "64K"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("reconnecting").count(), 5, "{}", stderr(&o));
    let expected: Vec<Vec<String>> = (1..=6).map(|n| vec![format!("tok-{n}")]).collect();
    assert_eq!(tokens(&server), expected, "{:?}", server.commands());
    assert_eq!(archived(root.path(), "INBOX", &served), [1, 2, 3, 4, 5, 6]);
}

/// A second connection starts with the token the run began with, which has expired by
/// then: refused, renewed, and the same connection logs in with the fresh one.
#[test]
fn a_refused_token_is_renewed_once_and_tried_again() {
    let (a, b) = (messages(&[1, 2], 2000), messages(&[5, 6, 7], 2000));
    let folders = vec![Folder::new("A", 1, a.clone()), Folder::new("B", 2, b.clone())];
    let server = FakeImap::start_expiring(USER, Expiring::Tokens("tok-"), 1, folders, vec![Script::healthy()]);
    let (root, state) = (TempDir::new("token-refused"), TempDir::new("token-refused-state"));
    let count = state.join("count");
    let o = backup(&server, root.path(), &token_command(&count, None), &["-f", "A", "-f", "B", "--connections", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("refused"), "{}", stderr(&o));
    assert_eq!(tokens(&server), [vec!["tok-1"], vec!["tok-1", "tok-2"]], "{:?}", server.commands());
    assert_eq!(runs(&count), 2);
    assert_eq!(archived(root.path(), "A", &a), [1, 2]);
    assert_eq!(archived(root.path(), "B", &b), [5, 6, 7]);
}

/// A password command runs again only when the server refuses the password: the
/// reconnect after a hang-up tries the password in hand first.
#[test]
fn a_password_is_renewed_when_refused_and_only_then() {
    let (served, server) = hanging_up_at_the_second_fetch(Expiring::Passwords("pw-"));
    let (root, state) = (TempDir::new("password-renewal"), TempDir::new("password-renewal-state"));
    let count = state.join("count");
    let command = secret_command(&count, "pw-", None);
    let o = backup_with(&server, root.path(), &["--passwd-command", &command], &["--buffer-size", "64K"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(tokens(&server), [vec!["pw-1"], vec!["pw-1", "pw-2"]], "{:?}", server.commands());
    assert_eq!(runs(&count), 2);
    assert_eq!(archived(root.path(), "INBOX", &served), [1, 2, 3, 4]);
}

/// The token command fails when asked again: one error line naming it, exit 1, the
/// folder finished before kept, and no reconnect attempted without a token. (The server
/// hangs up between folders: a hang-up with pipelined commands unread can reset the
/// connection and take answers already sent with it, which would make the test's outcome
/// depend on timing.)
#[test]
fn a_token_command_failing_on_renewal_is_one_error_and_keeps_what_was_archived() {
    let (a, b) = (messages(&[1, 2, 3], 2000), messages(&[5, 6], 2000));
    let expired = Script::healthy().at("EXAMINE", 2, Fault::Bye);
    let folders = vec![Folder::new("A", 1, a.clone()), Folder::new("B", 2, b.clone())];
    let server = FakeImap::start_expiring(USER, Expiring::Tokens("tok-"), 1, folders, vec![expired, Script::healthy()]);
    let (root, state) = (TempDir::new("token-fails"), TempDir::new("token-fails-state"));
    let count = state.join("count");
    let o = backup(&server, root.path(), &token_command(&count, Some(2)), &["-f", "A", "-f", "B"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{}", stderr(&o));
    assert!(
        errors[0].contains(" B: ") && errors[0].contains("the OAuth2 token command failed (exit status: 3)"),
        "{}",
        errors[0]
    );
    assert!(stderr(&o).contains("token endpoint unreachable"), "the command's own message: {}", stderr(&o));
    assert!(!stderr(&o).contains("tok-"), "a token printed: {}", stderr(&o));
    assert_eq!(server.connections(), 1, "{:?}", server.commands());
    assert_eq!(runs(&count), 2);
    assert_eq!(archived(root.path(), "A", &a), [1, 2, 3]);
    assert_eq!(archived(root.path(), "B", &b), Vec::<u32>::new());
    assert!(fs::read_dir(root.join(".smailarchiver/tmp")).unwrap().next().is_none(), "temporary files left");
}

/// Inside the sandbox a thread can neither run a program nor write outside its directory;
/// the helper it started before confining itself runs a command that does both.
#[test]
fn the_sandboxed_process_cannot_execute_but_its_helper_can() {
    let (inside, outside) = (TempDir::new("token-sandbox-in"), TempDir::new("token-sandbox-out"));
    let proof = outside.join("written-by-the-helper");
    let command = format!("echo helper > '{}' && echo tok-helper", proof.display());
    let allowed: PathBuf = inside.path().canonicalize().unwrap();
    let denied_file = outside.join("written-by-the-sandbox");
    let denied_path = denied_file.clone();
    let (ran, wrote, token) = std::thread::spawn(move || {
        let helper = CredentialHelper::start(&[&command]).unwrap();
        let status =
            sandbox::restrict(&Rules { read_write: vec![allowed], ..Rules::default() }, Strictness::Auto).unwrap();
        println!("sandbox: {status}");
        let ran = std::process::Command::new("/bin/true").status().map(drop);
        let wrote = fs::write(&denied_path, "x");
        let token = helper.fetch(0, "OAuth2 token").map(|s| s.expose().to_string());
        (ran, wrote, token)
    })
    .join()
    .unwrap();
    let confined = Support::detect().abi() >= 1;
    let errno = |r: &std::io::Result<()>| r.as_ref().err().and_then(|e| e.raw_os_error());
    let expected = if confined { Some(libc::EACCES) } else { None };
    assert_eq!(errno(&ran), expected, "running /bin/true inside: {ran:?}");
    assert_eq!(errno(&wrote), expected, "writing outside: {wrote:?}");
    assert_eq!(token.unwrap(), "tok-helper");
    assert_eq!(fs::read_to_string(&proof).unwrap(), "helper\n");
    assert_eq!(denied_file.exists(), !confined);
}
