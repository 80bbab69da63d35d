//! Smoke tests of a cross-built binary (cross/build), run under qemu-user by cross/test:
//!
//!     SMAILARCHIVER_CROSS_BIN=cross/out/TARGET/smailarchiver \
//!     QEMU="qemu-aarch64-static -cpu cortex-a53" \
//!     cargo test --test it cross_smoke:: -- --ignored
//!
//! `QEMU` is the emulator command line the binary is appended to (empty: run it directly).
//! `SMAILARCHIVER_CROSS_CONTAINER`, when set, is instead the command line that runs the
//! container image made from the binary (packaging/container): `podman run ... IMAGE`,
//! with the image's entrypoint, the arguments appended.
//! The tests are `#[ignore]`d so that a plain `cargo test` does not run them; run with
//! `--ignored` and without SMAILARCHIVER_CROSS_BIN they fail, never pass silently.
//!
//! What the cross binary does is compared with what the native one (this checkout's
//! `smailarchiver`) does on the same input, byte for byte, and its backups are read back
//! with the native binary: a miscompiled codec or crypto routine on the target shows.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::dovecot::Dovecot;
use crate::support::*;

const PW: &str = "s3cret pass";
const KEY_PASSWORD: &str = "correct horse battery staple";

/// How to run the cross binary: the emulator command line (maybe none) and the binary,
/// or the command that runs the container image holding it.
struct Cross {
    emulator: Vec<String>,
    bin: PathBuf,
    container: Vec<String>,
}

fn cross() -> Cross {
    let bin = std::env::var_os("SMAILARCHIVER_CROSS_BIN").unwrap_or_else(|| {
        panic!(
            "SMAILARCHIVER_CROSS_BIN is not set: these tests check a cross-built binary; run them with \
             cross/test TARGET (or set SMAILARCHIVER_CROSS_BIN=cross/out/TARGET/smailarchiver and \
             QEMU=\"qemu-ARCH-static -cpu MODEL\")"
        )
    });
    let bin = PathBuf::from(bin);
    assert!(bin.is_file(), "SMAILARCHIVER_CROSS_BIN={}: no such file (run cross/build first)", bin.display());
    let words = |name: &str| std::env::var(name).unwrap_or_default().split_whitespace().map(str::to_string).collect();
    let (emulator, container) = (words("QEMU"), words("SMAILARCHIVER_CROSS_CONTAINER"));
    Cross { emulator, bin, container }
}

impl Cross {
    fn command(&self) -> Command {
        let mut cmd = match self.emulator.split_first() {
            _ if !self.container.is_empty() => {
                let mut c = Command::new(&self.container[0]);
                c.args(&self.container[1..]);
                c
            }
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.stdin(Stdio::null()).env_remove("SMAILARCHIVER_KEY_PASSWORD").env_remove("SMAILARCHIVER_PASSWD");
        cmd
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command();
        cmd.args(args).envs(env.iter().copied());
        cmd.output().unwrap_or_else(|e| panic!("run {:?} {}: {e}", self.emulator, self.bin.display()))
    }
}

/// A copy of a fixture folder in a temp dir, since restore writes beside its input.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[track_caller]
fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{what}: stdout: {}\nstderr: {}", stdout(o), stderr(o));
}

#[test]
#[ignore = "run by cross/test with SMAILARCHIVER_CROSS_BIN set"]
fn version() {
    let c = cross();
    let o = c.run(&["--version"], &[]);
    assert_exit(&o, 0, "--version");
    assert_eq!(stdout(&o).trim(), format!("smailarchiver {}", env!("CARGO_PKG_VERSION")));
}

/// The man page and completion scripts the release archive carries are made by running a
/// binary (packaging/pack): every target's must print what the native one prints.
#[test]
#[ignore = "run by cross/test with SMAILARCHIVER_CROSS_BIN set"]
fn generated_docs_match_native() {
    let c = cross();
    for kind in smailarchiver::cli::flags::GENERATE_KINDS {
        let o = c.run(&["--generate", kind], &[]);
        assert_exit(&o, 0, kind);
        let native = run(&["--generate", kind], &[]);
        assert_exit(&native, 0, kind);
        assert!(o.stdout == native.stdout, "--generate {kind} differs from the native binary's");
    }
}

