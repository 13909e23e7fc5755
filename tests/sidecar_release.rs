//! End-to-end tests of the sidecar's release mode (`[service.release]`): a bare origin, a
//! production clone, a real build script (it writes files, and fails when told to), a
//! deploy script that logs where `current` points, and a loopback service that answers from
//! the release `current` points at.

use std::path::{Path, PathBuf};

use bulwark_testutil::http::{HttpServer, Receiver, Response};
use bulwark_testutil::{Outcome, TestEnv, file_url, run, write_script};
use serde_json::Value;

struct Fixture {
    env: TestEnv,
    remote: PathBuf,
    dev: PathBuf,
    prod: PathBuf,
    releases: PathBuf,
    current: PathBuf,
    /// While this file exists, the build writes part of its output and fails.
    fail_build: PathBuf,
    deploy_log: PathBuf,
    config: PathBuf,
    _service: HttpServer,
    webhook: Receiver,
}

impl Fixture {
    fn new(keep: u32) -> Self {
        Self::with_mode(keep, true)
    }

    /// `release`: false is plain checkout mode (the baseline): the deploy command copies the
    /// checkout's `status` into a fixed directory that `current` points at.
    fn with_mode(keep: u32, release: bool) -> Self {
        let env = TestEnv::new();
        let seed = env.init("seed");
        env.commit_file(&seed, "status", "ok\n", "initial commit");
        let remote = env.bare("server.git");
        env.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
        let dev = env.clone_repo(&remote, "dev");
        let prod = env.clone_repo(&remote, "prod");
        let releases = env.path("srv/releases");
        let current = env.path("srv/current");
        let fail_build = env.path("fail-build");
        let deploy_log = env.path("deploys.log");
        let build = env.path("build.sh");
        write_script(
            &build,
            &format!(
                "#!/bin/sh\nset -e\necho \"$BULWARK_COMMIT\" > built-commit\necho half > partial-output\nif [ -e '{fail}' ]; then echo 'the build failed on purpose' >&2; exit 4; fi\ncp status served-status\n",
                fail = fail_build.display()
            ),
        );
        let deploy = env.path("deploy.sh");
        write_script(&deploy, &format!("#!/bin/sh\nreadlink '{}' >> '{}'\n", current.display(), deploy_log.display()));
        let mut release_section = String::new();
        if release {
            release_section = format!(
                "[service.release]\ndir = \"{}\"\ncurrent = \"{}\"\nbuild = [\"{}\"]\nkeep = {keep}\nstale_after = \"20m\"\n",
                releases.display(),
                current.display(),
                build.display()
            );
        } else {
            let plain = env.path("srv/plain");
            std::fs::create_dir_all(&plain).unwrap();
            std::fs::write(plain.join("served-status"), "ok\n").unwrap();
            std::os::unix::fs::symlink(&plain, &current).unwrap();
            write_script(&deploy, &format!("#!/bin/sh\ncp status '{}/served-status'\n", plain.display()));
        }
        let served = current.join("served-status");
        let service = HttpServer::start(move |_req| match std::fs::read_to_string(&served) {
            Ok(s) if s.starts_with("ok") => Response::ok("ok"),
            _ => Response::status(500).body("broken"),
        });
        let webhook = Receiver::start();
        let config = env.write_config(
            "bulwark.toml",
            &format!(
                r#"[[service]]
name = "web"
checkout = "{prod}"
deploy = ["{deploy}"]
stabilize = "50ms"
[service.health]
url = "{health}"
timeout = "300ms"
attempts = 2
interval = "50ms"
{release_section}[[notify]]
kind = "webhook"
url = "{hook}"
attempts = 1
timeout = "2s"
"#,
                prod = prod.display(),
                deploy = deploy.display(),
                health = service.url("/health"),
                hook = webhook.url("/hook"),
            ),
        );
        Self { env, remote, dev, prod, releases, current, fail_build, deploy_log, config, _service: service, webhook }
    }

    fn sidecar(&self, args: &[&str]) -> std::process::Command {
        self.env.sidecar(&self.config, args)
    }

    fn once(&self) -> Outcome {
        run(&mut self.sidecar(&["once"]))
    }

