//! End-to-end tests of how bulwark is watched and how it pages, against the real Debian
//! packages people run (`prometheus-alertmanager`, `prometheus-node-exporter`,
//! `prometheus`), each started on 127.0.0.1 on a port the test picks with a temporary data
//! directory, and checked through its own HTTP API; PagerDuty, ntfy and a dead-man's switch
//! receiver are loopback servers that check the documented payloads.

// Counters here are small integers, exactly representable: comparing them exactly is right.
#![allow(clippy::float_cmp, clippy::cast_precision_loss)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bulwark_testutil::http::{HttpServer, Receiver, Request, Response};
use bulwark_testutil::{Outcome, TestEnv, run, set_executable, skipped, wait_for};
use serde_json::Value;

/// A program of the monitoring stack, or a visible skip (a failure under CI) without it.
fn tool(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    if path.is_file() {
        Some(path)
    } else {
        skipped(&format!(
            "{} is not installed (Debian packages prometheus, prometheus-node-exporter, prometheus-alertmanager; .ci/run installs them)",
            path.display()
        ));
        None
    }
}

/// A port on 127.0.0.1 nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed when dropped.
struct Daemon {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Daemon {
    fn start(name: &'static str, cmd: &mut Command, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let child =
            cmd.stdout(Stdio::null()).stderr(out).spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { child, name, log }
    }

