//! Where things go beneath an archive root: the root's records of which account and mailbox
//! own each directory ([`registry`], kept in the log of [`records_log`]), what a path given
//! on the command line names ([`scope`]), and the root's lock file ([`lock`]).

pub mod lock;
pub mod records_log;
pub mod registry;
pub mod scope;
