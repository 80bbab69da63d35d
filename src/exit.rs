//! The process's exit codes: what [`crate::error::Error`] maps to and what a signal
//! stops the run with, in one place of their own so that neither the errors nor the
//! signal handling has to ask the other.

/// Exit code when everything worked.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit code for runtime failures (a file, the network, a bad archive).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: i32 = 2;

/// The exit code of a run stopped by signal `number`, as shells report it: 128 plus the
/// number (130 for SIGINT, 143 for SIGTERM).
pub const fn of_signal(number: i32) -> i32 {
    128 + number
}
