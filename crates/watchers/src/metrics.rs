//! A Prometheus text-format file for node_exporter's textfile collector (`[metrics]
//! textfile`), kept by the programs that run on a schedule or as a daemon, never by a hook.
//!
//! Counters are derived from the event journal, cheaply: an aggregate beside the journal
//! (`<state>/metrics/<component>.json`) keeps the id of the last event it counted and the
//! running totals, so each refresh reads only the events since (see
//! [`Journal::read_since`]), however long the journal grows. Gauges (liveness, last success,
//! what a scan sees now) are set by the program itself.
//!
//! The file is written atomically (a temporary file in the same directory, renamed over it:
//! node_exporter never reads half a file, and ignores the temporary, which does not end in
//! `.prom`). Each component owns its metric names ([`Family`]): when two components share
//! one file, each rewrites only its own families and keeps the other's, under a lock, so a
//! family never appears twice (node_exporter rejects a file that repeats one).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bulwark_core::config::{Component, Config};
use bulwark_core::{Event, Journal, state};
use serde::{Deserialize, Serialize};

/// What kind of metric a family is (its `# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    /// `_sum` and `_count` only (no quantiles): an average over any range, in PromQL.
    Summary,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Summary => "summary",
        }
    }
}

/// One metric family: its name, help text and type.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Type,
}

/// The samples of one component, by sample name and labels (`name{a="b"}`), with the
/// journal cursor they are counted up to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Samples {
    /// The id of the last journal event counted.
    pub cursor: u64,
    /// `name{labels}` → value.
    pub values: BTreeMap<String, f64>,
    /// Per-key progress markers a component keeps beside its counters (e.g. the last job
    /// whose durations were observed, per service).
    #[serde(default)]
    pub marks: BTreeMap<String, String>,
    /// The last write error journaled (`metrics.failed` only when it changes).
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Samples {
    /// Adds `by` to the counter `name` with `labels`.
    pub fn add(&mut self, name: &str, labels: &[(&str, &str)], by: f64) {
        *self.values.entry(key(name, labels)).or_insert(0.0) += by;
    }

    /// Sets the gauge `name` with `labels`.
    pub fn set(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.values.insert(key(name, labels), value);
    }

    /// Records one observation of a summary `name` (its `_sum` and `_count`).
    pub fn observe(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.add(&format!("{name}_sum"), labels, value);
        self.add(&format!("{name}_count"), labels, 1.0);
    }

    /// Removes every sample of `name` (a gauge that describes only the latest state).
    pub fn clear(&mut self, name: &str) {
        self.values.retain(|k, _| sample_name(k) != name);
    }

    /// The value of `name` with `labels`, if set.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.values.get(&key(name, labels)).copied()
    }
}

/// `name{a="x",b="y"}` with values escaped as the text format requires.
fn key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut out = format!("{name}{{");
    for (i, (label, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let escaped = value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n");
        let _ = write!(out, "{label}=\"{escaped}\"");
    }
    out.push('}');
    out
}

fn sample_name(key: &str) -> &str {
    key.split('{').next().unwrap_or(key)
}

