//! The command line: flags, the JSON config, the wizard, the generated docs, and the run
//! that turns them into work for the library's modes.

pub mod completions;
pub mod config;
pub mod flags;
pub mod manpage;
pub mod print;
pub mod resolve;
pub mod run;
pub mod run_report;
pub mod wizard;
