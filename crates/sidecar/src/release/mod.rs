//! Release mode (`[service.release]`): the rollback job's phases build → publish → promote
//! before the deploy command, and re-promotion of the last known-good release when the
//! verdict fails, before the revert is recorded in git.
//!
//! Each phase is entered (and saved) before it acts and is idempotent: a build restarts from
//! an empty `<commit>.tmp` (a half-built directory is never renamed into place, so never
//! promoted); a published release keeps its record; a promotion that already happened is
//! found by `current` pointing at its target. `current` is switched by a rename under a
//! per-service lock, only if it still points where the job found it when it started
//! (compare-and-set): two deploys cannot promote over each other.

pub mod commands;
pub mod store;

use bulwark_core::EventKind;
use bulwark_core::config::{ReleaseConfig, ServiceConfig};
use bulwark_core::jobs::{self, Job, Phase, ReleaseJob};
use serde_json::json;

use self::store::{Promoted, ReleaseError, Store};
use crate::engine::{ServiceFile as _, WorkError};
use crate::rollback::gitops::{Repos, short};
use crate::rollback::{ServiceState, Worker};

/// The first phase of a job for `service` after `pending`.
pub fn first_phase(service: &ServiceConfig) -> Phase {
    if service.release.is_some() { Phase::Build } else { Phase::Deploy }
}

/// Where a failed verdict goes next: `repromote` in release mode (there must be an earlier
/// release to go back to), else straight to the revert.
pub fn rollback_phase(job: &Job) -> Result<Phase, String> {
    let Some(release) = &job.release else { return Ok(Phase::Revert) };
    match &release.previous {
        Some(previous) if *previous != release.name => Ok(Phase::Repromote),
        _ => Err(format!(
            "the release {} is unhealthy and there is no earlier release to go back to (`current` pointed at nothing else when the job started); nothing was re-promoted or reverted",
            short(&release.name)
        )),
    }
}

/// The release a finished job leaves serving: the re-promoted one after a rollback.
pub fn serving(job: &Job) -> Option<String> {
    let release = job.release.as_ref()?;
    if release.repromoted_at.is_some() { release.previous.clone() } else { Some(release.name.clone()) }
}

/// Release mode: the published release that serves `commit`, if any (what a failed verdict
/// would re-promote once `commit` is the known-good one).
pub fn release_of(service: &ServiceConfig, commit: &str) -> Option<String> {
    let config = service.release.as_ref()?;
    Store { config }.serving(commit).ok().flatten()
}

/// Whether `current` runs `commit` (always true in plain checkout mode): a service switched
/// to release mode builds its first release even for the commit it already ran.
pub fn current_serves(service: &ServiceConfig, commit: &str) -> bool {
    let Some(config) = &service.release else { return true };
    let store = Store { config };
    match (store.current(), store.serving(commit)) {
        (Ok(Some(current)), Ok(Some(serving))) => current == serving,
        _ => false,
    }
}

/// For an escalation's "State:": where `current` points (release mode only).
pub fn state_note(service: Option<&ServiceConfig>, job: &Job) -> Option<String> {
    let config = service?.release.as_ref()?;
    let current = Store { config }.current().ok()?;
    let built = job.release.as_ref().map(|r| r.name.as_str());
    Some(match (current, built) {
        (Some(c), Some(b)) if c == b => format!("; `current` points at this job's release {}", short(&c)),
        (Some(c), _) => format!("; `current` points at release {}", short(&c)),
        (None, _) => format!("; `current` ({}) does not exist", config.current.display()),
    })
}

