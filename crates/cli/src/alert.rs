//! `bulwark alert --event ID`: send one journaled event to the configured notifiers.
//!
//! `bulwark-hook` has no HTTP stack (it starts on every commit), so when glass is broken it
//! journals `breakglass.used` and starts this command in the background to deliver it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulwark_alert::{Message, Notifier};
use bulwark_core::EventKind;
use bulwark_core::config::{Config, Lookup};
use bulwark_core::data;
use bulwark_core::{CliError, Event, Journal};

use crate::repo::RepoPaths;

#[derive(Debug, clap::Args)]
pub struct AlertArgs {
    /// The id of the event to send (see `bulwark events`).
    #[arg(long, value_name = "ID")]
    pub event: u64,
    /// The repository whose `bulwark.toml` applies (default: here).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
}

fn message_for(event: &Event) -> Message {
    let who = event.str("user").or(event.str("identity")).filter(|u| !u.is_empty()).unwrap_or("someone");
    let title = match &event.kind {
        EventKind::BreakglassUsed => format!(
            "bulwark: glass broken on {} by {who}: {}",
            event.host,
            bulwark_core::output::escape_controls(event.str("reason").unwrap_or("no reason given"))
        ),
        kind => format!("bulwark: {kind} on {}", event.host),
    };
    let mut text = format!("{title}\n\n");
    if let Some(refused) = event.str("refused").or(event.str("message")) {
        let _ = writeln!(text, "What bulwark refused and let through: {refused}");
    }
    let _ = writeln!(text, "Event: {}", event.to_line());
    Message::new(event.kind.as_str(), title, text)
        .with_fields(serde_json::to_value(event).unwrap_or(serde_json::Value::Null))
}

pub(crate) fn alert(args: &AlertArgs, explicit: Option<&Path>) -> Result<ExitCode, CliError> {
    let journal = Journal::open_default()?;
    let event = journal.read_all()?.into_iter().find(|e| e.id == args.event).ok_or_else(|| {
        CliError::usage(format!("no event #{} in {}", args.event, journal.path().display()))
            .hint("list events with `bulwark events`")
    })?;
    let repo = RepoPaths::resolve(args.repo.as_deref().unwrap_or(Path::new("."))).ok();
    let lookup = Lookup { explicit, git_dir: repo.as_ref().map(|r| r.common_dir.as_path()) };
    let config = Config::load(&lookup)?.config;
    if config.notify.is_empty() {
        data!("no [[notify]] configured; event #{} not sent", event.id);
        return Ok(ExitCode::SUCCESS);
    }
    let notifier = Notifier::from_config(&config.notify)
        .map_err(|e| CliError::usage(format!("invalid notifier: {e}")).hint("fix [[notify]] in the config"))?
        .with_journal(journal);
    let report = notifier.send(&message_for(&event));
    for target in &report.delivered {
        data!("sent event #{} to {target}", event.id);
    }
    if report.all_delivered() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut err = CliError::operational(format!("event #{} could not be delivered", event.id));
    for (target, why) in &report.failed {
        err = err.cause(format!("{target}: {why}"));
    }
    Err(err.hint(format!("retry with `bulwark alert --event {}`", event.id)))
}
