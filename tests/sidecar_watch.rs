//! End-to-end tests of the sidecar's watchdog (`[service.watch]`): a loopback health
//! server whose answer the test controls (through a file), a restart command that is a
//! small script recording each run and, when allowed, bringing the service back, and a
//! loopback webhook receiver.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bulwark_testutil::http::{HttpServer, Receiver, Response};
use bulwark_testutil::{Outcome, TestEnv, run, set_executable, wait_for};
use serde_json::Value;

/// What the health server does while the service is down.
#[derive(Clone, Copy)]
enum Down {
    /// Answers 503.
    Fails,
    /// Never answers within any sensible timeout.
    Hangs,
}

#[derive(Clone, Copy)]
struct Options {
    every: &'static str,
    max_restarts: u32,
    down: Down,
    restart_timeout: &'static str,
    /// The restart command sleeps this long first.
    restart_sleeps: u32,
    /// `health.timeout` (generous by default: a loaded test machine must not fail checks).
    health_timeout: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            every: "1h",
            max_restarts: 3,
            down: Down::Fails,
            restart_timeout: "10s",
            restart_sleeps: 0,
            health_timeout: "2s",
        }
    }
}

struct Fixture {
    env: TestEnv,
    /// `up` or `down`: what the health server reports.
    service_state: PathBuf,
    /// One line per run of the restart command.
    restart_log: PathBuf,
    /// While this file exists, a restart brings the service back up.
    restart_fixes: PathBuf,
    config: PathBuf,
    health: HttpServer,
    webhook: Receiver,
}

impl Fixture {
    fn new() -> Self {
        Self::with(Options::default())
    }

    fn with(options: Options) -> Self {
        let env = TestEnv::new();
        let checkout = env.path("srv");
        std::fs::create_dir_all(&checkout).unwrap();
        let service_state = env.path("service-state");
        let restart_log = env.path("restarts.log");
        let restart_fixes = env.path("restart-fixes");
        std::fs::write(&service_state, "up").unwrap();
        std::fs::write(&restart_fixes, "").unwrap();
        let script = env.path("restart.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nsleep {}\necho restarted >> \"$2\"\nif [ -e \"$3\" ]; then printf up > \"$1\"; fi\n",
                options.restart_sleeps
            ),
        )
        .unwrap();
        set_executable(&script);

