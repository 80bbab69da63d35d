//! One test per README claim about backups that no other suite checks, against a real
//! Dovecot: peak memory of a 100 MB `-z -e` backup, read-only access (flags unchanged,
//! EXAMINE only), messages at the budget's edges, `--exclude`, `\Noselect`
//! folders, `--passwd-command`, `--verbose`, the key-file notice, incremental backups
//! across the four file forms, and file modes under umask 000. (The fake-server claims,
//! reconnect delays, vanished messages and XOAUTH2, are in tests/it/faults.rs.)

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::dovecot::{quote, Dovecot};
use crate::support::*;

const PW: &str = "claims pw";

/// A message of exactly `size` bytes as served (CRLF lines only, so Dovecot serves it
/// unchanged), distinct per `tag`.
fn sized_message(tag: &str, size: usize) -> Vec<u8> {
    let mut m = format!("From: Big <big@example.org>\r\nSubject: {tag}\r\n\r\n").into_bytes();
    let mut i = 0u64;
    while m.len() < size {
        m.extend_from_slice(
            format!("{tag} line {i:08} {}\r\n", "abcdefghijklmnopqrstuvwxyz0123456789".repeat(2)).as_bytes(),
        );
        i += 1;
    }
    m.truncate(size - 2);
    m.extend_from_slice(b"\r\n");
    m
}

/// A message of exactly `size` bytes that compresses about as badly as an attachment:
/// base64-like lines of pseudo-random characters (CRLF only, served unchanged).
fn attachment_message(size: usize) -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut m = Vec::with_capacity(size);
    m.extend_from_slice(b"From: Big <big@example.org>\r\nSubject: attachment\r\n\r\n");
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    while m.len() < size {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.push(B64[(x >> 58) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m.truncate(size - 2);
    m.extend_from_slice(b"\r\n");
    m
}

/// Every message of `mailbox` as the server serves it, by UID.
fn served(d: &Dovecot, user: &str, mailbox: &str) -> BTreeMap<u32, Vec<u8>> {
    d.uids(user, PW, mailbox).into_iter().map(|u| (u, d.fetch_raw(user, PW, mailbox, u))).collect()
}

/// Each message's flags (sorted), by UID, as a harness session that only EXAMINEs sees them.
fn flags(d: &Dovecot, user: &str, mailbox: &str) -> BTreeMap<u32, Vec<String>> {
    let mut s = d.session(user, PW);
    s.ok(&format!("EXAMINE {}", quote(mailbox)));
    let r = s.ok("UID FETCH 1:* (FLAGS)");
    s.logout();
    let mut out = BTreeMap::new();
    for u in r.untagged.iter().filter(|u| u.text.contains(" FETCH (")) {
        let uid = u.text.split("UID ").nth(1).and_then(|t| t.split([' ', ')']).next()).and_then(|n| n.parse().ok());
        let list = u.text.split("FLAGS (").nth(1).and_then(|t| t.split(')').next());
        let (Some(uid), Some(list)) = (uid, list) else { panic!("unexpected FETCH answer {:?}", u.text) };
        let mut f: Vec<String> = list.split_whitespace().map(String::from).collect();
        f.sort();
        out.insert(uid, f);
    }
    out
}

/// The command names (`UID FETCH` as `FETCH`) of the client's commands in a rawlog.
fn verbs(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let mut words = l.split(' ').skip(1);
            let w = words.next()?.to_ascii_uppercase();
            Some(if w == "UID" { words.next().unwrap_or_default().to_ascii_uppercase() } else { w })
        })
        .collect()
}

