//! `--generate complete-bash|complete-zsh|complete-fish`: shell completion scripts made
//! from the flag table of [`crate::cli::flags`], so that every flag completes, with what its
//! value is (a file, a directory, a command, one of a fixed set).

use crate::cli::flags::{Flag, FLAGS};

/// What a flag's value is, for completing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// The flag takes no value.
    None,
    /// A file (a directory on the way to one included).
    File,
    /// A directory.
    Dir,
    /// A shell command.
    Command,
    /// One of the flag's fixed choices ([`Flag::choices`]).
    Choice,
    /// Free text: a name, a number, a date; nothing to offer.
    Text,
}

/// The value names of the flag table that are free text. A value name that is in neither
/// this list nor [`kind`]'s match is a new kind of value: the tests fail until it is placed.
pub const TEXT_VALUES: &[&str] = &[
    "USER", "SERVER", "N", "HEX", "PASS", "SECONDS", "FOLDER", "DATE", "PATTERN", "SIZE", "NAME", "N[,M-K]", "ID",
    "TENANT", "QUERY", "DAYS",
];

/// What `flag`'s value is, from its value name (`FILE`, `DIR`, `CMD`...).
pub fn kind(flag: &Flag) -> ValueKind {
    if !flag.choices().is_empty() {
        return ValueKind::Choice;
    }
    match flag.value {
        None => ValueKind::None,
        Some("FILE" | "PEM" | "PATH") => ValueKind::File,
        Some("DIR" | "ROOT" | "OUT") => ValueKind::Dir,
        Some("CMD") => ValueKind::Command,
        Some(_) => ValueKind::Text,
    }
}

/// `-u` and `--user`, as the shells write them.
fn all_names(flag: &Flag) -> Vec<String> {
    flag.short.map(|c| format!("-{c}")).into_iter().chain([format!("--{}", flag.long)]).collect()
}

/// The first sentence of a flag's documentation: what a completion menu has room for.
fn summary(flag: &Flag) -> &'static str {
    let doc = flag.doc;
    match doc.find(". ") {
        Some(end) => &doc[..end],
        None => doc.trim_end_matches('.'),
    }
}

/// The bash script: `source` it, or install it as
/// `/usr/share/bash-completion/completions/smailarchiver`.
pub fn bash() -> String {
    let names_of = |want: ValueKind| -> String {
        FLAGS.iter().filter(|f| kind(f) == want).flat_map(all_names).collect::<Vec<_>>().join("|")
    };
    let mut cases = String::new();
    for (want, action) in [
        (ValueKind::File, "mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")"),
        (ValueKind::Dir, "mapfile -t COMPREPLY < <(compgen -d -- \"$cur\")"),
        (ValueKind::Command, "mapfile -t COMPREPLY < <(compgen -c -- \"$cur\")"),
        (ValueKind::Text, "COMPREPLY=()"),
    ] {
        let names = names_of(want);
        if !names.is_empty() {
            cases.push_str(&format!("        {names})\n            {action}\n            return 0 ;;\n"));
        }
    }
    for flag in FLAGS.iter().filter(|f| kind(f) == ValueKind::Choice) {
        cases.push_str(&format!(
            "        {})\n            mapfile -t COMPREPLY < <(compgen -W '{}' -- \"$cur\")\n            return 0 ;;\n",
            all_names(flag).join("|"),
            flag.choices().join(" ")
        ));
    }
    let every: Vec<String> = FLAGS.iter().flat_map(all_names).collect();
    format!(
        r#"# bash completion for smailarchiver; made by `smailarchiver --generate complete-bash`.
_smailarchiver() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}"
    local prev=""
    [ "$COMP_CWORD" -gt 0 ] && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    # bash splits `--dir=VALUE` at the `=`: complete VALUE as the value of --dir.
    if [ "$cur" = "=" ]; then
        cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ]; then
        prev="${{COMP_WORDS[COMP_CWORD-2]}}"
    fi
    # The value of the flag before the cursor.
    case "$prev" in
{cases}    esac
    if [[ "$cur" == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W '{every}' -- "$cur")
        return 0
    fi
    COMPREPLY=()
}}
# -o filenames: directories get their slash and names with spaces their quoting.
complete -o filenames -F _smailarchiver smailarchiver
"#,
        every = every.join(" ")
    )
}

