//! The wizard (no arguments) against a real Dovecot (issue 13, item 7): on port 143 it
//! offers STARTTLS, `*` means every folder, and what it asked can be saved as a config
//! file that `-c` then runs from anywhere.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use crate::support::dovecot::Dovecot;
use crate::support::*;

const PW: &str = "s3cret pass";

/// Runs the wizard with `answers` piped in, in directory `cwd`.
fn wizard(answers: &str, cwd: &std::path::Path) -> Output {
    run_with_input(Command::new(bin()).current_dir(cwd), answers.as_bytes())
}

#[test]
fn wizard_offers_starttls_takes_every_folder_and_saves_a_config_that_runs() {
    let d = Dovecot::start();
    let user = "wanda";
    d.add_user(user, PW);
    d.create_mailbox(user, PW, "Sent");
    let first = d.append(user, PW, "INBOX", b"Subject: one\r\n\r\nin the inbox\r\n");
    let sent = d.append(user, PW, "Sent", b"Subject: two\r\n\r\nsent\r\n");
    let tmp = TempDir::new("wizard-config");
    let work = tmp.dir("work");
    // The plain port (143 would make STARTTLS the default; the test server's is another),
    // STARTTLS; the password; the certificate not pinned but trusted through the CA file; all folders; compressed and encrypted with a password-protected
    // key whose password a command prints;
    // archive and key file relative to the wizard's directory; saved with a password command.
    let answers = format!(
        "{user}\n127.0.0.1\n{}\ny\n{PW}\nn\n{}\n*\ny\ny\nmy.keys\ny\necho 'key pass'\narchive\nbackup.json\necho '{PW}'\n",
        d.imap_port(),
        d.cert_pem_path().display(),
    );
    let o = wizard(&answers, &work);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("STARTTLS"), "the wizard asks: {}", stderr(&o));
    let config = work.join("backup.json");
    assert!(stderr(&o).contains(&format!("next time run: smailarchiver -c {}", "backup.json")), "{}", stderr(&o));
    assert_eq!(fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("\"passwd_cmd\": \"echo '{PW}'\"")) && !text.contains("\"passwd\":"), "{text}");
    assert!(text.contains("\"starttls\": true") && text.contains("\"all_folders\": true"), "{text}");
    let archive = work.join("archive").join(user);
    assert!(archive.join(format!("INBOX/{first}.mbox.gz.enc")).is_file());
    assert!(archive.join(format!("Sent/{sent}.mbox.gz.enc")).is_file());
    // The saved config, run from another directory (as cron would): the same archive,
    // the same key, the new message.
    let later = d.append(user, PW, "INBOX", b"Subject: three\r\n\r\nlater\r\n");
    let o = Command::new(bin())
        .args(["-c", config.to_str().unwrap()])
        .current_dir(tmp.path())
        .env_remove("SMAILARCHIVER_PASSWD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("INBOX: 1 new, 1 already archived"), "{}", stdout(&o));
    assert!(archive.join(format!("INBOX/{later}.mbox.gz.enc")).is_file());
    assert!(!tmp.join("my.keys").exists() && !tmp.join("archive").exists(), "paths followed the directory");
    assert!(text.contains("\"key_password_cmd\": \"echo 'key pass'\""), "{text}");
    let (archive_dir, keys) = (work.join("archive"), work.join("my.keys"));
    let verify = ["--verify", archive_dir.to_str().unwrap(), "-k", keys.to_str().unwrap(), "-P"];
    let o = run(&verify, &[("SMAILARCHIVER_KEY_PASSWORD", "key pass")]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // A second wizard never overwrites the file.
    let o = wizard(&answers, &work);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("backup.json exists: not overwritten"), "{}", stderr(&o));
}

/// At a terminal: empty answers asked again, the server's self-signed certificate shown by
/// its fingerprint and pinned, a wrong password asked again before anything else (and
/// nothing saved then), and a saved config that runs with -c from a non-terminal.
#[test]
fn at_a_terminal_the_wizard_tests_the_login_before_it_saves() {
    let d = Dovecot::start();
    let user = "tina";
    d.add_user(user, PW);
    let first = d.append(user, PW, "INBOX", b"Subject: one\r\n\r\nfirst\r\n");
    let tmp = TempDir::new("wizard-pty");
    let work = tmp.dir("work");
    let mut w =
        crate::support::pty::Pty::spawn(Command::new(bin()).current_dir(&work).env_remove("SMAILARCHIVER_PASSWD"));
    w.expect("Email user name: ");
    w.send("");
    w.expect("an answer is needed");
    w.expect("Email user name: ");
    w.send(user);
    w.expect("IMAP server: ");
    w.send("127.0.0.1");
    w.expect("IMAP port");
    w.send(&d.imaps_port().to_string());
    w.expect("STARTTLS? (y/n) [n]: ");
    w.send("");
    w.expect("Email password: ");
    w.send("wr0ng-pass");
    let shown = w.expect("(pin it)? (y/n) [n]: ");
    let fingerprint: String = d
        .cert_sha256_hex()
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    assert!(shown.contains(&format!("its SHA-256 fingerprint is {fingerprint}")), "{shown}");
    w.send("y");
    w.expect("login failed for tina");
    w.expect("Email password: ");
    assert_eq!(fs::read_dir(&work).unwrap().count(), 0, "nothing saved or written after a wrong password");
    w.send(PW);
    w.expect("logged in");
    w.expect("Folders");
    w.send("");
    w.expect("Compress the messages? (y/n) [n]: ");
    w.send("y");
    w.expect("Encrypt the messages? (y/n) [n]: ");
    w.send("");
    w.expect("Archive directory [.]: ");
    w.send("archive");
    w.expect("Save these settings");
    w.send("tina.json");
    w.expect("Command that prints the email password");
    w.send("");
    let (code, text) = w.wait();
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("wr0ng-pass") && !text.contains(PW), "a password was echoed: {text}");
    assert!(text.contains("saved tina.json (mode 0600)"), "{text}");
    let config = work.join("tina.json");
    let saved = fs::read_to_string(&config).unwrap();
    assert!(saved.contains(&format!("\"pin_sha256\": \"{}\"", d.cert_sha256_hex())), "{saved}");
    assert!(work.join(format!("archive/{user}/INBOX/{first}.mbox.gz")).is_file());
    // The saved config, from cron's point of view: no terminal, another directory.
    let later = d.append(user, PW, "INBOX", b"Subject: two\r\n\r\nlater\r\n");
    let o = Command::new(bin())
        .args(["-c", config.to_str().unwrap(), "-q"])
        .current_dir(tmp.path())
        .env_remove("SMAILARCHIVER_PASSWD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!((o.status.code(), stdout(&o).as_str(), stderr(&o).as_str()), (Some(0), "", ""));
    assert!(work.join(format!("archive/{user}/INBOX/{later}.mbox.gz")).is_file());
}
