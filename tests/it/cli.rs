//! The command line's contract: one-line errors, exit codes, no output file on failure,
//! and the key password sources.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use std::path::Path;

use crate::support::fake_imap::{FakeImap, Folder, Script};
use crate::support::*;

/// A folder holding the pbkdf2 vectors (encrypted with `correct horse battery staple`).
fn pbkdf2_folder(tmp: &TempDir) -> (String, String) {
    let folder = tmp.join("INBOX");
    fs::create_dir(&folder).unwrap();
    for uid in [1, 30, 99] {
        let name = format!("{uid}.mbox.gz.enc");
        fs::copy(vectors().join("pbkdf2").join(&name), folder.join(&name)).unwrap();
    }
    let key = tmp.join("pw.key");
    fs::copy(vectors().join("keys/pbkdf2.key"), &key).unwrap();
    fs::copy(vectors().join("keys/pbkdf2.key.sha"), tmp.join("pw.key.sha")).unwrap();
    (folder.to_string_lossy().into(), key.to_string_lossy().into())
}

/// Runs the binary with `input` piped to its standard input, no password in the environment.
fn with_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    run_with_input(Command::new(bin()).args(args), input)
}

#[test]
fn version_and_help() {
    let o = run(&["--version"], &[]);
    assert_eq!(stdout(&o), format!("smailarchiver {}\n", env!("CARGO_PKG_VERSION")));
    let o = run(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--verify PATH"));
}

/// `--version --verbose` names what this CPU gets: the test asks the CPU itself.
#[test]
fn version_verbose_names_the_back_ends() {
    let o = run(&["-v", "--version"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(format!("smailarchiver {}", env!("CARGO_PKG_VERSION")).as_str()));
    let fields: std::collections::BTreeMap<&str, &str> =
        lines.map(|l| l.split_once(": ").unwrap_or_else(|| panic!("not `name: value`: {l:?}"))).collect();
    assert_eq!(fields.keys().copied().collect::<Vec<_>>(), ["aes", "deflate", "landlock", "sha256", "target"]);
    assert!(fields["target"].starts_with(&format!("{}-", std::env::consts::ARCH)), "{text}");
    assert!(fields["target"].contains(std::env::consts::OS), "{text}");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        assert_eq!(fields["aes"] == "aes-ni", has!("aes"), "{text}");
        let sha = has!("sha") && has!("sse2") && has!("ssse3") && has!("sse4.1");
        assert_eq!(fields["sha256"] == "sha-ni", sha, "{text}");
    }
    for layer in ["aes", "sha256"] {
        let v = fields[layer];
        assert!(["aes-ni", "sha-ni", "armv8 crypto extensions"].contains(&v) || v.starts_with("soft"), "{text}");
    }
    assert!(fields["deflate"].starts_with("miniz_oxide"), "{text}");
    // The kernel's landlock ABI, asked here with the system call itself.
    // SAFETY: with a null attribute and size 0, this flag only returns the ABI version.
    let abi = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<libc::c_void>(), 0usize, 1 as libc::c_uint)
    };
    let errno = std::io::Error::last_os_error().raw_os_error();
    match (abi, errno) {
        (1.., _) => assert_eq!(fields["landlock"], format!("landlock ABI {abi}"), "{text}"),
        (_, Some(libc::EOPNOTSUPP)) => assert!(fields["landlock"].contains("not enabled"), "{text}"),
        (_, Some(libc::ENOSYS)) => assert!(fields["landlock"].starts_with("no landlock (ENOSYS: "), "{text}"),
        _ => assert!(fields["landlock"].starts_with("no landlock (landlock_create_ruleset: "), "{text}"),
    }
    // Without -v, one line as before.
    assert_eq!(stdout(&run(&["--version"], &[])).lines().count(), 1);
}

#[test]
fn usage_errors_exit_2() {
    assert_one_line_error(&run(&["--bogus"], &[]), 2, "unknown option --bogus");
    assert_one_line_error(&run(&["-r"], &[]), 2, "-r needs a value");
    assert_one_line_error(&run(&["-r", "a", "--verify", "b"], &[]), 2, "cannot be combined");
    assert_one_line_error(&run(&["--to-maildir", "x"], &[]), 2, "go with -r");
    assert_one_line_error(&run(&["-o", "x"], &[]), 2, "go with -r");
    assert_one_line_error(&run(&["-r", "d", "-o", "x", "--to-maildir", "y"], &[]), 2, "cannot be combined");
    assert_one_line_error(&run(&["-q", "--verbose", "-r", "x"], &[]), 2, "contradict");
    assert_one_line_error(&run(&["-r", "x", "--since", "2024-01-01"], &[]), 2, "cannot be combined with backup");
    assert_one_line_error(&run(&["--verify", "x", "--dry-run"], &[]), 2, "cannot be combined with backup");
    assert_one_line_error(&run(&["-u", "a", "-i", "b", "--dry-run", "--list-folders"], &[]), 2, "cannot be combined");
}

