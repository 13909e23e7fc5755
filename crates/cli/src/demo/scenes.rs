//! The set-up and the five scenes. Each scene acts through the real binaries, shows what the
//! person at the keyboard would see, and judges by real outcomes (exit codes, the remote's
//! refs, the journal, the notification received), never by "the command ran".

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use bulwark_core::journal::Event;
use bulwark_core::{CliError, ExitKind};
use serde_json::Value;

use super::{Sandbox, Verdict};
use bulwark_loopback::{HttpServer, Response};

/// One scene: sets up, acts, narrates, judges.
type Scene = fn(&Sandbox) -> Result<Verdict, CliError>;

/// Identities the sandbox's server lets update `main`.
const MERGER: &str = "merger-bot";
const SIDECAR: &str = "bulwark-sidecar";
/// The identity whose push the server refuses.
const AGENT: &str = "agent-7";

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|e| CliError::operational(format!("demo set-up: cannot write {}", path.display())).caused_by(&e))
}

/// A path as a TOML basic string: JSON's string escapes are all valid TOML escapes, and
/// `serde_json` leaves non-ASCII characters as they are (so no surrogate pairs).
fn toml_string(path: &Path) -> String {
    serde_json::Value::String(path.display().to_string()).to_string()
}

use bulwark_core::EventKind;
use bulwark_core::data;
use bulwark_core::git::short_oid as short;

/// One line of narration.
fn say(text: &str) {
    data!("  {text}");
}

/// Events journaled after the first `skip` ones, of one kind.
fn new_events<'a>(events: &'a [Event], skip: usize, kind: &EventKind) -> Vec<&'a Event> {
    events.iter().skip(skip).filter(|e| e.kind == *kind).collect()
}

pub(super) fn play(sb: &Sandbox) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    write(
        &sb.path("gitconfig"),
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n[gc]\n\tauto = 0\n",
    )?;
    data!("bulwark demo: sandbox in {}", sb.root.display());
    data!();
    let (_health, _webhook) = set_up(sb)?;
    data!();

    let scenes: [Scene; 5] =
        [scene_commit_on_main, scene_push_rejected, scene_agent_did_not_push, scene_hand_edit, scene_bad_merge];
    let mut verdicts = Vec::new();
    for (i, scene) in scenes.iter().enumerate() {
        bulwark_core::output::data_text(&format!("scene {}: ", i + 1));
        let verdict = scene(sb)?;
        data!();
        verdicts.push(verdict);
    }

    data!("event journal of this run ({}):", sb.state_dir().join("events.jsonl").display());
    for event in sb.events()? {
        data!("  {}", event.to_line());
    }
    data!();
    data!("verdicts:");
    let mut all = true;
    for (i, v) in verdicts.iter().enumerate() {
        all &= v.passed;
        data!("  scene {}: {}: {} ({})", i + 1, v.title, if v.passed { "PASS" } else { "FAIL" }, v.detail);
    }
    data!(
        "{} in {:.1}s",
        if all { "every scene behaved as narrated" } else { "some scene did NOT behave as narrated" },
        started.elapsed().as_secs_f64()
    );
    Ok(if all { ExitCode::SUCCESS } else { ExitKind::Violation.into() })
}

