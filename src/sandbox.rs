//! The landlock sandbox. Once a run has read everything it needs from elsewhere (key file,
//! `--ca-file`, password commands, name resolution), it confines itself: files only beneath
//! the archive root (or the restore input and output), TCP only to the IMAP ports, no program
//! execution. A malicious server that found a bug in the parsing code then cannot read
//! `~/.ssh`, overwrite files outside the archive or reach other hosts' services.
//!
//! What is requested, per ABI the kernel offers (newer rights are only asked for where the
//! kernel knows them, so one binary runs everywhere):
//!
//! * ABI 1: every filesystem right is handled, so anything not granted is denied. Beneath
//!   [`Rules::read_write`]: read files, list directories, write files, create regular files
//!   and directories, remove files and directories; plus moving files between directories
//!   (ABI 2) and truncating (ABI 3). Beneath [`Rules::read`]: read files, list directories.
//!   Never granted anywhere: executing, creating symlinks, devices, FIFOs or sockets, and
//!   device ioctls (ABI 5).
//! * ABI 4: TCP connect only to [`Rules::connect_tcp`]; binding (listening) to none.
//! * ABI 6: no connecting to abstract unix sockets nor signalling processes outside the
//!   sandbox.
//!
//! "Fully enforced" means the filesystem and TCP rules are: ABI 4 (Linux 6.7) or newer. The
//! ABI 5 and 6 additions are taken where offered without being required. Rights of ABI 7 and
//! later are not requested until tested on such a kernel: UDP (ABI 10) and stat, chmod,
//! chown, utimes and readlink (never handled by landlock) stay unconfined.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};

use crate::error::{describe_io, Error, IoContext, Result};

/// The newest ABI whose rights are requested (see the module documentation).
const NEWEST_ABI: u32 = 6;
/// The ABI that brings TCP rules; below it the sandbox is only partial.
const TCP_ABI: u32 = 4;

/// How hard to try (`--sandbox`, or `"sandbox"` in the config file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Confine as far as the kernel can; carry on unconfined on kernels without landlock.
    #[default]
    Auto,
    /// Fail unless fully enforced.
    Require,
    /// Confine nothing.
    Off,
}

impl Strictness {
    /// Parses `auto`, `require` or `off`; anything else is a usage error.
    pub fn parse(text: &str) -> Result<Strictness> {
        match text {
            "auto" => Ok(Strictness::Auto),
            "require" => Ok(Strictness::Require),
            "off" => Ok(Strictness::Off),
            _ => Err(Error::usage(format!("sandbox mode '{text}' is not one of auto, require, off"))),
        }
    }
}

/// What stays allowed after [`restrict`]. Every path must exist when [`restrict`] is called
/// (a missing one is an error): rules attach to the inodes found then, so they are normally
/// directories; to let a run create a file, pass the directory it will be created in. A file
/// may be passed too and gets the file-only subset of the rights. Symlinks in these paths
/// are followed; a symlink met later beneath an allowed directory is checked where it leads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Read, write, create, rename and remove beneath these.
    pub read_write: Vec<PathBuf>,
    /// Read files and list directories beneath these.
    pub read: Vec<PathBuf>,
    /// The only TCP ports that may be connected to (ABI 4); empty: none at all.
    pub connect_tcp: Vec<u16>,
    /// The run moves files from one directory to another (a Maildir restore: `tmp/` to
    /// `cur/`). Landlock ABI 1 always refuses that, so on such a kernel nothing is
    /// confined rather than the run failing.
    pub cross_dir_renames: bool,
}

/// What the running kernel offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Landlock with this ABI version.
    Abi(u32),
    /// Built in, but not enabled at boot (EOPNOTSUPP).
    Disabled,
    /// No usable landlock system call; the errno (ENOSYS: an old kernel, or an emulator
    /// such as qemu-user; EPERM: a seccomp filter).
    Unavailable(i32),
}

