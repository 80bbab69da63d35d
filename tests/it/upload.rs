//! `-r PATH --to-imap` against a real Dovecot: an account backed up from one user is
//! uploaded to another, and what the second user's server then serves is compared with
//! what the first one's did; a rerun uploads nothing; a run killed mid-upload and rerun
//! leaves every message there exactly once; a 100 MB message goes up in bounded memory;
//! flags and arrival times kept by the backup go back with the messages.

use crate::support;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::{Dovecot, ImapSession};
use crate::support::*;

const PW: &str = "s3cret pass";

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn backup(d: &Dovecot, user: &str, root: &Path, extra: &[&str]) -> Output {
    let o = Command::new(bin())
        .args(d.client_args(user, root))
        .args(["--all-folders", "-q"])
        .args(extra)
        .env("SMAILARCHIVER_PASSWD", PW)
        .env("SMAILARCHIVER_KEY_PASSWORD", PW)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "backup: {}", stderr(&o));
    o
}

/// `-r PATH --to-imap` as `user` (STARTTLS-less implicit TLS, the test certificate).
fn upload_cmd(d: &Dovecot, user: &str, path: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["-r", path.to_str().unwrap(), "--to-imap"]);
    let args = d.client_args(user, Path::new("/unused"));
    // Everything but `--dir ROOT`: an upload reads PATH only.
    cmd.args(&args[..args.len() - 2]);
    cmd.args(extra).env("SMAILARCHIVER_PASSWD", PW).env("SMAILARCHIVER_KEY_PASSWORD", PW).stdin(Stdio::null());
    cmd
}

fn upload(d: &Dovecot, user: &str, path: &Path, extra: &[&str]) -> Output {
    upload_cmd(d, user, path, extra).output().unwrap()
}

/// Every message of `mailbox` as the server serves it, with its INTERNALDATE.
fn served(s: &mut ImapSession, mailbox: &str) -> Vec<(Vec<u8>, String)> {
    s.ok(&format!("EXAMINE {}", quote(mailbox)));
    let r = s.ok("UID FETCH 1:* (INTERNALDATE BODY.PEEK[])");
    let mut out: Vec<(Vec<u8>, String)> = r
        .untagged
        .iter()
        .filter(|u| u.text.contains(" FETCH "))
        .map(|u| {
            let date =
                u.text.split("INTERNALDATE \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string();
            (u.literals.first().cloned().unwrap_or_default(), date)
        })
        .collect();
    out.sort();
    out
}

/// Seconds since 1970 of an IMAP date-time (`05-Jan-2019 08:00:00 -0500`): servers
/// answer in their own time zone.
fn epoch(date: &str) -> i64 {
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (day, rest) = date.trim().split_once('-').unwrap();
    let (month, rest) = rest.split_once('-').unwrap();
    let mut parts = rest.split(' ');
    let (year, time, zone) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let (y, m, d): (i64, i64, i64) = (
        year.parse().unwrap(),
        months.iter().position(|x| *x == month).unwrap() as i64 + 1,
        day.trim().parse().unwrap(),
    );
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let offset = sign * (zone[1..3].parse::<i64>().unwrap() * 3600 + zone[3..5].parse::<i64>().unwrap() * 60);
    days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - offset
}

fn message(n: usize, size: usize) -> Vec<u8> {
    mail::dated(n, size, "")
}

/// What users' mailboxes hold: dated and undated mail, bare LF line ends, 8-bit text, a
/// message bigger than the fetch budget, two identical copies, one without a body.
fn mail() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut inbox = vec![message(1, 2000), message(2, 300_000), message(3, 500)];
    inbox.push(b"From: x@example.org\r\nSubject: no date\r\n\r\nundated\r\n".to_vec());
    inbox.push(b"From: y@example.org\nSubject: bare LF\nDate: 5 Jan 2019 08:00:00 -0500\n\nline\nline\n".to_vec());
    inbox.push("From: z@example.org\r\nSubject: Grüße\r\n\r\nÄÖÜ – 日本語\r\n".as_bytes().to_vec());
    inbox.push(message(7, 1000));
    inbox.push(message(7, 1000));
    inbox.push(b"From: h@example.org\r\nSubject: header only\r\n\r\n".to_vec());
    let sent = vec![message(10, 3000), message(11, 4000)];
    BTreeMap::from([("INBOX", inbox), ("Отправленные", sent)])
}

