//! Issue 20's upload acceptance over a bad link: an upload through a TCP proxy that
//! stalls or cuts connections at random points (tests/it/support/proxy.rs), some runs
//! killed with SIGKILL, leaves every message at the target at most once after each
//! round and exactly once after a last run over a good link. The archive holds a message
//! with a 120 KiB header, so the target soon holds one and every later round has to read
//! past it.
//!
//! The suite runs a few rounds per server; by hand, the full count:
//!
//!     SMAILTEST_PROXY_ROUNDS=50 SMAILTEST_PROXY_SERVERS=dovecot,courier,cyrus-dot,cyrus-slash \
//!         cargo test --test it upload_link:: -- --nocapture
//!
//! (`SMAILTEST_PROXY_SEED=N` repeats a run's faults.)

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::proxy::{Plan, Proxy, Rng};
use crate::support::servers::{self, Kind, MailServer};
use crate::support::*;

const PW: &str = "link pw";
/// The client's timeout (`--timeout`): stalls are chosen around it.
const TIMEOUT: Duration = Duration::from_secs(2);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The messages of the archive: one with a 120 KiB header, the others 5 to 80 KB.
fn mail() -> Vec<Vec<u8>> {
    let mut big = Vec::new();
    for i in 0..1800 {
        big.extend_from_slice(
            format!("Received: from relay{i}.example.org by mx.example.org; Tue, 2 Mar 2021 10:00:00 +0000\r\n")
                .as_bytes(),
        );
    }
    big.extend_from_slice(b"From: big@example.org\r\nSubject: long header\r\nMessage-ID: <big@link>\r\n\r\nbody\r\n");
    assert!(big.len() > 120 * 1024);
    let mut all = vec![big];
    let mut rng = Rng::new(7);
    for n in 1..=30 {
        let size = 5_000 + rng.below(75_000) as usize;
        let mut m = format!(
            "From: Sender {n} <s{n}@example.org>\r\nSubject: link {n}\r\nMessage-ID: <{n}@link>\r\n\
             Date: Tue, {:02} Mar 2021 10:00:00 +0000\r\n\r\n",
            1 + n % 28
        )
        .into_bytes();
        while m.len() < size {
            m.extend_from_slice(format!("line {} of message {n}\r\n", m.len()).as_bytes());
        }
        all.push(m);
    }
    all
}

/// How many times each message of `want` is in the target's INBOX; panics on one that
/// is not in `want`.
fn counts(server: &dyn MailServer, user: &str, want: &[Vec<u8>]) -> Vec<usize> {
    let held = server.all_raw(user, PW, "INBOX");
    let mut by_bytes: BTreeMap<&[u8], usize> = BTreeMap::new();
    for raw in held.values() {
        assert!(want.contains(raw), "a message that is not the archive's: {:?}", String::from_utf8_lossy(&raw[..200]));
        *by_bytes.entry(raw).or_default() += 1;
    }
    want.iter().map(|m| by_bytes.get(m.as_slice()).copied().unwrap_or(0)).collect()
}

