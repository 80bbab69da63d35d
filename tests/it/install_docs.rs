//! README's install commands (issue 13, item 7): they work from a release archive made by
//! `packaging/pack` and from a clone after `cargo build --release`, they install the
//! file the unit's `Documentation=` names, and the installed units pass
//! `systemd-analyze verify`. The commands run as written except that every absolute path
//! is moved under a temporary directory, the group option is left out (no such group
//! here) and `useradd` and `systemctl`, which change the machine, are skipped.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The indented lines of README's first code block after the line starting `intro`.
fn block_after(readme: &str, intro: &str) -> Vec<String> {
    let start = readme.find(intro).unwrap_or_else(|| panic!("README has no line {intro:?}"));
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("    "))
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .filter(|l| !l.is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// The command with its absolute paths under `prefix` and its comment and group left out.
fn localised(command: &str, prefix: &Path) -> String {
    let command = command.split("   #").next().unwrap_or(command).trim();
    let p = prefix.display();
    command
        .replace(" -g smailarchiver", "")
        .replace(" /usr/local/", &format!(" {p}/usr/local/"))
        .replace(" /etc/", &format!(" {p}/etc/"))
}

/// Runs README's systemd install in `cwd`, `first` standing for its first command (the
/// binary's); returns the prefix it installed into.
fn install(cwd: &Path, first: Option<&str>, tmp: &TempDir) -> PathBuf {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let mut commands = block_after(&readme, "On Linux with systemd");
    assert!(commands[0].starts_with("install -m 0755 smailarchiver "), "{commands:?}");
    if let Some(first) = first {
        commands[0] = first.to_string();
    }
    let prefix = tmp.dir(&format!("prefix-{}", cwd.file_name().unwrap().to_string_lossy()));
    for dir in ["usr/local/bin", "etc/systemd/system"] {
        fs::create_dir_all(prefix.join(dir)).unwrap();
    }
    let mut ran = 0;
    for command in &commands {
        if command.starts_with("useradd ") || command.starts_with("systemctl ") {
            continue;
        }
        let command = localised(command, &prefix);
        if command.starts_with("systemd-analyze verify") {
            // verify checks that ExecStart= is executable: point it at the installed binary.
            let unit = prefix.join("etc/systemd/system/smailarchiver.service");
            let text = fs::read_to_string(&unit)
                .unwrap()
                .replace("ExecStart=/usr/local/bin/", &format!("ExecStart={}/usr/local/bin/", prefix.display()));
            fs::write(&unit, text).unwrap();
        }
        let o = Command::new("sh").arg("-c").arg(&command).current_dir(cwd).output().unwrap();
        assert!(o.status.success(), "{command} in {}: {}{}", cwd.display(), stdout(&o), stderr(&o));
        assert_eq!(stderr(&o), "", "{command}: warnings");
        ran += 1;
    }
    assert!(ran >= 6, "too few commands ran: {commands:?}");
    // What the unit names as its documentation is there.
    let unit = fs::read_to_string(prefix.join("etc/systemd/system/smailarchiver.service")).unwrap();
    let doc = unit.lines().find_map(|l| l.strip_prefix("Documentation=file://")).expect("a Documentation= file");
    assert!(prefix.join(doc.trim_start_matches('/')).is_file(), "{doc} not installed");
    let binary = prefix.join("usr/local/bin/smailarchiver");
    assert_eq!(fs::metadata(&binary).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(prefix.join("etc/smailarchiver/config.json").is_file());
    assert!(prefix.join("etc/systemd/system/smailarchiver.timer").is_file());
    prefix
}

#[test]
fn readme_install_works_from_a_clone() {
    let tmp = TempDir::new("install-clone");
    // A clone after `cargo build --release`: packaging/ and target/release/smailarchiver.
    let clone = tmp.dir("clone");
    let o = Command::new("cp").arg("-r").arg(repo().join("packaging")).arg(&clone).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    fs::create_dir_all(clone.join("target/release")).unwrap();
    fs::copy(bin(), clone.join("target/release/smailarchiver")).unwrap();
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let clone_block = block_after(&readme, "them in `packaging/`");
    assert_eq!(clone_block[0].split("   #").next().unwrap().trim(), "cargo build --release && cd packaging");
    let prefix = install(&clone.join("packaging"), Some(&clone_block[1]), &tmp);
    let o = Command::new(prefix.join("usr/local/bin/smailarchiver")).arg("--version").output().unwrap();
    assert_eq!(stdout(&o), format!("smailarchiver {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn readme_install_works_from_a_release_archive() {
    let tmp = TempDir::new("install-release");
    let out = tmp.dir("out");
    let target = "x86_64-unknown-linux-musl";
    fs::create_dir_all(out.join(target)).unwrap();
    fs::copy(bin(), out.join(target).join("smailarchiver")).unwrap();
    let o = Command::new("bash")
        .arg(repo().join("packaging/pack"))
        .env("CROSS_OUT", &out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "packaging/pack: {}", stderr(&o));
    let name = format!("smailarchiver-{}-{target}", env!("CARGO_PKG_VERSION"));
    let o = Command::new("tar")
        .arg("xzf")
        .arg(out.join("release").join(format!("{name}.tar.gz")))
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", stderr(&o));
    let prefix = install(&tmp.join(&name), None, &tmp);

    // The man page and completions, installed as README says, where man and the shells look.
    let commands = block_after(&readme(), "The man page and the completions");
    assert_eq!(commands.len(), 4, "{commands:?}");
    for command in &commands {
        let command = localised(command, &prefix);
        let o = Command::new("sh").arg("-c").arg(&command).current_dir(tmp.join(&name)).output().unwrap();
        assert!(o.status.success(), "{command}: {}{}", stdout(&o), stderr(&o));
    }
    let share = prefix.join("usr/local/share");
    let o = Command::new("man")
        .arg("-l")
        .arg(share.join("man/man1/smailarchiver.1"))
        .env("MANPAGER", "cat")
        .output()
        .expect("man: run .ci/install-test-deps");
    assert!(o.status.success() && stdout(&o).contains("--verify"), "man: {}", stderr(&o));
    let bash = share.join("bash-completion/completions/smailarchiver");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}'; complete -p smailarchiver", bash.display()))
        .output()
        .unwrap();
    assert!(o.status.success() && stdout(&o).contains("_smailarchiver"), "bash: {}", stderr(&o));
    for file in ["zsh/site-functions/_smailarchiver", "fish/vendor_completions.d/smailarchiver.fish"] {
        assert!(share.join(file).is_file(), "{file} not installed");
    }
}

fn readme() -> String {
    fs::read_to_string(repo().join("README.md")).unwrap()
}
