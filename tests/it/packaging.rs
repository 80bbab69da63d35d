//! The files under packaging/ and cross/: the systemd units pass `systemd-analyze verify`,
//! are hardened and still allow what the tool needs; the example configs are accepted by
//! the tool; the release script packs what it should, reproducibly; the OpenWrt init script
//! keeps the archive off the router's flash; the cross scripts parse and refuse bad targets.
//!
//! Needs Debian's `systemd` package (for systemd-analyze; no running systemd needed),
//! tar, gzip, sha256sum and python3 (for a jsonfilter stand-in): `.ci/install-test-deps`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), stdout(o), stderr(o))
}

/// Runs a program, panicking with a hint when it is not installed.
fn output(cmd: &mut Command, install_hint: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {program} ({e}): {install_hint}"))
}

const SYSTEMD_HINT: &str = "systemd-analyze comes with Debian's systemd package: run .ci/install-test-deps";

/// A unit file of packaging/systemd in `tmp` under `name` (a template under an instance
/// name), with ExecStart= pointing at a binary that exists here, since
/// `systemd-analyze verify` checks that the command is executable.
fn unit_for_verify(tmp: &TempDir, file: &str, name: &str) -> PathBuf {
    let unit = fs::read_to_string(repo().join("packaging/systemd").join(file)).unwrap();
    let unit = unit.replace("ExecStart=/usr/local/bin/smailarchiver ", &format!("ExecStart={} ", bin()));
    let path = tmp.join(name);
    fs::write(&path, unit).unwrap();
    path
}

/// The plain units in a temp dir, with the failure handler they name.
fn units_for_verify(tmp: &TempDir) -> (PathBuf, PathBuf) {
    let service = fs::read_to_string(repo().join("packaging/systemd/smailarchiver.service")).unwrap();
    assert!(service.contains(
        "ExecStart=/usr/local/bin/smailarchiver -q -c /etc/smailarchiver/config.json --report /var/lib/smailarchiver/report.json\n"
    ));
    unit_for_verify(tmp, "smailarchiver-failure@.service", "smailarchiver-failure@.service");
    (
        unit_for_verify(tmp, "smailarchiver.service", "smailarchiver.service"),
        unit_for_verify(tmp, "smailarchiver.timer", "smailarchiver.timer"),
    )
}

/// The template units as instance `ann`, with the failure handler's instance.
fn template_units_for_verify(tmp: &TempDir) -> Vec<PathBuf> {
    vec![
        unit_for_verify(tmp, "smailarchiver@.service", "smailarchiver@ann.service"),
        unit_for_verify(tmp, "smailarchiver@.timer", "smailarchiver@ann.timer"),
        unit_for_verify(
            tmp,
            "smailarchiver-failure@.service",
            "smailarchiver-failure@smailarchiver@ann.service.service",
        ),
    ]
}

/// `systemd-analyze verify` with no complaint.
#[track_caller]
fn assert_verifies(units: &[PathBuf]) {
    // --man=no: Documentation= points at a file, not a man page to look up.
    let o = output(Command::new("systemd-analyze").args(["verify", "--man=no"]).args(units), SYSTEMD_HINT);
    // verify works offline (no systemd as PID 1 is needed; it is not one in CI's
    // container). Any output is a warning about the units: none is accepted.
    assert!(o.status.success(), "systemd-analyze verify failed:\n{}", text(&o));
    assert_eq!(stderr(&o).trim(), "", "systemd-analyze verify warned:\n{}", text(&o));
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let tmp = TempDir::new("pkg-verify");
    let (service, timer) = units_for_verify(&tmp);
    assert_verifies(&[service, timer, tmp.join("smailarchiver-failure@.service")]);
}

#[test]
fn template_units_pass_systemd_analyze_verify() {
    let tmp = TempDir::new("pkg-verify-template");
    assert_verifies(&template_units_for_verify(&tmp));
}

/// The hardening of a unit: its lines from the "Hardening" comment on.
fn hardening(unit: &str) -> Vec<&str> {
    let start = unit.find("# --- Hardening").expect("a hardening section");
    unit[start..].lines().filter(|l| !l.starts_with('#')).collect()
}

