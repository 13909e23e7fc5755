//! The event journal: `events.jsonl` in the state directory, one JSON object per line.
//!
//! Appends hold an exclusive lock on the file, read the last id, write one whole line and
//! fsync before unlocking, so ids only grow and lines never interleave, whatever the number
//! of concurrent writers.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The journal's file name inside the state directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The last id handed out, beside the journal, so a rotated or truncated journal does not
/// restart ids at 1.
pub const HIGH_WATER_FILE: &str = "events.last-id";

/// One journaled event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: u64,
    pub ts: String,
    pub kind: String,
    pub host: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Event {
    /// A field as a string, if present.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// One plain line for logs: `ts kind key=value ...` (control characters escaped, known
    /// secrets and URL credentials removed, whatever the journal holds).
    pub fn to_line(&self) -> String {
        crate::redact::clean(&self.raw_line()).into_owned()
    }

    fn raw_line(&self) -> String {
        let mut line = format!("{} #{} {}", self.ts, self.id, self.kind);
        for (k, v) in &self.fields {
            match v {
                Value::String(s) => {
                    let _ = write!(line, " {k}={}", quote_if_needed(s));
                }
                Value::Null => {}
                other => {
                    let _ = write!(line, " {k}={other}");
                }
            }
        }
        line
    }
}

fn quote_if_needed(s: &str) -> String {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"' || c.is_control()) {
        format!("{s:?}")
    } else {
        s.to_owned()
    }
}

/// The journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The journal file of one state directory.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal in `state_dir` (created on first append).
    pub fn in_dir(state_dir: &Path) -> Self {
        Self { path: state_dir.join(EVENTS_FILE) }
    }

    /// The journal in the resolved state directory.
    pub fn open_default() -> Result<Self, JournalError> {
        Ok(Self::in_dir(&crate::state::state_dir()?))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event of `kind` with `fields` (an object; other values are stored under
    /// `detail`) and returns it with its id.
    pub fn append(&self, kind: &str, fields: Value) -> Result<Event, JournalError> {
        let mut events = self.append_all(kind, vec![fields])?;
        Ok(events.remove(0))
    }

    /// Appends several events of one kind under one lock and one fsync (a push of a
    /// thousand tags is one write, not a thousand).
    pub fn append_all(&self, kind: &str, fields: Vec<Value>) -> Result<Vec<Event>, JournalError> {
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            crate::state::ensure_private_dir(dir)?;
        }
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&self.path).map_err(io)?;
        file.lock().map_err(io)?;
        let (in_file, ends_with_newline) = last_id(&mut file).map_err(io)?;
        // The high-water mark keeps ids growing when the journal is rotated or truncated.
        let mut last_id = in_file.max(self.read_high_water());
        let mut buf = Vec::with_capacity(256 * fields.len());
        if !ends_with_newline {
            // A writer died mid-line: close that line so ours stays parseable.
            buf.push(b'\n');
        }
        let (ts, host) = (now_rfc3339(), hostname());
        let mut events = Vec::with_capacity(fields.len());
        for fields in fields {
            // Secrets never reach the journal (an error quoting git's argv, an echoing webhook).
            let mut fields = fields;
            crate::redact::clean_value(&mut fields);
            let fields = match fields {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                other => Map::from_iter([("detail".to_owned(), other)]),
            };
            last_id += 1;
            let event = Event { id: last_id, ts: ts.clone(), kind: kind.to_owned(), host: host.clone(), fields };
            serde_json::to_writer(&mut buf, &event).map_err(|e| io(std::io::Error::other(e)))?;
            buf.push(b'\n');
            events.push(event);
        }
        file.write_all(&buf).map_err(io)?;
        file.sync_data().map_err(io)?;
        // Still under the lock. Not fsynced: the journal itself is, and after a crash its
        // last id is the larger one anyway.
        let _ = std::fs::write(self.high_water_path(), format!("{last_id}\n"));
        // Dropping the file releases the lock.
        Ok(events)
    }

    fn high_water_path(&self) -> PathBuf {
        self.path.with_file_name(HIGH_WATER_FILE)
    }

    /// The last id ever handed out, or 0 (missing or unreadable: the file's ids decide).
    fn read_high_water(&self) -> u64 {
        std::fs::read_to_string(self.high_water_path()).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
    }

    /// Every parseable event, in file order. Torn or foreign lines are skipped.
    pub fn read_all(&self) -> Result<Vec<Event>, JournalError> {
        Ok(self.read_from(0)?.0)
    }

    /// Events starting at byte `offset`; returns them and the offset after the last whole
    /// line (for `--follow`).
    pub fn read_from(&self, offset: u64) -> Result<(Vec<Event>, u64), JournalError> {
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(io(e)),
        };
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let events = bytes[..whole]
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<Event>(line).ok())
            .collect();
        Ok((events, offset + whole as u64))
    }
}

/// The id of the last whole event line, and whether the file ends with a newline.
fn last_id(file: &mut File) -> std::io::Result<(u64, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, true));
    }
    // A few lines are enough to find the last id: parsing a whole 64 KiB tail costs every
    // append ~0.15 ms once the journal is that long. The window grows if none parses.
    let mut window: u64 = 4 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail)?;
        let ends_with_newline = tail.last() == Some(&b'\n');
        // Skip the first (possibly partial) line unless we read from the start.
        let lines = tail.split(|b| *b == b'\n');
        let skip = usize::from(start > 0);
        let found = lines.skip(skip).filter_map(|line| serde_json::from_slice::<IdOnly>(line).ok()).map(|e| e.id).max();
        if let Some(id) = found {
            return Ok((id, ends_with_newline));
        }
        if start == 0 {
            return Ok((0, ends_with_newline));
        }
        window *= 4;
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: u64,
}

/// Now, as `2026-04-26T03:57:27Z` (seconds precision, UTC).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

/// This machine's host name, for events from many hosts in one place.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_and_lines_parse() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        let a = journal.append("hook.blocked", serde_json::json!({"branch": "main"})).unwrap();
        let b = journal.append("breakglass.used", serde_json::json!({"reason": "hotfix"})).unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        let all = journal.read_all().unwrap();
        assert_eq!(all, vec![a, b]);
        assert!(all[0].ts.ends_with('Z'));
    }

    #[test]
    fn a_torn_last_line_does_not_break_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        journal.append("one", Value::Null).unwrap();
        std::fs::OpenOptions::new().append(true).open(journal.path()).unwrap().write_all(br#"{"id":2,"ts":"#).unwrap();
        let next = journal.append("three", Value::Null).unwrap();
        assert_eq!(next.id, 2);
        let kinds: Vec<_> = journal.read_all().unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["one", "three"]);
    }

    #[test]
    fn ids_keep_growing_after_the_journal_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        journal.append("one", Value::Null).unwrap();
        journal.append("two", Value::Null).unwrap();
        std::fs::rename(journal.path(), dir.path().join("events.jsonl.1")).unwrap();
        assert_eq!(journal.append("three", Value::Null).unwrap().id, 3);
    }

    #[test]
    fn to_line_is_one_plain_line() {
        let mut fields = Map::new();
        fields.insert("branch".into(), Value::String("main".into()));
        fields.insert("reason".into(), Value::String("two words".into()));
        let e = Event { id: 7, ts: "T".into(), kind: "k".into(), host: "h".into(), fields };
        assert_eq!(e.to_line(), "T #7 k branch=main reason=\"two words\"");
    }
}
