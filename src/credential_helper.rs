//! The credential helper: a small process, forked before the sandbox closes, that runs the
//! accounts' token and password commands whenever the confined backup asks. An access
//! token lasts about an hour; a first backup of a big mailbox takes longer, and its
//! reconnects need a fresh token, which the confined process cannot get itself: it may not
//! execute anything. A landlock domain applies to the thread that asks for it and to what
//! that thread starts afterwards, so the helper, forked before, is not confined. It is
//! forked first, before any key file, command or password prompt, and does nothing but run
//! one of the commands when asked.
//!
//! One helper serves the whole run (every account whose credential comes from a command);
//! a request names the account's slot. The run's threads share it, one request at a time.
//!
//! The helper may be forked while other threads exist, so after the fork it calls only
//! async-signal-safe functions (read, write, fork, execv, waitpid, ...) on memory prepared
//! before: it allocates nothing, takes no lock and cannot panic. Requests and answers are
//! bounded: a request is a two-byte slot number; an answer is a [`HEADER`]-byte header and
//! at most [`bounded::SECRET`] bytes of the command's output, which the helper wipes once
//! sent and the run once read. The helper ends when its request pipe closes: when the run
//! drops its [`CredentialHelper`] (which then waits for it, leaving no zombie), or when the
//! run dies (it is also killed with its parent, `PR_SET_PDEATHSIG`).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};

use libc::{c_char, c_int, pid_t};

use crate::account::Account;
use crate::bounded;
use crate::error::{Error, Result};
use crate::imap::auth::{Renewal, Wiped};
use crate::os::wipe;
use crate::secret::{self, CommandError, Secret};

/// An answer's header: kind (1 byte), code (4, little-endian), output length (4).
const HEADER: usize = 9;
/// The command ran and ended; the code is its wait status, the output follows.
const EXITED: u8 = 0;
/// The command printed more than [`bounded::SECRET`] bytes and was killed.
const TOO_LARGE: u8 = 1;
/// The command could not be started; the code is the errno.
const NOT_STARTED: u8 = 2;
/// The command's output could not be read; the code is the errno. It was killed.
const UNREADABLE: u8 = 3;
/// Where the shell is: `execv` does no `PATH` search (nor allocates, as one would).
const SHELL: &str = "/bin/sh";

/// The running helper; dropping it ends the helper and waits for it.
pub struct CredentialHelper {
    pipes: Mutex<Option<Pipes>>,
    pid: pid_t,
}

/// Our ends of the two pipes.
struct Pipes {
    request: File,
    answer: File,
}

impl CredentialHelper {
    /// Forks the helper; slot `i` of its requests runs `commands[i]` with `sh -c`. Call it
    /// before the sandbox closes.
    pub fn start(commands: &[&str]) -> Result<CredentialHelper> {
        let mut plan = Plan::new(commands);
        let fail = |what: &str| {
            let e = io::Error::last_os_error();
            Error::runtime(format!("starting the credential helper: {what}: {}", crate::error::describe_io(&e)))
        };
        let (request_out, request_in) = pipe().ok_or_else(|| fail("pipe"))?;
        let (answer_out, answer_in) = pipe().ok_or_else(|| fail("pipe"))?;
        // SAFETY: getpid reads nothing of ours and cannot fail.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child only runs `serve`, which keeps to async-signal-safe calls and
        // never returns, so no state another thread held at the fork is used in it.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(fail("fork"));
        }
        if pid == 0 {
            // SAFETY: the forked child; `serve` keeps to async-signal-safe calls.
            unsafe {
                // Its copy of our end would keep the request pipe open: it would never end.
                libc::close(request_in.as_raw_fd());
                libc::close(answer_out.as_raw_fd());
                serve(&mut plan, request_out.as_raw_fd(), answer_in.as_raw_fd(), parent)
            }
        }
        drop((request_out, answer_in));
        let pipes = Pipes { request: File::from(request_in), answer: File::from(answer_out) };
        Ok(CredentialHelper { pipes: Mutex::new(Some(pipes)), pid })
    }

    /// The helper's process id.
    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Runs the command of `slot` in the helper and returns the first line it printed;
    /// `what` names the secret in errors ("OAuth2 token"), which read as those of a
    /// command run directly.
    pub fn fetch(&self, slot: usize, what: &str) -> Result<Secret> {
        let mut pipes = self.pipes.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(p) = pipes.as_mut() else {
            return Err(Error::runtime(format!("cannot run the {what} command: the credential helper is gone")));
        };
        let slot = u16::try_from(slot).map_err(|_| Error::runtime(format!("no credential helper slot {slot}")))?;
        let mut header = [0u8; HEADER];
        let asked = p.request.write_all(&slot.to_le_bytes()).and_then(|()| p.answer.read_exact(&mut header));
        let gone = |e: &io::Error| {
            Error::runtime(format!(
                "cannot run the {what} command: the credential helper is gone ({})",
                crate::error::describe_io(e)
            ))
        };
        if let Err(e) = asked {
            *pipes = None;
            return Err(gone(&e));
        }
        let code = i32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        let len =
            usize::try_from(u32::from_le_bytes([header[5], header[6], header[7], header[8]])).unwrap_or(usize::MAX);
        if len > bounded::SECRET || header[0] > UNREADABLE || (header[0] != EXITED && len > 0) {
            // Whatever follows cannot be told from the next answer any more.
            *pipes = None;
            return Err(Error::runtime(format!("the credential helper gave a malformed answer for the {what}")));
        }
        let mut output = Wiped::zeroed(len);
        if let Err(e) = p.answer.read_exact(output.bytes_mut()) {
            *pipes = None;
            return Err(gone(&e));
        }
        drop(pipes);
        let failure = match header[0] {
            EXITED if ExitStatus::from_raw(code).success() => None,
            EXITED => Some(CommandError::Failed(ExitStatus::from_raw(code))),
            TOO_LARGE => Some(CommandError::TooLarge),
            NOT_STARTED => Some(CommandError::Start(io::Error::from_raw_os_error(code))),
            _ => Some(CommandError::Read(io::Error::from_raw_os_error(code))),
        };
        if let Some(f) = failure {
            return Err(f.error(what));
        }
        let line = secret::first_line(output.bytes());
        if line.is_empty() {
            return Err(Error::runtime(format!("the {what} command printed nothing")));
        }
        Ok(Secret::new(line))
    }
}