impl Support {
    /// Asks the kernel; restricts nothing.
    pub fn detect() -> Support {
        const CREATE_RULESET_VERSION: libc::c_uint = 1;
        // SAFETY: with a null attribute and size 0, this flag only returns the ABI version.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                CREATE_RULESET_VERSION,
            )
        };
        if v > 0 {
            return Support::Abi(u32::try_from(v).unwrap_or(u32::MAX));
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EOPNOTSUPP) => Support::Disabled,
            Some(errno) => Support::Unavailable(errno),
            None => Support::Unavailable(0),
        }
    }

    /// The ABI version, 0 without landlock.
    pub fn abi(self) -> u32 {
        match self {
            Support::Abi(v) => v,
            Support::Disabled | Support::Unavailable(_) => 0,
        }
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Support::Abi(v) => write!(f, "landlock ABI {v}"),
            Support::Disabled => {
                f.write_str("landlock is built into this kernel but not enabled (add it to the lsm= boot parameter)")
            }
            Support::Unavailable(libc::ENOSYS) => f.write_str(
                "no landlock (ENOSYS: a kernel older than 5.13 or built without it, or an emulator such as qemu-user)",
            ),
            Support::Unavailable(errno) => write!(
                f,
                "no landlock (landlock_create_ruleset: {}; a seccomp filter?)",
                describe_io(&io::Error::from_raw_os_error(*errno))
            ),
        }
    }
}

/// How much of the rules the kernel enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Filesystem and TCP rules both enforced.
    FullyEnforced,
    /// Some rules enforced; [`Status::gaps`] says which are not.
    PartiallyEnforced,
    /// Nothing confined.
    NotEnforced,
}

/// What [`restrict`] enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// How much.
    pub enforcement: Enforcement,
    /// The landlock ABI used: the kernel's, capped by [`restrict_up_to`]; 0 when none.
    pub abi: u32,
    /// What is not confined, and why; empty when fully enforced.
    pub gaps: Vec<String>,
}

impl Status {
    /// Filesystem and TCP rules both enforced.
    pub fn fully_enforced(&self) -> bool {
        self.enforcement == Enforcement::FullyEnforced
    }

    fn not_enforced(abi: u32, why: impl Into<String>) -> Status {
        Status { enforcement: Enforcement::NotEnforced, abi, gaps: vec![why.into()] }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.enforcement {
            Enforcement::FullyEnforced => write!(f, "landlock ABI {}: fully enforced", self.abi),
            Enforcement::PartiallyEnforced => {
                write!(f, "landlock ABI {}: partially enforced; not confined: {}", self.abi, self.gaps.join(", "))
            }
            Enforcement::NotEnforced => write!(f, "not sandboxed: {}", self.gaps.join("; ")),
        }
    }
}

/// Confinement at the moment a mode chooses, by the rules it gives. The command line's
/// driver builds it (it holds `--sandbox`) and is the one caller of [`restrict`]; a mode
/// that must connect before it can confine itself (a backup) takes one.
pub trait Confine {
    /// Confines the process to `rules` (see [`restrict`]); what was enforced.
    fn confine(&self, rules: &Rules) -> Result<Status>;
}

/// Confines the calling thread, and every thread and process it starts afterwards, to
/// `rules`. Call it on the main thread before any other thread exists: threads already
/// running stay unconfined (ABI 8's all-threads flag is deliberately not used, which is
/// also what lets [`check`] confine a probe thread only). There is no way back.
///
/// `Strictness::Auto` returns whatever could be enforced; `Strictness::Require` fails, before
/// confining anything, unless it can be fully enforced (and fails if enforcing then does);
/// `Strictness::Off` does nothing. A path of `rules` that cannot be opened is an error in both
/// of the first two modes, whatever the kernel.
pub fn restrict(rules: &Rules, mode: Strictness) -> Result<Status> {
    restrict_up_to(rules, mode, u32::MAX)
}

