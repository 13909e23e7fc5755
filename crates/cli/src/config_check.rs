//! `bulwark config check`: which config applies here, is it valid, and what is in effect:
//! every setting, resolved (defaults filled in), with where it came from. Secrets (notify
//! URLs, credentials in URLs) are redacted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bulwark_core::CliError;
use bulwark_core::config::{Config, Lookup, REPO_CONFIG_NAME, SYSTEM_CONFIG, WORKTREE_CONFIG_NAME, WorktreePolicy};
use bulwark_core::data;
use bulwark_core::manifest::Manifest;
use bulwark_core::redact::{REDACTED, clean, clean_value};
use serde_json::{Map, Value, json};

use crate::repo::RepoPaths;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The repository whose `<git-dir>/bulwark.toml` and `.bulwark.toml` apply (default: here).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// Print the effective configuration as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `default` means in the `from` of a setting: nothing set it, the built-in value applies.
const DEFAULT: &str = "default";

pub(crate) fn check(args: &CheckArgs, explicit: Option<&Path>) -> Result<ExitCode, CliError> {
    let repo_path = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    // Outside a repository the lookup simply skips the per-repository file.
    let repo = RepoPaths::resolve(&repo_path).ok();
    if args.repo.is_some() && repo.is_none() {
        RepoPaths::resolve(&repo_path)?;
    }
    let git_dir = repo.as_ref().map(|r| r.common_dir.as_path());
    let lookup = Lookup { explicit, git_dir };
    let loaded = Config::load(&lookup)?;
    let config = &loaded.config;
    let origin = loaded.origin.as_deref();
    let file_name = origin.map_or_else(|| DEFAULT.to_owned(), |p| p.display().to_string());
    // The file as written, to tell set keys from defaults (it was just parsed, so it parses).
    let written: Value = origin
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| serde_json::to_value(table).ok())
        .unwrap_or(Value::Null);
    let effective = serde_json::to_value(config)
        .map_err(|e| CliError::operational("cannot show the configuration").caused_by(&e))?;

    let found_by = match origin {
        None => None,
        Some(_) if explicit.is_some() => Some("--config"),
        Some(_) if std::env::var_os(bulwark_core::env::CONFIG).is_some_and(|v| !v.is_empty()) => {
            Some("$BULWARK_CONFIG")
        }
        Some(path) if path == Path::new(SYSTEM_CONFIG) => Some("the system config"),
        Some(_) => Some("the repository's git directory"),
    };
    let looked_at: Vec<String> = git_dir
        .map(|d| d.join(REPO_CONFIG_NAME).display().to_string())
        .into_iter()
        .chain(std::iter::once(SYSTEM_CONFIG.to_owned()))
        .collect();

    let manifest = match git_dir {
        Some(dir) => Manifest::load(dir).ok().flatten().map(|m| (m.role, Manifest::path(dir))),
        None => None,
    };
    let role = match (config.protect.role, manifest) {
        (Some(role), _) => json!({"value": role, "from": format!("[protect] role in {file_name}")}),
        (None, Some((role, path))) => {
            json!({"value": role, "from": format!("the install record {}", path.display())})
        }
        (None, None) => {
            json!({"value": "dev", "from": "the built-in default: no [protect] role, no install record here"})
        }
    };
    let worktree = match repo.as_ref().and_then(|r| r.work_tree.as_ref()) {
        Some(work_tree) => WorktreePolicy::load(work_tree)?.map(|extra| {
            json!({
                "file": work_tree.join(WORKTREE_CONFIG_NAME),
                "adds_branches": extra.protect.branches,
                "adds_patterns": extra.protect.patterns.iter().map(bulwark_core::config::BranchPattern::as_str).collect::<Vec<_>>(),
            })
        }),
        None => None,
    };

    let mut report = Map::new();
    report.insert("file".into(), json!(origin));
    report.insert("found_by".into(), json!(found_by));
    if origin.is_none() {
        report.insert("looked_at".into(), json!(looked_at));
    }
    report.insert("role".into(), role);
    report.insert("work_tree_policy".into(), worktree.unwrap_or(Value::Null));
    for section in ["protect", "server", "drift"] {
        report.insert(section.into(), settings(&effective[section], &written[section], &file_name));
    }
    let services: Vec<Value> = array(&effective["service"])
        .iter()
        .zip(0..)
        .map(|(service, i)| settings(service, &written["service"][i], &file_name))
        .collect();
    report.insert("services".into(), Value::Array(services));
    let targets = |section: &str| -> Vec<Value> {
        array(&effective[section])
            .iter()
            .zip(0..)
            .map(|(target, i)| secret_target(target, &written[section][i], &file_name))
            .collect()
    };
    let notify = targets("notify");
    report.insert("ping".into(), Value::Array(targets("ping")));
    report.insert("metrics".into(), settings(&effective["metrics"], &written["metrics"], &file_name));
    report.insert("notify".into(), Value::Array(notify));
    let freeze: Vec<Value> = array(&effective["freeze"])
        .iter()
        .zip(0..)
        .map(|(window, i)| settings(window, &written["freeze"][i], &file_name))
        .collect();
    report.insert("freeze".into(), Value::Array(freeze));
    let mut report = Value::Object(report);
    clean_value(&mut report);

    if args.json {
        data!("{report}");
    } else {
        print_text(&report, found_by, &looked_at);
    }
    if !config.services.is_empty() && config.notify.is_empty() {
        // What `bulwark-sidecar once|run` refuses: found now, not at 3 a.m.
        return Err(CliError::usage(
            "[[service]] without any [[notify]]: an escalation would reach nobody, so bulwark-sidecar refuses to run",
        )
        .hint("add a [[notify]] section (kind = \"slack\", \"discord\", \"webhook\", \"ntfy\", \"alertmanager\" or \"pagerduty\"; see the README's configuration reference)"));
    }
    Ok(ExitCode::SUCCESS)
}