/// The template unit is the plain one per instance: the same hardening, the same run,
/// every path of its own.
#[test]
fn template_unit_keeps_the_hardening() {
    let plain = fs::read_to_string(repo().join("packaging/systemd/smailarchiver.service")).unwrap();
    let template = fs::read_to_string(repo().join("packaging/systemd/smailarchiver@.service")).unwrap();
    let per_instance = plain
        .replace("/etc/smailarchiver/config.json", "/etc/smailarchiver/%i.json")
        .replace("/var/lib/smailarchiver/report.json", "/var/lib/smailarchiver/%i/report.json")
        .replace("ReadWritePaths=/var/lib/smailarchiver", "ReadWritePaths=/var/lib/smailarchiver/%i");
    assert_eq!(hardening(&template), hardening(&per_instance));
    for line in
        ["StateDirectory=smailarchiver/%i", "WorkingDirectory=/var/lib/smailarchiver/%i", "SuccessExitStatus=143"]
    {
        assert!(template.lines().any(|l| l == line), "{line} missing");
    }
    let exec = |unit: &str| unit.lines().find(|l| l.starts_with("ExecStart=")).map(str::to_string);
    assert_eq!(exec(&template), exec(&per_instance));
    for unit in [&plain, &template] {
        assert!(unit.lines().any(|l| l == "OnFailure=smailarchiver-failure@%n.service"), "OnFailure= missing");
    }
}

/// The cron line for a health check pings only when the run exits 0: not after a failed
/// account (1), a config error (2) or an interrupt (130).
#[test]
fn cron_health_check_pings_only_on_success() {
    let cron = fs::read_to_string(repo().join("packaging/cron.example")).unwrap();
    let line = cron.lines().find(|l| l.contains("hc-ping.com")).expect("a health-check line in cron.example");
    let line = line.trim_start_matches(['#', ' ']);
    // Five time fields and a user, then the command (the rest of the line).
    let mut rest = Some(line);
    for _ in 0..6 {
        rest = rest.and_then(|r| r.trim_start().split_once(char::is_whitespace)).map(|(_, r)| r);
    }
    let command = rest;
    let command = command.expect("five time fields, a user, then the command").trim();
    assert!(command.starts_with("/usr/local/bin/smailarchiver ") && command.contains(" --report "), "{command}");
    let tmp = TempDir::new("pkg-cron");
    let pinged = tmp.join("pinged");
    let curl = tmp.join("curl");
    fs::write(&curl, format!("#!/bin/sh\necho \"$@\" >> {}\n", pinged.display())).unwrap();
    fs::set_permissions(&curl, fs::Permissions::from_mode(0o755)).unwrap();
    for code in [0, 1, 2, 130] {
        let tool = tmp.join(format!("smailarchiver-{code}"));
        fs::write(&tool, format!("#!/bin/sh\nexit {code}\n")).unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        let _ = fs::remove_file(&pinged);
        let script = command
            .replace("/usr/local/bin/smailarchiver", tool.to_str().unwrap())
            .replace(" curl ", &format!(" {} ", curl.display()));
        let o = output(Command::new("sh").arg("-c").arg(&script), "sh");
        assert_eq!(o.status.code(), Some(code), "{}", text(&o));
        assert_eq!(pinged.exists(), code == 0, "exit {code}: pinged {}", pinged.exists());
    }
}

#[test]
fn service_exposure_is_low() {
    let tmp = TempDir::new("pkg-security");
    let (service, _) = units_for_verify(&tmp);
    // --offline reads the unit file itself (systemd >= 250), so no running systemd is needed.
    let o = output(
        Command::new("systemd-analyze").args(["security", "--offline=true", "--no-pager"]).arg(&service),
        SYSTEMD_HINT,
    );
    let out = stdout(&o);
    let score: f64 = out
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for smailarchiver.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in the output of systemd-analyze security:\n{}", text(&o)));
    // 0 is fully locked down, 10 not at all; systemd calls below 2 "OK". The unit scores 1.2
    // with systemd 252; what keeps it from lower is the network access it needs.
    assert!(score <= 2.0, "exposure {score} > 2.0: a hardening setting was lost?\n{out}");
}

/// Every system call a `SystemCallFilter=` group stands for, groups expanded.
fn syscall_group(name: &str) -> BTreeSet<String> {
    let o = output(Command::new("systemd-analyze").args(["syscall-filter", "--no-pager", name]), SYSTEMD_HINT);
    assert!(o.status.success(), "systemd-analyze syscall-filter {name}:\n{}", text(&o));
    let mut set = BTreeSet::new();
    for word in stdout(&o).lines().skip(1).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if word.starts_with('@') {
            set.extend(syscall_group(word));
        } else {
            set.insert(word.to_string());
        }
    }
    set
}

/// What the unit's SystemCallFilter= lines allow, as systemd combines them: the union of
/// the allow-lists minus the union of the `~` deny-lists.
fn allowed_syscalls(unit: &str) -> BTreeSet<String> {
    let (mut allow, mut deny) = (BTreeSet::new(), BTreeSet::new());
    for value in unit.lines().filter_map(|l| l.strip_prefix("SystemCallFilter=")) {
        let (target, list) = match value.strip_prefix('~') {
            Some(rest) => (&mut deny, rest),
            None => (&mut allow, value),
        };
        for item in list.split_whitespace() {
            if item.starts_with('@') {
                target.extend(syscall_group(item));
            } else {
                target.insert(item.to_string());
            }
        }
    }
    allow.difference(&deny).cloned().collect()
}