/// [`restrict`] as on a kernel offering at most landlock ABI `max_abi` (0: no landlock):
/// only the rights of that ABI are requested and the status is judged by it. For tests of
/// older kernels' behaviour on a new one.
pub fn restrict_up_to(rules: &Rules, mode: Strictness, max_abi: u32) -> Result<Status> {
    if mode == Strictness::Off {
        return Ok(Status::not_enforced(0, "switched off"));
    }
    let allowed = open_paths(rules)?;
    let support = Support::detect();
    let abi = support.abi().min(max_abi);
    let planned = if support.abi() == 0 {
        Status::not_enforced(0, support.to_string())
    } else if abi == 0 {
        Status::not_enforced(0, "landlock capped at ABI 0")
    } else if abi == 1 && rules.cross_dir_renames {
        Status::not_enforced(
            1,
            "landlock ABI 1 refuses moving files between directories, which this run does (needs ABI 2, Linux 5.19)",
        )
    } else {
        let mut gaps = Vec::new();
        if abi < 3 {
            gaps.push("truncating files (needs landlock ABI 3, Linux 6.2)".to_string());
        }
        if abi < TCP_ABI {
            gaps.push("TCP connections (needs landlock ABI 4, Linux 6.7)".to_string());
        }
        let enforcement = if gaps.is_empty() { Enforcement::FullyEnforced } else { Enforcement::PartiallyEnforced };
        Status { enforcement, abi, gaps }
    };
    let required = |status: &Status| {
        Error::runtime(format!("sandbox required (--sandbox require), but {status}; use --sandbox auto to run anyway"))
    };
    if mode == Strictness::Require && !planned.fully_enforced() {
        return Err(required(&planned));
    }
    if planned.enforcement == Enforcement::NotEnforced {
        return Ok(planned);
    }
    let status = match apply(&allowed, &rules.connect_tcp, abi) {
        Ok(RulesetStatus::FullyEnforced) => planned,
        Ok(RulesetStatus::PartiallyEnforced) => {
            let mut gaps = planned.gaps;
            gaps.push("part of the ruleset (landlock degraded it)".into());
            Status { enforcement: Enforcement::PartiallyEnforced, abi, gaps }
        }
        Ok(RulesetStatus::NotEnforced) => Status::not_enforced(abi, "landlock enforced nothing"),
        // Auto mode runs on rather than failing a backup over an exotic kernel refusal
        // (too many nested domains, say); nothing was confined, so nothing half-works.
        Err(why) => Status::not_enforced(abi, why),
    };
    if mode == Strictness::Require && !status.fully_enforced() {
        return Err(required(&status));
    }
    Ok(status)
}

/// A path of the rules, opened.
struct Allowed {
    fd: PathFd,
    is_dir: bool,
    write: bool,
}

fn open_paths(rules: &Rules) -> Result<Vec<Allowed>> {
    let rw = rules.read_write.iter().map(|p| (p, true));
    let ro = rules.read.iter().map(|p| (p, false));
    rw.chain(ro)
        .map(|(path, write)| {
            let is_dir = fs::metadata(path).at(path).map_err(|e| e.context("sandbox"))?.is_dir();
            let fd = PathFd::new(path).map_err(|e| Error::runtime(format!("sandbox: {}: {e}", path.display())))?;
            Ok(Allowed { fd, is_dir, write })
        })
        .collect()
}

/// Builds and enforces the ruleset for landlock ABI `abi` (at least 1).
fn apply(allowed: &[Allowed], ports: &[u16], abi: u32) -> std::result::Result<RulesetStatus, String> {
    let version = ABI::from(i32::try_from(abi.min(NEWEST_ABI)).unwrap_or(1));
    let handled = AccessFs::from_all(version);
    let read = handled & (AccessFs::ReadFile | AccessFs::ReadDir);
    let write = handled
        & (read
            | AccessFs::WriteFile
            | AccessFs::RemoveDir
            | AccessFs::RemoveFile
            | AccessFs::MakeDir
            | AccessFs::MakeReg
            | AccessFs::Refer
            | AccessFs::Truncate);
    let file_only = AccessFs::from_file(version);
    let fail = |e: landlock::RulesetError| format!("landlock: {e}");
    let mut ruleset = Ruleset::default().handle_access(handled).map_err(fail)?;
    if abi >= TCP_ABI {
        // Handling bind without any bind rule is what forbids listening.
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp).map_err(fail)?;
    }
    let scopes = Scope::from_all(version);
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes).map_err(fail)?;
    }
    let mut created = ruleset.create().map_err(fail)?;
    for a in allowed {
        let mut access: BitFlags<AccessFs> = if a.write { write } else { read };
        if !a.is_dir {
            access &= file_only;
        }
        created = created.add_rule(PathBeneath::new(&a.fd, access)).map_err(fail)?;
    }
    if abi >= TCP_ABI {
        for &port in ports {
            created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp)).map_err(fail)?;
        }
    }
    Ok(created.restrict_self().map_err(fail)?.ruleset)
}

/// One probe of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// What was tried.
    pub what: String,
    /// What happened: "denied", "allowed", or the error.
    pub outcome: String,
    /// Whether that is what a working sandbox does.
    pub as_expected: bool,
}

/// What [`check`] found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// What the kernel offers.
    pub support: Support,
    /// What the probe thread's [`restrict`] enforced.
    pub status: Status,
    /// Each probe, in order.
    pub probes: Vec<Probe>,
}

