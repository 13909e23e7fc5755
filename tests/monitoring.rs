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

/// The `[[service]]` "web" deployed by `true` from `checkout`, checked at `health` once.
fn service_web(checkout: &std::path::Path, health: &str) -> String {
    format!(
        "[[service]]\nname = \"web\"\ncheckout = \"{}\"\ndeploy = [\"true\"]\nstabilize = \"50ms\"\n[service.health]\nurl = \"{health}\"\ntimeout = \"2s\"\nattempts = 1\ninterval = \"50ms\"\n",
        checkout.display()
    )
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
                r#"{service}[service.watch]
every = "200ms"
restart = ["{restart}"]
wait = "100ms"
max_restarts = 3
window = "1h"
{extra}
"#,
                service = service_web(&checkout, &health.url("/health")),
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

/// A production-like drift root `srv-root` with one clean checkout `app` of `remote`.
fn root_of(env: &TestEnv, remote: &std::path::Path) -> PathBuf {
    let root = env.path("srv-root");
    std::fs::create_dir_all(&root).unwrap();
    env.git(env.root(), &["clone", "-q", &bulwark_testutil::file_url(remote), root.join("app").to_str().unwrap()]);
    root
}

/// A new remote (`server.git`) and [`root_of`] it.
fn clean_root(env: &TestEnv) -> (PathBuf, PathBuf) {
    let (remote, _) = env.remote_and_clone();
    let root = root_of(env, &remote);
    (remote, root)
}

/// [`root_of`] `remote`, with a hand edit in `app` (`modified`).
fn drifted_root(env: &TestEnv, remote: &std::path::Path) -> PathBuf {
    let root = root_of(env, remote);
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

/// Prometheus on a free port scraping `target` every second and evaluating `rules` every
/// second; returns it and its base URL.
fn prometheus(env: &TestEnv, target: &str, rules: &[PathBuf]) -> Option<(Daemon, String)> {
    let program = tool("/usr/bin/prometheus")?;
    let port = free_port();
    let dir = env.path("prometheus");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let rule_files: String = rules.iter().map(|r| format!("  - {}", r.display())).collect::<Vec<_>>().join("\n") + "\n";
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{rule_files}scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{}']\n",
            target.trim_start_matches("http://")
        ),
    )
    .unwrap();
    let mut cmd = Command::new(program);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut daemon = Daemon::start("prometheus", &mut cmd, dir.join("log"));
    let base = format!("http://127.0.0.1:{port}");
    daemon.wait_ready(&format!("{base}/-/ready"));
    Some((daemon, base))
}

/// The rules file the project ships (`install/bulwark.rules.yml`).
fn shipped_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("install/bulwark.rules.yml")
}

/// The alerts Prometheus has firing, by name.
fn firing(base: &str) -> Vec<Value> {
    let alerts = get_json(&format!("{base}/api/v1/alerts"));
    alerts["data"]["alerts"].as_array().unwrap().iter().filter(|a| a["state"] == "firing").cloned().collect()
}