    /// Waits until `url` answers 200 (the daemon is up), or fails with its log.
    fn wait_ready(&mut self, url: &str) {
        let ready = wait_for(Duration::from_secs(30), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            get(url).filter(|(status, _)| *status == 200).map(|_| ())
        });
        assert!(
            ready.is_some(),
            "{} did not get ready:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `url`: status and body, or `None` when nothing answers.
fn get(url: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    let status = response.status().as_u16();
    Some((status, response.body_mut().read_to_string().unwrap_or_default()))
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url).unwrap_or_else(|| panic!("{url} did not answer"));
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// A watched service whose health the test turns on and off, with a restart that never
/// helps (so a failure escalates at once), and the `[[notify]]`/`[[ping]]`/`[metrics]`
/// sections the test gives.
struct Watched {
    env: TestEnv,
    up: PathBuf,
    config: PathBuf,
    _health: HttpServer,
}

impl Watched {
    fn new(extra: &str) -> Self {
        let env = TestEnv::new();
        let checkout = env.path("srv");
        std::fs::create_dir_all(&checkout).unwrap();
        let up = env.path("service-up");
        std::fs::write(&up, "").unwrap();
        let flag = up.clone();
        let health = HttpServer::start(move |_req| {
            if flag.exists() { Response::ok("ok") } else { Response::status(503).body("unavailable") }
        });
        let restart = env.path("restart.sh");
        std::fs::write(&restart, "#!/bin/sh\nexit 0\n").unwrap();
        set_executable(&restart);
        let config = env.write_config(
            "bulwark.toml",
            &format!(
                r#"[[service]]
name = "web"
checkout = "{checkout}"
deploy = ["true"]
stabilize = "50ms"
[service.health]
url = "{health}"
timeout = "2s"
attempts = 1
interval = "50ms"
[service.watch]
every = "200ms"
restart = ["{restart}"]
wait = "100ms"
max_restarts = 3
window = "1h"
{extra}
"#,
                checkout = checkout.display(),
                health = health.url("/health"),
                restart = restart.display(),
            ),
        );
        Self { env, up, config, _health: health }
    }

    fn sidecar(&self, args: &[&str]) -> Command {
        self.env.sidecar(&self.config, args)
    }

    fn watch_once(&self) -> Outcome {
        run(&mut self.sidecar(&["watch-once"]))
    }

    fn set_up(&self, up: bool) {
        if up {
            std::fs::write(&self.up, "").unwrap();
        } else {
            let _ = std::fs::remove_file(&self.up);
        }
    }

    /// The service goes down and a restart does not help: one watchdog round escalates.
    fn escalate(&self) {
        self.set_up(false);
        self.watch_once().assert_code(1).assert_stdout_contains("watch.escalated");
    }

    /// The service is healthy again: the next round ends the incident.
    fn recover(&self) {
        self.set_up(true);
        self.watch_once().assert_code(0).assert_stdout_contains("watch.recovered");
    }

    fn journal_text(&self) -> String {
        std::fs::read_to_string(self.env.state_dir().join("events.jsonl")).unwrap_or_default()
    }
}

/// Alertmanager on a free port with a webhook receiver (resolved notifications included)
/// pointing at `hook`; returns it and its base URL.
fn alertmanager(env: &TestEnv, hook: &str) -> Option<(Daemon, String)> {
    let program = tool("/usr/bin/prometheus-alertmanager")?;
    let port = free_port();
    let dir = env.path("alertmanager");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, service, host]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook}\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(program);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    let mut daemon = Daemon::start("alertmanager", &mut cmd, dir.join("log"));
    let base = format!("http://127.0.0.1:{port}");
    daemon.wait_ready(&format!("{base}/-/ready"));
    Some((daemon, base))
}

/// The active alerts Alertmanager lists for bulwark's service `web`.
fn active_web_alerts(base: &str) -> Vec<Value> {
    let alerts = get_json(&format!("{base}/api/v2/alerts?active=true&silenced=true&inhibited=true"));
    alerts.as_array().unwrap().iter().filter(|a| a["labels"]["service"] == "web").cloned().collect()
}

#[test]
fn alertmanager_lists_the_watchdog_escalation_firing_and_resolves_it_on_recovery() {
    let hook = Receiver::start();
    let probe = TestEnv::new();
    let Some((_am, base)) = alertmanager(&probe, &hook.url("/am")) else { return };
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"alertmanager\"\nurl = \"{base}\"\nattempts = 2\ntimeout = \"5s\"\n"
    ));

    web.escalate();
    let firing = active_web_alerts(&base);
    assert_eq!(firing.len(), 1, "one firing alert for web: {firing:?}");
    let alert = &firing[0];
    assert_eq!(alert["labels"]["alertname"], "BulwarkWatchdogEscalated");
    assert_eq!(alert["labels"]["host"], bulwark_core::journal::hostname().as_str());
    assert_eq!(alert["status"]["state"], "active");
    assert!(alert["annotations"]["summary"].as_str().unwrap().contains("Watchdog escalated: web"), "{alert}");
    let fired = wait_for(Duration::from_secs(20), || {
        hook.accepted().into_iter().find(|b| b["status"] == "firing" && b["alerts"][0]["labels"]["service"] == "web")
    });
    assert!(fired.is_some(), "Alertmanager routed the firing alert to its receiver");
    assert_eq!(web.env.events_of("notify.sent").len(), 1, "one delivery to Alertmanager");

    web.recover();
    assert!(active_web_alerts(&base).is_empty(), "resolved: no longer active");
    let resolved = wait_for(Duration::from_secs(20), || {
        hook.accepted().into_iter().find(|b| b["status"] == "resolved" && b["alerts"][0]["labels"]["service"] == "web")
    });
    let resolved = resolved.expect("Alertmanager sent the resolved notification for the alert that fired");
    assert_eq!(resolved["alerts"][0]["labels"]["alertname"], "BulwarkWatchdogEscalated");
    assert_eq!(web.env.events_of("watch.recovered").len(), 1);
    // A second healthy round resolves nothing more.
    web.watch_once().assert_code(0);
    assert_eq!(web.env.events_of("watch.recovered").len(), 1);
    assert_eq!(web.env.events_of("notify.sent").len(), 2, "fired once, resolved once");
}

