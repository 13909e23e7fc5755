//! Leak hunt: a unique token planted in every secret source bulwark is given (a remote URL's
//! userinfo, a notify URL's path and query, a notify URL from the environment), every program
//! driven through its success and failure paths, and every output, every file under the state
//! directory and every webhook body received searched for each token. Zero hits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bulwark_testutil::http::{HttpServer, Response, git_http_backend};
use bulwark_testutil::{Outcome, TestEnv, file_url, run, set_executable};

/// A token no other text contains.
fn token(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{what}9x{}Q{nanos:08x}", std::process::id())
}

struct Hunt {
    env: TestEnv,
    dev: PathBuf,
    prod: PathBuf,
    config: PathBuf,
    /// Every token, with its name.
    tokens: Vec<(&'static str, String)>,
    /// The env var holding the second notify URL.
    hook_env: (String, String),
    git_push_fails: Arc<AtomicBool>,
    webhook_fails: Arc<AtomicBool>,
    webhook_bodies: Arc<Mutex<Vec<String>>>,
    outputs: Vec<(String, Outcome)>,
    _servers: Vec<HttpServer>,
}

impl Hunt {
    fn new() -> Self {
        let env = TestEnv::new();
        let seed = env.init("seed");
        env.commit_file(&seed, "status", "ok\n", "initial commit");
        let remote = env.bare("repos/server.git");
        env.git(&seed, &["push", "-q", &file_url(&remote), "main"]);
        let dev = env.clone_repo(&remote, "dev");
        let prod = env.clone_repo(&remote, "prod");

        let tokens = vec![
            ("remote password", token("RemotePw")),
            ("notify path", token("HookPath")),
            ("notify query", token("HookQuery")),
            ("notify url_env", token("EnvHook")),
            ("health password", token("HealthPw")),
            ("health query", token("HealthQuery")),
        ];

        // The remote over smart HTTP, with the sidecar's push rights in its URL.
        let git_push_fails = Arc::new(AtomicBool::new(false));
        let root = env.path("repos");
        let fails = git_push_fails.clone();
        let git = HttpServer::start(move |req| {
            if fails.load(Ordering::SeqCst) && req.path.contains("git-receive-pack") {
                return Response::status(500).body(&format!("push refused for {}", req.path));
            }
            git_http_backend(&root, req)
        });
        let url = format!("http://bot:{}@{}/server.git", tokens[0].1, git.addr());
        env.git(&prod, &["remote", "set-url", "origin", &url]);

        let deployed = env.path("deployed-status");
        std::fs::write(&deployed, "ok\n").unwrap();
        let script = env.path("deploy.sh");
        std::fs::write(&script, "#!/bin/sh\nset -e\ncp status \"$1\"\n").unwrap();
        set_executable(&script);
        let deployed_for_health = deployed.clone();
        let health = HttpServer::start(move |_| {
            if std::fs::read_to_string(&deployed_for_health).is_ok_and(|s| s.starts_with("ok")) {
                Response::ok("ok")
            } else {
                Response::status(500).body("broken")
            }
        });

        // A webhook that, when failing, answers with an echo of the whole request.
        let webhook_fails = Arc::new(AtomicBool::new(false));
        let webhook_bodies = Arc::new(Mutex::new(Vec::new()));
        let (fails, bodies) = (webhook_fails.clone(), webhook_bodies.clone());
        let webhook = HttpServer::start(move |req| {
            bodies.lock().unwrap().push(req.body_str());
            if fails.load(Ordering::SeqCst) {
                Response::status(500).body(&format!(
                    "bad request: POST {} token={} {}",
                    req.path,
                    req.path,
                    req.body_str()
                ))
            } else {
                Response::ok("")
            }
        });
        let hook_url = webhook.url(&format!("/hook/{}?token={}", tokens[1].1, tokens[2].1));
        let hook_env = ("LEAK_HUNT_HOOK_URL".to_owned(), webhook.url(&format!("/env/{}", tokens[3].1)));

        // Probes record their URL (baseline, windows, incident): with its secrets redacted.
        let health_url = format!("http://probe:{}@{}/health?token={}", tokens[4].1, health.addr(), tokens[5].1);
        let config = env.write_config(
            "bulwark.toml",
            &format!(
                r#"[[service]]
name = "web"
checkout = "{prod}"
deploy = ["{script}", "{deployed}"]
stabilize = "50ms"
[service.health]
url = "{health}"
timeout = "300ms"
attempts = 1
interval = "50ms"
[[notify]]
kind = "webhook"
url = "{hook_url}"
attempts = 1
timeout = "2s"
[[notify]]
kind = "slack"
url_env = "{var}"
attempts = 1
timeout = "2s"
"#,
                prod = prod.display(),
                script = script.display(),
                deployed = deployed.display(),
                health = health_url,
                var = hook_env.0,
            ),
        );
        Self {
            env,
            dev,
            prod,
            config,
            tokens,
            hook_env,
            git_push_fails,
            webhook_fails,
            webhook_bodies,
            outputs: Vec::new(),
            _servers: vec![git, health, webhook],
        }
    }