#[test]
fn prometheus_evaluates_the_shipped_alert_rules_against_what_node_exporter_serves() {
    let probe = TestEnv::new();
    let textfiles = probe.path("textfiles");
    std::fs::create_dir_all(&textfiles).unwrap();
    let Some((_node, node)) = node_exporter(&probe, &textfiles) else { return };
    // The shipped rules, and the same rules with "silent for 10 minutes" shortened to 3 s
    // (and no `for:`), so the test can watch a silent sidecar make it fire.
    let shipped = std::fs::read_to_string(shipped_rules()).unwrap();
    let fast = shipped
        .replace(
            "bulwark_sidecar_last_success_timestamp_seconds > 600",
            "bulwark_sidecar_last_success_timestamp_seconds > 3",
        )
        .replace("alert: Bulwark", "alert: FastBulwark")
        .replace("for: 5m", "for: 0m");
    assert!(fast.contains("> 3\n"), "the shipped rule still reads `> 600`");
    let fast_rules = probe.path("fast.rules.yml");
    std::fs::write(&fast_rules, fast).unwrap();
    let Some((_prom, prom)) = prometheus(&probe, &node, &[shipped_rules(), fast_rules]) else { return };

    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nattempts = 1\n[metrics]\ntextfile = \"{}\"\n",
        bulwark_testutil::http::refused_url("/hook"),
        textfiles.join("bulwark-{component}.prom").display()
    ));
    run(&mut web.sidecar(&["once"])).assert_code(0);
    let (remote, _) = web.env.remote_and_clone();
    let root = drifted_root(&web.env, &remote);
    run(web.env.bin_command("bulwark-drift").arg("--config").arg(&web.config).arg("scan").arg(&root)).assert_code(1);
    assert!(textfiles.join("bulwark-sidecar.prom").is_file() && textfiles.join("bulwark-drift.prom").is_file());

    // Every shipped rule loads and evaluates.
    let rules = get_json(&format!("{prom}/api/v1/rules"));
    let all: Vec<&Value> =
        rules["data"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    let evaluated = wait_for(Duration::from_secs(30), || {
        let rules = get_json(&format!("{prom}/api/v1/rules"));
        let rules: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        rules.iter().all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z").then_some(rules)
    });
    let evaluated = evaluated.unwrap_or_else(|| panic!("not every rule evaluated healthily: {all:#?}"));
    assert!(evaluated.iter().any(|r| r["name"] == "BulwarkSidecarSilent"), "{evaluated:#?}");

    // The drift finding fires at once; the sidecar, quiet since its one pass, is "silent"
    // for the 3-second copy only.
    let drift = wait_for(Duration::from_secs(30), || {
        firing(&prom).into_iter().find(|a| a["labels"]["alertname"] == "BulwarkDriftFound")
    })
    .expect("BulwarkDriftFound fires for the hand edit");
    assert_eq!(drift["labels"]["kind"], "modified");
    let silent = wait_for(Duration::from_secs(30), || {
        firing(&prom).into_iter().find(|a| a["labels"]["alertname"] == "FastBulwarkSidecarSilent")
    });
    assert!(silent.is_some(), "a sidecar that stopped writing is silent: {:#?}", firing(&prom));
    let names: Vec<String> =
        firing(&prom).iter().map(|a| a["labels"]["alertname"].as_str().unwrap().to_owned()).collect();
    assert!(!names.contains(&"BulwarkSidecarSilent".to_owned()), "10 minutes have not passed: {names:?}");
    assert!(!names.contains(&"BulwarkSidecarDown".to_owned()), "the sidecar's pass was good: {names:?}");
}

/// A dead-man's switch receiver (healthchecks.io's API shape): records each ping's path.
fn ping_receiver() -> HttpServer {
    HttpServer::start(|_req| Response::ok("OK"))
}

fn ping_paths(server: &HttpServer) -> Vec<String> {
    server.requests().into_iter().map(|r| r.path).collect()
}

