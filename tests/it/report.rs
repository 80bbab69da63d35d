//! `--report FILE` (and `"report"` in a config) against a real Dovecot: the JSON's
//! figures match the files the run wrote, a failing folder and a failing account are
//! reported as such, and the flag takes precedence over the config.

use std::fs;
use std::path::Path;

use crate::support::dovecot::Dovecot;
use crate::support::*;
use serde_json::Value;

const PW: &str = "s3cret pass";

fn message(n: u32) -> Vec<u8> {
    format!("From: Ann <ann@example.org>\r\nSubject: report {n}\r\n\r\nbody {n}\r\n").into_bytes()
}

/// Archive files in a folder directory.
fn files_in(dir: &Path) -> u64 {
    fs::read_dir(dir).map_or(0, |d| d.filter(|e| e.as_ref().unwrap().path().is_file()).count() as u64)
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `YYYY-MM-DDTHH:MM:SSZ` time.
#[track_caller]
fn assert_utc_time(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    let b = s.as_bytes();
    assert_eq!(b.len(), 20, "{s}");
    for (i, c) in b.iter().enumerate() {
        let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19);
        assert_eq!(c.is_ascii_digit(), want_digit, "{s}");
    }
    assert_eq!((b[4], b[7], b[10], b[13], b[16], b[19]), (b'-', b'-', b'T', b':', b':', b'Z'), "{s}");
}

/// The report's folder `name` of account `i`.
fn folder<'a>(r: &'a Value, i: usize, name: &str) -> &'a Value {
    r["accounts"][i]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no folder {name} in {r}"))
}

#[test]
fn report_matches_the_files_written() {
    let d = Dovecot::start();
    d.add_user("hal", PW);
    d.add_user("ivy", PW);
    d.create_mailbox("hal", PW, "Work");
    for n in 1..=3 {
        d.append("hal", PW, "INBOX", &message(n));
    }
    for n in 4..=5 {
        d.append("hal", PW, "Work", &message(n));
    }
    let tmp = TempDir::new("report");
    let arch = tmp.join("arch");
    let from_config = tmp.join("from-config.json");
    let cfg = tmp.join("config.json");
    let port = d.imaps_port();
    let ca = d.cert_pem_path();
    let text = serde_json::json!({
        "list": [
            {"user": "ivy", "imap": "127.0.0.1", "port": port, "ca_file": ca, "passwd": "wrong", "folder": "INBOX",
             "encrypt": 0, "compress": 0},
            {"user": "hal", "imap": "127.0.0.1", "port": port, "ca_file": ca, "passwd": PW,
             "folder": ["INBOX", "Work", "Missing"], "encrypt": 0, "compress": 1},
        ],
        "archive_dir": arch,
        "report": from_config,
    });
    fs::write(&cfg, text.to_string()).unwrap();

    let o = run(&["-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = read(&from_config);
    assert_eq!(r["exit"], 1);
    assert_utc_time(&r["started"]);
    assert_utc_time(&r["finished"]);
    assert!(r["started"].as_str() <= r["finished"].as_str(), "{r}");
    let accounts = r["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{r}");
    assert_eq!((&accounts[0]["user"], &accounts[0]["server"]), (&Value::from("ivy"), &Value::from("127.0.0.1")));
    assert!(accounts[0]["error"].as_str().is_some_and(|e| e.contains("login")), "{r}");
    assert_eq!(accounts[0]["folders"], serde_json::json!([]));
    assert_eq!(accounts[1]["error"], Value::Null, "{r}");
    assert_eq!(accounts[1]["folders"].as_array().unwrap().len(), 3, "{r}");
    for (name, new) in [("INBOX", 3), ("Work", 2)] {
        let f = folder(&r, 1, name);
        let on_disk = files_in(&arch.join("hal").join(name));
        assert_eq!((f["new"].as_u64(), f["archived"].as_u64()), (Some(new), Some(on_disk)), "{name}: {r}");
        assert_eq!(on_disk, new);
        assert_eq!((f["failed"].as_u64(), &f["errors"]), (Some(0), &serde_json::json!([])), "{r}");
        assert!(f["bytes"].as_u64().unwrap() > 0 && f["seconds"].as_f64().is_some(), "{r}");
    }
    let missing = folder(&r, 1, "Missing");
    assert_eq!((missing["new"].as_u64(), missing["failed"].as_u64()), (Some(0), Some(1)), "{r}");
    assert!(missing["errors"][0].as_str().is_some_and(|e| e.contains("EXAMINE")), "{r}");

    // Next run: one new message; the flag wins over the config's "report".
    d.append("hal", PW, "INBOX", &message(6));
    let from_flag = tmp.join("from-flag.json");
    let o = run(&["-c", cfg.to_str().unwrap(), "--report", from_flag.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r2 = read(&from_flag);
    assert_eq!(read(&from_config), r, "the config's report file is left alone");
    let inbox = folder(&r2, 1, "INBOX");
    assert_eq!((inbox["new"].as_u64(), inbox["archived"].as_u64()), (Some(1), Some(files_in(&arch.join("hal/INBOX")))));
    assert_eq!(files_in(&arch.join("hal/INBOX")), 4);
    let work = folder(&r2, 1, "Work");
    assert_eq!((work["new"].as_u64(), work["archived"].as_u64()), (Some(0), Some(2)), "{r2}");
    let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().starts_with(".smailarchiver-tmp")), "{names:?}");
}

#[test]
fn report_goes_with_a_backup_only() {
    let o = run(&["--verify", ".", "--report", "r.json"], &[]);
    assert_one_line_error(&o, 2, "--report goes with a backup");
    let tmp = TempDir::new("report-nodir");
    let path = tmp.join("no/such/dir/r.json");
    let o = run(
        &["-u", "a", "-i", "127.0.0.1", "--report", path.to_str().unwrap(), "--dir", tmp.path().to_str().unwrap()],
        &[("SMAILARCHIVER_PASSWD", "x")],
    );
    assert_one_line_error(&o, 2, "no directory");
    assert!(!tmp.join(".smailarchiver").exists(), "nothing created");
}
