//! Secrets never leave the process: one place that removes them from any text bulwark
//! writes or prints.
//!
//! Two layers. [`redact_urls`] finds URLs anywhere in free text (an error that quotes git's
//! argv or stderr) and removes their userinfo and the values of token-looking query
//! parameters, whatever the URL. A [`Scrubber`] knows the exact secret values bulwark was
//! given (notify URLs and their parts, a remote's password) and removes each, raw and
//! percent-encoded or decoded, wherever it appears (a webhook answering with an echo of the
//! request). The process keeps one registry of known secrets ([`register_url`],
//! [`register_secret`]); [`clean`] applies both layers, and every sink (the journal, job
//! files, incident summaries, notification bodies, the CLI error renderer) goes through it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::RwLock;

use serde_json::Value;

/// What a removed secret is replaced with.
pub const REDACTED: &str = "***";

/// Values shorter than this are not treated as secrets on their own (a user name like
/// `bot` would otherwise be starred out of every message).
const MIN_SECRET_LEN: usize = 6;

/// Query parameter names whose values are credentials (compared case-insensitively).
const TOKEN_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "private_token",
    "auth",
    "auth_token",
    "key",
    "apikey",
    "api_key",
    "api-key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// Whether a query parameter named `name` carries a credential.
pub fn is_token_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    TOKEN_PARAMS.contains(&lower.as_str())
        || lower.ends_with("_token")
        || lower.ends_with("-token")
        || lower.contains("secret")
        || lower.contains("password")
}

/// `text` with the userinfo (`user:password@`) and token-looking query values of every
/// URL in it replaced by [`REDACTED`]. Borrowed when there was nothing to redact.
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(sep) = rest.find("://") {
        let after = sep + 3;
        let end = rest[after..].find(url_end).map_or(rest.len(), |i| after + i);
        out.push_str(&rest[..after]);
        let url_rest = &rest[after..end];
        let redacted = redact_after_scheme(url_rest);
        changed |= matches!(redacted, Cow::Owned(_));
        out.push_str(&redacted);
        rest = &rest[end..];
    }
    out.push_str(rest);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

/// Where a URL inside free text ends.
fn url_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '\\' | '|')
}

/// The part of a URL after `scheme://`, with userinfo and token query values redacted.
fn redact_after_scheme(rest: &str) -> Cow<'_, str> {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut changed = false;
    let mut out = String::with_capacity(rest.len());
    match authority.rfind('@') {
        Some(at) if at > 0 => {
            out.push_str(REDACTED);
            out.push_str(&authority[at..]);
            changed = true;
        }
        _ => out.push_str(authority),
    }
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let query_and_fragment = &tail[q + 1..];
            let (query, fragment) = match query_and_fragment.find('#') {
                Some(h) => query_and_fragment.split_at(h),
                None => (query_and_fragment, ""),
            };
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, value)) if !value.is_empty() && is_token_param(&percent_decode(name)) => {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(REDACTED);
                        changed = true;
                    }
                    _ => out.push_str(pair),
                }
            }
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(rest) }
}

/// Decodes `%XX` escapes (and leaves malformed ones as they are).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes every byte outside RFC 3986's unreserved set as `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Whether a URL path segment looks like a token (long, or mixing letters and digits).
fn looks_like_token(segment: &str) -> bool {
    let letters = segment.chars().any(|c| c.is_ascii_alphabetic());
    let digits = segment.chars().any(|c| c.is_ascii_digit());
    segment.len() >= 20 || segment.len() >= 8 && letters && digits
}

/// A set of known secret values, each removed from text wherever it appears.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Scrubber {
    pub fn new() -> Self {
        Self::default()
    }

    /// A scrubber for the secrets of one URL (see [`Scrubber::add_url`]).
    pub fn for_url(url: &str) -> Self {
        let mut scrubber = Self::new();
        scrubber.add_url(url);
        scrubber
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Adds `secret` as given, percent-decoded and percent-encoded (values shorter than a
    /// few characters are ignored: they are not secrets on their own).
    pub fn add_secret(&mut self, secret: &str) {
        let secret = secret.trim();
        for form in
            [secret.to_owned(), percent_decode(secret), percent_encode(secret), percent_encode(&percent_decode(secret))]
        {
            if form.chars().count() >= MIN_SECRET_LEN && !self.secrets.contains(&form) {
                self.secrets.push(form);
            }
        }
        self.secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// Adds the userinfo of a URL's authority (`user:password@host`), and its password.
    fn add_userinfo(&mut self, authority: &str) {
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            self.add_secret(userinfo);
            if let Some((_, password)) = userinfo.split_once(':') {
                self.add_secret(password);
            }
        }
    }

    /// Adds a URL's secrets: the URL itself, everything after its host, its userinfo (and
    /// password), every query value, and every path segment that looks like a token.
    pub fn add_url(&mut self, url: &str) {
        let url = url.trim();
        self.add_secret(url);
        let Some((_, rest)) = url.split_once("://") else { return };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        self.add_userinfo(authority);
        if tail.len() > 1 {
            self.add_secret(tail);
        }
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&') {
            let value = pair.split_once('=').map_or(pair, |(_, v)| v);
            self.add_secret(value);
        }
        for segment in path.split('/') {
            if looks_like_token(&percent_decode(segment)) {
                self.add_secret(segment);
            }
        }
    }

    /// Adds only a URL's credentials: its userinfo (and password) and the values of
    /// token-looking query parameters. For URLs whose path is not secret (a git remote).
    pub fn add_credentials(&mut self, url: &str) {
        let Some((_, rest)) = url.trim().split_once("://") else { return };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        self.add_userinfo(authority);
        let query = tail.split_once('?').map_or("", |(_, q)| q).split('#').next().unwrap_or_default();
        for (name, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
            if is_token_param(&percent_decode(name)) {
                self.add_secret(value);
            }
        }
    }

    /// Adds every secret of `other`.
    pub fn extend(&mut self, other: &Scrubber) {
        for secret in &other.secrets {
            if !self.secrets.contains(secret) {
                self.secrets.push(secret.clone());
            }
        }
        self.secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }
}