/// The "server" (bare, server role, only `merger-bot` and `bulwark-sidecar` may move
/// `main`), a developer clone, an agent's and a merge bot's clones (no hooks), the
/// production checkout (production role), its health endpoint and a webhook receiver.
fn set_up(sb: &Sandbox) -> Result<(HttpServer, HttpServer), CliError> {
    data!("setting up:");
    let seed = sb.path("seed");
    sb.git(&sb.root, &["init", "-q", "-b", "main", "seed"])?;
    write(&seed.join("app.txt"), "version 1\n")?;
    write(&seed.join("status"), "ok\n")?;
    sb.git(&seed, &["add", "app.txt", "status"])?;
    sb.git(&seed, &["commit", "-q", "-m", "initial version"])?;
    sb.git(&sb.root, &["clone", "-q", "--bare", "seed", "server.git"])?;
    std::fs::remove_dir_all(&seed)
        .map_err(|e| CliError::operational(format!("demo set-up: cannot remove {}", seed.display())).caused_by(&e))?;
    write(&sb.path("server.git/bulwark.toml"), &format!("[server]\nallow = [\"{MERGER}\", \"{SIDECAR}\"]\n"))?;
    install(sb, "server", "server.git")?;
    data!("  server.git   the git server: role server, only {MERGER} and {SIDECAR} may update main");
    for clone in ["dev", "agent", "merger", "prod"] {
        sb.git(&sb.root, &["clone", "-q", "server.git", clone])?;
    }
    // The developer's own policy, so a host's /etc/bulwark/bulwark.toml plays no part.
    write(&sb.path("dev/.git/bulwark.toml"), "[protect]\nbranches = [\"main\"]\n")?;
    data!("  dev          a developer's clone (hooks installed in scene 1)");
    data!("  agent        a coding agent's clone, no hooks (pushes as {AGENT})");
    data!("  merger       the merge bot's clone, no hooks (pushes as {MERGER})");
    install(sb, "production", "prod")?;
    data!("  prod         the production checkout: role production, service `web` deployed from it");

    let deployed = sb.path("deployed-status");
    write(&deployed, "ok\n")?;
    let health = HttpServer::try_start(move |req| {
        let answer = if req.path != "/health" {
            Response::status(404).body("not found\n")
        } else if std::fs::read_to_string(&deployed).is_ok_and(|s| s.starts_with("ok")) {
            Response::ok("ok\n")
        } else {
            Response::status(500).body("broken\n")
        };
        answer.header("Content-Type", "text/plain")
    })
    .map_err(|e| CliError::operational("demo set-up: cannot listen on 127.0.0.1").caused_by(&e))?;
    let received = std::sync::Arc::clone(&sb.received);
    let webhook = HttpServer::try_start(move |req| {
        if req.method != "POST" {
            return Response::status(405);
        }
        if let Ok(mut kept) = received.lock() {
            kept.push(req.json());
        }
        Response::status(200)
    })
    .map_err(|e| CliError::operational("demo set-up: cannot listen on 127.0.0.1").caused_by(&e))?;
    let prod = sb.path("prod");
    let deployed = sb.path("deployed-status");
    write(
        &sb.config(),
        &format!(
            r#"# The production box of the demo: one service and one notification target.
[[service]]
name = "web"
checkout = {prod}
deploy = ["cp", "status", {deployed}]
deploy_timeout = "10s"
stabilize = "300ms"

[service.health]
url = "{health}"
timeout = "1s"
attempts = 2
interval = "100ms"

[[notify]]
kind = "webhook"
url = "{hook}"
timeout = "2s"
attempts = 1
"#,
            prod = toml_string(&prod),
            deployed = toml_string(&deployed),
            health = health.url("/health"),
            hook = webhook.url("/hook"),
        ),
    )?;
    data!("  web          deploy = cp status {}; health {}", deployed.display(), health.url("/health"));
    data!("  webhook      notifications go to {} (inside this demo)", webhook.url("/hook"));
    Ok((health, webhook))
}

fn install(sb: &Sandbox, role: &str, repo: &str) -> Result<(), CliError> {
    let mut cmd = sb.command(sb.tool("bulwark"), &sb.root);
    cmd.args(["install", "--role", role, "--repo", repo]);
    let ran = Sandbox::run(cmd)?;
    if ran.code != 0 {
        return Err(CliError::operational(format!(
            "demo set-up: `bulwark install --role {role} --repo {repo}` failed: {}",
            ran.stderr.trim()
        )));
    }
    Ok(())
}

/// Scene 1: a commit straight on `main` is refused by the client hook.
fn scene_commit_on_main(sb: &Sandbox) -> Result<Verdict, CliError> {
    const TITLE: &str = "a commit straight on main is refused by the client hook";
    data!("{TITLE}");
    say("A developer in a hurry commits a fix straight on main, in a clone with bulwark's hooks.");
    let dev = sb.path("dev");
    let mut install = sb.command(sb.tool("bulwark"), &sb.root);
    install.args(["install", "--role", "dev", "--repo"]).arg(&dev);
    let installed = Sandbox::run(install)?;
    Sandbox::show("bulwark install --role dev --repo dev", &installed);
    write(&dev.join("app.txt"), "version 2, edited on main\n")?;
    sb.git(&dev, &["add", "app.txt"])?;
    let before = sb.git(&dev, &["rev-parse", "main"])?;
    let mut commit = sb.command("git", &dev);
    commit.args(["commit", "-q", "-m", "quick fix straight on main"]);
    let ran = Sandbox::run(commit)?;
    Sandbox::show("git commit -m 'quick fix straight on main'", &ran);
    let after = sb.git(&dev, &["rev-parse", "main"])?;
    let passed = installed.code == 0 && ran.code == 1 && ran.stderr.contains("are blocked") && before == after;
    Ok(Verdict {
        title: TITLE,
        passed,
        detail: format!("git commit exited {}, main unchanged: {}", ran.code, before == after),
    })
}