/// `--version --verbose` names the binary's target and the crypto the emulated CPU gets:
/// cortex-a53 has the ARMv8 AES and SHA-2 instructions (the aarch64 build must use them),
/// qemu64, cortex-a9, arm926 and 24KEc have none; run directly, as the native binary says.
#[test]
#[ignore = "run by cross/test with SMAILARCHIVER_CROSS_BIN set"]
fn version_verbose() {
    let c = cross();
    let fields = |o: &Output| -> Vec<(String, String)> {
        stdout(o).lines().skip(1).filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.into(), v.into())).collect()
    };
    let o = c.run(&["--version", "--verbose"], &[]);
    assert_exit(&o, 0, "--version --verbose");
    let got = fields(&o);
    let field = |name: &str| got.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let target = c.bin.parent().and_then(Path::file_name).unwrap().to_string_lossy().into_owned();
    assert_eq!(field("target"), target, "{}", stdout(&o));
    let cpu = c.emulator.iter().skip_while(|a| *a != "-cpu").nth(1).cloned();
    let expected: Vec<String> = match cpu.as_deref() {
        Some("cortex-a53") => vec!["armv8 crypto extensions".into(); 2],
        Some(_) => vec!["soft".into(); 2],
        None => {
            let native = fields(&run(&["--version", "--verbose"], &[]));
            ["aes", "sha256"]
                .iter()
                .map(|n| native.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default())
                .collect()
        }
    };
    for (name, want) in ["aes", "sha256"].iter().zip(expected) {
        assert!(field(name).starts_with(&want), "{name}: expected {want}: {}", stdout(&o));
    }
}

/// Restores of the original program's vectors (plain, zlib, AES with a raw key, AES with a
/// PBKDF2 password key) come out as the native binary's, byte for byte, as mbox and Maildir.
#[test]
#[ignore = "run by cross/test with SMAILARCHIVER_CROSS_BIN set"]
fn restore_matches_native() {
    let c = cross();
    let tmp = TempDir::new("cross-restore");
    let cases: [(&str, Vec<&str>); 2] =
        [("random", vec!["-k", "random.key"]), ("pbkdf2", vec!["-k", "pbkdf2.key", "-P"])];
    let keys = vectors().join("keys");
    for (folder, key_args) in cases {
        let key_args: Vec<String> = key_args
            .iter()
            .map(|a| if a.ends_with(".key") { keys.join(a).display().to_string() } else { a.to_string() })
            .collect();
        let key_args: Vec<&str> = key_args.iter().map(String::as_str).collect();
        let env = [("SMAILARCHIVER_KEY_PASSWORD", KEY_PASSWORD)];
        let mut outputs = Vec::new();
        for who in ["native", "cross"] {
            let dir = tmp.join(who).join(folder);
            copy_dir(&vectors().join(folder), &dir);
            let maildir = tmp.join(who).join(format!("{folder}.maildir"));
            let d = dir.to_str().unwrap();
            let m = maildir.to_str().unwrap();
            let (mbox_run, maildir_run) = if who == "native" {
                (
                    run(&[&["-r", d][..], &key_args].concat(), &env),
                    run(&[&["-r", d, "--to-maildir", m][..], &key_args].concat(), &env),
                )
            } else {
                (
                    c.run(&[&["-r", d][..], &key_args].concat(), &env),
                    c.run(&[&["-r", d, "--to-maildir", m][..], &key_args].concat(), &env),
                )
            };
            assert_exit(&mbox_run, 0, &format!("{who} restore of {folder}"));
            assert_exit(&maildir_run, 0, &format!("{who} restore of {folder} to a Maildir"));
            let mbox = fs::read(dir.with_extension("mbox")).unwrap();
            let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(maildir.join("cur"))
                .unwrap()
                .map(|e| e.unwrap())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap()))
                .collect();
            files.sort();
            outputs.push((mbox, files));
        }
        let (native, cross) = (&outputs[0], &outputs[1]);
        assert!(!native.0.is_empty() && native.1.len() >= 10, "{folder}: the native restore produced too little");
        assert_same(&cross.0, &native.0, &format!("{folder}: mbox of the cross binary vs the native one"));
        assert_eq!(
            cross.1.iter().map(|f| &f.0).collect::<Vec<_>>(),
            native.1.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{folder}: Maildir file names"
        );
        for (c_file, n_file) in cross.1.iter().zip(&native.1) {
            assert_same(&c_file.1, &n_file.1, &format!("{folder}: Maildir file {}", c_file.0));
        }
    }
}