impl Drop for CredentialHelper {
    fn drop(&mut self) {
        // Closing the request pipe ends the helper; waiting for it leaves no zombie.
        drop(self.pipes.get_mut().unwrap_or_else(PoisonError::into_inner).take());
        let mut status = 0;
        // SAFETY: waits for our own child.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0 && errno() == libc::EINTR {}
    }
}

/// Each account's way to renew its credential during a run (`None` where it is fixed),
/// through one helper started now for all accounts whose credential comes from a command;
/// no helper when none does.
pub fn renewals(accounts: &[Account]) -> Result<Vec<Option<Renewal>>> {
    let commands: Vec<_> = accounts.iter().map(Account::credential_command).collect();
    let list: Vec<&str> = commands.iter().flatten().map(|c| c.command).collect();
    if list.is_empty() {
        return Ok(vec![None; accounts.len()]);
    }
    let helper = Arc::new(CredentialHelper::start(&list)?);
    let mut slot = 0;
    Ok(commands
        .iter()
        .map(|c| {
            c.as_ref().map(|c| {
                let (helper, mine, what) = (helper.clone(), slot, c.what());
                slot += 1;
                Renewal {
                    on_reconnect: c.oauth2,
                    every_login: false,
                    fetch: Arc::new(move |_| helper.fetch(mine, what)),
                }
            })
        })
        .collect())
}