/// A PagerDuty Events API v2 stand-in: checks each event against the documented schema
/// and answers 202 as PagerDuty does; the first event gets a 429 with Retry-After.
fn pagerduty_receiver(key: &'static str) -> HttpServer {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    HttpServer::start(move |req: &Request| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return Response::status(429).header("Retry-After", "1").body(r#"{"status":"throttle event"}"#);
        }
        match check_pagerduty_event(req, key) {
            Ok(()) => Response::status(202).body(r#"{"status":"success","message":"Event processed"}"#),
            Err(why) => Response::status(400).body(&format!(r#"{{"status":"invalid event","errors":["{why}"]}}"#)),
        }
    })
}

fn check_pagerduty_event(req: &Request, key: &str) -> Result<(), String> {
    if req.method != "POST" || req.path != "/v2/enqueue" {
        return Err(format!("{} {}", req.method, req.path));
    }
    if !req.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Err("not JSON".into());
    }
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| e.to_string())?;
    if body["routing_key"] != key {
        return Err("wrong routing_key".into());
    }
    let dedup = body["dedup_key"].as_str().ok_or("no dedup_key")?;
    if dedup.is_empty() || dedup.len() > 255 {
        return Err("dedup_key length".into());
    }
    match body["event_action"].as_str() {
        Some("trigger") => {
            let payload = &body["payload"];
            let summary = payload["summary"].as_str().ok_or("payload.summary")?;
            if summary.is_empty() || summary.chars().count() > 1024 {
                return Err("payload.summary length".into());
            }
            payload["source"].as_str().filter(|s| !s.is_empty()).ok_or("payload.source")?;
            let severity = payload["severity"].as_str().ok_or("payload.severity")?;
            if !["critical", "error", "warning", "info"].contains(&severity) {
                return Err("payload.severity".into());
            }
            if let Some(ts) = payload["timestamp"].as_str() {
                ts.parse::<jiff::Timestamp>().map_err(|e| format!("payload.timestamp: {e}"))?;
            }
            Ok(())
        }
        Some("resolve" | "acknowledge") => Ok(()),
        other => Err(format!("event_action {other:?}")),
    }
}

#[test]
fn pagerduty_triggers_on_escalation_and_resolves_the_same_dedup_key_and_the_key_never_leaks() {
    const KEY: &str = "R0utingKeyFromPagerDuty0123456789";
    let pd = pagerduty_receiver(KEY);
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key_env = \"BULWARK_TEST_PD_KEY\"\nattempts = 3\ntimeout = \"5s\"\n",
        pd.url("/v2/enqueue")
    ));
    web.set_up(false);
    let out = run(web.sidecar(&["watch-once"]).env("BULWARK_TEST_PD_KEY", KEY));
    out.assert_code(1);
    web.set_up(true);
    let healed = run(web.sidecar(&["watch-once", "--json"]).env("BULWARK_TEST_PD_KEY", KEY));
    healed.assert_code(0);

    let requests = pd.requests();
    assert_eq!(requests.len(), 3, "throttled once, then the trigger, then the resolve");
    let events: Vec<Value> = requests.iter().map(Request::json).collect();
    assert_eq!(events[1]["event_action"], "trigger");
    assert_eq!(events[2]["event_action"], "resolve");
    assert_eq!(events[1]["dedup_key"], events[2]["dedup_key"], "one dedup_key per incident");
    assert_eq!(events[1]["payload"]["component"], "web");
    for req in &requests[1..] {
        check_pagerduty_event(req, KEY).unwrap();
    }
    assert_eq!(web.env.events_of("notify.sent").len(), 2);
    let attempts: Vec<u64> =
        web.env.events_of("notify.sent").iter().map(|e| e.fields["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [2, 1], "the 429 was retried after its Retry-After");
    for (what, text) in [
        ("stdout", out.stdout.as_str()),
        ("stderr", out.stderr.as_str()),
        ("json stdout", healed.stdout.as_str()),
        ("journal", web.journal_text().as_str()),
    ] {
        assert!(!text.contains(KEY), "the routing key leaked into the {what}:\n{text}");
    }
    let status = run(&mut web.sidecar(&["status", "--json"]));
    assert!(!status.stdout.contains(KEY));
    let check = run(web
        .env
        .bin_command("bulwark")
        .args(["config", "check", "--json", "--config"])
        .arg(&web.config)
        .env("BULWARK_TEST_PD_KEY", KEY));
    check.assert_code(0);
    assert!(!check.stdout.contains(KEY) && check.stdout.contains("routing_key_env_set"), "{}", check.stdout);
}

#[test]
fn ntfy_gets_every_watchdog_message_as_text_with_title_priority_and_tags() {
    let ntfy = HttpServer::start(|req: &Request| {
        if req.method == "POST"
            && req.path == "/bulwark-alerts"
            && !req.body.is_empty()
            && req.header("title").is_some()
        {
            Response::ok(r#"{"id":"x","event":"message","topic":"bulwark-alerts"}"#)
        } else {
            Response::status(400).body("bad publish")
        }
    });
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"ntfy\"\nurl = \"{}\"\nattempts = 1\n",
        ntfy.url("/bulwark-alerts")
    ));
    web.escalate();
    web.recover();
    let requests = ntfy.requests();
    assert_eq!(requests.len(), 2, "the escalation and the recovery");
    let escalation = &requests[0];
    assert!(escalation.header("title").unwrap().contains("Watchdog escalated: web"));
    assert_eq!(escalation.header("priority"), Some("urgent"));
    assert!(escalation.header("tags").unwrap().contains("bulwark"));
    assert!(escalation.header("content-type").unwrap().starts_with("text/plain"));
    assert!(escalation.body_str().contains("watchdog incident"), "{}", escalation.body_str());
    assert!(requests[1].header("title").unwrap().contains("web is healthy again"));
    assert_eq!(requests[1].header("priority"), Some("default"));
    assert_eq!(web.env.events_of("notify.sent").len(), 2);
}