#[test]
fn service_syscall_filter_allows_what_the_tool_uses() {
    let unit = fs::read_to_string(repo().join("packaging/systemd/smailarchiver.service")).unwrap();
    let allowed = allowed_syscalls(&unit);
    assert!(allowed.len() > 200, "the filter expanded to only {} calls: {allowed:?}", allowed.len());
    let needed = [
        // The landlock sandbox; @system-service of systemd 252 lacks these.
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
        "prctl",
        // Files: crash-safe writes, the lock, the archive walk.
        "openat",
        "renameat2",
        "rename",
        "fsync",
        "fdatasync",
        "flock",
        "fchmod",
        "unlinkat",
        "mkdirat",
        "getdents64",
        "statx",
        "newfstatat",
        // Network and randomness.
        "socket",
        "connect",
        "getrandom",
        "poll",
        "setsockopt",
        "getsockopt",
        // passwd_cmd and friends: sh -c.
        "execve",
        "clone",
        "clone3",
        "vfork",
        "wait4",
        "pipe2",
    ];
    let missing: Vec<&str> = needed.iter().copied().filter(|s| !allowed.contains(*s)).collect();
    assert!(missing.is_empty(), "SystemCallFilter= of smailarchiver.service blocks {missing:?}");
    for refused in ["setuid", "chown", "setrlimit", "mount", "reboot", "init_module"] {
        assert!(!allowed.contains(refused), "SystemCallFilter= of smailarchiver.service allows {refused}");
    }
}

/// The string literals of `const NAME: &[&str] = &[...];` in src/cli/config.rs: the keys the
/// tool knows, read from its source so that a key added there must be documented here.
fn config_keys(name: &str) -> Vec<String> {
    let src = fs::read_to_string(repo().join("src/cli/config.rs")).unwrap();
    let start =
        src.find(&format!("const {name}: &[&str] = &[")).unwrap_or_else(|| panic!("no {name} in src/cli/config.rs"));
    let list = &src[start..];
    let list = &list[list.find("&[").unwrap() + 2..list.find("];").unwrap()];
    let keys: Vec<String> = list.split('"').skip(1).step_by(2).map(str::to_string).collect();
    assert!(keys.len() >= 5, "{name} in src/cli/config.rs parsed as {keys:?}");
    keys
}

fn all_config_keys() -> BTreeSet<String> {
    config_keys("TOP_KEYS").into_iter().chain(config_keys("ACCOUNT_KEYS")).collect()
}

/// The fenced ```json blocks of a Markdown file.
fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "unclosed ```json block");
    blocks
}

/// A self-signed certificate, for `ca_file` (which is read before connecting).
fn test_certificate(dir: &Path) -> PathBuf {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let o = output(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-subj", "/CN=nas.home.arpa", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        "openssl is needed for a test certificate: run .ci/install-test-deps",
    );
    assert!(o.status.success(), "openssl req:\n{}", text(&o));
    cert
}

/// Points a config at a closed port of this machine and every path and command into `dir`,
/// keeping every key: the tool must then read it all and fail on the connection, account
/// by account, with exit code 1; a config error would be exit code 2.
fn localised(config: &Value, dir: &Path, ca: &Path) -> Value {
    let mut c = config.clone();
    let top = c.as_object_mut().expect("the config is an object");
    if top.contains_key("archive_dir") {
        top.insert("archive_dir".into(), dir.join("archive").display().to_string().into());
    }
    if top.contains_key("report") {
        top.insert("report".into(), dir.join("report.json").display().to_string().into());
    }
    for (i, account) in top["list"].as_array_mut().expect("list").iter_mut().enumerate() {
        let a = account.as_object_mut().expect("account");
        a.insert("imap".into(), "127.0.0.1".into());
        a.insert("port".into(), 1.into());
        let rewrites: [(&str, Value); 7] = [
            ("archive_dir", dir.join(format!("archive-{i}")).display().to_string().into()),
            ("keys", dir.join(format!("{i}.keys")).display().to_string().into()),
            ("ca_file", ca.display().to_string().into()),
            ("passwd_cmd", "echo mail password".into()),
            ("oauth2_token_cmd", "echo token".into()),
            ("key_password_cmd", "echo key password".into()),
            ("key_password_file", dir.join("keypass").display().to_string().into()),
        ];
        for (key, value) in rewrites {
            if a.contains_key(key) {
                a.insert(key.into(), value);
            }
        }
    }
    c
}