/// A pipe whose both ends close on exec: (read end, write end).
fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: pipe2 fills both descriptors, which are then ours alone.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    Some(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn errno() -> c_int {
    // SAFETY: the calling thread's errno, an async-signal-safe read.
    unsafe { *libc::__errno_location() }
}

/// Everything the helper uses, made before the fork.
struct Plan {
    /// Owns what `argvs` points to.
    _strings: Vec<CString>,
    /// `sh -c COMMAND` for each slot; `None` for a command that cannot be passed (a NUL
    /// byte in it: its first run, before the fork, already failed the account).
    argvs: Vec<Option<[*const c_char; 4]>>,
    shell: CString,
    dev_null: CString,
    /// The command's output, and one byte more to tell an overlong one.
    output: Vec<u8>,
}

impl Plan {
    fn new(commands: &[&str]) -> Plan {
        let mut strings = vec![c"sh".to_owned(), c"-c".to_owned()];
        let mut argvs = Vec::new();
        for cmd in commands {
            argvs.push(CString::new(*cmd).ok().map(|c| {
                // The heap buffer of a CString does not move with it.
                let argv = [strings[0].as_ptr(), strings[1].as_ptr(), c.as_ptr(), std::ptr::null()];
                strings.push(c);
                argv
            }));
        }
        Plan {
            _strings: strings,
            argvs,
            shell: CString::new(SHELL).unwrap_or_default(),
            dev_null: c"/dev/null".to_owned(),
            output: vec![0; bounded::SECRET + 1],
        }
    }
}

/// The helper: answers requests until the request pipe closes, then exits.
///
/// # Safety
/// Only in the child of a fork, with the helper's ends of the pipes. Everything it calls
/// is async-signal-safe; it allocates nothing and indexes nothing unchecked.
unsafe fn serve(plan: &mut Plan, request: c_int, answer: c_int, parent: pid_t) -> ! {
    // Dies with the run even while a command keeps the pipes open.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::getppid() != parent {
        libc::_exit(0);
    }
    close_all_but(request, answer);
    // Signal handlers of the run mean nothing here (as after exec): Ctrl-C and a service
    // stop end the helper, and a closed answer pipe is an error, not a signal.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction != libc::SIG_IGN
            && old.sa_sigaction != libc::SIG_DFL
        {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    // An inherited "ignore" would reap the commands before waitpid could see them.
    libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    let shell = plan.shell.as_ptr();
    let dev_null = plan.dev_null.as_ptr();
    loop {
        let mut slot = [0u8; 2];
        if !read_all(request, &mut slot) {
            libc::_exit(0);
        }
        let argv = plan.argvs.get(usize::from(u16::from_le_bytes(slot))).copied().flatten();
        let (kind, code, len) = match argv {
            Some(argv) => run(shell, &argv, dev_null, &mut plan.output),
            None => (NOT_STARTED, libc::EINVAL, 0),
        };
        let [c0, c1, c2, c3] = code.to_le_bytes();
        let [s0, s1, s2, s3] = u32::try_from(len).unwrap_or(0).to_le_bytes();
        let header: [u8; HEADER] = [kind, c0, c1, c2, c3, s0, s1, s2, s3];
        let sent = write_all(answer, &header) && write_all(answer, plan.output.get(..len).unwrap_or(&[]));
        wipe(&mut plan.output);
        if !sent {
            libc::_exit(0);
        }
    }
}

/// Runs `sh -c COMMAND`, its output into `output`: (kind, code, output length).
unsafe fn run(
    shell: *const c_char,
    argv: &[*const c_char; 4],
    dev_null: *const c_char,
    output: &mut [u8],
) -> (u8, c_int, usize) {
    let mut fds: [c_int; 2] = [-1; 2];
    if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
        return (NOT_STARTED, errno(), 0);
    }
    let [from_command, to_us] = fds;
    let pid = libc::fork();
    if pid < 0 {
        let e = errno();
        libc::close(from_command);
        libc::close(to_us);
        return (NOT_STARTED, e, 0);
    }
    if pid == 0 {
        exec(shell, argv, dev_null, to_us);
    }
    libc::close(to_us);
    let mut len = 0;
    let mut failure = 0;
    // The whole output is read, as `secret::run_command` does; one byte past the cap
    // means it is too long.
    while len < output.len() {
        let n = libc::read(from_command, output.as_mut_ptr().add(len).cast(), output.len() - len);
        if n > 0 {
            len += n.unsigned_abs();
        } else if n == 0 {
            break;
        } else if errno() != libc::EINTR {
            failure = errno();
            break;
        }
    }
    libc::close(from_command);
    let too_large = len >= output.len();
    if too_large || failure != 0 {
        libc::kill(pid, libc::SIGKILL);
    }
    let mut status = 0;
    let waited = loop {
        if libc::waitpid(pid, &mut status, 0) == pid {
            break 0;
        }
        if errno() != libc::EINTR {
            break errno();
        }
    };
    if too_large {
        (TOO_LARGE, 0, 0)
    } else if failure != 0 {
        (UNREADABLE, failure, 0)
    } else if waited != 0 {
        (UNREADABLE, waited, 0)
    } else {
        (EXITED, status, len)
    }
}

/// The command's process: standard output to the pipe, input from /dev/null, error
/// output the run's; signals as `std::process::Command` leaves them. Never returns.
unsafe fn exec(shell: *const c_char, argv: &[*const c_char; 4], dev_null: *const c_char, to_us: c_int) -> ! {
    // dup2 onto itself would keep close-on-exec.
    let out = if to_us == 1 { libc::fcntl(1, libc::F_SETFD, 0) } else { libc::dup2(to_us, 1) };
    let null = libc::open(dev_null, libc::O_RDONLY);
    if out < 0 || null < 0 || (null != 0 && libc::dup2(null, 0) < 0) {
        libc::_exit(127);
    }
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    libc::execv(shell, argv.as_ptr());
    libc::_exit(127)
}