/// A label value from something a program wrote into an event: kept when it is one of
/// `known`, else `other` (labels must have bounded cardinality).
pub fn bounded<'a>(value: Option<&'a str>, known: &[&'static str]) -> &'a str {
    match value {
        Some(v) if known.contains(&v) => v,
        Some(_) => "other",
        None => "none",
    }
}

/// A metrics file could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Journal(#[from] bulwark_core::JournalError),
    #[error("cannot take the metrics lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    /// The reason without the temporary file's random name, so the same failure reads the
    /// same every time (it is reported once).
    #[error("cannot write the metrics file {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// One component's metrics: its families, how it counts events, and where it writes.
pub struct Metrics {
    component: Component,
    textfile: PathBuf,
    state_dir: PathBuf,
    families: &'static [Family],
    fold: fn(&Event, &mut Samples),
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("component", &self.component)
            .field("textfile", &self.textfile)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of `component` when `[metrics] textfile` is set.
    pub fn from_config(
        config: &Config,
        component: Component,
        state_dir: &Path,
        families: &'static [Family],
        fold: fn(&Event, &mut Samples),
    ) -> Option<Self> {
        Some(Self {
            component,
            textfile: config.metrics.textfile_for(component)?,
            state_dir: state_dir.to_owned(),
            families,
            fold,
        })
    }

    /// The file written.
    pub fn textfile(&self) -> &Path {
        &self.textfile
    }

    fn aggregate_path(&self) -> PathBuf {
        self.state_dir.join("metrics").join(format!("{}.json", self.component.name()))
    }

    /// Counts the journal's new events, lets `update` set gauges and observations, saves
    /// the aggregate and rewrites the textfile. A failure is journaled as `metrics.failed`
    /// and returned once per distinct error (a read-only directory must not flood the
    /// journal or the log); it never stops the work the metrics describe.
    pub fn refresh(&self, journal: &Journal, update: impl FnOnce(&mut Samples)) -> Result<(), MetricsError> {
        let dir = self.state_dir.join("metrics");
        state::ensure_private_dir(&dir)?;
        let lock_path = dir.join("write.lock");
        let _lock =
            state::LockFile::acquire(&lock_path).map_err(|source| MetricsError::Lock { path: lock_path, source })?;
        let path = self.aggregate_path();
        let mut samples: Samples = state::read_json(&path, "metrics aggregate")?.unwrap_or_default();
        let events = journal.read_since(samples.cursor)?;
        for event in &events {
            (self.fold)(event, &mut samples);
            samples.cursor = samples.cursor.max(event.id);
        }
        update(&mut samples);
        let written = self.write_textfile(&samples);
        let error = written.as_ref().err().map(ToString::to_string);
        if error.is_some() && error != samples.last_error {
            let _ = journal.append(
                "metrics.failed",
                serde_json::json!({"component": self.component.name(), "file": self.textfile, "error": error}),
            );
        }
        let repeated = error.is_some() && error == samples.last_error;
        samples.last_error = error;
        state::write_json_atomic(&path, &samples)?;
        // An error already reported (and journaled) is not reported again at every
        // refresh: a daemon would repeat it every 30 s.
        if repeated { Ok(()) } else { written }
    }

    fn write_textfile(&self, samples: &Samples) -> Result<(), MetricsError> {
        let mine = render(self.families, samples);
        // Another component's families in a shared file are kept as they are.
        let kept = match std::fs::read_to_string(&self.textfile) {
            Ok(text) => others(&text, self.families),
            Err(_) => String::new(),
        };
        let text = format!("{kept}{mine}");
        // World-readable: node_exporter runs as its own user.
        state::write_atomic_mode(&self.textfile, text.as_bytes(), 0o644).map_err(|e| {
            let reason = match &e {
                state::StateError::Write { source, .. } | state::StateError::Create { source, .. } => source
                    .raw_os_error()
                    .map_or_else(|| std::io::Error::from(source.kind()), std::io::Error::from_raw_os_error)
                    .to_string(),
                other => other.to_string(),
            };
            MetricsError::Write { path: self.textfile.clone(), reason }
        })
    }
}

/// The text format of `families` with their samples (a family without samples still
/// gets its HELP and TYPE, so a rule can tell "zero" from "never written").
pub fn render(families: &[Family], samples: &Samples) -> String {
    let mut out = String::new();
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
        for (key, value) in &samples.values {
            let name = sample_name(key);
            let belongs = match family.kind {
                Type::Summary => name.strip_prefix(family.name).is_some_and(|rest| rest == "_sum" || rest == "_count"),
                Type::Counter | Type::Gauge => name == family.name,
            };
            if belongs {
                let _ = writeln!(out, "{key} {}", number(*value));
            }
        }
    }
    out
}

/// A sample value as the text format writes it (integers without a fraction).
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{value:.0}") } else { format!("{value}") }
}