impl CheckReport {
    /// Fully enforced and every probe as expected.
    pub fn passed(&self) -> bool {
        self.status.fully_enforced() && self.probes.iter().all(|p| p.as_expected)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel: {}", self.support)?;
        writeln!(f, "sandbox: {}", self.status)?;
        for p in &self.probes {
            writeln!(f, "{} {}: {}", if p.as_expected { "ok  " } else { "FAIL" }, p.what, p.outcome)?;
        }
        let bad = self.probes.iter().filter(|p| !p.as_expected).count();
        if self.passed() {
            write!(f, "sandbox check passed: runs confine themselves as they should")
        } else if bad == 0 {
            write!(f, "sandbox check FAILED: the sandbox is not fully enforced on this kernel")
        } else {
            write!(f, "sandbox check FAILED: {bad} of {} probes not as expected", self.probes.len())
        }
    }
}

/// Proves the sandbox on this kernel (`--sandbox-check --dir ROOT`): a thread confines
/// itself to `root` (read-write) and TCP port `allowed_port`, as a backup would, then tries
/// to read, list and write outside `root`, to write through a symlink in `root` that points
/// outside, to create, truncate, rename, move and remove files inside `root`, to connect to
/// a listening local port other than `allowed_port`, to connect to `allowed_port`, and to
/// listen. Only that thread is confined (see [`restrict`]), so the caller carries on
/// unconfined, and everything the check created (a scratch directory
/// `smailarchiver-sandbox-check-PID-N` in the temporary directory, entries named
/// `.smailarchiver-sandbox-check-PID-N*` in `root`) is removed before it returns.
/// `root` must exist. Without landlock the probes run unconfined and the report fails.
pub fn check(root: &Path, allowed_port: u16) -> Result<CheckReport> {
    let root = root.canonicalize().at(root)?;
    if !root.is_dir() {
        return Err(Error::runtime(format!("{}: not a directory", root.display())));
    }
    let support = Support::detect();
    // Unique per call too: tests run checks concurrently in one process.
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let name = format!("smailarchiver-sandbox-check-{}-{}", std::process::id(), CALLS.fetch_add(1, Ordering::Relaxed));
    let outside = Scratch::outside(&root, &name)?;
    let secret = outside.0.join("secret");
    fs::write(&secret, "not for the sandbox\n").at(&secret)?;
    let name = format!(".{name}");
    let inside = Scratch(root.join(&name));
    let link = Scratch(root.join(format!("{name}-link")));
    // Some filesystems (FAT on a USB disk) have no symlinks: that probe is then skipped.
    let linked = std::os::unix::fs::symlink(&outside.0, &link.0).map_err(|e| describe_io(&e));
    // Listening on the allowed port (free and unprivileged, as in tests) makes its probe
    // a real connection; otherwise any answer but EACCES shows landlock let it through.
    let allowed_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, allowed_port)).ok();
    let denied_listener = (0..8)
        .filter_map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok())
        .find(|l| l.local_addr().is_ok_and(|a| a.port() != allowed_port))
        .ok_or_else(|| Error::runtime("sandbox check: cannot listen on a local TCP port"))?;
    let denied_port = denied_listener.local_addr().doing("sandbox check")?.port();
    let rules = Rules { read_write: vec![root.clone()], connect_tcp: vec![allowed_port], ..Rules::default() };
    let (outside_dir, inside_dir, link_path) = (outside.0.clone(), inside.0.clone(), link.0.clone());
    let listening = allowed_listener.is_some();
    let probe_thread = std::thread::Builder::new()
        .name("sandbox-check".into())
        .spawn(move || -> Result<(Status, Vec<Probe>)> {
            let status = restrict(&rules, Strictness::Auto)?;
            let mut probes = vec![
                denied(format!("read a file outside ROOT ({})", secret.display()), fs::read(&secret).map(drop)),
                denied(
                    format!("list a directory outside ROOT ({})", outside_dir.display()),
                    fs::read_dir(&outside_dir).map(drop),
                ),
                denied(
                    format!("create a file outside ROOT ({})", outside_dir.join("written").display()),
                    create(&outside_dir.join("written")),
                ),
            ];
            let through = link_path.join("written-through-symlink");
            probes.push(match linked {
                Ok(()) => denied(
                    format!("create a file through a symlink in ROOT pointing outside ({})", through.display()),
                    create(&through),
                ),
                Err(why) => Probe {
                    what: "create a file through a symlink in ROOT pointing outside".into(),
                    outcome: format!("skipped: cannot make a symlink in ROOT ({why})"),
                    as_expected: true,
                },
            });
            probes.push(allowed(
                format!("create, write, truncate, rename, read and remove files inside ROOT ({})", root.display()),
                work_inside(&inside_dir),
            ));
            let moved = move_between_dirs(&inside_dir);
            probes.push(if status.abi == 1 {
                // ABI 1 refuses this by design (see Rules::cross_dir_renames).
                let refused = matches!(&moved, Err(e) if e.raw_os_error() == Some(libc::EXDEV));
                Probe {
                    what: "move a file between directories inside ROOT".into(),
                    outcome: format!("{} (landlock ABI 1: a Maildir restore runs unconfined)", outcome(&moved)),
                    as_expected: refused,
                }
            } else {
                allowed("move a file between directories inside ROOT (Maildir restore)".into(), moved)
            });
            let _ = fs::remove_dir_all(&inside_dir);
            probes.push(denied(
                format!("TCP connect to 127.0.0.1:{denied_port} (listening, port not allowed)"),
                connect(denied_port),
            ));
            let reached = connect(allowed_port);
            probes.push(if listening {
                allowed(format!("TCP connect to 127.0.0.1:{allowed_port} (allowed port, listening)"), reached)
            } else {
                let passed = !matches!(&reached, Err(e) if e.raw_os_error() == Some(libc::EACCES));
                Probe {
                    what: format!("TCP connect to 127.0.0.1:{allowed_port} (allowed port)"),
                    outcome: match &reached {
                        Ok(()) => "allowed".into(),
                        Err(e) if passed => format!("allowed by landlock ({})", describe_io(e)),
                        Err(_) => "denied: the allowed port is blocked".into(),
                    },
                    as_expected: passed,
                }
            });
            probes.push(denied(
                "listen on a TCP port (127.0.0.1, any port)".into(),
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map(drop),
            ));
            Ok((status, probes))
        })
        .doing("sandbox check: starting the probe thread")?;
    let (status, probes) =
        probe_thread.join().map_err(|_| Error::runtime("sandbox check: the probe thread panicked"))??;
    drop((allowed_listener, denied_listener, link, inside, outside));
    Ok(CheckReport { support, status, probes })
}

