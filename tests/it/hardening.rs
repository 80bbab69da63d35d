//! Nothing is lost or half-written: a backup killed with SIGKILL at random moments, then
//! completed, has every message exactly once; a full disk gives a clear error and the
//! next run with space completes. The completed archives are decoded by the original
//! program's own code too (tests/tools/original.py).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::Dovecot;
use crate::support::*;
use smailarchiver::archive;
use smailarchiver::archive::layout::{META_DIR, TMP_DIR};

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

/// Checks the folder (ROOT/USER/FOLDER) holds exactly one whole file per served message
/// and nothing else, and that no temporary file is left in the archive.
fn assert_complete(folder: &Path, keys: &Path, served: &HashMap<u32, Vec<u8>>) {
    let left = temp_files(folder.ancestors().nth(2).unwrap());
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let mut per_uid: HashMap<u32, usize> = HashMap::new();
    for e in fs::read_dir(folder).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".mbox.gz.enc").unwrap_or_else(|| panic!("not an archived message: {name}"));
        *per_uid.entry(stem.parse().unwrap()).or_default() += 1;
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
        let uid: u32 = p.file_name().unwrap().to_string_lossy().split([':', '.']).next().unwrap().parse().unwrap();
        assert_same(&fs::read(&p).unwrap(), &served[&uid], &format!("UID {uid}"));
    }
    let v = run(&["--verify", folder.to_str().unwrap(), "-k", keys.to_str().unwrap()], &[]);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    let served: std::collections::BTreeMap<u32, Vec<u8>> = served.iter().map(|(u, m)| (*u, m.clone())).collect();
    assert_original_decodes(folder, Some(keys), None, &served);
}

/// The messages committed in `folder`: its final `UID.mbox.gz.enc` files, each of which
/// must decode (MAC, inflate) to exactly the message served; a temporary file is not one.
fn committed(folder: &Path, keys: &Path, served: &HashMap<u32, Vec<u8>>) -> usize {
    let Ok(files) = archive::list_folder(folder) else { return 0 };
    if files.is_empty() {
        return 0;
    }
    let keys = smailarchiver::keys::load(keys, || Ok(None)).expect("the key file of a run that archived something");
    for f in &files {
        let uid = f.uid.unwrap_or_else(|| panic!("{}: not named after a UID", f.path.display()));
        assert!(f.form.compressed && f.form.encrypted, "{}", f.path.display());
        let mut message = Vec::new();
        let read = f.open(Some(&keys)).and_then(|(_, mut r)| r.read_to_end(&mut message));
        read.unwrap_or_else(|e| panic!("{} was committed but does not decode: {e}", f.path.display()));
        assert_same(&message, &served[&uid], &format!("{} decoded", f.path.display()));
    }
    files.len()
}

/// The archive's temporary files (ROOT/.smailarchiver/tmp): messages being written, or
/// left by a killed run.
fn temp_files(root: &Path) -> HashSet<OsString> {
    let Ok(entries) = fs::read_dir(root.join(META_DIR).join(TMP_DIR)) else { return HashSet::new() };
    entries.flatten().map(|e| e.file_name()).collect()
}

fn final_files(folder: &Path) -> usize {
    archive::list_folder(folder).map_or(0, |f| f.len())
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let d = Dovecot::start();
    // CI runs 30; `SMAILARCHIVER_KILL_ROUNDS=60 cargo test --test it hardening::sigkill` runs more by hand.
    let rounds: usize = std::env::var("SMAILARCHIVER_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(30);
    // Enough mail that the last round still finds some to fetch.
    let served = fill(&d, "kim", 400.max(rounds * 14));
    let tmp = TempDir::new("kill9");
    let keys = tmp.join("keys");
    let mut x = 0x00c0_ffee_u64;
    let folder = tmp.join("kim/INBOX");
    let mut progressed = 0;
    let mut waited_for_commits = 0;
    // Each run is killed at a moment it is seen to reach, not after a delay, so a slow or
    // busy machine moves the kills no less through the backup: while it starts and
    // connects, while it writes a message, or right after it committed one or more.
    for round in 0..rounds {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let before = committed(&folder, &keys, &served);
        let left_before = temp_files(tmp.path());
        let mut child = backup_cmd(&d, "kim", tmp.path(), &keys).spawn().unwrap();
        let (dir, root) = (folder.as_path(), tmp.path());
        let (moment, reached): (String, Box<dyn Fn() -> bool>) = match round % 3 {
            0 => ("at once".into(), Box::new(|| true)),
            // A short write may come and go between two looks: a few commits end the wait too.
            1 => (
                "while writing a message".into(),
                Box::new(move || !temp_files(root).is_subset(&left_before) || final_files(dir) >= before + 3),
            ),
            _ => {
                let more = 1 + (x >> 33) as usize % 5;
                waited_for_commits += 1;
                (format!("after {more} more commits"), Box::new(move || final_files(dir) >= before + more))
            }
        };
        // Only a guard against a hang: the moment normally comes within a second.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reached() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("round {round}: the run ended ({status}) before being killed {moment}: {err}");
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!("round {round}: not {moment} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(child.try_wait().unwrap().is_none(), "round {round}: the run ended before being killed {moment}");
        child.kill().unwrap();
        child.wait().unwrap();
        progressed += usize::from(committed(&folder, &keys, &served) > before);
    }
    let o = backup_cmd(&d, "kim", tmp.path(), &keys).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "final run: {}", String::from_utf8_lossy(&o.stderr));
    println!("{progressed} of {rounds} killed runs committed messages; the final run archived the rest");
    assert!(progressed >= waited_for_commits, "{progressed} runs made progress, {waited_for_commits} waited for it");
    assert_eq!(final_files(&folder), served.len());
    assert_complete(&folder, &keys, &served);
    // The metadata agrees with the files after all those kills: every digest matches and
    // no recorded message lacks its file.
    let v = Command::new(bin())
        .args(["--verify", folder.to_str().unwrap(), "-k", keys.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
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
    let left = temp_files(&root);
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let mut kept = 0;
    for e in fs::read_dir(&folder).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".mbox.gz.enc"), "not an archived message: {name}");
        kept += 1;
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
