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

pub use crate::event::{Component, EventKind};

/// The journal's file name inside the state directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The last id handed out, beside the journal, so a rotated or truncated journal does not
/// restart ids at 1.
pub const HIGH_WATER_FILE: &str = "events.last-id";

/// One journaled event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: u64,
    /// When it was journaled, to the second: `2026-04-26T03:57:27Z` in the file.
    pub ts: jiff::Timestamp,
    pub kind: EventKind,
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
    /// The last id is the largest there is: a new event would repeat an id or go back.
    #[error("{path}: event ids are exhausted (the last id is {last}); nothing more can be journaled")]
    IdsExhausted { path: PathBuf, last: u64 },
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
    /// `kind` is an [`EventKind`] (a `&str` names one too: a known name reads as its kind).
    pub fn append(&self, kind: impl Into<EventKind>, fields: Value) -> Result<Event, JournalError> {
        let mut events = self.append_all(kind, vec![fields])?;
        Ok(events.remove(0))
    }

    /// Appends several events of one kind under one lock and one fsync (a push of a
    /// thousand tags is one write, not a thousand).
    pub fn append_all(&self, kind: impl Into<EventKind>, fields: Vec<Value>) -> Result<Vec<Event>, JournalError> {
        let kind = kind.into();
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
        let (ts, host) = (now(), hostname());
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
            // Ids never repeat nor go backwards: at the end of the id space, refuse (the
            // whole batch, before anything is written).
            last_id = last_id
                .checked_add(1)
                .ok_or_else(|| JournalError::IdsExhausted { path: self.path.clone(), last: last_id })?;
            let event = Event { id: last_id, ts, kind: kind.clone(), host: host.clone(), fields };
            serde_json::to_writer(&mut buf, &event).map_err(|e| io(std::io::Error::other(e)))?;
            buf.push(b'\n');
            events.push(event);
        }
        file.write_all(&buf).map_err(io)?;
        file.sync_data().map_err(io)?;
        // Still under the lock. Not fsynced: the journal itself is, and after a crash its
        // last id is the larger one anyway.
        let _ = write_private(&self.high_water_path(), format!("{last_id}\n").as_bytes());
        // Dropping the file releases the lock.
        Ok(events)
    }

    /// The last id handed out (the journal's or the high-water mark's, whichever is larger),
    /// read from the journal's tail: its cost does not grow with the journal.
    pub fn last_id(&self) -> Result<u64, JournalError> {
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        let in_file = match File::open(&self.path) {
            Ok(mut file) => last_id(&mut file).map_err(io)?.0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(e)),
        };
        Ok(in_file.max(self.read_high_water()))
    }

    /// Every parseable event with an id above `after`, read backwards from the end of the
    /// journal only as far as needed: the cost is that of the events since, not of the
    /// whole journal.
    pub fn read_since(&self, after: u64) -> Result<Vec<Event>, JournalError> {
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let len = file.seek(SeekFrom::End(0)).map_err(io)?;
        let mut window: u64 = 64 * 1024;
        loop {
            let start = len.saturating_sub(window);
            file.seek(SeekFrom::Start(start)).map_err(io)?;
            let mut tail = Vec::new();
            file.read_to_end(&mut tail).map_err(io)?;
            let whole = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            // The first line may be cut by the window unless it starts the file.
            let events: Vec<Event> = tail[..whole]
                .split(|b| *b == b'\n')
                .skip(usize::from(start > 0))
                .filter_map(|line| serde_json::from_slice::<Event>(line).ok())
                .collect();
            let reached = events.first().is_some_and(|e| e.id <= after);
            if reached || start == 0 {
                return Ok(events.into_iter().filter(|e| e.id > after).collect());
            }
            window = window.saturating_mul(4);
        }
    }

    /// A reader of new events from the current end of the journal (for `--follow`).
    pub fn follow(&self) -> Result<Follower, JournalError> {
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        self.follow_from(len)
    }

    /// A reader of the events after byte `offset` (as returned by [`Journal::read_from`]).
    pub fn follow_from(&self, offset: u64) -> Result<Follower, JournalError> {
        let mut follower = Follower { path: self.path.clone(), file: None, offset: 0, head: None };
        follower.reopen()?;
        follower.offset = offset;
        Ok(follower)
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

/// Reads the events appended after a point, across rotation (the file renamed or removed
/// and a new one started) and truncation: what the old file still got is read first, then
/// the new file from its start.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// The open journal and its inode.
    file: Option<(File, u64)>,
    offset: u64,
    /// The open file's first line when last read: a different one means the file was
    /// truncated and written again in place (same inode, maybe as long as before).
    head: Option<Vec<u8>>,
}

