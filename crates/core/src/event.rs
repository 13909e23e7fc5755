//! Every kind of event bulwark journals, named once: the dotted name in the journal, the
//! component `bulwark status` files it under, and whether it reports a failure.
//!
//! Adding a kind is one line in the table below. A kind this build does not know (written
//! by an older or newer bulwark) still reads, as [`EventKind::Other`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What `bulwark status` reports on: each has a last result and a last failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Hook,
    Policy,
    Server,
    VerifyPush,
    Drift,
    Sidecar,
    Notify,
    /// bulwark's own watchers: the `[[ping]]` dead-man's switch and the metrics textfile.
    Monitoring,
}

impl Component {
    /// Every component, in the order `bulwark status` shows them.
    pub const ALL: [Component; 8] = [
        Component::Hook,
        Component::Policy,
        Component::Server,
        Component::VerifyPush,
        Component::Drift,
        Component::Sidecar,
        Component::Notify,
        Component::Monitoring,
    ];

    /// The name `bulwark status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Hook => "hook",
            Component::Policy => "policy",
            Component::Server => "server",
            Component::VerifyPush => "verify-push",
            Component::Drift => "drift",
            Component::Sidecar => "sidecar",
            Component::Notify => "notify",
            Component::Monitoring => "monitoring",
        }
    }
}

/// One row per kind: `Variant = "dotted.name", component (or `-`: shown by no component),
/// failure | ok, "what it records"`.
macro_rules! event_kinds {
    ($( $variant:ident = $name:literal, $component:tt, $outcome:ident, $doc:literal; )*) => {
        /// The kind of a journaled event. Serialized as its dotted name.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $( #[doc = $doc] $variant, )*
            /// A kind this build does not know, kept as written.
            Other(String),
        }

        /// Every kind this build knows, by name (the journal's spelling).
        pub const KNOWN: &[(&str, Option<Component>, bool)] = &[
            $( ($name, event_kinds!(@component $component), event_kinds!(@failure $outcome)), )*
        ];

        impl EventKind {
            /// The dotted name the journal, `bulwark events --kind` and notifications use.
            pub fn as_str(&self) -> &str {
                match self {
                    $( EventKind::$variant => $name, )*
                    EventKind::Other(name) => name,
                }
            }

            /// The kind named `name`: a known one, or [`EventKind::Other`].
            pub fn from_name(name: &str) -> EventKind {
                match name {
                    $( $name => EventKind::$variant, )*
                    other => EventKind::Other(other.to_owned()),
                }
            }
        }
    };
    (@component -) => { None };
    (@component $component:ident) => { Some(Component::$component) };
    (@failure failure) => { true };
    (@failure ok) => { false };
}