/// Scene 2: the client hook is advice; a clone without it pushes to `main` anyway, and the
/// server's `pre-receive` rejects the push because the pusher is not allowed.
fn scene_push_rejected(sb: &Sandbox) -> Result<Verdict, CliError> {
    const TITLE: &str = "a push to main by an identity the server does not allow is rejected by pre-receive";
    data!("{TITLE}");
    say(&format!("Client hooks are advice. A coding agent's clone has none, and it pushes to main as {AGENT}:"));
    say("only the server can stop it.");
    let agent = sb.path("agent");
    let server = sb.path("server.git");
    write(&agent.join("app.txt"), "version 2, shipped by the agent\n")?;
    sb.git(&agent, &["add", "app.txt"])?;
    sb.git(&agent, &["commit", "-q", "-m", "agent: ship version 2"])?;
    let before = sb.git(&server, &["rev-parse", "refs/heads/main"])?;
    let skip = sb.events()?.len();
    let mut push = sb.command("git", &agent);
    push.args(["push", "origin", "main"]).env("GL_USERNAME", AGENT);
    let ran = Sandbox::run(push)?;
    Sandbox::show(&format!("GL_USERNAME={AGENT} git push origin main"), &ran);
    let after = sb.git(&server, &["rev-parse", "refs/heads/main"])?;
    let events = sb.events()?;
    let rejected = new_events(&events, skip, &EventKind::PushRejected).iter().any(|e| e.str("identity") == Some(AGENT));
    let shown = ran.stderr.lines().any(|l| l.starts_with("remote: error:"));
    let passed = ran.code != 0 && shown && before == after && rejected;
    Ok(Verdict {
        title: TITLE,
        passed,
        detail: format!(
            "git push exited {}, remote main unchanged: {}, push.rejected for {AGENT}: {rejected}",
            ran.code,
            before == after
        ),
    })
}

/// Scene 3: the agent then says "pushed, done"; `bulwark-verify-push` reads the remote and
/// says otherwise.
fn scene_agent_did_not_push(sb: &Sandbox) -> Result<Verdict, CliError> {
    const TITLE: &str = "an agent that exits 0 without pushing is caught by bulwark-verify-push";
    const CLAIM: &str = "Done: version 2 is committed and pushed to main.";
    data!("{TITLE}");
    say("Rejected, the agent reports success anyway. Here the \"agent\" is `echo`: it exits 0 and");
    say("pushes nothing. bulwark-verify-push wraps it and asks the remote, not the agent.");
    let agent = sb.path("agent");
    let server = sb.path("server.git");
    let before = sb.git(&server, &["rev-parse", "refs/heads/main"])?;
    let skip = sb.events()?.len();
    let mut wrapped = sb.command(sb.tool("bulwark-verify-push"), &agent);
    wrapped.arg("--config").arg(sb.config()).args(["--", "echo", CLAIM]);
    let ran = Sandbox::run(wrapped)?;
    Sandbox::show(&format!("bulwark-verify-push -- echo '{CLAIM}'"), &ran);
    let after = sb.git(&server, &["rev-parse", "refs/heads/main"])?;
    let events = sb.events()?;
    let failed = !new_events(&events, skip, &EventKind::VerifyPushFailed).is_empty();
    let passed = ran.code == 1 && ran.stdout.contains(CLAIM) && before == after && failed;
    Ok(Verdict {
        title: TITLE,
        passed,
        detail: format!("the agent exited 0, the wrapper exited {}, verify_push.failed: {failed}", ran.code),
    })
}

/// Scene 4: someone hot-patches a file on the production box; the drift scan finds it.
fn scene_hand_edit(sb: &Sandbox) -> Result<Verdict, CliError> {
    const TITLE: &str = "a hand edit in the production checkout is found by bulwark-drift scan";
    data!("{TITLE}");
    let prod = sb.path("prod");
    write(&prod.join("app.txt"), "version 1, hot-patched by hand on the box\n")?;
    say("Someone logs in to the production box and hot-patches app.txt by hand. The hourly scan runs:");
    let skip = sb.events()?.len();
    let mut scan = sb.command(sb.tool("bulwark-drift"), &sb.root);
    scan.arg("--config").arg(sb.config()).arg("scan").arg(&prod);
    let ran = Sandbox::run(scan)?;
    Sandbox::show("bulwark-drift scan prod", &ran);
    let events = sb.events()?;
    let found = new_events(&events, skip, &EventKind::DriftFound).iter().any(|e| e.to_line().contains("app.txt"));
    let reported = ran.stdout.lines().any(|l| l.contains("modified: app.txt"));
    // Put the box back as the pipeline left it, so scene 5 can deploy.
    sb.git(&prod, &["checkout", "--", "app.txt"])?;
    say("(the hand edit is undone with `git checkout -- app.txt` before the next scene)");
    let passed = ran.code == 1 && reported && found;
    Ok(Verdict {
        title: TITLE,
        passed,
        detail: format!("scan exited {}, reported `modified: app.txt`: {reported}, drift.found: {found}", ran.code),
    })
}