fn keys_of(config: &Value) -> BTreeSet<String> {
    let top = config.as_object().unwrap();
    let mut keys: BTreeSet<String> = top.keys().cloned().collect();
    for account in top["list"].as_array().unwrap() {
        keys.extend(account.as_object().unwrap().keys().cloned());
    }
    keys
}

/// Runs the tool on a localised copy of `config` and checks it got as far as connecting.
fn assert_config_accepted(name: &str, config: &Value) {
    let tmp = TempDir::new("pkg-config");
    let ca = test_certificate(tmp.path());
    fs::write(tmp.join("keypass"), "key password\n").unwrap();
    let path = tmp.join("config.json");
    fs::write(&path, serde_json::to_string_pretty(&localised(config, tmp.path(), &ca)).unwrap()).unwrap();
    // In the temp dir: a config without "archive_dir" (the original's example) archives
    // into the current directory. The key password of that example comes from the
    // environment.
    let o = output(
        Command::new(bin())
            .arg("-c")
            .arg(&path)
            .current_dir(tmp.path())
            .env_remove("SMAILARCHIVER_PASSWD")
            .env("SMAILARCHIVER_KEY_PASSWORD", "key password"),
        "the binary under test",
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{name}: expected connection errors (exit 1), got:\n{}", text(&o));
    assert!(!err.to_lowercase().contains("unknown key"), "{name}: the tool does not know a key:\n{err}");
    let accounts = config["list"].as_array().unwrap().len();
    // A refused connection is tried again (1, 2, 4 s) before the account's error.
    let errors = || err.lines().filter(|l| l.starts_with("smailarchiver: error:"));
    let refused = errors().filter(|l| l.contains("cannot connect to 127.0.0.1:1") && l.contains("refused")).count();
    // An account with OAuth2 built in stops before it, not signed in yet.
    let unsigned = err.lines().filter(|l| l.contains("no OAuth2 token file") && l.contains("--oauth2-login")).count();
    assert_eq!(
        refused + unsigned,
        accounts,
        "{name}: every account should fail on the connection (or on the missing sign-in), and only there:\n{err}"
    );
}

#[test]
fn example_config_is_accepted_by_the_tool() {
    let text = fs::read_to_string(repo().join("packaging/config.example.json")).unwrap();
    let config: Value = serde_json::from_str(&text).expect("packaging/config.example.json is valid JSON");
    let known = all_config_keys();
    for key in keys_of(&config) {
        assert!(known.contains(&key), "config.example.json: unknown key {key}");
    }
    assert_config_accepted("packaging/config.example.json", &config);
}

#[test]
fn config_md_documents_every_key_and_its_examples_work() {
    let md = fs::read_to_string(repo().join("packaging/CONFIG.md")).unwrap();
    let all = all_config_keys();
    for key in &all {
        assert!(md.contains(&format!("| `{key}` |")), "packaging/CONFIG.md has no table row for `{key}`");
    }
    let blocks = json_blocks(&md);
    assert!(blocks.len() >= 2, "CONFIG.md should hold the full example and the original's");
    let mut seen = BTreeSet::new();
    for (i, block) in blocks.iter().enumerate() {
        let config: Value =
            serde_json::from_str(block).unwrap_or_else(|e| panic!("CONFIG.md json block {}: {e}\n{block}", i + 1));
        seen.extend(keys_of(&config));
        assert_config_accepted(&format!("CONFIG.md json block {}", i + 1), &config);
    }
    let unused: Vec<_> = all.difference(&seen).collect();
    assert!(unused.is_empty(), "the examples of CONFIG.md never use {unused:?}");
}

/// A fake binary: prints `body`, or for `--generate KIND` a stand-in for what KIND is.
fn fake_binary(body: &str) -> String {
    format!("#!/bin/sh\n[ \"$1\" = --generate ] && {{ echo \"$2 of {body}\"; exit 0; }}\necho {body}\n")
}

/// The machine's own target, whose binary packaging/pack runs to make the man page and
/// completions.
fn host_target() -> String {
    format!("{}-unknown-linux-musl", std::env::consts::ARCH)
}

/// A fake cross/out: two targets, a directory without a binary, and an old release.
fn fake_cross_out(tmp: &TempDir) -> PathBuf {
    let out = tmp.join("out");
    for (target, body) in [("aarch64-unknown-linux-musl", "arm"), ("x86_64-unknown-linux-musl", "x86")] {
        fs::create_dir_all(out.join(target)).unwrap();
        fs::write(out.join(target).join("smailarchiver"), fake_binary(body)).unwrap();
        fs::set_permissions(out.join(target).join("smailarchiver"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::create_dir_all(out.join("mipsel-unknown-linux-musl")).unwrap();
    fs::create_dir_all(out.join("release")).unwrap();
    fs::write(out.join("release/smailarchiver-0.0.1-old.tar.gz"), "old").unwrap();
    out
}

fn pack(cross_out: &Path) -> Output {
    output(
        Command::new("bash")
            .arg(repo().join("packaging/pack"))
            .env("CROSS_OUT", cross_out)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
        "bash is needed",
    )
}

#[test]
fn pack_packs_every_built_target_reproducibly() {
    let tmp = TempDir::new("pkg-release");
    let out = fake_cross_out(&tmp);
    let o = pack(&out);
    assert!(o.status.success(), "packaging/pack failed:\n{}", text(&o));
    let version = env!("CARGO_PKG_VERSION");
    let dir = out.join("release");
    let mut names: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let targets = ["aarch64-unknown-linux-musl", "x86_64-unknown-linux-musl"];
    let tarballs: Vec<String> = targets.iter().map(|t| format!("smailarchiver-{version}-{t}.tar.gz")).collect();
    let mut want_names = [&tarballs[..], &["SHA256SUMS".to_string()]].concat();
    want_names.sort();
    assert_eq!(names, want_names, "the old release must be gone");

    let sums = fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let want: String =
        tarballs.iter().map(|t| format!("{}  {t}\n", sha256_hex(&fs::read(dir.join(t)).unwrap()))).collect();
    assert_eq!(sums, want, "SHA256SUMS");

    for (target, tarball) in targets.iter().zip(&tarballs) {
        let top = format!("smailarchiver-{version}-{target}");
        let path = dir.join(tarball);
        let o = output(Command::new("tar").args(["-tvzf"]).arg(&path), "tar is needed");
        assert!(o.status.success(), "{}", text(&o));
        let mut members: Vec<(String, String, String)> = stdout(&o)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[5].to_string(), f[0].to_string(), f[1].to_string())
            })
            .collect();
        members.sort();
        let mut expected: Vec<(String, String, String)> = [
            ("", "drwxr-xr-x"),
            ("/CHANGELOG.md", "-rw-r--r--"),
            ("/CONFIG.md", "-rw-r--r--"),
            ("/CONTAINER.md", "-rw-r--r--"),
            ("/Containerfile", "-rw-r--r--"),
            ("/LICENSE", "-rw-r--r--"),
            ("/NAS-AND-ROUTERS.md", "-rw-r--r--"),
            ("/README.md", "-rw-r--r--"),
            ("/config.example.json", "-rw-r--r--"),
            ("/complete/", "drwxr-xr-x"),
            ("/complete/_smailarchiver", "-rw-r--r--"),
            ("/complete/smailarchiver.bash", "-rw-r--r--"),
            ("/complete/smailarchiver.fish", "-rw-r--r--"),
            ("/cron.example", "-rw-r--r--"),
            ("/man/", "drwxr-xr-x"),
            ("/man/smailarchiver.1", "-rw-r--r--"),
            ("/openwrt/", "drwxr-xr-x"),
            ("/openwrt/smailarchiver.init", "-rwxr-xr-x"),
            ("/smailarchiver", "-rwxr-xr-x"),
            ("/systemd/", "drwxr-xr-x"),
            ("/systemd/smailarchiver-failure@.service", "-rw-r--r--"),
            ("/systemd/smailarchiver.service", "-rw-r--r--"),
            ("/systemd/smailarchiver.timer", "-rw-r--r--"),
            ("/systemd/smailarchiver@.service", "-rw-r--r--"),
            ("/systemd/smailarchiver@.timer", "-rw-r--r--"),
        ]
        .iter()
        .map(|(p, mode)| {
            (if p.is_empty() { format!("{top}/") } else { format!("{top}{p}") }, mode.to_string(), "0/0".into())
        })
        .collect();
        expected.sort();
        assert_eq!(members, expected, "{tarball}: members, modes, owners");

        let o = output(Command::new("tar").args(["-xOzf"]).arg(&path).arg(format!("{top}/smailarchiver")), "tar");
        let body = if target.starts_with("aarch64") { "arm" } else { "x86" };
        assert_eq!(stdout(&o), fake_binary(body), "{tarball}: the binary of its own target");
        // The man page and completions come from the binary of this machine's CPU.
        let host = if host_target().starts_with("aarch64") { "arm" } else { "x86" };
        for (kind, file) in [
            ("man", "man/smailarchiver.1"),
            ("complete-bash", "complete/smailarchiver.bash"),
            ("complete-zsh", "complete/_smailarchiver"),
            ("complete-fish", "complete/smailarchiver.fish"),
        ] {
            let o = output(Command::new("tar").args(["-xOzf"]).arg(&path).arg(format!("{top}/{file}")), "tar");
            assert_eq!(stdout(&o), format!("{kind} of {host}\n"), "{tarball}: {file}");
        }
        let o = output(Command::new("tar").args(["-xOzf"]).arg(&path).arg(format!("{top}/CONFIG.md")), "tar");
        assert_eq!(o.stdout, fs::read(repo().join("packaging/CONFIG.md")).unwrap());
    }

    // Same inputs, same bytes.
    let first = fs::read(dir.join(&tarballs[0])).unwrap();
    let o = pack(&out);
    assert!(o.status.success(), "second run:\n{}", text(&o));
    assert!(fs::read(dir.join(&tarballs[0])).unwrap() == first, "the release archives are not reproducible");
}

#[test]
fn pack_without_binaries_says_so() {
    let tmp = TempDir::new("pkg-release-empty");
    fs::create_dir_all(tmp.join("out/release")).unwrap();
    let o = pack(&tmp.join("out"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("no binary in"), "{}", text(&o));
    let o = pack(&tmp.join("missing"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", text(&o));
    // A target named that has no binary, and a binary that cannot make the man page.
    let out = fake_cross_out(&tmp);
    let o = output(
        Command::new("bash").arg(repo().join("packaging/pack")).arg("mipsel-unknown-linux-musl").env("CROSS_OUT", &out),
        "bash",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("no binary") && stderr(&o).contains("cross/build mipsel"), "{}", text(&o));
    fs::write(out.join(host_target()).join("smailarchiver"), "#!/bin/sh\nexit 3\n").unwrap();
    let o = pack(&out);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("--generate man' failed"), "{}", text(&o));
    assert!(!out.join("release/SHA256SUMS").exists(), "nothing is packed after a failure");
}

#[test]
fn cross_and_packaging_scripts_parse_and_refuse_unknown_targets() {
    for script in [
        "cross/setup",
        "cross/build",
        "cross/check",
        "cross/test",
        "cross/common.sh",
        "packaging/pack",
        "packaging/release",
        "packaging/check-reproducible",
        "packaging/container",
        "packaging/set-version",
        "tests/try-server",
        ".ci/run",
        ".ci/install-test-deps",
    ] {
        let o = output(Command::new("bash").arg("-n").arg(repo().join(script)), "bash is needed");
        assert!(o.status.success(), "bash -n {script}:\n{}", text(&o));
        if !script.ends_with(".sh") {
            let mode = fs::metadata(repo().join(script)).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "{script} should be executable");
        }
    }
    let o = output(Command::new("sh").arg("-n").arg(repo().join("packaging/openwrt/smailarchiver.init")), "sh");
    assert!(o.status.success(), "sh -n smailarchiver.init:\n{}", text(&o));
    for script in [
        "cross/build",
        "cross/check",
        "cross/test",
        "packaging/release",
        "packaging/check-reproducible",
        "packaging/container build",
    ] {
        let mut words = script.split(' ');
        let o = output(
            Command::new("bash").arg(repo().join(words.next().unwrap())).args(words).arg("sparc-sun-solaris"),
            "bash is needed",
        );
        assert_eq!(o.status.code(), Some(2), "{script} sparc-sun-solaris:\n{}", text(&o));
        let err = stderr(&o);
        assert!(err.contains("unknown target 'sparc-sun-solaris'"), "{script}:\n{err}");
        assert!(err.contains("aarch64-unknown-linux-musl"), "{script} should list the targets:\n{err}");
    }
}

/// Runs the OpenWrt init script's start_service with procd's functions and jsonfilter
/// replaced by stand-ins that print what they were given.
fn openwrt_start(config: &str) -> Output {
    let tmp = TempDir::new("pkg-openwrt");
    let conf = tmp.join("config.json");
    fs::write(&conf, config).unwrap();
    // jsonfilter -i FILE -e EXPR...: the two expressions the script uses, in python3.
    let jsonfilter = r#"jsonfilter() {
    python3 - "$@" <<'PY'
import json, sys
args = sys.argv[1:]
data = json.load(open(args[args.index("-i") + 1]))
found = False
for i, a in enumerate(args):
    if a != "-e":
        continue
    expr = args[i + 1]
    if expr == "@.archive_dir" and "archive_dir" in data:
        print(data["archive_dir"]); found = True
    elif expr == "@.list[*].archive_dir":
        for acc in data.get("list", []):
            if "archive_dir" in acc:
                print(acc["archive_dir"]); found = True
sys.exit(0 if found else 1)
PY
}"#;
    let script = format!(
        "{jsonfilter}\n\
         procd_open_instance() {{ echo open; }}\n\
         procd_set_param() {{ echo \"param $*\"; }}\n\
         procd_close_instance() {{ echo close; }}\n\
         . '{init}'\n\
         PROG=/bin/true\n\
         CONFIG='{conf}'\n\
         start_service\n",
        init = repo().join("packaging/openwrt/smailarchiver.init").display(),
        conf = conf.display(),
    );
    output(Command::new("sh").arg("-c").arg(script), "sh and python3 are needed: run .ci/install-test-deps")
}

#[test]
fn openwrt_init_keeps_the_archive_off_flash() {
    // Some mount point of this machine other than / (a USB stick or a NAS share on a router).
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let other = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .find(|m| ["/dev/shm", "/proc", "/sys", "/dev"].contains(m))
        .expect("no mount point other than / found");
    let ok = openwrt_start(&format!(r#"{{"archive_dir": "{other}/mail-archive", "list": []}}"#));
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        stdout(&ok).contains("param command /bin/true -q -c ") && stdout(&ok).contains("close"),
        "the run should be started under procd:\n{}",
        text(&ok)
    );

    let on_root = openwrt_start(r#"{"archive_dir": "/var/lib/nowhere/mail", "list": []}"#);
    assert!(!on_root.status.success(), "an archive on / must be refused:\n{}", text(&on_root));
    assert!(stderr(&on_root).contains("is not on USB or network storage"), "{}", text(&on_root));
    assert!(!stdout(&on_root).contains("open"), "nothing may be started:\n{}", text(&on_root));

    let account_on_root =
        openwrt_start(&format!(r#"{{"archive_dir": "{other}/a", "list": [{{"archive_dir": "/tmp/mail"}}]}}"#));
    assert!(
        !account_on_root.status.success(),
        "an account's archive in /tmp must be refused:\n{}",
        text(&account_on_root)
    );

    let unset = openwrt_start(r#"{"list": []}"#);
    assert!(!unset.status.success(), "a config without archive_dir must be refused:\n{}", text(&unset));
    assert!(stderr(&unset).contains("set \"archive_dir\""), "{}", text(&unset));
}

/// `packaging/set-version` on a copy of the committed tree: the version everywhere a
/// `--locked` build reads it, the CHANGELOG heading dated, and a wrong version refused.
#[test]
fn set_version_changes_what_a_release_needs() {
    let tmp = TempDir::new("pkg-set-version");
    let tree = tmp.dir("tree");
    let o = output(
        Command::new("sh").arg("-c").arg(format!(
            "git -C '{}' archive HEAD | tar -x -C '{}'",
            repo().display(),
            tree.display()
        )),
        "git and tar are needed",
    );
    assert!(o.status.success(), "git archive: {}", text(&o));
    // What the script reads and writes as this checkout has them, committed or not.
    for file in [
        "packaging/set-version",
        "CHANGELOG.md",
        "Cargo.toml",
        "Cargo.lock",
        "fuzz/Cargo.toml",
        "fuzz/Cargo.lock",
        "tests/bench/codec/Cargo.toml",
        "tests/bench/codec/Cargo.lock",
    ] {
        fs::copy(repo().join(file), tree.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let version = env!("CARGO_PKG_VERSION");
    let mut unreleased = fs::read_to_string(tree.join("CHANGELOG.md")).unwrap();
    if !unreleased.lines().any(|l| l.starts_with("## Unreleased (")) {
        // Just after a release the CHANGELOG has no section for the next one yet: give the
        // copy one, as the next change would.
        let (major_minor, patch) = version.rsplit_once('.').expect("a version like 0.7.0");
        let patch: u32 = patch.parse().expect("a numeric patch version");
        let top = format!("## {version} (");
        assert!(unreleased.contains(&top), "CHANGELOG.md has no section for {version}, Cargo.toml's version");
        unreleased = unreleased.replacen(&top, &format!("## Unreleased ({major_minor}.{})\n\n{top}", patch + 1), 1);
        fs::write(tree.join("CHANGELOG.md"), &unreleased).unwrap();
    }
    let heading = unreleased.lines().find(|l| l.starts_with("## Unreleased (")).expect("an Unreleased section");
    let next = heading.trim_start_matches("## Unreleased (").trim_end_matches(')').to_string();
    assert_ne!(next, version, "the CHANGELOG's next version is the one Cargo.toml has already");

    let set = |args: &[&str]| output(Command::new("bash").arg(tree.join("packaging/set-version")).args(args), "bash");
    let o = set(&["9.9.9"]);
    assert_eq!(o.status.code(), Some(1), "a version without an Unreleased section: {}", text(&o));
    let o = set(&[&next, "2027-01-31"]);
    assert!(o.status.success(), "{}", text(&o));
    let manifest = fs::read_to_string(tree.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(&format!("\nversion = \"{next}\"\n")), "Cargo.toml:\n{manifest}");
    for lock in ["Cargo.lock", "fuzz/Cargo.lock", "tests/bench/codec/Cargo.lock"] {
        let text = fs::read_to_string(tree.join(lock)).unwrap();
        assert!(text.contains(&format!("name = \"smailarchiver\"\nversion = \"{next}\"")), "{lock} not updated");
    }
    let changelog = fs::read_to_string(tree.join("CHANGELOG.md")).unwrap();
    assert!(changelog.contains(&format!("\n## {next} (2027-01-31)\n")), "CHANGELOG heading not dated");
    assert!(!changelog.contains("## Unreleased ("), "the Unreleased heading is left");
    // The lock files agree with the manifests: updating the workspace's own entries would
    // change nothing. Needs only cargo's index cache (fuzz/'s dependencies are in it once
    // fuzz/ was built, as .ci/run does first), not every dependency's sources.
    for manifest in ["Cargo.toml", "fuzz/Cargo.toml"] {
        let o = output(
            Command::new("cargo")
                .args(["update", "--workspace", "--locked", "--offline", "--manifest-path"])
                .arg(tree.join(manifest)),
            "cargo",
        );
        assert!(o.status.success(), "{manifest}: --locked after set-version: {}", stderr(&o));
    }
}

/// The rows of README's config table (`| key | where | meaning |`): the keys each names.
fn readme_config_rows(readme: &str) -> BTreeSet<String> {
    let start = readme.find("| key | where | meaning |").expect("README has its config table");
    let mut keys = BTreeSet::new();
    for row in readme[start..].lines().skip(2).take_while(|l| l.starts_with('|')) {
        let first = row.split('|').nth(1).unwrap_or_default();
        keys.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    keys
}

/// README's config table names every key the tool knows, and only those.
#[test]
fn readme_config_table_is_the_tools_keys() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let rows = readme_config_rows(&readme);
    let known = all_config_keys();
    let missing: Vec<_> = known.difference(&rows).collect();
    let unknown: Vec<_> = rows.difference(&known).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README's config table lacks {missing:?}, has unknown {unknown:?}"
    );
}

/// Every command line the documents show (`smailarchiver -...` lines) uses flags the tool
/// has, and README's exit statuses are the ones `--help` lists.
#[test]
fn documented_commands_and_exit_statuses_are_the_tools() {
    let mut docs = vec![repo().join("README.md")];
    for e in fs::read_dir(repo().join("packaging")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut checked = 0;
    for doc in &docs {
        let text = fs::read_to_string(doc).unwrap();
        for line in text.lines() {
            for (at, _) in line.match_indices("smailarchiver -") {
                // The program, not a directory named after it (`/var/lib/smailarchiver`).
                let before = &line[..at];
                if before.ends_with('/') && !before.ends_with("bin/") && !before.ends_with("./") {
                    continue;
                }
                let command = &line[at + "smailarchiver".len()..];
                let command = command.split(['`', '|', '#', ')', '"']).next().unwrap_or_default();
                for word in command.split_whitespace().filter(|w| w.starts_with('-') && w.len() > 1) {
                    let word = word.trim_end_matches([',', '.', ';', ']']).split('=').next().unwrap_or_default();
                    let word = word.trim_start_matches('[');
                    if word.len() < 2 {
                        continue;
                    }
                    // Only whether the flag exists: values and combinations are other tests'.
                    let known = match smailarchiver::cli::flags::parse([std::ffi::OsString::from(word)]) {
                        Ok(_) => true,
                        Err(e) => !e.to_string().contains("unknown option") && !e.to_string().contains("ambiguous"),
                    };
                    assert!(known, "{}: `{}` uses {word}, which the tool does not have", doc.display(), line.trim());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} flags found in the documents' commands");
    let help = String::from_utf8(Command::new(bin()).arg("--help").output().unwrap().stdout).unwrap();
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let table = &readme[readme.find("| code | meaning |").expect("README's exit status table")..];
    let codes: Vec<i32> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1)?.trim().parse().ok())
        .collect();
    let tool: Vec<i32> = smailarchiver::cli::flags::EXIT_STATUSES.iter().map(|(code, _)| *code).collect();
    assert_eq!(codes, tool, "README's exit statuses");
    let help_line = help.split("Exit status:").nth(1).expect("--help lists the exit statuses").replace('\n', " ");
    for (code, what) in smailarchiver::cli::flags::EXIT_STATUSES {
        assert!(help_line.contains(&format!("{code} {what}")), "--help lacks exit status {code}: {help_line}");
    }
}
