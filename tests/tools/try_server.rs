//! The program behind `tests/try-server`: a private Dovecot on 127.0.0.1 with a sample
//! mailbox, left running to try smailarchiver against by hand. It is the test harness's
//! server (tests/it/support/dovecot.rs), kept alive after this program exits.
//!
//!     try-server start DIR BINARY    start it, state in DIR/server; print the backup command
//!     try-server stop DIR            stop it and remove DIR/server (DIR's other files stay)
//!
//! Needs root and `.ci/install-test-deps` (Dovecot, openssl, the mail user), as the tests.

#[allow(dead_code)]
#[path = "../it/support/dovecot.rs"]
mod dovecot;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use dovecot::Dovecot;
use smailarchiver::mailbox_name::encode_utf7;

const USER: &str = "demo";
const PASSWORD: &str = "try-it-out";

/// One sample message: folder, flags, INTERNALDATE, From, Subject, body.
struct Sample {
    folder: &'static str,
    flags: &'static [&'static str],
    date: (u32, &'static str, u32),
    from: &'static str,
    subject: &'static str,
    body: &'static str,
}

/// The sample mailbox: the kinds of folder names, flags and headers real mailboxes have.
fn samples() -> Vec<Sample> {
    let s = |folder, flags, date, from, subject, body| Sample { folder, flags, date, from, subject, body };
    let mut all = vec![
        s("INBOX", &["\\Seen"][..], (3, "Jan", 2019), "Ann <ann@example.org>", "Welcome", "Hello and welcome.\n"),
        s(
            "INBOX",
            &["\\Seen", "\\Answered"],
            (14, "Feb", 2020),
            "Bo <bo@example.net>",
            "Re: the plan",
            "> what plan?\nThis one.\n",
        ),
        s(
            "INBOX",
            &["\\Flagged"],
            (1, "Mar", 2021),
            "Chloé <chloe@example.fr>",
            "Réunion demain à 10 h",
            "Salle 3, comme d'habitude.\n",
        ),
        s("INBOX", &[], (9, "Apr", 2022), "Jürgen <j@example.de>", "Größe der Dateien", "Die Dateien sind zu groß.\n"),
        s(
            "INBOX",
            &["\\Seen", "$Important"],
            (30, "May", 2023),
            "山田 <yamada@example.jp>",
            "会議の資料",
            "資料を添付します。\n",
        ),
        s("INBOX", &["\\Seen"], (12, "Jun", 2024), "Дмитрий <d@example.ru>", "Отчёт за июнь", "Отчёт во вложении.\n"),
        s("INBOX", &[], (2, "Jul", 2025), "noreply@example.com", "Your invoice", "Amount due: 0.00\n"),
        s("Sent", &["\\Seen"], (4, "Jan", 2019), "Demo <demo@example.org>", "Re: Welcome", "Thanks!\n"),
        s("Sent", &["\\Seen"], (15, "Feb", 2020), "Demo <demo@example.org>", "Plan, version 2", "Attached.\n"),
        s(
            "Sent",
            &["\\Seen"],
            (2, "Mar", 2021),
            "Demo <demo@example.org>",
            "Re: Réunion demain à 10 h",
            "J'y serai.\n",
        ),
        s("Drafts", &["\\Draft"], (20, "Aug", 2025), "Demo <demo@example.org>", "Unfinished", "Dear \n"),
        s("Archive/2019", &["\\Seen"], (5, "Sep", 2019), "Ann <ann@example.org>", "Old news", "From the archive.\n"),
        s(
            "Archive/2019",
            &["\\Seen", "\\Flagged"],
            (6, "Oct", 2019),
            "Ann <ann@example.org>",
            "Keep this",
            "Important.\n",
        ),
        s(
            "Reçus",
            &["\\Seen"],
            (7, "Nov", 2022),
            "Chloé <chloe@example.fr>",
            "Facture n° 42",
            "Ci-joint la facture.\n",
        ),
        s("Входящие", &[], (8, "Dec", 2023), "Дмитрий <d@example.ru>", "Привет", "Как дела?\n"),
        s("日本語", &["\\Seen"], (9, "Jan", 2024), "山田 <yamada@example.jp>", "こんにちは", "元気ですか。\n"),
        s("ארכיון", &["\\Seen"], (10, "Feb", 2025), "דנה <dana@example.co.il>", "שלום", "מה שלומך?\n"),
    ];
    // A folder with more mail: a mailing list, every third message unread.
    for i in 0..24u32 {
        let flags: &'static [&'static str] = if i % 3 == 0 { &[] } else { &["\\Seen"] };
        all.push(Sample {
            folder: "Lists/rust",
            flags,
            date: (1 + i, "Mar", 2025),
            from: "list@example.org",
            subject: LIST_SUBJECTS[i as usize % LIST_SUBJECTS.len()],
            body: "A message of the list.\nWith a second line, and a third.\n",
        });
    }
    all
}

