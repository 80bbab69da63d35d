//! Thin safe wrappers over the system calls std does not offer: directories held open by
//! descriptor ([`dir`]), file syncing and times ([`file`]), random bytes, the terminal, and
//! the one wipe of secrets in memory ([`wipe`]).

pub mod dir;
pub mod file;

use std::io;
use std::os::fd::AsRawFd;

/// Fills `buf` from the kernel's CSPRNG; a system call, so it works inside the sandbox.
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe a live, writable slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(())
}

/// The width in columns of the terminal on `fd`, if it is one that says.
pub fn terminal_columns(fd: &impl AsRawFd) -> Option<usize> {
    // SAFETY: winsize is plain data, filled by the ioctl when it succeeds.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which is valid.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (r == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// Turns terminal echo off on `fd` until the guard is dropped.
pub struct EchoOff<'a, F: AsRawFd> {
    file: &'a F,
    saved: libc::termios,
}

impl<'a, F: AsRawFd> EchoOff<'a, F> {
    /// Disables echo (keeping the newline echo, so the prompt line ends cleanly).
    pub fn new(file: &'a F) -> io::Result<Self> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes one termios through a pointer to a live one.
        if unsafe { libc::tcgetattr(file.as_raw_fd(), &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: tcsetattr only reads the termios, which is live for the call.
        if unsafe { libc::tcsetattr(file.as_raw_fd(), libc::TCSANOW, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // A run ended by a signal puts the echo back too.
        crate::interrupt::echo_off(file.as_raw_fd(), saved);
        Ok(EchoOff { file, saved })
    }
}

impl<F: AsRawFd> Drop for EchoOff<'_, F> {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new` on the same descriptor.
        unsafe { libc::tcsetattr(self.file.as_raw_fd(), libc::TCSANOW, &self.saved) };
        crate::interrupt::echo_on();
    }
}

/// Overwrites `bytes` with zeros, in a way the compiler may not leave out as a dead store:
/// keys, passwords and tokens do not outlive their use in freed memory.
pub fn wipe(bytes: &mut [u8]) {
    for b in bytes {
        // SAFETY: `b` is a valid, aligned, exclusive reference to one byte; the write is
        // volatile only so that it is not optimised away.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

/// [`wipe`] for text: zeros are valid UTF-8, so the string stays a string.
pub fn wipe_str(text: &mut str) {
    // SAFETY: only zero bytes are written through the slice, and a run of NULs is valid
    // UTF-8, so `text` is valid UTF-8 again when the borrow ends.
    wipe(unsafe { text.as_bytes_mut() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipes_leave_zeros_and_text_stays_text() {
        let mut key = [0xa5u8; 32];
        wipe(&mut key);
        assert_eq!(key, [0u8; 32]);
        let mut password = String::from("pässword");
        let len = password.len();
        wipe_str(password.as_mut_str());
        assert_eq!(password, "\0".repeat(len));
    }
}
