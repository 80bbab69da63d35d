//! SIGINT and SIGTERM: a clean stop within about a second. The signals are blocked in
//! every thread and taken by one thread of their own, which sets a flag the loops check
//! between messages (the network reader wakes every [`TICK`] to look at it). A run that
//! has not wound down a second later is ended by that thread itself: it removes the
//! temporary files still open, has the application write what it must (the one line,
//! the report), restores the terminal and exits. A second signal ends the run at once
//! the same way.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// How often a blocked network read wakes to look at the flag.
pub const TICK: Duration = Duration::from_millis(200);

/// How long a run has to wind down by itself after the signal.
const GRACE: Duration = Duration::from_secs(1);

/// The signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Set by whoever writes the run's last words (the application, or the forced exit).
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// Temporary files being written, removed by a forced exit.
static TEMP_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// A terminal whose echo is off (a password prompt), restored by a forced exit.
static TERMINAL: Mutex<Option<(i32, libc::termios)>> = Mutex::new(None);
/// What the application says and writes when the run is ended for it.
static LAST_WORDS: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Whether a stop was asked for.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The exit code of the signal received (128 + its number: 130 for SIGINT, 143 for
/// SIGTERM); 1 if none was.
pub fn exit_code() -> i32 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => crate::exit::EXIT_FAILURE,
        sig => crate::exit::of_signal(sig),
    }
}

/// The signal's name, for the line the run ends with.
pub fn signal_name() -> &'static str {
    match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Takes the last word: true for the first caller only. The application calls it before
/// its final output, so a forced exit does not print the same line again.
pub fn claim() -> bool {
    !CLAIMED.swap(true, Ordering::SeqCst)
}

/// Blocks SIGINT and SIGTERM in this thread and every thread it starts, and starts the
/// thread that takes them. `last_words` runs if the run has to be ended for it. Call it
/// before any other thread starts.
pub fn install(last_words: Box<dyn Fn() + Send + Sync>) -> std::io::Result<()> {
    let _ = LAST_WORDS.set(last_words);
    let set = signal_set();
    // SAFETY: `set` is an initialised signal set; the old mask is not asked for.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    std::thread::Builder::new().name("signals".into()).spawn(move || take_signals(set))?;
    Ok(())
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

fn take_signals(set: libc::sigset_t) {
    loop {
        let mut sig = 0;
        // SAFETY: both pointers are to live locals; the signals are blocked in every thread.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            std::thread::spawn(|| {
                std::thread::sleep(GRACE);
                if claim() {
                    end_now();
                }
            });
        } else if claim() {
            end_now();
        }
    }
}

/// The forced exit: nothing half-written stays, the last words are said, the terminal is
/// as it was.
fn end_now() -> ! {
    for path in held(&TEMP_FILES).drain(..) {
        let _ = std::fs::remove_file(path);
    }
    if let Some((fd, saved)) = held(&TERMINAL).take() {
        // SAFETY: restores settings read from the same descriptor by `EchoOff`.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    if let Some(words) = LAST_WORDS.get() {
        words();
    }
    // SAFETY: ends the process without running other threads' destructors, which may
    // be blocked in a read.
    unsafe { libc::_exit(exit_code()) }
}

fn held<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Notes a temporary file being written, for a forced exit to remove.
pub fn track(path: &Path) {
    held(&TEMP_FILES).push(path.to_path_buf());
}

/// The temporary file is gone or has its final name.
pub fn untrack(path: &Path) {
    let mut files = held(&TEMP_FILES);
    if let Some(i) = files.iter().rposition(|p| p == path) {
        files.swap_remove(i);
    }
}

/// Notes a terminal whose echo was turned off, with its settings before.
pub fn echo_off(fd: i32, saved: libc::termios) {
    *held(&TERMINAL) = Some((fd, saved));
}

/// The terminal's echo is back.
pub fn echo_on() {
    *held(&TERMINAL) = None;
}
