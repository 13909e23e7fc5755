//! The promotion gate (`[service.follow]` `gate` / `publish`; seed 001: the staging canary
//! whose silence is the alarm).
//!
//! A staging host's sidecar, after each healthy verdict, pushes
//! `refs/bulwark/verified/<service>/<group>` to the commit it verified (fast-forward only,
//! never forced; `gate.published` with the host and time). A production follower with
//! `gate = "<group>"` moves its checkout only as far as that ref contains; a commit the
//! ref has not reached `gate_timeout` after follow mode first saw it is the failure
//! (`gate.timeout`, journaled and notified once per commit), and nothing is deployed; a
//! later verification still lets it through.

use bulwark_alert::Message;
use bulwark_core::EventKind;
use bulwark_core::config::{ServiceConfig, verified_ref};
use bulwark_core::jobs;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::{ServiceFile as _, WorkError, since};
use crate::follow::{FollowState, Seen};
use crate::rollback::Worker;
use crate::rollback::gitops::{Repos, short};

/// The newest commit of the branch the gate has not verified, since when it waits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GateWait {
    pub commit: String,
    pub since: String,
    /// `gate.timeout` was journaled (and notifications owed) for this commit.
    pub reported: bool,
}

/// The tip is verified (or deployed): no wait is pending. Whether that changed the state.
pub fn settle(state: &mut FollowState, tip: &str) -> bool {
    let waited = state.gate.as_ref().is_some_and(|w| w.commit == tip);
    if waited {
        state.gate = None;
    }
    waited
}

/// How far the checkout may move towards the remote's tip: the newest commit between the
/// checkout's and the tip that the gate ref (fetched into the checkout) contains, or `None`.
/// While the tip itself is not verified, its wait is recorded and, past `gate_timeout`,
/// reported once.
pub fn target(
    worker: &Worker,
    service: &ServiceConfig,
    repos: &Repos,
    state: &mut FollowState,
    seen: &Seen,
) -> Result<Option<String>, WorkError> {
    let Some(follow) = &service.follow else { return Ok(Some(seen.tip.clone())) };
    let Some(group) = follow.gate.as_deref() else { return Ok(Some(seen.tip.clone())) };
    let (head, tip, verified) = (seen.head.as_str(), seen.tip.as_str(), seen.verified.as_deref());
    let reach = verified.and_then(|v| repos.checkout_merge_base(v, tip));
    let target = reach.filter(|t| t != head && repos.checkout_is_ancestor(head, t));
    if target.as_deref() == Some(tip) {
        if settle(state, tip) {
            state.save(&worker.state_dir, &service.name)?;
        }
        return Ok(target);
    }
    if state.gate.as_ref().is_none_or(|w| w.commit != tip) {
        state.gate = Some(GateWait { commit: tip.to_owned(), since: jobs::now_millis(), reported: false });
        state.save(&worker.state_dir, &service.name)?;
    }
    let refname = verified_ref(&service.name, group);
    if let Some(wait) = state.gate.as_mut()
        && !wait.reported
        && since(&wait.since).is_some_and(|waited| waited >= follow.gate_timeout.get())
    {
        wait.reported = true;
        let fields = json!({
            "commit": tip,
            "gate": group,
            "ref": refname,
            "verified": verified,
            "waiting_since": wait.since,
            "gate_timeout": bulwark_core::output::fmt_duration(follow.gate_timeout.get()),
        });
        // A new commit's timeout replaces what was owed about an older one.
        state.notifications.clear();
        worker.outlet().owe(&mut state.notifications, EventKind::GateTimeout);
        state.save(&worker.state_dir, &service.name)?;
        worker.outlet().emit(EventKind::GateTimeout, json!({"service": service.name}), fields)?;
    }
    if crate::engine::owes(&state.notifications) {
        deliver(worker, service, group, state)?;
    }
    Ok(target)
}

/// Sends what is owed about the gate.
fn deliver(worker: &Worker, service: &ServiceConfig, group: &str, state: &mut FollowState) -> Result<(), WorkError> {
    let (state_dir, name) = (&worker.state_dir, &service.name);
    let base = json!({"service": name});
    worker.outlet().deliver(
        state,
        "gate.notify",
        &base,
        |st| &mut st.notifications,
        &mut |st| st.save(state_dir, name),
        |st, delivery| {
            let (commit, since) = st.gate.as_ref().map(|w| (w.commit.clone(), w.since.clone())).unwrap_or_default();
            let title = format!("{name}: {} not verified by `{group}`: nothing deployed", short(&commit));
            let text = format!(
                "The `{group}` group has not verified {commit} (waiting since {since}). Production deploys nothing until it does: look at the staging host (is its sidecar running? is the service healthy there?)."
            );
            Message::new(delivery.kind.clone(), title, text)
                .with_fields(json!({"service": name, "commit": commit, "gate": group, "waiting_since": since}))
        },
    )
}

/// On a staging host (`publish = "<group>"`): pushes the verified ref to `commit` after a
/// healthy verdict. A failure is journaled (`gate.publish_failed`), never a failed deploy:
/// production then sees the silence and its gate times out.
pub fn publish(
    worker: &Worker,
    service: &ServiceConfig,
    repos: &Repos,
    job: &str,
    commit: &str,
) -> Result<(), WorkError> {
    let Some(group) = service.follow.as_ref().and_then(|f| f.publish.as_deref()) else { return Ok(()) };
    let refname = verified_ref(&service.name, group);
    let base = json!({"job": job, "service": service.name});
    match repos.push_fast_forward_ref(commit, &refname) {
        Ok(None) => Ok(()),
        Ok(Some(previous)) => worker.outlet().emit(
            EventKind::GatePublished,
            base,
            json!({"commit": commit, "ref": refname, "group": group, "previous": previous, "at": jobs::now_millis()}),
        ),
        Err(error) => worker.outlet().emit(
            EventKind::GatePublishFailed,
            base,
            json!({"commit": commit, "ref": refname, "group": group, "error": bulwark_core::redact::redact_urls(&error)}),
        ),
    }
}