    /// Runs a workspace binary with the config and the notify URL's variable; keeps its output.
    fn run(&mut self, bin: &str, args: &[&str]) -> Outcome {
        let mut cmd = self.env.bin_command(bin);
        cmd.arg("--config").arg(&self.config).args(args).env(&self.hook_env.0, &self.hook_env.1);
        let out = run(&mut cmd);
        self.outputs.push((format!("{bin} {}", args.join(" ")), out.clone()));
        out
    }

    /// A bad change on `main`, pulled by production (over HTTP) and queued.
    fn bad_change(&self, status: &str) {
        self.env.git(&self.dev, &["pull", "-q", "--ff-only"]);
        self.env.commit_file(&self.dev, "status", status, "break it");
        self.env.git(&self.dev, &["push", "-q", "origin", "main"]);
        let from = self.env.rev(&self.prod, "HEAD");
        self.env.git(&self.prod, &["pull", "-q", "--ff-only"]);
        let to = self.env.rev(&self.prod, "HEAD");
        bulwark_core::jobs::enqueue(&self.env.state_dir(), "web", &from, &to, "post-merge").unwrap();
    }

    /// Every place a token could have reached, as (where, text).
    fn haystacks(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = Vec::new();
        for (what, out) in &self.outputs {
            all.push((format!("stdout of {what}"), out.stdout.clone()));
            all.push((format!("stderr of {what}"), out.stderr.clone()));
        }
        for file in files_under(&self.env.state_dir()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            all.push((file.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
        for (i, body) in self.webhook_bodies.lock().unwrap().iter().enumerate() {
            all.push((format!("webhook body #{i}"), body.clone()));
        }
        all
    }

    #[track_caller]
    fn assert_no_leak(&self) {
        let haystacks = self.haystacks();
        assert!(haystacks.iter().any(|(w, _)| w.ends_with("events.jsonl")), "the hunt covers the journal");
        let mut leaks = Vec::new();
        for (name, token) in &self.tokens {
            for (where_, text) in &haystacks {
                if text.contains(token.as_str()) {
                    leaks.push(format!("the {name} token is in {where_}"));
                }
            }
        }
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn no_secret_reaches_any_output_file_or_webhook_on_success_and_failure_paths() {
    let mut hunt = Hunt::new();

    // Success: the bad change is reverted, pushed over HTTP, redeployed; both targets told.
    hunt.bad_change("broken\n");
    hunt.run("bulwark-sidecar", &["once"]).assert_code(1);
    assert_eq!(hunt.env.events_of("rollback.complete").len(), 1, "{:?}", hunt.outputs);
    assert!(hunt.webhook_bodies.lock().unwrap().len() >= 2, "both targets were sent to");

    // Failure: the push is refused and the webhook answers 500 with an echo of the request.
    hunt.git_push_fails.store(true, Ordering::SeqCst);
    hunt.webhook_fails.store(true, Ordering::SeqCst);
    hunt.bad_change("broken again\n");
    hunt.run("bulwark-sidecar", &["once"]).assert_code(1);
    let escalated = hunt.env.events_of("rollback.escalated");
    assert_eq!(escalated.len(), 1, "{:?}", hunt.outputs);
    assert!(!hunt.env.events_of("notify.failed").is_empty(), "the echoing webhook was journaled");
    let id = escalated[0].id.to_string();

    // Every reader and re-sender of what was recorded.
    hunt.run("bulwark", &["alert", "--event", &id]).assert_code(3);
    hunt.run("bulwark", &["events"]).assert_code(0);
    hunt.run("bulwark", &["events", "--json"]).assert_code(0);
    hunt.run("bulwark-sidecar", &["status"]).assert_code(0);
    hunt.run("bulwark-sidecar", &["status", "--json"]).assert_code(0);
    // A retry of the owed notifications, still failing.
    hunt.run("bulwark-sidecar", &["once"]);
    // A push failure as `once` reports it when the remote is down entirely.
    let stderr: String = hunt.outputs.iter().map(|(_, o)| o.stderr.clone()).collect();
    assert!(hunt.outputs.iter().any(|(_, o)| o.stdout.contains("***") || o.stderr.contains("***")), "{stderr}");
    hunt.assert_no_leak();
}

#[test]
fn a_fetch_failure_quoting_the_remote_url_leaks_nothing() {
    let mut hunt = Hunt::new();
    hunt.bad_change("broken\n");
    // The remote's URL now points nowhere: every fetch fails and quotes git's argv.
    let url = format!("http://bot:{}@{}/gone.git", hunt.tokens[0].1, "127.0.0.1:9");
    hunt.env.git(&hunt.prod, &["remote", "set-url", "origin", &url]);
    hunt.run("bulwark-sidecar", &["once"]).assert_code(1);
    let escalated = hunt.env.events_of("rollback.escalated");
    assert_eq!(escalated.len(), 1, "{:?}", hunt.outputs);
    let reason = escalated[0].str("reason").unwrap_or_default().to_owned();
    assert!(reason.contains("http://***@127.0.0.1:9/gone.git"), "the URL is named, without its password: {reason}");
    hunt.run("bulwark-sidecar", &["status"]).assert_code(0);
    hunt.assert_no_leak();
}