impl Follower {
    fn io(&self) -> impl Fn(std::io::Error) -> JournalError + '_ {
        |source| JournalError::Io { path: self.path.clone(), source }
    }

    fn reopen(&mut self) -> Result<(), JournalError> {
        use std::os::unix::fs::MetadataExt as _;
        self.offset = 0;
        self.head = None;
        self.file = match File::open(&self.path) {
            Ok(file) => {
                let ino = file.metadata().map_err(self.io())?.ino();
                Some((file, ino))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io()(e)),
        };
        Ok(())
    }

    /// Whole lines after the offset in the open file; the offset moves past them.
    fn drain(&mut self) -> Result<Vec<Event>, JournalError> {
        let path = self.path.clone();
        let io = |source| JournalError::Io { path: path.clone(), source };
        let Some((file, _)) = &mut self.file else { return Ok(Vec::new()) };
        let len = file.metadata().map_err(io)?.len();
        let head = first_line(file).map_err(io)?;
        if len < self.offset || self.head.as_ref().is_some_and(|h| Some(h) != head.as_ref()) {
            // Truncated in place: everything in it is new.
            self.offset = 0;
        }
        self.head = head;
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.offset += whole as u64;
        Ok(bytes[..whole]
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<Event>(line).ok())
            .collect())
    }

    /// Events written since the last call, in order.
    pub fn poll(&mut self) -> Result<Vec<Event>, JournalError> {
        use std::os::unix::fs::MetadataExt as _;
        let mut events = self.drain()?;
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        let open = self.file.as_ref().map(|(_, ino)| *ino);
        if current != open {
            // Rotated (or created): the old file is drained above; the new one from its start.
            self.reopen()?;
            events.extend(self.drain()?);
        }
        Ok(events)
    }
}

/// The first whole line of `file` (at most 4 KiB), if it has one.
fn first_line(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::with_capacity(512);
    file.take(4096).read_to_end(&mut buf)?;
    Ok(buf.iter().position(|b| *b == b'\n').map(|end| buf[..end].to_vec()))
}

/// Writes `bytes` to `path`, created 0600 (and made 0600 if it was not).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    if file.metadata()?.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
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

