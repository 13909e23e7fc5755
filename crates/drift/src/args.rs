//! The command line's shape: `bulwark-drift scan` and `bulwark-drift watch` (parsed, no I/O).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Finds hand edits, stray commits, stashes and tampered hooks on production checkouts.
#[derive(Debug, Parser)]
#[command(name = "bulwark-drift", version, about, long_about = None)]
pub struct Args {
    /// Config file (default: $BULWARK_CONFIG, then /etc/bulwark/bulwark.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan every checkout under the roots once: one line per finding, exit 1 if any.
    Scan(ScanArgs),
    /// Scan at start, then re-scan what file-system events touch, and everything at a
    /// fixed interval; runs until stopped.
    Watch(WatchArgs),
}

/// `bulwark-drift scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Directories to search for checkouts (default: `[drift] roots`).
    #[arg(value_name = "ROOT")]
    pub roots: Vec<PathBuf>,
    /// One JSON object per finding, then a summary object.
    #[arg(long)]
    pub json: bool,
    /// Refresh the remote-tracking branches first (`git fetch`, no prompts, with a timeout).
    #[arg(long)]
    pub fetch: bool,
    /// Notify the `[[notify]]` targets of what is new or resolved since the last scan.
    #[arg(long)]
    pub alert: bool,
    /// Threads for the scan: checkouts scanned at once, or shared inside fewer big ones
    /// (default: `[drift] jobs`, else one per CPU up to 8).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// `bulwark-drift watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Directories to search for checkouts (default: `[drift] roots`).
    #[arg(value_name = "ROOT")]
    pub roots: Vec<PathBuf>,
    /// One JSON object per change.
    #[arg(long)]
    pub json: bool,
    /// Notify the `[[notify]]` targets of what is new or resolved.
    #[arg(long)]
    pub alert: bool,
    /// Threads for full scans and re-scans (as `scan --jobs`).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}