        let state_for_health = service_state.clone();
        let down = options.down;
        let health = HttpServer::start(move |_req| {
            let up = std::fs::read_to_string(&state_for_health).is_ok_and(|s| s == "up");
            match (up, down) {
                (true, _) => Response::ok("ok"),
                (false, Down::Fails) => Response::status(503).body("unavailable"),
                (false, Down::Hangs) => Response::ok("late").delay(Duration::from_secs(30)),
            }
        });
        let webhook = Receiver::start();
        // A deploy that runs until the test removes `deploy-hold` (and says when it started).
        let deploy_script = env.path("deploy.sh");
        std::fs::write(&deploy_script, "#!/bin/sh\ntouch \"$1\"\nwhile [ -e \"$2\" ]; do sleep 0.05; done\n").unwrap();
        set_executable(&deploy_script);
        let deploy =
            [&deploy_script, &env.path("deploying"), &env.path("deploy-hold")].map(|p| p.display().to_string());
        let restart = [&script, &service_state, &restart_log, &restart_fixes].map(|p| p.display().to_string());
        let config = env.write_config(
            "bulwark.toml",
            &format!(
                r#"[[service]]
name = "web"
checkout = "{checkout}"
deploy = {deploy:?}
stabilize = "50ms"
[service.health]
url = "{health}"
timeout = "{health_timeout}"
attempts = 1
interval = "50ms"
[service.watch]
every = "{every}"
restart = {restart:?}
restart_timeout = "{restart_timeout}"
wait = "100ms"
max_restarts = {max}
window = "1h"
[[notify]]
kind = "webhook"
url = "{hook}"
attempts = 1
timeout = "2s"
"#,
                checkout = checkout.display(),
                deploy = deploy,
                health = health.url("/health"),
                health_timeout = options.health_timeout,
                every = options.every,
                restart_timeout = options.restart_timeout,
                max = options.max_restarts,
                hook = webhook.url("/hook"),
            ),
        );
        Self { env, service_state, restart_log, restart_fixes, config, health, webhook }
    }

    fn sidecar(&self, args: &[&str]) -> std::process::Command {
        self.env.sidecar(&self.config, args)
    }

    fn watch_once(&self) -> Outcome {
        run(&mut self.sidecar(&["watch-once"]))
    }

    fn watch_once_json(&self, code: i32) -> Value {
        let out = run(&mut self.sidecar(&["watch-once", "--json"]));
        out.assert_code(code);
        serde_json::from_str(&out.stdout).unwrap()
    }

    fn daemon(&self) -> Child {
        self.sidecar(&["run", "--poll", "100ms"]).stdout(Stdio::null()).spawn().unwrap()
    }

    fn break_service(&self) {
        std::fs::write(&self.service_state, "down").unwrap();
    }

    fn heal_service(&self) {
        std::fs::write(&self.service_state, "up").unwrap();
    }

    fn restarts_do_not_help(&self) {
        std::fs::remove_file(&self.restart_fixes).unwrap();
    }

    fn restarts(&self) -> usize {
        std::fs::read_to_string(&self.restart_log).unwrap_or_default().lines().count()
    }

    fn count(&self, kind: &str) -> usize {
        self.env.events_of(kind).len()
    }

    /// Webhook deliveries accepted, by kind.
    fn notifications(&self, kind: &str) -> Vec<Value> {
        self.webhook.accepted_of(kind)
    }

    fn all_notifications(&self) -> usize {
        self.webhook.accepted().len()
    }

    /// Waits until the health server has answered `more` further checks (daemon rounds).
    fn wait_for_checks(&self, more: usize) {
        let target = self.health.requests().len() + more;
        let seen = wait_for(Duration::from_secs(20), || (self.health.requests().len() >= target).then_some(()));
        assert!(seen.is_some(), "the daemon did not check health {more} more times");
    }

    fn watch_state(&self) -> Value {
        let path = self.env.state_dir().join("sidecar/watch/web.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_healthy_service_is_left_alone() {
    let fx = Fixture::new();
    let out = fx.watch_once();
    out.assert_code(0).assert_stdout_contains("web: healthy");
    assert_eq!(fx.restarts(), 0);
    assert!(fx.env.events().iter().all(|e| !e.kind.starts_with("watch.")), "a healthy round journals nothing");
    assert_eq!(fx.all_notifications(), 0);
}

#[test]
fn an_unhealthy_service_is_restarted_and_the_resolved_incident_notified_once() {
    let fx = Fixture::new();
    fx.break_service();
    let out = fx.watch_once();
    out.assert_code(1).assert_stdout_contains("web: restarted and healthy again");
    out.assert_stdout_contains("watch.restarted");
    assert_eq!(fx.restarts(), 1);
    assert_eq!(fx.count("watch.restarted"), 1);
    assert_eq!(fx.count("watch.resolved"), 1);
    assert_eq!(fx.count("watch.escalated"), 0);
    let restarted = &fx.env.events_of("watch.restarted")[0];
    assert_eq!(restarted.str("service"), Some("web"));
    assert!(restarted.str("reason").unwrap().contains("HTTP 503"), "{restarted:?}");

    let sent = fx.notifications("watch.resolved");
    assert_eq!(sent.len(), 1, "one notification");
    assert_eq!(fx.all_notifications(), 1);
    let text = sent[0]["text"].as_str().unwrap();
    for part in [
        "## Timeline",
        "## Cause",
        "health check failed",
        "HTTP 503",
        "## Action",
        "restart.sh",
        "## Result",
        "## Next step",
    ] {
        assert!(text.contains(part), "incident summary lacks {part:?}:\n{text}");
    }
    let incident = sent[0]["fields"]["incident"].as_str().unwrap();
    let summary = fx.env.state_dir().join("incidents").join(format!("{incident}.md"));
    assert_eq!(std::fs::read_to_string(summary).unwrap(), text, "the summary is written beside the journal");

    // Healthy now: the next round does nothing and sends nothing.
    fx.watch_once().assert_code(0).assert_stdout_contains("web: healthy");
    assert_eq!(fx.restarts(), 1);
    assert_eq!(fx.all_notifications(), 1);
}

#[test]
fn a_restart_that_does_not_help_escalates_after_exactly_one_restart_and_then_stays_quiet() {
    let fx = Fixture::new();
    fx.restarts_do_not_help();
    fx.break_service();
    let json = fx.watch_once_json(1);
    assert_eq!(json["services"][0]["outcome"], "escalated", "{json}");
    assert_eq!(fx.restarts(), 1, "exactly one restart");
    let escalated = fx.env.events_of("watch.escalated");
    assert_eq!(escalated.len(), 1);
    assert!(
        escalated[0].str("reason").unwrap().starts_with("still unhealthy 100ms after the restart"),
        "{escalated:?}"
    );
    let sent = fx.notifications("watch.escalated");
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["title"].as_str().unwrap().contains("web needs a person"), "{}", sent[0]);
    assert!(sent[0]["text"].as_str().unwrap().contains("a restart did not bring it back"), "{}", sent[0]);

    // Still down: no second restart, no second page.
    let json = fx.watch_once_json(1);
    assert_eq!(json["services"][0]["outcome"], "unhealthy-escalated-before", "{json}");
    assert_eq!(fx.restarts(), 1);
    assert_eq!(fx.count("watch.escalated"), 1);
    assert_eq!(fx.all_notifications(), 1);

    // A person fixed it: one watch.ok, and a later failure is a new incident.
    fx.heal_service();
    fx.watch_once().assert_code(0).assert_stdout_contains("web: healthy again");
    assert_eq!(fx.count("watch.ok"), 1);
    fx.watch_once().assert_code(0);
    assert_eq!(fx.count("watch.ok"), 1, "watch.ok only on recovery");
    fx.break_service();
    fx.watch_once().assert_code(1);
    assert_eq!(fx.restarts(), 2);
    assert_eq!(fx.count("watch.escalated"), 2);
}