/// Scene 5: a merge that breaks the service is deployed; the sidecar sees the health check
/// fail, reverts, pushes, redeploys, verifies and notifies.
fn scene_bad_merge(sb: &Sandbox) -> Result<Verdict, CliError> {
    const TITLE: &str = "a bad merge deployed is reverted, pushed, redeployed and verified by the sidecar";
    data!("{TITLE}");
    say(&format!("The merge bot ({MERGER}, allowed on main) lands a merge that breaks the service's status."));
    say("Production pulls it; post-merge hands the change to the sidecar, which deploys and checks health.");
    let merger = sb.path("merger");
    let prod = sb.path("prod");
    let server = sb.path("server.git");
    sb.git(&merger, &["switch", "-q", "-c", "feature"])?;
    write(&merger.join("status"), "broken: the new status format\n")?;
    sb.git(&merger, &["commit", "-q", "-a", "-m", "feature: new status format"])?;
    sb.git(&merger, &["switch", "-q", "main"])?;
    sb.git(&merger, &["merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature"])?;
    let good_tree = sb.git(&merger, &["rev-parse", "main^1^{tree}"])?;
    let bad = sb.git(&merger, &["rev-parse", "main"])?;
    let mut push = sb.command("git", &merger);
    push.args(["push", "origin", "main"]).env("GL_USERNAME", MERGER);
    let pushed = Sandbox::run(push)?;
    Sandbox::show(&format!("GL_USERNAME={MERGER} git push origin main   # the merge bot lands the merge"), &pushed);

    let mut pull = sb.command("git", &prod);
    pull.args(["pull", "--ff-only"]).env(bulwark_core::env::CONFIG, sb.config());
    let pulled = Sandbox::run(pull)?;
    Sandbox::show("git pull --ff-only   # in prod; post-merge hands the change to the sidecar", &pulled);

    let skip = sb.events()?.len();
    let mut sidecar = sb.command(sb.tool("bulwark-sidecar"), &prod);
    sidecar.arg("--config").arg(sb.config()).arg("once").env("GL_USERNAME", SIDECAR);
    let ran = Sandbox::run(sidecar)?;
    Sandbox::show(&format!("GL_USERNAME={SIDECAR} bulwark-sidecar once"), &ran);

    let remote_main = sb.git(&server, &["rev-parse", "refs/heads/main"])?;
    let remote_tree = sb.git(&server, &["rev-parse", "refs/heads/main^{tree}"])?;
    let remote_parent = sb.git(&server, &["rev-parse", "refs/heads/main^1"])?;
    let prod_head = sb.git(&prod, &["rev-parse", "HEAD"])?;
    let deployed_ok = std::fs::read_to_string(sb.path("deployed-status")).is_ok_and(|s| s.starts_with("ok"));
    let events = sb.events()?;
    let complete = !new_events(&events, skip, &EventKind::RollbackComplete).is_empty();
    let received: Vec<Value> = sb.received.lock().map(|r| r.clone()).unwrap_or_default();
    say(&format!(
        "The server's main is now {} (its parent is the bad merge {}), prod is at {}, and the service is {}.",
        short(&remote_main),
        short(&bad),
        short(&prod_head),
        if deployed_ok { "healthy" } else { "still broken" }
    ));
    if received.is_empty() {
        say("No notification reached the demo's webhook receiver.");
    } else {
        say("What the on-call channel receives (caught by the demo's own webhook receiver):");
    }
    for note in &received {
        data!("  webhook received: {}", note["title"].as_str().unwrap_or("(no title)"));
        for line in note["text"].as_str().unwrap_or_default().lines() {
            let quoted = format!("  > {line}");
            data!("{}", quoted.trim_end());
        }
    }
    let reverted = remote_tree == good_tree && remote_parent == bad;
    let passed = pushed.code == 0
        && pulled.code == 0
        && ran.code == 1
        && reverted
        && prod_head == remote_main
        && deployed_ok
        && complete
        && received.len() == 1;
    Ok(Verdict {
        title: TITLE,
        passed,
        detail: format!(
            "sidecar exited {}, remote main reverts the merge: {reverted}, prod at remote main: {}, \
             rollback.complete: {complete}, notifications received: {}",
            ran.code,
            prod_head == remote_main,
            received.len()
        ),
    })
}
