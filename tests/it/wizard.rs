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
    // STARTTLS; the CA file; all folders; compressed and encrypted with a password-protected
    // key whose password a command prints;
    // archive and key file relative to the wizard's directory; saved with a password command.
    let answers = format!(
        "{user}\n127.0.0.1\n{}\ny\n{}\n{PW}\n*\ny\ny\nmy.keys\ny\necho 'key pass'\narchive\nbackup.json\necho '{PW}'\n",
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
