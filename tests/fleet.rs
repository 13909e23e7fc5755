//! End-to-end tests of several sidecars on one machine: each "host" has its own state
//! directory, its own production checkout of one bare origin, its own deploy script and its
//! own loopback health server (answering from what that host deployed); one webhook
//! receiver counts the notifications of the whole fleet.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use bulwark_testutil::http::{HttpServer, Receiver, Response};
use bulwark_testutil::{Outcome, TestEnv, file_url, run, set_executable};
use serde_json::Value;

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Host {
    name: String,
    checkout: PathBuf,
    state: PathBuf,
    deployed: PathBuf,
    deploy_log: PathBuf,
    config: PathBuf,
    _health: HttpServer,
}

struct Fleet {
    env: TestEnv,
    remote: PathBuf,
    dev: PathBuf,
    webhook: Receiver,
    hosts: Vec<Host>,
}

impl Fleet {
    /// A bare origin with `status` = `ok`, a dev clone, and no hosts yet.
    fn new() -> Self {
        let env = TestEnv::new();
        let seed = env.init("seed");
        env.commit_file(&seed, "status", "ok\n", "initial commit");
        let remote = env.bare("server.git");
        env.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
        let dev = env.clone_repo(&remote, "dev");
        let webhook = Receiver::start();
        Self { env, remote, dev, webhook, hosts: Vec::new() }
    }

    /// As [`Self::new`], with the origin guarded by the server role (`pre-receive`) with
    /// `server_config`; `dev` pushes as `merger-bot`.
    fn guarded(server_config: &str) -> Self {
        let env = TestEnv::new();
        let (remote, dev) = env.guarded_server(server_config, "pre-receive");
        env.commit_file(&dev, "status", "ok\n", "status file");
        env.push_as(&dev, "merger-bot", &["origin", "main"]).assert_code(0);
        let webhook = Receiver::start();
        Self { env, remote, dev, webhook, hosts: Vec::new() }
    }

    /// `n` hosts running service `web` from `main`, with `service_extra` in their service.
    fn with_hosts(n: usize, service_extra: &str) -> Self {
        let mut fleet = Self::new();
        for i in 0..n {
            fleet.add_host(&format!("host{i}"), "web", service_extra);
        }
        fleet
    }

    /// Adds a host (its checkout, state, deploy script, health server and config).
    fn add_host(&mut self, name: &str, service: &str, service_extra: &str) -> usize {
        let env = &self.env;
        let checkout = env.clone_repo(&self.remote, &format!("{name}/checkout"));
        let state = env.path(&format!("{name}/state"));
        std::fs::create_dir_all(&state).unwrap();
        let deployed = env.path(&format!("{name}/deployed-status"));
        std::fs::write(&deployed, "ok\n").unwrap();
        let deploy_log = env.path(&format!("{name}/deploys.log"));
        let script = env.path(&format!("{name}/deploy.sh"));
        std::fs::write(&script, "#!/bin/sh\nset -e\ngit rev-parse HEAD >> \"$2\"\ncp status \"$1\"\n").unwrap();
        set_executable(&script);
        let watched = deployed.clone();
        let health = HttpServer::start(move |_req| {
            if std::fs::read_to_string(&watched).is_ok_and(|s| s.starts_with("ok")) {
                Response::ok("ok")
            } else {
                Response::status(500).body("broken")
            }
        });
        let deploy = [script.display().to_string(), deployed.display().to_string(), deploy_log.display().to_string()];
        let config = env.write_config(
            &format!("{name}/bulwark.toml"),
            &format!(
                r#"[[service]]
name = "{service}"
checkout = "{checkout}"
deploy = {deploy:?}
stabilize = "50ms"
{service_extra}
[service.health]
url = "{health}"
timeout = "300ms"
attempts = 2
interval = "50ms"
[[notify]]
kind = "webhook"
url = "{hook}"
attempts = 1
timeout = "2s"
"#,
                checkout = checkout.display(),
                health = health.url("/health"),
                hook = self.webhook.url("/hook"),
            ),
        );
        self.hosts.push(Host { name: name.to_owned(), checkout, state, deployed, deploy_log, config, _health: health });
        self.hosts.len() - 1
    }