#[test]
fn password_sources_in_order() {
    let tmp = TempDir::new("cli-pw");
    let (folder, key) = pbkdf2_folder(&tmp);
    let pwfile = tmp.join("pwfile");
    fs::write(&pwfile, "correct horse battery staple\n").unwrap();
    let right = "correct horse battery staple";
    // The file wins over a wrong command and a wrong environment variable.
    let o = run(
        &[
            "-r",
            &folder,
            "-k",
            &key,
            "-P",
            "--key-password-file",
            pwfile.to_str().unwrap(),
            "--key-password-command",
            "echo wrong",
        ],
        &[("SMAILARCHIVER_KEY_PASSWORD", "wrong")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(
        &["-r", &folder, "-k", &key, "-P", "--key-password-command", &format!("echo '{right}'")],
        &[("SMAILARCHIVER_KEY_PASSWORD", "wrong")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["-r", &folder, "-k", &key, "-P"], &[("SMAILARCHIVER_KEY_PASSWORD", right)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("restored 3 messages"), "{}", stdout(&o));
    // Standard input that is not a terminal: one line.
    let o = with_stdin(&["-r", &folder, "-k", &key, "-P"], format!("{right}\n").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn key_problems_are_one_line_and_write_nothing() {
    let tmp = TempDir::new("cli-keys");
    let (folder, key) = pbkdf2_folder(&tmp);
    let mbox = tmp.join("INBOX.mbox");
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["-k".into(), tmp.join("missing.key").to_string_lossy().into()], vec![], "not found"),
        (
            vec!["-k".into(), key.clone(), "-P".into()],
            vec![("SMAILARCHIVER_KEY_PASSWORD", "wrong")],
            "wrong key password",
        ),
        (vec!["-k".into(), key.clone(), "-P".into()], vec![("SMAILARCHIVER_KEY_PASSWORD", "")], "empty key password"),
        (vec!["-k".into(), key.clone()], vec![], "add -P"),
    ];
    for (extra, env, needle) in cases {
        for mode in [vec!["-r", folder.as_str()], vec!["--verify", folder.as_str()]] {
            let mut args: Vec<&str> = mode.clone();
            args.extend(extra.iter().map(String::as_str));
            let o = run(&args, &env);
            assert_one_line_error(&o, 1, needle);
            assert!(!mbox.exists(), "{args:?} wrote an output file");
        }
    }
    // An empty line on standard input is an empty password too; no line at all names
    // the ways to give one.
    let o = with_stdin(&["-r", &folder, "-k", &key, "-P"], b"\n");
    assert_one_line_error(&o, 1, "empty key password (from standard input)");
    let o = run(&["-r", &folder, "-k", &key, "-P"], &[]);
    assert_one_line_error(&o, 1, "no key password given, and standard input is empty: give --key-password-file");
    let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "only the inputs remain: {leftovers:?}");
}

#[test]
fn plain_folders_need_no_key_file() {
    let tmp = TempDir::new("cli-plain");
    let folder = tmp.join("f");
    fs::create_dir(&folder).unwrap();
    fs::copy(vectors().join("random/30.mbox.gz"), folder.join("30.mbox.gz")).unwrap();
    let o = run(&["-r", folder.to_str().unwrap(), "-k", "/nonexistent/keys"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tmp.join("f.mbox").exists());
}

#[test]
fn restore_of_an_account_directory_asks_where_to() {
    let tmp = TempDir::new("cli-acct");
    fs::create_dir_all(tmp.join("ann/INBOX")).unwrap();
    fs::copy(vectors().join("random/1.mbox"), tmp.join("ann/INBOX/1.mbox")).unwrap();
    let o = run(&["-r", tmp.join("ann").to_str().unwrap()], &[]);
    assert_one_line_error(&o, 2, "holds the folders of an account (1): give -o OUTDIR");
    assert!(!tmp.join("ann.mbox").exists());
}

#[test]
fn restore_writes_where_o_says_and_takes_mbox_files_by_their_suffix() {
    let tmp = TempDir::new("cli-o");
    let folder = tmp.join("ann/INBOX");
    fs::create_dir_all(&folder).unwrap();
    fs::copy(vectors().join("random/1.mbox"), folder.join("1.mbox")).unwrap();
    fs::copy(vectors().join("random/30.mbox.gz"), folder.join("30.mbox.gz")).unwrap();
    // A `.mbox` file not named after a UID is restored by its suffix, as the original
    // restores it, after the others, and named in one warning; other files are not messages.
    fs::copy(vectors().join("random/32.mbox"), folder.join("notes.mbox")).unwrap();
    fs::write(folder.join("README"), b"x").unwrap();
    let out = tmp.join("elsewhere/inbox.mbox");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let o = run(&["-r", folder.to_str().unwrap(), "-o", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("restored 3 messages ("), "{}", stdout(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("warning: 1 file not named UID.mbox[.gz][.enc] (") && err.contains("notes.mbox"), "{err}");
    let restored = parse_mboxrd(&fs::read(&out).unwrap());
    assert_eq!(restored.len(), 3);
    let notes = fs::read(vectors().join("random/32.mbox")).unwrap();
    assert_eq!(as_in_mbox(strip_first_line(&notes)), restored[2], "the odd file comes last");
    assert!(!tmp.join("ann/INBOX.mbox").exists(), "nothing written inside the archive");
    // The default output, DIR.mbox, lands in the user directory; it is no archive file
    // for a later verify of the whole root.
    let o = run(&["-r", folder.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["--verify", tmp.path().to_str().unwrap()], &[]);
    assert!(stdout(&o).contains("verified 3 messages: 3 good, 0 bad"), "{}", stdout(&o));
}

#[test]
fn unreadable_directory() {
    let tmp = TempDir::new("cli-unread");
    let folder = tmp.join("locked");
    fs::create_dir(&folder).unwrap();
    fs::copy(vectors().join("random/1.mbox"), folder.join("1.mbox")).unwrap();
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
    // SAFETY: geteuid reads nothing of ours and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    // Root reads anything: run the binary as nobody, as a real user would be.
    let run_as = |args: &[&str]| {
        let mut cmd = if is_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
            c
        } else {
            Command::new(bin())
        };
        cmd.args(args).stdin(Stdio::null()).output().expect("setpriv (util-linux) is needed to run this test as root")
    };
    let f = folder.to_str().unwrap();
    assert_one_line_error(&run_as(&["-r", f]), 1, "Permission denied");
    assert_one_line_error(&run_as(&["--verify", f]), 1, "Permission denied");
    assert!(!tmp.join("locked.mbox").exists());
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A lock file planted as a symlink is not followed (as root it would create a file
/// anywhere): the backup stops with a one-line error and nothing appears at the target.
#[test]
fn a_planted_lock_symlink_is_not_followed() {
    let tmp = TempDir::new("cli-lock-link");
    let root = tmp.join("archive");
    fs::create_dir(&root).unwrap();
    let target = tmp.join("elsewhere");
    std::os::unix::fs::symlink(&target, root.join(".smailarchiver.lock")).unwrap();
    let o = run(
        &["-u", "ann", "-i", "127.0.0.1", "--port", "1", "--dir", root.to_str().unwrap()],
        &[("SMAILARCHIVER_PASSWD", "pw")],
    );
    assert_one_line_error(&o, 1, ".smailarchiver.lock is a symbolic link");
    assert!(!target.exists(), "the lock was created through the symlink");
}

/// A missing key file is never replaced by a new one while the archive holds encrypted
/// messages: a second key could not read them, and new mail would be cut off from the old.
#[test]
fn no_new_key_for_an_archive_with_encrypted_messages() {
    let tmp = TempDir::new("cli-key-safety");
    let root = tmp.join("archive");
    fs::create_dir_all(root.join("ann/INBOX")).unwrap();
    fs::copy(vectors().join("random/1.mbox.enc"), root.join("ann/INBOX/1.mbox.enc")).unwrap();
    let keys = tmp.join("moved.keys");
    let args = ["-u", "ann", "-i", "127.0.0.1", "--port", "1", "-e", "-k", keys.to_str().unwrap(), "-q"];
    let o = run(&[&args[..], &["--dir", root.to_str().unwrap()]].concat(), &[("SMAILARCHIVER_PASSWD", "pw")]);
    assert_one_line_error(&o, 1, &format!("the key file {} is missing, but ", keys.display()));
    assert!(!keys.exists(), "a key file was created");
    // An archive without encrypted messages gets its new key, and the one line about it
    // shows even with -q (the backup itself then fails: nothing listens on port 1).
    let fresh = tmp.join("fresh");
    let o = run(&[&args[..], &["--dir", fresh.to_str().unwrap()]].concat(), &[("SMAILARCHIVER_PASSWD", "pw")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("created the key file {}", keys.display())), "{}", stderr(&o));
    assert!(keys.exists());
}

// ---- issue 13, item 7: the messages a new user meets ----

/// A config file in `tmp` of `accounts` (JSON objects), `extra` top-level keys.
fn config_file(tmp: &TempDir, accounts: &[String], extra: &str) -> String {
    let path = tmp.join("config.json");
    fs::write(&path, format!(r#"{{"list": [{}]{extra}}}"#, accounts.join(","))).unwrap();
    path.to_string_lossy().into_owned()
}

/// An account entry for the config on 127.0.0.1 at `port`, archived in `dir`.
fn account_entry(user: &str, port: u16, dir: &Path, more: &str) -> String {
    format!(
        r#"{{"user": "{user}", "imap": "127.0.0.1", "port": {port}, "passwd": "pw", "folder": "INBOX",
            "encrypt": 0, "compress": 0, "archive_dir": "{}"{more}}}"#,
        dir.display()
    )
}

#[test]
fn a_missing_mail_password_is_named_once_with_the_ways_to_give_it() {
    let tmp = TempDir::new("cli-mail-pw");
    let root = tmp.join("archive");
    let o = run(&["-u", "alice", "-i", "127.0.0.1", "--port", "1", "--dir", root.to_str().unwrap()], &[]);
    assert_one_line_error(
        &o,
        1,
        "alice@127.0.0.1: no email password given, and standard input is empty: give --passwd-command \
         (config \"passwd_cmd\"), SMAILARCHIVER_PASSWD, or one line on standard input",
    );
    assert_eq!(stderr(&o).matches("alice@127.0.0.1").count(), 1, "{}", stderr(&o));
    assert!(!root.exists(), "the archive root was made");
}

#[test]
fn the_mail_password_is_read_from_piped_input() {
    let message = b"From: a@example.org\r\nSubject: piped\r\n\r\nbody\r\n".to_vec();
    let server = FakeImap::start(
        "alice",
        "piped pw",
        vec![Folder::new("INBOX", 3, vec![(4, message)])],
        vec![Script::healthy()],
    );
    let tmp = TempDir::new("cli-mail-stdin");
    let root = tmp.join("archive");
    let (port, ca) = (server.port().to_string(), server.ca_file());
    let args = ["-u", "alice", "-i", "127.0.0.1", "--port", &port, "--ca-file", &ca, "--dir", root.to_str().unwrap()];
    let o = with_stdin(&args, b"piped pw\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(root.join("alice/INBOX/4.mbox").is_file(), "{}", stdout(&o));
}

#[test]
fn an_archive_directory_that_is_a_file_is_named_as_such() {
    let tmp = TempDir::new("cli-dir-file");
    let file = tmp.join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let pw = [("SMAILARCHIVER_PASSWD", "pw")];
    let o = run(&["-u", "alice", "-i", "127.0.0.1", "--port", "1", "--dir", file.to_str().unwrap()], &pw);
    assert_one_line_error(&o, 1, &format!("the archive directory {} is a file, not a directory", file.display()));
    let below = file.join("sub");
    let o = run(&["-u", "alice", "-i", "127.0.0.1", "--port", "1", "--dir", below.to_str().unwrap()], &pw);
    assert_one_line_error(&o, 1, "cannot be made: part of its path is a file");
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn config_slips_are_pointed_out() {
    let tmp = TempDir::new("cli-config-slips");
    let root = tmp.join("archive");
    let entry = account_entry("alice", 1, &root, "").replace(r#""folder""#, r#""folders""#);
    let config = config_file(&tmp, &[entry], "");
    assert_one_line_error(
        &run(&["-c", &config], &[]),
        2,
        "account alice: unknown key \"folders\" (did you mean \"folder\"?)",
    );
    // An unknown key that is not needed is a warning, with its likely meaning.
    let config = config_file(&tmp, &[account_entry("alice", 1, &root, r#", "timout": 5"#)], "");
    let o = run(&["-c", &config], &[]);
    let first = stderr(&o).lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first,
        format!(
            "smailarchiver: warning: config {config}: unknown keys ignored: account alice: timout (did you mean \"timeout\"?)"
        )
    );
    // A bad CA file is named by its config key.
    let config = config_file(&tmp, &[account_entry("alice", 1, &root, r#", "ca_file": "/nonexistent/ca.pem""#)], "");
    assert_one_line_error(&run(&["-c", &config], &[]), 2, "account alice: \"ca_file\" /nonexistent/ca.pem: ");
}

#[test]
fn several_accounts_end_with_a_summary_line() {
    let tmp = TempDir::new("cli-summary");
    let message = b"From: a@example.org\r\nSubject: one\r\n\r\nbody\r\n".to_vec();
    let size = message.len();
    let server =
        FakeImap::start("pw", "pw", vec![Folder::new("INBOX", 3, vec![(1, message)])], vec![Script::healthy()]);
    let ca = format!(r#", "ca_file": "{}""#, server.ca_file());
    let good = |n: &str| account_entry("pw", server.port(), &tmp.join(n), &ca);
    // All good: a result line, which -q keeps quiet.
    let config = config_file(&tmp, &[good("a"), good("b")], "");
    let o = run(&["-c", &config], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with(&format!("2 accounts: 2 ok, 0 failed; 2 new messages, {} bytes in ", 2 * size)), "{last}");
    let o = run(&["-c", &config, "-q"], &[]);
    assert_eq!((o.status.code(), stdout(&o).as_str(), stderr(&o).as_str()), (Some(0), "", ""));
    // One failing: the line goes to standard error, even with -q, for the cron mail.
    let config = config_file(&tmp, &[good("c"), account_entry("pw", 1, &tmp.join("d"), "")], "");
    let o = run(&["-c", &config, "-q"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    let last = stderr(&o).lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with(&format!("smailarchiver: 2 accounts: 1 ok, 1 failed; 1 new message, {size} bytes in ")),
        "{last}"
    );
}

#[test]
fn starttls_on_an_implicit_tls_port_says_so_at_once() {
    let server = FakeImap::start("alice", "pw", vec![Folder::new("INBOX", 3, Vec::new())], vec![Script::healthy()]);
    let tmp = TempDir::new("cli-starttls");
    let (port, ca) = (server.port().to_string(), server.ca_file());
    // With the default 60 s timeout, only recognising the port ends this run with this message.
    let o = run(
        &[
            "-u",
            "alice",
            "-i",
            "127.0.0.1",
            "--port",
            &port,
            "--starttls",
            "--ca-file",
            &ca,
            "--dir",
            tmp.join("a").to_str().unwrap(),
        ],
        &[("SMAILARCHIVER_PASSWD", "pw")],
    );
    assert_one_line_error(
        &o,
        1,
        &format!(
            "no IMAP greeting from 127.0.0.1:{port}: it speaks TLS at once, an implicit-TLS port: leave out --starttls"
        ),
    );
    // The run's connection and its probe both ended before TLS: what the server saw
    // (each is recorded when the server's thread for it notices; the run is over).
    let mut errors = Vec::new();
    for _ in 0..600 {
        errors.extend(server.take_errors());
        if errors.len() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn a_bad_since_date_is_a_usage_error() {
    for date in ["2024-13-01", "01/02/2024", "2023-02-29"] {
        let o = run(&["-u", "a", "-i", "127.0.0.1", "--since", date], &[]);
        assert_one_line_error(&o, 2, &format!("--since '{date}': "));
    }
    let tmp = TempDir::new("cli-since-config");
    let config = config_file(&tmp, &[account_entry("alice", 1, &tmp.join("a"), r#", "since": "2024-02-30""#)], "");
    assert_one_line_error(&run(&["-c", &config], &[]), 2, "account alice: \"since\" '2024-02-30': no such day");
}

// ---- issue 13, item 6: a wrong key is said once ----

#[test]
fn a_wrong_key_stops_verify_and_restore_with_one_line() {
    let tmp = TempDir::new("cli-wrong-key");
    // Three files encrypted with the pbkdf2 key, tried with another (valid) key.
    let (folder, _) = pbkdf2_folder(&tmp);
    let wrong = vectors().join("keys/random.key");
    let wrong = wrong.to_str().unwrap();
    let needle = format!(
        "the key {wrong} does not match the archive {folder}: none of the 3 encrypted files and metadata journals \
         tried authenticates with it (wrong key file or password?)"
    );
    for args in [
        vec!["--verify", folder.as_str(), "-k", wrong],
        vec!["-r", folder.as_str(), "-k", wrong],
        vec!["-r", folder.as_str(), "-k", wrong, "--to-maildir", tmp.join("md").to_str().unwrap()],
    ] {
        let o = run(&args, &[]);
        assert_one_line_error(&o, 1, &needle);
        assert_eq!(stdout(&o), "", "{args:?}");
    }
    assert!(!tmp.join("INBOX.mbox").exists() && !tmp.join("md").exists(), "an output was written");
    // Real damage (one good file among bad ones) keeps the list of bad files.
    fs::copy(vectors().join("random/1.mbox.gz.enc"), Path::new(&folder).join("2.mbox.gz.enc")).unwrap();
    let o = run(&["--verify", &folder, "-k", wrong], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).matches("MAC check failed").count(), 3, "{}", stdout(&o));
    assert!(stdout(&o).contains("verified 4 messages: 1 good, 3 bad (3 damaged, 0 missing)"), "{}", stdout(&o));
}

// ---- release 0.7.0: the command line over the config file ----

/// A config file sets defaults and the flags win: `"quiet": 1` does not silence `-v`,
/// `-u` picks an account, `--dir` moves its archive, `-z` compresses.
#[test]
fn flags_win_over_the_config_file() {
    let tmp = TempDir::new("cli-flags-win");
    let message = b"From: a@example.org\r\nSubject: one\r\n\r\nbody\r\n".to_vec();
    let server =
        FakeImap::start("pw", "pw", vec![Folder::new("INBOX", 3, vec![(1, message)])], vec![Script::healthy()]);
    let ca = format!(r#", "ca_file": "{}""#, server.ca_file());
    let bob = account_entry("bob", 1, &tmp.join("b"), "");
    let config = config_file(&tmp, &[account_entry("pw", server.port(), &tmp.join("a"), &ca), bob], r#", "quiet": 1"#);
    let elsewhere = tmp.join("elsewhere");
    let o = run(&["-c", &config, "-v", "-u", "pw", "-z", "--dir", elsewhere.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("UID 1"), "-v: one line per message: {}", stdout(&o));
    assert!(elsewhere.join("pw/INBOX/1.mbox.gz").is_file(), "{}", stdout(&o));
    assert!(!tmp.join("a").exists() && !tmp.join("b").exists());
    // Without -v the config's "quiet" holds.
    let o = run(&["-c", &config, "-u", "pw"], &[]);
    assert_eq!((o.status.code(), stdout(&o).as_str(), stderr(&o).as_str()), (Some(0), "", ""));
    // A user the config does not have is named with the ones it has.
    assert_one_line_error(
        &run(&["-c", &config, "-u", "carol"], &[]),
        2,
        "no account of user carol (it has pw@127.0.0.1, bob@127.0.0.1)",
    );
}

/// Under `-c`, messages name the config keys, not the flags.
#[test]
fn messages_under_a_config_name_its_keys() {
    let server = FakeImap::start("alice", "pw", vec![Folder::new("INBOX", 3, Vec::new())], vec![Script::healthy()]);
    let tmp = TempDir::new("cli-config-names");
    let config = config_file(&tmp, &[account_entry("alice", server.port(), &tmp.join("a"), "")], "");
    let o = run(&["-c", &config], &[]);
    assert_one_line_error(
        &o,
        1,
        "if that is your server's certificate, trust it with \"ca_file\" or \"pin_sha256\": \"",
    );
    let config = config_file(
        &tmp,
        &[account_entry("alice", server.port(), &tmp.join("a"), r#", "starttls": 1, "timeout": 5"#)],
        "",
    );
    assert_one_line_error(&run(&["-c", &config], &[]), 1, "implicit-TLS port: leave out \"starttls\"");
    // The same run from flags names the flags.
    let dir = tmp.join("flags");
    let (port, dir) = (server.port().to_string(), dir.to_str().unwrap().to_string());
    let o = run(&["-u", "alice", "-i", "127.0.0.1", "--port", &port, "--dir", &dir], &[("SMAILARCHIVER_PASSWD", "pw")]);
    assert_one_line_error(&o, 1, "trust it with --ca-file or --pin-sha256 ");
    // Every connection ended in the handshake, as meant: what the server saw.
    let mut errors = Vec::new();
    let mut quiet_polls = 0;
    while quiet_polls < 6 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let new = server.take_errors();
        quiet_polls = if new.is_empty() { quiet_polls + 1 } else { 0 };
        errors.extend(new);
    }
    assert!(!errors.is_empty());
}
