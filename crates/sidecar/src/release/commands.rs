//! `bulwark-sidecar releases` and `bulwark-sidecar promote`, and the release part of `status`.

use std::process::ExitCode;

use bulwark_core::config::{Config, ReleaseConfig, ServiceConfig};
use bulwark_core::jobs::Job;
use bulwark_core::output::printable;
use bulwark_core::{CliError, Journal};
use serde_json::{Value, json};

use super::store::{Promoted, Store};
use crate::engine::{self, ServiceFile as _};
use crate::rollback::ServiceState;
use crate::rollback::gitops::short;

#[derive(Debug, clap::Args)]
pub struct ReleasesArgs {
    /// The `[[service]]` name (it must have `[service.release]`).
    #[arg(long)]
    pub service: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The `[[service]]` name (it must have `[service.release]`).
    #[arg(long)]
    pub service: String,
    /// The release to switch `current` to: its commit (or a unique prefix of it).
    #[arg(long, value_name = "COMMIT")]
    pub release: String,
    /// Do it: switch `current` and run the deploy command. Without it, say what would be
    /// done and exit 2, changing nothing.
    #[arg(long)]
    pub confirm_destructive: bool,
}

fn release_service<'a>(config: &'a Config, name: &str) -> Result<(&'a ServiceConfig, &'a ReleaseConfig), CliError> {
    let service = crate::service(config, name)?;
    match &service.release {
        Some(release) => Ok((service, release)),
        None => Err(CliError::usage(format!(
            "service `{name}` has no [service.release] section: it deploys from its checkout"
        ))
        .hint("add [service.release] with `dir`, `current` and `build` (see docs/sidecar.md)")),
    }
}

fn store_error(err: &impl std::fmt::Display) -> CliError {
    CliError::operational(format!("cannot read the releases: {err}"))
}