/// node_exporter on a free port reading only `dir`'s textfiles (every other collector off).
fn node_exporter(env: &TestEnv, dir: &std::path::Path) -> Option<(Daemon, String)> {
    let program = tool("/usr/bin/prometheus-node-exporter")?;
    let port = free_port();
    let mut cmd = Command::new(program);
    cmd.arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!("--collector.textfile.directory={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut daemon = Daemon::start("node_exporter", &mut cmd, env.path("node-exporter.log"));
    let base = format!("http://127.0.0.1:{port}");
    daemon.wait_ready(&format!("{base}/metrics"));
    Some((daemon, base))
}

/// The samples node_exporter serves, as `name{labels sorted}` → value.
fn scrape(base: &str) -> std::collections::BTreeMap<String, f64> {
    let (status, text) = get(&format!("{base}/metrics")).expect("node_exporter answers");
    assert_eq!(status, 200);
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').filter(|l| !l.is_empty()).collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        out.insert(key, value.parse().unwrap_or(f64::NAN));
    }
    out
}

/// A production-like drift root: one checkout with a hand edit (`modified`).
fn drifted_root(env: &TestEnv, remote: &std::path::Path) -> PathBuf {
    let root = env.path("srv-root");
    std::fs::create_dir_all(&root).unwrap();
    env.git(env.root(), &["clone", "-q", &bulwark_testutil::file_url(remote), root.join("app").to_str().unwrap()]);
    std::fs::write(root.join("app/README"), "hand edit\n").unwrap();
    root
}

