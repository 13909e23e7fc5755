//! End-to-end tests of `bulwark-sidecar`: a bare origin, a production clone, a deploy
//! script that "deploys" the checkout's `status` file and counts its runs, a loopback health
//! server that answers from the deployed file, and a loopback webhook receiver.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulwark_testutil::http::{HttpServer, Receiver, Response};
use bulwark_testutil::{Outcome, TestEnv, file_url, run, set_executable};
use serde_json::Value;

/// How the loopback health server behaves (healthy: the deployed status starts with `ok`).
#[derive(Clone, Copy)]
enum Health {
    /// 200 when the deployed status is `ok`, 500 otherwise.
    FromDeploy,
    /// 200 until a broken status is deployed, 500 from then on, whatever is deployed next
    /// (the cause is elsewhere and struck during the change: the revert does not help).
    BreaksWithTheChange,
    /// Healthy when the function says so, given the number of deploys so far and whether
    /// the file `repaired` exists in the sandbox (a person fixed the outside cause).
    Scripted(fn(usize, bool) -> bool),
    /// 200 when `ok`; otherwise hangs for 30 s.
    HangWhenBroken,
    /// 200 with a body of `ok`, or else a body trickled one byte every 100 ms.
    TrickleWhenBroken,
}

struct Options {
    health: Health,
    stabilize: &'static str,
    deploy: Option<Vec<String>>,
    deploy_timeout: &'static str,
    /// The deploy script exits 3 when the status it deploys is not `ok`.
    strict_deploy: bool,
    /// `health.body_contains`.
    body_contains: Option<&'static str>,
    /// TOML appended to the config (e.g. `[[freeze]]` windows).
    extra: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            health: Health::FromDeploy,
            stabilize: "50ms",
            deploy: None,
            deploy_timeout: "20s",
            strict_deploy: false,
            body_contains: None,
            extra: "",
        }
    }
}

struct Fixture {
    env: TestEnv,
    remote: PathBuf,
    dev: PathBuf,
    prod: PathBuf,
    deployed: PathBuf,
    deploy_log: PathBuf,
    config: PathBuf,
    _health: HttpServer,
    webhook: Receiver,
}

impl Fixture {
    fn new() -> Self {
        Self::with(Options::default())
    }