/// `--verify` reports the same good and bad files, with the same reasons and exit codes, as
/// the native binary: the good vectors all pass and every tampered file is caught.
#[test]
#[ignore = "run by cross/test with SMAILARCHIVER_CROSS_BIN set"]
fn verify_matches_native() {
    let c = cross();
    let key = vectors().join("keys/random.key");
    let key = key.to_str().unwrap();
    for (folder, code) in [("random", 0), ("tampered", 1)] {
        let path = vectors().join(folder);
        let args = ["--verify", path.to_str().unwrap(), "-k", key];
        let native = run(&args, &[]);
        let cross = c.run(&args, &[]);
        assert_exit(&native, code, &format!("native --verify {folder}"));
        assert_exit(&cross, code, &format!("cross --verify {folder}"));
        assert_eq!(stdout(&cross), stdout(&native), "--verify {folder}: standard output differs");
        assert_eq!(stderr(&cross), stderr(&native), "--verify {folder}: standard error differs");
    }
}

/// Restores a folder directory with the native binary, returning the messages in UID order.
fn restored_natively(folder: &Path, keys: &[&str]) -> Vec<Vec<u8>> {
    let out = folder.with_extension("restored");
    let o = run(&[&["-r", folder.to_str().unwrap(), "--to-maildir", out.to_str().unwrap()][..], keys].concat(), &[]);
    assert_exit(&o, 0, &format!("native restore of {}", folder.display()));
    let mut files: Vec<PathBuf> = fs::read_dir(out.join("cur")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| {
        p.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().parse::<u64>().unwrap()
    });
    files.iter().map(|p| fs::read(p).unwrap()).collect()
}

/// A backup over TLS from a private Dovecot on 127.0.0.1 with the cross binary: implicit
/// TLS with --ca-file, compressed and encrypted, a message bigger than the fetch buffer
/// (partial fetches), then an incremental rerun, then STARTTLS with a pinned certificate.
/// The native binary restores both archives to exactly what the server serves.
#[test]
#[ignore = "run by cross/test with SMAILARCHIVER_CROSS_BIN set"]
fn backup_from_dovecot_over_tls() {
    let c = cross();
    let d = Dovecot::start();
    let user = "crossuser";
    d.add_user(user, PW);
    d.create_mailbox(user, PW, "Sent Items");
    let mut big = mail::note("big", "");
    for i in 0..6000 {
        big.extend_from_slice(format!("line {i:05} of a message bigger than the fetch buffer\r\n").as_bytes());
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("INBOX", mail::note("hello", "plain text")),
        ("INBOX", mail::note("from lines", "From the start\r\n>From quoted\r\nFrom: in body")),
        ("INBOX", [mail::note("8bit", "caf\u{e9}").as_slice(), &[0xe9, 0xff, 0x80, b'\r', b'\n']].concat()),
        ("INBOX", big),
        ("Sent Items", mail::note("sent", "sent text")),
    ];
    let uids: Vec<(&str, u32)> = cases.iter().map(|(mb, msg)| (*mb, d.append(user, PW, mb, msg))).collect();
    let want = |mb: &str| -> Vec<Vec<u8>> {
        uids.iter().filter(|(m, _)| *m == mb).map(|(m, u)| d.fetch_raw(user, PW, m, *u)).collect()
    };

    let tmp = TempDir::new("cross-backup");
    let keys = tmp.join("keys");
    let keys = keys.to_str().unwrap();
    let root = tmp.join("tls");
    let imaps = d.imaps_port().to_string();
    let ca = d.cert_pem_path();
    let args = [
        "-u",
        user,
        "-i",
        "127.0.0.1",
        "--port",
        &imaps,
        "--ca-file",
        ca.to_str().unwrap(),
        "-f",
        "INBOX",
        "-f",
        "Sent Items",
        "-z",
        "-e",
        "-k",
        keys,
        "--buffer-size",
        "65536",
        "--dir",
        root.to_str().unwrap(),
    ];
    let env = [("SMAILARCHIVER_PASSWD", PW)];
    let o = c.run(&args, &env);
    assert_exit(&o, 0, "cross backup over implicit TLS");
    let out = stdout(&o);
    assert!(out.contains(&format!("{user} INBOX: 4 new, 0 already archived, 0 failed")), "{out}");
    assert!(out.contains(&format!("{user} Sent Items: 1 new")), "{out}");

    let again = c.run(&args, &env);
    assert_exit(&again, 0, "cross backup, second run");
    assert!(
        stdout(&again).contains(&format!("{user} INBOX: 0 new, 4 already archived, 0 failed")),
        "{}",
        stdout(&again)
    );

    for mb in ["INBOX", "Sent Items"] {
        let folder = root.join(user).join(mb);
        let got = restored_natively(&folder, &["-k", keys]);
        let want = want(mb);
        assert_eq!(got.len(), want.len(), "{mb}: restored message count");
        for (g, w) in got.iter().zip(&want) {
            assert_same(g, w, &format!("{mb}: native restore of the cross backup"));
        }
        let v = c.run(&["--verify", folder.to_str().unwrap(), "-k", keys], &[]);
        assert_exit(&v, 0, &format!("cross --verify of its own backup of {mb}"));
    }

    let root = tmp.join("starttls");
    let imap = d.imap_port().to_string();
    let o = c.run(
        &[
            "-u",
            user,
            "-i",
            "127.0.0.1",
            "--starttls",
            "--port",
            &imap,
            "--pin-sha256",
            d.cert_sha256_hex(),
            "--dir",
            root.to_str().unwrap(),
        ],
        &env,
    );
    assert_exit(&o, 0, "cross backup over STARTTLS with a pinned certificate");
    let got = restored_natively(&root.join(user).join("INBOX"), &[]);
    let want = want("INBOX");
    assert_eq!(got.len(), want.len(), "STARTTLS: restored message count");
    for (g, w) in got.iter().zip(&want) {
        assert_same(g, w, "STARTTLS: native restore of the cross backup");
    }
}