    fn once_crashing_at(&self, point: &str) -> Outcome {
        run(self.sidecar(&["once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", point))
    }

    fn head(&self) -> String {
        self.env.rev(&self.prod, "HEAD")
    }

    /// The first release: a job for the checkout's commit, built and promoted.
    fn bootstrap(&self) -> String {
        let head = self.head();
        bulwark_core::jobs::enqueue(&self.env.state_dir(), "web", &head, &head, "cli").unwrap();
        self.once().assert_code(0);
        assert_eq!(self.current_release().as_deref(), Some(head.as_str()), "the first release is promoted");
        head
    }

    /// A `--no-ff` merge on `dev` setting `status`, pushed; production pulls and the job is
    /// queued as post-merge would. Returns (from, to, job id).
    fn merge_and_enqueue(&self, status: &str) -> (String, String, String) {
        let dev = &self.dev;
        // The remote may have moved (the sidecar's revert).
        self.env.git(dev, &["pull", "-q", "--ff-only"]);
        let branch = format!("feature-{}", self.env.git(dev, &["rev-list", "--count", "HEAD"]));
        self.env.git(dev, &["switch", "-q", "-c", &branch]);
        self.env.commit_file(dev, "status", status, "feature: change status");
        self.env.git(dev, &["switch", "-q", "main"]);
        self.env.git(dev, &["merge", "-q", "--no-ff", "-m", &format!("Merge branch '{branch}'"), &branch]);
        self.env.git(dev, &["push", "-q", "origin", "main"]);
        let from = self.head();
        self.env.git(&self.prod, &["pull", "-q", "--ff-only"]);
        let to = self.head();
        let id = bulwark_core::jobs::enqueue(&self.env.state_dir(), "web", &from, &to, "post-merge").unwrap();
        (from, to, id)
    }

    /// The release `current` points at (its directory name).
    fn current_release(&self) -> Option<String> {
        let target = std::fs::read_link(&self.current).ok()?;
        assert_eq!(target.parent(), Some(self.releases.as_path()), "current points into the release dir");
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    fn release_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.releases)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn record(&self, release: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.releases.join(release).join(".bulwark-release.json")).unwrap())
            .unwrap()
    }

    fn deploys(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.deploy_log).unwrap_or_default();
        text.lines().map(|l| Path::new(l).file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    fn job(&self, id: &str) -> Value {
        let path = self.env.state_dir().join("sidecar/jobs").join(format!("{id}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn reverts_on_remote(&self) -> Vec<String> {
        let out = self.env.git(
            &self.remote,
            &["log", "--format=%H %(trailers:key=Bulwark-Revert-Of,valueonly=true,separator=%x20)", "main"],
        );
        out.lines().filter(|l| l.trim().contains(' ')).map(|l| l[..40].to_owned()).collect()
    }

    fn count(&self, kind: &str) -> usize {
        self.env.events_of(kind).len()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = run(&mut self.sidecar(args));
        out.assert_code(0);
        serde_json::from_str(&out.stdout).unwrap()
    }
}

/// The end state of a bad release rolled back by re-promotion: `current` on `good`, one
/// revert with `good`'s tree on the remote served by `good` (no rebuild), one outcome, one
/// notification.
#[track_caller]
fn assert_repromoted(fx: &Fixture, good: &str, bad: &str, id: &str) {
    assert_eq!(fx.current_release().as_deref(), Some(good), "current is back on the good release");
    let reverts = fx.reverts_on_remote();
    assert_eq!(reverts.len(), 1, "exactly one revert: {reverts:?}");
    let revert = &reverts[0];
    assert_eq!(fx.env.rev(&fx.remote, "main"), *revert, "the revert is the remote's tip");
    let tree = |rev: &str| fx.env.rev(&fx.remote, &format!("{rev}^{{tree}}"));
    assert_eq!(tree(revert), tree(good), "the revert restores the good tree");
    assert_eq!(fx.head(), *revert, "the checkout follows the remote to the revert");
    let serves = fx.record(good)["serves"].clone();
    assert!(serves.as_array().unwrap().iter().any(|c| c == revert.as_str()), "{serves}");
    assert!(!fx.releases.join(revert).exists(), "the revert is served without a rebuild");
    assert!(fx.releases.join(bad).is_dir(), "the bad release stays built (for a look)");
    let job = fx.job(id);
    assert_eq!(job["phase"], "rolled-back", "{job:#}");
    assert_eq!(fx.count("rollback.complete"), 1);
    assert_eq!(fx.count("release.repromoted"), 1);
    assert_eq!(fx.webhook.accepted_of("rollback.complete").len(), 1, "one notification");
    let status = fx.json(&["status", "--json"]);
    assert_eq!(status["services"][0]["known_good_release"], good);
    assert_eq!(status["services"][0]["known_good"], revert.as_str());
}

#[test]
fn a_good_release_is_built_published_and_promoted() {
    let fx = Fixture::new(5);
    let first = fx.bootstrap();
    let (_, to, id) = fx.merge_and_enqueue("ok again\n");
    let out = fx.once();
    out.assert_code(0).assert_stdout_contains("release.promoted");
    assert_eq!(fx.current_release().as_deref(), Some(to.as_str()));
    let release = fx.releases.join(&to);
    assert_eq!(std::fs::read_to_string(release.join("built-commit")).unwrap().trim(), to, "BULWARK_COMMIT is set");
    assert_eq!(std::fs::read_to_string(release.join("served-status")).unwrap(), "ok again\n", "built from the tree");
    assert!(!fx.releases.join(format!("{to}.tmp")).exists());
    let record = fx.record(&to);
    assert_eq!(record["commit"], to.as_str());
    assert!(record["digest"].as_str().unwrap().starts_with("sha256:"), "{record}");
    assert_eq!(record["job"], id.as_str());
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy");
    let stamps = job["release"]["stamps"].as_array().unwrap();
    let phases: Vec<&str> = stamps.iter().map(|s| s["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["build", "publish", "promote"]);
    assert!(stamps.iter().all(|s| s["started"].is_string() && s["done"].is_string()), "a timestamp per phase: {job:#}");
    assert_eq!(job["release"]["expected"], first.as_str(), "the compare-and-set's expectation");
    assert_eq!(fx.deploys(), [first.clone(), to.clone()], "the deploy command ran after each promotion");
    for kind in ["release.built", "release.published", "release.promoted"] {
        assert_eq!(fx.count(kind), 2, "{kind}: once per release");
    }

    let listed = fx.json(&["releases", "--service", "web", "--json"]);
    assert_eq!(listed["current"], to.as_str());
    let rows = listed["releases"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["release"], to.as_str(), "newest first");
    assert_eq!(rows[0]["current"], true);
    assert_eq!(rows[1]["release"], first.as_str());
    let plain = run(&mut fx.sidecar(&["releases", "--service", "web"]));
    plain.assert_code(0).assert_stdout_contains("(current, known good)");
    let status = fx.json(&["status", "--json"]);
    assert_eq!(status["services"][0]["current_release"], to.as_str());
    fx.once().assert_code(0);
    assert_eq!(fx.deploys().len(), 2, "nothing left to do");
}

#[test]
fn a_bad_release_is_re_promoted_away_on_disk_and_reverted_in_git() {
    let fx = Fixture::new(5);
    let good = fx.bootstrap();
    let (_, bad, id) = fx.merge_and_enqueue("broken\n");
    let out = fx.once();
    out.assert_code(1).assert_stdout_contains("release.repromoted");
    assert_repromoted(&fx, &good, &bad, &id);
    assert_eq!(fx.deploys(), [good.clone(), bad.clone(), good.clone()], "promote, deploy; re-promote, deploy");
    let job = fx.job(&id);
    let steps: Vec<&str> = job["timeline"].as_array().unwrap().iter().map(|s| s["phase"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "pending",
            "build",
            "publish",
            "promote",
            "deploy",
            "stabilize",
            "health",
            "repromote",
            "revert",
            "push",
            "redeploy",
            "verify",
            "rolled-back"
        ]
    );
    // Re-promotion came before anything in git.
    let at =
        |phase: &str| job["timeline"].as_array().unwrap().iter().find(|s| s["phase"] == phase).unwrap()["ts"].clone();
    assert!(job["release"]["repromoted_at"].as_str().unwrap() <= at("revert").as_str().unwrap());
    let hook = fx.webhook.requests()[0].json();
    let text = hook["text"].as_str().unwrap();
    assert!(text.contains("Switched `current` back from release"), "{text}");
    assert!(hook["fields"]["timings"]["verdict_to_repromoted_s"].is_number(), "{hook}");
    fx.once().assert_code(0);
    assert_eq!(fx.reverts_on_remote().len(), 1);
}

/// Kill -9 at `point` during a bad release, start again: the same end state.
fn crash_and_converge(point: &str) {
    let fx = Fixture::new(5);
    let good = fx.bootstrap();
    let (_, bad, id) = fx.merge_and_enqueue("broken\n");
    let crashed = fx.once_crashing_at(point);
    assert_eq!(crashed.code, -1, "killed at {point}\n{}{}", crashed.stdout, crashed.stderr);
    let after = fx.once();
    after.assert_code(i32::from(point != "notify"));
    assert_repromoted(&fx, &good, &bad, &id);
    for kind in ["release.published", "release.promoted", "rollback.pushed", "rollback.complete"] {
        assert_eq!(fx.count(kind), if kind.starts_with("release") { 2 } else { 1 }, "{kind} after a crash at {point}");
    }
    let built = fx.release_names();
    assert_eq!(
        built,
        {
            let mut v = vec![good.clone(), bad.clone()];
            v.sort();
            v
        },
        "no half-built directory left"
    );
    fx.once().assert_code(0);
    assert_eq!(fx.webhook.requests().len(), 1);
}

macro_rules! crash_tests {
    ($($name:ident => $point:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            crash_and_converge($point);
        }
    )*};
}

crash_tests! {
    release_kill_at_build_converges => "build",
    release_kill_while_building_converges => "build.running",
    release_kill_after_the_build_before_its_rename_converges => "build.built",
    release_kill_at_publish_converges => "publish",
    release_kill_at_promote_converges => "promote",
    release_kill_between_the_new_link_and_its_rename_converges => "promote.linked",
    release_kill_at_deploy_converges => "deploy",
    release_kill_at_health_converges => "health",
    release_kill_at_repromote_converges => "repromote",
    release_kill_after_the_switch_back_before_the_deploy_converges => "repromote.switched",
    release_kill_at_revert_converges => "revert",
    release_kill_at_push_converges => "push",
    release_kill_at_redeploy_converges => "redeploy",
    release_kill_at_verify_converges => "verify",
    release_kill_before_notify_converges => "notify",
}

#[test]
fn a_failed_build_escalates_never_promotes_the_half_built_release_and_reverts_nothing() {
    let fx = Fixture::new(5);
    let good = fx.bootstrap();
    std::fs::write(&fx.fail_build, "").unwrap();
    let (from, to, id) = fx.merge_and_enqueue("ok, but the build breaks\n");
    let out = fx.once();
    out.assert_code(1);
    assert_eq!(fx.current_release().as_deref(), Some(good.as_str()), "still on the good release");
    assert!(!fx.releases.join(&to).exists(), "the half-built release was never renamed into place");
    assert!(fx.releases.join(format!("{to}.tmp/partial-output")).exists(), "it is left for a look");
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated");
    let why = job["escalation"].as_str().unwrap();
    assert!(why.contains("the build of") && why.contains("failed on purpose"), "{why}");
    assert!(why.contains("nothing was promoted or reverted"), "{why}");
    assert!(fx.reverts_on_remote().is_empty(), "a failed build is not the change's verdict");
    assert_eq!(fx.count("release.build_failed"), 1);
    assert_eq!(fx.deploys(), std::slice::from_ref(&good), "no deploy ran");

    // Fixed (the disk had room again): the same change builds from nothing and promotes.
    std::fs::remove_file(&fx.fail_build).unwrap();
    let again = run(&mut fx.sidecar(&["enqueue", "--service", "web", "--from", &from, "--to", &to]));
    again.assert_code(0);
    fx.once().assert_code(0);
    assert_eq!(fx.current_release().as_deref(), Some(to.as_str()));
    assert!(!fx.releases.join(format!("{to}.tmp")).exists());
}

#[test]
fn two_jobs_for_one_service_cannot_promote_over_each_other() {
    let fx = Fixture::new(5);
    let good = fx.bootstrap();
    // Sidecar A stops right after entering promote: it expects `current` at `good`.
    let (_, first, id_a) = fx.merge_and_enqueue("ok first\n");
    assert_eq!(fx.once_crashing_at("promote").code, -1);
    // Sidecar B (its own state directory, the same releases) deploys a later change.
    let other_state = fx.env.path("state-b");
    let (_, second, _) = {
        let dev = &fx.dev;
        fx.env.commit_file(dev, "status", "ok second\n", "second change");
        fx.env.git(dev, &["push", "-q", "origin", "main"]);
        let from = fx.head();
        fx.env.git(&fx.prod, &["pull", "-q", "--ff-only"]);
        let to = fx.head();
        let id = bulwark_core::jobs::enqueue(&other_state, "web", &from, &to, "post-merge").unwrap();
        (from, to, id)
    };
    let b = run(fx.sidecar(&["once"]).env("BULWARK_STATE_DIR", &other_state));
    b.assert_code(0).assert_stdout_contains("release.promoted");
    assert_eq!(fx.current_release().as_deref(), Some(second.as_str()), "B's promotion won");
    // A resumes: `current` is no longer where it expected, so it promotes nothing and says so.
    let a = fx.once();
    a.assert_code(1).assert_stdout_contains("release.cas_failed");
    assert_eq!(fx.current_release().as_deref(), Some(second.as_str()), "A did not promote over B");
    let job = fx.job(&id_a);
    assert_eq!(job["phase"], "escalated");
    let why = job["escalation"].as_str().unwrap();
    assert!(why.contains("compare-and-set") && why.contains(&second) && why.contains(&good), "{why}");
    assert!(fx.releases.join(&first).is_dir(), "A's release stays built");
    assert!(fx.reverts_on_remote().is_empty());
}

#[test]
fn pruning_keeps_keep_releases_and_always_the_current_and_the_last_known_good() {
    let fx = Fixture::new(1);
    let c0 = fx.bootstrap();
    let (_, g1, _) = fx.merge_and_enqueue("ok 1\n");
    fx.once().assert_code(0);
    let mut want = vec![c0.clone(), g1.clone()];
    want.sort();
    assert_eq!(fx.release_names(), want, "keep = 1, yet the current one and the last known-good both stay");
    let (_, g2, _) = fx.merge_and_enqueue("ok 2\n");
    fx.once().assert_code(0);
    let mut want = vec![g1.clone(), g2.clone()];
    want.sort();
    assert_eq!(fx.release_names(), want, "the oldest release went");
    assert_eq!(fx.count("release.pruned"), 1);
    let (_, bad, id) = fx.merge_and_enqueue("broken\n");
    fx.once().assert_code(1);
    assert_eq!(fx.current_release().as_deref(), Some(g2.as_str()), "the last known-good was kept to go back to");
    let mut want = vec![g2.clone(), bad.clone()];
    want.sort();
    assert_eq!(fx.release_names(), want);
    assert_eq!(fx.job(&id)["phase"], "rolled-back");
}

#[test]
fn finished_jobs_and_their_incidents_are_pruned_by_age() {
    let fx = Fixture::new(5);
    fx.bootstrap();
    let (_, _, old) = fx.merge_and_enqueue("broken\n");
    fx.once().assert_code(1);
    let incident = fx.env.state_dir().join("incidents").join(format!("{old}.md"));
    assert!(incident.exists());
    // Age the finished job past keep_history (30 days by default).
    let path = fx.env.state_dir().join("sidecar/jobs").join(format!("{old}.json"));
    let mut job = fx.job(&old);
    job["finished"] = Value::from("2020-01-01T00:00:00.000Z");
    std::fs::write(&path, serde_json::to_vec(&job).unwrap()).unwrap();
    let (_, _, recent) = fx.merge_and_enqueue("ok later\n");
    fx.once().assert_code(0);
    assert!(!path.exists() && !incident.exists(), "the old job and its incident summary are gone");
    assert_eq!(fx.job(&recent)["phase"], "healthy", "a recent job stays");
    let pruned = fx.env.events_of("sidecar.pruned");
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].fields["jobs"][0], old.as_str());
}

#[test]
fn promote_without_confirm_destructive_changes_nothing_and_with_it_switches_and_deploys() {
    let fx = Fixture::new(5);
    let c0 = fx.bootstrap();
    let (_, g1, _) = fx.merge_and_enqueue("ok 1\n");
    fx.once().assert_code(0);
    let events = fx.env.events().len();
    let dry = run(&mut fx.sidecar(&["promote", "--service", "web", "--release", &c0[..12]]));
    dry.assert_code(2).assert_stdout_contains("would switch").assert_stderr_contains("--confirm-destructive");
    assert_eq!(fx.current_release().as_deref(), Some(g1.as_str()), "nothing changed");
    assert_eq!(fx.deploys().len(), 2);
    assert_eq!(fx.env.events().len(), events, "nothing journaled");

    let unknown = run(&mut fx.sidecar(&["promote", "--service", "web", "--release", "ffff", "--confirm-destructive"]));
    unknown.assert_code(2).assert_stderr_contains("no published release");

    let done = run(&mut fx.sidecar(&["promote", "--service", "web", "--release", &c0[..12], "--confirm-destructive"]));
    done.assert_code(0).assert_stdout_contains("release.promoted");
    assert_eq!(fx.current_release().as_deref(), Some(c0.as_str()));
    assert_eq!(fx.deploys().last(), Some(&c0), "the deploy command ran");
    let promoted = fx.env.events_of("release.promoted");
    assert_eq!(promoted.last().unwrap().str("by"), Some("cli"));
    let status = fx.json(&["status", "--json"]);
    assert_eq!(status["services"][0]["known_good_release"], c0.as_str(), "a person vouched for it");
}

#[test]
fn status_shows_a_release_jobs_phase_its_age_and_stale() {
    let fx = Fixture::new(5);
    fx.bootstrap();
    let (_, _, id) = fx.merge_and_enqueue("ok now\n");
    assert_eq!(fx.once_crashing_at("publish").code, -1);
    let status = fx.json(&["status", "--json"]);
    let open = &status["services"][0]["release_jobs"][0];
    assert_eq!(open["id"], id.as_str());
    assert_eq!(open["phase"], "publish");
    assert_eq!(open["stale"], false);
    // Its worker vanished an hour ago (longer than stale_after = 20m).
    let path = fx.env.state_dir().join("sidecar/jobs").join(format!("{id}.json"));
    let mut job = fx.job(&id);
    job["updated"] =
        Value::from(jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(1)).unwrap().to_string());
    std::fs::write(&path, serde_json::to_vec(&job).unwrap()).unwrap();
    let status = fx.json(&["status", "--json"]);
    let open = &status["services"][0]["release_jobs"][0];
    assert_eq!(open["stale"], true, "{status:#}");
    assert!(open["phase_age_s"].as_u64().unwrap() >= 3600);
    let plain = run(&mut fx.sidecar(&["status"]));
    plain
        .assert_code(0)
        .assert_stdout_contains(&format!("web: job {id} in phase publish for 1h"))
        .assert_stdout_contains("stale");
    // Any agent picks it up from its phase.
    fx.once().assert_code(0);
    assert_eq!(fx.job(&id)["phase"], "healthy");
}

