//! Value types that check themselves while parsing, so a bad value is reported with the
//! line it is on.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// A duration written like `"60s"`, `"5m"`, `"300ms"` or `"1h 30m"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(d) => write!(f, "{d:#}"),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed: jiff::SignedDuration = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a duration; write it like \"300ms\", \"60s\", \"5m\" or \"1h\""))?;
        if parsed.is_negative() {
            return Err(format!("`{s}` is negative; a duration must be zero or more"));
        }
        // Anything longer is a typo, and would overflow deadline arithmetic.
        if parsed > jiff::SignedDuration::from_hours(24 * 366) {
            return Err(format!("`{s}` is longer than a year"));
        }
        std::time::Duration::try_from(parsed).map(Duration).map_err(|e| format!("`{s}`: {e}"))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A command as an array of arguments (never a shell string). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(pub Vec<String>);

impl Argv {
    pub fn program(&self) -> &str {
        &self.0[0]
    }
    pub fn args(&self) -> &[String] {
        &self.0[1..]
    }
    /// A `std::process::Command` for this argv (no shell involved).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.program());
        cmd.args(self.args());
        cmd
    }
}

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgvVisitor;
        impl<'de> de::Visitor<'de> for ArgvVisitor {
            type Value = Argv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command as an array of arguments, like [\"systemctl\", \"restart\", \"web\"]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Argv, E> {
                let example: Vec<&str> = v.split_whitespace().collect();
                Err(E::custom(format!(
                    "commands are arrays of arguments, never shell strings: write {example:?} instead of {v:?}"
                )))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    args.push(arg);
                }
                if args.first().is_none_or(String::is_empty) {
                    return Err(de::Error::custom("a command needs at least a program name"));
                }
                Ok(Argv(args))
            }
        }
        deserializer.deserialize_any(ArgvVisitor)
    }
}

/// A branch-name regex that must match the whole name (as pre-commit-hooks'
/// `no-commit-to-branch --pattern` does with `re.match`… but anchored at both ends, so
/// `release/.*` does not also protect `my-release/x`).
#[derive(Clone)]
pub struct BranchPattern {
    source: String,
    regex: regex::Regex,
}

impl BranchPattern {
    pub fn new(source: &str) -> Result<Self, String> {
        // regex's message draws the pattern (anchored as we wrap it) with a caret under the
        // fault over several lines; on one config line, its last line says what is wrong.
        let regex = regex::Regex::new(&format!("^(?:{source})$")).map_err(|e| {
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default().trim_start_matches("error: ");
            format!("`{source}` is not a valid regex: {why}")
        })?;
        Ok(Self { source: source.to_owned(), regex })
    }
    pub fn as_str(&self) -> &str {
        &self.source
    }
    pub fn is_match(&self, branch: &str) -> bool {
        self.regex.is_match(branch)
    }
}

impl fmt::Debug for BranchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl<'de> Deserialize<'de> for BranchPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BranchPattern::new(&text).map_err(de::Error::custom)
    }
}

/// Checks an HTTP method: a token (RFC 9110 §5.6.2), so `"G ET"` or `""` fails at parse
/// time, not as a failed health check that reverts a good change.
pub(super) fn check_method(method: &str) -> Result<(), String> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if method.is_empty() || !method.chars().all(tchar) {
        return Err(format!("{method:?} is not an HTTP method; write one like \"GET\" or \"HEAD\""));
    }
    Ok(())
}

/// Checks a URL bulwark sends HTTP requests to: `http://` or `https://`, a host, a numeric
/// port if any, and no whitespace or control characters. The message never quotes more
/// than scheme and host (the rest may hold a token).
/// Checks a `url` / `url_env` pair: exactly one, and a usable URL or variable name
/// (`Err((key, message))`). `optional`: neither is fine too (a default applies).
pub(super) fn check_url_or_env(
    url: Option<&str>,
    url_env: Option<&str>,
    optional: bool,
) -> Result<(), (String, String)> {
    match (url, url_env) {
        (Some(_), Some(_)) => Err(("url".into(), "set either `url` or `url_env`, not both".into())),
        (None, None) if optional => Ok(()),
        (None, None) => Err(("url".into(), "set `url` or `url_env` (the variable that holds the URL)".into())),
        (Some(url), None) => check_http_url(url.trim()).map_err(|e| ("url".to_owned(), e)),
        (None, Some(var)) if !is_variable_name(var) => {
            Err(("url_env".into(), format!("{var:?} is not an environment variable name")))
        }
        (None, Some(_)) => Ok(()),
    }
}

/// Whether `var` can name an environment variable.
pub(super) fn is_variable_name(var: &str) -> bool {
    !var.is_empty() && !var.contains(['=', '\0'])
}

/// A secret given in the config or through an environment variable, trimmed (`what`:
/// `url` or `routing_key`, whose variable key is `<what>_env`). An unset, empty or
/// non-UTF-8 variable is an error that names it: a lost alert must be found at start.
pub fn resolve_secret(value: Option<&str>, var: Option<&str>, what: &str) -> Result<String, String> {
    match (value, var) {
        (Some(value), None) => Ok(value.trim().to_owned()),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
            Ok(_) => Err(format!("environment variable `{var}` ({what}_env) is empty")),
            Err(std::env::VarError::NotPresent) => Err(format!("environment variable `{var}` ({what}_env) is not set")),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable `{var}` ({what}_env) is not valid UTF-8"))
            }
        },
        _ => Err(format!("set exactly one of `{what}` or `{what}_env`")),
    }
}

pub(super) fn check_http_url(url: &str) -> Result<(), String> {
    let shown = crate::redact::redact_urls(url);
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| format!("`{shown}` is not a URL; write it like \"https://host/path\""))?;
    let scheme_host = || {
        format!(
            "{scheme}://{}",
            rest.split(['/', '?', '#']).next().unwrap_or_default().rsplit('@').next().unwrap_or_default()
        )
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(format!("the scheme of `{}` is not http or https", scheme_host()));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the URL at `{}` contains whitespace or control characters", scheme_host()));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) =
            v6.split_once(']').ok_or_else(|| format!("`{}` has an unclosed IPv6 address", scheme_host()))?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host_ok = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "-._~%:".contains(c));
    if !host_ok(host) {
        return Err(format!("`{}` has no valid host", scheme_host()));
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("`{}` has an invalid port", scheme_host()));
    }
    Ok(())
}

// Written back as they are read, for `bulwark config check --json`.
impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for Argv {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl serde::Serialize for BranchPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_tokens() {
        for ok in ["GET", "HEAD", "POST", "PROPFIND"] {
            assert!(check_method(ok).is_ok(), "{ok}");
        }
        for bad in ["G ET", "", "GET\n", "GÉT", "GET/1"] {
            assert!(check_method(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_need_http_a_host_and_a_valid_port() {
        for ok in
            ["http://127.0.0.1:8080/health", "https://hooks.slack.com/services/T/B/X", "http://[::1]:9/x", "HTTPS://h"]
        {
            assert!(check_http_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("file:///etc/passwd", "not http or https"),
            ("ftp://h/x", "not http or https"),
            ("http:///path", "no valid host"),
            ("http://h:99999/", "invalid port"),
            ("http://h:0/", "invalid port"),
            ("http://ho st/", "whitespace"),
            ("127.0.0.1:8080/health", "not a URL"),
            ("http://h_ost$/", "no valid host"),
        ] {
            let err = check_http_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = check_http_url("ftp://u:SECRET@h/TOKEN").unwrap_err();
        assert!(!err.contains("SECRET") && !err.contains("TOKEN"), "{err}");
    }
}