event_kinds! {
    HookBlocked = "hook.blocked", Hook, failure, "A client hook refused a commit or ref update.";
    BreakglassUsed = "breakglass.used", Hook, failure, "A guard was bypassed with `BULWARK_BREAK_GLASS` (recorded and alerted).";
    PolicyWeakened = "policy.weakened", Policy, failure, "A config that protects less than the defaults was honoured.";
    PushRejected = "push.rejected", Server, failure, "A push was refused (pre-push, or the server role).";
    PushAccepted = "push.accepted", Server, ok, "The server role let a push through.";
    VerifyPushOk = "verify_push.ok", VerifyPush, ok, "A push was verified on the remote.";
    VerifyPushFailed = "verify_push.failed", VerifyPush, failure, "A push could not be verified.";
    DriftFound = "drift.found", Drift, failure, "The drift scan found something new.";
    DriftResolved = "drift.resolved", Drift, ok, "A finding of an earlier scan is gone.";
    DriftWatchLimited = "drift.watch_limited", Drift, ok, "The drift watcher ran out of inotify watches.";
    DeployEnqueueFailed = "deploy.enqueue_failed", Sidecar, failure, "post-merge could not hand a deploy to the sidecar.";
    DeploySkipped = "deploy.skipped", Sidecar, ok, "post-merge found no `[[service]]` for its checkout.";
    DeployStarted = "deploy.started", Sidecar, ok, "The sidecar started a deploy (or a redeploy).";
    DeployFailed = "deploy.failed", Sidecar, failure, "A deploy command failed.";
    DeployHealthy = "deploy.healthy", Sidecar, ok, "A deployed change passed its health check.";
    DeployOrphanEnded = "deploy.orphan_ended", Sidecar, ok, "A deploy left running by a killed sidecar was ended.";
    HealthFailed = "health.failed", Sidecar, failure, "A health check failed.";
    RollbackStarted = "rollback.started", Sidecar, ok, "The sidecar started undoing an unhealthy change.";
    RollbackReverted = "rollback.reverted", Sidecar, ok, "The revert commit was made.";
    RollbackPushed = "rollback.pushed", Sidecar, ok, "The revert is on the remote.";
    RollbackComplete = "rollback.complete", Sidecar, ok, "The revert is deployed and healthy.";
    RollbackEscalated = "rollback.escalated", Sidecar, failure, "The rollback needs a person.";
    RollbackJoined = "rollback.joined", Sidecar, ok, "Another host's revert of the same change won the race; this host joined it (no page).";
    DeployHeld = "deploy.held", Sidecar, ok, "A deploy waits: a `[[freeze]]` window holds.";
    FreezeOverridden = "freeze.overridden", Sidecar, ok, "A deploy forced through a `[[freeze]]` window (`enqueue --force`).";
    FollowMoved = "follow.moved", Sidecar, ok, "Follow mode fast-forwarded the checkout to the remote and queued the deploy.";
    FollowFailed = "follow.failed", Sidecar, failure, "Follow mode could not read or follow the remote (nothing deployed).";
    FollowRecovered = "follow.recovered", Sidecar, ok, "Follow mode reads the remote again.";
    GatePublished = "gate.published", Sidecar, ok, "A staging host published the commit it verified healthy.";
    GatePublishFailed = "gate.publish_failed", Sidecar, failure, "A staging host could not publish its verified commit.";
    GateTimeout = "gate.timeout", Sidecar, failure, "A commit was not verified by the gate's staging group in `gate_timeout`.";
    RollbackRetried = "rollback.retried", Sidecar, ok, "An escalated job was resumed by `bulwark-sidecar retry`.";
    ServiceRecovered = "service.recovered", Sidecar, ok, "A service is healthy again after an escalation.";
    ServiceAdopted = "service.adopted", Sidecar, ok, "A commit was recorded as known good by `bulwark-sidecar adopt`.";
    SidecarBadJob = "sidecar.bad_job", -, ok, "A job file the sidecar cannot use was skipped.";
    SidecarPruned = "sidecar.pruned", Sidecar, ok, "Finished jobs and incident files older than `keep_history` were deleted.";
    ReleaseBuilt = "release.built", Sidecar, ok, "Release mode: a release directory was built.";
    ReleaseBuildFailed = "release.build_failed", Sidecar, failure, "Release mode: the build command failed (nothing promoted).";
    ReleasePublished = "release.published", Sidecar, ok, "Release mode: a built release got its record.";
    ReleasePromoted = "release.promoted", Sidecar, ok, "Release mode: `current` was switched to a release.";
    ReleaseRepromoted = "release.repromoted", Sidecar, ok, "Release mode: `current` went back to the last known-good release.";
    ReleaseCasFailed = "release.cas_failed", Sidecar, failure, "Release mode: `current` was not where the job expected; it did not switch it.";
    ReleasePruned = "release.pruned", Sidecar, ok, "Release mode: old releases were deleted.";
    ReleasePruneFailed = "release.prune_failed", Sidecar, failure, "Release mode: old releases could not be deleted.";
    WatchOk = "watch.ok", Sidecar, ok, "A watchdog check passed.";
    WatchRestarted = "watch.restarted", Sidecar, ok, "The watchdog ran a service's restart command.";
    WatchResolved = "watch.resolved", Sidecar, ok, "A watchdog incident ended with the service healthy.";
    WatchEscalated = "watch.escalated", Sidecar, failure, "A watchdog incident needs a person.";
    WatchRecovered = "watch.recovered", Sidecar, ok, "A service whose watchdog incident escalated is healthy again (its alert is resolved).";
    NotifySent = "notify.sent", Notify, ok, "A notification was delivered.";
    NotifyFailed = "notify.failed", Notify, failure, "A notification could not be delivered (retried later).";
    PingFailed = "ping.failed", Monitoring, failure, "A `[[ping]]` target stopped accepting pings (then journaled at most hourly).";
    PingOk = "ping.ok", Monitoring, ok, "A `[[ping]]` target accepts pings again.";
    MetricsFailed = "metrics.failed", Monitoring, failure, "The `[metrics]` textfile could not be written (once per distinct error).";
}

