//! End-to-end tests of how the sidecar judges a deploy (the probing window, the baseline
//! before blame, several checks, `retry` and `adopt`): the real `bulwark-sidecar` binary,
//! real git (a bare origin, a dev clone, a production clone), a loopback HTTP service whose
//! behaviour each test scripts through what is deployed, a real heartbeat file beaten by
//! the "service", and real command checks.
//!
//! The deploy script copies the checkout's `status` file to `deployed-status` (and logs
//! the commit). The HTTP service answers from it:
//! `ok…` → 200; `dead` → 500; `flaky` → 500 on one request in six; `dies-after-MS` → 200 for
//! MS ms after the deploy, then 500; anything else → 500. While the file `outage` exists it
//! answers 500 whatever is deployed (a dependency is down). The heartbeat file is touched
//! every 20 ms while the deployed status starts with `ok` (an `ok-silent` version answers
//! but never beats).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bulwark_testutil::http::{HttpServer, Receiver, Response};
use bulwark_testutil::{Outcome, TestEnv, file_url, run, set_executable, wait_for};
use serde_json::Value;

struct Fixture {
    env: TestEnv,
    remote: PathBuf,
    dev: PathBuf,
    prod: PathBuf,
    deployed: PathBuf,
    deploy_log: PathBuf,
    heartbeat: PathBuf,
    config: PathBuf,
    service: HttpServer,
    webhook: Receiver,
    beating: Arc<AtomicBool>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.beating.store(false, Ordering::SeqCst);
    }
}

/// `[service.health]` for the loopback service with ms-level timings.
fn http_check(url: &str, extra: &str) -> String {
    let grace = if extra.contains("grace") { "" } else { "grace = \"0s\"\n" };
    format!(
        "[[service.health]]\nurl = \"{url}\"\ntimeout = \"500ms\"\ninterval = \"30ms\"\n{grace}attempts = 2\n{extra}\n"
    )
}

