//! Nothing is lost or half-written: a backup killed with SIGKILL at random moments, then
//! completed, has every message exactly once; a full disk gives a clear error and the
//! next run with space completes.

mod common;
mod util;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::dovecot::Dovecot;
use util::*;

const PW: &str = "hardening pw";

/// A mixed corpus: mostly small messages, some bigger than the fetch budget.
fn fill(d: &Dovecot, user: &str, count: usize) -> HashMap<u32, Vec<u8>> {
    d.add_user(user, PW);
    let mut x = 0x5eed_u64;
    let mut served = HashMap::new();
    for i in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = if i % 25 == 7 { 200_000 + (x % 200_000) as usize } else { 500 + (x % 30_000) as usize };
        let mut m = format!("From: n{i}@example.org\r\nSubject: message {i}\r\n\r\n").into_bytes();
        let mut y = x;
        while m.len() < size {
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            m.extend_from_slice(format!("{:016x} text {}\r\n", y, i).as_bytes());
        }
        let uid = d.append(user, PW, "INBOX", &m);
        served.insert(uid, Vec::new());
    }
    let uids: Vec<u32> = served.keys().copied().collect();
    for uid in uids {
        served.insert(uid, d.fetch_raw(user, PW, "INBOX", uid));
    }
    served
}

fn backup_cmd(d: &Dovecot, user: &str, root: &Path, keys: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(["-u", user, "-i", "127.0.0.1", "--port", &d.imaps_port().to_string()])
        .args(["--ca-file", d.cert_pem_path().to_str().unwrap(), "--dir", root.to_str().unwrap()])
        .args(["-z", "-e", "-k", keys.to_str().unwrap(), "--buffer-size", "64K", "-q"])
        .env("SMAILARCHIVER_PASSWD", PW)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Checks the folder holds exactly one whole file per served message and nothing else.
fn assert_complete(folder: &Path, keys: &Path, served: &HashMap<u32, Vec<u8>>) {
    let mut per_uid: HashMap<u32, usize> = HashMap::new();
    for e in fs::read_dir(folder).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".smailarchiver-tmp-"), "temporary file left: {name}");
        if let Some(stem) = name.strip_suffix(".mbox.gz.enc") {
            *per_uid.entry(stem.parse().unwrap()).or_default() += 1;
        }
    }
    assert_eq!(per_uid.len(), served.len(), "messages archived");
    assert!(per_uid.values().all(|&n| n == 1), "a message archived twice");
    let out = folder.with_extension("check");
    let _ = fs::remove_dir_all(&out);
    let o = run(
        &["-r", folder.to_str().unwrap(), "-k", keys.to_str().unwrap(), "--to-maildir", out.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for e in fs::read_dir(out.join("cur")).unwrap() {
        let p = e.unwrap().path();
        let uid: u32 = p.file_name().unwrap().to_string_lossy().split('.').next().unwrap().parse().unwrap();
        assert_same(&fs::read(&p).unwrap(), &served[&uid], &format!("UID {uid}"));
    }
    let v = run(&["--verify", folder.to_str().unwrap(), "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let d = Dovecot::start();
    let served = fill(&d, "kim", 400);
    let tmp = TempDir::new("kill9");
    let keys = tmp.join("keys");
    let mut x = 0x00c0_ffee_u64;
    let mut killed_mid_run = 0;
    let folder = tmp.join("kim/INBOX");
    let archived = || fs::read_dir(&folder).map(|d| d.count()).unwrap_or(0);
    let mut progressed = 0;
    // Short random delays: each run gets a little further before its SIGKILL, so the
    // kills land at moments spread over the whole backup (connecting, fetching, writing).
    for _ in 0..30 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(10 + (x >> 33) % 60);
        let before = archived();
        let mut child = backup_cmd(&d, "kim", tmp.path(), &keys).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok();
        child.wait().unwrap();
        progressed += usize::from(archived() > before);
    }
    let o = backup_cmd(&d, "kim", tmp.path(), &keys).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "final run: {}", String::from_utf8_lossy(&o.stderr));
    println!("{killed_mid_run} of 30 kills landed during a run; {progressed} runs made progress");
    assert!(killed_mid_run >= 20, "only {killed_mid_run} of 30 kills landed during a run");
    assert!(progressed >= 3, "only {progressed} of 30 killed runs archived anything");
    assert_complete(&tmp.join("kim/INBOX"), &keys, &served);
}

/// A small tmpfs as the archive root; unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
        let o = o.expect("mount(8) is needed for the disk-full test");
        assert!(
            o.status.success(),
            "the disk-full test needs root to mount a tmpfs: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let o = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_is_a_clear_error_and_the_next_run_completes() {
    let d = Dovecot::start();
    let served = fill(&d, "lou", 60);
    let tmp = TempDir::new("diskfull");
    let keys = tmp.join("keys");
    let root = tmp.join("archive");
    let disk = Tmpfs::mount(&root, "512k");
    let o = backup_cmd(&d, "lou", &root, &keys).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("smailarchiver: ")), "{err}");
    // What was archived before the disk filled up is whole; nothing else is there.
    let folder = root.join("lou/INBOX");
    let mut kept = 0;
    for e in fs::read_dir(&folder).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".smailarchiver-tmp-"), "temporary file left: {name}");
        kept += usize::from(name.ends_with(".mbox.gz.enc"));
    }
    assert!(kept < served.len(), "the disk was not full after all");
    if kept > 0 {
        let v = run(&["--verify", folder.to_str().unwrap(), "-k", keys.to_str().unwrap()], &[]);
        assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    }
    disk.resize("64m");
    let o = backup_cmd(&d, "lou", &root, &keys).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_complete(&folder, &keys, &served);
}