    /// `bulwark-sidecar ARGS` as host `i` (its config and state directory).
    fn sidecar(&self, i: usize, args: &[&str]) -> Command {
        let host = &self.hosts[i];
        let mut cmd = self.env.sidecar(&host.config, args);
        cmd.env("BULWARK_STATE_DIR", &host.state);
        cmd
    }

    fn once(&self, i: usize) -> Outcome {
        run(&mut self.sidecar(i, &["once"]))
    }

    /// `once` on `hosts` at the same time; their outcomes, in that order.
    fn once_in_parallel(&self, hosts: &[usize]) -> Vec<Outcome> {
        let children: Vec<Child> = hosts
            .iter()
            .map(|&i| {
                let mut cmd = self.sidecar(i, &["once"]);
                cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().unwrap();
                Outcome {
                    code: out.status.code().unwrap_or(-1),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }
            })
            .collect()
    }

    /// On `dev`: a feature branch setting `status`, merged with `--no-ff` and pushed.
    fn push_merge(&self, status: &str) -> String {
        let dev = &self.dev;
        let branch = format!("feature-{}", self.env.rev(dev, "HEAD"));
        self.env.git(dev, &["switch", "-q", "-c", &branch]);
        self.env.commit_file(dev, "status", status, "feature: change status");
        self.env.git(dev, &["switch", "-q", "main"]);
        self.env.git(dev, &["merge", "-q", "--no-ff", "-m", "Merge a feature", &branch]);
        // The merge bot's identity, for an origin guarded by the server role.
        run(self
            .env
            .command("git")
            .current_dir(dev)
            .args(["push", "-q", "origin", "main"])
            .env("GL_USERNAME", "merger-bot"))
        .assert_code(0);
        self.env.rev(dev, "HEAD")
    }

    /// Host `i` pulls and queues the change as its post-merge hook would; the job id.
    fn pull_and_enqueue(&self, i: usize) -> String {
        let host = &self.hosts[i];
        let from = self.env.rev(&host.checkout, "HEAD");
        self.env.git(&host.checkout, &["pull", "-q", "--ff-only"]);
        let to = self.env.rev(&host.checkout, "HEAD");
        bulwark_core::jobs::enqueue(&host.state, "web", &from, &to, "post-merge").unwrap()
    }

    fn remote_main(&self) -> String {
        self.env.rev(&self.remote, "refs/heads/main")
    }

    /// Commits on the remote's `main` with a `Bulwark-Revert-Of` trailer.
    fn reverts_on_remote(&self) -> Vec<String> {
        let out = self.env.git(
            &self.remote,
            &["log", "--format=%H %(trailers:key=Bulwark-Revert-Of,valueonly=true,separator=%x20)", "main"],
        );
        out.lines().filter(|l| l.trim().contains(' ')).map(|l| l[..40].to_owned()).collect()
    }

    fn events_of(&self, i: usize, kind: &str) -> Vec<bulwark_core::Event> {
        let all = bulwark_core::Journal::in_dir(&self.hosts[i].state).read_all().unwrap();
        all.into_iter().filter(|e| e.kind == kind).collect()
    }

