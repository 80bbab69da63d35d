//! Runs the binary on a pseudo-terminal, as a person at a terminal would: its standard
//! input, output and error are the terminal (which is also its controlling one), what it
//! writes is collected, and answers are typed when the expected text shows.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child process on a pseudo-terminal.
pub struct Pty {
    writer: File,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    /// How much of the output [`Pty::expect`] has consumed.
    seen: usize,
}

impl Pty {
    /// Starts `command` on a new pseudo-terminal of 200 columns.
    pub fn spawn(command: &mut Command) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize { ws_row: 50, ws_col: 200, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty fills the two descriptors; the other arguments may be null.
        let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both are fresh descriptors that nothing else owns.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup of the terminal"));
        command.stdin(stdio(&slave)).stdout(stdio(&slave)).stderr(stdio(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("starting the binary on a terminal");
        drop(slave);
        let mut reader = File::from(master.try_clone().expect("dup of the terminal"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child and its descendants closed the terminal.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { writer: File::from(master), child, output, seen: 0 }
    }

    /// Everything the child wrote so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits (up to 30 s) for `needle` in what the child writes after what earlier calls
    /// consumed; returns the text up to and including it.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text();
            if let Some(at) = text.get(self.seen..).and_then(|rest| rest.find(needle)) {
                let upto = self.seen + at + needle.len();
                let found = text[self.seen..upto].to_string();
                self.seen = upto;
                return found;
            }
            if Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) && !self.reading() {
                panic!("{needle:?} never came; the terminal shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether output may still come (the child has not ended, or ended moments ago).
    fn reading(&self) -> bool {
        let before = self.output.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(100));
        self.output.lock().unwrap().len() != before
    }

    /// Types `line` and Enter.
    pub fn send(&mut self, line: &str) {
        self.writer.write_all(format!("{line}\r").as_bytes()).expect("typing on the terminal");
    }

    /// Waits for the child's end (up to 60 s); returns its exit code and all it wrote.
    pub fn wait(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the child") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the child did not end; the terminal shows:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // What it wrote last may still be on its way through the terminal.
        while self.reading() {}
        (status.code().unwrap_or(-1), self.text())
    }
}
