//! The sandbox as users meet it: a symlink planted in the archive cannot lead a backup or
//! a restore outside; a symlinked archive root still works; `--sandbox-check` proves the
//! confinement; `--sandbox off` really is off.
//!
//! Every assertion follows the running kernel's landlock ABI: `--sandbox require` works
//! from ABI 4 (files and TCP) and below it must fail with its one-line error, writing
//! nothing; `--sandbox auto` confines files from ABI 1 (a Maildir restore from ABI 2) and
//! runs unconfined without landlock, where a planted symlink is followed.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::dovecot::Dovecot;
use crate::support::*;
use smailarchiver::sandbox::Support;

const PW: &str = "sandbox pw";

fn backup(d: &Dovecot, root: &str, extra: &[&str]) -> std::process::Output {
    let port = d.imaps_port().to_string();
    let ca = d.cert_pem_path();
    let args = ["-u", "sam", "-i", "127.0.0.1", "--port", &port, "--ca-file", ca.to_str().unwrap(), "--dir", root];
    run(&[&args[..], extra].concat(), &[("SMAILARCHIVER_PASSWD", PW)])
}

fn abi() -> u32 {
    Support::detect().abi()
}

/// What `--sandbox require` must print on this kernel, the whole of standard error; `None`
/// from ABI 4, where it confines fully. A Maildir restore moves files between directories,
/// which ABI 1 cannot confine at all.
fn require_error(maildir_restore: bool) -> Option<String> {
    const TRUNCATE: &str = "truncating files (needs landlock ABI 3, Linux 6.2)";
    const TCP: &str = "TCP connections (needs landlock ABI 4, Linux 6.7)";
    let status = match abi() {
        0 => format!("not sandboxed: {}", Support::detect()),
        1 if maildir_restore => "not sandboxed: landlock ABI 1 refuses moving files between directories, \
                                 which this run does (needs ABI 2, Linux 5.19)"
            .into(),
        a @ (1 | 2) => format!("landlock ABI {a}: partially enforced; not confined: {TRUNCATE}, {TCP}"),
        3 => format!("landlock ABI 3: partially enforced; not confined: {TCP}"),
        _ => return None,
    };
    Some(format!(
        "smailarchiver: error: sandbox required (--sandbox require), but {status}; use --sandbox auto to run anyway\n"
    ))
}

/// Asserts that a run with `--sandbox require` failed with exactly its one-line error.
#[track_caller]
fn assert_required_error(o: &Output, expected: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert_eq!(stderr(o), expected);
}