    fn job(&self, i: usize, id: &str) -> Value {
        let path = self.hosts[i].state.join("sidecar/jobs").join(format!("{id}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn deploys(&self, i: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.hosts[i].deploy_log).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    fn deployed(&self, i: usize) -> String {
        std::fs::read_to_string(&self.hosts[i].deployed).unwrap()
    }

    fn head(&self, i: usize) -> String {
        self.env.rev(&self.hosts[i].checkout, "HEAD")
    }
}

/// Every host is on the one revert at the remote's tip, has redeployed it and is healthy;
/// exactly one host notified `rollback.complete` (the one whose push won) and the others
/// journaled `rollback.joined`. Returns the winner's index.
#[track_caller]
fn assert_converged(fleet: &Fleet, bad: &str, jobs: &[String]) -> usize {
    let tip = fleet.remote_main();
    assert_eq!(fleet.reverts_on_remote(), std::slice::from_ref(&tip), "exactly one revert, at the remote's tip");
    assert_eq!(fleet.env.rev(&fleet.remote, "main^"), bad, "the revert sits right on the bad change");
    let mut winners = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let name = &fleet.hosts[i].name;
        assert_eq!(fleet.job(i, job)["phase"], "rolled-back", "{name}");
        assert_eq!(fleet.head(i), tip, "{name} is on the revert");
        assert_eq!(fleet.deployed(i), "ok\n", "{name} redeployed the good version");
        assert_eq!(fleet.deploys(i).last(), Some(&tip), "{name}'s last deploy is the revert");
        assert_eq!(fleet.events_of(i, "rollback.complete").len(), 1, "{name} journals its outcome once");
        let pushed = fleet.events_of(i, "rollback.pushed");
        assert_eq!(pushed.len(), 1, "{name}");
        let joined = fleet.events_of(i, "rollback.joined");
        if pushed[0].fields.get("already_on_remote").is_none() {
            assert!(joined.is_empty(), "{name} pushed the revert: it joined nothing");
            winners.push(i);
        } else {
            assert_eq!(joined.len(), 1, "{name} found the revert on the remote: it joined it, once");
            assert_eq!(joined[0].str("revert"), Some(tip.as_str()));
            assert_eq!(joined[0].str("bad_commit"), Some(bad));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one host's push won");
    let winner = winners[0];
    let message = fleet.env.git(&fleet.remote, &["log", "-1", "--format=%B", "main"]);
    assert!(message.contains(&format!("Bulwark-Job: {}", jobs[winner])), "the winner's job made it: {message}");
    for i in (0..jobs.len()).filter(|i| *i != winner) {
        let joined = &fleet.events_of(i, "rollback.joined")[0];
        assert_eq!(joined.str("by_job"), Some(jobs[winner].as_str()), "the trailer names the winner's job");
        assert_eq!(joined.str("by_host"), Some(bulwark_core::journal::hostname().as_str()));
    }
    let complete = fleet.webhook.accepted_of("rollback.complete");
    assert_eq!(complete.len(), 1, "one notification for the whole fleet: {complete:?}");
    winner
}

#[test]
fn three_hosts_seeing_one_bad_merge_converge_on_one_revert_with_one_notification() {
    let fleet = Fleet::with_hosts(3, "");
    let bad = fleet.push_merge("broken\n");
    let jobs: Vec<String> = (0..3).map(|i| fleet.pull_and_enqueue(i)).collect();

    let outcomes = fleet.once_in_parallel(&[0, 1, 2]);
    for (i, out) in outcomes.iter().enumerate() {
        out.assert_code(1);
        assert!(out.stdout.contains("rollback.complete"), "host{i}: {}", out.stdout);
    }
    assert_converged(&fleet, &bad, &jobs);

    // Nothing is left to do anywhere, and nobody reverts the revert.
    for i in 0..3 {
        fleet.once(i).assert_code(0);
    }
    assert_eq!(fleet.reverts_on_remote().len(), 1);
    assert_eq!(fleet.webhook.accepted_of("rollback.complete").len(), 1);
}

#[test]
fn a_host_that_finds_the_revert_already_pushed_joins_it_and_does_not_page() {
    let fleet = Fleet::with_hosts(2, "");
    let bad = fleet.push_merge("broken\n");
    let jobs: Vec<String> = (0..2).map(|i| fleet.pull_and_enqueue(i)).collect();
    fleet.once(0).assert_code(1);
    assert_eq!(fleet.webhook.accepted_of("rollback.complete").len(), 1);
    // The second host judges the same change later: it finds the first host's revert.
    fleet.once(1).assert_code(1);
    assert_eq!(assert_converged(&fleet, &bad, &jobs), 0);
    let revert = fleet.remote_main();
    // Its post-merge of the revert is not a new deploy.
    let again = bulwark_core::jobs::enqueue(&fleet.hosts[1].state, "web", &bad, &revert, "post-merge").unwrap();
    fleet.once(1).assert_code(0);
    assert_eq!(fleet.job(1, &again)["phase"], "skipped");
}

fn kill_one_host_mid_rollback_converges(point: &str) {
    let fleet = Fleet::with_hosts(3, "");
    let bad = fleet.push_merge("broken\n");
    let jobs: Vec<String> = (0..3).map(|i| fleet.pull_and_enqueue(i)).collect();
    // host0 dies (SIGKILL) at `point`; then the other two race.
    let killed = run(fleet.sidecar(0, &["once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", point));
    assert_ne!(killed.code, 0, "host0 was killed at {point}: {}", killed.stderr);
    let phase = fleet.job(0, &jobs[0])["phase"].clone();
    assert!(phase == "revert" || phase == "push", "host0 stopped inside its rollback: {phase}");
    for out in fleet.once_in_parallel(&[1, 2]) {
        out.assert_code(1);
    }
    // host0's restart converges on the same single revert, without a second page.
    fleet.once(0).assert_code(1);
    assert_converged(&fleet, &bad, &jobs);
}

#[test]
fn kill_9_of_a_host_after_it_made_its_revert_still_converges() {
    kill_one_host_mid_rollback_converges("revert.made");
}

#[test]
fn kill_9_of_a_host_right_after_its_push_still_converges() {
    kill_one_host_mid_rollback_converges("push.done");
}

impl Fleet {
    fn follow_once(&self, i: usize) -> Outcome {
        run(&mut self.sidecar(i, &["follow-once"]))
    }

    /// The jobs in host `i`'s queue.
    fn jobs(&self, i: usize) -> Vec<Value> {
        let dir = self.hosts[i].state.join("sidecar/jobs");
        let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => return Vec::new(),
        };
        names.retain(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().contains(".bulwark-tmp-"));
        names.sort();
        // A running daemon may be writing one (an empty reservation, a rename): skip it.
        names.iter().filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok()).collect()
    }

    /// The commit the remote's verified ref of `web` for `group` points at.
    fn verified(&self, group: &str) -> Option<String> {
        let out = self
            .env
            .git_outcome(&self.remote, &["rev-parse", "--verify", "-q", &format!("refs/bulwark/verified/web/{group}")]);
        (out.code == 0).then(|| out.stdout.trim().to_owned())
    }
}

const FOLLOW: &str = "[service.follow]\nevery = \"1s\"\n";

#[test]
fn follow_mode_picks_up_a_push_fast_forwards_the_checkout_and_deploys_once() {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    let before = fleet.head(0);
    let merge = fleet.push_merge("ok v2\n");

    let out = fleet.follow_once(0);
    out.assert_code(0);
    out.assert_stdout_contains("follow: moved");
    assert_eq!(fleet.head(0), merge, "the follower fast-forwarded the checkout itself");
    let jobs = fleet.jobs(0);
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0]["from"].as_str(), jobs[0]["to"].as_str()), (Some(before.as_str()), Some(merge.as_str())));
    assert_eq!(jobs[0]["source"], "follow");
    assert_eq!(fleet.events_of(0, "follow.moved").len(), 1);

    fleet.once(0).assert_code(0);
    assert_eq!(fleet.deploys(0), std::slice::from_ref(&merge));
    assert_eq!(fleet.deployed(0), "ok v2\n");

    // Nothing moved: up to date, nothing queued, nothing deployed again.
    fleet.follow_once(0).assert_code(0).assert_stdout_contains("follow: up to date");
    fleet.once(0).assert_code(0);
    assert_eq!(fleet.jobs(0).len(), 1);
    assert_eq!(fleet.deploys(0), std::slice::from_ref(&merge));
}

