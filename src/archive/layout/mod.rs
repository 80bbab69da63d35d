//! Where things go beneath an archive root: the root's records of which account and mailbox
//! own each directory ([`registry`], kept in the log of [`records_log`]), what a path given
//! on the command line names ([`scope`]), and the root's lock file ([`lock`]).

/// The tool's own directory in an archive root.
pub const META_DIR: &str = ".smailarchiver";
/// Where messages are written in [`META_DIR`] before they are renamed into their folder
/// directory (the same file system, so the rename is atomic).
pub const TMP_DIR: &str = "tmp";
/// The metadata journals' directory in [`META_DIR`]: one directory per user directory.
pub const JOURNALS_DIR: &str = "meta";

pub mod account;
pub mod lock;
pub mod naming;
pub mod records_log;
pub mod registry;
pub mod scope;