#[test]
fn a_reader_of_current_never_sees_a_missing_or_half_written_target_while_it_is_switched() {
    let fx = Fixture::new(5);
    let c0 = fx.bootstrap();
    let (_, g1, _) = fx.merge_and_enqueue("ok 1\n");
    fx.once().assert_code(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let served = fx.current.join("served-status");
    let (reads, misses) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut misses) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match std::fs::read_to_string(&served) {
                    Ok(text) if text == "ok\n" || text == "ok 1\n" => {}
                    other => misses.push(format!("{other:?}")),
                }
                reads += 1;
            }
            (reads, misses)
        });
        for round in 0..100 {
            let target = if round % 2 == 0 { &c0 } else { &g1 };
            run(&mut fx.sidecar(&["promote", "--service", "web", "--release", target, "--confirm-destructive"]))
                .assert_code(0);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(reads > 100, "the reader ran ({reads} reads)");
    assert!(
        misses.is_empty(),
        "{} of {reads} reads saw no or another target: {:?}",
        misses.len(),
        &misses[..misses.len().min(5)]
    );
}

/// Milliseconds between two of a job's RFC 3339 timestamps.
fn ms_between(a: &Value, b: &Value) -> i64 {
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_millisecond();
    at(b) - at(a)
}

/// A failed verdict rolled back by re-promotion vs today's revert → push → redeploy, in the
/// same run, interleaved. Prints medians (milliseconds after the verdict):
/// `cargo test --test sidecar_release bench_ -- --ignored --nocapture --test-threads 1`.
#[test]
#[ignore = "benchmark: run by hand (see BENCHMARKS.md)"]
#[allow(clippy::print_stdout, reason = "a benchmark prints its results")]
fn bench_repromote_against_revert_and_redeploy() {
    let rounds = 7;
    let (mut switched, mut release_deploy, mut plain_deploy, mut plain_back) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let fx = Fixture::new(5);
        fx.bootstrap();
        let (_, _, id) = fx.merge_and_enqueue("broken\n");
        fx.once().assert_code(1);
        let job = fx.job(&id);
        let verdict = &job["checks"].as_array().unwrap().iter().find(|c| c["step"] == "health").unwrap()["finished"];
        switched.push(ms_between(verdict, &job["release"]["repromoted_at"]));
        let deploy = job["deploys"].as_array().unwrap().iter().find(|d| d["step"] == "repromote").unwrap();
        release_deploy.push(ms_between(verdict, &deploy["started"]));

        let fx = Fixture::with_mode(5, false);
        let (_, _, id) = fx.merge_and_enqueue("broken\n");
        fx.once().assert_code(1);
        let job = fx.job(&id);
        let verdict = &job["checks"].as_array().unwrap().iter().find(|c| c["step"] == "health").unwrap()["finished"];
        let deploy = job["deploys"].as_array().unwrap().iter().find(|d| d["step"] == "redeploy").unwrap();
        plain_deploy.push(ms_between(verdict, &deploy["started"]));
        plain_back.push(ms_between(verdict, &deploy["finished"]));
    }
    let median = |v: &mut Vec<i64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("rounds: {rounds}; load average: {}", load.trim());
    println!("release: verdict -> current switched back: median {} ms ({switched:?})", median(&mut switched));
    println!(
        "release: verdict -> deploy command starts: median {} ms ({release_deploy:?})",
        median(&mut release_deploy)
    );
    println!("plain:   verdict -> redeploy command starts: median {} ms ({plain_deploy:?})", median(&mut plain_deploy));
    println!("plain:   verdict -> old version deployed again: median {} ms ({plain_back:?})", median(&mut plain_back));
}