#[test]
fn follow_mode_never_moves_the_checkout_while_a_job_is_working() {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    let first = fleet.push_merge("ok v2\n");
    fleet.follow_once(0).assert_code(0);
    assert_eq!(fleet.head(0), first);
    // The job is in the middle of its deploy (killed there): the follower must wait.
    let killed =
        run(fleet.sidecar(0, &["once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", "stabilize"));
    assert_ne!(killed.code, 0);
    fleet.push_merge("ok v3\n");
    fleet.follow_once(0).assert_code(0).assert_stdout_contains("a job is working on the service");
    assert_eq!(fleet.head(0), first, "the checkout stays while the job is unfinished");
    fleet.once(0).assert_code(0);
    // Now it moves.
    fleet.follow_once(0).assert_code(0).assert_stdout_contains("follow: moved");
    fleet.once(0).assert_code(0);
    assert_eq!(fleet.deployed(0), "ok v3\n");
}

#[test]
fn a_failing_fetch_is_reported_once_and_deploys_nothing() {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    let checkout = fleet.hosts[0].checkout.clone();
    let gone = fleet.env.path("gone.git");
    fleet.env.git(&checkout, &["remote", "set-url", "origin", &file_url(&gone)]);
    fleet.push_merge("ok v2\n");
    let before = fleet.head(0);
    for _ in 0..3 {
        let out = fleet.follow_once(0);
        out.assert_code(3);
        out.assert_stderr_contains("cannot read the followed remote");
    }
    let failed = fleet.events_of(0, "follow.failed");
    assert_eq!(failed.len(), 1, "a failure streak is journaled once, not every period: {failed:?}");
    let status: Value = serde_json::from_str(&run(&mut fleet.sidecar(0, &["status", "--json"])).stdout).unwrap();
    assert_eq!(status["services"][0]["follow"]["failing"]["failures"], 3);
    assert!(fleet.jobs(0).is_empty(), "a failed fetch is not a deploy");
    assert_eq!(fleet.head(0), before);

    fleet.env.git(&checkout, &["remote", "set-url", "origin", &file_url(&fleet.remote)]);
    fleet.follow_once(0).assert_code(0).assert_stdout_contains("follow: moved");
    let recovered = fleet.events_of(0, "follow.recovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].fields["failures"], 3);
}

#[test]
fn follow_mode_keeps_following_during_a_freeze_and_the_held_job_takes_the_new_range() {
    let freeze = "[service.follow]\nevery = \"1s\"\n";
    let mut fleet = Fleet::new();
    fleet.add_host("host0", "web", freeze);
    let config = fleet.hosts[0].config.clone();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[[freeze]]\ndates = [\"2030-01-01\", \"2030-01-01\"]\n");
    std::fs::write(&config, text).unwrap();
    let at =
        |cmd: &mut Command| run(cmd.env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_NOW", "2030-01-01T12:00:00Z"));
    let start = fleet.head(0);
    fleet.push_merge("ok v2\n");
    at(&mut fleet.sidecar(0, &["follow-once"])).assert_code(0);
    at(&mut fleet.sidecar(0, &["once"])).assert_code(0);
    assert_eq!(fleet.jobs(0)[0]["phase"], "held");
    let second = fleet.push_merge("ok v3\n");
    at(&mut fleet.sidecar(0, &["follow-once"])).assert_code(0).assert_stdout_contains("follow: moved");
    assert_eq!(fleet.head(0), second, "following goes on inside the freeze");
    at(&mut fleet.sidecar(0, &["once"])).assert_code(0);
    assert!(fleet.deploys(0).is_empty(), "only deploys wait");
    let jobs = fleet.jobs(0);
    assert_eq!(jobs[0]["phase"], "skipped", "the held job was superseded");
    assert_eq!((jobs[1]["phase"].as_str(), jobs[1]["from"].as_str()), (Some("held"), Some(start.as_str())));
    run(fleet.sidecar(0, &["once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_NOW", "2030-01-02T00:00:00Z"))
        .assert_code(0);
    assert_eq!(fleet.deploys(0), std::slice::from_ref(&second), "one deploy of the whole range after the freeze");
}

/// host0 is staging (publishes `staging`), host1 production (gated on it).
fn staging_and_production(gate_timeout: &str) -> Fleet {
    let mut fleet = Fleet::new();
    fleet.add_host("staging", "web", "[service.follow]\nevery = \"1s\"\npublish = \"staging\"\n");
    fleet.add_host(
        "production",
        "web",
        &format!("[service.follow]\nevery = \"1s\"\ngate = \"staging\"\ngate_timeout = \"{gate_timeout}\"\n"),
    );
    fleet
}

#[test]
fn the_gate_holds_an_unverified_commit_and_lets_it_through_once_staging_verified_it() {
    let fleet = staging_and_production("1h");
    let before = fleet.head(1);
    let merge = fleet.push_merge("ok v2\n");
    fleet.follow_once(1).assert_code(0).assert_stdout_contains("waits for the gate");
    assert_eq!(fleet.head(1), before, "production does not move to an unverified commit");
    assert!(fleet.jobs(1).is_empty());

    // Staging follows, deploys, finds it healthy and publishes it.
    fleet.follow_once(0).assert_code(0);
    fleet.once(0).assert_code(0);
    assert_eq!(fleet.verified("staging"), Some(merge.clone()));
    let published = fleet.events_of(0, "gate.published");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].str("commit"), Some(merge.as_str()));
    assert_eq!(published[0].str("ref"), Some("refs/bulwark/verified/web/staging"));
    assert!(!published[0].host.is_empty() && published[0].str("at").is_some(), "host and time");

    fleet.follow_once(1).assert_code(0).assert_stdout_contains("follow: moved");
    fleet.once(1).assert_code(0);
    assert_eq!(fleet.deploys(1), std::slice::from_ref(&merge));
    assert_eq!(fleet.events_of(1, "gate.timeout").len(), 0);
}

#[test]
fn a_bad_change_staging_rolled_back_never_reaches_production() {
    let fleet = staging_and_production("1h");
    let before = fleet.head(1);
    let bad = fleet.push_merge("broken\n");
    fleet.follow_once(0).assert_code(0);
    fleet.once(0).assert_code(1);
    let revert = fleet.remote_main();
    assert_ne!(revert, bad);
    assert_eq!(fleet.verified("staging"), Some(revert.clone()), "staging verified its revert, not the bad change");
    fleet.follow_once(1).assert_code(0);
    fleet.once(1).assert_code(0);
    assert_eq!(fleet.deploys(1), std::slice::from_ref(&revert), "production went straight to the revert");
    assert_eq!(fleet.head(1), revert);
    assert_eq!(
        fleet.env.rev(&fleet.hosts[1].checkout, "HEAD^{tree}"),
        fleet.env.rev(&fleet.remote, &format!("{before}^{{tree}}"))
    );
}

#[test]
fn a_silent_staging_host_is_a_gate_timeout_notified_once_and_a_later_verification_still_deploys() {
    let fleet = staging_and_production("300ms");
    let merge = fleet.push_merge("ok v2\n");
    fleet.follow_once(1).assert_code(0);
    let timed_out = bulwark_testutil::wait_for(Duration::from_secs(20), || {
        fleet.follow_once(1).assert_code(0);
        (!fleet.events_of(1, "gate.timeout").is_empty()).then_some(())
    });
    assert!(timed_out.is_some(), "gate.timeout within the deadline");
    for _ in 0..2 {
        fleet.follow_once(1).assert_code(0);
    }
    let events = fleet.events_of(1, "gate.timeout");
    assert_eq!(events.len(), 1, "reported once per commit");
    assert_eq!(events[0].str("commit"), Some(merge.as_str()));
    assert_eq!(fleet.webhook.accepted_of("gate.timeout").len(), 1, "one notification");
    assert!(fleet.jobs(1).is_empty(), "nothing deployed");
    assert!(fleet.deploys(1).is_empty());
    let status = run(&mut fleet.sidecar(1, &["status"]));
    status.assert_code(0).assert_stdout_contains(&format!("web: follow: {} waits for the gate since", &merge[..12]));
    status.assert_stdout_contains("(gate.timeout reported)");

    // Staging wakes up and verifies it: production deploys it after all.
    fleet.follow_once(0).assert_code(0);
    fleet.once(0).assert_code(0);
    fleet.follow_once(1).assert_code(0).assert_stdout_contains("follow: moved");
    fleet.once(1).assert_code(0);
    assert_eq!(fleet.deploys(1), std::slice::from_ref(&merge));
    assert_eq!(fleet.webhook.accepted_of("gate.timeout").len(), 1);
}

fn a_follower_killed_mid_move_converges(point: &str) {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    let merge = fleet.push_merge("ok v2\n");
    let killed =
        run(fleet.sidecar(0, &["follow-once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", point));
    assert_ne!(killed.code, 0, "killed at {point}");
    assert!(fleet.jobs(0).is_empty(), "killed before the job was queued");
    // The worker finishes the move first (or the next follow step would): one job, one deploy.
    fleet.once(0).assert_code(0);
    assert_eq!(fleet.head(0), merge);
    assert_eq!(fleet.jobs(0).len(), 1);
    assert_eq!(fleet.jobs(0)[0]["phase"], "healthy");
    assert_eq!(fleet.deploys(0), std::slice::from_ref(&merge));
    fleet.follow_once(0).assert_code(0).assert_stdout_contains("follow: up to date");
    assert_eq!(fleet.events_of(0, "follow.moved").len(), 1);
}

#[test]
fn a_follower_killed_after_deciding_a_move_converges() {
    a_follower_killed_mid_move_converges("follow.decided");
}

#[test]
fn a_follower_killed_after_moving_the_checkout_converges() {
    a_follower_killed_mid_move_converges("follow.moved");
}

#[test]
fn follow_mode_reads_only_the_pinned_remote_of_a_production_checkout() {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    let checkout = fleet.hosts[0].checkout.clone();
    fleet.env.install(&checkout, "production");
    // Someone points the checkout at another repository (with a commit of its own).
    let other = fleet.env.bare("other.git");
    fleet.env.git(&fleet.dev, &["push", "-q", &file_url(&other), "main"]);
    fleet.env.commit_file(&fleet.dev, "status", "evil\n", "not from the pinned remote");
    fleet.env.git(&fleet.dev, &["push", "-q", &file_url(&other), "main"]);
    fleet.env.git(&checkout, &["remote", "set-url", "origin", &file_url(&other)]);
    let before = fleet.head(0);
    let out = fleet.follow_once(0);
    out.assert_code(3).assert_stderr_contains("where it was pinned at install");
    assert_eq!(fleet.head(0), before, "nothing was fetched from the other remote");
    assert!(fleet.jobs(0).is_empty());
    assert_eq!(fleet.events_of(0, "follow.failed").len(), 1);
}

#[test]
fn the_daemon_follows_the_remote_and_deploys_a_push() {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    let daemon = fleet
        .sidecar(0, &["run", "--poll", "100ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed when the test ends, however it ends.
    let daemon = KillOnDrop(daemon);
    let merge = fleet.push_merge("ok v2\n");
    let deployed = bulwark_testutil::wait_for(Duration::from_secs(30), || {
        (fleet.deploys(0) == [merge.clone()] && fleet.jobs(0).first().is_some_and(|j| j["phase"] == "healthy"))
            .then_some(())
    });
    drop(daemon);
    assert!(deployed.is_some(), "the daemon fetched, moved the checkout and deployed: {:?}", fleet.jobs(0));
    assert_eq!(fleet.head(0), merge);
}

#[test]
fn a_remote_rewritten_under_the_checkout_is_not_followed_and_is_reported_once() {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    fleet.push_merge("ok v2\n");
    fleet.follow_once(0).assert_code(0);
    fleet.once(0).assert_code(0);
    let deployed = fleet.head(0);
    // Someone force-pushes a history without the deployed commit.
    fleet.env.git(&fleet.dev, &["reset", "-q", "--hard", "HEAD~1"]);
    fleet.env.commit_file(&fleet.dev, "status", "ok other\n", "another history");
    fleet.env.git(&fleet.dev, &["push", "-q", "--force", "origin", "main"]);
    for _ in 0..2 {
        fleet.follow_once(0).assert_code(3).assert_stderr_contains("does not contain the checkout's commit");
    }
    assert_eq!(fleet.head(0), deployed, "history only moves forward");
    assert_eq!(fleet.jobs(0).len(), 1, "nothing queued");
    assert_eq!(fleet.events_of(0, "follow.failed").len(), 1, "reported once, not every period");
    assert!(fleet.events_of(0, "follow.recovered").is_empty(), "no flapping");
}

#[test]
fn an_idle_follow_step_reads_the_remote_with_one_ls_remote_and_fetches_nothing() {
    let fleet = Fleet::with_hosts(1, FOLLOW);
    fleet.push_merge("ok v2\n");
    fleet.follow_once(0).assert_code(0).assert_stdout_contains("follow: moved");
    fleet.once(0).assert_code(0);
    let trace = fleet.env.path("git-trace");
    run(fleet.sidecar(0, &["follow-once"]).env("GIT_TRACE", &trace))
        .assert_code(0)
        .assert_stdout_contains("up to date");
    let text = std::fs::read_to_string(&trace).unwrap();
    // Every git command the step ran, as `git <subcommand>` (the remote side's too).
    let commands: Vec<&str> = text.lines().filter(|l| l.contains("trace: built-in: git ")).collect();
    let network: Vec<&&str> = commands.iter().filter(|l| l.contains(" upload-pack") || l.contains(" fetch")).collect();
    let reads: Vec<&&str> = commands.iter().filter(|l| l.contains("git ls-remote")).collect();
    assert_eq!(reads.len(), 1, "one ls-remote when nothing moved: {commands:#?}");
    assert!(
        network.iter().all(|l| l.contains("upload-pack") && !l.contains(" fetch")),
        "no fetch when nothing moved: {commands:#?}"
    );
}

#[test]
fn follow_mode_as_root_works_on_a_pinned_checkout_owned_by_another_user() {
    if !bulwark_testutil::is_root() {
        return bulwark_testutil::skipped("needs root to hand the checkout to another user");
    }
    let fleet = Fleet::with_hosts(1, FOLLOW);
    let checkout = fleet.hosts[0].checkout.clone();
    fleet.env.install(&checkout, "production");
    let merge = fleet.push_merge("ok v2\n");
    let chown = |owner: &str| {
        run(Command::new("chown").args(["-R", owner]).arg(&checkout)).assert_code(0);
    };
    chown("nobody");
    let out = fleet.follow_once(0);
    chown("root");
    out.assert_code(0).assert_stdout_contains("follow: moved");
    assert!(!out.stderr.contains("dubious ownership"), "{}", out.stderr);
    assert_eq!(fleet.head(0), merge);
}

#[test]
fn the_server_lets_only_the_staging_sidecars_identity_publish_the_gate_ref() {
    let config = "[server]\nallow = [\"merger-bot\"]\nverifiers = [\"staging-sidecar\"]\n";
    let mut fleet = Fleet::guarded(config);
    fleet.add_host("staging", "web", "[service.follow]\nevery = \"1s\"\npublish = \"staging\"\n");
    let first = fleet.push_merge("ok v2\n");
    fleet.follow_once(0).assert_code(0);
    // Another identity (say, the merge bot's credentials on the staging host): refused.
    run(fleet.sidecar(0, &["once"]).env("GL_USERNAME", "merger-bot")).assert_code(0);
    assert_eq!(fleet.verified("staging"), None, "the server refused the ref");
    let failed = fleet.events_of(0, "gate.publish_failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].str("error").unwrap().contains("promotion gate ref"), "{failed:?}");
    // The staging sidecar's own identity: accepted.
    let second = fleet.push_merge("ok v3\n");
    fleet.follow_once(0).assert_code(0);
    run(fleet.sidecar(0, &["once"]).env("GL_USERNAME", "staging-sidecar")).assert_code(0);
    assert_eq!(fleet.verified("staging"), Some(second.clone()));
    assert_ne!(first, second);
    assert_eq!(fleet.events_of(0, "gate.published").len(), 1);
}

#[test]
fn kill_9_of_a_host_holding_its_own_unpushed_revert_still_converges() {
    // Killed right after entering `push` with its own revert saved: it must drop that
    // revert for the one the others pushed, not push a second.
    kill_one_host_mid_rollback_converges("push");
}