impl EventKind {
    /// The component `bulwark status` files this kind under, if any. A kind this build does
    /// not know goes with the known kinds of its domain (the part before the first dot).
    pub fn component(&self) -> Option<Component> {
        if let Some((_, component, _)) = self.known() {
            return *component;
        }
        let domain = self.domain();
        KNOWN.iter().find(|(name, ..)| name.split('.').next() == Some(domain)).and_then(|(_, c, _)| *c)
    }

    /// Whether this kind reports a failure (`bulwark status`'s "last failure"). A kind this
    /// build does not know is one when a known failure kind ends the same way (`.failed`).
    pub fn is_failure(&self) -> bool {
        if let Some((_, _, failure)) = self.known() {
            return *failure;
        }
        let last = self.as_str().rsplit('.').next();
        KNOWN.iter().any(|(name, _, failure)| *failure && name.rsplit('.').next() == last)
    }

    /// The part of the name before the first dot (`drift` of `drift.found`).
    pub fn domain(&self) -> &str {
        self.as_str().split('.').next().unwrap_or_default()
    }

    fn known(&self) -> Option<&'static (&'static str, Option<Component>, bool)> {
        match self {
            EventKind::Other(_) => None,
            known => KNOWN.iter().find(|(name, ..)| *name == known.as_str()),
        }
    }
}

impl From<&str> for EventKind {
    fn from(name: &str) -> Self {
        EventKind::from_name(name)
    }
}

impl From<&String> for EventKind {
    fn from(name: &String) -> Self {
        EventKind::from_name(name)
    }
}

impl From<&EventKind> for EventKind {
    fn from(kind: &EventKind) -> Self {
        kind.clone()
    }
}

/// A kind as its name, where a `String` is kept (a notification's `kind`, a job file's).
impl From<EventKind> for String {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Other(name) => name,
            known => known.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind reads as its name (`kind.starts_with("watch.")` in a test, `&kind` where a `&str`
/// is asked for): code written when kinds were strings keeps working as it is merged.
impl std::ops::Deref for EventKind {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for EventKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(EventKind::from_name(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_reads_back_as_its_own_kind() {
        for (name, ..) in KNOWN {
            let kind = EventKind::from_name(name);
            assert!(!matches!(kind, EventKind::Other(_)), "{name}");
            assert_eq!(kind.as_str(), *name);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
        let names: std::collections::HashSet<_> = KNOWN.iter().map(|(name, ..)| name).collect();
        assert_eq!(names.len(), KNOWN.len(), "a name is listed twice");
    }

    #[test]
    fn a_kind_from_another_build_is_kept_and_filed_with_its_domain() {
        let kind: EventKind = serde_json::from_str("\"drift.watch_restarted\"").unwrap();
        assert_eq!(kind, EventKind::Other("drift.watch_restarted".into()));
        assert_eq!(serde_json::to_string(&kind).unwrap(), "\"drift.watch_restarted\"");
        assert_eq!(kind.component(), Some(Component::Drift));
        assert!(!kind.is_failure());
        assert!(EventKind::from("release.failed").is_failure());
        assert_eq!(EventKind::from("nobody.knows").component(), None);
    }

    #[test]
    fn status_files_kinds_as_it_did_by_name() {
        assert_eq!(EventKind::BreakglassUsed.component(), Some(Component::Hook));
        assert_eq!(EventKind::WatchOk.component(), Some(Component::Sidecar));
        assert_eq!(EventKind::SidecarBadJob.component(), None);
        assert!(EventKind::DeployEnqueueFailed.is_failure());
        assert!(!EventKind::PushAccepted.is_failure());
    }
}