/// `releases --service S [--json]`: every release of the service, newest first.
pub fn cmd_releases(config: &Config, args: &ReleasesArgs) -> Result<ExitCode, CliError> {
    let (service, release) = release_service(config, &args.service)?;
    let store = Store { config: release };
    let state_dir = bulwark_core::state::state_dir()?;
    let known = ServiceState::load(&state_dir, &service.name).map_err(|e| crate::work_error(&e))?;
    let current = store.current().map_err(|e| store_error(&e))?;
    let listed = store.list().map_err(|e| store_error(&e))?;
    let rows: Vec<Value> = listed
        .iter()
        .map(|l| {
            json!({
                "release": l.name,
                "path": store.path(&l.name),
                "published": l.record.is_some(),
                "commit": l.record.as_ref().map(|r| &r.commit),
                "built": l.record.as_ref().map(|r| &r.built),
                "digest": l.record.as_ref().map(|r| &r.digest),
                "serves": l.record.as_ref().map(|r| &r.serves),
                "current": current.as_deref() == Some(l.name.as_str()),
                "known_good": known.known_good_release.as_deref() == Some(l.name.as_str()),
            })
        })
        .collect();
    if args.json {
        let value = json!({
            "service": service.name,
            "dir": release.dir,
            "current": current,
            "known_good_release": known.known_good_release,
            "releases": rows,
        });
        bulwark_core::data!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    if listed.is_empty() {
        bulwark_core::data!("{}: no releases in {}", service.name, release.dir.display());
    }
    for row in &rows {
        let mut marks = Vec::new();
        if row["current"] == true {
            marks.push("current");
        }
        if row["known_good"] == true {
            marks.push("known good");
        }
        if row["published"] == false {
            marks.push("not published");
        }
        let name = row["release"].as_str().unwrap_or_default();
        let built = row["built"].as_str().unwrap_or("-");
        let digest = row["digest"].as_str().map_or("-", |d| d.get(..19).unwrap_or(d));
        let marks = if marks.is_empty() { String::new() } else { format!(" ({})", marks.join(", ")) };
        bulwark_core::data!(
            "{}",
            printable(&format!("{}: {} built {built} {digest}{marks}", service.name, short(name)))
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `promote --service S --release C [--confirm-destructive]`: switch `current` to a kept,
/// published release by hand (compare-and-set against what `current` is now), then run the
/// deploy command. A person choosing a release vouches for it: it becomes the last
/// known-good, so a later failed deploy goes back to it.
pub fn cmd_promote(config: &Config, args: &PromoteArgs) -> Result<ExitCode, CliError> {
    let (service, release) = release_service(config, &args.service)?;
    let store = Store { config: release };
    let listed = store.list().map_err(|e| store_error(&e))?;
    let matches: Vec<_> =
        listed.iter().filter(|l| l.record.is_some() && l.name.starts_with(args.release.as_str())).collect();
    let target = match (matches.as_slice(), args.release.is_empty()) {
        ([one], false) => (*one).clone(),
        ([], _) | (_, true) => {
            return Err(CliError::usage(format!(
                "no published release of `{}` is named `{}` (in {})",
                service.name,
                args.release,
                release.dir.display()
            ))
            .hint(format!("list them: bulwark-sidecar releases --service {}", service.name)));
        }
        (many, false) => {
            return Err(CliError::usage(format!("`{}` names {} releases", args.release, many.len()))
                .hint("give more digits of the commit"));
        }
    };
    let record = target.record.clone().unwrap_or_default();
    let current = store.current().map_err(|e| store_error(&e))?;
    let deploy = service.deploy.0.join(" ");
    let plan = format!(
        "switch {} from {} to {} (built {}), then run the deploy command `{deploy}`",
        release.current.display(),
        current.as_deref().map_or_else(|| "nothing".to_owned(), |c| format!("release {}", short(c))),
        store.path(&target.name).display(),
        record.built,
    );
    if !args.confirm_destructive {
        bulwark_core::data!("{}", printable(&format!("would {plan}")));
        return Err(CliError::usage("promote changes what production runs: nothing was changed")
            .hint("run it again with --confirm-destructive to do it"));
    }
    let state_dir = bulwark_core::state::state_dir()?;
    let how = store.promote(&target.name, current.as_deref()).map_err(|e| {
        CliError::operational(format!("cannot promote release {}", short(&target.name)))
            .cause(e.to_string())
            .hint("look at `bulwark-sidecar status`: a deploy job may be promoting; try again when it is done")
    })?;
    let journal = Journal::in_dir(&state_dir);
    let mut fields = json!({"service": service.name, "release": target.name, "previous": current, "by": "cli"});
    if how == Promoted::Already {
        fields["already"] = json!(true);
    }
    let event = journal
        .append(bulwark_core::EventKind::ReleasePromoted, fields)
        .map_err(|e| CliError::operational(e.to_string()))?;
    bulwark_core::data!("{}", event.to_line());
    let mut known = ServiceState::load(&state_dir, &service.name).map_err(|e| crate::work_error(&e))?;
    known.known_good = Some(record.commit.clone());
    known.known_good_at = Some(bulwark_core::jobs::now_millis());
    known.known_good_job = Some("bulwark-sidecar promote".to_owned());
    known.known_good_release = Some(target.name.clone());
    known.save(&state_dir, &service.name).map_err(|e| crate::work_error(&e))?;
    let run = engine::run_step(&service.deploy, &service.checkout, service.deploy_timeout.get(), "promote");
    if let Some(error) = run.error {
        return Err(CliError::operational(format!(
            "`current` is on release {}, but the deploy command failed",
            short(&target.name)
        ))
        .cause(error)
        .hint("the service may still run the previous release: fix the deploy and run it again"));
    }
    bulwark_core::data!(
        "{}",
        printable(&format!("{}: `current` → release {}; deploy exited 0", service.name, short(&target.name)))
    );
    Ok(ExitCode::SUCCESS)
}

/// The release part of a job's `status`: its phase's age and whether it is stale.
pub fn job_age(service: Option<&ServiceConfig>, job: &Job) -> Option<(u64, bool)> {
    let release = service?.release.as_ref()?;
    let age = engine::since(&job.updated)?;
    Some((age.as_secs(), !job.phase.is_final() && age > release.stale_after.get()))
}

/// Where `current` points, for `status`.
pub fn current_of(service: Option<&ServiceConfig>) -> Option<String> {
    let release = service?.release.as_ref()?;
    Store { config: release }.current().ok().flatten()
}
