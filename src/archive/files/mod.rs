//! Writing and reading the archive's files: a file appears under its final name only
//! whole and durable ([`atomic`]), and files are read ahead of the caller on a thread of
//! their own ([`readahead`]).

pub mod atomic;
pub mod readahead;
