//! `--generate`: the man page renders without a warning and documents every flag of the
//! table; the bash, zsh and fish completion scripts load in their shells and offer every
//! flag and the right kind of value. Needs man-db, groff, zsh and fish
//! (`.ci/install-test-deps`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;
use smailarchiver::cli::flags::FLAGS;

/// `--generate KIND` written to `dir/name`.
fn generate(kind: &str, dir: &Path, name: &str) -> PathBuf {
    let o = run(&["--generate", kind], &[]);
    assert_eq!(o.status.code(), Some(0), "--generate {kind}: {}", stderr(&o));
    assert_eq!(stderr(&o), "", "--generate {kind}");
    let path = dir.join(name);
    fs::write(&path, &o.stdout).unwrap();
    path
}

/// Runs a tool of the test dependencies, with a hint when it is not installed.
fn tool(cmd: &mut Command, package: &str) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}: run .ci/install-test-deps (apt-get install -y {package})"))
}

/// What a tool printed, for a failure message.
fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// Every `--long` and `-s` name of the table.
fn all_names() -> Vec<String> {
    FLAGS.iter().flat_map(|f| f.short.map(|c| format!("-{c}")).into_iter().chain([format!("--{}", f.long)])).collect()
}

#[test]
fn man_page_renders_without_warnings_and_documents_every_flag() {
    let tmp = TempDir::new("man");
    let page = generate("man", tmp.path(), "smailarchiver.1");
    let o = tool(Command::new("groff").args(["-ww", "-z", "-man", "-Tutf8"]).arg(&page), "groff");
    assert!(o.status.success() && o.stderr.is_empty(), "groff -ww: {}", text(&o));

    // As README says to read it, from the directory it is in: `man ./smailarchiver.1`.
    let o = tool(
        Command::new("man")
            .args(["--warnings=w", "./smailarchiver.1"])
            .current_dir(tmp.path())
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8"),
        "man-db",
    );
    assert!(o.status.success(), "man: {}", text(&o));
    assert_eq!(stderr(&o), "", "man warned");
    let shown = stdout(&o);
    assert!(shown.contains("SMAILARCHIVER(1)") && shown.contains(env!("CARGO_PKG_VERSION")), "{shown}");
    for section in ["SYNOPSIS", "OPTIONS", "EXIT STATUS", "ENVIRONMENT"] {
        assert!(shown.contains(&format!("\n{section}\n")), "no {section}:\n{shown}");
    }
    for f in FLAGS {
        let heading = match (f.short, f.value) {
            (Some(c), Some(v)) => format!("-{c}, --{} {v}", f.long),
            (Some(c), None) => format!("-{c}, --{}", f.long),
            (None, Some(v)) => format!("--{} {v}", f.long),
            (None, None) => format!("--{}", f.long),
        };
        assert!(shown.lines().any(|l| l.trim() == heading), "the man page has no entry {heading:?}:\n{shown}");
        // The first words of its text, as typed in the table (no hyphen turned into a dash).
        let start: String = f.doc.split(' ').take(3).collect::<Vec<_>>().join(" ");
        let flat = shown.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&start), "--{}: {start:?} not in the man page", f.long);
    }
}

#[test]
fn bash_completion_loads_and_completes() {
    let tmp = TempDir::new("bash-completion");
    let script = generate("complete-bash", tmp.path(), "smailarchiver.bash");
    fs::create_dir(tmp.join("sub dir")).unwrap();
    fs::write(tmp.join("config.json"), "{}").unwrap();
    let bash = |body: &str| -> String {
        let o = tool(
            Command::new("bash")
                .arg("-c")
                .arg(format!("source '{}'\n{body}", script.display()))
                .current_dir(tmp.path()),
            "bash",
        );
        assert!(o.status.success() && o.stderr.is_empty(), "bash: {body}: {}", text(&o));
        stdout(&o)
    };
    assert_eq!(bash("complete -p smailarchiver"), "complete -o filenames -F _smailarchiver smailarchiver\n");
    // COMPREPLY for the words before the cursor and the word at it, one per line, sorted.
    let complete = |words: &[&str]| -> Vec<String> {
        let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let out = bash(&format!(
            "COMP_WORDS=(smailarchiver {})\nCOMP_CWORD={}\n_smailarchiver\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words.join(" "),
            words.len()
        ));
        let mut got: Vec<String> = out.lines().filter(|l| !l.is_empty()).map(String::from).collect();
        got.sort();
        got
    };
    let mut every = all_names();
    every.sort();
    assert_eq!(complete(&["-"]), every, "every flag is offered");
    assert_eq!(complete(&["--sandbox", ""]), ["auto", "off", "require"]);
    assert_eq!(complete(&["--generate", "complete-"]), ["complete-bash", "complete-fish", "complete-zsh"]);
    assert_eq!(complete(&["--dir", ""]), ["sub dir"], "--dir takes a directory");
    assert_eq!(complete(&["--dir", "=", ""]), ["sub dir"], "--dir=");
    assert_eq!(complete(&["-c", "con"]), ["config.json"], "-c takes a file");
    assert_eq!(complete(&["-u", ""]), Vec::<String>::new(), "nothing to offer for a user name");
}

#[test]
fn zsh_completion_parses() {
    let tmp = TempDir::new("zsh-completion");
    let script = generate("complete-zsh", tmp.path(), "_smailarchiver");
    assert!(fs::read_to_string(&script).unwrap().starts_with("#compdef smailarchiver\n"));
    let o = tool(Command::new("zsh").arg("-n").arg(&script), "zsh");
    assert!(o.status.success() && o.stderr.is_empty(), "zsh -n: {}", text(&o));
}

#[test]
fn fish_completion_loads_and_completes() {
    let tmp = TempDir::new("fish-completion");
    let script = generate("complete-fish", tmp.path(), "smailarchiver.fish");
    fs::create_dir(tmp.join("archive")).unwrap();
    fs::write(tmp.join("config.json"), "{}").unwrap();
    let complete = |line: &str| -> Vec<String> {
        let o = tool(
            Command::new("fish")
                .arg("--no-config")
                .arg("-c")
                .arg(format!("source '{}'; complete -C '{line}'", script.display()))
                .current_dir(tmp.path()),
            "fish",
        );
        assert!(o.status.success() && o.stderr.is_empty(), "fish: {line}: {}", text(&o));
        let mut got: Vec<String> =
            stdout(&o).lines().map(|l| l.split('\t').next().unwrap_or_default().to_string()).collect();
        got.sort();
        got
    };
    let longs = complete("smailarchiver --");
    for f in FLAGS {
        assert!(longs.contains(&format!("--{}", f.long)), "fish does not offer --{}: {longs:?}", f.long);
    }
    assert_eq!(complete("smailarchiver --sandbox "), ["auto", "off", "require"]);
    assert_eq!(complete("smailarchiver --dir "), ["archive/"], "--dir takes a directory");
    assert_eq!(complete("smailarchiver -c con"), ["config.json"], "-c takes a file");
    assert_eq!(complete("smailarchiver "), Vec::<String>::new(), "no file names where no flag asks for one");
}
