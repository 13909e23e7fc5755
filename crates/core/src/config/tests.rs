use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("bulwark.toml"))
}

fn parse_err(text: &str) -> String {
    parse(text).expect_err("config should be rejected").to_string()
}

#[test]
fn empty_config_protects_main_and_master_in_dev_role() {
    let config = parse("").unwrap();
    assert_eq!(config.protect.branches, ["main", "master"]);
    assert_eq!(config.protect.role, None);
    assert_eq!(config.server.identity_vars[0], "GL_USERNAME");
}

#[test]
fn full_design_example_parses() {
    let text = r#"
[protect]
branches = ["main", "master"]
patterns = ["release/.*"]
role = "production"

[server]
allow = ["merger-bot"]
admins = ["ops"]

[drift]
roots = ["/srv"]

[[service]]
name = "primerouter"
checkout = "/srv/primerouter"
deploy = ["systemctl", "restart", "primerouter"]
stabilize = "60s"
[service.health]
url = "http://127.0.0.1:9400/health"
timeout = "300ms"
[service.watch]
every = "5m"
restart = ["systemctl", "restart", "primerouter"]

[[notify]]
kind = "discord"
url_env = "BULWARK_DISCORD_URL"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.protect.role, Some(Role::Production));
    let service = &config.services[0];
    assert_eq!(service.stabilize.get(), std::time::Duration::from_secs(60));
    assert_eq!(service.health[0].timeout.get(), std::time::Duration::from_millis(300));
    assert_eq!(service.watch.as_ref().unwrap().every.get(), std::time::Duration::from_secs(300));
    assert_eq!(service.deploy.program(), "systemctl");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let err = parse_err("[protect]\nbranches = [\"main\"]\nbrnches = [\"x\"]\n");
    assert!(err.starts_with("bulwark.toml:3:1: "), "{err}");
    assert!(err.contains("brnches"), "{err}");
}

#[test]
fn wrong_type_names_line_and_key_path() {
    let err = parse_err("[protect]\nbranches = \"main\"\n");
    assert!(err.starts_with("bulwark.toml:2:"), "{err}");
    assert!(err.contains("key `protect.branches`"), "{err}");
}

#[test]
fn bad_regex_names_line_and_pattern() {
    let err = parse_err("[protect]\npatterns = [\"release/(\"]\n");
    assert!(err.starts_with("bulwark.toml:2:"), "{err}");
    assert!(err.contains("release/("), "{err}");
    assert!(err.contains("protect.patterns"), "{err}");
}

#[test]
fn bad_duration_is_an_error_with_line() {
    let text = "[[service]]\nname = \"a\"\ncheckout = \"/srv/a\"\ndeploy = [\"true\"]\nstabilize = \"soon\"\n[service.health]\nurl = \"http://127.0.0.1:1/\"\n";
    let err = parse_err(text);
    assert!(err.starts_with("bulwark.toml:5:"), "{err}");
    assert!(err.contains("not a duration"), "{err}");
}

#[test]
fn shell_string_command_is_refused_with_the_array_form() {
    let text = "[[service]]\nname = \"a\"\ncheckout = \"/srv/a\"\ndeploy = \"systemctl restart a\"\n[service.health]\nurl = \"http://127.0.0.1:1/\"\n";
    let err = parse_err(text);
    assert!(err.contains("arrays of arguments"), "{err}");
    assert!(err.contains(r#"["systemctl", "restart", "a"]"#), "{err}");
}

#[test]
fn durations_parse_in_the_documented_forms() {
    for (text, ms) in [("60s", 60_000), ("5m", 300_000), ("300ms", 300), ("1h", 3_600_000)] {
        let d: Duration = text.parse().unwrap();
        assert_eq!(d.get().as_millis(), ms, "{text}");
    }
    assert!("-5s".parse::<Duration>().is_err());
    assert!("5 parsecs".parse::<Duration>().is_err());
}

#[test]
fn notify_needs_exactly_one_url_source() {
    let err = parse_err("[[notify]]\nkind = \"slack\"\n");
    assert!(err.contains("notify[0].url"), "{err}");
}

#[test]
fn explicit_config_that_does_not_exist_is_an_error() {
    let lookup = Lookup { explicit: Some(Path::new("/nonexistent/bulwark.toml")), git_dir: None };
    assert!(matches!(Config::load(&lookup), Err(ConfigError::Read { .. })));
}

#[test]
fn line_column_counts_from_one() {
    assert_eq!(line_column("ab\ncd", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
}

#[test]
fn service_names_must_be_usable_as_file_names() {
    let text = "[[service]]\nname = \"../web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n[service.health]\nurl = \"http://127.0.0.1:1/\"\n";
    let err = parse_err(text);
    assert!(err.contains("service[0].name") && err.contains("letters, digits"), "{err}");
}

#[test]
fn durations_longer_than_a_year_are_refused() {
    assert!("400d".parse::<Duration>().is_err() || "9000h".parse::<Duration>().is_err());
    assert!("9000h".parse::<Duration>().unwrap_err().contains("longer than a year"));
    assert!("24h".parse::<Duration>().is_ok());
}

#[test]
fn a_missing_health_section_is_named_with_its_line() {
    let text =
        "[drift]\nroots = [\"/srv\"]\n\n[[service]]\nname = \"web\"\ncheckout = \"/srv/web\"\ndeploy = [\"true\"]\n";
    let err = parse_err(text);
    assert!(err.starts_with("bulwark.toml:4:"), "{err}");
    assert!(err.contains("key `service[0]`: missing the `[service.health]` section"), "{err}");
    assert!(!err.contains("`url`"), "{err}");
}