#[test]
fn node_exporter_serves_what_the_sidecar_drift_and_guards_did_from_one_shared_textfile() {
    let probe = TestEnv::new();
    let textfiles = probe.path("textfiles");
    std::fs::create_dir_all(&textfiles).unwrap();
    let Some((_node, base)) = node_exporter(&probe, &textfiles) else { return };
    let hook = Receiver::start();
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nattempts = 1\n[metrics]\ntextfile = \"{}\"\n",
        hook.url("/hook"),
        textfiles.join("bulwark.prom").display()
    ));
    // The watchdog: an escalation (one restart), then recovery.
    web.escalate();
    web.recover();
    // The guards: a refused commit on `main` (the client hook), a push the remote never got.
    let (remote, dev) = web.env.remote_and_clone();
    web.env.bulwark(&dev, &["install", "--repo", dev.to_str().unwrap(), "--role", "dev"]).assert_code(0);
    web.env.try_commit_file(&dev, "x.txt", "x\n", "straight on main").assert_code(1);
    let verify = run(web.env.bin_command("bulwark-verify-push").current_dir(&dev).args(["--", "true"]));
    verify.assert_code(1);
    // The drift scan: one hand edit.
    let root = drifted_root(&web.env, &remote);
    run(web.env.bin_command("bulwark-drift").arg("--config").arg(&web.config).arg("scan").arg(&root)).assert_code(1);
    // The sidecar's pass (no jobs): it is up.
    run(&mut web.sidecar(&["once"])).assert_code(0);

    let metrics = scrape(&base);
    let value =
        |key: &str| metrics.get(key).copied().unwrap_or_else(|| panic!("node_exporter lacks {key}: {metrics:#?}"));
    assert_eq!(value("node_textfile_scrape_error"), 0.0, "node_exporter parsed the shared file");
    assert_eq!(value(r#"bulwark_sidecar_watchdog_incidents_total{outcome="escalated",service="web"}"#), 1.0);
    assert_eq!(value(r#"bulwark_sidecar_watchdog_incidents_total{outcome="recovered",service="web"}"#), 1.0);
    assert_eq!(value(r#"bulwark_sidecar_watchdog_restarts_total{service="web"}"#), 1.0);
    assert_eq!(value("bulwark_sidecar_up"), 1.0);
    let now = jiff::Timestamp::now().as_second() as f64;
    let last = value("bulwark_sidecar_last_success_timestamp_seconds");
    assert!((now - last).abs() < 120.0, "last success {last} is now ({now})");
    assert_eq!(value(r#"bulwark_hook_refusals_total{hook="pre-commit",rule="protected-branch"}"#), 1.0);
    assert_eq!(value("bulwark_verify_push_failures_total"), 1.0);
    assert_eq!(value(r#"bulwark_drift_findings{kind="modified"}"#), 1.0);
    assert_eq!(value(r#"bulwark_drift_findings{kind="untracked"}"#), 0.0);
    assert_eq!(value(r#"bulwark_drift_findings_total{kind="modified"}"#), 1.0);
    assert_eq!(value(r#"bulwark_drift_scans_total{outcome="drift"}"#), 1.0);
    assert_eq!(value("bulwark_drift_up"), 1.0);
    let unbounded: Vec<&String> = metrics
        .keys()
        .filter(|k| {
            k.starts_with("bulwark_") && ["job=", "commit=", "incident=", "path="].iter().any(|l| k.contains(l))
        })
        .collect();
    assert!(unbounded.is_empty(), "no unbounded labels: {unbounded:?}");

    // Counted once: a second drift scan counts a second scan but not the old finding again.
    run(web.env.bin_command("bulwark-drift").arg("--config").arg(&web.config).arg("scan").arg(&root)).assert_code(1);
    run(&mut web.sidecar(&["once"])).assert_code(0);
    let metrics = scrape(&base);
    assert_eq!(metrics[r#"bulwark_drift_scans_total{outcome="drift"}"#], 2.0);
    assert_eq!(metrics[r#"bulwark_drift_findings_total{kind="modified"}"#], 1.0);
    assert_eq!(metrics[r#"bulwark_hook_refusals_total{hook="pre-commit",rule="protected-branch"}"#], 1.0);
    assert_eq!(metrics[r#"bulwark_sidecar_watchdog_incidents_total{outcome="escalated",service="web"}"#], 1.0);
    let text = std::fs::read_to_string(textfiles.join("bulwark.prom")).unwrap();
    let helps = text.lines().filter(|l| l.starts_with("# HELP bulwark_sidecar_up ")).count();
    assert_eq!(helps, 1, "each family once in the shared file:\n{text}");
    let leftovers: Vec<_> = std::fs::read_dir(&textfiles).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("bulwark.prom")], "no temporary file left beside it");
}
