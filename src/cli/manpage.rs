//! `--generate man`: the manual page (roff, `man(7)` macros), made from the flag table of
//! [`crate::cli::flags`] like `--help`, so that a flag cannot be added without appearing in it.

use crate::cli::flags::{Flag, Group, EXIT_STATUSES, FLAGS, USAGE};

/// What the page says beside the options: each entry is a paragraph.
const DESCRIPTION: &[&str] = &[
    "smailarchiver backs up IMAP mailboxes one file per message (UID.mbox), optionally \
     compressed (zlib, .gz) and encrypted (AES-256-CBC with HMAC-SHA256, .enc), in the format of \
     SMail Archiver 0.5: archives written by either program restore with the other. A rerun \
     fetches only the messages that are new; flags and arrival dates are kept beside them.",
    "Each message flows from the server through fixed-size buffers into a temporary file that is \
     synced and renamed into place: memory does not grow with message size, and a crash or a \
     power loss leaves no half-written file. Once connected, the process confines itself with \
     Linux landlock to the archive directory (see --sandbox). Encrypted files are authenticated \
     before anything is decrypted.",
    "Without arguments, an interactive wizard asks for one account, backs it up and saves its \
     answers as a config file for -c.",
];

/// Environment variables the tool reads, with what they are for.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "SMAILARCHIVER_PASSWD",
        "The email password, when neither -p, --passwd-command nor --oauth2-token-command gives one.",
    ),
    (
        "SMAILARCHIVER_KEY_PASSWORD",
        "The key file's password (-P), when neither --key-password-file nor --key-password-command gives one.",
    ),
];

/// The archive's files, with what they hold.
const FILES: &[(&str, &str)] = &[
    ("ROOT/USER/FOLDER/UID.mbox[.gz][.enc]", "One message, as the original program wrote it."),
    (
        "ROOT/.smailarchiver/",
        "The archive's records: which account and mailbox each directory belongs to, each folder's \
         flags, dates and digests, and messages being written.",
    ),
    ("ROOT/.smailarchiver.lock", "Held by a running backup."),
    ("keys", "The default key file (-k), created with mode 0600 by the first encrypted backup."),
];

/// A few runs, as a reader would type them.
const EXAMPLES: &[(&str, &str)] = &[
    ("smailarchiver -u ann -i imap.example.org -z -e --dir /srv/mail", "Back up INBOX, compressed and encrypted."),
    ("smailarchiver -q -c /etc/smailarchiver/config.json", "Back up every account of a config file, quietly (cron)."),
    ("smailarchiver -r /srv/mail/ann/INBOX -k keys", "Restore a folder to /srv/mail/ann/INBOX.mbox."),
    ("smailarchiver --verify /srv/mail -k keys", "Decode every file of the archive and report bad ones."),
];

const SEE_ALSO: &str = "CONFIG.md (every key of the config file), NAS-AND-ROUTERS.md (NAS boxes, \
    routers, cron, systemd) and CONTAINER.md (the container image), in the release archive and in \
    packaging/ of the source; README.md.";