/// Now, to the second: what every event's `ts` holds.
pub fn now() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Now, as `2026-04-26T03:57:27Z` (seconds precision, UTC).
pub fn now_rfc3339() -> String {
    now().to_string()
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
        let a = journal.append(EventKind::HookBlocked, serde_json::json!({"branch": "main"})).unwrap();
        let b = journal.append("breakglass.used", serde_json::json!({"reason": "hotfix"})).unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        assert_eq!(b.kind, EventKind::BreakglassUsed, "a known name reads as its kind");
        let all = journal.read_all().unwrap();
        assert_eq!(all, vec![a, b]);
    }

    #[test]
    fn events_are_written_as_before_typed_kinds_and_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        journal.append(EventKind::DriftFound, serde_json::json!({"path": "/srv/web"})).unwrap();
        let line = std::fs::read_to_string(journal.path()).unwrap();
        let ts = regex::Regex::new(r#"^\{"id":1,"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","kind":"drift\.found","host":"[^"]*","path":"/srv/web"\}\n$"#).unwrap();
        assert!(ts.is_match(&line), "{line}");
        // An old journal's line, and one of a kind this build does not know, read unchanged.
        let old = r#"{"id":7,"ts":"2026-04-26T03:57:27Z","kind":"fleet.someday","host":"h","n":1}"#;
        let event: Event = serde_json::from_str(old).unwrap();
        assert_eq!(event.kind, EventKind::Other("fleet.someday".into()));
        assert_eq!(event.ts.to_string(), "2026-04-26T03:57:27Z");
        assert_eq!(serde_json::to_string(&event).unwrap(), old);
        assert_eq!(event.to_line(), "2026-04-26T03:57:27Z #7 fleet.someday n=1");
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
    fn ids_never_wrap_at_the_end_of_the_id_space() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        let last = format!("{{\"id\":{},\"ts\":\"T\",\"kind\":\"k\",\"host\":\"h\"}}\n", u64::MAX);
        std::fs::write(journal.path(), &last).unwrap();
        let err = journal.append("next", Value::Null).unwrap_err();
        assert!(matches!(err, JournalError::IdsExhausted { last: u64::MAX, .. }), "{err}");
        assert!(err.to_string().contains("event ids are exhausted"), "{err}");
        assert_eq!(std::fs::read_to_string(journal.path()).unwrap(), last, "nothing written");
        // The high-water mark alone is enough to refuse (a rotated journal).
        std::fs::remove_file(journal.path()).unwrap();
        std::fs::write(dir.path().join(HIGH_WATER_FILE), format!("{}\n", u64::MAX)).unwrap();
        assert!(matches!(journal.append("next", Value::Null), Err(JournalError::IdsExhausted { .. })));
    }

    #[test]
    fn the_high_water_mark_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join(HIGH_WATER_FILE);
        std::fs::write(&mark, "0\n").unwrap();
        std::fs::set_permissions(&mark, std::fs::Permissions::from_mode(0o644)).unwrap();
        Journal::in_dir(dir.path()).append("one", Value::Null).unwrap();
        assert_eq!(std::fs::metadata(&mark).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&mark).unwrap(), "1\n");
    }

    #[test]
    fn read_since_reads_only_the_newer_events() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        let padding = "x".repeat(300);
        let fields: Vec<Value> = (0..1000).map(|i| serde_json::json!({"i": i, "pad": padding})).collect();
        journal.append_all("bulk", fields).unwrap();
        assert_eq!(journal.last_id().unwrap(), 1000);
        let since: Vec<u64> = journal.read_since(995).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(since, [996, 997, 998, 999, 1000]);
        // Far back: the window grows until it reaches the id.
        assert_eq!(journal.read_since(10).unwrap().len(), 990);
        assert_eq!(journal.read_since(0).unwrap().len(), 1000);
    }

    #[test]
    fn a_follower_reads_across_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        journal.append("before", Value::Null).unwrap();
        let mut follower = journal.follow().unwrap();
        assert!(follower.poll().unwrap().is_empty(), "starts at the end");
        journal.append("one", Value::Null).unwrap();
        let kinds = |events: Vec<Event>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
        assert_eq!(kinds(follower.poll().unwrap()), ["one"]);
        // Rotated: the old file gets one more line after the rename, then a new file starts.
        journal.append("two", Value::Null).unwrap();
        std::fs::rename(journal.path(), dir.path().join("events.jsonl.1")).unwrap();
        journal.append("three", Value::Null).unwrap();
        assert_eq!(kinds(follower.poll().unwrap()), ["two", "three"]);
        // Truncated in place and written again, to the same length, between two polls.
        std::fs::write(journal.path(), "").unwrap();
        journal.append("four_", Value::Null).unwrap();
        assert_eq!(kinds(follower.poll().unwrap()), ["four_"]);
    }

    #[test]
    fn to_line_is_one_plain_line() {
        let mut fields = Map::new();
        fields.insert("branch".into(), Value::String("main".into()));
        fields.insert("reason".into(), Value::String("two words".into()));
        let ts = "2026-04-26T03:57:27Z".parse().unwrap();
        let e = Event { id: 7, ts, kind: "k".into(), host: "h".into(), fields };
        assert_eq!(e.to_line(), "2026-04-26T03:57:27Z #7 k branch=main reason=\"two words\"");
    }
}
