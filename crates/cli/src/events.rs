//! `bulwark events`: read (and follow) the event journal.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use bulwark_core::{CliError, Event, Journal};

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// One JSON object per line instead of plain lines.
    #[arg(long)]
    pub json: bool,
    /// Only this kind: exact (`hook.blocked`) or a prefix ending at a dot (`drift`, `rollback`).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only the last N matching events.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Keep printing new events as they are written.
    #[arg(long)]
    pub follow: bool,
    /// Read the journal this server repository's hooks keep themselves (its `[server]
    /// state_dir`, else `<git-dir>/bulwark/state`: where events go when the hooks run with no
    /// other state directory, as under a web server), if there is one.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<std::path::PathBuf>,
}

fn matches(kind_filter: Option<&str>, event: &Event) -> bool {
    match kind_filter {
        None => true,
        Some(k) => event.kind == k || event.kind.as_str().strip_prefix(k).is_some_and(|rest| rest.starts_with('.')),
    }
}

/// Prints events; `Ok(false)` when the reader went away (`| head`), which is not an error
/// but ends `--follow`.
fn print(events: &[Event], json: bool) -> Result<bool, CliError> {
    let mut out = std::io::stdout().lock();
    for event in events {
        let line = if json {
            let mut value = serde_json::to_value(event).map_err(|e| CliError::operational(e.to_string()))?;
            bulwark_core::redact::clean_value(&mut value);
            value.to_string()
        } else {
            event.to_line()
        };
        if writeln!(out, "{line}").is_err() {
            return Ok(false);
        }
    }
    Ok(out.flush().is_ok())
}

pub(crate) fn events(args: &EventsArgs) -> Result<ExitCode, CliError> {
    let own = match &args.repo {
        Some(path) => crate::repo::server_journal(&crate::repo::RepoPaths::resolve(path)?.common_dir),
        None => None,
    };
    let journal = match own {
        Some(journal) => journal,
        None => Journal::open_default()?,
    };
    let (all, offset) = journal.read_from(0)?;
    let mut selected: Vec<Event> = all.into_iter().filter(|e| matches(args.kind.as_deref(), e)).collect();
    if let Some(n) = args.last {
        let skip = selected.len().saturating_sub(n);
        selected.drain(..skip);
    }
    let open = print(&selected, args.json)?;
    if !args.follow || !open {
        return Ok(ExitCode::SUCCESS);
    }
    // Follows the journal across rotation and truncation (a new file is read from its start).
    let mut follower = journal.follow_from(offset)?;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let new = follower.poll()?;
        let new: Vec<Event> = new.into_iter().filter(|e| matches(args.kind.as_deref(), e)).collect();
        if !print(&new, args.json)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> Event {
        Event {
            id: 1,
            ts: bulwark_core::journal::now(),
            kind: kind.into(),
            host: String::new(),
            fields: serde_json::Map::new(),
        }
    }

    #[test]
    fn kind_filter_is_exact_or_dotted_prefix() {
        assert!(matches(Some("drift"), &event("drift.found")));
        assert!(matches(Some("drift.found"), &event("drift.found")));
        assert!(!matches(Some("drift"), &event("driftwood.x")));
        assert!(!matches(Some("drift.found"), &event("drift.resolved")));
    }
}