fn upload(server: &dyn MailServer, user: &str, archive: &Path, port: u16) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["-r", archive.to_str().unwrap(), "--to-imap", "-u", user, "-i", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--ca-file", server.cert_pem_path().to_str().unwrap()])
        .args(["--timeout", &TIMEOUT.as_secs().to_string(), "-q"])
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn through_a_bad_link(kind: Kind) {
    let label = kind.label();
    let wanted: Vec<&str> = std::env::var("SMAILTEST_PROXY_SERVERS")
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
        .unwrap_or_else(|_| vec!["dovecot".into(), "courier".into()])
        .iter()
        .map(|s| if s == label { label } else { "" })
        .collect();
    if !wanted.contains(&label) {
        println!("{label}: not in SMAILTEST_PROXY_SERVERS");
        return;
    }
    let rounds = env_number("SMAILTEST_PROXY_ROUNDS", 3);
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let seed = env_number("SMAILTEST_PROXY_SEED", clock);
    println!("{label}: {rounds} rounds, seed {seed}");
    // The archive, from a Dovecot user (the same for every target).
    let source = servers::shared(Kind::Dovecot);
    let src_user = format!("linksrc-{label}");
    source.add_user(&src_user, PW);
    let want: Vec<Vec<u8>> = mail();
    for m in &want {
        source.append(&src_user, PW, "INBOX", &[], None, m);
    }
    let tmp = TempDir::new(&format!("up-link-{label}"));
    let mut args = source.client_args(&src_user, tmp.path());
    args.push("-q".into());
    let o = Command::new(bin()).args(&args).env("SMAILARCHIVER_PASSWD", PW).stdin(Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "backup: {}", stderr(&o));
    let archive = tmp.path().join(&src_user);

    let target = servers::shared(kind);
    let user = "linkdst";
    target.add_user(user, PW);
    // The target holds the message with the 120 KiB header from the start.
    target.append(user, PW, "INBOX", &[], None, &want[0]);
    let total: u64 = want.iter().map(|m| m.len() as u64).sum();
    let plan = Plan { seed, chance: 80, within: total / 2, timeout: TIMEOUT };
    let proxy = Proxy::with_faults(target.imaps_port(), plan);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let (mut kills, mut exits) = (0, BTreeMap::new());
    let started = Instant::now();
    for round in 1..=rounds {
        // Every round has mail to send: a random part of what is there goes away.
        let held = target.uids(user, PW, "INBOX");
        let gone: Vec<u32> = held.into_iter().filter(|_| rng.below(2) == 0).collect();
        if !gone.is_empty() {
            let set: Vec<String> = gone.iter().map(u32::to_string).collect();
            let mut s = target.session(user, PW);
            s.ok("SELECT INBOX");
            s.ok(&format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", set.join(",")));
            s.ok(&format!("UID EXPUNGE {}", set.join(",")));
            s.logout();
        }
        let mut child = upload(target, user, &archive, proxy.port()).spawn().unwrap();
        let killed = rng.below(3) == 0 && {
            let after = Duration::from_millis(50 + rng.below(1500));
            let until = Instant::now() + after;
            while Instant::now() < until && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            child.try_wait().unwrap().is_none() && child.kill().is_ok()
        };
        let o = child.wait_with_output().unwrap();
        kills += usize::from(killed);
        *exits.entry(if killed { "killed".to_string() } else { format!("{:?}", o.status.code()) }).or_insert(0) += 1;
        let err = stderr(&o);
        assert!(killed || matches!(o.status.code(), Some(0 | 1)), "{label} round {round}: {err}");
        assert!(!err.contains("panicked"), "{label} round {round}: {err}");
        // As a rerun from cron: the server is done with the last run's connections.
        proxy.wait_idle(Duration::from_secs(60));
        let c = counts(target, user, &want);
        assert!(
            c.iter().all(|&n| n <= 1),
            "{label} round {round} (seed {seed}): a message twice: {c:?}\n{err}\n{:#?}",
            proxy.events()
        );
    }
    proxy.faults(false);
    let o = upload(target, user, &archive, proxy.port()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{label}: the last run: {}", stderr(&o));
    let c = counts(target, user, &want);
    assert!(c.iter().all(|&n| n == 1), "{label} (seed {seed}): not every message once: {c:?}\n{:#?}", proxy.events());
    let events = proxy.events();
    if std::env::var_os("SMAILTEST_PROXY_VERBOSE").is_some() {
        println!("{label}: {events:#?}");
    }
    let faults = events.iter().filter(|e| e.contains("struck")).count();
    println!(
        "{label}: {rounds} rounds in {:.0} s, {faults} faults struck, {kills} runs killed, exits {exits:?}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn an_upload_over_a_stalling_and_resetting_link_to_dovecot() {
    through_a_bad_link(Kind::Dovecot);
}

#[test]
fn an_upload_over_a_stalling_and_resetting_link_to_courier() {
    through_a_bad_link(Kind::Courier);
}

#[test]
fn an_upload_over_a_stalling_and_resetting_link_to_cyrus_dot() {
    through_a_bad_link(Kind::CyrusDot);
}

#[test]
fn an_upload_over_a_stalling_and_resetting_link_to_cyrus_slash() {
    through_a_bad_link(Kind::CyrusSlash);
}