/// `--sandbox-check` output with the numbers that differ from run to run (process ids in
/// paths, free ports) blanked out.
fn sandbox_report(o: &Output) -> String {
    let text = format!("{}{}", stdout(o), stderr(o));
    let mut out = String::new();
    let mut digits = String::new();
    for ch in text.chars().chain(std::iter::once('\n')) {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        out.push_str(if digits.len() >= 3 { "N" } else { &digits });
        digits.clear();
        out.push(ch);
    }
    // In a container the tool is process 1: its pid in the check's paths is short too.
    out.replace("sandbox-check-1-", "sandbox-check-N-")
}

/// The landlock sandbox. Run directly (QEMU empty: the x86_64 binary on an x86_64 host),
/// the static binary must confine itself exactly as the native one does, which proves
/// the landlock calls work through musl. Under qemu-user, which (7.2) has no landlock,
/// it must say so and report itself unconfined, which is what lets `--sandbox auto` runs
/// (the backup test above) go on there.
#[test]
#[ignore = "run by cross/test with SMAILARCHIVER_CROSS_BIN set"]
fn sandbox_check() {
    let c = cross();
    let tmp = TempDir::new("cross-sandbox");
    let args = ["--sandbox-check", "--dir", tmp.path().to_str().unwrap()];
    let cross = c.run(&args, &[]);
    let native = run(&args, &[]);
    let same = cross.status.code() == native.status.code() && sandbox_report(&cross) == sandbox_report(&native);
    if c.emulator.is_empty() {
        assert!(
            same,
            "--sandbox-check of the cross binary differs from the native one's:\ncross ({:?}):\n{}\nnative ({:?}):\n{}",
            cross.status.code(),
            sandbox_report(&cross),
            native.status.code(),
            sandbox_report(&native)
        );
    } else {
        let report = sandbox_report(&cross);
        assert!(
            same || (cross.status.code() == Some(1) && report.contains("sandbox: not sandboxed: no landlock (ENOSYS")),
            "under {:?}, --sandbox-check should either match the native binary or report no landlock \
             (ENOSYS) and fail; got ({:?}):\n{report}",
            c.emulator,
            cross.status.code()
        );
    }
}