/// A `[[notify]]` or `[[ping]]` target's settings with its secrets hidden: a URL shows its
/// scheme and host, a routing key nothing, and a `*_env` whether the variable is set.
fn secret_target(target: &Value, written: &Value, file: &str) -> Value {
    let mut target = target.clone();
    if let Some(url) = target["url"].as_str() {
        target["url"] = json!(redact_whole_url(url));
    }
    if target["routing_key"].is_string() {
        target["routing_key"] = json!(REDACTED);
    }
    for var_key in ["url_env", "routing_key_env"] {
        if let Some(var) = target[var_key].as_str() {
            let set = std::env::var_os(var).is_some_and(|v| !v.is_empty());
            target[format!("{var_key}_set")] = json!(set);
        }
    }
    let mut shown = settings(&target, written, file);
    for var_key in ["url_env_set", "routing_key_env_set"] {
        if let Some(set) = shown.get_mut(var_key) {
            set["from"] = json!("the environment");
        }
    }
    shown
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Every setting of one section (or service, or notify target) as `{value, from}`: the file
/// when the file sets it, else `default`. `health`, `watch` and `follow` are flattened
/// (`health.url`), being sections of their own.
fn settings(effective: &Value, written: &Value, file: &str) -> Value {
    let mut out = Map::new();
    let Some(fields) = effective.as_object() else { return Value::Object(out) };
    for (key, value) in fields {
        let set = written.get(key);
        match value {
            Value::Object(inner) if matches!(key.as_str(), "health" | "watch" | "follow") => {
                for (sub, value) in inner {
                    let from = if set.and_then(|s| s.get(sub)).is_some() { file } else { DEFAULT };
                    out.insert(format!("{key}.{sub}"), json!({"value": value, "from": from}));
                }
            }
            // `[[service.health]]`: each check flattened as `health[i].url`.
            Value::Array(checks) if key == "health" => {
                for (i, check) in checks.iter().enumerate() {
                    for (sub, value) in check.as_object().into_iter().flatten() {
                        let written = set.and_then(|s| s.get(i)).and_then(|s| s.get(sub));
                        let from = if written.is_some() { file } else { DEFAULT };
                        out.insert(format!("{key}[{i}].{sub}"), json!({"value": value, "from": from}));
                    }
                }
            }
            _ => {
                let from = if set.is_some() { file } else { DEFAULT };
                out.insert(key.clone(), json!({"value": value, "from": from}));
            }
        }
    }
    Value::Object(out)
}

/// A notify URL is a secret as a whole (Discord and Slack put the token in the path): only
/// its scheme and host are shown.
fn redact_whole_url(url: &str) -> String {
    let Some((scheme, rest)) = url.trim().split_once("://") else { return REDACTED.to_owned() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}/{REDACTED}")
}

fn print_text(report: &Value, found_by: Option<&str>, looked_at: &[String]) {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&clean(&text));
        out.push('\n');
    };
    match (report["file"].as_str(), found_by) {
        (Some(file), Some(how)) => line(format!("ok: {file} (found by {how})")),
        _ => line(format!("ok: no config file found ({} do not exist); built-in defaults apply", looked_at.join(", "))),
    }
    line(format!("role: {} (from {})", plain(&report["role"]["value"]), plain(&report["role"]["from"])));
    if let Some(extra) = report["work_tree_policy"].as_object() {
        line(format!(
            "plus {}: adds branches {}, patterns {}",
            plain(&extra["file"]),
            extra["adds_branches"],
            extra["adds_patterns"]
        ));
    }
    line("effective configuration (`# default`: not set in the file):".to_owned());
    for section in ["protect", "server", "drift"] {
        line(format!("[{section}]"));
        settings_lines(&report[section], &mut line);
    }
    for service in array(&report["services"]) {
        line("[[service]]".to_owned());
        settings_lines(service, &mut line);
    }
    for target in array(&report["notify"]) {
        line("[[notify]]".to_owned());
        settings_lines(target, &mut line);
    }
    for window in array(&report["freeze"]) {
        line("[[freeze]]".to_owned());
        settings_lines(window, &mut line);
    }
    for target in array(&report["ping"]) {
        line("[[ping]]".to_owned());
        settings_lines(target, &mut line);
    }
    line("[metrics]".to_owned());
    settings_lines(&report["metrics"], &mut line);
    if report["services"].as_array().is_none_or(Vec::is_empty) {
        line("services: none".to_owned());
    }
    if report["notify"].as_array().is_none_or(Vec::is_empty) {
        line("notify: none (alerts go to the event journal only)".to_owned());
    }
    bulwark_core::output::data_text(&out);
}

fn settings_lines(settings: &Value, line: &mut impl FnMut(String)) {
    let Some(settings) = settings.as_object() else { return };
    for (key, setting) in settings {
        let value = &setting["value"];
        let from = setting["from"].as_str().unwrap_or(DEFAULT);
        let shown = if value.is_null() { "(none)".to_owned() } else { value.to_string() };
        let note = match from {
            DEFAULT => "  # default".to_owned(),
            "the environment" => "  # from the environment".to_owned(),
            _ => String::new(),
        };
        line(format!("  {key} = {shown}{note}"));
    }
}

/// A JSON string without its quotes (other values as JSON).
fn plain(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}