/// A symlink planted in a folder's place leads nowhere: the backup never writes through it
/// (the layout refuses to adopt it and archives the folder in a fallback directory beside
/// it) in any sandbox mode, and `--sandbox require` below ABI 4 refuses to run at all.
#[test]
fn a_symlink_in_the_archive_cannot_lead_a_backup_outside() {
    let d = Dovecot::start();
    d.add_user("sam", PW);
    d.append("sam", PW, "INBOX", b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n");
    let tmp = TempDir::new("sbx-link");
    let outside = tmp.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let root = tmp.join("archive");
    fs::create_dir_all(root.join("sam")).unwrap();
    symlink(&outside, root.join("sam/INBOX")).unwrap();
    let mut archived_once = false;
    for mode in ["require", "auto", "off"] {
        let o = backup(&d, root.to_str().unwrap(), &["--sandbox", mode]);
        match require_error(false).filter(|_| mode == "require") {
            Some(expected) => assert_required_error(&o, &expected),
            None => {
                assert_eq!(o.status.code(), Some(0), "--sandbox {mode}: {}", stderr(&o));
                let new = if archived_once { "0 new, 1 already archived" } else { "1 new, 0 already archived" };
                assert!(stdout(&o).contains(&format!("INBOX: {new}, 0 failed")), "--sandbox {mode}: {}", stdout(&o));
                archived_once = true;
            }
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "--sandbox {mode}: written outside the archive");
        assert!(fs::symlink_metadata(root.join("sam/INBOX")).unwrap().is_symlink(), "--sandbox {mode}");
    }
    let fallbacks: Vec<_> = fs::read_dir(root.join("sam"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("INBOX~"))
        .collect();
    assert_eq!(fallbacks.len(), 1, "{fallbacks:?}");
    assert!(root.join("sam").join(&fallbacks[0]).join("1.mbox").is_file(), "{fallbacks:?}");
}

/// A user directory swapped for a symlink after a backup (by someone with write access to
/// the root), pointing at a copy of it elsewhere: without landlock too, the next backup
/// resolves the folder from the root's descriptor, refuses to go through the symlink and
/// writes nothing there.
#[test]
fn a_user_directory_swapped_for_a_symlink_is_not_followed_without_landlock() {
    let d = Dovecot::start();
    d.add_user("sam", PW);
    d.append("sam", PW, "INBOX", b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n");
    let tmp = TempDir::new("sbx-swap");
    let root = tmp.join("archive");
    let o = backup(&d, root.to_str().unwrap(), &["--sandbox", "off"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let outside = tmp.join("outside");
    fs::rename(root.join("sam"), &outside).unwrap();
    symlink(&outside, root.join("sam")).unwrap();
    let before: Vec<_> = fs::read_dir(outside.join("INBOX")).unwrap().map(|e| e.unwrap().file_name()).collect();
    d.append("sam", PW, "INBOX", b"From: a@b\r\nSubject: y\r\n\r\nnew\r\n");
    let o = backup(&d, root.to_str().unwrap(), &["--sandbox", "off"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not a directory (a symlink or a file): refusing to"), "{}", stderr(&o));
    let after: Vec<_> = fs::read_dir(outside.join("INBOX")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "written through the symlink");
}

#[test]
fn a_symlinked_archive_root_works() {
    let d = Dovecot::start();
    d.add_user("sam", PW);
    d.append("sam", PW, "INBOX", b"From: a@b\r\nSubject: y\r\n\r\nbody\r\n");
    let tmp = TempDir::new("sbx-root");
    fs::create_dir_all(tmp.join("real")).unwrap();
    symlink(tmp.join("real"), tmp.join("via-link")).unwrap();
    let cfg = tmp.join("c.json");
    let archived = tmp.join("real/sam/INBOX/1.mbox.gz");
    for mode in ["require", "auto"] {
        let text = format!(
            r#"{{"list": [{{"user": "sam", "imap": "127.0.0.1", "port": {}, "ca_file": "{}", "passwd": "{PW}",
               "folder": "INBOX", "encrypt": 0, "compress": 1}}], "archive_dir": "{}", "sandbox": "{mode}"}}"#,
            d.imaps_port(),
            d.cert_pem_path().display(),
            tmp.join("via-link").display()
        );
        fs::write(&cfg, text).unwrap();
        let o = run(&["-c", cfg.to_str().unwrap()], &[]);
        match require_error(false).filter(|_| mode == "require") {
            Some(expected) => {
                assert_required_error(&o, &expected);
                assert!(!archived.exists(), "a refused run archived something");
            }
            None => {
                assert_eq!(o.status.code(), Some(0), "--sandbox {mode}: {}", stderr(&o));
                assert!(archived.exists(), "--sandbox {mode}");
            }
        }
    }
}

#[test]
fn restore_cannot_write_through_a_planted_symlink() {
    let tmp = TempDir::new("sbx-restore");
    let folder = tmp.join("INBOX");
    fs::create_dir_all(&folder).unwrap();
    fs::copy(vectors().join("random/1.mbox"), folder.join("1.mbox")).unwrap();
    let outside = tmp.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let maildir = tmp.join("restored");
    fs::create_dir_all(&maildir).unwrap();
    symlink(&outside, maildir.join("cur")).unwrap();
    let written_outside = || fs::read_dir(&outside).unwrap().count();
    let restore = |mode: &str| {
        run(&["-r", folder.to_str().unwrap(), "--to-maildir", maildir.to_str().unwrap(), "--sandbox", mode], &[])
    };
    let denied = |o: &Output| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
        assert!(stderr(o).contains("Permission denied"), "{}", stderr(o));
        assert_eq!(written_outside(), 0, "restore wrote outside its output");
    };
    let o = restore("require");
    match require_error(true) {
        None => denied(&o),
        Some(expected) => assert_required_error(&o, &expected),
    }
    assert_eq!(written_outside(), 0, "restore wrote outside its output");
    // A Maildir restore is confined from ABI 2; below, auto runs it unconfined.
    let o = restore("auto");
    if abi() >= 2 {
        denied(&o);
    } else {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(written_outside(), 1, "unconfined, the planted link is followed");
    }
    // Verify only reads: it works inside its own sandbox.
    let message_bytes = strip_first_line(&fs::read(folder.join("1.mbox")).unwrap()).len();
    for mode in ["require", "auto"] {
        let o = run(&["--verify", folder.to_str().unwrap(), "--sandbox", mode], &[]);
        match require_error(false).filter(|_| mode == "require") {
            Some(expected) => assert_required_error(&o, &expected),
            None => {
                assert_eq!(o.status.code(), Some(0), "--sandbox {mode}: {}{}", stdout(&o), stderr(&o));
                assert_eq!(stdout(&o), format!("verified 1 message: 1 good, 0 bad, {message_bytes} message bytes\n"));
            }
        }
    }
}

#[test]
fn sandbox_check_proves_every_probe() {
    let tmp = TempDir::new("sbx-check");
    let o = run(&["--sandbox-check", "--dir", tmp.path().to_str().unwrap()], &[]);
    let text = stdout(&o);
    let abi = abi();
    assert!(text.starts_with(&format!("kernel: {}\nsandbox: ", Support::detect())), "{text}");
    // Below ABI 4 the TCP probes fail (connecting elsewhere, listening); without landlock
    // the four file probes outside ROOT too.
    let (code, failing) = match abi {
        4.. => (0, 0),
        1..=3 => (1, 2),
        0 => (1, 6),
    };
    assert_eq!(o.status.code(), Some(code), "{text}{}", stderr(&o));
    assert_eq!(text.lines().filter(|l| l.starts_with("FAIL ")).count(), failing, "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("ok   ")).count(), 9 - failing, "{text}");
    let verdict = match failing {
        0 => "sandbox check passed: runs confine themselves as they should".to_string(),
        n => format!("sandbox check FAILED: {n} of 9 probes not as expected"),
    };
    assert!(text.ends_with(&format!("{verdict}\n")), "{text}");
    let connect_elsewhere = text.lines().find(|l| l.contains("(listening, port not allowed)")).unwrap_or_default();
    let tcp = if abi >= 4 { "denied" } else { "allowed: NOT CONFINED" };
    assert!(connect_elsewhere.ends_with(tcp), "{text}");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0, "the check leaves nothing behind");
}

#[test]
fn bad_sandbox_mode_is_a_usage_error() {
    let o = run(&["--sandbox", "sometimes", "-r", "x"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "smailarchiver: error: --sandbox: 'sometimes' is not one of auto, require, off\n");
}

/// The attempts of the probe (src/probe.rs) aimed at one run, and what the test sees of
/// them besides the run's own word: the file created outside, the connection accepted.
struct Probe {
    secret: PathBuf,
    created: PathBuf,
    through_link: PathBuf,
    listener: TcpListener,
}

impl Probe {
    /// A probe that reads `OUTSIDE/secret`, creates `OUTSIDE/created-TAG`, reads `secret`
    /// through a symlink planted in `inside` (a directory the run may read) that points to
    /// `outside`, and connects to a port of its own.
    fn new(outside: &Path, inside: &Path, tag: &str) -> Probe {
        let secret = outside.join("secret");
        if !secret.exists() {
            fs::write(&secret, "not for the sandbox\n").unwrap();
        }
        let link = inside.join(format!("probe-link-{tag}"));
        symlink(outside, &link).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Probe { secret, created: outside.join(format!("created-{tag}")), through_link: link.join("secret"), listener }
    }

    /// Runs the binary with `args`, the probe's variables and `env`.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let port = self.listener.local_addr().unwrap().port().to_string();
        let (secret, created, link) = (self.secret.display(), self.created.display(), self.through_link.display());
        let (secret, created, link) = (secret.to_string(), created.to_string(), link.to_string());
        let mut all = vec![
            ("SMAILARCHIVER_PROBE_READ", secret.as_str()),
            ("SMAILARCHIVER_PROBE_CREATE", created.as_str()),
            ("SMAILARCHIVER_PROBE_SYMLINK", link.as_str()),
            ("SMAILARCHIVER_PROBE_CONNECT", port.as_str()),
        ];
        all.extend_from_slice(env);
        run(args, &all)
    }

    /// The probe's four lines on standard error, each attempt `denied` where `files` (or,
    /// for the connection, `tcp`) says the run is confined and `allowed` elsewhere; and
    /// the world agrees: a file created outside only where allowed, a connection accepted
    /// only where allowed.
    #[track_caller]
    fn assert_outcomes(&self, o: &Output, what: &str, files: bool, tcp: bool) {
        let word = |confined: bool| if confined { "denied" } else { "allowed" };
        let port = self.listener.local_addr().unwrap().port();
        let want = [
            format!("smailarchiver probe: read a file outside {}: {}", self.secret.display(), word(files)),
            format!("smailarchiver probe: create a file outside {}: {}", self.created.display(), word(files)),
            format!("smailarchiver probe: read through a symlink {}: {}", self.through_link.display(), word(files)),
            format!("smailarchiver probe: connect to 127.0.0.1:{port}: {}", word(tcp)),
        ];
        let err = stderr(o);
        let (probed, rest): (Vec<&str>, Vec<&str>) = err.lines().partition(|l| l.starts_with("smailarchiver probe: "));
        assert_eq!(probed, want, "{what}: the probe did not run as the run's sandbox should let it; stderr:\n{err}");
        assert!(rest.is_empty(), "{what}: {err}");
        assert_eq!(self.created.exists(), !files, "{what}: {} created outside", self.created.display());
        let mut accepted = 0;
        while self.listener.accept().is_ok() {
            accepted += 1;
        }
        assert_eq!(accepted, usize::from(!tcp), "{what}: connections the probe made to 127.0.0.1:{port}");
    }
}

/// What `--sandbox MODE` confines on this kernel: (files, TCP); `None` where the run must
/// refuse to start (`require` below ABI 4). A Maildir restore is left out (ABI 1 cannot
/// confine its moves between directories); a backup makes such moves too.
fn confined(mode: &str, cross_dir_renames: bool) -> Option<(bool, bool)> {
    let abi = abi();
    match mode {
        "off" => Some((false, false)),
        "require" if abi < 4 => None,
        _ => Some((abi >= 2 || (abi == 1 && !cross_dir_renames), abi >= 4)),
    }
}

/// The probe aimed at real runs: a backup, an upload (`-r USER_DIR --to-imap`), a restore,
/// a verify and a search each try, right after confining themselves, to read a file outside what
/// they may reach, create one, read through a planted symlink that leads out, and connect
/// to a local port that is not the server's. Under `--sandbox require` and `auto` every
/// attempt is refused (the connection from landlock ABI 4, which this machine's kernel
/// has; below it the test says so on stderr and checks what such a kernel does), under
/// `off` every attempt succeeds. Each run also does its job; the search cannot create a
/// file inside the archive either.
#[test]
fn the_probe_inside_a_backup_an_upload_a_restore_a_verify_and_a_search() {
    let abi = abi();
    if abi < 4 {
        eprintln!(
            "WARNING: this kernel has {}: the TCP rule of the sandbox (landlock ABI 4, Linux 6.7) is NOT TESTED here; \
             only that a run without it still connects where --sandbox auto lets it",
            Support::detect()
        );
    }
    let d = Dovecot::start();
    d.add_user("sam", PW);
    let msgs = [&b"From: a@b\r\nSubject: one\r\n\r\nfirst\r\n"[..], b"From: c@d\r\nSubject: two\r\n\r\nsecond\r\n"];
    for m in msgs {
        d.append("sam", PW, "INBOX", m);
    }
    let tmp = TempDir::new("sbx-probe");
    let outside = tmp.dir("outside");
    for mode in ["require", "auto", "off"] {
        let root = tmp.dir(&format!("archive-{mode}"));
        let refused = require_error(false).filter(|_| mode == "require");
        // Backup: the archive root is the run's; the link is planted in it.
        let probe = Probe::new(&outside, &root, &format!("backup-{mode}"));
        let port = d.imaps_port().to_string();
        let ca = d.cert_pem_path();
        let args = ["-u", "sam", "-i", "127.0.0.1", "--port", &port, "--ca-file", ca.to_str().unwrap()];
        let backup = [&args[..], &["--dir", root.to_str().unwrap(), "--sandbox", mode]].concat();
        let o = probe.run(&backup, &[("SMAILARCHIVER_PASSWD", PW)]);
        let what = format!("backup --sandbox {mode}");
        match (&refused, confined(mode, true)) {
            (Some(expected), _) => {
                assert_required_error(&o, expected);
                continue;
            }
            (None, Some((files, tcp))) => {
                assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
                assert!(stdout(&o).contains("INBOX: 2 new, 0 already archived, 0 failed"), "{what}: {}", stdout(&o));
                probe.assert_outcomes(&o, &what, files, tcp);
            }
            (None, None) => unreachable!("require refuses below ABI 4"),
        }
        let user_dir = root.join("sam");
        // Upload: reads the user directory (the link is planted there), connects to the server.
        let probe = Probe::new(&outside, &user_dir, &format!("upload-{mode}"));
        let dst = format!("dst-{mode}");
        d.add_user(&dst, PW);
        let args = ["-u", &dst, "-i", "127.0.0.1", "--port", &port, "--ca-file", ca.to_str().unwrap()];
        let upload = [&["-r", user_dir.to_str().unwrap(), "--to-imap", "--sandbox", mode][..], &args[..]].concat();
        let o = probe.run(&upload, &[("SMAILARCHIVER_PASSWD", PW)]);
        let what = format!("upload --sandbox {mode}");
        let (files, tcp) = confined(mode, false).unwrap();
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
        assert!(stdout(&o).contains("INBOX: 2 uploaded, 0 already there, 0 failed"), "{what}: {}", stdout(&o));
        probe.assert_outcomes(&o, &what, files, tcp);
        assert_eq!(d.uids(&dst, PW, "INBOX").len(), 2, "{what}");
        // Restore to mbox: reads the folder directory (the link is planted there), writes
        // beside the output only.
        let folder = user_dir.join("INBOX");
        let probe = Probe::new(&outside, &folder, &format!("restore-{mode}"));
        let out = tmp.dir(&format!("restored-{mode}"));
        let mbox = out.join("inbox.mbox");
        let o = probe.run(&["-r", folder.to_str().unwrap(), "-o", mbox.to_str().unwrap(), "--sandbox", mode], &[]);
        let what = format!("restore --sandbox {mode}");
        let (files, tcp) = confined(mode, false).unwrap();
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
        assert_eq!(parse_mboxrd(&fs::read(&mbox).unwrap()).len(), 2, "{what}");
        probe.assert_outcomes(&o, &what, files, tcp);
        // Verify: reads the archive (the link is planted at its root) and nothing else.
        let probe = Probe::new(&outside, &root, &format!("verify-{mode}"));
        let o = probe.run(&["--verify", root.to_str().unwrap(), "--sandbox", mode], &[]);
        let what = format!("verify --sandbox {mode}");
        assert_eq!(o.status.code(), Some(0), "{what}: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).starts_with("verified 2 messages: 2 good, 0 bad"), "{what}: {}", stdout(&o));
        probe.assert_outcomes(&o, &what, files, tcp);
        // Search: reads the archive, writes nothing, not even inside it.
        let probe = Probe::new(&outside, &root, &format!("search-{mode}"));
        let search = ["--search", "second", root.to_str().unwrap(), "--sandbox", mode, "-q"];
        let o = probe.run(&search, &[]);
        let what = format!("search --sandbox {mode}");
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
        let hits: Vec<String> =
            stdout(&o).lines().map(|l| l.split('\t').take(2).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(hits, [format!("{} 2", folder.display())], "{what}");
        probe.assert_outcomes(&o, &what, files, tcp);
        let inside = root.join(format!("created-by-search-{mode}"));
        let o = run(&search, &[("SMAILARCHIVER_PROBE_CREATE", inside.to_str().unwrap())]);
        let word = if files { "denied" } else { "allowed" };
        assert_eq!(stderr(&o), format!("smailarchiver probe: create a file outside {}: {word}\n", inside.display()));
        assert_eq!(inside.exists(), !files, "{what}");
    }
}