#[test]
fn past_max_restarts_within_the_window_it_escalates_once_and_restarts_no_more() {
    let fx = Fixture::with(Options { max_restarts: 2, ..Options::default() });
    for n in 1..=2 {
        fx.break_service();
        fx.watch_once().assert_code(1).assert_stdout_contains("restarted and healthy again");
        assert_eq!(fx.restarts(), n);
    }
    fx.break_service();
    let json = fx.watch_once_json(1);
    assert_eq!(json["services"][0]["outcome"], "escalated", "{json}");
    assert!(json["services"][0]["reason"].as_str().unwrap().starts_with("restart cap reached"), "{json}");
    assert_eq!(fx.restarts(), 2, "no restart past the cap");
    let escalated = fx.env.events_of("watch.escalated");
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].str("reason"), Some("restart cap reached"));
    let sent = fx.notifications("watch.escalated");
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["text"].as_str().unwrap().contains("will not restart it again until fewer than 2"), "{}", sent[0]);

    // Quiet while the window is full: no restart, no page, even after it recovers and fails again.
    for _ in 0..2 {
        fx.watch_once().assert_code(1).assert_stdout_contains("restart cap reached");
    }
    fx.heal_service();
    fx.watch_once().assert_code(0);
    fx.break_service();
    fx.watch_once().assert_code(1).assert_stdout_contains("no restart until the window has room");
    assert_eq!(fx.restarts(), 2);
    assert_eq!(fx.count("watch.escalated"), 1);
    assert_eq!(fx.notifications("watch.escalated").len(), 1);
    assert_eq!(fx.watch_state()["restarts"].as_array().unwrap().len(), 2, "the restart history is on disk");

    let status = run(&mut fx.sidecar(&["status", "--json"]));
    status.assert_code(0);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let watch = &status["services"][0]["watch"];
    assert_eq!(watch["restarts_in_window"], 2, "{watch}");
    assert_eq!(watch["failing"], true, "{watch}");
    assert!(watch["capped_at"].is_string(), "{watch}");
    run(&mut fx.sidecar(&["status"]))
        .assert_code(0)
        .assert_stdout_contains("2 restart(s) within 1h (max 2), restart cap reached at");
}