#[test]
fn a_killed_sidecar_daemon_stops_its_dead_mans_switch_pings() {
    let hc = ping_receiver();
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nattempts = 1\n[[ping]]\nurl = \"{}\"\nevery = \"1s\"\ncomponent = \"sidecar\"\n[[ping]]\nurl = \"{}\"\ncomponent = \"drift\"\n",
        bulwark_testutil::http::refused_url("/hook"),
        hc.url("/ping/5b4f3c1e-sidecar"),
        hc.url("/ping/drift-only"),
    ));
    let mut daemon =
        web.sidecar(&["run", "--poll", "100ms"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let alive = wait_for(Duration::from_secs(20), || (ping_paths(&hc).len() >= 3).then_some(()));
    if alive.is_none() {
        let _ = daemon.kill();
        panic!("the daemon did not ping 3 times: {:?}", ping_paths(&hc));
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let before = ping_paths(&hc);
    assert!(
        before.iter().all(|p| p == "/ping/5b4f3c1e-sidecar"),
        "liveness pings only, to the sidecar's target: {before:?}"
    );
    // Silence is the alarm: nothing more arrives once the daemon is dead.
    let more = wait_for(Duration::from_secs(4), || (ping_paths(&hc).len() > before.len()).then_some(()));
    assert!(more.is_none(), "pings after the kill: {:?}", ping_paths(&hc));
}

#[test]
fn drift_scan_pings_start_then_success_or_fail_with_one_run_id_and_a_dead_receiver_is_journaled_once() {
    let hc = ping_receiver();
    let env = TestEnv::new();
    let (remote, root) = clean_root(&env);
    let dead = bulwark_testutil::http::refused_url("/dead");
    let config = env.write_config(
        "bulwark.toml",
        &format!("[[ping]]\nurl_env = \"BULWARK_TEST_PING\"\ncomponent = \"drift\"\n[[ping]]\nurl = \"{dead}\"\n"),
    );
    let scan = |extra: &[&str]| {
        run(env
            .bin_command("bulwark-drift")
            .env("BULWARK_TEST_PING", hc.url("/ping/hc-uuid"))
            .arg("--config")
            .arg(&config)
            .arg("scan")
            .args(extra)
            .arg(&root))
    };
    scan(&[]).assert_code(0);
    let paths = ping_paths(&hc);
    assert_eq!(paths.len(), 2, "{paths:?}");
    let rid = paths[0].strip_prefix("/ping/hc-uuid/start?rid=").unwrap_or_else(|| panic!("{paths:?}"));
    assert_eq!(paths[1], format!("/ping/hc-uuid?rid={rid}"), "success with the same run id");
    let failed = env.events_of("ping.failed");
    assert_eq!(failed.len(), 1, "the dead receiver: one event for the run, not one per ping: {failed:?}");
    assert_eq!(failed[0].fields["signal"], "start");
    let status = env.bulwark(env.root(), &["status", "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let monitoring = status["components"].as_array().unwrap().iter().find(|c| c["name"] == "monitoring").cloned();
    assert_eq!(monitoring.unwrap()["last_failure"]["kind"], "ping.failed", "`bulwark status` shows it");

    // The scan cannot look at the remote (`--fetch` of a remote that is gone): /fail.
    std::fs::rename(&remote, env.path("server-gone.git")).unwrap();
    scan(&["--fetch"]).assert_code(1);
    let paths = ping_paths(&hc);
    assert_eq!(paths.len(), 4, "{paths:?}");
    assert!(paths[3].starts_with("/ping/hc-uuid/fail?rid="), "{paths:?}");
    let body = hc.requests()[3].body_str();
    assert!(body.contains("fetch-failed"), "the failure says what could not be looked at: {body}");
    let journal = std::fs::read_to_string(env.state_dir().join("events.jsonl")).unwrap();
    assert!(!journal.contains("hc-uuid"), "the ping URL from the environment never reaches the journal");
}

#[test]
fn a_ping_receiver_answering_429_is_left_alone_until_its_retry_after() {
    let hc = HttpServer::start(|_req| Response::status(429).header("Retry-After", "3600").body("rate limited"));
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nattempts = 1\n[[ping]]\nurl = \"{}\"\nevery = \"1s\"\n",
        bulwark_testutil::http::refused_url("/hook"),
        hc.url("/ping/limited"),
    ));
    let mut daemon =
        web.sidecar(&["run", "--poll", "100ms"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let first = wait_for(Duration::from_secs(20), || (!hc.requests().is_empty()).then_some(()));
    let journaled = wait_for(Duration::from_secs(10), || (!web.env.events_of("ping.failed").is_empty()).then_some(()));
    // Three more liveness intervals: the receiver said to wait an hour.
    let more = wait_for(Duration::from_secs(3), || (hc.requests().len() > 1).then_some(()));
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(first.is_some(), "the daemon pinged");
    assert!(journaled.is_some(), "the 429 is a ping.failed event");
    assert!(more.is_none(), "pinged again despite Retry-After: {:?}", ping_paths(&hc));
    let failed = web.env.events_of("ping.failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].fields["error"].as_str().unwrap().contains("429"));
}

/// systemd's side of the notify protocol, without systemd: a datagram socket at
/// `$NOTIFY_SOCKET` that collects what the sidecar sends.
#[test]
fn the_sidecar_tells_systemd_it_is_ready_and_pets_the_watchdog_only_while_its_loop_turns() {
    use std::os::unix::net::UnixDatagram;
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nattempts = 1\n",
        bulwark_testutil::http::refused_url("/hook")
    ));
    let socket_path = web.env.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's.
    let mut daemon = web
        .env
        .command("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$@\"", "sh"])
        .arg(bulwark_testutil::bin("bulwark-sidecar"))
        .arg("--config")
        .arg(&web.config)
        .args(["run", "--poll", "100ms"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env("BULWARK_TEST_HOOKS", "1")
        .env("BULWARK_TEST_HANG_AT", "serve.loop")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut messages: Vec<(Duration, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    // The service loop hangs after its first turn: systemd hears READY, then WATCHDOG=1
    // until the loop is overdue (15 s idle allowance), then nothing.
    while started.elapsed() < Duration::from_secs(24) {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push((started.elapsed(), String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    let still_running = daemon.try_wait().unwrap().is_none();
    let _ = daemon.kill();
    let output = daemon.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(still_running, "the daemon lives on (hung, not dead): {stderr}");
    let first = messages.first().map(|(_, m)| m.clone()).unwrap_or_default();
    assert!(first.contains("READY=1"), "READY first: {messages:?}");
    let pets: Vec<Duration> = messages.iter().filter(|(_, m)| m.contains("WATCHDOG=1")).map(|(at, _)| *at).collect();
    assert!(pets.len() >= 10, "WATCHDOG=1 while the loop was within its allowance: {messages:?}");
    let last = *pets.last().unwrap();
    assert!(last < Duration::from_secs(20), "WATCHDOG=1 went on after the loop hung (last at {last:?})");
    assert!(started.elapsed().saturating_sub(last) > Duration::from_secs(3), "silence at the end");
    assert!(stderr.contains("has stopped making progress"), "{stderr}");
}

#[test]
fn a_rollback_escalation_fires_in_alertmanager_and_the_next_healthy_deploy_resolves_it_and_is_measured() {
    let hook = Receiver::start();
    let probe = TestEnv::new();
    let Some((_am, base)) = alertmanager(&probe, &hook.url("/am")) else { return };
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    let head = env.rev(&prod, "HEAD");
    let up = env.path("service-up");
    let flag = up.clone();
    let health = HttpServer::start(
        move |_req| if flag.exists() { Response::ok("ok") } else { Response::status(500).body("down") },
    );
    let textfile = env.path("textfiles/bulwark-{component}.prom");
    std::fs::create_dir_all(env.path("textfiles")).unwrap();
    let config = env.write_config(
        "bulwark.toml",
        &format!(
            r#"{service}[[notify]]
kind = "alertmanager"
url = "{base}"
attempts = 2
[metrics]
textfile = "{textfile}"
"#,
            service = service_web(&prod, &health.url("/health")),
            textfile = textfile.display(),
        ),
    );
    // Unhealthy with no earlier commit known: nothing to revert to, so it escalates.
    bulwark_core::jobs::enqueue(&env.state_dir(), "web", bulwark_core::git::ZERO_OID, &head, "post-merge").unwrap();
    run(&mut env.sidecar(&config, &["once"])).assert_code(1).assert_stdout_contains("rollback.escalated");
    let firing = active_web_alerts(&base);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["labels"]["alertname"], "BulwarkRollbackEscalated");
    // Alertmanager sends a resolved notification only for a group it notified as firing.
    let fired = wait_for(Duration::from_secs(20), || {
        hook.accepted().into_iter().find(|b| b["status"] == "firing" && b["alerts"][0]["labels"]["service"] == "web")
    });
    assert!(fired.is_some(), "Alertmanager routed the firing alert to its receiver");

    // Fixed: the next deploy is healthy, which resolves the alert that fired.
    std::fs::write(&up, "").unwrap();
    bulwark_core::jobs::enqueue(&env.state_dir(), "web", &head, &head, "cli").unwrap();
    run(&mut env.sidecar(&config, &["once"])).assert_code(0).assert_stdout_contains("deploy.healthy");
    assert!(active_web_alerts(&base).is_empty(), "resolved: {:?}", active_web_alerts(&base));
    let resolved = wait_for(Duration::from_secs(20), || {
        hook.accepted().into_iter().find(|b| b["status"] == "resolved" && b["alerts"][0]["labels"]["service"] == "web")
    });
    assert!(resolved.is_some(), "Alertmanager sent the resolved notification");

    let text = std::fs::read_to_string(env.path("textfiles/bulwark-sidecar.prom")).unwrap();
    for line in [
        r#"bulwark_sidecar_jobs_total{service="web",outcome="escalated"} 1"#,
        r#"bulwark_sidecar_jobs_total{service="web",outcome="healthy"} 1"#,
        r#"bulwark_sidecar_health_failures_total{service="web",step="health"} 1"#,
        r#"bulwark_sidecar_deploy_duration_seconds_count{service="web"} 2"#,
        r#"bulwark_sidecar_verdict_duration_seconds_count{service="web"} 2"#,
        "bulwark_sidecar_up 1",
    ] {
        assert!(text.lines().any(|l| l == line), "the textfile lacks `{line}`:\n{text}");
    }
    assert!(!env.path("textfiles/bulwark-drift.prom").exists(), "the sidecar writes its own file only");
}

#[test]
fn drift_alerts_refuse_a_config_whose_only_targets_are_incident_engines() {
    let env = TestEnv::new();
    let root = env.path("srv-root");
    std::fs::create_dir_all(&root).unwrap();
    let config = env.write_config(
        "bulwark.toml",
        "[[notify]]\nkind = \"pagerduty\"\nrouting_key = \"R0utingKeyFromPagerDuty0123456789\"\n",
    );
    let out = run(env.bin_command("bulwark-drift").arg("--config").arg(&config).args(["scan", "--alert"]).arg(&root));
    out.assert_code(2)
        .assert_stderr_contains("every [[notify]] target is an incident engine")
        .assert_stderr_contains("hint: add a [[notify]] of kind discord, slack, webhook or ntfy");
    assert!(!out.stderr.contains("R0utingKey"), "{}", out.stderr);
}

#[test]
fn a_pagerduty_target_without_a_routing_key_is_a_config_error_with_its_line() {
    let env = TestEnv::new();
    let config = env.write_config("bulwark.toml", "[[notify]]\nkind = \"pagerduty\"\n");
    let out = env.bulwark(env.root(), &["config", "check", "--config", config.to_str().unwrap()]);
    out.assert_code(2).assert_stderr_contains(
        "key `notify[0].routing_key`: a pagerduty target needs `routing_key` or `routing_key_env` (the integration key)",
    );
    let config = env.write_config("bulwark2.toml", "[metrics]\ntextfile = \"relative.prom\"\n");
    let out = env.bulwark(env.root(), &["config", "check", "--config", config.to_str().unwrap()]);
    out.assert_code(2).assert_stderr_contains("key `metrics.textfile`: `relative.prom` must be an absolute path");
    let config = env.write_config("bulwark3.toml", "[metrics]\ntextfile = \"/tmp/bulwark.txt\"\n");
    let out = env.bulwark(env.root(), &["config", "check", "--config", config.to_str().unwrap()]);
    out.assert_code(2).assert_stderr_contains(
        "key `metrics.textfile`: `/tmp/bulwark.txt` must end in .prom (node_exporter's textfile collector reads only *.prom)",
    );
    let config = env.write_config("bulwark4.toml", "[[ping]]\nurl = \"https://hc-ping.com/x\"\nevery = \"100ms\"\n");
    let out = env.bulwark(env.root(), &["config", "check", "--config", config.to_str().unwrap()]);
    out.assert_code(2)
        .assert_stderr_contains("key `ping[0].every`: 100ms is too often for a liveness ping; use 1s or more");
}

#[test]
fn a_ping_url_env_that_is_not_set_stops_the_sidecar_and_the_scan_before_they_start() {
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\n[[ping]]\nurl_env = \"BULWARK_TEST_UNSET_PING\"\n",
        bulwark_testutil::http::refused_url("/hook")
    ));
    run(web.sidecar(&["once"]).env_remove("BULWARK_TEST_UNSET_PING"))
        .assert_code(2)
        .assert_stderr_contains("error: invalid configuration: ping[0]: environment variable `BULWARK_TEST_UNSET_PING` (url_env) is not set")
        .assert_stderr_contains("hint: export the variable (under systemd: in /etc/bulwark/env, read by EnvironmentFile=), or set `url`");
    let root = web.env.path("srv");
    run(web.env.bin_command("bulwark-drift").arg("--config").arg(&web.config).arg("scan").arg(&root))
        .assert_code(2)
        .assert_stderr_contains("ping[0]: environment variable `BULWARK_TEST_UNSET_PING` (url_env) is not set");
    assert!(web.env.events_of("deploy.started").is_empty() && web.env.events_of("drift.found").is_empty());
}

#[test]
fn sidecar_once_pings_start_and_success_with_one_run_id_and_fail_when_it_cannot_keep_its_state() {
    let hc = ping_receiver();
    let web = Watched::new(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nattempts = 1\n[[ping]]\nurl = \"{}\"\n",
        bulwark_testutil::http::refused_url("/hook"),
        hc.url("/ping/once-check"),
    ));
    run(&mut web.sidecar(&["once"])).assert_code(0);
    let paths = ping_paths(&hc);
    assert_eq!(paths.len(), 2, "{paths:?}");
    let rid = paths[0].strip_prefix("/ping/once-check/start?rid=").unwrap_or_else(|| panic!("{paths:?}"));
    assert_eq!(paths[1], format!("/ping/once-check?rid={rid}"));
    assert!(hc.requests()[1].body_str().contains("0 job(s) finished"));

    // A job file that cannot be read back as a job is skipped; a jobs directory that is a
    // file makes the pass fail: `/fail`, with the reason.
    let jobs = web.env.state_dir().join("sidecar/jobs");
    let _ = std::fs::remove_dir_all(&jobs);
    std::fs::create_dir_all(jobs.parent().unwrap()).unwrap();
    std::fs::write(&jobs, "not a directory").unwrap();
    let out = run(&mut web.sidecar(&["once"]));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let paths = ping_paths(&hc);
    assert!(paths.last().unwrap().starts_with("/ping/once-check/fail?rid="), "{paths:?}");
}

#[test]
fn drift_watch_writes_its_metrics_and_pings_after_its_first_scan_and_after_each_change() {
    let hc = ping_receiver();
    let env = TestEnv::new();
    let (_, root) = clean_root(&env);
    let app = root.join("app");
    let textfile = env.path("bulwark-drift.prom");
    let config = env.write_config(
        "bulwark.toml",
        &format!(
            "[drift]\ndebounce = \"50ms\"\n[[ping]]\nurl = \"{}\"\n[metrics]\ntextfile = \"{}\"\n",
            hc.url("/ping/watch"),
            textfile.display()
        ),
    );
    let mut watch = env
        .bin_command("bulwark-drift")
        .arg("--config")
        .arg(&config)
        .arg("watch")
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = wait_for(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&textfile).ok()?;
        (text.contains("\nbulwark_drift_up 1\n") && ping_paths(&hc).len() >= 2).then_some(text)
    });
    // A hand edit: a scan of that checkout, then its success ping (no /start for it).
    std::fs::write(app.join("README"), "hand edit\n").unwrap();
    let after_edit = wait_for(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&textfile).ok()?;
        (text.contains("bulwark_drift_findings_total{kind=\"modified\"} 1") && ping_paths(&hc).len() >= 3).then_some(())
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let first = first.unwrap_or_else(|| panic!("no metrics/pings after the first scan: {:?}", ping_paths(&hc)));
    assert!(first.contains("bulwark_drift_scans_total{outcome=\"clean\"} 1"), "{first}");
    assert!(after_edit.is_some(), "the edit was not measured and pinged: {:?}", ping_paths(&hc));
    let paths = ping_paths(&hc);
    assert!(paths[0].starts_with("/ping/watch/start?rid="), "{paths:?}");
    assert!(paths[2].starts_with("/ping/watch?rid="), "{paths:?}");
}

#[test]
fn a_hanging_ping_receiver_never_delays_a_job_of_the_daemon() {
    let hc = HttpServer::start(|_req| Response::ok("OK").delay(Duration::from_secs(30)));
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    let head = env.rev(&prod, "HEAD");
    let health = HttpServer::start(|_req| Response::ok("ok"));
    let config = env.write_config(
        "bulwark.toml",
        &format!(
            "{service}[[notify]]\nkind = \"webhook\"\nurl = \"{hook}\"\nattempts = 1\n[[ping]]\nurl = \"{ping}\"\nevery = \"1s\"\n",
            service = service_web(&prod, &health.url("/health")),
            hook = bulwark_testutil::http::refused_url("/hook"),
            ping = hc.url("/ping/slow"),
        ),
    );
    let mut daemon =
        env.sidecar(&config, &["run", "--poll", "100ms"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // The receiver is already holding the daemon's liveness pings when the job comes.
    let holding = wait_for(Duration::from_secs(20), || (!hc.requests().is_empty()).then_some(()));
    let queued = std::time::Instant::now();
    bulwark_core::jobs::enqueue(&env.state_dir(), "web", &head, &head, "cli").unwrap();
    let healthy =
        wait_for(Duration::from_secs(20), || (!env.events_of("deploy.healthy").is_empty()).then(|| queued.elapsed()));
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(holding.is_some(), "the daemon pinged the receiver");
    let took = healthy.expect("the job finished");
    assert!(took < Duration::from_secs(4), "the job waited for the ping receiver: {took:?}");
}

#[test]
fn adopting_a_commit_after_an_escalation_resolves_the_pagerduty_incident_it_fired() {
    const KEY: &str = "R0utingKeyFromPagerDuty0123456789";
    let pd = HttpServer::start(|req: &Request| match check_pagerduty_event(req, KEY) {
        Ok(()) => Response::status(202).body(r#"{"status":"success"}"#),
        Err(why) => Response::status(400).body(&why),
    });
    let env = TestEnv::new();
    let (remote, _) = env.remote_and_clone();
    let prod = env.clone_repo(&remote, "prod");
    let head = env.rev(&prod, "HEAD");
    let health = HttpServer::start(|_req| Response::status(500).body("down"));
    let config = env.write_config(
        "bulwark.toml",
        &format!(
            "{service}[[notify]]\nkind = \"pagerduty\"\nurl = \"{pd}\"\nrouting_key = \"{KEY}\"\nattempts = 1\n",
            service = service_web(&prod, &health.url("/health")),
            pd = pd.url("/v2/enqueue"),
        ),
    );
    bulwark_core::jobs::enqueue(&env.state_dir(), "web", bulwark_core::git::ZERO_OID, &head, "post-merge").unwrap();
    run(&mut env.sidecar(&config, &["once"])).assert_code(1);
    // A person repairs it by hand and records the commit as good.
    run(&mut env.sidecar(&config, &["adopt", "--service", "web"])).assert_code(0);
    let events: Vec<Value> = pd.requests().iter().map(Request::json).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["event_action"], "trigger");
    assert_eq!(events[1]["event_action"], "resolve");
    assert_eq!(events[0]["dedup_key"], events[1]["dedup_key"]);
    // Adopting again (nothing escalated since) resolves nothing more.
    run(&mut env.sidecar(&config, &["adopt", "--service", "web"])).assert_code(0);
    assert_eq!(pd.requests().len(), 2);
}