impl Worker {
    /// The service's `[service.release]`, or the job escalates (a config changed under a job
    /// in a release phase).
    fn release_config<'a>(
        &self,
        service: &'a ServiceConfig,
        repos: &Repos,
        job: &mut Job,
    ) -> Result<Option<&'a ReleaseConfig>, WorkError> {
        if let Some(config) = &service.release {
            return Ok(Some(config));
        }
        let reason = format!(
            "the job is in its `{}` phase but service `{}` has no [service.release] any more; nothing more was done",
            job.phase, service.name
        );
        self.escalate(job, repos, &reason)?;
        Ok(None)
    }

    /// The config and the job's release record for a phase after `build`, or the job
    /// escalates (a job file without its release record).
    fn release_parts<'a>(
        &self,
        service: &'a ServiceConfig,
        repos: &Repos,
        job: &mut Job,
    ) -> Result<Option<(&'a ReleaseConfig, ReleaseJob)>, WorkError> {
        let Some(config) = self.release_config(service, repos, job)? else { return Ok(None) };
        if let Some(release) = job.release.clone() {
            return Ok(Some((config, release)));
        }
        let reason = format!("the job is in its `{}` phase but records no release; nothing more was done", job.phase);
        self.escalate(job, repos, &reason)?;
        Ok(None)
    }

    /// `build`: export the commit's tree into `<dir>/<commit>.tmp`, run the build there,
    /// rename it to `<dir>/<commit>`. A failed build escalates: the service is still on its
    /// current release, and a build can fail for reasons that are not the change's.
    pub(crate) fn release_build(&self, service: &ServiceConfig, repos: &Repos, job: &mut Job) -> Result<(), WorkError> {
        let Some(config) = self.release_config(service, repos, job)? else { return Ok(()) };
        let store = Store { config };
        if job.release.is_none() {
            // What the job found: the release to build (one may already serve the commit,
            // e.g. a revert recorded as served by its re-promoted release), where `current`
            // points (the compare-and-set's expectation), and the release to go back to.
            let found = store.serving(&job.to).and_then(|name| Ok((name, store.current()?)));
            let (name, expected) = match found {
                Ok(found) => found,
                Err(e) => return self.escalate(job, repos, &format!("cannot read the releases: {e}")),
            };
            let known = ServiceState::load(&self.state_dir, &service.name)?;
            let previous = known.known_good_release.clone().or_else(|| expected.clone());
            job.release = Some(ReleaseJob {
                name: name.unwrap_or_else(|| job.to.clone()),
                expected,
                previous,
                ..ReleaseJob::default()
            });
        }
        let name = job.release.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        mark(job, "build", ReleaseJob::start);
        job.save(&self.state_dir)?;
        if store.path(&name).is_dir() {
            mark(job, "build", ReleaseJob::done);
            return self.enter(job, Phase::Publish, format!("release {} is already built", short(&name)));
        }
        // The premise: the checkout follows the remote and holds the job's commit.
        let head = repos.checkout_head();
        if head.as_deref() != Some(job.to.as_str()) {
            let reason = format!(
                "the job is for {} but the checkout {} is at {}, so its premise is false; nothing was built or promoted",
                short(&job.to),
                repos.checkout.display(),
                head.as_deref().map_or("an unknown commit", short)
            );
            return self.escalate(job, repos, &reason);
        }
        // One builder per release directory: another sidecar building the same commit into
        // the same `dir` is waited for, and its finished release used.
        let held = store.ensure_dir().and_then(|()| store.build_lock(&name));
        let _held = match held {
            Ok(lock) => lock,
            Err(e) => return self.build_failed(job, repos, &e.to_string()),
        };
        if store.path(&name).is_dir() {
            mark(job, "build", ReleaseJob::done);
            return self.enter(job, Phase::Publish, format!("release {} was built meanwhile", short(&name)));
        }
        let tmp = store.building_path(&name);
        if let Err(e) = store.start_build(&name) {
            return self.build_failed(job, repos, &format!("cannot prepare {}: {e}", tmp.display()));
        }
        if let Err(e) = repos.export_tree(&job.to, &tmp) {
            return self.build_failed(job, repos, &format!("cannot export the tree of {}: {e}", short(&job.to)));
        }
        let mut cmd = config.build.command();
        cmd.current_dir(&tmp).env(bulwark_core::env::COMMIT, &job.to);
        let record = self.run_child(cmd, config.build_timeout.get(), job, "build")?;
        let error = record.error.clone();
        if let Some(release) = job.release.as_mut() {
            release.build = Some(record);
        }
        if let Some(error) = error {
            return self.build_failed(job, repos, &error);
        }
        crate::crash::point("build.built");
        if let Err(e) = store.finish_build(&name) {
            return self.build_failed(job, repos, &e.to_string());
        }
        mark(job, "build", ReleaseJob::done);
        self.emit(EventKind::ReleaseBuilt, job, json!({"release": name, "commit": job.to}))?;
        self.enter(job, Phase::Publish, format!("built release {}", short(&name)))
    }

    fn build_failed(&self, job: &mut Job, repos: &Repos, error: &str) -> Result<(), WorkError> {
        let current = job.release.as_ref().and_then(|r| r.expected.clone());
        self.emit(EventKind::ReleaseBuildFailed, job, json!({"commit": job.to, "error": error}))?;
        let reason = format!(
            "the build of {} failed: {error}; nothing was promoted or reverted, and the service stays on {}",
            short(&job.to),
            current.as_deref().map_or_else(|| "what it runs now".to_owned(), |c| format!("release {}", short(c)))
        );
        self.escalate(job, repos, &reason)
    }

    /// `publish`: the release's own record (commit, build time, output digest).
    pub(crate) fn release_publish(
        &self,
        service: &ServiceConfig,
        repos: &Repos,
        job: &mut Job,
    ) -> Result<(), WorkError> {
        let Some((config, release)) = self.release_parts(service, repos, job)? else { return Ok(()) };
        let store = Store { config };
        let name = release.name;
        mark(job, "publish", ReleaseJob::start);
        job.save(&self.state_dir)?;
        let record = match store.publish(&name, &job.to, &job.id) {
            Ok(record) => record,
            Err(e) => return self.escalate(job, repos, &format!("cannot publish release {}: {e}", short(&name))),
        };
        if let Some(release) = job.release.as_mut() {
            release.digest = Some(record.digest.clone());
        }
        mark(job, "publish", ReleaseJob::done);
        let fields = json!({"release": name, "commit": record.commit, "digest": record.digest});
        self.emit_once(EventKind::ReleasePublished, job, fields)?;
        self.enter(job, Phase::Promote, format!("published release {} ({})", short(&name), record.digest))
    }

    /// `promote`: `current` → the new release, only if it still points where it did when
    /// the job started; then prune.
    pub(crate) fn release_promote(
        &self,
        service: &ServiceConfig,
        repos: &Repos,
        job: &mut Job,
    ) -> Result<(), WorkError> {
        let Some((config, release)) = self.release_parts(service, repos, job)? else { return Ok(()) };
        let store = Store { config };
        mark(job, "promote", ReleaseJob::start);
        job.save(&self.state_dir)?;
        // The verdict's baseline is taken here, before `current` moves (a service may serve
        // from `current` at once), not only before the deploy command; it is taken once.
        self.baseline(service, job)?;
        match store.promote(&release.name, release.expected.as_deref()) {
            Ok(how) => {
                if let Some(r) = job.release.as_mut() {
                    r.promoted_at.get_or_insert_with(jobs::now_millis);
                }
                mark(job, "promote", ReleaseJob::done);
                let mut fields = json!({"release": release.name, "previous": release.expected});
                if how == Promoted::Already {
                    fields["already"] = json!(true);
                }
                self.emit_once(EventKind::ReleasePromoted, job, fields)?;
                self.prune_releases(&store, &service.name, job)?;
                self.enter(job, Phase::Deploy, format!("`current` → release {}", short(&release.name)))
            }
            Err(e @ ReleaseError::Moved { .. }) => {
                self.emit(EventKind::ReleaseCasFailed, job, json!({"release": release.name, "error": e.to_string()}))?;
                let reason = format!("the promotion of release {} lost a compare-and-set: {e}", short(&release.name));
                self.escalate(job, repos, &reason)
            }
            Err(e) => self.escalate(job, repos, &format!("cannot promote release {}: {e}", short(&release.name))),
        }
    }

    /// `repromote`: `current` back to the last known-good release (a rename), then the
    /// deploy command; the revert is recorded in git after.
    pub(crate) fn release_repromote(
        &self,
        service: &ServiceConfig,
        repos: &Repos,
        job: &mut Job,
    ) -> Result<(), WorkError> {
        let Some((config, release)) = self.release_parts(service, repos, job)? else { return Ok(()) };
        let store = Store { config };
        let Some(previous) = release.previous.clone() else {
            return self.escalate(
                job,
                repos,
                "the job records no earlier release to go back to; nothing was re-promoted",
            );
        };
        mark(job, "repromote", ReleaseJob::start);
        job.save(&self.state_dir)?;
        match store.promote(&previous, Some(&release.name)) {
            Ok(_) => {}
            Err(e) => {
                self.emit(EventKind::ReleaseCasFailed, job, json!({"release": previous, "error": e.to_string()}))?;
                let reason = format!(
                    "the release {} is unhealthy, but `current` could not be switched back to release {}: {e}; nothing was reverted",
                    short(&release.name),
                    short(&previous)
                );
                return self.escalate(job, repos, &reason);
            }
        }
        if let Some(r) = job.release.as_mut() {
            r.repromoted_at.get_or_insert_with(jobs::now_millis);
        }
        job.save(&self.state_dir)?;
        let fields = json!({"release": previous, "bad_release": release.name});
        self.emit_once(EventKind::ReleaseRepromoted, job, fields)?;
        crate::crash::point("repromote.switched");
        self.emit(EventKind::DeployStarted, job, json!({"commit": previous, "step": "repromote"}))?;
        let record = self.run_deploy(service, job, "repromote")?;
        job.deploys.push(record.clone());
        if let Some(error) = record.error {
            let reason = format!(
                "`current` is back on release {}, but the deploy command failed: {error}; nothing was reverted in git yet",
                short(&previous)
            );
            return self.escalate(job, repos, &reason);
        }
        mark(job, "repromote", ReleaseJob::done);
        self.enter(job, Phase::Revert, format!("`current` back on release {}; deploy exited 0", short(&previous)))
    }

    /// `redeploy` in release mode: the revert (the last known-good tree) is served by the
    /// re-promoted release, recorded as such without a rebuild.
    pub(crate) fn release_serve_revert(
        &self,
        service: &ServiceConfig,
        repos: &Repos,
        job: &mut Job,
    ) -> Result<(), WorkError> {
        let Some((config, release)) = self.release_parts(service, repos, job)? else { return Ok(()) };
        let store = Store { config };
        let previous = release.previous.unwrap_or_default();
        let head = repos.checkout_head().unwrap_or_default();
        if let Err(e) = store.add_serves(&previous, &head) {
            return self.escalate(
                job,
                repos,
                &format!("cannot record the revert in release {}: {e}", short(&previous)),
            );
        }
        self.enter(
            job,
            Phase::Verify,
            format!("revert {} is served by release {} (re-promoted, no rebuild)", short(&head), short(&previous)),
        )
    }

    /// After a promotion: keep `keep` releases, never the current one or the last known-good.
    fn prune_releases(&self, store: &Store<'_>, service: &str, job: &Job) -> Result<(), WorkError> {
        let known = ServiceState::load(&self.state_dir, service)?;
        let current = store.current().ok().flatten();
        let mut protect: Vec<&str> = Vec::new();
        protect.extend(current.as_deref());
        protect.extend(known.known_good_release.as_deref());
        protect.extend(job.release.as_ref().and_then(|r| r.previous.as_deref()));
        match store.prune(&protect) {
            Ok(removed) if removed.is_empty() => Ok(()),
            Ok(removed) => {
                self.emit(EventKind::ReleasePruned, job, json!({"removed": removed, "keep": store.config.keep}))
            }
            // Pruning is housekeeping: a failure is journaled, never fails the deploy.
            Err(e) => self.emit(EventKind::ReleasePruneFailed, job, json!({"error": e.to_string()})),
        }
    }
}

/// Applies `stamp` (start or done) to `phase` of the job's release record.
fn mark(job: &mut Job, phase: &str, stamp: fn(&mut ReleaseJob, &str)) {
    if let Some(release) = job.release.as_mut() {
        stamp(release, phase);
    }
}