/// The commands log without what a first run sends to identify the mailstore afterwards
/// (an EXAMINE and a fetch of a few headers per sampled folder): the backup's own commands.
fn mail_commands(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let sample = |l: &str| l.contains("HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)");
        if sample(l) || (l.contains(" EXAMINE ") && lines.get(i + 1).is_some_and(|n| sample(n))) {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The mailboxes the client EXAMINEd, sorted, quotes removed.
fn examined(log: &str) -> Vec<&str> {
    let mut v: Vec<&str> =
        log.lines().filter_map(|l| l.split(" EXAMINE ").nth(1)).map(|m| m.trim_matches('"')).collect();
    v.sort();
    v
}

/// The partial body fetches `(origin, length)` of `uid`, in the order sent.
fn partial_fetches(log: &str, uid: u32) -> Vec<(u64, u64)> {
    let prefix = format!("UID FETCH {uid} ");
    log.lines()
        .filter(|l| l.split_once(' ').is_some_and(|(_, c)| c.starts_with(&prefix)))
        .filter_map(|l| {
            let range = l.split("BODY.PEEK[]<").nth(1)?.split('>').next()?;
            let (o, n) = range.split_once('.')?;
            Some((o.parse().unwrap(), n.parse().unwrap()))
        })
        .collect()
}

/// Restores a folder directory to a Maildir; returns the messages by UID.
fn restored(folder: &Path, keys: &[&str]) -> BTreeMap<u32, Vec<u8>> {
    let out = folder.with_extension("restored");
    let _ = fs::remove_dir_all(&out);
    let mut args = vec!["-r", folder.to_str().unwrap(), "--to-maildir", out.to_str().unwrap()];
    args.extend(keys);
    let o = run(&args, &[]);
    assert_eq!(o.status.code(), Some(0), "restore {}: {}", folder.display(), stderr(&o));
    let mut got = BTreeMap::new();
    for e in fs::read_dir(out.join("cur")).unwrap() {
        let p = e.unwrap().path();
        let uid = p.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().parse().unwrap();
        got.insert(uid, fs::read(&p).unwrap());
    }
    fs::remove_dir_all(&out).unwrap();
    got
}

const BIG: usize = 100 * 1024 * 1024;
const PEAK_LIMIT_KIB: u64 = 16 * 1024;

/// Runs in a fresh test process, started by `hundred_mb_backup_peak_rss_is_bounded`.
///
/// Why a process of its own: the binary is spawned with vfork (posix_spawn), and at its
/// exec the kernel records the peak RSS of the address space it leaves, which is the
/// spawning process's, in the child's `ru_maxrss`. Spawned from the test that built the
/// 100 MB message, the figure would be that test's peak, not the backup's. A freshly
/// exec'ed test process holding nothing but its harness (a few MiB) brings that floor
/// down below anything the backup itself needs, so what `wait4` reports is the backup's
/// own peak (or this small floor, which only errs on the side of failing).
#[test]
#[ignore = "started in a child process by hundred_mb_backup_peak_rss_is_bounded"]
fn child_hundred_mb_backup() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let child = Command::new(bin())
        .args(["-u", "mem", "-i", "127.0.0.1", "--port", &var("CLAIMS_PORT"), "--ca-file", &var("CLAIMS_CA")])
        .args(["--dir", &var("CLAIMS_ROOT"), "-z", "-e", "-k", &var("CLAIMS_KEYS"), "-q"])
        .env("SMAILARCHIVER_PASSWD", PW)
        .env_remove("SMAILARCHIVER_KEY_PASSWORD")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (code, peak) = wait_with_peak(child);
    println!("EXIT={code} PEAK_KIB={peak}");
}

#[test]
fn hundred_mb_backup_peak_rss_is_bounded() {
    let d = Dovecot::start();
    d.add_user("mem", PW);
    let uid = d.append("mem", PW, "INBOX", &attachment_message(BIG));
    let tmp = TempDir::new("claims-mem");
    let (root, keys) = (tmp.join("root"), tmp.join("keys"));
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "claims::child_hundred_mb_backup", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env("CLAIMS_PORT", d.imaps_port().to_string())
        .env("CLAIMS_CA", d.cert_pem_path())
        .env("CLAIMS_ROOT", &root)
        .env("CLAIMS_KEYS", &keys)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child test failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let field = |k: &str| -> u64 {
        let v = text.split(&format!("{k}=")).nth(1).and_then(|v| v.split_whitespace().next());
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {k} in the child's output: {text}"))
    };
    assert_eq!(field("EXIT"), 0, "{text}{}", String::from_utf8_lossy(&out.stderr));
    let peak = field("PEAK_KIB");
    println!("100 MB -z -e backup from Dovecot: peak RSS {peak} KiB");
    assert!(peak < PEAK_LIMIT_KIB, "peak RSS {peak} KiB for a 100 MB message (limit {PEAK_LIMIT_KIB} KiB)");
    // And the message was really archived, whole.
    let folder = root.join("mem/INBOX");
    let file = folder.join(format!("{uid}.mbox.gz.enc"));
    // Random base64 text compresses to about 3/4: the whole message went through.
    assert!(fs::metadata(&file).unwrap().len() > 70 * 1024 * 1024, "{} too small", file.display());
    let got = restored(&folder, &["-k", keys.to_str().unwrap()]);
    assert_eq!(got.len(), 1);
    let served = d.fetch_raw("mem", PW, "INBOX", uid);
    assert_eq!(served.len(), BIG);
    assert_same(&got[&uid], &served, "100 MB message");
}

#[test]
fn backup_is_read_only_flags_unchanged_and_examine_only() {
    let d = Dovecot::start();
    d.add_user("rita", PW);
    d.create_mailbox("rita", PW, "Work");
    let mut s = d.session("rita", PW);
    let kinds: [&[&str]; 5] = [&[], &["\\Seen"], &["\\Flagged"], &["\\Seen", "\\Flagged", "\\Answered"], &[]];
    for mb in ["INBOX", "Work"] {
        for (i, f) in kinds.iter().enumerate() {
            s.append(mb, f, &mail::titled(&format!("{mb} {i}")));
        }
        // Bigger than the budget: fetched alone (streamed), which must not set \Seen either.
        s.append(mb, &[], &sized_message("unseen big", 200_000));
    }
    s.logout();
    let before: Vec<_> = ["INBOX", "Work"].iter().map(|mb| flags(&d, "rita", mb)).collect();
    // Unseen messages are what a non-PEEK fetch or a STORE would change; \Recent is what
    // a SELECT would take from other sessions.
    for f in &before {
        assert_eq!(f.values().filter(|f| !f.contains(&"\\Seen".to_string())).count(), 4, "{f:?}");
        assert!(f.values().all(|f| f.contains(&"\\Recent".to_string())), "{f:?}");
    }
    let tmp = TempDir::new("claims-ro");
    let o = backup(&d, "rita", PW, tmp.path(), &["--all-folders", "--buffer-size", "64K"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("rita Work: 6 new"), "{}", stdout(&o));
    let after: Vec<_> = ["INBOX", "Work"].iter().map(|mb| flags(&d, "rita", mb)).collect();
    assert_eq!(before, after, "flags changed by the backup");
    let log = mail_commands(&d.commands_log("rita"));
    let verbs = verbs(&log);
    assert_eq!(verbs.iter().filter(|v| *v == "EXAMINE").count(), 2, "{log}");
    for v in &verbs {
        let writes =
            ["SELECT", "STORE", "EXPUNGE", "APPEND", "COPY", "MOVE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE"];
        assert!(!writes.contains(&v.as_str()), "the backup sent {v}:\n{log}");
    }
    // Every body fetch is a PEEK: BODY[...] and RFC822 (not .SIZE) would set \Seen.
    for l in log.lines().filter(|l| l.contains("FETCH")) {
        let rest = l.replace("BODY.PEEK[", "").replace("RFC822.SIZE", "");
        assert!(!rest.contains("BODY[") && !rest.contains("RFC822") && !rest.contains("BINARY["), "{l}");
    }
    assert!(
        log.contains("UID FETCH 6 (UID FLAGS INTERNALDATE BODY.PEEK[])"),
        "the big messages (UID 6) were meant to be fetched alone:\n{log}"
    );
}

#[test]
fn messages_at_the_budget_edges_come_whole() {
    const BUDGET: usize = 64 * 1024;
    let d = Dovecot::start();
    d.add_user("edge", PW);
    let sizes = [BUDGET - 1, BUDGET, BUDGET + 1, 2 * BUDGET, 2 * BUDGET + 1];
    let uids: Vec<u32> =
        sizes.iter().map(|&n| d.append("edge", PW, "INBOX", &sized_message(&format!("size {n}"), n))).collect();
    let served = served(&d, "edge", "INBOX");
    for (uid, n) in uids.iter().zip(sizes) {
        assert_eq!(served[uid].len(), n, "the server serves UID {uid} with another size");
    }
    let tmp = TempDir::new("claims-edges");
    let o = backup(&d, "edge", PW, tmp.path(), &["--buffer-size", "64K"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = d.commands_log("edge");
    // Up to the budget a message comes in a batch; above it, alone: whole either way (no
    // partial fetches: the body of one fetched alone is streamed to disk as it comes).
    for (uid, n) in uids.iter().zip(sizes) {
        assert_eq!(partial_fetches(&log, *uid), vec![], "partial fetches of the {n}-byte UID {uid}:\n{log}");
        let alone = log.lines().any(|l| l.contains(&format!("UID FETCH {uid} (UID FLAGS INTERNALDATE BODY.PEEK[])")));
        // (A batch may hold one message too: only the bigger ones must be alone.)
        assert!(alone || n <= BUDGET, "the {n}-byte UID {uid} was not fetched alone:\n{log}");
    }
    let got = restored(&tmp.join("edge/INBOX"), &[]);
    assert_eq!(got.len(), sizes.len());
    for (uid, n) in uids.iter().zip(sizes) {
        assert_same(&got[uid], &served[uid], &format!("the {n}-byte message"));
    }
    assert_original_decodes(&tmp.join("edge/INBOX"), None, None, &served);
}

#[test]
fn exclude_patterns_with_all_folders() {
    let d = Dovecot::start();
    d.add_user("exa", PW);
    let folders = ["INBOX", "Trash", "Junk", "Junk/Old", "Archive", "Archive/2019", "Work"];
    for f in folders {
        if f != "INBOX" {
            d.create_mailbox("exa", PW, f);
        }
        d.append("exa", PW, f, &mail::titled(f));
    }
    let tmp = TempDir::new("claims-exclude");
    // `*` matches across the hierarchy separator, `%` does not.
    let o = backup(
        &d,
        "exa",
        PW,
        tmp.path(),
        &["--all-folders", "--exclude", "Trash", "--exclude", "Junk*", "--exclude", "Arch%"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut dirs: Vec<String> =
        fs::read_dir(tmp.join("exa")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    dirs.sort();
    assert_eq!(dirs, ["Archive2019", "INBOX", "Work"], "{}", stdout(&o));
    let out = stdout(&o);
    let mut summaries: Vec<&str> = out.lines().map(|l| l.split(':').next().unwrap()).collect();
    summaries.sort();
    // The folders' lines, and the run's total line.
    assert_eq!(summaries, ["1 account", "exa Archive/2019", "exa INBOX", "exa Work"]);
    let log = mail_commands(&d.commands_log("exa"));
    assert_eq!(examined(&log), ["Archive/2019", "INBOX", "Work"], "{log}");
}

#[test]
fn noselect_folders_are_skipped_by_all_folders() {
    let d = Dovecot::start();
    d.add_user("nos", PW);
    // Creating only the child leaves the parent a `\Noselect` name in LIST.
    d.create_mailbox("nos", PW, "Projects/2024");
    let uid = d.append("nos", PW, "Projects/2024", &mail::titled("child"));
    d.append("nos", PW, "INBOX", &mail::titled("inbox"));
    let mut s = d.session("nos", PW);
    let list = s.ok("LIST \"\" \"*\"");
    s.logout();
    assert!(
        list.untagged.iter().any(|u| u.text.contains("\\Noselect") && u.text.ends_with(" Projects")),
        "the test needs a \\Noselect folder: {list:?}"
    );
    let tmp = TempDir::new("claims-noselect");
    let o = backup(&d, "nos", PW, tmp.path(), &["--all-folders"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 3, "two folders and the total: {out}");
    assert!(out.contains("nos Projects/2024: 1 new") && out.contains("nos INBOX: 1 new"), "{out}");
    assert!(tmp.join(format!("nos/Projects2024/{uid}.mbox")).is_file());
    assert!(!tmp.join("nos/Projects").exists());
    let log = mail_commands(&d.commands_log("nos"));
    assert_eq!(examined(&log), ["INBOX", "Projects/2024"], "{log}");
}

#[test]
fn passwd_command_on_the_command_line() {
    let d = Dovecot::start();
    d.add_user("pcmd", PW);
    let uid = d.append("pcmd", PW, "INBOX", &mail::titled("by command"));
    let tmp = TempDir::new("claims-pcmd");
    let with_command = |cmd: &str| {
        let mut args = d.client_args("pcmd", tmp.path());
        args.extend(["--passwd-command".to_string(), cmd.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // run() clears SMAILARCHIVER_PASSWD and closes stdin: the command is the only source.
        run(&args, &[])
    };
    // The first line of its output is the password; the rest is ignored.
    let o = with_command(&format!("printf '%s\\n%s\\n' '{PW}' 'second line'"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(tmp.join(format!("pcmd/INBOX/{uid}.mbox")).is_file());
    let o = with_command("echo not-the-password");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("login failed for pcmd"), "{}", stderr(&o));
    let o = with_command("exit 3");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("password command failed"), "{}", stderr(&o));
}

#[test]
fn verbose_prints_one_line_per_message() {
    let d = Dovecot::start();
    d.add_user("vera", PW);
    for i in 0..4 {
        d.append("vera", PW, "INBOX", &mail::titled(&format!("v{i}")));
    }
    let served = served(&d, "vera", "INBOX");
    let tmp = TempDir::new("claims-verbose");
    let o = backup(&d, "vera", PW, tmp.path(), &["--verbose"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let mut per_message: Vec<String> = out.lines().filter(|l| l.contains(" archived (")).map(String::from).collect();
    per_message.sort();
    let mut want: Vec<String> =
        served.iter().map(|(u, m)| format!("vera INBOX: UID {u} archived ({} bytes)", m.len())).collect();
    want.sort();
    assert_eq!(per_message, want, "{out}");
    assert!(out.contains("vera INBOX: 4 new, 0 already archived, 0 failed"), "{out}");
    // Without --verbose, only the folder's line.
    d.append("vera", PW, "INBOX", &mail::titled("v4"));
    let o = backup(&d, "vera", PW, tmp.path(), &[], &[]);
    assert_eq!(stdout(&o).lines().count(), 2, "the folder's line and the run's total: {}", stdout(&o));
    assert!(
        stdout(&o).lines().nth(1).unwrap().starts_with("1 account: 1 ok, 0 failed; 1 new message, "),
        "{}",
        stdout(&o)
    );
    // Nothing archived, nothing per message.
    let o = backup(&d, "vera", PW, tmp.path(), &["-v"], &[]);
    assert!(!stdout(&o).contains(" archived ("), "{}", stdout(&o));
}

#[test]
fn key_file_creation_is_announced_once_on_stderr() {
    let d = Dovecot::start();
    d.add_user("kent", PW);
    d.append("kent", PW, "INBOX", &mail::titled("k"));
    let tmp = TempDir::new("claims-keynote");
    let (keys, pkeys) = (tmp.join("kent.keys"), tmp.join("kent.pkeys"));
    let o = backup(&d, "kent", PW, &tmp.join("a"), &["-e", "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let notice = format!(
        "smailarchiver: created the key file {}: keep a copy in a safe place, without it the archive cannot be read\n",
        keys.display()
    );
    assert_eq!(stderr(&o), notice);
    assert!(!stdout(&o).contains("key file"), "{}", stdout(&o));
    d.append("kent", PW, "INBOX", &mail::titled("k2"));
    let o = backup(&d, "kent", PW, &tmp.join("a"), &["-e", "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "said again for an existing key file");
    // Password mode names the .sha too.
    let mut args = d.client_args("kent", &tmp.join("b"));
    args.extend(["-e", "-P", "-k", pkeys.to_str().unwrap()].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args, &[("SMAILARCHIVER_PASSWD", PW), ("SMAILARCHIVER_KEY_PASSWORD", "kp")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("created the key file {} (and its .sha): keep a copy", pkeys.display())));
}

#[test]
fn a_file_in_any_form_counts_as_archived() {
    let d = Dovecot::start();
    d.add_user("inc", PW);
    let tmp = TempDir::new("claims-forms");
    let keys = tmp.join("keys");
    let k = keys.to_str().unwrap();
    let forms: [(&[&str], &str); 4] =
        [(&[], "mbox"), (&["-z"], "mbox.gz"), (&["-e", "-k", k], "mbox.enc"), (&["-z", "-e", "-k", k], "mbox.gz.enc")];
    // One new message per run, each run in another form: one file in each form.
    let mut uids = Vec::new();
    for (i, (flags, suffix)) in forms.iter().enumerate() {
        let uid = d.append("inc", PW, "INBOX", &mail::titled(&format!("form {suffix}")));
        let o = backup(&d, "inc", PW, tmp.path(), flags, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains(&format!("inc INBOX: 1 new, {i} already archived")), "{flags:?}: {}", stdout(&o));
        assert!(tmp.join(format!("inc/INBOX/{uid}.{suffix}")).is_file());
        uids.push(uid);
    }
    // Then a run in each form finds all four archived and fetches no message.
    for (flags, _) in forms {
        let before = d.fetch_stats("inc");
        let o = backup(&d, "inc", PW, tmp.path(), flags, &[]);
        assert!(stdout(&o).contains("inc INBOX: 0 new, 4 already archived, 0 failed"), "{flags:?}: {}", stdout(&o));
        assert_eq!(d.fetch_stats("inc").since(&before).body_count, 0, "{flags:?} fetched message bodies");
    }
    assert_eq!(fs::read_dir(tmp.join("inc/INBOX")).unwrap().count(), 4);
    let got = restored(&tmp.join("inc/INBOX"), &["-k", k]);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), uids);
}

#[test]
fn files_0600_and_directories_0700_under_umask_000() {
    let d = Dovecot::start();
    d.add_user("um", PW);
    d.create_mailbox("um", PW, "Sub/Deeper");
    d.append("um", PW, "INBOX", &mail::titled("one"));
    d.append("um", PW, "Sub/Deeper", &mail::titled("two"));
    let tmp = TempDir::new("claims-umask");
    // The umask really is 000 in such a shell: a file it makes is 0666.
    let probe = tmp.join("probe");
    let ok = Command::new("sh").arg("-c").arg("umask 000; touch \"$0\"").arg(&probe).status().unwrap();
    assert!(ok.success());
    assert_eq!(fs::metadata(&probe).unwrap().permissions().mode() & 0o777, 0o666);
    // The root does not exist yet: the tool makes it, and its parent.
    let top = tmp.join("new");
    let root = top.join("root");
    let keys = tmp.join("keys");
    let mut args = d.client_args("um", &root);
    args.extend(["--all-folders", "-z", "-e", "-k", keys.to_str().unwrap()].map(String::from));
    let o = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(bin())
        .args(&args)
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600, "key file");
    let (mut files, mut dirs) = (0, 0);
    let mut todo = vec![top.clone()];
    while let Some(dir) = todo.pop() {
        let mode = fs::symlink_metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "directory {} is {mode:o}", dir.display());
        dirs += 1;
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p);
            } else {
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "file {} is {mode:o}", p.display());
                files += 1;
            }
        }
    }
    assert!(root.join("um/SubDeeper").is_dir() && root.join("um/INBOX").is_dir());
    // new, root, .smailarchiver, its tmp, um, INBOX, SubDeeper; two messages, the records, the lock.
    assert!(dirs >= 6 && files >= 4, "{dirs} directories, {files} files");
}
