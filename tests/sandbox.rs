//! The landlock sandbox: what a confined run can and cannot reach. Each test confines a
//! thread of its own (landlock restricts the calling thread), so the harness stays free.
//! Tests that need landlock TCP rules (ABI 4, Linux 6.7) say so and pass on older kernels.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use smailarchiver::sandbox::{self, Enforcement, Mode, Rules, Support};

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

/// Whether this kernel can do what the test checks; says so when not.
fn kernel_has(abi: u32) -> bool {
    let support = Support::detect();
    if support.abi() < abi {
        eprintln!("skipped: needs landlock ABI {abi}, this kernel offers: {support}");
        return false;
    }
    true
}

fn errno(r: io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

const EACCES: Option<i32> = Some(libc::EACCES);

fn write_file(path: &Path) -> io::Result<()> {
    File::create(path)?.write_all(b"data\n")
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
    assert_eq!(Mode::parse("auto").unwrap(), Mode::Auto);
    assert_eq!(Mode::parse("require").unwrap(), Mode::Require);
    assert_eq!(Mode::parse("off").unwrap(), Mode::Off);
    assert_eq!(Mode::default(), Mode::Auto);
    let e = Mode::parse("on").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(e.message(), "sandbox mode 'on' is not one of auto, require, off");
}

#[test]
fn files_only_beneath_the_allowed_directories() {
    if !kernel_has(3) {
        return;
    }
    let t = Dir::new("files");
    let (root, ro, outside) = (t.sub("root"), t.sub("ro"), t.sub("outside"));
    fs::write(ro.join("keys"), "k\n").unwrap();
    fs::write(outside.join("secret"), "s\n").unwrap();
    let rules =
        Rules { read_write: vec![root.clone()], read: vec![ro.clone()], cross_dir_renames: true, ..Rules::default() };
    confined(move || {
        let status = sandbox::restrict(&rules, Mode::Auto).unwrap();
        assert_ne!(status.enforcement, Enforcement::NotEnforced, "{status}");

        // Outside: nothing at all.
        assert_eq!(errno(write_file(&outside.join("new"))), EACCES);
        assert_eq!(errno(fs::read(outside.join("secret"))), EACCES);
        assert_eq!(errno(fs::read_dir(&outside)), EACCES);
        assert_eq!(errno(fs::create_dir(outside.join("d"))), EACCES);
        assert_eq!(errno(fs::remove_file(outside.join("secret"))), EACCES);
        assert_eq!(errno(fs::read("/etc/passwd")), EACCES);

        // Read-only: readable, not writable.
        assert_eq!(fs::read(ro.join("keys")).unwrap(), b"k\n");
        assert_eq!(fs::read_dir(&ro).unwrap().count(), 1);
        assert_eq!(errno(write_file(&ro.join("new"))), EACCES);
        assert_eq!(errno(fs::OpenOptions::new().append(true).open(ro.join("keys"))), EACCES);
        assert_eq!(errno(fs::remove_file(ro.join("keys"))), EACCES);

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
        assert!(matches!(errno(fs::rename(root.join("user"), outside.join("user"))), Some(libc::EACCES | libc::EXDEV)));
        assert!(std::process::Command::new("/bin/true").status().is_err());
        assert!(!outside.join("user").exists());
    });
    assert!(!t.0.join("outside").join("new").exists());
    assert!(t.0.join("outside").join("secret").exists());
}

#[test]
fn a_symlink_inside_does_not_lead_outside() {
    if !kernel_has(1) {
        return;
    }
    let t = Dir::new("symlink");
    let (root, outside) = (t.sub("root"), t.sub("outside"));
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    let target = outside.join("planted");
    fs::write(&target, "original\n").unwrap();
    std::os::unix::fs::symlink(&target, root.join("file-link")).unwrap();
    let rules = Rules { read_write: vec![root.clone()], ..Rules::default() };
    confined(move || {
        sandbox::restrict(&rules, Mode::Auto).unwrap();
        assert_eq!(errno(write_file(&root.join("escape").join("new"))), EACCES);
        assert_eq!(errno(fs::create_dir(root.join("escape").join("dir"))), EACCES);
        assert_eq!(errno(write_file(&root.join("file-link"))), EACCES);
        assert_eq!(errno(fs::read(root.join("file-link"))), EACCES);
        // Removing the link itself is fine: it lives inside.
        fs::remove_file(root.join("file-link")).unwrap();
    });
    assert_eq!(fs::read_dir(t.0.join("outside")).unwrap().count(), 1);
    assert_eq!(fs::read_to_string(t.0.join("outside").join("planted")).unwrap(), "original\n");
}

#[test]
fn tcp_only_to_the_allowed_ports() {
    if !kernel_has(4) {
        return;
    }
    let t = Dir::new("tcp");
    let (allowed, allowed_port) = listener();
    let (other, other_port) = listener();
    // A connection made before the restriction keeps working after it.
    let mut early = connect(other_port).unwrap();
    let (mut served, _) = other.accept().unwrap();
    let rules = Rules { read_write: vec![t.0.clone()], connect_tcp: vec![allowed_port], ..Rules::default() };
    let client = std::thread::spawn(move || {
        let status = sandbox::restrict(&rules, Mode::Require).unwrap();
        assert!(status.fully_enforced(), "{status}");
        assert_eq!(errno(connect(other_port)), EACCES);
        let mut ok = connect(allowed_port).unwrap();
        ok.write_all(b"hi").unwrap();
        assert_eq!(errno(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))), EACCES);
        assert_eq!(errno(TcpListener::bind((Ipv4Addr::LOCALHOST, allowed_port + 1))), EACCES);
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

#[test]
fn no_ports_means_no_tcp_at_all() {
    if !kernel_has(4) {
        return;
    }
    let (_l, port) = listener();
    let rules = Rules::default();
    confined(move || {
        let status = sandbox::restrict(&rules, Mode::Require).unwrap();
        assert!(status.fully_enforced());
        assert_eq!(errno(connect(port)), EACCES);
        // Read-only rules and nothing else: no file anywhere either.
        assert_eq!(errno(fs::read("/etc/passwd")), EACCES);
    });
}

#[test]
fn check_proves_every_probe() {
    if !kernel_has(4) {
        return;
    }
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
    assert!(report.passed(), "{text}");
    assert_eq!(report.probes.len(), 9, "{text}");
    assert!(report.probes.iter().all(|p| p.as_expected), "{text}");
    for line in [
        "read a file outside ROOT",
        "list a directory outside ROOT",
        "create a file outside ROOT",
        "through a symlink in ROOT pointing outside",
        "inside ROOT",
        "move a file between directories inside ROOT",
        "(listening, port not allowed): denied",
        &format!("127.0.0.1:{port} (allowed port, listening): allowed"),
        "listen on a TCP port (127.0.0.1, any port): denied",
        "sandbox check passed",
    ] {
        assert!(text.contains(line), "no '{line}' in:\n{text}");
    }
    assert!(text.starts_with(&format!("kernel: landlock ABI {}\nsandbox: landlock ABI", Support::detect().abi())));
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
    if !kernel_has(4) {
        return;
    }
    let t = Dir::new("check-closed");
    // The local port of a connection: the check cannot listen on it and nothing listens
    // there, so a refused connection is the proof that landlock let it through.
    let (_l, server_port) = listener();
    let client = connect(server_port).unwrap();
    let port = client.local_addr().unwrap().port();
    let report = sandbox::check(&t.0, port).unwrap();
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    let probe = report.probes.iter().find(|p| p.what.contains("(allowed port)")).unwrap();
    assert_eq!(probe.outcome, "allowed by landlock (Connection refused)");
}

#[test]
fn require_fails_where_tcp_cannot_be_confined() {
    if !kernel_has(4) {
        return;
    }
    let t = Dir::new("old-abi");
    let (root, outside) = (t.sub("root"), t.sub("outside"));
    let (_l, port) = listener();
    let rules = Rules { read_write: vec![root.clone()], ..Rules::default() };
    confined(move || {
        // As on Linux 6.2 (ABI 3): files yes, TCP no. Require refuses before confining.
        let e = sandbox::restrict_up_to(&rules, Mode::Require, 3).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.message().contains("TCP connections (needs landlock ABI 4"), "{e}");
        write_file(&outside.join("still-free")).unwrap();

        let e = sandbox::restrict_up_to(&rules, Mode::Require, 0).unwrap_err();
        assert!(e.message().contains("not sandboxed"), "{e}");

        // Auto takes what there is: the files, not TCP.
        let status = sandbox::restrict_up_to(&rules, Mode::Auto, 3).unwrap();
        assert_eq!(status.enforcement, Enforcement::PartiallyEnforced);
        assert_eq!(status.abi, 3);
        assert!(status.to_string().starts_with("landlock ABI 3: partially enforced; not confined: TCP"), "{status}");
        assert_eq!(errno(write_file(&outside.join("denied"))), EACCES);
        connect(port).unwrap();
    });
}

#[test]
fn without_landlock_auto_runs_unconfined_and_require_fails() {
    let t = Dir::new("no-landlock");
    let (root, outside) = (t.sub("root"), t.sub("outside"));
    let rules = Rules { read_write: vec![root.clone()], ..Rules::default() };
    let kernel = Support::detect();
    confined(move || {
        // Cap 0 is a kernel without landlock (or qemu-user's ENOSYS), on any kernel.
        for status in [sandbox::restrict_up_to(&rules, Mode::Auto, 0).unwrap()]
            .into_iter()
            .chain((kernel.abi() == 0).then(|| sandbox::restrict(&rules, Mode::Auto).unwrap()))
        {
            assert_eq!(status.enforcement, Enforcement::NotEnforced);
            assert_eq!(status.abi, 0);
            assert!(status.to_string().starts_with("not sandboxed: "), "{status}");
        }
        let e = sandbox::restrict_up_to(&rules, Mode::Require, 0).unwrap_err();
        assert!(e.message().starts_with("sandbox required (--sandbox require), but not sandboxed: "), "{e}");
        if kernel.abi() == 0 {
            let e = sandbox::restrict(&rules, Mode::Require).unwrap_err();
            assert!(e.message().contains(&kernel.to_string()), "{e}");
        }
        write_file(&outside.join("free")).unwrap();
    });
    // The check says so rather than passing.
    let report = sandbox::check(&t.0.join("root"), 993).unwrap();
    assert_eq!(report.passed(), kernel.abi() >= 4, "{report}");
    if kernel.abi() == 0 {
        assert!(report.to_string().contains("FAIL read a file outside ROOT"), "{report}");
        assert!(report.to_string().ends_with("sandbox check FAILED: 6 of 9 probes not as expected"), "{report}");
    }
}

#[test]
fn abi_1_and_moves_between_directories() {
    if !kernel_has(2) {
        return;
    }
    let t = Dir::new("abi1");
    let root = t.sub("root");
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::create_dir_all(root.join("cur")).unwrap();
    fs::write(root.join("tmp").join("m"), "m").unwrap();
    let maildir = Rules { read_write: vec![root.clone()], cross_dir_renames: true, ..Rules::default() };
    let backup = Rules { read_write: vec![root.clone()], ..Rules::default() };
    confined(move || {
        // A Maildir restore on ABI 1 would fail, so it is not confined at all...
        let status = sandbox::restrict_up_to(&maildir, Mode::Auto, 1).unwrap();
        assert_eq!(status.enforcement, Enforcement::NotEnforced);
        assert!(sandbox::restrict_up_to(&maildir, Mode::Require, 1).is_err());
        // ...which is why: ABI 1 refuses such a move.
        let status = sandbox::restrict_up_to(&backup, Mode::Auto, 1).unwrap();
        assert_eq!(status.enforcement, Enforcement::PartiallyEnforced);
        assert_eq!(errno(fs::rename(root.join("tmp").join("m"), root.join("cur").join("m"))), Some(libc::EXDEV));
    });
}

#[test]
fn off_confines_nothing() {
    let t = Dir::new("off");
    let (root, outside) = (t.sub("root"), t.sub("outside"));
    let (_l, port) = listener();
    let rules = Rules { read_write: vec![root], ..Rules::default() };
    confined(move || {
        let status = sandbox::restrict(&rules, Mode::Off).unwrap();
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
        for mode in [Mode::Auto, Mode::Require] {
            let e = sandbox::restrict(&rules, mode).unwrap_err();
            assert_eq!(e.message(), format!("sandbox: {}: No such file or directory", gone.display()));
        }
        // Nothing was confined by the failed attempts.
        fs::read_dir("/").unwrap();
    });
}

#[test]
fn a_file_as_a_rule() {
    if !kernel_has(3) {
        return;
    }
    let t = Dir::new("file-rule");
    let (root, etc) = (t.sub("root"), t.sub("etc"));
    fs::write(etc.join("ca.pem"), "pem").unwrap();
    fs::write(etc.join("other.pem"), "pem").unwrap();
    let rules = Rules { read_write: vec![root], read: vec![etc.join("ca.pem")], ..Rules::default() };
    confined(move || {
        sandbox::restrict(&rules, Mode::Auto).unwrap();
        assert_eq!(fs::read(etc.join("ca.pem")).unwrap(), b"pem");
        assert_eq!(errno(fs::read(etc.join("other.pem"))), EACCES);
        assert_eq!(errno(fs::OpenOptions::new().write(true).open(etc.join("ca.pem"))), EACCES);
    });
}

#[test]
fn the_kernel_here_is_fully_supported() {
    // What the project's test machines offer; elsewhere this only reports.
    let support = Support::detect();
    eprintln!("kernel: {support}");
    if support.abi() >= 4 {
        let status = confined(|| sandbox::restrict(&Rules::default(), Mode::Require).unwrap());
        assert_eq!(status.abi, support.abi());
        assert_eq!(status.to_string(), format!("landlock ABI {}: fully enforced", support.abi()));
    }
}