/// The manual page.
pub fn render() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = String::new();
    out.push_str(".\\\" Made by `smailarchiver --generate man` from its option table.\n");
    out.push_str(&format!(".TH SMAILARCHIVER 1 \"\" \"smailarchiver {version}\" \"User Commands\"\n"));
    // No hyphenation, ragged right: option names broken at a hyphen cannot be copied.
    out.push_str(".nh\n.ad l\n");
    out.push_str(".SH NAME\nsmailarchiver \\- back up IMAP mailboxes one file per message, compressed and encrypted\n");

    // One form per line, unfilled: a form broken in the middle reads as two.
    out.push_str(".SH SYNOPSIS\n.nf\n");
    for form in USAGE {
        out.push_str(&format!("\\fBsmailarchiver\\fR {}\n", text(form)));
    }
    out.push_str("\\fBsmailarchiver\\fR\n.fi\n");

    out.push_str(".SH DESCRIPTION\n");
    paragraphs(&mut out, DESCRIPTION);

    out.push_str(".SH OPTIONS\n");
    let mut group = None;
    for flag in FLAGS {
        if group != Some(flag.group) {
            group = Some(flag.group);
            out.push_str(&format!(".SS \"{}\"\n", text(group_title(flag.group))));
        }
        out.push_str(&format!(".TP\n{}\n{}\n", names(flag), text(flag.doc)));
    }

    out.push_str(".SH ENVIRONMENT\n");
    tagged(&mut out, ENVIRONMENT, "B");
    out.push_str(".SH FILES\n");
    tagged(&mut out, FILES, "I");
    out.push_str(".SH EXIT STATUS\n");
    for (code, what) in EXIT_STATUSES {
        out.push_str(&format!(".TP\n.B {code}\n{}\n", text(what)));
    }
    out.push_str(".SH EXAMPLES\n");
    tagged(&mut out, EXAMPLES, "B");
    out.push_str(".SH SEE ALSO\n");
    out.push_str(&text(SEE_ALSO));
    out.push('\n');
    out
}

/// A group's `--help` title without its colon.
fn group_title(group: Group) -> &'static str {
    group.title().trim_end_matches(':')
}

/// `-u, --user USER` with the names bold and the value italic.
fn names(flag: &Flag) -> String {
    let mut line = match flag.short {
        Some(c) => format!("\\fB\\-{}\\fR, \\fB\\-\\-{}\\fR", text(&c.to_string()), text(flag.long)),
        None => format!("\\fB\\-\\-{}\\fR", text(flag.long)),
    };
    if let Some(value) = flag.value {
        line.push_str(&format!(" \\fI{}\\fR", text(value)));
    }
    line
}

fn paragraphs(out: &mut String, paragraphs: &[&str]) {
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        out.push_str(&text(p));
        out.push('\n');
    }
}

/// `.TP` entries: the tag in `font` (B or I), then its text.
fn tagged(out: &mut String, entries: &[(&str, &str)], font: &str) {
    for (tag, what) in entries {
        out.push_str(&format!(".TP\n.{font} \"{}\"\n{}\n", text(tag), text(what)));
    }
}

/// Text for one roff line: backslashes and hyphens escaped (a plain `-` may be set as a
/// hyphen, which breaks copying options out of the page), a leading `.` or `'` kept from
/// being read as a request, quotes kept inside macro arguments, and non-ASCII characters
/// as `\[uXXXX]`, which every groff reads whatever its input encoding.
fn text(s: &str) -> String {
    let mut out = String::new();
    if s.starts_with(['.', '\'']) {
        out.push_str("\\&");
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '"' => out.push_str("\\(dq"),
            '\n' => out.push(' '),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", c as u32)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_an_entry() {
        let page = render();
        for flag in FLAGS {
            let entry = format!(".TP\n{}\n{}\n", names(flag), text(flag.doc));
            assert!(page.contains(&entry), "--{} has no entry", flag.long);
        }
    }

    #[test]
    fn text_is_escaped_for_roff() {
        assert_eq!(text(".hidden"), "\\&.hidden");
        assert_eq!(text("'quote"), "\\&'quote");
        assert_eq!(text("--dir C:\\x \"y\""), "\\-\\-dir C:\\ex \\(dqy\\(dq");
        assert_eq!(text("Reçus"), "Re\\[u00E7]us");
        assert_eq!(text("a\tb"), "a\\[u0009]b");
    }

    #[test]
    fn no_line_starts_a_request_by_accident() {
        for line in render().lines() {
            if let Some(rest) = line.strip_prefix('.') {
                let request = rest.split([' ', '\\']).next().unwrap_or_default();
                assert!(
                    ["TH", "SH", "SS", "TP", "PP", "B", "I", "nf", "fi", "nh", "ad", ""].contains(&request),
                    "{line}"
                );
            }
            assert!(!line.starts_with('\''), "{line}");
        }
    }
}
