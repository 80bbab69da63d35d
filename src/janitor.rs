//! The janitor: a small process, forked before the sandbox closes, that at the end of a run
//! removes the directories the run made for an archive root (the root and its missing
//! parents) when no account of that root ever logged in. A run that never reached its
//! server (a typo in the port, a wrong password, a NAS without its network yet) must leave
//! nothing behind; but the sandbox confines the run to the root itself, and removing the
//! root is a change to its parent. The janitor, forked before, is not confined, and can do
//! nothing but that: remove those very directories, each only when it is empty (`rmdir`).
//!
//! It may be forked while other threads exist, so after the fork it calls only
//! async-signal-safe functions (close, read, rmdir, _exit) on memory prepared before. It
//! ends when its pipe closes: after the run's verdict, or when the run dies (then it removes
//! nothing).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use libc::{c_int, pid_t};

use crate::error::{Error, Result};

/// The running janitor.
pub struct Janitor {
    verdicts: Option<File>,
    pid: pid_t,
    roots: usize,
}

impl Janitor {
    /// Forks the janitor for `made`: per root, the directories made for it, parents first.
    pub fn start(made: &[Vec<PathBuf>]) -> Result<Janitor> {
        let paths: Vec<Vec<CString>> = made
            .iter()
            .map(|dirs| dirs.iter().filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok()).collect())
            .collect();
        let mut verdicts = vec![0u8; made.len()];
        let mut fds = [0 as c_int; 2];
        // SAFETY: a two-element array for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::runtime(format!(
                "starting the janitor: pipe: {}",
                crate::error::describe_io(&std::io::Error::last_os_error())
            )));
        }
        let (read_end, write_end) = (fds[0], fds[1]);
        // SAFETY: plain system calls; the child only runs `serve`, which never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: both ends were made above and are owned by nothing else.
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
            return Err(Error::runtime(format!("starting the janitor: fork: {}", crate::error::describe_io(&e))));
        }
        if pid == 0 {
            // SAFETY: the forked child; `serve` keeps to async-signal-safe calls.
            unsafe { serve(read_end, &paths, &mut verdicts) }
        }
        // SAFETY: our end of the pipe, owned from here on; theirs is closed.
        unsafe { libc::close(read_end) };
        // SAFETY: `write_end` is open and owned by nothing else: the File takes it over.
        let verdicts = unsafe { File::from_raw_fd(write_end) };
        Ok(Janitor { verdicts: Some(verdicts), pid, roots: made.len() })
    }

    /// Has the directories of each root whose `undo` is true removed (deepest first, each
    /// only if empty), and waits until that is done.
    pub fn finish(mut self, undo: &[bool]) {
        let bytes: Vec<u8> = (0..self.roots).map(|i| u8::from(undo.get(i).copied().unwrap_or(false))).collect();
        if let Some(mut pipe) = self.verdicts.take() {
            let _ = pipe.write_all(&bytes);
        }
        self.wait();
    }

    fn wait(&mut self) {
        self.verdicts = None;
        if self.pid > 0 {
            let mut status = 0;
            // SAFETY: our child; waited for once.
            while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
            self.pid = 0;
        }
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        // Without a verdict the janitor removes nothing.
        self.wait();
    }
}

/// The child: closes every descriptor but its pipe (it must not keep the credential
/// helper's pipes open, or the helper would never see its end), reads one verdict byte per
/// root, removes what it was told to, and exits.
unsafe fn serve(pipe: c_int, paths: &[Vec<CString>], verdicts: &mut [u8]) -> ! {
    let keep = pipe.max(2) + 1;
    for fd in 3..keep {
        if fd != pipe {
            libc::close(fd);
        }
    }
    if libc::syscall(libc::SYS_close_range, keep as libc::c_uint, libc::c_uint::MAX, 0 as libc::c_uint) != 0 {
        for fd in keep..4096 {
            libc::close(fd);
        }
    }
    let mut got = 0;
    while got < verdicts.len() {
        let n = libc::read(pipe, verdicts[got..].as_mut_ptr().cast(), verdicts.len() - got);
        if n > 0 {
            got += n as usize;
        } else if n == 0 || *libc::__errno_location() != libc::EINTR {
            break;
        }
    }
    for (dirs, &verdict) in paths.iter().zip(verdicts.iter()).take(got) {
        if verdict == 1 {
            for dir in dirs.iter().rev() {
                libc::rmdir(dir.as_ptr());
            }
        }
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_what_it_is_told_and_only_when_empty() {
        let base = std::env::temp_dir().join(format!("janitor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (a, b, c) = (base.join("a"), base.join("b"), base.join("c"));
        for d in [&a, &b, &c] {
            std::fs::create_dir_all(d.join("root")).unwrap();
        }
        std::fs::write(c.join("root/lock"), "").unwrap();
        let made = vec![vec![a.clone(), a.join("root")], vec![b.join("root")], vec![c.clone(), c.join("root")]];
        Janitor::start(&made).unwrap().finish(&[true, false, true]);
        assert!(!a.exists(), "removed, parent and all");
        assert!(b.join("root").is_dir(), "kept when not told");
        assert!(c.join("root/lock").is_file(), "never a directory that holds something");
        // Dropped without a verdict: nothing removed.
        drop(Janitor::start(&[vec![b.join("root")]]).unwrap());
        assert!(b.join("root").is_dir());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