#[test]
fn an_account_goes_back_to_a_server_and_a_rerun_uploads_nothing() {
    let d = Dovecot::start();
    d.add_user("src", PW);
    for (mailbox, msgs) in mail() {
        if mailbox != "INBOX" {
            d.create_mailbox("src", PW, &smailarchiver::mailbox_name::encode_utf7(mailbox));
        }
        for m in msgs {
            d.append("src", PW, &smailarchiver::mailbox_name::encode_utf7(mailbox), &m);
        }
    }
    let mut src = d.session("src", PW);
    let src_served: BTreeMap<String, Vec<(Vec<u8>, String)>> = mail()
        .keys()
        .map(|m| {
            let wire = smailarchiver::mailbox_name::encode_utf7(m);
            (wire.clone(), served(&mut src, &wire))
        })
        .collect();
    src.logout();
    let want: BTreeMap<String, Vec<Vec<u8>>> =
        src_served.iter().map(|(w, msgs)| (w.clone(), msgs.iter().map(|(b, _)| b.clone()).collect())).collect();
    for (n, form) in [vec![], vec!["-z", "-e"]].into_iter().enumerate() {
        let tmp = TempDir::new("upload");
        let root = tmp.path().join("archive");
        let keys = tmp.path().join("keys");
        let mut extra = form.clone();
        extra.extend(["-k", keys.to_str().unwrap()]);
        backup(&d, "src", &root, &extra);
        // The second time without the metadata, as in an archive of the original program.
        let kept = n == 0;
        if !kept {
            std::fs::remove_dir_all(root.join(".smailarchiver/meta")).unwrap();
        }
        let dst = format!("dst{n}");
        d.add_user(&dst, PW);
        let o = upload(&d, &dst, &root.join("src"), &["-k", keys.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{form:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{form:?}");
        let out = stdout(&o);
        assert!(out.contains("INBOX: 9 uploaded, 0 already there, 0 failed"), "{form:?}: {out}");
        assert!(out.contains("Отправленные: 2 uploaded, 0 already there, 0 failed"), "{form:?}: {out}");
        let mut s = d.session(&dst, PW);
        for (wire, bodies) in &want {
            let got = served(&mut s, wire);
            let got_bodies: Vec<Vec<u8>> = got.iter().map(|(b, _)| b.clone()).collect();
            assert_eq!(&got_bodies, bodies, "{form:?} {wire}: the same bytes, each message once");
            if kept {
                let src_dates: Vec<i64> = src_served[wire].iter().map(|(_, d)| epoch(d)).collect();
                let dates: Vec<i64> = got.iter().map(|(_, d)| epoch(d)).collect();
                assert_eq!(dates, src_dates, "{wire}: the arrival times the backup kept");
            } else if wire == "INBOX" {
                // No arrival time was kept: the Date header stands in for it.
                let dated = got.iter().find(|(b, _)| b.starts_with(b"From: y@example.org")).unwrap();
                assert_eq!(epoch(&dated.1), epoch("05-Jan-2019 08:00:00 -0500"), "{form:?}: {}", dated.1);
                let first = got.iter().find(|(b, _)| b.starts_with(b"From: Sender 1 ")).unwrap();
                assert_eq!(epoch(&first.1), epoch("02-Mar-2021 10:01:07 +0100"), "{form:?}: {}", first.1);
            }
        }
        s.logout();
        let again = upload(&d, &dst, &root.join("src"), &["-k", keys.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
        let out = stdout(&again);
        assert!(out.contains("INBOX: 0 uploaded, 9 already there, 0 failed"), "{form:?}: {out}");
        assert!(out.contains("Отправленные: 0 uploaded, 2 already there, 0 failed"), "{form:?}: {out}");
        // One folder directory into a mailbox named on the command line.
        let one =
            upload(&d, &dst, &root.join("src").join("INBOX"), &["--to-folder", "Copy", "-k", keys.to_str().unwrap()]);
        assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
        assert!(stdout(&one).contains("Copy: 9 uploaded"), "{}", stdout(&one));
    }
}

/// Every message of `mailbox` with its flags (sorted, `\Recent` left out) and its
/// INTERNALDATE as seconds since 1970.
fn with_flags(s: &mut ImapSession, mailbox: &str) -> Vec<(Vec<u8>, Vec<String>, i64)> {
    s.ok(&format!("EXAMINE {}", quote(mailbox)));
    let r = s.ok("UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])");
    let mut out: Vec<(Vec<u8>, Vec<String>, i64)> = r
        .untagged
        .iter()
        .filter(|u| u.text.contains(" FETCH "))
        .map(|u| {
            let flags = u.text.split("FLAGS (").nth(1).and_then(|r| r.split(')').next()).unwrap_or("");
            let mut flags: Vec<String> =
                flags.split_whitespace().filter(|f| *f != "\\Recent").map(str::to_string).collect();
            flags.sort();
            let date = u.text.split("INTERNALDATE \"").nth(1).and_then(|r| r.split('"').next()).unwrap();
            (u.literals.first().cloned().unwrap_or_default(), flags, epoch(date))
        })
        .collect();
    out.sort();
    out
}

/// Flags (system flags and keywords) and arrival times that differ from the Date header
/// are backed up with the mail (plain, `-z -e`, `-e -P`) and go back with it.
#[test]
fn flags_and_arrival_times_make_the_round_trip() {
    let d = Dovecot::start();
    d.add_user("src", PW);
    let mut s = d.session("src", PW);
    let marked: [(&[&str], &str); 5] = [
        (&["\\Seen"], "02-Jan-2020 09:00:00 +0000"),
        (&["\\Flagged", "\\Answered", "\\Seen"], "15-Jun-2018 23:59:59 -0700"),
        (&["$Forwarded", "project-x"], "01-Feb-2011 00:00:01 +0100"),
        (&[], "29-Feb-2016 12:00:00 +0000"),
        (&["\\Draft", "\\Deleted"], "31-Dec-1999 23:00:00 +0000"),
    ];
    for (n, (flags, date)) in marked.iter().enumerate() {
        s.append_at("INBOX", flags, Some(date), &message(100 + n, 1500 + n * 100));
    }
    let want = with_flags(&mut s, "INBOX");
    s.logout();
    assert_eq!(want.len(), 5);
    for (n, form) in [vec![], vec!["-z", "-e"], vec!["-e", "-P"]].into_iter().enumerate() {
        let tmp = TempDir::new("upload-flags");
        let root = tmp.path().join("archive");
        let keys = tmp.path().join("keys");
        let mut extra = form.clone();
        extra.extend(["-k", keys.to_str().unwrap()]);
        backup(&d, "src", &root, &extra);
        let dst = format!("flagged{n}");
        d.add_user(&dst, PW);
        let mut args = vec!["-k", keys.to_str().unwrap()];
        if form.contains(&"-P") {
            args.push("-P");
        }
        let o = upload(&d, &dst, &root.join("src"), &args);
        assert_eq!(o.status.code(), Some(0), "{form:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("INBOX: 5 uploaded"), "{form:?}: {}", stdout(&o));
        let mut s = d.session(&dst, PW);
        assert_eq!(with_flags(&mut s, "INBOX"), want, "{form:?}: bytes, flags and INTERNALDATE");
        s.logout();
    }
}

/// Messages of `user`'s INBOX as the server counts them (STATUS), through a session kept
/// open for it: what has landed so far.
struct Landed(ImapSession);

impl Landed {
    fn watch(d: &Dovecot, user: &str) -> Landed {
        Landed(d.session(user, PW))
    }

    fn now(&mut self) -> usize {
        let r = self.0.ok("STATUS INBOX (MESSAGES)");
        let text = r.untagged.iter().find_map(|u| u.text.split("MESSAGES ").nth(1).map(str::to_string));
        text.and_then(|t| t.trim_end_matches(')').trim().parse().ok()).unwrap_or_else(|| panic!("{r:?}"))
    }

    /// Waits until at least `n` messages have landed while `child` runs; how many had.
    #[track_caller]
    fn wait_for(&mut self, n: usize, child: &mut std::process::Child) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let landed = self.now();
            if landed >= n {
                return landed;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the upload ended ({status}) with {landed} messages landed, before {n} had");
            }
            assert!(Instant::now() < deadline, "{landed} messages landed in 60 s, waiting for {n}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// 300 distinct messages of 20 to 31 KB in `src`'s INBOX, backed up into `root`.
fn three_hundred(d: &Dovecot, root: &Path) -> Vec<Vec<u8>> {
    d.add_user("src", PW);
    let mut session = d.session("src", PW);
    let msgs: Vec<Vec<u8>> = (0..300).map(|n| message(n, 20_000 + n * 37)).collect();
    for m in &msgs {
        session.append("INBOX", &[], m);
    }
    session.logout();
    backup(d, "src", root, &["-z"]);
    msgs
}

/// Asserts that `user`'s INBOX holds each of `msgs` exactly once and nothing else.
#[track_caller]
fn each_once(d: &Dovecot, user: &str, msgs: &[Vec<u8>]) {
    let mut s = d.session(user, PW);
    let mut got: Vec<Vec<u8>> = served(&mut s, "INBOX").into_iter().map(|(b, _)| b).collect();
    s.logout();
    let mut want = msgs.to_vec();
    want.sort();
    got.sort();
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(
        got.len() - distinct.len(),
        0,
        "messages uploaded twice ({} on the server, {} distinct)",
        got.len(),
        distinct.len()
    );
    assert_eq!(got.len(), want.len(), "each message exactly once");
    assert!(got == want, "the same messages");
}

/// `INBOX: U uploaded, P already there, F failed` of an upload's output.
#[track_caller]
fn counts(out: &str) -> (usize, usize, usize) {
    let line = out.lines().find(|l| l.contains(" INBOX: ")).unwrap_or_else(|| panic!("no INBOX line: {out}"));
    let n = |word: &str| -> usize {
        let before = line.split(word).next().unwrap_or_else(|| panic!("{line}"));
        before.trim_end().rsplit([' ', ',']).next().and_then(|x| x.parse().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    (n(" uploaded"), n(" already there"), n(" failed"))
}

/// Runs killed with SIGKILL once the server has stored a number of their messages (seen
/// by the server, not guessed from a delay), then a run to the end: the messages stored
/// before each kill are there, and after the last run every message is there exactly once,
/// the rerun having sent only what was missing.
#[test]
fn a_killed_upload_rerun_gives_every_message_exactly_once() {
    let d = Dovecot::start();
    let tmp = TempDir::new("upload-kill");
    let root = tmp.path().join("archive");
    let msgs = three_hundred(&d, &root);
    d.add_user("dst", PW);
    let mut landed = 0;
    for more in [40, 80] {
        let mut watch = Landed::watch(&d, "dst");
        let mut child = upload_cmd(&d, "dst", &root.join("src"), &[]).stdout(Stdio::null()).spawn().unwrap();
        let at_kill = watch.wait_for(landed + more, &mut child);
        assert!(child.try_wait().unwrap().is_none(), "the upload ended before it could be killed");
        child.kill().unwrap();
        child.wait().unwrap();
        // A server still storing the uploads a killed client had sent ahead (up to 8 of
        // them) would have them land after the rerun looked: as a rerun from cron, this
        // one comes once the server is done with the killed session.
        watch.0.logout();
        d.wait_for_all_logouts("dst");
        landed = Landed::watch(&d, "dst").now();
        println!("killed with {at_kill} messages landed; {landed} once the server was done with it");
        assert!(
            landed >= at_kill && landed < msgs.len(),
            "killed mid-upload: {at_kill}, then {landed}, of {}",
            msgs.len()
        );
    }
    let o = upload(&d, "dst", &root.join("src"), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    each_once(&d, "dst", &msgs);
    assert_eq!(counts(&stdout(&o)), (msgs.len() - landed, landed, 0), "{}", stdout(&o));
}

/// The connection dropped in the middle of a message body (a proxy cuts it after a full
/// TLS record from the client, once the server has stored messages of the run; Dovecot's
/// log says it was mid-APPEND): the run reconnects, sends only what the server lacks, and
/// every message is there exactly once.
#[test]
fn a_connection_dropped_mid_append_costs_nothing() {
    let d = Dovecot::start();
    let tmp = TempDir::new("upload-drop");
    let root = tmp.path().join("archive");
    let msgs = three_hundred(&d, &root);
    d.add_user("dst", PW);
    let proxy = support::proxy::Proxy::start(d.imaps_port());
    let mut watch = Landed::watch(&d, "dst");
    let port = proxy.port().to_string();
    // The run waits --timeout for the lost connection's APPENDs to land before it looks
    // for them: a short one, as the server is on this machine.
    let mut child = upload_cmd(&d, "dst", &root.join("src"), &["--port", &port, "--timeout", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let before = watch.wait_for(40, &mut child);
    let passed = proxy.cut(Duration::from_secs(30));
    watch.0.logout();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(proxy.cuts(), 1);
    assert!(stderr(&o).contains("connection lost"), "the run said nothing of the drop: {}", stderr(&o));
    let log = d.log();
    let dropped: Vec<&str> = log.lines().filter(|l| l.contains("imap(dst)") && l.contains("Disconnected")).collect();
    assert!(
        dropped.iter().any(|l| l.contains("(While APPENDing: ")),
        "the server did not lose the connection in the middle of an APPEND ({passed} bytes passed): {dropped:#?}"
    );
    each_once(&d, "dst", &msgs);
    let (uploaded, present, failed) = counts(&stdout(&o));
    println!("cut after {passed} bytes, {before} messages landed; then {uploaded} uploaded, {present} already there");
    eprintln!("DEBUG stderr: {}", stderr(&o));
    assert_eq!((uploaded + present, failed), (msgs.len(), 0), "{}", stdout(&o));
}

/// A 100 MB message goes up streamed: the client's peak memory stays small.
#[test]
fn a_hundred_mb_message_is_uploaded_in_bounded_memory() {
    let d = Dovecot::start();
    d.add_user("src", PW);
    let big = message(1, 100 << 20);
    d.append("src", PW, "INBOX", &big);
    let tmp = TempDir::new("upload-big");
    let root = tmp.path().join("archive");
    let keys = tmp.path().join("keys");
    backup(&d, "src", &root, &["-z", "-e", "-k", keys.to_str().unwrap()]);
    d.add_user("dst", PW);
    let peak_file = tmp.path().join("peak");
    let started = Instant::now();
    let mut cmd = measured(bin(), &peak_file);
    let args: Vec<String> = upload_cmd(&d, "dst", &root.join("src"), &["-k", keys.to_str().unwrap(), "-q"])
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let child = cmd
        .args(args)
        .env("SMAILARCHIVER_PASSWD", PW)
        .env("SMAILARCHIVER_KEY_PASSWORD", PW)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (code, peak_kib) = wait_measured(child, &peak_file);
    println!("100 MB upload: exit {code}, peak {peak_kib} KiB, {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(code, 0);
    assert!(peak_kib < 16 * 1024, "peak RSS {peak_kib} KiB");
    let uids = d.uids("dst", PW, "INBOX");
    assert_eq!(uids.len(), 1);
    assert!(d.fetch_raw("dst", PW, "INBOX", uids[0]) == big, "the same bytes");
}