/// Text inside a single-quoted zsh `_arguments` spec: `'` closed and reopened, and the
/// characters `_arguments` reads in a description (`[`, `]`, `:`, `\`) escaped.
fn zsh_quote(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '[' | ']' | ':' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The zsh script: install it as `_smailarchiver` in a directory of `$fpath`.
pub fn zsh() -> String {
    let mut specs = String::new();
    for flag in FLAGS {
        let action = match kind(flag) {
            ValueKind::None => String::new(),
            ValueKind::File => ":_files".into(),
            ValueKind::Dir => ":_files -/".into(),
            ValueKind::Command => ":_cmdstring".into(),
            ValueKind::Choice => format!(":({})", flag.choices().join(" ")),
            ValueKind::Text => ": ".into(),
        };
        let message = flag.value.map(|v| format!(":{}", zsh_quote(v))).unwrap_or_default();
        let names = all_names(flag);
        // `+`/`=`: the value may follow in the same word (`-uann`, `--user=ann`) or the next.
        let spelled: Vec<String> = names
            .iter()
            .map(|n| match flag.value {
                None => n.clone(),
                Some(_) if n.starts_with("--") => format!("{n}="),
                Some(_) => format!("{n}+"),
            })
            .collect();
        // A flag that adds to itself can be given again; the others exclude their own names.
        let exclusion = if flag.repeatable() { "*".to_string() } else { format!("({})", names.join(" ")) };
        let desc = zsh_quote(summary(flag));
        for name in spelled {
            specs.push_str(&format!("    '{exclusion}{name}[{desc}]{message}{action}' \\\n"));
        }
    }
    format!(
        "#compdef smailarchiver\n\
         # zsh completion for smailarchiver; made by `smailarchiver --generate complete-zsh`.\n\
         _arguments -s -S \\\n{specs}    && return 0\n"
    )
}

/// Text inside single quotes for fish: `\` and `'` escaped.
fn fish_quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The fish script: install it as `smailarchiver.fish` in a `vendor_completions.d`.
pub fn fish() -> String {
    let mut out = String::from(
        "# fish completion for smailarchiver; made by `smailarchiver --generate complete-fish`.\n\
         # Only flags take words of their own: no file names where no flag asks for one.\n\
         complete -c smailarchiver -f\n",
    );
    for flag in FLAGS {
        let mut line = String::from("complete -c smailarchiver");
        if let Some(c) = flag.short {
            line.push_str(&format!(" -s {c}"));
        }
        line.push_str(&format!(" -l {}", flag.long));
        match kind(flag) {
            ValueKind::None => {}
            ValueKind::File => line.push_str(" -r -F"),
            ValueKind::Dir => line.push_str(" -x -a '(__fish_complete_directories)'"),
            ValueKind::Command => line.push_str(" -x -a '(__fish_complete_command)'"),
            ValueKind::Choice => line.push_str(&format!(" -x -a '{}'", flag.choices().join(" "))),
            ValueKind::Text => line.push_str(" -x"),
        }
        line.push_str(&format!(" -d '{}'\n", fish_quote(summary(flag))));
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_name_has_a_kind() {
        for flag in FLAGS {
            if kind(flag) == ValueKind::Text {
                let value = flag.value.unwrap_or_default();
                assert!(
                    TEXT_VALUES.contains(&value),
                    "--{} takes {value}: say in completions::kind what it is (a file, a directory, \
                     a command...) or add it to TEXT_VALUES",
                    flag.long
                );
            }
        }
    }

    #[test]
    fn every_flag_is_in_every_script() {
        let (bash, zsh, fish) = (bash(), zsh(), fish());
        // bash: every name among the words offered for `-`, and every flag with a value
        // among the `case` patterns that complete values.
        let offered = bash.split("compgen -W '").last().and_then(|s| s.split('\'').next()).unwrap_or_default();
        let patterns: Vec<&str> = bash
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with('-') && l.ends_with(')'))
            .flat_map(|l| l.trim_end_matches(')').split('|'))
            .collect();
        for flag in FLAGS {
            for name in all_names(flag) {
                assert!(offered.split(' ').any(|w| w == name), "bash does not offer {name}");
                assert_eq!(patterns.contains(&name.as_str()), flag.value.is_some(), "bash: the value of {name}");
                let spelled = match flag.value {
                    None => name.clone(),
                    Some(_) if name.starts_with("--") => format!("{name}="),
                    Some(_) => format!("{name}+"),
                };
                assert!(zsh.contains(&format!("){spelled}[")) || zsh.contains(&format!("*{spelled}[")), "zsh: {name}");
            }
            assert!(fish.contains(&format!(" -l {} ", flag.long)), "fish: --{}", flag.long);
            if let Some(c) = flag.short {
                assert!(fish.contains(&format!(" -s {c} -l {} ", flag.long)), "fish: -{c}");
            }
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(zsh_quote("it's [a]: b\\c"), "it'\\''s \\[a\\]\\: b\\\\c");
        assert_eq!(fish_quote("it's a\\b"), "it\\'s a\\\\b");
    }

    #[test]
    fn summaries_are_first_sentences() {
        let user = FLAGS.iter().find(|f| f.long == "user").unwrap();
        assert_eq!(summary(user), "Email user name (login)");
        let keys = FLAGS.iter().find(|f| f.long == "keys").unwrap();
        assert_eq!(summary(keys), "Key file (default: keys)");
    }
}