const LIST_SUBJECTS: &[&str] =
    &["[rust] Weekly digest", "[rust] Release notes", "[rust] Question about lifetimes", "[rust] Ferris says hi 🦀"];

/// A header value as RFC 2047 encoded-words where it is not ASCII.
fn encoded(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(text))
    }
}

/// `Name <addr>` with the name encoded where needed.
fn address(from: &str) -> String {
    match from.split_once(" <") {
        Some((name, rest)) => format!("{} <{rest}", encoded(name)),
        None => from.to_string(),
    }
}

fn message(n: usize, m: &Sample) -> Vec<u8> {
    let (day, month, year) = m.date;
    let text = format!(
        "From: {}\r\nTo: Demo <demo@example.org>\r\nSubject: {}\r\nDate: {day} {month} {year} 10:{:02}:00 +0000\r\n\
         Message-ID: <sample-{n}@try-server.invalid>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
        address(m.from),
        encoded(m.subject),
        n % 60,
        m.body.replace('\n', "\r\n")
    );
    text.into_bytes()
}

/// `s` as one shell word.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn start(dir: &Path, binary: &str) -> Result<(), String> {
    let state = dir.join("server");
    if dovecot::kept_running(&state) {
        return Err(format!("a server already runs in {}: tests/try-server stop {}", state.display(), dir.display()));
    }
    if state.exists() {
        // A stopped server's leftovers (the machine rebooted): start afresh.
        std::fs::remove_dir_all(&state).map_err(|e| format!("remove {}: {e}", state.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Dovecot reads the mail as its own unprivileged user, who must reach DIR.
    for d in dir.ancestors() {
        let mode = std::fs::metadata(d).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o001 == 0 {
            return Err(format!(
                "{} is not searchable by others (mode {:o}), so Dovecot's mail user cannot reach {}: \
                 choose a directory under /tmp",
                d.display(),
                mode & 0o7777,
                dir.display()
            ));
        }
    }
    let state = dir.join("server");
    let server = Dovecot::builder().state_dir(&state).start();
    server.add_user(USER, PASSWORD);

    let samples = samples();
    let mut session = server.session(USER, PASSWORD);
    let mut folders: Vec<&str> = samples.iter().map(|m| m.folder).collect();
    folders.sort();
    folders.dedup();
    for folder in folders.iter().filter(|f| **f != "INBOX") {
        session.ok(&format!("CREATE {}", dovecot::quote(&encode_utf7(folder))));
    }
    for (n, m) in samples.iter().enumerate() {
        let (day, month, year) = m.date;
        let date = format!("{day:02}-{month}-{year} 10:{:02}:00 +0000", n % 60);
        session.append_at(&encode_utf7(m.folder), m.flags, Some(&date), &message(n, m));
    }
    session.logout();

    let (port, cert) = (server.imaps_port(), server.cert_pem_path());
    server.keep_running();
    let arg = |p: PathBuf| shell_word(&p.to_string_lossy());
    println!(
        "try-server: Dovecot on 127.0.0.1:{port} (IMAPS), user {USER}, password {PASSWORD}: \
         {} messages in {} folders; its state in {}",
        samples.len(),
        folders.len(),
        state.display()
    );
    println!("Back it up (compressed and encrypted, every folder) with:\n");
    println!(
        "    SMAILARCHIVER_PASSWD={PASSWORD} {} -u {USER} -i 127.0.0.1 --port {port} --ca-file {} \
         --all-folders -z -e -k {} --dir {}\n",
        shell_word(binary),
        arg(cert),
        arg(dir.join("keys")),
        arg(dir.join("archive"))
    );
    println!("Then look at what it made:\n");
    println!("    {} --list {} -k {}", shell_word(binary), arg(dir.join("archive").join(USER)), arg(dir.join("keys")));
    println!(
        "    {} -r {} -k {} --to-maildir {}\n",
        shell_word(binary),
        arg(dir.join("archive").join(USER)),
        arg(dir.join("keys")),
        arg(dir.join("restored"))
    );
    println!("Stop the server with: tests/try-server stop {}", arg(dir.to_path_buf()));
    Ok(())
}

fn stop(dir: &Path) -> Result<(), String> {
    let state = dir.join("server");
    if !state.exists() {
        return Err(format!("no server in {}", state.display()));
    }
    let was_running = dovecot::stop_kept(&state);
    println!(
        "try-server: {} {}; the rest of {} stays (rm -rf it to remove everything)",
        if was_running { "stopped the server and removed" } else { "no server ran; removed" },
        state.display(),
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["start", dir, binary] => start(Path::new(dir), binary),
        ["stop", dir] => stop(Path::new(dir)),
        _ => Err("usage: try-server start DIR BINARY | stop DIR".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("try-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}
