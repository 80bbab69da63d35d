//! The command line's contract: one-line errors, exit codes, no output file on failure,
//! and the key password sources.

mod util;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use util::*;

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
    assert!(fields["landlock"].contains("landlock"), "{text}");
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
    let mut child = Command::new(bin())
        .args(["-r", &folder, "-k", &key, "-P"])
        .env_remove("SMAILARCHIVER_KEY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{right}\n").as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
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
    // An empty line on standard input is an empty password too.
    let o = Command::new(bin())
        .args(["-r", &folder, "-k", &key, "-P"])
        .env_remove("SMAILARCHIVER_KEY_PASSWORD")
        .stdin(Stdio::from(fs::File::open("/dev/null").unwrap()))
        .output()
        .unwrap();
    assert_one_line_error(&o, 1, "empty key password");
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
fn restore_writes_where_o_says_and_ignores_what_is_not_an_archive_file() {
    let tmp = TempDir::new("cli-o");
    let folder = tmp.join("ann/INBOX");
    fs::create_dir_all(&folder).unwrap();
    fs::copy(vectors().join("random/1.mbox"), folder.join("1.mbox")).unwrap();
    fs::copy(vectors().join("random/30.mbox.gz"), folder.join("30.mbox.gz")).unwrap();
    // A restore output and other programs' files beside them are not messages.
    fs::copy(vectors().join("random/32.mbox"), folder.join("notes.mbox")).unwrap();
    fs::write(folder.join("README"), b"x").unwrap();
    let out = tmp.join("elsewhere/inbox.mbox");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let o = run(&["-r", folder.to_str().unwrap(), "-o", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("restored 2 messages ("), "{}", stdout(&o));
    assert_eq!(parse_mboxrd(&fs::read(&out).unwrap()).len(), 2);
    assert!(!tmp.join("ann/INBOX.mbox").exists(), "nothing written inside the archive");
    // The default output, DIR.mbox, lands in the user directory; it is no archive file
    // for a later verify of the whole root.
    let o = run(&["-r", folder.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["--verify", tmp.path().to_str().unwrap()], &[]);
    assert!(stdout(&o).contains("verified 2 files: 2 good, 0 bad"), "{}", stdout(&o));
}

#[test]
fn unreadable_directory() {
    let tmp = TempDir::new("cli-unread");
    let folder = tmp.join("locked");
    fs::create_dir(&folder).unwrap();
    fs::copy(vectors().join("random/1.mbox"), folder.join("1.mbox")).unwrap();
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
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
