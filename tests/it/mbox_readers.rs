//! An mbox written by restore reads back, in Python's `mailbox` module, as the same
//! messages: same count, same bytes once the mboxrd `>From ` quoting is undone.

use std::fs;
use std::process::Command;

use crate::support::*;
use smailarchiver::mbox::stored_from_line;

const READER: &str = r#"
import hashlib, mailbox, re, sys
box = mailbox.mbox(sys.argv[1], create=False)
for key in box.keys():
    raw = box.get_bytes(key)
    raw = re.sub(rb'(?m)^>(>*From )', rb'\1', raw)
    print(hashlib.sha256(raw).hexdigest())
"#;

#[test]
fn python_mailbox_reads_the_same_messages() {
    let tmp = TempDir::new("pymbox");
    let folder = tmp.join("INBOX");
    fs::create_dir(&folder).unwrap();
    let mut expected = Vec::new();
    for uid in [1, 30, 32, 34, 60, 67, 68, 85, 99, 111] {
        fs::copy(vectors().join(format!("random/{uid}.mbox.gz")), folder.join(format!("{uid}.mbox.gz"))).unwrap();
        let stored = fs::read(vectors().join(format!("expected/{uid}.mbox"))).unwrap();
        expected.push(as_in_mbox(strip_first_line(&stored)));
    }
    // Quoting edge cases: From lines at every depth, at the very start and end.
    let tricky = b"From: x@y\r\n\r\nFrom the start\n>From quoted\n>>From deeper\nFrom\nFromage\n>From ".to_vec();
    let mut stored = stored_from_line(&tricky);
    stored.extend_from_slice(&tricky);
    fs::write(folder.join("200.mbox"), stored).unwrap();
    expected.push(as_in_mbox(&tricky));

    let o = run(&["-r", folder.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = Command::new("python3")
        .args(["-c", READER, tmp.join("INBOX.mbox").to_str().unwrap()])
        .output()
        .expect("python3 is needed for this test (apt-get install -y python3)");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    let want: Vec<String> = expected.iter().map(|m| sha256_hex(m)).collect();
    assert_eq!(got, want, "Python's mailbox.mbox reads different messages");
}
