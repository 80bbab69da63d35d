//! The landlock sandbox: what a confined run can and cannot reach. Each test confines a
//! thread of its own (landlock restricts the calling thread), so the harness stays free.
//!
//! No test depends on the kernel having some ABI: each one runs at every landlock ABI from
//! 0 (none) up to the running kernel's, the older ones emulated with
//! `sandbox::restrict_up_to`, and asserts what is right at that ABI: below ABI 4 a
//! connection to any port goes through and the status says TCP is not confined, below
//! ABI 3 truncating a file outside is possible and the status says so, and so on. The
//! expected statuses are written out here from the documented behaviour, not computed by
//! the code under test.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smailarchiver::sandbox::{self, Enforcement, Rules, Strictness, Support};

/// A fresh directory for one test, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("sandbox-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir.canonicalize().unwrap())
    }

    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` on a thread of its own, so its confinement ends with it.
fn confined<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("the confined thread panicked")
}

/// The running kernel's landlock ABI, 0 without landlock.
fn kernel_abi() -> u32 {
    Support::detect().abi()
}

/// Every ABI a test runs at: 0 (no landlock) up to the kernel's own. Never empty, so every
/// test checks something on any kernel, and the kernel's own ABI is always among them.
fn abis() -> std::ops::RangeInclusive<u32> {
    0..=kernel_abi()
}

const TRUNCATE_GAP: &str = "truncating files (needs landlock ABI 3, Linux 6.2)";
const TCP_GAP: &str = "TCP connections (needs landlock ABI 4, Linux 6.7)";

/// What `restrict_up_to(rules, Strictness::Auto, abi)` must report on this kernel (`abi` at most
/// the kernel's), as the module documentation describes it.
fn expected_status(abi: u32, cross_dir_renames: bool) -> String {
    match abi {
        0 if kernel_abi() == 0 => format!("not sandboxed: {}", Support::detect()),
        0 => "not sandboxed: landlock capped at ABI 0".into(),
        1 if cross_dir_renames => "not sandboxed: landlock ABI 1 refuses moving files between directories, \
                                   which this run does (needs ABI 2, Linux 5.19)"
            .into(),
        1 | 2 => format!("landlock ABI {abi}: partially enforced; not confined: {TRUNCATE_GAP}, {TCP_GAP}"),
        3 => format!("landlock ABI 3: partially enforced; not confined: {TCP_GAP}"),
        _ => format!("landlock ABI {abi}: fully enforced"),
    }
}

/// The one-line error of `Strictness::Require` at `abi`; `None` where it must succeed.
fn expected_require_error(abi: u32, cross_dir_renames: bool) -> Option<String> {
    (abi < 4).then(|| {
        format!(
            "sandbox required (--sandbox require), but {}; use --sandbox auto to run anyway",
            expected_status(abi, cross_dir_renames)
        )
    })
}

/// Whether files are confined at `abi` (ABI 1 gives up on runs that move files between
/// directories rather than failing them).
fn files_confined(abi: u32, cross_dir_renames: bool) -> bool {
    abi >= 2 || (abi == 1 && !cross_dir_renames)
}

/// Confines the calling thread as on a kernel of ABI `abi`, in auto mode, and checks the
/// status against the expected one.
#[track_caller]
fn restrict_at(rules: &Rules, abi: u32) -> sandbox::Status {
    let status = sandbox::restrict_up_to(rules, Strictness::Auto, abi).unwrap();
    assert_eq!(status.to_string(), expected_status(abi, rules.cross_dir_renames), "at ABI {abi}");
    let enforcement = match abi {
        _ if !files_confined(abi, rules.cross_dir_renames) => Enforcement::NotEnforced,
        0..=3 => Enforcement::PartiallyEnforced,
        _ => Enforcement::FullyEnforced,
    };
    assert_eq!(status.enforcement, enforcement, "at ABI {abi}: {status}");
    status
}

fn errno(r: io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

const EACCES: Option<i32> = Some(libc::EACCES);

/// EACCES where `denied`, success otherwise.
fn denied_if(denied: bool) -> Option<i32> {
    if denied {
        EACCES
    } else {
        None
    }
}

fn write_file(path: &Path) -> io::Result<()> {
    File::create(path)?.write_all(b"data\n")
}

/// truncate(2) by path: the one way to shorten a file without opening it for writing.
fn truncate(path: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::truncate(c.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn connect(port: u16) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(5))
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn mode_parses_the_three_values_only() {
    assert_eq!(Strictness::parse("auto").unwrap(), Strictness::Auto);
    assert_eq!(Strictness::parse("require").unwrap(), Strictness::Require);
    assert_eq!(Strictness::parse("off").unwrap(), Strictness::Off);
    assert_eq!(Strictness::default(), Strictness::Auto);
    let e = Strictness::parse("on").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(e.message(), "sandbox mode 'on' is not one of auto, require, off");
}

#[test]
fn files_only_beneath_the_allowed_directories() {
    for abi in abis() {
        let t = Dir::new(&format!("files-{abi}"));
        let (root, ro, outside) = (t.sub("root"), t.sub("ro"), t.sub("outside"));
        fs::write(ro.join("keys"), "k\n").unwrap();
        fs::write(outside.join("secret"), "s\n").unwrap();
        fs::write(outside.join("long"), "not to be shortened\n").unwrap();
        fs::write(outside.join("doomed"), "d\n").unwrap();
        let rules = Rules {
            read_write: vec![root.clone()],
            read: vec![ro.clone()],
            cross_dir_renames: true,
            ..Rules::default()
        };
        let confined_here = files_confined(abi, true);
        let outside2 = outside.clone();
        confined(move || {
            restrict_at(&rules, abi);
            let denied = denied_if(confined_here);

            // Outside: nothing at all.
            assert_eq!(errno(write_file(&outside.join("new"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::read(outside.join("secret"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::read_dir(&outside)), denied, "ABI {abi}");
            assert_eq!(errno(fs::create_dir(outside.join("d"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::remove_file(outside.join("doomed"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::read("/etc/passwd")), denied, "ABI {abi}");
            // The gap the status names below ABI 3 is real: truncate(2) by path goes through.
            assert_eq!(errno(truncate(&outside.join("long"))), denied_if(abi >= 3), "ABI {abi}");

            // Read-only: readable, not writable.
            assert_eq!(fs::read(ro.join("keys")).unwrap(), b"k\n");
            assert_eq!(fs::read_dir(&ro).unwrap().count(), 1);
            assert_eq!(errno(write_file(&ro.join("new"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::OpenOptions::new().append(true).open(ro.join("keys"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::remove_file(ro.join("keys"))), denied, "ABI {abi}");

            // Inside: everything a backup or a restore does.
            let folder = root.join("user").join("INBOX");
            fs::create_dir_all(&folder).unwrap();
            write_file(&folder.join(".tmp-1")).unwrap();
            let f = fs::OpenOptions::new().write(true).open(folder.join(".tmp-1")).unwrap();
            f.set_len(2).unwrap();
            f.sync_all().unwrap();
            fs::rename(folder.join(".tmp-1"), folder.join("1.mbox")).unwrap();
            fs::hard_link(folder.join("1.mbox"), folder.join("1.mbox.link")).unwrap();
            fs::remove_file(folder.join("1.mbox.link")).unwrap();
            File::open(&folder).unwrap().sync_all().unwrap();
            assert_eq!(fs::read(folder.join("1.mbox")).unwrap(), b"da");
            fs::rename(&folder, root.join("user").join("INBOX.uidvalidity-7")).unwrap();
            fs::create_dir_all(root.join("out").join("tmp")).unwrap();
            fs::create_dir_all(root.join("out").join("cur")).unwrap();
            write_file(&root.join("out").join("tmp").join("m")).unwrap();
            fs::rename(root.join("out").join("tmp").join("m"), root.join("out").join("cur").join("m:2,")).unwrap();
            fs::remove_dir_all(root.join("out")).unwrap();

            // Nor can anything be moved out of the allowed directory, or executed.
            let moved = fs::rename(root.join("user"), outside.join("user"));
            let executed = std::process::Command::new("/bin/true").status();
            if confined_here {
                assert!(matches!(errno(moved), Some(libc::EACCES | libc::EXDEV)), "ABI {abi}");
                assert!(executed.is_err(), "ABI {abi}: executed a program");
                assert!(!outside.join("user").exists());
            } else {
                moved.unwrap();
                assert!(executed.unwrap().success());
            }
        });
        assert!(outside2.join("secret").exists());
        assert_eq!(outside2.join("d").exists(), !confined_here, "ABI {abi}");
        assert_eq!(outside2.join("doomed").exists(), confined_here, "ABI {abi}");
        let long = fs::read(outside2.join("long")).unwrap();
        assert_eq!(long.is_empty(), abi < 3, "ABI {abi}: {long:?}");
    }
}

#[test]
fn a_symlink_inside_does_not_lead_outside() {
    for abi in abis() {
        let t = Dir::new(&format!("symlink-{abi}"));
        let (root, outside) = (t.sub("root"), t.sub("outside"));
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let target = outside.join("planted");
        fs::write(&target, "original\n").unwrap();
        std::os::unix::fs::symlink(&target, root.join("file-link")).unwrap();
        let rules = Rules { read_write: vec![root.clone()], ..Rules::default() };
        let confined_here = files_confined(abi, false);
        confined(move || {
            restrict_at(&rules, abi);
            let denied = denied_if(confined_here);
            assert_eq!(errno(write_file(&root.join("escape").join("new"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::create_dir(root.join("escape").join("dir"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::read(root.join("file-link"))), denied, "ABI {abi}");
            assert_eq!(errno(write_file(&root.join("file-link"))), denied, "ABI {abi}");
            // Removing the link itself is fine: it lives inside.
            fs::remove_file(root.join("file-link")).unwrap();
        });
        let planted = fs::read_to_string(t.0.join("outside").join("planted")).unwrap();
        let entries = fs::read_dir(t.0.join("outside")).unwrap().count();
        if confined_here {
            assert_eq!((entries, planted.as_str()), (1, "original\n"), "ABI {abi}");
        } else {
            // Unconfined, the links are followed: what the sandbox is there to stop.
            assert_eq!((entries, planted.as_str()), (3, "data\n"), "ABI {abi}");
        }
    }
}

#[test]
fn tcp_only_to_the_allowed_ports() {
    for abi in abis() {
        let t = Dir::new(&format!("tcp-{abi}"));
        let (allowed, allowed_port) = listener();
        let (other, other_port) = listener();
        // A connection made before the restriction keeps working after it.
        let mut early = connect(other_port).unwrap();
        let (mut served, _) = other.accept().unwrap();
        let rules = Rules { read_write: vec![t.0.clone()], connect_tcp: vec![allowed_port], ..Rules::default() };
        let client = std::thread::spawn(move || {
            match (sandbox::restrict_up_to(&rules, Strictness::Require, abi), expected_require_error(abi, false)) {
                (Ok(status), None) => assert!(status.fully_enforced(), "{status}"),
                (Err(e), Some(message)) => {
                    assert_eq!(e.message(), message);
                    assert_eq!(e.exit_code(), 1);
                    // Require refuses before confining anything.
                    fs::read("/etc/passwd").unwrap();
                    restrict_at(&rules, abi);
                }
                (got, want) => panic!("ABI {abi}: require gave {got:?}, expected {want:?}"),
            }
            let tcp_confined = abi >= 4;
            assert_eq!(errno(connect(other_port)), denied_if(tcp_confined), "ABI {abi}");
            let mut ok = connect(allowed_port).unwrap();
            ok.write_all(b"hi").unwrap();
            let bound = TcpListener::bind((Ipv4Addr::LOCALHOST, 0));
            assert_eq!(errno(bound), denied_if(tcp_confined), "ABI {abi}");
            early.write_all(b"ping").unwrap();
            let mut answer = [0u8; 4];
            early.read_exact(&mut answer).unwrap();
            answer
        });
        let mut buf = [0u8; 4];
        served.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        served.write_all(b"pong").unwrap();
        assert_eq!(&client.join().unwrap(), b"pong");
        let (mut accepted, _) = allowed.accept().unwrap();
        let mut hi = [0u8; 2];
        accepted.read_exact(&mut hi).unwrap();
        assert_eq!(&hi, b"hi");
    }
}

#[test]
fn no_ports_means_no_tcp_at_all() {
    for abi in abis() {
        let (_l, port) = listener();
        let rules = Rules::default();
        confined(move || {
            restrict_at(&rules, abi);
            assert_eq!(errno(connect(port)), denied_if(abi >= 4), "ABI {abi}");
            // Read-only rules and nothing else: no file anywhere either.
            assert_eq!(errno(fs::read("/etc/passwd")), denied_if(abi >= 1), "ABI {abi}");
        });
    }
}

/// The probes of `sandbox::check` that must fail on this kernel (`check` cannot be capped:
/// it always runs at the kernel's own ABI).
fn failing_probes() -> &'static [&'static str] {
    match kernel_abi() {
        0 => &[
            "read a file outside ROOT",
            "list a directory outside ROOT",
            "create a file outside ROOT",
            "create a file through a symlink in ROOT pointing outside",
            "(listening, port not allowed)",
            "listen on a TCP port",
        ],
        1..=3 => &["(listening, port not allowed)", "listen on a TCP port"],
        _ => &[],
    }
}

#[test]
fn check_proves_every_probe() {
    let abi = kernel_abi();
    let t = Dir::new("check");
    let root = t.sub("archive");
    fs::write(root.join("kept"), "x").unwrap();
    let port = {
        let (_l, p) = listener();
        p
    };
    let report = sandbox::check(&root, port).unwrap();
    let text = report.to_string();
    eprintln!("{text}");
    assert_eq!(report.probes.len(), 9, "{text}");
    let failing: Vec<&str> = report.probes.iter().filter(|p| !p.as_expected).map(|p| p.what.as_str()).collect();
    let expected = failing_probes();
    assert_eq!(failing.len(), expected.len(), "{text}");
    for (got, want) in failing.iter().zip(expected) {
        assert!(got.contains(want), "'{got}' is not '{want}' in:\n{text}");
    }
    assert_eq!(report.passed(), abi >= 4, "{text}");
    let ending = match (abi, expected.len()) {
        (4.., _) => "sandbox check passed: runs confine themselves as they should".to_string(),
        (_, n) => format!("sandbox check FAILED: {n} of 9 probes not as expected"),
    };
    assert!(text.ends_with(&ending), "{text}");
    let listen = if abi >= 4 { "denied" } else { "allowed: NOT CONFINED" };
    let connect = if abi >= 4 { "denied" } else { "allowed: NOT CONFINED" };
    for line in [
        "read a file outside ROOT",
        "list a directory outside ROOT",
        "create a file outside ROOT",
        "through a symlink in ROOT pointing outside",
        "inside ROOT",
        "move a file between directories inside ROOT",
        &format!("(listening, port not allowed): {connect}"),
        &format!("127.0.0.1:{port} (allowed port, listening): allowed"),
        &format!("listen on a TCP port (127.0.0.1, any port): {listen}"),
    ] {
        assert!(text.contains(line), "no '{line}' in:\n{text}");
    }
    let head = format!("kernel: {}\nsandbox: {}\n", Support::detect(), expected_status(abi, false));
    assert!(text.starts_with(&head), "{text}");
    // Nothing left behind, inside or outside.
    let names: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["kept"]);
    let secret = report.probes[0].what.split(['(', ')']).nth(1).unwrap();
    assert!(secret.contains("smailarchiver-sandbox-check-"), "{secret}");
    assert!(!Path::new(secret).parent().unwrap().exists(), "{secret}");
    // And the caller was not confined.
    fs::write(t.0.join("after"), "free").unwrap();
}

#[test]
fn check_with_an_allowed_port_nobody_listens_on() {
    let t = Dir::new("check-closed");
    // The local port of a connection: the check cannot listen on it and nothing listens
    // there, so a refused connection is the proof that landlock let it through.
    let (_l, server_port) = listener();
    let client = connect(server_port).unwrap();
    let port = client.local_addr().unwrap().port();
    let report = sandbox::check(&t.0, port).unwrap();
    eprintln!("{report}");
    assert_eq!(report.passed(), kernel_abi() >= 4, "{report}");
    let probe = report.probes.iter().find(|p| p.what.contains("(allowed port)")).unwrap();
    assert_eq!(probe.outcome, "allowed by landlock (Connection refused)");
    assert!(probe.as_expected, "{report}");
}

#[test]
fn require_succeeds_only_where_files_and_tcp_are_confined() {
    for cross_dir_renames in [false, true] {
        for abi in abis() {
            let t = Dir::new(&format!("require-{abi}-{cross_dir_renames}"));
            let (root, outside) = (t.sub("root"), t.sub("outside"));
            let (_l, port) = listener();
            let rules = Rules { read_write: vec![root.clone()], cross_dir_renames, ..Rules::default() };
            confined(move || match expected_require_error(abi, cross_dir_renames) {
                Some(message) => {
                    let e = sandbox::restrict_up_to(&rules, Strictness::Require, abi).unwrap_err();
                    assert_eq!(e.exit_code(), 1);
                    assert_eq!(e.message(), message);
                    assert!(!e.message().contains('\n'));
                    // Refused before confining anything.
                    write_file(&outside.join("still-free")).unwrap();
                    connect(port).unwrap();
                }
                None => {
                    let status = sandbox::restrict_up_to(&rules, Strictness::Require, abi).unwrap();
                    assert_eq!(status.to_string(), expected_status(abi, cross_dir_renames));
                    assert_eq!(status.abi, abi);
                    assert!(status.gaps.is_empty(), "{status:?}");
                    assert_eq!(errno(write_file(&outside.join("denied"))), EACCES);
                    assert_eq!(errno(connect(port)), EACCES);
                }
            });
        }
    }
}

#[test]
fn without_landlock_auto_runs_unconfined_and_require_fails() {
    let t = Dir::new("no-landlock");
    let (root, outside) = (t.sub("root"), t.sub("outside"));
    let rules = Rules { read_write: vec![root.clone()], ..Rules::default() };
    let kernel = Support::detect();
    confined(move || {
        // Cap 0 is a kernel without landlock (or qemu-user's ENOSYS), on any kernel.
        for status in [sandbox::restrict_up_to(&rules, Strictness::Auto, 0).unwrap()]
            .into_iter()
            .chain((kernel.abi() == 0).then(|| sandbox::restrict(&rules, Strictness::Auto).unwrap()))
        {
            assert_eq!(status.enforcement, Enforcement::NotEnforced);
            assert_eq!(status.abi, 0);
            assert!(status.to_string().starts_with("not sandboxed: "), "{status}");
        }
        let e = sandbox::restrict_up_to(&rules, Strictness::Require, 0).unwrap_err();
        assert!(e.message().starts_with("sandbox required (--sandbox require), but not sandboxed: "), "{e}");
        if kernel.abi() == 0 {
            let e = sandbox::restrict(&rules, Strictness::Require).unwrap_err();
            assert!(e.message().contains(&kernel.to_string()), "{e}");
        }
        write_file(&outside.join("free")).unwrap();
    });
}

#[test]
fn abi_1_and_moves_between_directories() {
    for abi in abis() {
        let t = Dir::new(&format!("abi1-{abi}"));
        let root = t.sub("root");
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::create_dir_all(root.join("cur")).unwrap();
        fs::write(root.join("tmp").join("m"), "m").unwrap();
        let maildir = Rules { read_write: vec![root.clone()], cross_dir_renames: true, ..Rules::default() };
        let backup = Rules { read_write: vec![root.clone()], ..Rules::default() };
        confined(move || {
            // A Maildir restore on ABI 1 would fail, so it is not confined at all...
            let status = sandbox::restrict_up_to(&maildir, Strictness::Auto, abi).unwrap();
            assert_eq!(status.to_string(), expected_status(abi, true));
            // ...which is why: ABI 1 refuses such a move; ABI 2 (Refer) allows it.
            restrict_at(&backup, abi);
            let moved = fs::rename(root.join("tmp").join("m"), root.join("cur").join("m"));
            if abi == 1 {
                assert_eq!(errno(moved), Some(libc::EXDEV));
            } else {
                moved.unwrap();
            }
        });
    }
}

#[test]
fn off_confines_nothing() {
    let t = Dir::new("off");
    let (root, outside) = (t.sub("root"), t.sub("outside"));
    let (_l, port) = listener();
    let rules = Rules { read_write: vec![root], ..Rules::default() };
    confined(move || {
        let status = sandbox::restrict(&rules, Strictness::Off).unwrap();
        assert_eq!(status.enforcement, Enforcement::NotEnforced);
        assert_eq!(status.abi, 0);
        write_file(&outside.join("free")).unwrap();
        fs::read(outside.join("free")).unwrap();
        connect(port).unwrap();
    });
}

#[test]
fn missing_paths_are_errors_not_holes() {
    let t = Dir::new("missing");
    let gone = t.0.join("not-yet");
    let rules = Rules { read_write: vec![gone.clone()], ..Rules::default() };
    confined(move || {
        for mode in [Strictness::Auto, Strictness::Require] {
            let e = sandbox::restrict(&rules, mode).unwrap_err();
            assert_eq!(e.message(), format!("sandbox: {}: No such file or directory", gone.display()));
        }
        // Nothing was confined by the failed attempts.
        fs::read_dir("/").unwrap();
    });
}

#[test]
fn a_file_as_a_rule() {
    for abi in abis() {
        let t = Dir::new(&format!("file-rule-{abi}"));
        let (root, etc) = (t.sub("root"), t.sub("etc"));
        fs::write(etc.join("ca.pem"), "pem").unwrap();
        fs::write(etc.join("other.pem"), "pem").unwrap();
        let rules = Rules { read_write: vec![root], read: vec![etc.join("ca.pem")], ..Rules::default() };
        confined(move || {
            restrict_at(&rules, abi);
            let denied = denied_if(abi >= 1);
            assert_eq!(fs::read(etc.join("ca.pem")).unwrap(), b"pem");
            assert_eq!(errno(fs::read(etc.join("other.pem"))), denied, "ABI {abi}");
            assert_eq!(errno(fs::OpenOptions::new().write(true).open(etc.join("ca.pem"))), denied, "ABI {abi}");
        });
    }
}

/// `restrict` without a cap is the kernel's own ABI: the same as the highest cap above.
#[test]
fn the_kernel_here_is_used_as_it_is() {
    let support = Support::detect();
    let abi = support.abi();
    eprintln!("kernel: {support}");
    let t = Dir::new("kernel");
    let rules = Rules { read_write: vec![t.0.clone()], ..Rules::default() };
    let (auto, require) = confined(move || {
        let require = sandbox::restrict(&rules, Strictness::Require).map_err(|e| e.message().to_string());
        (sandbox::restrict(&rules, Strictness::Auto).unwrap(), require)
    });
    assert_eq!(auto.abi, abi);
    assert_eq!(auto.to_string(), expected_status(abi, false));
    match expected_require_error(abi, false) {
        None => assert_eq!(require.unwrap().to_string(), format!("landlock ABI {abi}: fully enforced")),
        Some(message) => assert_eq!(require.unwrap_err(), message),
    }
}