/// The lines of `text` that belong to families other than `mine` (whole families: a
/// block starts at its `# HELP`).
fn others(text: &str, mine: &[Family]) -> String {
    let owned = |name: &str| mine.iter().any(|f| f.name == name);
    let mut out = String::new();
    let mut keep = true;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            keep = !owned(rest.split(' ').next().unwrap_or_default());
        } else if !line.starts_with('#') {
            let name = sample_name(line.split(' ').next().unwrap_or_default());
            let base = name.strip_suffix("_sum").or_else(|| name.strip_suffix("_count")).unwrap_or(name);
            if owned(name) || owned(base) {
                continue;
            }
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Seconds since the Unix epoch, for `*_timestamp_seconds` gauges.
#[allow(clippy::cast_precision_loss)]
pub fn now_seconds() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// Seconds between two RFC 3339 timestamps (`None` when either does not parse).
#[allow(clippy::cast_precision_loss)]
pub fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let a: jiff::Timestamp = from.parse().ok()?;
    let b: jiff::Timestamp = to.parse().ok()?;
    Some((b.as_millisecond() - a.as_millisecond()) as f64 / 1000.0)
}

/// The `[[notify]]` target kind of a `notify.*` event's `target` (`discord https://…`).
pub fn target_kind(event: &Event) -> &str {
    bounded(
        event.str("target").and_then(|t| t.split(' ').next()),
        &["discord", "slack", "webhook", "alertmanager", "pagerduty", "ntfy"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILIES: &[Family] = &[
        Family { name: "bulwark_test_things_total", help: "Things.", kind: Type::Counter },
        Family { name: "bulwark_test_duration_seconds", help: "Durations.", kind: Type::Summary },
    ];

    #[test]
    fn renders_help_type_and_escaped_labels() {
        let mut samples = Samples::default();
        samples.add("bulwark_test_things_total", &[("service", "a\"b")], 2.0);
        samples.observe("bulwark_test_duration_seconds", &[("service", "web")], 1.5);
        let text = render(FAMILIES, &samples);
        assert_eq!(
            text,
            "# HELP bulwark_test_things_total Things.\n# TYPE bulwark_test_things_total counter\nbulwark_test_things_total{service=\"a\\\"b\"} 2\n# HELP bulwark_test_duration_seconds Durations.\n# TYPE bulwark_test_duration_seconds summary\nbulwark_test_duration_seconds_count{service=\"web\"} 1\nbulwark_test_duration_seconds_sum{service=\"web\"} 1.5\n"
        );
    }

    #[test]
    fn a_shared_file_keeps_the_other_components_families_only() {
        let other = "# HELP bulwark_other_up Up.\n# TYPE bulwark_other_up gauge\nbulwark_other_up 1\n";
        let stale = render(FAMILIES, &Samples::default());
        assert_eq!(others(&format!("{other}{stale}"), FAMILIES), other);
    }

    #[test]
    fn the_aggregate_counts_each_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        let textfile = dir.path().join("bulwark.prom");
        let config =
            Config::parse(&format!("[metrics]\ntextfile = \"{}\"\n", textfile.display()), Path::new("test.toml"))
                .unwrap();
        let fold = |e: &Event, s: &mut Samples| {
            if e.kind == "thing" {
                s.add("bulwark_test_things_total", &[], 1.0);
            }
        };
        let metrics = Metrics::from_config(&config, Component::Drift, dir.path(), FAMILIES, fold).unwrap();
        journal.append("thing", serde_json::json!({})).unwrap();
        metrics.refresh(&journal, |_| {}).unwrap();
        metrics.refresh(&journal, |_| {}).unwrap();
        journal.append("thing", serde_json::json!({})).unwrap();
        metrics.refresh(&journal, |_| {}).unwrap();
        let text = std::fs::read_to_string(&textfile).unwrap();
        assert!(text.contains("\nbulwark_test_things_total 2\n"), "{text}");
    }

    #[test]
    fn a_textfile_that_cannot_be_written_is_reported_and_journaled_once() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        let missing = dir.path().join("no-such-dir/bulwark.prom");
        let config =
            Config::parse(&format!("[metrics]\ntextfile = \"{}\"\n", missing.display()), Path::new("test.toml"))
                .unwrap();
        let metrics = Metrics::from_config(&config, Component::Sidecar, dir.path(), FAMILIES, |_, _| {}).unwrap();
        assert!(metrics.refresh(&journal, |_| {}).is_err(), "the first failure is reported");
        assert!(metrics.refresh(&journal, |_| {}).is_ok(), "the same failure again is not");
        let failed: Vec<_> = journal.read_all().unwrap().into_iter().filter(|e| e.kind == "metrics.failed").collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].str("component"), Some("sidecar"));
    }
}