/// The symlink switch under a reader resolving `current` in a tight loop: 10,000 switches
/// in-process (the store the sidecar uses), every read must see a whole release.
#[test]
#[ignore = "benchmark: run by hand (see BENCHMARKS.md)"]
#[allow(clippy::print_stdout, reason = "a benchmark prints its results")]
fn bench_promote_atomicity_under_a_reader_loop() {
    use bulwark_sidecar::release::store::Store;
    let fx = Fixture::new(5);
    let c0 = fx.bootstrap();
    let (_, g1, _) = fx.merge_and_enqueue("ok 1\n");
    fx.once().assert_code(0);
    let config = bulwark_core::Config::load_file(&fx.config).unwrap().config;
    let release = config.services[0].release.clone().unwrap();
    let store = Store { config: &release };
    let switches = 10_000;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let served = fx.current.join("served-status");
    let started = std::time::Instant::now();
    let (reads, misses) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut reads, mut misses) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match std::fs::read_to_string(&served) {
                    Ok(text) if text == "ok\n" || text == "ok 1\n" => {}
                    _ => misses += 1,
                }
                reads += 1;
            }
            (reads, misses)
        });
        let mut at = g1.clone();
        for _ in 0..switches {
            let next = if at == g1 { c0.clone() } else { g1.clone() };
            store.promote(&next, Some(&at)).unwrap();
            at = next;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    let elapsed = started.elapsed();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.trim());
    println!(
        "{switches} switches in {:.2} s ({:.0} µs each, fsync included); {reads} reads, {misses} saw a missing or other target",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(switches)
    );
    assert_eq!(misses, 0);
}

#[test]
fn a_service_switched_to_release_mode_builds_its_first_release_for_the_commit_it_runs() {
    let fx = Fixture::new(5);
    // Plain checkout mode had verified the checkout's commit.
    let services = fx.env.state_dir().join("sidecar/services");
    std::fs::create_dir_all(&services).unwrap();
    let known = serde_json::json!({"known_good": fx.head(), "known_good_at": "2026-01-01T00:00:00.000Z", "known_good_job": "x"});
    std::fs::write(services.join("web.json"), known.to_string()).unwrap();
    fx.bootstrap();
    assert_eq!(fx.count("release.promoted"), 1);
}