/// A directory or symlink of [`check`]'s, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory outside `root` to probe with.
    fn outside(root: &Path, name: &str) -> Result<Scratch> {
        for base in [std::env::temp_dir(), PathBuf::from("/var/tmp"), PathBuf::from("/dev/shm")] {
            let Ok(base) = base.canonicalize() else { continue };
            let dir = base.join(name);
            if dir.starts_with(root) {
                continue;
            }
            let _ = fs::remove_dir_all(&dir);
            if fs::create_dir(&dir).is_ok() {
                return Ok(Scratch(dir));
            }
        }
        Err(Error::runtime(format!(
            "sandbox check: no writable temporary directory outside {} to probe with",
            root.display()
        )))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.0) {
            Ok(m) if m.is_dir() => drop(fs::remove_dir_all(&self.0)),
            Ok(_) => drop(fs::remove_file(&self.0)),
            Err(_) => {}
        }
    }
}

fn outcome(result: &io::Result<()>) -> String {
    match result {
        Ok(()) => "allowed".into(),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => "denied".into(),
        Err(e) => describe_io(e),
    }
}

fn denied(what: String, result: io::Result<()>) -> Probe {
    let as_expected = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EACCES));
    let mut outcome = outcome(&result);
    if result.is_ok() {
        outcome.push_str(": NOT CONFINED");
    }
    Probe { what, outcome, as_expected }
}

fn allowed(what: String, result: io::Result<()>) -> Probe {
    Probe { what, outcome: outcome(&result), as_expected: result.is_ok() }
}

fn create(path: &Path) -> io::Result<()> {
    File::create_new(path)?.write_all(b"probe\n")
}

fn connect(port: u16) -> io::Result<()> {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(2)).map(drop)
}

/// What a backup does in its folder directories, in miniature.
fn work_inside(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)?;
    let tmp = dir.join("message.tmp");
    let mut f = File::create_new(&tmp)?;
    f.write_all(b"probe message\n")?;
    f.set_len(6)?;
    f.sync_all()?;
    drop(f);
    let done = dir.join("message");
    fs::rename(&tmp, &done)?;
    let mut back = String::new();
    File::open(&done)?.read_to_string(&mut back)?;
    if back != "probe " {
        return Err(io::Error::other("read back something else"));
    }
    File::open(dir)?.sync_all()?;
    fs::remove_file(&done)
}

/// What a Maildir restore does: tmp/ to cur/.
fn move_between_dirs(dir: &Path) -> io::Result<()> {
    let (tmp, cur) = (dir.join("tmp"), dir.join("cur"));
    fs::create_dir_all(&tmp)?;
    fs::create_dir_all(&cur)?;
    create(&tmp.join("m"))?;
    fs::rename(tmp.join("m"), cur.join("m"))
}