/// Closes every descriptor above standard error but `a` and `b`: the helper holds no
/// copy of the run's files (its archive lock) or sockets.
unsafe fn close_all_but(a: c_int, b: c_int) {
    let mut from: c_int = 3;
    for keep in [a.min(b), a.max(b)] {
        if keep >= from {
            close_range(from, keep - 1);
            from = keep + 1;
        }
    }
    close_range(from, c_int::MAX);
}

/// Closes `first..=last` (none when `last < first`).
unsafe fn close_range(first: c_int, last: c_int) {
    if last < first {
        return;
    }
    if libc::syscall(libc::SYS_close_range, first.unsigned_abs(), last.unsigned_abs(), 0) == 0 {
        return;
    }
    // Kernels before 5.9: one by one, up to the descriptor limit (at most 65536).
    let mut limit: libc::rlimit = std::mem::zeroed();
    let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
        c_int::try_from(limit.rlim_cur.min(65536)).unwrap_or(65536)
    } else {
        65536
    };
    for fd in first..=last.min(max) {
        libc::close(fd);
    }
}

/// Reads exactly `buf.len()` bytes; false at the end of input or on an error.
unsafe fn read_all(fd: c_int, buf: &mut [u8]) -> bool {
    let (at, len) = (buf.as_mut_ptr(), buf.len());
    all(len, |done| libc::read(fd, at.add(done).cast(), len - done))
}

/// Writes all of `buf`; false on an error (the run has gone).
unsafe fn write_all(fd: c_int, buf: &[u8]) -> bool {
    let (at, len) = (buf.as_ptr(), buf.len());
    all(len, |done| libc::write(fd, at.add(done).cast(), len - done))
}

/// Repeats `step(done)`, a read or write from offset `done`, until `len` bytes are moved;
/// false when it moves nothing or fails (other than being interrupted).
unsafe fn all(len: usize, mut step: impl FnMut(usize) -> isize) -> bool {
    let mut done = 0;
    while done < len {
        let n = step(done);
        if n > 0 {
            done += n.unsigned_abs();
        } else if n == 0 || errno() != libc::EINTR {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_a_command_run_directly_would() {
        let helper = CredentialHelper::start(&[
            "printf 'tok-1\\r\\nmore'",
            "echo oops >&2; exit 3",
            "yes",
            "true",
            "kill -9 $$",
        ])
        .unwrap();
        assert_eq!(helper.fetch(0, "OAuth2 token").unwrap().expose(), "tok-1");
        assert_eq!(
            helper.fetch(1, "OAuth2 token").unwrap_err().to_string(),
            "the OAuth2 token command failed (exit status: 3)"
        );
        assert_eq!(
            helper.fetch(2, "OAuth2 token").unwrap_err().to_string(),
            secret::run_command("yes", "OAuth2 token").unwrap_err().to_string()
        );
        assert_eq!(
            helper.fetch(3, "email password").unwrap_err().to_string(),
            "the email password command printed nothing"
        );
        assert_eq!(
            helper.fetch(4, "OAuth2 token").unwrap_err().to_string(),
            "the OAuth2 token command failed (signal: 9 (SIGKILL))"
        );
        assert!(helper.fetch(5, "OAuth2 token").unwrap_err().to_string().contains("Invalid argument"));
        // Still answering after all that.
        assert_eq!(helper.fetch(0, "OAuth2 token").unwrap().expose(), "tok-1");
    }

    #[test]
    fn dropping_it_ends_the_helper() {
        let file = File::open("Cargo.toml").unwrap();
        let helper = CredentialHelper::start(&["echo x"]).unwrap();
        let pid = pid_t::try_from(helper.pid()).unwrap();
        assert_eq!(helper.fetch(0, "token").unwrap().expose(), "x");
        // It holds the standard descriptors and its two pipes, none of the run's files.
        let held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(held.len() <= 5, "{held:?}");
        assert!(!held.contains(&file.as_raw_fd().to_string()), "{held:?}");
        drop(helper);
        // Reaped: no such child any more (a zombie would still be waitable).
        let mut status = 0;
        // SAFETY: `status` is a live int for waitpid to write; WNOHANG never blocks.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) }, -1);
        assert_eq!(errno(), libc::ECHILD);
    }
}