    fn with(options: Options) -> Self {
        let env = TestEnv::new();
        let seed = env.init("seed");
        env.commit_file(&seed, "status", "ok\n", "initial commit");
        env.commit_file(&seed, "app.txt", "v1\n", "app v1");
        let remote = env.bare("server.git");
        env.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
        let dev = env.clone_repo(&remote, "dev");
        let prod = env.clone_repo(&remote, "prod");

        let deployed = env.path("deployed-status");
        let deploy_log = env.path("deploys.log");
        let script = env.path("deploy.sh");
        let check =
            if options.strict_deploy { "grep -q '^ok' status || { echo 'bad status' >&2; exit 3; }\n" } else { "" };
        std::fs::write(&script, format!("#!/bin/sh\nset -e\ngit rev-parse HEAD >> \"$2\"\n{check}cp status \"$1\"\n"))
            .unwrap();
        set_executable(&script);
        // Production runs the initial commit.
        std::fs::write(&deployed, "ok\n").unwrap();

        let deployed_for_health = deployed.clone();
        let log_for_health = deploy_log.clone();
        let repaired = env.path("repaired");
        let mode = options.health;
        let struck = std::sync::atomic::AtomicBool::new(false);
        let health = HttpServer::start(move |_req| {
            let ok = std::fs::read_to_string(&deployed_for_health).is_ok_and(|s| s.starts_with("ok"));
            if !ok {
                struck.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let struck = struck.load(std::sync::atomic::Ordering::SeqCst);
            let deploys = std::fs::read_to_string(&log_for_health).unwrap_or_default().lines().count();
            match (mode, ok) {
                (Health::Scripted(healthy), _) if !healthy(deploys, repaired.exists()) => {
                    Response::status(500).body("broken")
                }
                (Health::BreaksWithTheChange, _) if struck => Response::status(500).body("broken"),
                (Health::FromDeploy | Health::BreaksWithTheChange, false) => Response::status(500).body("broken"),
                (Health::HangWhenBroken, false) => Response::ok("late").delay(Duration::from_secs(30)),
                (Health::TrickleWhenBroken, false) => {
                    Response::ok(&"x".repeat(100)).trickle(Duration::from_millis(100))
                }
                (Health::Scripted(_), _) | (_, true) => Response::ok("ok"),
            }
        });
        let webhook = Receiver::start();

        let deploy = options.deploy.unwrap_or_else(|| {
            vec![script.display().to_string(), deployed.display().to_string(), deploy_log.display().to_string()]
        });
        let config = env.write_config(
            "bulwark.toml",
            &format!(
                r#"[[service]]
name = "web"
checkout = "{prod}"
deploy = {deploy:?}
deploy_timeout = "{timeout}"
stabilize = "{stabilize}"
[service.health]
url = "{health}"
timeout = "300ms"
attempts = 2
interval = "50ms"
{body_contains}
[[notify]]
kind = "webhook"
url = "{hook}"
attempts = 1
timeout = "2s"
{extra}
"#,
                extra = options.extra,
                prod = prod.display(),
                timeout = options.deploy_timeout,
                stabilize = options.stabilize,
                health = health.url("/health"),
                hook = webhook.url("/hook"),
                body_contains = options.body_contains.map(|b| format!("body_contains = {b:?}")).unwrap_or_default(),
            ),
        );
        Self { env, remote, dev, prod, deployed, deploy_log, config, _health: health, webhook }
    }

    fn sidecar(&self, args: &[&str]) -> std::process::Command {
        self.env.sidecar(&self.config, args)
    }

    fn once(&self) -> Outcome {
        run(&mut self.sidecar(&["once"]))
    }

    /// `once` that stops dead (SIGKILL) at `point`.
    fn once_crashing_at(&self, point: &str) -> Outcome {
        run(self.sidecar(&["once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", point))
    }

    fn remote_main(&self) -> String {
        self.env.rev(&self.remote, "refs/heads/main")
    }

    fn tree(&self, repo: &Path, rev: &str) -> String {
        self.env.rev(repo, &format!("{rev}^{{tree}}"))
    }

    /// On `dev`: a feature branch changing `status` to `status` (and a file of its own),
    /// merged into `main` with `--no-ff` and pushed. Returns the merge.
    fn push_merge(&self, status: &str) -> String {
        let dev = &self.dev;
        self.env.git(dev, &["switch", "-q", "-c", "feature"]);
        self.env.commit_file(dev, "status", status, "feature: change status");
        self.env.commit_file(dev, "feature.txt", "new\n", "feature: add a file");
        self.env.git(dev, &["switch", "-q", "main"]);
        self.env.git(dev, &["merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature"]);
        self.env.git(dev, &["push", "-q", "origin", "main"]);
        self.env.rev(dev, "HEAD")
    }

    /// Production pulls (`--ff-only`) and enqueues the change as post-merge would, through
    /// `bulwark_core::jobs::enqueue`. Returns (from, to, job id).
    fn pull_and_enqueue(&self) -> (String, String, String) {
        let from = self.env.rev(&self.prod, "HEAD");
        self.env.git(&self.prod, &["pull", "-q", "--ff-only"]);
        let to = self.env.rev(&self.prod, "HEAD");
        let id = bulwark_core::jobs::enqueue(&self.env.state_dir(), "web", &from, &to, "post-merge").unwrap();
        (from, to, id)
    }

    fn deploys(&self) -> Vec<String> {
        std::fs::read_to_string(&self.deploy_log).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    fn job(&self, id: &str) -> Value {
        let path = self.env.state_dir().join("sidecar/jobs").join(format!("{id}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// Commits on the remote's `main` that carry a `Bulwark-Revert-Of` trailer.
    fn reverts_on_remote(&self) -> Vec<String> {
        let out = self.env.git(
            &self.remote,
            &["log", "--format=%H %(trailers:key=Bulwark-Revert-Of,valueonly=true,separator=%x20)", "main"],
        );
        out.lines().filter(|l| l.trim().contains(' ')).map(|l| l[..40].to_owned()).collect()
    }

    /// Webhook deliveries accepted (made while the receiver was up), by kind.
    fn notifications(&self, kind: &str) -> usize {
        self.webhook.accepted_of(kind).len()
    }

    fn status_json(&self) -> Value {
        let out = run(&mut self.sidecar(&["status", "--json"]));
        out.assert_code(0);
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn count(&self, kind: &str) -> usize {
        self.env.events_of(kind).len()
    }
}

/// Asserts the end state of a completed rollback of merge `to` (first parent `from`).
#[track_caller]
fn assert_rolled_back(fx: &Fixture, from: &str, to: &str, id: &str) -> String {
    let tip = fx.remote_main();
    assert_eq!(fx.reverts_on_remote(), std::slice::from_ref(&tip), "exactly one revert commit, at the tip");
    assert_eq!(fx.env.rev(&fx.remote, "main^"), to, "the revert's parent is the bad change");
    assert_eq!(fx.tree(&fx.remote, &tip), fx.tree(&fx.remote, from), "the revert restores the pre-change tree");
    assert_eq!(fx.env.rev(&fx.prod, "HEAD"), tip, "production moved to the revert");
    assert_eq!(std::fs::read_to_string(&fx.deployed).unwrap(), "ok\n", "the good version is deployed again");
    assert_eq!(fx.deploys(), [to.to_owned(), tip.clone()], "deployed the change, then the revert");
    let message = fx.env.git(&fx.remote, &["log", "-1", "--format=%B", "main"]);
    assert!(message.contains(&format!("Bulwark-Revert-Of: {to}")), "{message}");
    assert!(message.contains(&format!("Bulwark-Job: {id}")), "{message}");
    assert_eq!(fx.job(id)["phase"], "rolled-back");
    assert_eq!(fx.count("rollback.complete"), 1, "one rollback.complete");
    assert_eq!(fx.notifications("rollback.complete"), 1, "one notification");
    tip
}

#[test]
fn a_bad_merge_is_reverted_pushed_redeployed_verified_and_notified() {
    let fx = Fixture::new();
    let merge = fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    assert_eq!(to, merge);
    assert_eq!(from, fx.env.rev(&fx.dev, "main^1"));

    let out = fx.once();
    out.assert_code(1);
    let revert = assert_rolled_back(&fx, &from, &to, &id);
    // One plain line per event on stdout, the notification's delivery included.
    out.assert_stdout_contains("rollback.complete");
    assert!(out.stdout.lines().any(|l| l.contains(" notify.sent ") && l.contains("about=rollback")), "{}", out.stdout);

    let message = fx.env.git(&fx.remote, &["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("Revert \"Merge branch 'feature'\""), "{message}");
    assert!(message.contains(&format!("This reverts merge {to}, reversing the changes made to {from}.")), "{message}");

    for kind in ["health.failed", "rollback.started", "rollback.reverted", "rollback.pushed", "rollback.complete"] {
        let events = fx.env.events_of(kind);
        assert_eq!(events.len(), 1, "{kind}");
        assert_eq!(events[0].str("job"), Some(id.as_str()), "{kind} carries the job id");
    }
    assert_eq!(fx.count("deploy.started"), 2);
    assert_eq!(fx.count("deploy.healthy"), 0);
    let complete = &fx.env.events_of("rollback.complete")[0];
    assert_eq!(complete.str("revert"), Some(revert.as_str()));
    assert_eq!(complete.str("bad_commit"), Some(to.as_str()));

    // The notification names the service, both commits, timings, and the revert-the-revert warning.
    let hook = fx.webhook.requests()[0].json();
    assert_eq!(hook["fields"]["service"], "web");
    assert_eq!(hook["fields"]["bad_commit"], to.as_str());
    assert_eq!(hook["fields"]["revert_commit"], revert.as_str());
    assert!(hook["fields"]["timings"]["verdict_to_pushed_s"].is_number(), "{hook}");
    let text = hook["text"].as_str().unwrap();
    for part in
        ["## Timeline", "## Cause", "## Action", "## Result", "## Next step", "revert of the revert", "HTTP 500"]
    {
        assert!(text.contains(part), "incident summary lacks {part:?}:\n{text}");
    }
    let incident = fx.env.state_dir().join("incidents").join(format!("{id}.md"));
    assert_eq!(std::fs::read_to_string(incident).unwrap(), text);

    let status = fx.status_json();
    let web = &status["services"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["last_job"]["id"], id.as_str());
    assert_eq!(web["last_job"]["phase"], "rolled-back");
    assert_eq!(web["last_job"]["revert"], revert.as_str());
    assert_eq!(web["known_good"], revert.as_str());
    let plain = run(&mut fx.sidecar(&["status"]));
    plain.assert_code(0).assert_stdout_contains(&format!("web: last job {id} rolled-back"));

    // Nothing left to do: a second run is a no-op.
    fx.once().assert_code(0);
    assert_eq!(fx.remote_main(), revert);
    assert_eq!(fx.deploys().len(), 2);
    assert_eq!(fx.webhook.requests().len(), 1);
}

#[test]
fn a_bad_fast_forward_range_of_three_commits_is_undone_by_one_revert() {
    let fx = Fixture::new();
    let dev = &fx.dev;
    fx.env.commit_file(dev, "one.txt", "1\n", "one");
    fx.env.commit_file(dev, "status", "broken\n", "two breaks it");
    fx.env.commit_file(dev, "app.txt", "v2\n", "three");
    fx.env.git(dev, &["push", "-q", "origin", "main"]);
    let (from, to, id) = fx.pull_and_enqueue();
    assert_eq!(fx.env.git(&fx.prod, &["rev-list", "--count", &format!("{from}..{to}")]), "3");

    fx.once().assert_code(1);
    assert_rolled_back(&fx, &from, &to, &id);
    let message = fx.env.git(&fx.remote, &["log", "-1", "--format=%B", "main"]);
    assert!(message.contains("(3 commits"), "{message}");
    assert!(message.contains(&format!("Bulwark-Revert-Range: {from}..{to}")), "{message}");
}

/// A fast-forward of one commit is reverted as git reverts a commit: `Revert "<subject>"`,
/// never "(1 commits, ...)".
#[test]
fn a_bad_fast_forward_of_one_commit_reads_as_a_plain_revert() {
    let fx = Fixture::new();
    fx.env.commit_file(&fx.dev, "status", "broken\n", "breaks it");
    fx.env.git(&fx.dev, &["push", "-q", "origin", "main"]);
    let (from, to, id) = fx.pull_and_enqueue();
    fx.once().assert_code(1);
    assert_rolled_back(&fx, &from, &to, &id);
    let message = fx.env.git(&fx.remote, &["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("Revert \"breaks it\"\n\nThis reverts commit "), "{message}");
    assert!(!message.contains("commits"), "{message}");
    assert!(message.contains(&format!("Bulwark-Revert-Range: {from}..{to}")), "{message}");
}

#[test]
fn a_good_merge_stays_and_a_second_run_is_a_no_op() {
    let fx = Fixture::new();
    let merge = fx.push_merge("ok (v2)\n");
    let (_, to, id) = fx.pull_and_enqueue();
    let out = fx.once();
    out.assert_code(0).assert_stdout_contains("deploy.healthy");
    assert_eq!(fx.remote_main(), merge);
    assert_eq!(fx.job(&id)["phase"], "healthy");
    assert_eq!(fx.env.events_of("deploy.healthy")[0].str("job"), Some(id.as_str()));
    assert_eq!(fx.deploys(), std::slice::from_ref(&to));
    assert_eq!(fx.status_json()["services"][0]["known_good"], to.as_str());
    assert!(fx.webhook.requests().is_empty(), "a healthy deploy notifies nobody");

    fx.once().assert_code(0);
    assert_eq!(fx.deploys().len(), 1);
    assert_eq!(fx.env.events().iter().filter(|e| e.kind.starts_with("deploy.")).count(), 2);
}

#[test]
fn a_corrupt_service_state_file_is_refused_not_forgotten() {
    let fx = Fixture::new();
    fx.once().assert_code(0);
    let path = fx.env.state_dir().join("sidecar/services/web.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{ not json").unwrap();
    let out = run(&mut fx.sidecar(&["status"]));
    out.assert_code(3).assert_stderr_contains("is not a service state file");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json", "the file is left for a person");
}

#[test]
fn enqueue_from_the_command_line_resolves_revisions_and_is_idempotent() {
    let fx = Fixture::new();
    fx.push_merge("ok (v2)\n");
    fx.env.git(&fx.prod, &["pull", "-q", "--ff-only"]);
    let first = run(&mut fx.sidecar(&["enqueue", "--service", "web", "--from", "HEAD^1", "--to", "HEAD"]));
    first.assert_code(0);
    let again = run(&mut fx.sidecar(&["enqueue", "--service", "web", "--from", "HEAD^1", "--to", "HEAD", "--json"]));
    again.assert_code(0);
    let json: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["job"], first.stdout.trim());
    assert_eq!(json["to"], fx.env.rev(&fx.prod, "HEAD").as_str());

    run(&mut fx.sidecar(&["enqueue", "--service", "nope", "--from", "HEAD^1", "--to", "HEAD"]))
        .assert_code(2)
        .assert_stderr_contains("error: no `[[service]]` named `nope` in the config");
    run(&mut fx.sidecar(&["enqueue", "--service", "web", "--from", "no-such-rev", "--to", "HEAD"]))
        .assert_code(2)
        .assert_stderr_contains("error: --from `no-such-rev` names no commit");
}

#[test]
fn a_bad_config_is_one_clear_line_and_exit_2() {
    let fx = Fixture::new();
    let bad =
        fx.env.write_config("bad.toml", "[[service]]\nname = \"web\"\ncheckout = \"/x\"\ndeploy = \"make deploy\"\n");
    let out = run(fx.env.bin_command("bulwark-sidecar").arg("--config").arg(&bad).arg("once"));
    out.assert_code(2).assert_stderr_contains("bad.toml:4:");
    assert!(out.stderr.contains("never shell strings"), "{}", out.stderr);
}

#[test]
fn someone_elses_commit_landing_during_the_rollback_survives_without_a_force_push() {
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    // The first push the server receives from now on races with a colleague's commit:
    // it lands on `main` while the push is being received, so that push is rejected.
    let hook = fx.remote.join("hooks/pre-receive");
    let marker = fx.env.path("raced");
    std::fs::write(
        &hook,
        format!(
            r#"#!/bin/sh
cat >/dev/null
[ -e "{marker}" ] && exit 0
touch "{marker}"
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
tip=$(git rev-parse refs/heads/main)
blob=$(echo theirs | git hash-object -w --stdin)
tree=$( (git ls-tree "$tip"; printf '100644 blob %s\tother.txt\n' "$blob") | git mktree)
commit=$(echo "their commit" | git commit-tree "$tree" -p "$tip")
git update-ref refs/heads/main "$commit" "$tip"
"#,
            marker = marker.display()
        ),
    )
    .unwrap();
    set_executable(&hook);

    fx.once().assert_code(1);
    assert!(marker.exists(), "the race happened");
    let tip = fx.remote_main();
    let theirs = fx.env.rev(&fx.remote, "main^");
    assert_eq!(fx.env.git(&fx.remote, &["log", "-1", "--format=%s", &theirs]), "their commit");
    assert_eq!(fx.env.rev(&fx.remote, "main^^"), to);
    assert_eq!(fx.reverts_on_remote(), std::slice::from_ref(&tip), "one revert, redone on top of their commit");
    assert_eq!(fx.env.git(&fx.remote, &["show", "main:other.txt"]), "theirs");
    assert_eq!(fx.env.git(&fx.remote, &["show", "main:status"]), "ok");
    assert_eq!(fx.env.git_outcome(&fx.remote, &["cat-file", "-e", "main:feature.txt"]).code, 128);
    let _ = from;
    let job = fx.job(&id);
    assert_eq!(job["revert"]["remakes"], 1);
    assert!(!job["push_failures"].as_array().unwrap().is_empty());
    assert_eq!(job["phase"], "rolled-back");
    assert_eq!(fx.env.rev(&fx.prod, "HEAD"), tip);
}

#[test]
fn a_conflicting_revert_escalates_and_leaves_the_work_tree_clean() {
    let fx = Fixture::new();
    let merge = fx.push_merge("broken\n");
    let (_, _, id) = fx.pull_and_enqueue();
    // After production pulled, a colleague changes the same line again.
    fx.env.commit_file(&fx.dev, "status", "broken-differently\n", "touch status again");
    fx.env.git(&fx.dev, &["push", "-q", "origin", "main"]);
    let theirs = fx.remote_main();

    fx.once().assert_code(1);
    assert_eq!(fx.remote_main(), theirs, "nothing was pushed");
    assert_eq!(fx.env.rev(&fx.prod, "HEAD"), merge);
    assert_eq!(fx.env.git(&fx.prod, &["status", "--porcelain"]), "", "clean work tree");
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated");
    let escalation = job["escalation"].as_str().unwrap();
    assert!(escalation.contains("conflicts") && escalation.contains("status"), "{escalation}");
    assert!(escalation.contains("no revert pushed"), "{escalation}");
    assert_eq!(fx.count("rollback.escalated"), 1);
    assert_eq!(fx.count("rollback.complete"), 0);
    assert_eq!(fx.notifications("rollback.escalated"), 1);
}

#[test]
fn still_unhealthy_after_the_revert_escalates_with_exactly_one_revert() {
    let fx = Fixture::with(Options { health: Health::BreaksWithTheChange, ..Options::default() });
    fx.push_merge("broken\n");
    let (_, _, id) = fx.pull_and_enqueue();
    fx.once().assert_code(1);
    assert_eq!(fx.reverts_on_remote().len(), 1);
    assert_eq!(fx.deploys().len(), 2);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated");
    assert!(job["escalation"].as_str().unwrap().contains("still unhealthy after the rollback"), "{job}");
    assert_eq!(fx.count("rollback.escalated"), 1);
    assert_eq!(fx.count("rollback.complete"), 0);

    // Another run does not revert any further.
    fx.once().assert_code(0);
    assert_eq!(fx.reverts_on_remote().len(), 1);
}

#[test]
fn a_hanging_health_endpoint_is_unhealthy_within_its_bounds() {
    let fx = Fixture::with(Options { health: Health::HangWhenBroken, ..Options::default() });
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    let started = Instant::now();
    fx.once().assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert_rolled_back(&fx, &from, &to, &id);
    let window = &fx.job(&id)["windows"][0];
    assert_eq!(window["verdict"], "unhealthy", "{window}");
    let probes = window["checks"][0]["last"].as_array().unwrap();
    for probe in probes {
        assert_eq!(probe["outcome"], "failure", "{probe}");
        assert!(probe["detail"].as_str().unwrap().contains("no answer within 300ms"), "{probe}");
        // Each probe is bounded by its timeout, however long the endpoint hangs.
        assert!(probe["latency_ms"].as_u64().unwrap() < 1000, "{probe}");
    }
    let took = ts(window["finished"].as_str().unwrap()) - ts(window["started"].as_str().unwrap());
    assert!(took < 3000, "the window took {took} ms");
}

#[test]
fn a_deploy_command_that_hangs_is_killed_at_its_timeout_and_escalated() {
    let fx = Fixture::with(Options {
        deploy: Some(vec!["sleep".into(), "30".into()]),
        deploy_timeout: "500ms",
        ..Options::default()
    });
    let merge = fx.push_merge("ok (v2)\n");
    let (_, _, id) = fx.pull_and_enqueue();
    let started = Instant::now();
    fx.once().assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated");
    assert_eq!(job["deploys"][0]["timed_out"], true);
    assert!(job["escalation"].as_str().unwrap().contains("hung"), "{job}");
    assert_eq!(fx.remote_main(), merge, "a hung deploy is not a reason to revert");
    assert_eq!(fx.notifications("rollback.escalated"), 1);
}

#[test]
fn a_webhook_that_is_down_does_not_block_the_rollback_and_is_delivered_next_run() {
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    fx.webhook.set_up(false);
    fx.once().assert_code(1);
    assert_eq!(fx.job(&id)["phase"], "rolled-back");
    assert_eq!(fx.reverts_on_remote().len(), 1);
    let failed = fx.env.events_of("notify.failed");
    assert_eq!(failed.len(), 1, "notify.failed recorded: {failed:?} {}", fx.job(&id));
    let delivery = &fx.job(&id)["notifications"][0];
    assert!(delivery["delivered"].is_null());
    assert!(delivery["last_error"].as_str().unwrap().contains("503"), "{delivery}");
    assert_eq!(fx.status_json()["services"][0]["last_job"]["notifications"][0]["attempts"], 1);

    fx.webhook.set_up(true);
    fx.once().assert_code(0);
    assert!(fx.job(&id)["notifications"][0]["delivered"].is_string());
    assert_rolled_back(&fx, &from, &to, &id);
    assert_eq!(fx.webhook.requests().len(), 2, "one refused, one delivered");

    fx.once().assert_code(0);
    assert_eq!(fx.webhook.requests().len(), 2, "never sent twice");
}

#[test]
fn the_daemon_picks_up_a_new_job_and_rolls_it_back() {
    let fx = Fixture::new();
    let mut daemon = fx.sidecar(&["run", "--poll", "100ms"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    let done = bulwark_testutil::wait_for(Duration::from_secs(30), || {
        (fx.count("rollback.complete") == 1 && fx.notifications("rollback.complete") == 1).then_some(())
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(done.is_some(), "the daemon did not roll back: {:?}", fx.job(&id));
    assert_rolled_back(&fx, &from, &to, &id);
}

#[test]
fn the_daemon_resumes_an_unfinished_job_at_start() {
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    let mut crashing = fx
        .sidecar(&["run"])
        .env("BULWARK_TEST_HOOKS", "1")
        .env("BULWARK_TEST_CRASH_AT", "push")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = bulwark_testutil::wait_for(Duration::from_secs(30), || crashing.try_wait().unwrap());
    if status.is_none() {
        let _ = crashing.kill();
    }
    assert_eq!(status.and_then(|s| s.code()), None, "killed at the crash point");
    assert_eq!(fx.job(&id)["phase"], "push");
    let mut daemon = fx.sidecar(&["run", "--poll", "100ms"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let done = bulwark_testutil::wait_for(Duration::from_secs(30), || {
        (fx.notifications("rollback.complete") == 1).then_some(())
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(done.is_some(), "not resumed: {:?}", fx.job(&id));
    assert_rolled_back(&fx, &from, &to, &id);
}

#[test]
fn crash_hooks_are_ignored_without_the_test_switch() {
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    // BULWARK_TEST_CRASH_AT alone does nothing.
    run(fx.sidecar(&["once"]).env("BULWARK_TEST_CRASH_AT", "push")).assert_code(1);
    assert_rolled_back(&fx, &from, &to, &id);
}

/// Kill -9 at `point`, start again: the same end state as an uninterrupted rollback.
fn crash_and_converge(point: &str) {
    let fx = Fixture::with(Options { stabilize: "300ms", ..Options::default() });
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    let crashed = fx.once_crashing_at(point);
    assert_eq!(crashed.code, -1, "killed at {point}\n{}{}", crashed.stdout, crashed.stderr);
    let after = fx.once();
    // The run that finishes the rollback reports it; one that only delivers does not.
    let expected = i32::from(point != "notify");
    after.assert_code(expected);
    assert_rolled_back(&fx, &from, &to, &id);
    for kind in ["rollback.started", "rollback.reverted", "rollback.pushed", "rollback.complete"] {
        assert_eq!(fx.count(kind), 1, "{kind} after a crash at {point}");
    }
    fx.once().assert_code(0);
    assert_eq!(fx.reverts_on_remote().len(), 1);
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
    kill_at_deploy_converges => "deploy",
    kill_after_deploy_converges => "stabilize",
    kill_during_the_health_window_converges => "health.probe1",
    kill_during_the_verify_window_converges => "verify.probe1",
    kill_after_the_health_verdict_converges => "revert",
    kill_after_the_revert_commit_is_made_converges => "revert.made",
    kill_after_the_revert_converges => "push",
    kill_after_the_push_before_recording_it_converges => "push.done",
    kill_after_push_converges => "redeploy",
    kill_after_redeploy_converges => "verify",
    kill_before_notify_converges => "notify",
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
fn ts(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[test]
fn a_trickling_health_endpoint_is_unhealthy_within_its_bounds() {
    let fx =
        Fixture::with(Options { health: Health::TrickleWhenBroken, body_contains: Some("ok"), ..Options::default() });
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    fx.once().assert_code(1);
    assert_rolled_back(&fx, &from, &to, &id);
    let job = fx.job(&id);
    let window = &job["windows"][0];
    assert_eq!(window["verdict"], "unhealthy", "{window}");
    for probe in window["checks"][0]["last"].as_array().unwrap() {
        assert!(probe["latency_ms"].as_u64().unwrap() < 1000, "a trickle is cut at the timeout: {probe}");
    }
    assert_eq!(job["windows"][1]["step"], "verify");
    assert_eq!(job["windows"][1]["checks"][0]["last"][0]["detail"], "HTTP 200");
}

#[test]
fn a_failed_deploy_is_rolled_back() {
    let fx = Fixture::with(Options { strict_deploy: true, ..Options::default() });
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    fx.once().assert_code(1);
    // The failed deploy never reached the deployed file; the log shows both runs.
    assert_rolled_back(&fx, &from, &to, &id);
    let failed = fx.env.events_of("deploy.failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].str("error").unwrap().contains("bad status"), "{failed:?}");
    let job = fx.job(&id);
    assert_eq!(job["deploys"][0]["code"], 3);
    assert!(job["deploys"][0]["stderr"].as_str().unwrap().contains("bad status"));
    assert_eq!(fx.count("health.failed"), 0, "no health check after a failed deploy");
}

#[test]
fn the_post_merge_of_the_revert_itself_is_skipped_not_redeployed() {
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    let (_, to, _) = fx.pull_and_enqueue();
    fx.once().assert_code(1);
    // Moving the checkout to the revert runs post-merge in production: it enqueues the revert.
    let revert = fx.remote_main();
    let id = bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &to, &revert, "post-merge").unwrap();
    fx.once().assert_code(0);
    assert_eq!(fx.job(&id)["phase"], "skipped");
    assert_eq!(fx.deploys().len(), 2, "not deployed again");
}

#[test]
fn a_bulwark_revert_is_never_itself_reverted() {
    // Broken by the change and still after the rollback; repaired by hand; broken again by
    // the next deploy (of the revert).
    let fx = Fixture::with(Options {
        health: Health::Scripted(|deploys, repaired| match deploys {
            0 => true,
            2 => repaired,
            _ => false,
        }),
        ..Options::default()
    });
    fx.push_merge("broken\n");
    let (_, to, first) = fx.pull_and_enqueue();
    fx.once().assert_code(1);
    assert_eq!(fx.job(&first)["phase"], "escalated");
    let revert = fx.remote_main();
    assert_eq!(fx.reverts_on_remote().len(), 1);
    std::fs::write(fx.env.path("repaired"), "").unwrap();
    // Someone redeploys the revert and it is still unhealthy: no revert of the revert.
    let id = bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &to, &revert, "cli").unwrap();
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated");
    assert!(job["escalation"].as_str().unwrap().contains("never itself rolled back"), "{job}");
    assert_eq!(fx.remote_main(), revert, "no rollback loop");
}

#[test]
fn a_job_for_a_service_not_in_the_config_is_an_operational_error() {
    let fx = Fixture::new();
    let head = fx.env.rev(&fx.prod, "HEAD");
    bulwark_core::jobs::enqueue(&fx.env.state_dir(), "gone", &head, &head, "cli").unwrap();
    fx.once().assert_code(3).assert_stderr_contains("is for service `gone`, which is not in the config");
}

#[test]
fn a_healthy_deploy_after_an_escalation_notifies_recovery() {
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    fx.pull_and_enqueue();
    fx.env.commit_file(&fx.dev, "status", "broken-differently\n", "touch status again");
    fx.env.git(&fx.dev, &["push", "-q", "origin", "main"]);
    fx.once().assert_code(1);
    assert_eq!(fx.notifications("rollback.escalated"), 1);

    // A person fixes it through the pipeline; production pulls; the deploy is healthy.
    fx.env.commit_file(&fx.dev, "status", "ok (fixed)\n", "fix status");
    fx.env.git(&fx.dev, &["push", "-q", "origin", "main"]);
    let (_, to, id) = fx.pull_and_enqueue();
    let out = run(&mut fx.sidecar(&["once", "--json"]));
    out.assert_code(0);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["jobs"][0]["job"], id.as_str());
    assert_eq!(summary["jobs"][0]["phase"], "healthy");
    assert_eq!(fx.notifications("service.recovered"), 1);
    let body = fx.webhook.accepted().last().cloned().unwrap();
    assert_eq!(body["fields"]["bad_commit"], to.as_str());
    assert!(body["title"].as_str().unwrap().contains("web recovered"), "{body}");
}

/// With bulwark's own guards installed (production role on the checkout, server role on the
/// origin), the rollback still goes through: the revert is made outside the checkout, the
/// server accepts the sidecar's identity, and the checkout only fast-forwards.
#[test]
fn the_rollback_works_with_the_production_and_server_guards_installed() {
    let fx = Fixture::new();
    std::fs::write(
        fx.remote.join("bulwark.toml"),
        "[protect]\nrole = \"server\"\n[server]\nallow = [\"merger\", \"bulwark-sidecar\"]\n",
    )
    .unwrap();
    for (repo, role) in [(&fx.remote, "server"), (&fx.prod, "production")] {
        fx.env.bulwark(fx.env.root(), &["install", "--repo", repo.to_str().unwrap(), "--role", role]).assert_code(0);
    }
    let dev = &fx.dev;
    fx.env.git(dev, &["switch", "-q", "-c", "feature"]);
    fx.env.commit_file(dev, "status", "broken\n", "feature: break it");
    fx.env.git(dev, &["switch", "-q", "main"]);
    fx.env.git(dev, &["merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature"]);
    run(fx.env.command("git").current_dir(dev).env("USER", "merger").args(["push", "-q", "origin", "main"]))
        .assert_code(0);
    let (from, to, id) = fx.pull_and_enqueue();
    run(fx.sidecar(&["once"]).env("USER", "bulwark-sidecar")).assert_code(1);
    assert_rolled_back(&fx, &from, &to, &id);
    // A direct commit in production is still refused after the rollback.
    assert_ne!(fx.env.try_commit_file(&fx.prod, "hotfix", "x\n", "hand edit").code, 0);
}

/// The handoff: with the production role installed, `git pull --ff-only` in the checkout
/// runs `post-merge`, which queues the job itself (no `enqueue` call), and returns at once.
#[test]
fn post_merge_in_the_production_checkout_queues_the_pull_for_the_sidecar() {
    let fx = Fixture::new();
    fx.env
        .bulwark(fx.env.root(), &["install", "--repo", fx.prod.to_str().unwrap(), "--role", "production"])
        .assert_code(0);
    let from = fx.env.rev(&fx.prod, "HEAD");
    let to = fx.push_merge("broken\n");
    let pull = run(fx.env.command("git").current_dir(&fx.prod).env("BULWARK_CONFIG", &fx.config).args([
        "pull",
        "-q",
        "--ff-only",
    ]));
    pull.assert_code(0).assert_stderr_contains("bulwark: deploy of web queued for the sidecar (job ");
    let jobs = fx.status_json();
    let id = jobs.to_string();
    assert!(id.contains(&to[..8]), "the queued job is for the pulled commit: {jobs}");
    fx.once().assert_code(1);
    assert_eq!(fx.env.rev(&fx.remote, "refs/heads/main^"), to, "the revert sits on the bad merge");
    let _ = from;
    assert_eq!(fx.count("rollback.complete"), 1);
}

/// A checkout that no service claims gets a note, not an error, and nothing is queued.
#[test]
fn post_merge_without_a_matching_service_queues_nothing() {
    let fx = Fixture::new();
    fx.env
        .bulwark(fx.env.root(), &["install", "--repo", fx.dev.to_str().unwrap(), "--role", "production"])
        .assert_code(0);
    let other = fx.env.clone_repo(&fx.remote, "other");
    fx.env.commit_file(&other, "x", "x", "more");
    fx.env.git(&other, &["push", "-q", "origin", "main"]);
    run(fx.env.command("git").current_dir(&fx.dev).env("BULWARK_CONFIG", &fx.config).args(["pull", "-q", "--ff-only"]))
        .assert_code(0)
        .assert_stderr_contains("no [[service]] has checkout");
    assert!(
        !fx.env.state_dir().join("sidecar/jobs").exists()
            || std::fs::read_dir(fx.env.state_dir().join("sidecar/jobs")).unwrap().next().is_none()
    );
    assert_eq!(fx.count("deploy.skipped"), 1, "the skip is journaled");
}

crash_tests! {
    kill_right_after_rolled_back_converges => "rolled-back",
}

/// Killed right after the escalated phase is saved (before its event, incident summary and
/// notification): the next run journals `rollback.escalated` once, writes the summary and
/// notifies once.
#[test]
fn kill_right_after_escalated_converges() {
    let fx = Fixture::with(Options { health: Health::BreaksWithTheChange, ..Options::default() });
    fx.push_merge("broken\n");
    let (_, _, id) = fx.pull_and_enqueue();
    let crashed = fx.once_crashing_at("escalated");
    assert_eq!(crashed.code, -1, "killed at escalated\n{}{}", crashed.stdout, crashed.stderr);
    assert_eq!(fx.job(&id)["phase"], "escalated");
    assert_eq!(fx.count("rollback.escalated"), 0, "the crash came before the event");

    fx.once().assert_code(1).assert_stdout_contains("rollback.escalated");
    assert_eq!(fx.count("rollback.escalated"), 1);
    let event = &fx.env.events_of("rollback.escalated")[0];
    assert_eq!(event.str("job"), Some(id.as_str()));
    assert!(event.str("state").is_some_and(|s| s.contains("with revert")), "{event:?}");
    let incident = fx.env.state_dir().join("incidents").join(format!("{id}.md"));
    assert!(incident.is_file(), "incident summary written");
    assert_eq!(fx.notifications("rollback.escalated"), 1);

    fx.once().assert_code(0);
    assert_eq!(fx.count("rollback.escalated"), 1);
    assert_eq!(fx.webhook.requests().len(), 1, "notified once");
}

/// `once`, killed if it has not finished within `limit` (a worker that loops forever fails
/// the test instead of hanging it).
fn once_within(fx: &Fixture, limit: Duration) -> Outcome {
    let mut child = fx
        .sidecar(&["once"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let done = bulwark_testutil::wait_for(limit, || child.try_wait().unwrap());
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(done.is_some(), "`once` did not finish within {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A job file renamed from `<id>.json` (a copy kept as `retry-<id>.json`) used to be
/// redeployed forever, since the worker saved its progress to `<id>.json`.
#[test]
fn a_job_file_named_other_than_its_id_is_reported_and_skipped_not_redeployed_forever() {
    let fx = Fixture::new();
    fx.push_merge("ok (v2)\n");
    let (_, _, id) = fx.pull_and_enqueue();
    let jobs = fx.env.state_dir().join("sidecar/jobs");
    let copy = jobs.join(format!("retry-{id}.json"));
    std::fs::rename(jobs.join(format!("{id}.json")), &copy).unwrap();

    let out = once_within(&fx, Duration::from_secs(20));
    out.assert_code(0).assert_stderr_contains("does not match its file name");
    // It used to be printed once per read of the queue (five times per run).
    assert_eq!(out.stderr.matches("warning: skipping").count(), 1, "{}", out.stderr);
    assert_eq!(fx.count("deploy.started"), 0, "nothing deployed from the misnamed file");
    assert!(fx.deploys().is_empty());
    let bad = fx.env.events_of("sidecar.bad_job");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].str("error").unwrap().contains(&format!("retry-{id}.json")), "{bad:?}");
    once_within(&fx, Duration::from_secs(20)).assert_code(0);
    assert_eq!(fx.count("sidecar.bad_job"), 1, "reported once");

    // A job file with a non-ASCII commit is refused the same way, without a panic.
    let mut job: Value = serde_json::from_slice(&std::fs::read(&copy).unwrap()).unwrap();
    let odd = "20200101T000000000-web-odd";
    job["id"] = odd.into();
    job["to"] = "\u{e9}".repeat(30).into();
    std::fs::write(jobs.join(format!("{odd}.json")), job.to_string()).unwrap();
    let out = once_within(&fx, Duration::from_secs(20));
    out.assert_code(0).assert_stderr_contains("is not a full commit id");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    run(&mut fx.sidecar(&["status"])).assert_code(0);
    assert_eq!(fx.count("deploy.started"), 0);
    assert_eq!(fx.count("sidecar.bad_job"), 2);
}

/// With the production role installed, the sidecar's own fast-forward of the checkout to
/// the revert used to run `post-merge`, which queued a second job (bad commit → revert):
/// when the service stayed unhealthy, that job redeployed, escalated again ("includes
/// bulwark's own revert") and `status` showed it, saying "no revert pushed".
#[test]
fn the_sidecars_own_move_of_the_checkout_queues_no_second_job_and_escalates_once() {
    let fx = Fixture::with(Options { health: Health::BreaksWithTheChange, ..Options::default() });
    fx.env
        .bulwark(fx.env.root(), &["install", "--repo", fx.prod.to_str().unwrap(), "--role", "production"])
        .assert_code(0);
    let to = fx.push_merge("broken\n");
    run(fx.env.command("git").current_dir(&fx.prod).env("BULWARK_CONFIG", &fx.config).args([
        "pull",
        "-q",
        "--ff-only",
    ]))
    .assert_code(0)
    .assert_stderr_contains("queued for the sidecar");

    run(fx.sidecar(&["once"]).env("BULWARK_CONFIG", &fx.config)).assert_code(1);
    let revert = fx.remote_main();
    assert_eq!(fx.reverts_on_remote(), std::slice::from_ref(&revert), "one revert pushed");
    assert_eq!(fx.env.rev(&fx.prod, "HEAD"), revert, "the checkout moved to the revert");
    let jobs = std::fs::read_dir(fx.env.state_dir().join("sidecar/jobs")).unwrap().count();
    assert_eq!(jobs, 1, "the sidecar's own merge queued no job");
    assert_eq!(fx.count("rollback.escalated"), 1, "one escalation");
    assert_eq!(fx.notifications("rollback.escalated"), 1, "one page");
    assert_eq!(fx.count("deploy.started"), 2, "the change, then the revert");
    let last = &fx.status_json()["services"][0]["last_job"];
    assert_eq!(last["revert"], revert.as_str(), "{last}");
    assert_eq!(last["to"], to.as_str());
    assert!(last["escalation"].as_str().unwrap().contains("with revert"), "{last}");

    // A post-merge of that revert later (a person pulls) is skipped, not redeployed.
    let id = bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &to, &revert, "post-merge").unwrap();
    run(fx.sidecar(&["once"]).env("BULWARK_CONFIG", &fx.config)).assert_code(0);
    assert_eq!(fx.job(&id)["phase"], "skipped");
    assert_eq!(fx.count("deploy.started"), 2);
    assert_eq!(fx.count("rollback.escalated"), 1);
    assert_eq!(fx.webhook.requests().len(), 1);
    assert_eq!(fx.status_json()["services"][0]["last_job"]["revert"], revert.as_str());
}

/// Three pulls queued before the sidecar ran (A→X, X→Y, Y→Z, with X the bad one): the
/// last job takes over the whole range A→Z, so the bad X is reverted too. The oldest
/// job's range used to be dropped (only a newest job continuing it could take it over).
#[test]
fn three_pending_jobs_fold_into_one_covering_the_oldest_change() {
    let fx = Fixture::new();
    let a = fx.env.rev(&fx.prod, "HEAD");
    let mut ids = Vec::new();
    for (file, content) in [("status", "broken\n"), ("one.txt", "1\n"), ("two.txt", "2\n")] {
        fx.env.commit_file(&fx.dev, file, content, &format!("change {file}"));
        fx.env.git(&fx.dev, &["push", "-q", "origin", "main"]);
        ids.push(fx.pull_and_enqueue());
    }
    let z = ids[2].1.clone();
    fx.once().assert_code(1);
    for (_, _, id) in &ids[..2] {
        assert_eq!(fx.job(id)["phase"], "skipped", "{id}");
    }
    let last = fx.job(&ids[2].2);
    assert_eq!(last["phase"], "rolled-back", "{last}");
    assert_eq!(last["from"], a.as_str(), "the last job covers A..Z");
    assert_eq!(last["to"], z.as_str());
    let tip = fx.remote_main();
    assert_eq!(fx.reverts_on_remote(), std::slice::from_ref(&tip));
    assert_eq!(fx.tree(&fx.remote, &tip), fx.tree(&fx.remote, &a), "X, Y and Z are all undone");
    assert_eq!(std::fs::read_to_string(&fx.deployed).unwrap(), "ok\n");
    assert_eq!(fx.deploys(), [z, tip]);
    let message = fx.env.git(&fx.remote, &["log", "-1", "--format=%B", "main"]);
    assert!(message.contains(&format!("Bulwark-Revert-Range: {a}..")), "{message}");
}

/// A `[[notify]]` target that cannot be set up (its `url_env` names an unset variable) used
/// to leave only `last_error` in the job: the failure is now journaled as `notify.failed`
/// (the other, usable target still gets the news).
#[test]
fn a_notify_target_that_cannot_be_set_up_is_journaled_as_notify_failed() {
    let fx = Fixture::new();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    let unset = "[[notify]]\nkind = \"slack\"\nurl_env = \"BULWARK_TEST_UNSET_HOOK_URL\"\n";
    std::fs::write(&fx.config, format!("{text}{unset}")).unwrap();
    fx.push_merge("broken\n");
    let (_, _, id) = fx.pull_and_enqueue();
    let out = run(fx.sidecar(&["once"]).env_remove("BULWARK_TEST_UNSET_HOOK_URL"));
    out.assert_code(1).assert_stderr_contains("warning: notify[1]: environment variable `BULWARK_TEST_UNSET_HOOK_URL`");
    assert_eq!(fx.job(&id)["phase"], "rolled-back");
    let delivery = &fx.job(&id)["notifications"][1];
    let error = delivery["last_error"].as_str().unwrap();
    assert!(error.contains("BULWARK_TEST_UNSET_HOOK_URL"), "{delivery}");
    let failed = fx.env.events_of("notify.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].str("job"), Some(id.as_str()));
    assert_eq!(failed[0].str("about"), Some("rollback.complete"));
    assert_eq!(failed[0].str("error"), Some(error));
    assert!(failed[0].str("target").unwrap().contains("$BULWARK_TEST_UNSET_HOOK_URL"), "{failed:?}");
    assert_eq!(fx.notifications("rollback.complete"), 1, "the usable target was told");
}

/// With no usable `[[notify]]`, an escalation reaches nobody: `once` and `run` refuse to start.
#[test]
fn once_and_run_refuse_a_config_that_can_tell_nobody() {
    let fx = Fixture::new();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    let service_only = text.split("[[notify]]").next().unwrap().to_owned();
    std::fs::write(&fx.config, &service_only).unwrap();
    for command in ["once", "run"] {
        run(&mut fx.sidecar(&[command]))
            .assert_code(2)
            .assert_stderr_contains("error: no [[notify]] target in")
            .assert_stderr_contains("would reach nobody")
            .assert_stderr_contains("hint: add a [[notify]] section");
    }
    let unset = "[[notify]]\nkind = \"slack\"\nurl_env = \"BULWARK_TEST_UNSET_HOOK_URL\"\n";
    std::fs::write(&fx.config, format!("{service_only}{unset}")).unwrap();
    for command in ["once", "run"] {
        run(fx.sidecar(&[command]).env_remove("BULWARK_TEST_UNSET_HOOK_URL"))
            .assert_code(2)
            .assert_stderr_contains("can be used: an escalation would reach nobody")
            .assert_stderr_contains(
                "caused by: notify[0]: environment variable `BULWARK_TEST_UNSET_HOOK_URL` (url_env) is not set",
            );
    }
    // Nothing was done.
    assert!(fx.env.events().is_empty());
    // `status` still works: it notifies nobody.
    run(&mut fx.sidecar(&["status"])).assert_code(0);
}

/// A git without `merge-tree --merge-base` (before 2.40) cannot compute a revert: `once`,
/// `run` and `retry` refuse to start and say so, rather than escalate every rollback. Run
/// with the real older git Debian 12 ships first on `PATH`.
#[test]
fn the_sidecar_refuses_to_start_with_a_git_that_cannot_revert() {
    let fx = Fixture::new();
    let since = bulwark_core::git::MERGE_TREE_MERGE_BASE.since;
    let Some(path) = bulwark_testutil::path_with_git_older_than(&fx.env.path("old-git"), since) else {
        bulwark_testutil::skipped("no git older than 2.40 at /usr/bin/git (Debian 12 ships 2.39)");
        return;
    };
    fx.push_merge("broken\n");
    fx.pull_and_enqueue();
    for command in [&["once"][..], &["run"], &["retry", "any-job"]] {
        run(fx.sidecar(command).env("PATH", &path))
            .assert_code(2)
            .assert_stderr_contains("is older than 2.40.0: it has no `git merge-tree --merge-base`")
            .assert_stderr_contains("hint: install git 2.40 or later for the user that runs the sidecar");
    }
    assert!(fx.env.events().is_empty(), "nothing was done: {:?}", fx.env.events());
    // With the git the tests run, the same job is rolled back.
    fx.once().assert_code(1);
    assert_eq!(fx.env.events_of("rollback.complete").len(), 1);
}

/// A zero `deploy_timeout` or `health.timeout` made every deploy time out or every check
/// fail (and so roll back every change): the config is refused instead.
#[test]
fn a_zero_deploy_or_health_timeout_is_a_config_error() {
    let fx = Fixture::with(Options { deploy_timeout: "0s", ..Options::default() });
    fx.once().assert_code(2).assert_stderr_contains("deploy_timeout");
    let fx = Fixture::new();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(&fx.config, text.replace("timeout = \"300ms\"", "timeout = \"0s\"")).unwrap();
    fx.once().assert_code(2).assert_stderr_contains("health.timeout");
}

/// A huge health `timeout` overflowed `Instant + Duration` and panicked the worker. Past a
/// year it is a config error; the longest allowed still works and the rollback goes through.
#[test]
fn a_huge_health_timeout_does_not_panic() {
    let fx = Fixture::new();
    let text = std::fs::read_to_string(&fx.config).unwrap();
    std::fs::write(&fx.config, text.replace("timeout = \"300ms\"", "timeout = \"9223372036854775807s\"")).unwrap();
    run(&mut fx.sidecar(&["status"])).assert_code(2).assert_stderr_contains("longer than a year");
    std::fs::write(&fx.config, text.replace("timeout = \"300ms\"", "timeout = \"8000h\"")).unwrap();
    run(&mut fx.sidecar(&["status"])).assert_code(0);
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    let out = fx.once();
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out.assert_code(1);
    assert_rolled_back(&fx, &from, &to, &id);
}

/// Run as root against a checkout owned by another user (the usual production setup), the
/// sidecar's git calls into the checkout used to fail with git's "dubious ownership".
#[test]
fn the_sidecar_as_root_works_on_a_checkout_owned_by_another_user() {
    if !bulwark_testutil::is_root() {
        return bulwark_testutil::skipped("needs root to hand the checkout to another user");
    }
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    // The deploy script's own git call is the service's business, not the sidecar's.
    let script = fx.env.path("deploy.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, text.replace("git rev-parse", "git -c safe.directory='*' rev-parse")).unwrap();
    let chown = |owner: &str| {
        run(std::process::Command::new("chown").args(["-R", owner]).arg(&fx.prod)).assert_code(0);
    };
    chown("nobody");
    let refused = fx.env.git_outcome(&fx.prod, &["status"]);
    assert!(refused.stderr.contains("dubious ownership"), "the setup reproduces git's check: {}", refused.stderr);

    let out = fx.once();
    chown("root");
    out.assert_code(1);
    assert!(!out.stderr.contains("dubious ownership"), "{}", out.stderr);
    assert_rolled_back(&fx, &from, &to, &id);
}

/// `enqueue` reserves `<id>.json` empty before writing the job; a kill in between left an
/// empty file skipped silently forever. Once older than a minute it is reported once
/// (`sidecar.bad_job`) and removed; a fresh reservation is left alone.
#[test]
fn a_stale_empty_job_reservation_is_reported_once_and_removed() {
    let fx = Fixture::new();
    let jobs = fx.env.state_dir().join("sidecar/jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let stale = jobs.join("20200101T000000000-web-deadbeef.json");
    let fresh = jobs.join("20990101T000000000-web-cafecafe.json");
    for path in [&stale, &fresh] {
        std::fs::File::create(path).unwrap();
    }
    let old = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();

    fx.once().assert_code(0).assert_stderr_contains("an empty job file");
    assert!(!stale.exists(), "the stale reservation is removed");
    assert!(fresh.exists(), "a fresh reservation may still be written");
    let bad = fx.env.events_of("sidecar.bad_job");
    assert_eq!(bad.len(), 1, "{bad:?}");
    let error = bad[0].str("error").unwrap();
    assert!(error.contains("20200101T000000000-web-deadbeef.json") && error.ends_with("removed"), "{error}");

    fx.once().assert_code(0);
    assert_eq!(fx.count("sidecar.bad_job"), 1, "reported once");
    assert!(fresh.exists());
}

/// Each run of this deploy writes `start <pid>` (after noting any earlier run still alive
/// as `overlap <pid>`), sleeps as long as the second file says, then writes `end <pid>`.
const MARKING_DEPLOY: &str = r#"log="$1"
for p in $(sed -n 's/^start //p' "$log" 2>/dev/null); do
  state=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
  if [ -n "$state" ] && [ "$state" != Z ]; then echo "overlap $p" >> "$log"; fi
done
echo "start $$" >> "$log"
sleep "$(cat "$2")"
echo "end $$" >> "$log"
"#;

/// kill -9 of the sidecar during a deploy used to leave the deploy running; the next
/// `once` started a second deploy beside it, and the orphan finished last.
#[test]
fn a_deploy_left_running_by_a_killed_sidecar_is_ended_before_the_next_deploy() {
    let deploy = ["sh", "-c", MARKING_DEPLOY, "deploy", "../orphan.log", "../orphan.sleep"];
    let fx = Fixture::with(Options { deploy: Some(deploy.map(String::from).to_vec()), ..Options::default() });
    let (log, sleep) = (fx.env.path("orphan.log"), fx.env.path("orphan.sleep"));
    std::fs::write(&sleep, "30").unwrap();
    fx.push_merge("ok (v2)\n");
    let (_, to, id) = fx.pull_and_enqueue();

    // The sidecar dies (SIGKILL) while the deploy runs.
    let crashed = fx.once_crashing_at("deploy.running");
    assert_eq!(crashed.code, -1, "{}{}", crashed.stdout, crashed.stderr);
    let marker = |prefix: &str| -> Vec<u32> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().filter_map(|l| l.strip_prefix(prefix)).map(|p| p.trim().parse().unwrap()).collect()
    };
    let first = bulwark_testutil::wait_for(Duration::from_secs(10), || marker("start ").first().copied())
        .expect("the first deploy started");
    assert!(!bulwark_core::process::group_members(first, 0).is_empty(), "the orphan runs");
    assert_eq!(fx.job(&id)["running"]["pid"], first, "the job recorded the running deploy");

    std::fs::write(&sleep, "0").unwrap();
    fx.once().assert_code(0);
    let starts = marker("start ");
    assert_eq!(starts.len(), 2, "{}", std::fs::read_to_string(&log).unwrap());
    assert!(marker("overlap ").is_empty(), "two deploys overlapped: {}", std::fs::read_to_string(&log).unwrap());
    assert!(bulwark_core::process::group_members(first, 0).is_empty(), "the orphan's whole group is gone");
    assert_eq!(marker("end "), [starts[1]], "only the second deploy finished");

    let ended = fx.env.events_of("deploy.orphan_ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].fields["pgid"], first);
    assert_eq!(ended[0].str("job"), Some(id.as_str()));
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy");
    assert!(job["running"].is_null(), "{job}");
    let status = fx.status_json();
    assert_eq!(status["services"][0]["last_job"]["phase"], "healthy");
    assert_eq!(status["services"][0]["known_good"], to.as_str());
}

/// Production's `main` at a commit the remote does not have: the sidecar used to journal
/// `rollback.reverted` and `rollback.pushed` with the remote's tip as "the revert", redeploy
/// the bad commit and escalate with a misleading story.
#[test]
fn a_bad_commit_the_remote_does_not_have_escalates_at_once_and_journals_no_revert() {
    let fx = Fixture::new();
    let from = fx.env.rev(&fx.prod, "HEAD");
    let to = fx.env.commit_file(&fx.prod, "status", "broken\n", "a local commit in production");
    let id = bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &from, &to, "post-merge").unwrap();
    let remote_before = fx.remote_main();
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated");
    let escalation = job["escalation"].as_str().unwrap();
    assert!(escalation.contains("does not have that commit"), "{escalation}");
    assert!(escalation.contains("nothing was reverted or pushed"), "{escalation}");
    for kind in ["rollback.started", "rollback.reverted", "rollback.pushed", "rollback.complete"] {
        assert_eq!(fx.count(kind), 0, "{kind} journaled for something not done");
    }
    assert_eq!(fx.count("rollback.escalated"), 1);
    assert_eq!(fx.remote_main(), remote_before, "nothing pushed");
    assert_eq!(fx.deploys(), [to], "deployed once, never redeployed");
    assert!(job["pushed"].is_null());
}

/// A job for a commit the checkout is not at would deploy something it does not describe.
#[test]
fn a_job_for_a_commit_the_checkout_is_not_at_escalates_without_deploying() {
    let fx = Fixture::new();
    let merge = fx.push_merge("ok (v2)\n");
    let head = fx.env.rev(&fx.prod, "HEAD");
    // Production never pulled the merge.
    let id = bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &head, &merge, "cli").unwrap();
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated");
    let escalation = job["escalation"].as_str().unwrap();
    assert!(escalation.contains("premise is false") && escalation.contains("nothing was deployed"), "{escalation}");
    assert!(fx.deploys().is_empty(), "nothing deployed");
    assert_eq!(fx.count("deploy.started"), 0);
}

/// `once` (e.g. from cron) without any config used to exit 0 having done nothing.
#[test]
fn once_and_run_without_a_config_name_the_file_looked_for_and_exit_2() {
    let env = bulwark_testutil::TestEnv::new();
    for command in ["once", "run"] {
        let out = run(env.bin_command("bulwark-sidecar").arg(command));
        out.assert_code(2)
            .assert_stderr_contains("error: no config file: looked for /etc/bulwark/bulwark.toml")
            .assert_stderr_contains("BULWARK_CONFIG")
            .assert_stderr_contains("hint: ");
    }
}

/// After an event with id u64::MAX every new event used to get id 0.
#[test]
fn an_exhausted_id_space_refuses_loudly_and_writes_nothing() {
    let fx = Fixture::new();
    fx.push_merge("ok (v2)\n");
    fx.pull_and_enqueue();
    let journal = fx.env.state_dir().join("events.jsonl");
    let last =
        format!("{{\"id\":{},\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"test.last\",\"host\":\"h\"}}\n", u64::MAX);
    std::fs::write(&journal, &last).unwrap();
    let out = fx.once();
    out.assert_code(3).assert_stderr_contains("event ids are exhausted");
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), last, "no event with a repeated or smaller id");
}

/// `events.last-id` was written 0644, and `.bulwark-tmp-*` files left by a kill stayed
/// forever: every state file is private, and leftovers are cleaned up.
#[test]
fn state_files_are_private_and_stale_temp_files_are_removed() {
    use std::os::unix::fs::PermissionsExt as _;
    let fx = Fixture::new();
    fx.push_merge("broken\n");
    fx.pull_and_enqueue();
    let jobs = fx.env.state_dir().join("sidecar/jobs");
    let stale = jobs.join(".bulwark-tmp-left-by-a-kill");
    let fresh = jobs.join(".bulwark-tmp-being-written");
    for path in [&stale, &fresh] {
        std::fs::write(path, "{").unwrap();
    }
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    fx.once().assert_code(1);
    assert!(!stale.exists(), "the leftover is removed");
    assert!(fresh.exists(), "a temp file that may still be written is kept");
    let mut files = vec![fx.env.state_dir().join("events.jsonl"), fx.env.state_dir().join("events.last-id")];
    for dir in ["sidecar/jobs", "incidents", "sidecar/services"] {
        for entry in std::fs::read_dir(fx.env.state_dir().join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    for file in files.iter().filter(|f| !f.file_name().unwrap().to_string_lossy().starts_with(".bulwark-tmp-")) {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }
}

/// A holiday freeze all of 2030-01-01 (UTC), judged at the test clock `BULWARK_TEST_NOW`.
const NEW_YEAR_FREEZE: &str = "[[freeze]]\ndates = [\"2030-01-01\", \"2030-01-01\"]\n";
const IN_THE_FREEZE: &str = "2030-01-01T12:00:00Z";
const AFTER_THE_FREEZE: &str = "2030-01-02T00:00:00Z";

impl Fixture {
    /// `ARGS` at the test clock `now`.
    fn sidecar_at(&self, now: &str, args: &[&str]) -> Outcome {
        run(self.sidecar(args).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_NOW", now))
    }
}

#[test]
fn a_freeze_window_holds_a_deploy_until_it_ends() {
    let fx = Fixture::with(Options { extra: NEW_YEAR_FREEZE, ..Options::default() });
    fx.push_merge("ok v2\n");
    let (_, to, id) = fx.pull_and_enqueue();

    for _ in 0..2 {
        let out = fx.sidecar_at(IN_THE_FREEZE, &["once"]);
        out.assert_code(0);
        assert_eq!(fx.job(&id)["phase"], "held");
        assert!(fx.deploys().is_empty(), "nothing is deployed inside the freeze");
    }
    let held = fx.env.events_of("deploy.held");
    assert_eq!(held.len(), 1, "held is journaled once, however often it is looked at");
    assert_eq!(held[0].str("until"), Some(AFTER_THE_FREEZE));
    assert_eq!(held[0].str("commit"), Some(to.as_str()));

    let status = fx.sidecar_at(IN_THE_FREEZE, &["status"]);
    status.assert_code(0);
    status.assert_stdout_contains("freeze: window 0 holds until 2030-01-02T00:00:00Z");
    status.assert_stdout_contains(&format!("deploy of {} held by a freeze window until {AFTER_THE_FREEZE}", &to[..12]));
    let json: Value = serde_json::from_str(&fx.sidecar_at(IN_THE_FREEZE, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["services"][0]["last_job"]["held_until"], AFTER_THE_FREEZE);
    assert_eq!(json["freeze"]["until"], AFTER_THE_FREEZE);

    let out = fx.sidecar_at(AFTER_THE_FREEZE, &["once"]);
    out.assert_code(0);
    assert_eq!(fx.job(&id)["phase"], "healthy");
    assert_eq!(fx.deploys(), std::slice::from_ref(&to), "deployed once the freeze was over");
    assert_eq!(fx.job(&id).get("held_until"), None, "no longer held");
    assert_eq!(fx.count("freeze.overridden"), 0);
}

#[test]
fn a_rollback_that_a_freeze_window_meets_still_runs() {
    let fx = Fixture::with(Options { extra: NEW_YEAR_FREEZE, ..Options::default() });
    fx.push_merge("broken\n");
    let (from, to, id) = fx.pull_and_enqueue();
    // Deployed just before the freeze; the sidecar dies during the deploy's stabilize window.
    let out = run(fx
        .sidecar(&["once"])
        .env("BULWARK_TEST_HOOKS", "1")
        .env("BULWARK_TEST_NOW", "2029-12-31T23:59:59Z")
        .env("BULWARK_TEST_CRASH_AT", "stabilize"));
    assert_ne!(out.code, 0, "killed at the crash point");
    assert_eq!(fx.deploys(), std::slice::from_ref(&to));
    // The freeze has begun: the verdict, revert, push, redeploy and verify still happen.
    let out = fx.sidecar_at(IN_THE_FREEZE, &["once"]);
    out.assert_code(1);
    assert_rolled_back(&fx, &from, &to, &id);
    assert_eq!(fx.count("deploy.held"), 0, "a rollback is never held");
}

#[test]
fn enqueue_force_deploys_inside_a_freeze_window_and_says_so() {
    let fx = Fixture::with(Options { extra: NEW_YEAR_FREEZE, ..Options::default() });
    fx.push_merge("ok v2\n");
    let (from, to, id) = fx.pull_and_enqueue();
    fx.sidecar_at(IN_THE_FREEZE, &["once"]).assert_code(0);
    assert_eq!(fx.job(&id)["phase"], "held");

    let forced =
        fx.sidecar_at(IN_THE_FREEZE, &["enqueue", "--service", "web", "--from", &from, "--to", &to, "--force"]);
    forced.assert_code(0);
    assert_eq!(forced.stdout.trim(), id, "the held job itself is forced, not a second one queued");
    fx.sidecar_at(IN_THE_FREEZE, &["once"]).assert_code(0);
    assert_eq!(fx.job(&id)["phase"], "healthy");
    assert_eq!(fx.deploys(), std::slice::from_ref(&to));
    let overridden = fx.env.events_of("freeze.overridden");
    assert_eq!(overridden.len(), 1);
    assert_eq!(overridden[0].str("job"), Some(id.as_str()));
    assert_eq!(overridden[0].str("until"), Some(AFTER_THE_FREEZE));
}

#[test]
fn a_bad_freeze_window_is_refused_with_its_line() {
    let fx = Fixture::with(Options {
        extra: "[[freeze]]\ndays = [\"friday\"]\nfrom = \"16:00\"\nto = \"09:00\"\n",
        ..Options::default()
    });
    let out = fx.once();
    out.assert_code(2);
    out.assert_stderr_contains("`friday` in `days` is not a day; use mon, tue, wed, thu, fri, sat, sun");
    let text = std::fs::read_to_string(&fx.config).unwrap();
    let line = text.lines().position(|l| l == "[[freeze]]").unwrap() + 1;
    let place = format!("{}:{line}:1: key `freeze[0]`", fx.config.display());
    assert!(out.stderr.contains(&place), "names the file and line ({place}): {}", out.stderr);
}

/// A production checkout whose `origin` was re-pointed after the install pinned it (`git
/// remote set-url`, a `url.<base>.insteadOf` rule in the repository's or the user's config)
/// at a look-alike repository holding a forged `main`: on a bad deploy the sidecar fetches
/// nothing from it and pushes nothing anywhere, so neither the look-alike nor the pinned
/// remote gets a revert (made from the forged refs or otherwise), and the one escalation
/// says why and what to do. The sidecar used to fetch from, and push its revert to,
/// whatever `origin` meant by then.
#[test]
fn a_rollback_never_uses_a_remote_repointed_since_the_production_pin() {
    for spelling in ["set-url", "insteadOf", "global insteadOf"] {
        let fx = Fixture::new();
        fx.env
            .bulwark(fx.env.root(), &["install", "--repo", fx.prod.to_str().unwrap(), "--role", "production"])
            .assert_code(0);
        fx.push_merge("broken\n");
        let (_, to, id) = fx.pull_and_enqueue();

        let foreign = fx.env.bare("foreign.git");
        let foreign_url = file_url(&foreign);
        fx.env.git(&fx.dev, &["push", "-q", &foreign_url, "main"]);
        fx.env.commit_file(&fx.dev, "forged.txt", "forged\n", "forged on the look-alike");
        fx.env.git(&fx.dev, &["push", "-q", &foreign_url, "main"]);
        let forged = fx.env.rev(&foreign, "refs/heads/main");
        let pinned = fx.env.git(&fx.prod, &["remote", "get-url", "origin"]);
        match spelling {
            "set-url" => _ = fx.env.git(&fx.prod, &["remote", "set-url", "origin", &foreign_url]),
            "insteadOf" => _ = fx.env.git(&fx.prod, &["config", &format!("url.{foreign_url}.insteadOf"), &pinned]),
            _ => _ = fx.env.git(&fx.prod, &["config", "--global", &format!("url.{foreign_url}.insteadOf"), &pinned]),
        }

        fx.once().assert_code(1);
        assert_eq!(fx.env.rev(&foreign, "refs/heads/main"), forged, "{spelling}: nothing reached the look-alike");
        assert_eq!(fx.remote_main(), to, "{spelling}: the pinned remote got no revert");
        assert!(fx.reverts_on_remote().is_empty(), "{spelling}");
        assert_eq!(fx.env.rev(&fx.prod, "HEAD"), to, "{spelling}: the checkout did not move");
        assert_eq!(fx.deploys(), std::slice::from_ref(&to), "{spelling}: nothing was redeployed");
        let job = fx.job(&id);
        assert_eq!(job["phase"], "escalated", "{spelling}: {job}");
        let escalation = job["escalation"].as_str().unwrap();
        for needle in [
            format!("now leads to {foreign_url}"),
            format!("not to {pinned} where it was pinned"),
            "bulwark install --role production".to_owned(),
        ] {
            assert!(escalation.contains(&needle), "{spelling}: {needle:?} in {escalation}");
        }
        let escalated = fx.env.events_of("rollback.escalated");
        assert_eq!(escalated.len(), 1, "{spelling}: one escalation");
        assert!(escalated[0].to_line().contains("where it was pinned"), "{spelling}: {}", escalated[0].to_line());
        assert_eq!(fx.notifications("rollback.escalated"), 1, "{spelling}: one page");
        assert_eq!(fx.count("rollback.pushed"), 0, "{spelling}");
    }
}