impl Fixture {
    /// A fixture whose `[[service]]` has `stabilize` and the health sections `health`
    /// returns (given the service URL, the heartbeat path and the sandbox root).
    fn new(stabilize: &str, health: impl Fn(&str, &Path, &Path) -> String) -> Self {
        let env = TestEnv::new();
        let seed = env.init("seed");
        env.commit_file(&seed, "status", "ok\n", "initial commit");
        let remote = env.bare("server.git");
        env.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
        let dev = env.clone_repo(&remote, "dev");
        let prod = env.clone_repo(&remote, "prod");

        let deployed = env.path("deployed-status");
        let deploy_log = env.path("deploys.log");
        let heartbeat = env.path("heartbeat");
        let script = env.path("deploy.sh");
        std::fs::write(&script, "#!/bin/sh\nset -e\ngit rev-parse HEAD >> \"$2\"\ncp status \"$1\"\n").unwrap();
        set_executable(&script);
        std::fs::write(&deployed, "ok\n").unwrap();

        let outage = env.path("outage");
        let requests = AtomicUsize::new(0);
        let service = {
            let deployed = deployed.clone();
            HttpServer::start(move |_req| {
                let n = requests.fetch_add(1, Ordering::SeqCst);
                let status = std::fs::read_to_string(&deployed).unwrap_or_default();
                let status = status.trim();
                let age = std::fs::metadata(&deployed)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .unwrap_or_default();
                let healthy = !outage.exists()
                    && match status {
                        ok if ok.starts_with("ok") => true,
                        "flaky" => n % 6 != 5,
                        other => other
                            .strip_prefix("dies-after-")
                            .and_then(|ms| ms.parse().ok())
                            .is_some_and(|ms| age < Duration::from_millis(ms)),
                    };
                if healthy { Response::ok("ok") } else { Response::status(500).body("broken") }
            })
        };
        // The service beats while the deployed version starts with `ok` (not `ok-silent`).
        let beating = Arc::new(AtomicBool::new(true));
        {
            let (beating, deployed, heartbeat) = (beating.clone(), deployed.clone(), heartbeat.clone());
            std::thread::spawn(move || {
                while beating.load(Ordering::SeqCst) {
                    let status = std::fs::read_to_string(&deployed).unwrap_or_default();
                    if status.starts_with("ok") && !status.contains("silent") {
                        let _ = std::fs::write(&heartbeat, "beat");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        let webhook = Receiver::start();
        let deploy = [&script, &deployed, &deploy_log].map(|p| p.display().to_string());
        let config = env.write_config(
            "bulwark.toml",
            &format!(
                "[[service]]\nname = \"web\"\ncheckout = \"{prod}\"\ndeploy = {deploy:?}\nstabilize = \"{stabilize}\"\n{health}\n[[notify]]\nkind = \"webhook\"\nurl = \"{hook}\"\nattempts = 1\ntimeout = \"2s\"\n",
                prod = prod.display(),
                health = health(&service.url("/health"), &heartbeat, env.root()),
                hook = webhook.url("/hook"),
            ),
        );
        Self { env, remote, dev, prod, deployed, deploy_log, heartbeat, config, service, webhook, beating }
    }

    fn sidecar(&self, args: &[&str]) -> std::process::Command {
        self.env.sidecar(&self.config, args)
    }

    fn once(&self) -> Outcome {
        run(&mut self.sidecar(&["once"]))
    }

    /// On `dev`: a commit setting `status`, pushed to `main`; production pulls it and the
    /// job is enqueued as post-merge would. Returns (from, to, job id).
    fn change(&self, status: &str) -> (String, String, String) {
        // The remote may have moved (a revert): start from what it has.
        self.env.git(&self.dev, &["pull", "-q", "--ff-only"]);
        self.env.commit_file(&self.dev, "status", &format!("{status}\n"), &format!("status: {status}"));
        self.env.git(&self.dev, &["push", "-q", "origin", "main"]);
        let from = self.env.rev(&self.prod, "HEAD");
        self.env.git(&self.prod, &["pull", "-q", "--ff-only"]);
        let to = self.env.rev(&self.prod, "HEAD");
        let id = bulwark_core::jobs::enqueue(&self.env.state_dir(), "web", &from, &to, "post-merge").unwrap();
        (from, to, id)
    }

    fn job(&self, id: &str) -> Value {
        let path = self.env.state_dir().join("sidecar/jobs").join(format!("{id}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn remote_main(&self) -> String {
        self.env.rev(&self.remote, "refs/heads/main")
    }

    fn deploys(&self) -> usize {
        std::fs::read_to_string(&self.deploy_log).unwrap_or_default().lines().count()
    }

    fn deployed(&self) -> String {
        std::fs::read_to_string(&self.deployed).unwrap().trim().to_owned()
    }

    fn count(&self, kind: &str) -> usize {
        self.env.events_of(kind).len()
    }

    /// Commits on the remote's `main` that carry bulwark's revert trailer.
    fn reverts_on_remote(&self) -> usize {
        let out = self.env.git(&self.remote, &["log", "--format=%(trailers:key=Bulwark-Revert-Of,valueonly)", "main"]);
        out.lines().filter(|l| !l.trim().is_empty()).count()
    }

    fn window<'a>(job: &'a Value, step: &str) -> &'a Value {
        job["windows"].as_array().unwrap().iter().rev().find(|w| w["step"] == step).unwrap_or(&Value::Null)
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
fn ts(text: &Value) -> i64 {
    text.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[test]
fn a_change_that_crashes_on_start_is_reverted_long_before_the_window_ends() {
    let fx = Fixture::new("30s", |url, _, _| http_check(url, "grace = \"100ms\""));
    let (_, _, id) = fx.change("dead");
    let started = Instant::now();
    fx.once().assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?} with a 30 s window", started.elapsed());
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    let window = Fixture::window(&job, "health");
    assert_eq!(window["verdict"], "unhealthy");
    let took = ts(&window["finished"]) - ts(&window["started"]);
    assert!(took < 5000, "judged dead after {took} ms, not the 30 s window");
    let check = &window["checks"][0];
    assert!(check["excused"].as_u64().unwrap() >= 1, "failures during grace are not counted: {check}");
    assert_eq!(check["failures"], 1, "the first counted failure is over failure_limit = 0: {check}");
    // Verifying the rollback is no probation: `attempts` passing probes after grace, not
    // the window.
    let verify = Fixture::window(&job, "verify");
    assert_eq!(verify["verdict"], "healthy");
    assert_eq!(verify["checks"][0]["consecutive_successes"], 2, "{verify}");
    let took = ts(&verify["finished"]) - ts(&verify["started"]);
    assert!((100..3000).contains(&took), "verified after the 100 ms grace, well within the window: {took} ms");
    assert_eq!(fx.deployed(), "ok");
    assert_eq!(fx.reverts_on_remote(), 1);
    // The incident summary has the probes.
    let incident = std::fs::read_to_string(job["incident"].as_str().unwrap()).unwrap();
    assert!(incident.contains("## Probes"), "{incident}");
    assert!(incident.contains("health: unhealthy") && incident.contains("verify: healthy"), "{incident}");
}

#[test]
fn a_healthy_change_is_judged_only_when_the_window_is_over() {
    let fx = Fixture::new("600ms", |url, _, _| http_check(url, ""));
    let (_, to, id) = fx.change("ok v2");
    fx.once().assert_code(0);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy", "{job}");
    let window = Fixture::window(&job, "health");
    let took = ts(&window["finished"]) - ts(&window["started"]);
    assert!(took >= 600, "healthy before the window was over ({took} ms)");
    let check = &window["checks"][0];
    assert!(check["probes"].as_u64().unwrap() >= 5, "probed through the window: {check}");
    assert_eq!(check["failures"], 0);
    let healthy = &fx.env.events_of("deploy.healthy")[0];
    assert_eq!(healthy.str("commit"), Some(to.as_str()));
    assert_eq!(fx.remote_main(), to);
}

#[test]
fn blips_within_failure_limit_do_not_revert_a_healthy_change_and_without_it_they_do() {
    // One probe in six fails, never two in a row.
    let tolerant = Fixture::new("600ms", |url, _, _| http_check(url, "failure_limit = 6"));
    let (_, to, id) = tolerant.change("flaky");
    tolerant.once().assert_code(0);
    let job = tolerant.job(&id);
    assert_eq!(job["phase"], "healthy", "{job}");
    let check = &Fixture::window(&job, "health")["checks"][0];
    assert!(check["failures"].as_u64().unwrap() >= 1, "the blips were seen: {check}");
    assert_eq!(tolerant.remote_main(), to, "no revert");
    assert_eq!(tolerant.count("rollback.started"), 0);

    let strict = Fixture::new("600ms", |url, _, _| http_check(url, ""));
    let (_, _, id) = strict.change("flaky");
    strict.once().assert_code(1);
    assert_eq!(strict.job(&id)["phase"], "rolled-back", "failure_limit = 0 (the default) reverts on one blip");
}

#[test]
fn a_slow_death_inside_the_window_is_caught_soon_after_it_dies() {
    let fx = Fixture::new("20s", |url, _, _| http_check(url, "failure_limit = 1\nfail_after = 3"));
    let (_, _, id) = fx.change("dies-after-400");
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    let window = Fixture::window(&job, "health");
    let check = &window["checks"][0];
    assert!(check["successes"].as_u64().unwrap() >= 3, "it was healthy first: {check}");
    assert!(check["reason"].as_str().unwrap().contains("failure(s) in the window"), "{check}");
    // It dies 400 ms after its file was deployed, which is after the deploy command started.
    let deployed_at = ts(&job["deploys"][0]["started"]);
    let caught = ts(&window["finished"]) - deployed_at;
    assert!((400..3000).contains(&caught), "caught {caught} ms after the deploy began; it died 400 ms after it");
}

#[test]
fn an_outage_before_the_deploy_is_not_blamed_on_the_change() {
    let fx = Fixture::new("300ms", |url, _, _| http_check(url, ""));
    std::fs::write(fx.env.path("outage"), "").unwrap();
    let (_, to, id) = fx.change("ok v2");
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated", "{job}");
    assert_eq!(job["baseline"]["probes"][0]["outcome"], "failure");
    let escalation = job["escalation"].as_str().unwrap();
    assert!(escalation.contains("already unhealthy before this change"), "{escalation}");
    assert!(escalation.contains("nothing was reverted"), "{escalation}");
    assert_eq!(fx.remote_main(), to, "no revert pushed");
    assert_eq!(fx.reverts_on_remote(), 0);
    assert_eq!(fx.count("rollback.started"), 0);
    assert_eq!(fx.deploys(), 1, "deployed once, not redeployed");
    assert_eq!(fx.webhook.accepted_of("rollback.escalated").len(), 1, "a person is told");
    let incident = std::fs::read_to_string(job["incident"].as_str().unwrap()).unwrap();
    assert!(incident.contains("Before the deploy, `http GET"), "the summary says what failed before: {incident}");
}

#[test]
fn a_deploy_that_fixes_an_unhealthy_service_is_healthy_and_says_it_was_unhealthy_before() {
    let fx = Fixture::new("300ms", |url, _, _| http_check(url, ""));
    // The version running before the change is broken.
    std::fs::write(&fx.deployed, "broken\n").unwrap();
    let (_, _, id) = fx.change("ok v2");
    fx.once().assert_code(0);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy", "{job}");
    assert_eq!(job["baseline"]["probes"][0]["outcome"], "failure");
    let healthy = &fx.env.events_of("deploy.healthy")[0];
    assert_eq!(healthy.fields["unhealthy_before"], true, "{healthy:?}");
    let note = job["timeline"].as_array().unwrap().last().unwrap()["note"].as_str().unwrap().to_owned();
    assert!(note.contains("unhealthy before this change"), "{note}");
}

#[test]
fn a_checker_that_cannot_measure_escalates_and_never_reverts() {
    let fx = Fixture::new("300ms", |_, _, root| {
        let missing = root.join("no-such-check");
        format!(
            "[[service.health]]\nkind = \"command\"\ncommand = [\"{}\"]\ninterval = \"30ms\"\ngrace = \"0s\"\n",
            missing.display()
        )
    });
    let (_, to, id) = fx.change("dead");
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated", "{job}");
    assert_eq!(job["baseline"]["probes"][0]["outcome"], "error", "an error is not a failure");
    assert_eq!(Fixture::window(&job, "health")["verdict"], "error");
    let escalation = job["escalation"].as_str().unwrap();
    assert!(escalation.contains("could not measure"), "{escalation}");
    assert_eq!(fx.remote_main(), to, "never reverted");
    assert_eq!(fx.count("rollback.started"), 0);
}

/// An HTTP check, a heartbeat and a smoke command: all must pass, each keeps its own counts.
fn three_checks(url: &str, heartbeat: &Path, root: &Path) -> String {
    let smoke = root.join("smoke.sh");
    std::fs::write(&smoke, format!("#!/bin/sh\ngrep -qv smoke-fails {}\n", root.join("deployed-status").display()))
        .unwrap();
    set_executable(&smoke);
    format!(
        "{}[[service.health]]\nkind = \"heartbeat\"\npath = \"{}\"\nmax_age = \"10s\"\ninterval = \"40ms\"\ngrace = \"100ms\"\nattempts = 2\n[[service.health]]\nkind = \"command\"\ncommand = [\"{}\"]\ninterval = \"50ms\"\ngrace = \"0s\"\nattempts = 2\n",
        http_check(url, ""),
        heartbeat.display(),
        smoke.display()
    )
}

#[test]
fn several_checks_all_pass_for_a_good_change_each_with_its_own_counts() {
    let fx = Fixture::new("600ms", three_checks);
    let (_, _, id) = fx.change("ok v2");
    fx.once().assert_code(0);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy", "{job}");
    let checks = Fixture::window(&job, "health")["checks"].as_array().unwrap().clone();
    assert_eq!(checks.len(), 3);
    for ((check, kind), interval) in checks.iter().zip(["http", "heartbeat", "command"]).zip([30, 40, 50]) {
        assert!(check["check"].as_str().unwrap().starts_with(kind), "{check}");
        assert_eq!(check["verdict"], "healthy", "{check}");
        assert!(check["probes"].as_u64().unwrap() >= 3, "{check}");
        // Each on its own schedule: never probed sooner than its own interval.
        let at: Vec<u64> = check["last"].as_array().unwrap().iter().map(|p| p["at_ms"].as_u64().unwrap()).collect();
        assert!(at.windows(2).all(|w| w[1] - w[0] >= interval), "{kind} every {interval} ms: {at:?}");
    }
}

#[test]
fn one_failing_check_among_several_fails_the_service() {
    let fx = Fixture::new("5s", three_checks);
    // HTTP and heartbeat are happy with `ok…`; only the smoke command fails.
    let (_, _, id) = fx.change("ok smoke-fails");
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    let window = Fixture::window(&job, "health");
    assert_eq!(window["checks"][2]["verdict"], "unhealthy", "{window}");
    assert!(window["reason"].as_str().unwrap().starts_with("command "), "{window}");
    assert!(job["failure"].as_str().unwrap().contains("smoke.sh"), "{job}");
    let took = ts(&window["finished"]) - ts(&window["started"]);
    assert!(took < 3000, "the service fails as soon as one check fails ({took} ms of a 5 s window)");
}

#[test]
fn a_heartbeat_from_before_the_deploy_does_not_count_for_the_new_version() {
    let fx = Fixture::new("400ms", |_, heartbeat, _| {
        format!(
            "[[service.health]]\nkind = \"heartbeat\"\npath = \"{}\"\nmax_age = \"1h\"\ninterval = \"30ms\"\ngrace = \"100ms\"\nattempts = 2\n",
            heartbeat.display()
        )
    });
    assert!(
        wait_for(Duration::from_secs(5), || fx.heartbeat.exists().then_some(())).is_some(),
        "the old version beats"
    );
    // The new version runs but never beats: the old beat is minutes-fresh by max_age, yet
    // after a deploy silence is the failure.
    let (_, _, id) = fx.change("ok-silent");
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    assert_eq!(job["baseline"]["probes"][0]["outcome"], "success", "the old version's beat was fine before");
    let reason = Fixture::window(&job, "health")["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("no beat since the deploy finished"), "{reason}");
    // The known-good version beats again, after its redeploy: verified.
    assert_eq!(Fixture::window(&job, "verify")["verdict"], "healthy", "{job}");
    let beat = std::fs::metadata(&fx.heartbeat).unwrap().modified().unwrap();
    assert!(SystemTime::now().duration_since(beat).unwrap() < Duration::from_secs(5));
}

/// Kill -9 in the middle of a window, restart: the same window continues (its start and
/// its probes kept) and reaches one verdict.
fn killed_mid_window(status: &str, stabilize: &str) -> (Fixture, String) {
    // The first probes fall in `grace`, so the kill comes before any verdict.
    let fx =
        Fixture::new(stabilize, |url, _, _| http_check(url, "grace = \"200ms\"\nfailure_limit = 2\nfail_after = 100"));
    let (_, _, id) = fx.change(status);
    let crashed =
        run(fx.sidecar(&["once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", "health.probe4"));
    assert_eq!(crashed.code, -1, "killed mid-window\n{}{}", crashed.stdout, crashed.stderr);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "stabilize");
    let window = Fixture::window(&job, "health").clone();
    assert_eq!(window["checks"][0]["probes"], 4, "{window}");
    assert!(window["verdict"].is_null());
    // `status` shows the window in progress, with its counts.
    run(&mut fx.sidecar(&["status"])).assert_code(0).assert_stdout_contains("web: probing (health window began");
    std::thread::sleep(Duration::from_millis(100));
    fx.once();
    let job = fx.job(&id);
    let windows: Vec<&Value> = job["windows"].as_array().unwrap().iter().filter(|w| w["step"] == "health").collect();
    assert_eq!(windows.len(), 1, "one window, continued: {job}");
    assert_eq!(windows[0]["started"], window["started"], "time counted from when it began");
    assert!(windows[0]["checks"][0]["probes"].as_u64().unwrap() > 4, "the probes made before the kill count");
    (fx, id)
}

#[test]
fn killed_in_the_middle_of_a_healthy_window_it_resumes_and_is_healthy_once() {
    let (fx, id) = killed_mid_window("ok v2", "800ms");
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy", "{job}");
    let window = Fixture::window(&job, "health");
    let took = ts(&window["finished"]) - ts(&window["started"]);
    assert!((800..3000).contains(&took), "the window ran its length once, not again: {took} ms");
    assert_eq!(fx.count("deploy.healthy"), 1);
    assert_eq!(fx.deploys(), 1);
}

#[test]
fn killed_in_the_middle_of_a_failing_window_it_resumes_and_rolls_back_once() {
    // Dead, with failures tolerated up to 2: the third counted failure decides, after the kill.
    let (fx, id) = killed_mid_window("dead", "5s");
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    assert_eq!(Fixture::window(&job, "health")["checks"][0]["failures"], 3);
    assert_eq!(fx.reverts_on_remote(), 1);
    assert_eq!(fx.count("rollback.complete"), 1);
}

#[test]
fn old_configs_with_one_health_table_get_a_window_with_defaults() {
    // No grace/fail_after/failure_limit: grace is min(10 s, stabilize), one failure reverts.
    let fx = Fixture::new("300ms", |url, _, _| {
        format!("[service.health]\nurl = \"{url}\"\ntimeout = \"500ms\"\nattempts = 2\ninterval = \"50ms\"\n")
    });
    let (_, _, id) = fx.change("dead");
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    let check = &Fixture::window(&job, "health")["checks"][0];
    assert!(check["excused"].as_u64().unwrap() >= 5, "failures during the 300 ms grace are excused: {check}");
    let _ = &fx.service;
}

#[test]
fn retry_resumes_an_escalated_job_from_the_step_that_failed_once_its_cause_is_fixed() {
    let fx = Fixture::new("300ms", |url, _, _| http_check(url, ""));
    let (from, to, id) = fx.change("dead");
    // The sidecar may not push: the rollback escalates at `push`, after the revert is made.
    let hook = fx.remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'refused: bulwark may not push' >&2\nexit 1\n").unwrap();
    set_executable(&hook);
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "escalated", "{job}");
    assert_eq!(job["escalated_from"], "push");
    assert_eq!(fx.remote_main(), to, "nothing pushed");
    assert_eq!(fx.webhook.accepted_of("rollback.escalated").len(), 1);

    // Retrying before the cause is fixed escalates again (journaled, told again).
    let again = run(&mut fx.sidecar(&["retry", &id]));
    again.assert_code(1).assert_stdout_contains(&format!("web: job {id} is escalated"));
    assert_eq!(fx.count("rollback.retried"), 1);
    assert_eq!(fx.count("rollback.escalated"), 2, "the second escalation is journaled too");
    assert_eq!(fx.webhook.accepted_of("rollback.escalated").len(), 2);

    // The operator gives the sidecar push rights and retries: it resumes at `push`.
    std::fs::remove_file(&hook).unwrap();
    let retried = run(&mut fx.sidecar(&["retry", &id]));
    retried.assert_code(1).assert_stdout_contains("rollback.retried");
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    assert_eq!(fx.reverts_on_remote(), 1, "one revert");
    assert_eq!(fx.env.rev(&fx.remote, "main^"), to);
    assert_eq!(fx.env.rev(&fx.remote, "main^{tree}"), fx.env.rev(&fx.remote, &format!("{from}^{{tree}}")));
    assert_eq!(fx.deployed(), "ok");
    assert_eq!(fx.deploys(), 2, "the change and the revert: the deploy was not redone");
    assert_eq!(Fixture::window(&job, "health")["checks"][0]["probes"], job["windows"][0]["checks"][0]["probes"]);
    let retried = fx.env.events_of("rollback.retried");
    assert_eq!(retried.len(), 2);
    assert_eq!(retried[1].str("from_phase"), Some("push"));
    assert!(retried[1].str("previous_escalation").unwrap().contains("kept failing"), "{retried:?}");
    assert_eq!(fx.count("rollback.complete"), 1);
    assert_eq!(fx.webhook.accepted_of("rollback.complete").len(), 1);
    // The summaries of both escalations are kept beside the final one.
    let incidents = fx.env.state_dir().join("incidents");
    assert!(incidents.join(format!("{id}.escalation-1.md")).is_file());
    assert!(incidents.join(format!("{id}.escalation-2.md")).is_file());

    // A job that is not escalated is not retried, and nothing happens.
    let refused = run(&mut fx.sidecar(&["retry", &id]));
    refused.assert_code(2).assert_stderr_contains("is rolled-back, not escalated");
    run(&mut fx.sidecar(&["retry", "no-such-job"])).assert_code(2).assert_stderr_contains("no job `no-such-job`");
    assert_eq!(fx.count("rollback.retried"), 2);
}

#[test]
fn retry_after_an_outage_is_fixed_judges_the_change_again() {
    let fx = Fixture::new("300ms", |url, _, _| http_check(url, ""));
    let outage = fx.env.path("outage");
    std::fs::write(&outage, "").unwrap();
    let (_, to, id) = fx.change("ok v2");
    fx.once().assert_code(1);
    assert!(fx.job(&id)["escalation"].as_str().unwrap().contains("already unhealthy before this change"));
    std::fs::remove_file(&outage).unwrap();
    run(&mut fx.sidecar(&["retry", &id])).assert_code(0);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy", "{job}");
    let windows: Vec<&Value> = job["windows"].as_array().unwrap().iter().filter(|w| w["step"] == "health").collect();
    assert_eq!(windows.len(), 2, "a fresh window, not the old verdict");
    assert_eq!(fx.status_known_good(), to);
}

#[test]
fn adopt_records_a_known_good_commit_for_a_first_deploy() {
    let fx = Fixture::new("300ms", |url, _, _| http_check(url, ""));
    let head = fx.env.rev(&fx.prod, "HEAD");
    let out = run(&mut fx.sidecar(&["adopt", "--service", "web"]));
    out.assert_code(0).assert_stdout_contains(&format!("web: known good is now {} (was none)", &head[..12]));
    let adopted = fx.env.events_of("service.adopted");
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].str("commit"), Some(head.as_str()));
    let status = run(&mut fx.sidecar(&["status"]));
    status.assert_code(0).assert_stdout_contains(&format!("known good {} (adopted)", &head[..12]));

    // A first deploy whose previous commit nobody knew: it reverts to the adopted one.
    fx.env.commit_file(&fx.dev, "status", "dead\n", "status: dead");
    fx.env.git(&fx.dev, &["push", "-q", "origin", "main"]);
    fx.env.git(&fx.prod, &["pull", "-q", "--ff-only"]);
    let to = fx.env.rev(&fx.prod, "HEAD");
    let id = bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &"0".repeat(40), &to, "cli").unwrap();
    fx.once().assert_code(1);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "rolled-back", "{job}");
    assert_eq!(job["from"], head.as_str());
    assert_eq!(fx.env.rev(&fx.remote, "main^{tree}"), fx.env.rev(&fx.remote, &format!("{head}^{{tree}}")));

    // A given commit, by any revision name; a bad one is refused and changes nothing.
    let out = run(&mut fx.sidecar(&["adopt", "--service", "web", "--commit", "HEAD~1", "--json"]));
    out.assert_code(0);
    let shown: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(shown["known_good"], fx.env.rev(&fx.prod, "HEAD~1"));
    run(&mut fx.sidecar(&["adopt", "--service", "web", "--commit", "nope"]))
        .assert_code(2)
        .assert_stderr_contains("`nope` names no commit");
    run(&mut fx.sidecar(&["adopt", "--service", "nope"])).assert_code(2).assert_stderr_contains("no `[[service]]`");
    assert_eq!(fx.count("service.adopted"), 2);

    // Not while a job of the service is unfinished: it decides what is known good.
    let (_, _, pending) = fx.change("ok v3");
    run(&mut fx.sidecar(&["adopt", "--service", "web"]))
        .assert_code(2)
        .assert_stderr_contains(&format!("job {pending} of `web` is still in progress (pending)"));
    assert_eq!(fx.count("service.adopted"), 2, "nothing adopted");
}

impl Fixture {
    fn status_known_good(&self) -> String {
        let out = run(&mut self.sidecar(&["status", "--json"]));
        let status: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        status["services"][0]["known_good"].as_str().unwrap_or_default().to_owned()
    }
}

#[test]
fn a_window_begun_under_other_checks_is_begun_again_not_misread() {
    let fx = Fixture::new("400ms", |url, _, _| http_check(url, "grace = \"200ms\""));
    let (_, _, id) = fx.change("ok v2");
    let crashed =
        run(fx.sidecar(&["once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", "health.probe3"));
    assert_eq!(crashed.code, -1, "killed mid-window\n{}{}", crashed.stdout, crashed.stderr);
    // A person adds a second check before the sidecar comes back.
    let config = std::fs::read_to_string(&fx.config).unwrap().replace(
        "[[notify]]",
        "[[service.health]]\nkind = \"command\"\ncommand = [\"true\"]\ninterval = \"40ms\"\ngrace = \"0s\"\nattempts = 2\n[[notify]]",
    );
    std::fs::write(&fx.config, config).unwrap();
    fx.once().assert_code(0);
    let job = fx.job(&id);
    assert_eq!(job["phase"], "healthy", "{job}");
    let windows: Vec<&Value> = job["windows"].as_array().unwrap().iter().filter(|w| w["step"] == "health").collect();
    assert_eq!(windows.len(), 2, "the old window (one check) is left as it was; a new one judged both");
    assert_eq!(windows[0]["checks"].as_array().unwrap().len(), 1);
    assert_eq!(windows[1]["checks"].as_array().unwrap().len(), 2);
}