#[test]
fn a_sidecar_killed_after_the_verdict_journals_and_notifies_the_outcome_once() {
    for (point, kind, helps) in
        [("watch.resolved", "watch.resolved", true), ("watch.escalated", "watch.escalated", false)]
    {
        let fx = Fixture::new();
        if !helps {
            fx.restarts_do_not_help();
        }
        fx.break_service();
        let crashed =
            run(fx.sidecar(&["watch-once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", point));
        assert_eq!(crashed.code, -1, "killed at {point}\n{}{}", crashed.stdout, crashed.stderr);
        fx.watch_once().assert_code(1);
        assert_eq!(fx.count(kind), 1, "{kind} once after a kill at {point}");
        assert_eq!(fx.notifications(kind).len(), 1, "one notification after a kill at {point}");
        assert_eq!(fx.restarts(), 1);
        fx.watch_once();
        assert_eq!(fx.all_notifications(), 1);
    }
}

#[test]
fn a_health_endpoint_that_hangs_is_bounded_by_the_check_timeout() {
    let fx = Fixture::with(Options { down: Down::Hangs, health_timeout: "300ms", ..Options::default() });
    fx.restarts_do_not_help();
    fx.break_service();
    let started = Instant::now();
    fx.watch_once().assert_code(1).assert_stdout_contains("escalated");
    // Two checks of 300 ms, a 100 ms wait and a notification: far below the 30 s hang.
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(fx.restarts(), 1);
    let restarted = &fx.env.events_of("watch.restarted")[0];
    assert!(restarted.str("reason").unwrap().contains("no answer within 300ms"), "{restarted:?}");
}

#[test]
fn a_restart_command_that_hangs_is_killed_at_restart_timeout_and_escalated() {
    let fx = Fixture::with(Options { restart_timeout: "500ms", restart_sleeps: 30, ..Options::default() });
    fx.break_service();
    let started = Instant::now();
    fx.watch_once().assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(fx.restarts(), 0, "killed before it finished");
    let escalated = fx.env.events_of("watch.escalated");
    assert_eq!(escalated.len(), 1);
    let reason = escalated[0].str("reason").unwrap();
    assert!(reason.starts_with("the restart command failed") && reason.contains("did not finish within"), "{reason}");
}

#[test]
fn no_check_while_a_deploy_holds_the_service() {
    let fx = Fixture::new();
    fx.break_service();
    // A deploy job in progress: `once` holds the service while its deploy runs.
    std::fs::write(fx.env.path("deploy-hold"), "").unwrap();
    // The job is for the commit the checkout is at (the sidecar checks that before deploying).
    let srv = fx.env.path("srv");
    fx.env.git(fx.env.root(), &["init", "-q", "-b", "main", srv.to_str().unwrap()]);
    let head = fx.env.commit_file(&srv, "release", "2\n", "release 2");
    bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &"0".repeat(40), &head, "post-merge").unwrap();
    let mut deploying = fx.sidecar(&["once"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = wait_for(Duration::from_secs(15), || fx.env.path("deploying").exists().then_some(()));
    assert!(started.is_some(), "the deploy did not start");
    // The job's own probe before the deploy (its baseline) is all the service has seen.
    let baseline = fx.health.requests().len();
    fx.watch_once().assert_code(0).assert_stdout_contains("web: not checked: a deploy or rollback holds the service");
    assert_eq!(fx.health.requests().len(), baseline, "not even checked");
    assert_eq!(fx.restarts(), 0);
    assert!(fx.env.events().iter().all(|e| !e.kind.starts_with("watch.")));

    // The deploy ends (unhealthy, nothing to revert to: escalated); then the watchdog acts.
    std::fs::remove_file(fx.env.path("deploy-hold")).unwrap();
    assert_eq!(deploying.wait().unwrap().code(), Some(1));
    fx.watch_once().assert_code(1).assert_stdout_contains("restarted and healthy again");
    assert_eq!(fx.restarts(), 1);
}

#[test]
fn no_check_while_a_deploy_job_of_the_service_is_unfinished() {
    let fx = Fixture::new();
    fx.break_service();
    let id = bulwark_core::jobs::enqueue(&fx.env.state_dir(), "web", &"1".repeat(40), &"2".repeat(40), "post-merge")
        .unwrap();
    let json = fx.watch_once_json(0);
    assert_eq!(json["services"][0]["outcome"], "skipped", "{json}");
    assert_eq!(json["services"][0]["reason"], "a deploy job of this service is unfinished", "{json}");
    assert_eq!(fx.restarts(), 0, "job {id} is pending: no restart");
    assert!(fx.env.events().iter().all(|e| !e.kind.starts_with("watch.")));
}

#[test]
fn a_sidecar_killed_while_waiting_after_the_restart_finishes_the_incident_without_a_second_restart() {
    let fx = Fixture::new();
    fx.break_service();
    let crashed =
        run(fx.sidecar(&["watch-once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", "watch.wait"));
    assert_eq!(crashed.code, -1, "killed at watch.wait\n{}{}", crashed.stdout, crashed.stderr);
    assert_eq!(fx.restarts(), 1);
    assert_eq!(fx.watch_state()["incident"]["phase"], "wait");
    fx.watch_once().assert_code(1).assert_stdout_contains("restarted and healthy again");
    assert_eq!(fx.restarts(), 1, "the restart is not run twice");
    assert_eq!(fx.count("watch.restarted"), 1);
    assert_eq!(fx.count("watch.resolved"), 1);
    assert_eq!(fx.notifications("watch.resolved").len(), 1);
}

#[test]
fn a_notification_killed_before_delivery_is_sent_once_by_the_next_round() {
    let fx = Fixture::new();
    fx.break_service();
    let crashed =
        run(fx.sidecar(&["watch-once"]).env("BULWARK_TEST_HOOKS", "1").env("BULWARK_TEST_CRASH_AT", "watch.notify"));
    assert_eq!(crashed.code, -1, "killed at watch.notify\n{}{}", crashed.stdout, crashed.stderr);
    assert_eq!(fx.all_notifications(), 0);
    fx.watch_once().assert_code(0);
    assert_eq!(fx.notifications("watch.resolved").len(), 1);
    fx.watch_once().assert_code(0);
    assert_eq!(fx.all_notifications(), 1, "delivered once");
    assert_eq!(fx.restarts(), 1);
}

#[test]
fn the_daemon_restarts_a_failing_service_within_seconds() {
    let fx = Fixture::with(Options { every: "200ms", ..Options::default() });
    fx.break_service();
    let _daemon = Killed(fx.daemon());
    let resolved = wait_for(Duration::from_secs(15), || (fx.count("watch.resolved") == 1).then_some(()));
    assert!(resolved.is_some(), "no watch.resolved; events: {:?}", fx.env.events());
    assert_eq!(fx.restarts(), 1);
    let sent = wait_for(Duration::from_secs(10), || (fx.notifications("watch.resolved").len() == 1).then_some(()));
    assert!(sent.is_some());
    // Healthy rounds go on without restarting.
    fx.wait_for_checks(3);
    assert_eq!(fx.restarts(), 1);
    assert_eq!(fx.all_notifications(), 1);
}

#[test]
fn a_restarted_daemon_remembers_the_cap_and_does_not_page_again() {
    let fx = Fixture::with(Options { every: "200ms", max_restarts: 1, ..Options::default() });
    fx.break_service();
    fx.watch_once().assert_code(1).assert_stdout_contains("restarted and healthy again");
    assert_eq!(fx.restarts(), 1);

    fx.break_service();
    let daemon = Killed(fx.daemon());
    let capped = wait_for(Duration::from_secs(15), || (fx.count("watch.escalated") == 1).then_some(()));
    assert!(capped.is_some(), "no cap escalation; events: {:?}", fx.env.events());
    assert_eq!(fx.env.events_of("watch.escalated")[0].str("reason"), Some("restart cap reached"));
    fx.wait_for_checks(3);
    drop(daemon);

    let _again = Killed(fx.daemon());
    fx.wait_for_checks(5);
    assert_eq!(fx.restarts(), 1, "the cap survived the daemon's restart");
    assert_eq!(fx.count("watch.escalated"), 1, "escalated once");
    assert_eq!(fx.count("watch.restarted"), 1);
    assert_eq!(fx.notifications("watch.resolved").len(), 1);
    assert_eq!(fx.notifications("watch.escalated").len(), 1, "paged once");
}

#[test]
fn watch_once_without_any_watched_service_is_a_usage_error() {
    let env = TestEnv::new();
    let config = env.write_config(
        "bulwark.toml",
        "[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n[service.health]\nurl = \"http://127.0.0.1:9/health\"\n",
    );
    let out = run(env.bin_command("bulwark-sidecar").arg("--config").arg(&config).arg("watch-once"));
    out.assert_code(2).assert_stderr_contains("no `[[service]]` has a `[service.watch]` section");
    out.assert_stderr_contains("hint: add [service.watch]");
}