/// The secrets this process knows.
static KNOWN: RwLock<Scrubber> = RwLock::new(Scrubber { secrets: Vec::new() });

/// Registers a URL's secrets (see [`Scrubber::add_url`]) for [`clean`].
pub fn register_url(url: &str) {
    let mut known = KNOWN.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    known.add_url(url);
}

/// Registers a URL's credentials only (see [`Scrubber::add_credentials`]) for [`clean`].
pub fn register_credentials(url: &str) {
    let mut known = KNOWN.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    known.add_credentials(url);
}

/// Registers one secret value for [`clean`].
pub fn register_secret(secret: &str) {
    let mut known = KNOWN.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    known.add_secret(secret);
}

/// Registers the URLs of every `[[notify]]` target (read from `url_env` when set that way).
pub fn register_notify(targets: &[crate::config::NotifyConfig]) {
    for target in targets {
        if let Some(url) = &target.url {
            register_url(url);
        }
        if let Some(var) = &target.url_env
            && let Ok(url) = std::env::var(var)
            && !url.trim().is_empty()
        {
            register_url(&url);
        }
        if let Some(key) = &target.routing_key {
            register_secret(key.trim());
        }
        if let Some(var) = &target.routing_key_env
            && let Ok(key) = std::env::var(var)
            && !key.trim().is_empty()
        {
            register_secret(key.trim());
        }
    }
}

/// Registers every `[[ping]]` URL (healthchecks.io URLs embed the check's key).
pub fn register_pings(targets: &[crate::config::PingConfig]) {
    for target in targets {
        let url = target.url.clone().or_else(|| target.url_env.as_ref().and_then(|var| std::env::var(var).ok()));
        if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
            register_url(url.trim());
        }
    }
}

/// `text` without any known secret and without URL credentials: what every sink writes.
pub fn clean(text: &str) -> Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    match known.scrub(text) {
        Cow::Borrowed(text) => redact_urls(text),
        Cow::Owned(scrubbed) => Cow::Owned(redact_urls(&scrubbed).into_owned()),
    }
}

/// [`clean`] applied to every string inside a JSON value.
pub fn clean_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Cow::Owned(cleaned) = clean(s) {
                *s = cleaned;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean_value),
        Value::Object(map) => map.values_mut().for_each(clean_value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed_from_urls_inside_text() {
        let text = "`git push -q --end-of-options http://bot:s3cr3t-TOKEN@127.0.0.1:9/repo.git main` failed: 'https://u:p@h/x'";
        let out = redact_urls(text);
        assert_eq!(
            out,
            "`git push -q --end-of-options http://***@127.0.0.1:9/repo.git main` failed: 'https://***@h/x'"
        );
    }

    #[test]
    fn token_query_values_are_removed_case_insensitively() {
        let out = redact_urls("see https://h/p?a=1&Token=abc&API_KEY=def&sig=x#frag and http://h/?x=y");
        assert_eq!(out, "see https://h/p?a=1&Token=***&API_KEY=***&sig=***#frag and http://h/?x=y");
        assert!(matches!(redact_urls("no url here"), Cow::Borrowed(_)));
        assert!(matches!(redact_urls("http://example.com/path?page=2"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_scrubber_removes_every_form_of_a_url_secret() {
        let scrubber = Scrubber::for_url("http://127.0.0.1:9/hook/PATH9TOKEN?token=Q%2BTOKEN/x&v=1");
        for text in [
            "echo: POST /hook/PATH9TOKEN?token=Q%2BTOKEN/x&v=1",
            "body had Q+TOKEN/x in it",
            "encoded Q%2BTOKEN%2Fx too",
            "path PATH9TOKEN alone",
        ] {
            let out = scrubber.scrub(text);
            assert!(!out.contains("TOKEN"), "{text} -> {out}");
        }
        // Short, common values are left alone.
        assert_eq!(scrubber.scrub("v=1 and hook"), "v=1 and hook");
    }

    #[test]
    fn userinfo_secrets_are_known_decoded_and_encoded() {
        let scrubber = Scrubber::for_url("https://bot:p%40ss-word-1@git.example/repo.git");
        assert_eq!(scrubber.scrub("auth p@ss-word-1 / p%40ss-word-1"), "auth *** / ***");
    }

    #[test]
    fn clean_value_walks_nested_json() {
        let mut value = serde_json::json!({"a": ["x https://u:pw@h/"], "b": {"c": "http://h/?password=z"}});
        clean_value(&mut value);
        assert_eq!(value, serde_json::json!({"a": ["x https://***@h/"], "b": {"c": "http://h/?password=***"}}));
    }
}
