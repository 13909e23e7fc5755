//! bulwark's shared model, written once for every binary.
//!
//! Parsing (config, policy) does no I/O beyond reading the file it is given; resolving
//! (state directory, repositories) is a separate step, so `--help` works anywhere.
#![forbid(unsafe_code)]

pub mod config;
pub mod env;
pub mod event;
pub mod git;
pub mod jobs;
pub mod journal;
pub mod manifest;
pub mod output;
pub mod policy;
pub mod process;
pub mod redact;
pub mod report;
pub mod retry;
pub mod state;

pub use config::{Config, ConfigError, LoadedConfig, Role};
pub use event::EventKind;
pub use journal::{Event, Journal, JournalError};
pub use report::{CliError, ExitKind};
