//! Running a child process with a time limit, its failure modelled as data.
//!
//! Waiting sleeps in `poll(2)` on a pidfd until the child exits or the deadline passes
//! (no polling loop, no wake-ups): a pidfd names the process itself, and the child is
//! reaped only after it exited, so a timeout kill never hits a recycled pid. Without pidfds
//! (kernels before 5.3, strict seccomp) it falls back to short sleeps. A timeout kills the
//! child's whole process group.

use std::io::Write as _;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How much of each output stream is kept (the rest is read and dropped).
pub const DEFAULT_CAPTURE_LIMIT: usize = 64 * 1024;

/// A finished child's exit status and (possibly truncated) output.
#[derive(Debug, Clone)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
}

impl Captured {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why running a child did not produce a successful result.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (not found, not executable).
    #[error("cannot run `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    /// It ran and exited non-zero (or was killed by a signal).
    #[error("`{command}` failed ({status}){}", one_line(stderr))]
    Failed { command: String, status: String, code: Option<i32>, stderr: String, stdout: String },
    /// It did not finish in time and was killed with its whole process group.
    #[error("`{command}` did not finish within {} and was killed", crate::output::fmt_duration(*after))]
    TimedOut { command: String, after: Duration, stdout: String, stderr: String },
    /// Reading its output or waiting for it failed.
    #[error("waiting for `{command}`: {source}")]
    Wait { command: String, source: std::io::Error },
    /// It was not started: running it would be unsafe (e.g. the remote it would reach is no
    /// longer the one pinned at install).
    #[error("`{command}` was not run: {reason}")]
    Refused { command: String, reason: String },
}

fn one_line(stderr: &str) -> String {
    let text: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if text.is_empty() { String::new() } else { format!(": {}", text.join(" / ")) }
}

/// Options for [`run`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions<'a> {
    /// Bytes for the child's stdin (otherwise stdin is /dev/null: nothing can prompt).
    pub stdin: Option<&'a [u8]>,
    /// Kill the child's process group after this long.
    pub timeout: Option<Duration>,
    /// Bytes kept per stream; 0 means [`DEFAULT_CAPTURE_LIMIT`].
    pub capture_limit: usize,
}

/// Human-readable form of a command, program and arguments (URL credentials removed: the
/// text ends up in errors, events and job files).
pub fn describe(cmd: &Command) -> String {
    crate::redact::redact_urls(&describe_raw(cmd)).into_owned()
}

fn describe_raw(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` to completion (or its time limit) and returns its status and output, whatever
/// the exit code. The child gets its own process group so a timeout kills its children too.
pub fn run(cmd: &mut Command, opts: &RunOptions<'_>) -> Result<Captured, ProcessError> {
    run_observed(cmd, opts, &mut |_| {})
}

/// As [`run`], calling `on_spawn` with the child's pid (which is also its process group)
/// once it started and before waiting on it: a caller records what it must be able to end
/// if it dies while waiting.
pub fn run_observed(
    cmd: &mut Command,
    opts: &RunOptions<'_>,
    on_spawn: &mut dyn FnMut(u32),
) -> Result<Captured, ProcessError> {
    let command = describe(cmd);
    let limit = if opts.capture_limit == 0 { DEFAULT_CAPTURE_LIMIT } else { opts.capture_limit };
    cmd.stdin(if opts.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|source| ProcessError::Spawn { program: cmd.get_program().to_string_lossy().into_owned(), source })?;
    on_spawn(child.id());
    if let (Some(bytes), Some(mut pipe)) = (opts.stdin, child.stdin.take()) {
        let bytes = bytes.to_vec();
        // A child that exits without reading its input is not an error of ours.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let (tx, rx) = mpsc::channel();
    for (index, stream) in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let captured = stream.map(|s| read_capped(s, limit)).unwrap_or_default();
            let _ = tx.send((index, captured));
        });
    }
    drop(tx);

    let pidfd = pidfd_of(&child);
    let deadline = opts.timeout.and_then(|limit| Instant::now().checked_add(limit));
    let status = match wait(&mut child, pidfd.as_ref(), deadline, None) {
        Ok(Waited::Exited(status)) => status,
        Ok(Waited::Deadline | Waited::Signal(_)) => {
            kill_group(&mut child);
            let (stdout, stderr, _) = collect(&rx, Duration::from_secs(1));
            return Err(ProcessError::TimedOut {
                command,
                after: opts.timeout.unwrap_or_default(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            });
        }
        Err(source) => return Err(ProcessError::Wait { command, source }),
    };
    // Output of a grandchild that outlives the child is not waited for forever.
    let (stdout, stderr, truncated) = collect(&rx, Duration::from_secs(5));
    Ok(Captured { status, stdout, stderr, truncated })
}

/// As [`run`], but a non-zero exit is [`ProcessError::Failed`].
pub fn run_checked(cmd: &mut Command, opts: &RunOptions<'_>) -> Result<Captured, ProcessError> {
    let command = describe(cmd);
    let out = run(cmd, opts)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(ProcessError::Failed {
            command,
            status: out.status.to_string(),
            code: out.status.code(),
            stderr: out.stderr_str(),
            stdout: out.stdout_str(),
        })
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `Z` (zombie: finished, not yet reaped)...
    pub state: char,
    pub pgrp: u32,
    /// Clock ticks since boot when it started.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Whether it still runs (a zombie or dead process does not).
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// `/proc/<pid>/stat` of `pid`, or `None` when there is no such process.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Live processes of process group `pgid` that started at or after `not_before` (clock
/// ticks since boot): members of a group that started then, not of a later group that
/// happens to reuse the number.
pub fn group_members(pgid: u32, not_before: u64) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| proc_stat(*pid).is_some_and(|s| s.alive() && s.pgrp == pgid && s.start_ticks >= not_before))
        .collect()
}

/// How ending a process group went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedGroup {
    /// Processes found running in it.
    pub found: usize,
    /// Whether SIGTERM was not enough and SIGKILL was sent.
    pub killed: bool,
    /// Whether some are still there after SIGKILL (stuck in the kernel).
    pub survivors: usize,
}

/// Ends process group `pgid` (if any member started at or after `not_before` still runs):
/// SIGTERM to the group, then SIGKILL after `grace`. Returns what was found and done.
pub fn end_group(pgid: u32, not_before: u64, grace: Duration) -> EndedGroup {
    let found = group_members(pgid, not_before).len();
    let mut ended = EndedGroup { found, killed: false, survivors: 0 };
    let Some(group) = i32::try_from(pgid).ok().filter(|p| *p > 1).and_then(rustix::process::Pid::from_raw) else {
        return ended;
    };
    if found == 0 {
        return ended;
    }
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
    let gone = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let left = group_members(pgid, not_before).len();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if gone(grace) > 0 {
        ended.killed = true;
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        ended.survivors = gone(Duration::from_secs(2));
    }
    ended
}

/// The child's pid (also its process group id when it was started in its own group).
pub fn pid_of(child: &Child) -> Option<rustix::process::Pid> {
    i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw)
}

/// A pidfd for `child` (kernels since 5.3), to sleep in `poll(2)` until it exits.
pub fn pidfd_of(child: &Child) -> Option<OwnedFd> {
    pid_of(child).and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok())
}

/// Kills `child`'s whole process group (it must lead its own and not be reaped yet, so its
/// pid still names it), then the child itself, and reaps it.
pub fn kill_group(child: &mut Child) {
    if let Some(pid) = pid_of(child) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Something besides the child's exit that ends a [`wait`] early: a file descriptor that
/// becomes readable (a signal pipe), and the signal it brings.
pub trait Interrupt {
    /// Readable when there is something to [`take`](Interrupt::take).
    fn fd(&self) -> BorrowedFd<'_>;
    /// The signal caught, if any (taking it).
    fn take(&self) -> Option<i32>;
}

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The child exited (and was reaped).
    Exited(ExitStatus),
    /// The deadline passed; the child is still running and not reaped.
    Deadline,
    /// The interrupt brought this signal; the child is still running and not reaped.
    Signal(i32),
}

/// Sleeps in `poll(2)` until `child` exits, `deadline` passes or `interrupt` fires.
/// Without a pidfd it falls back to short sleeps.
pub fn wait(
    child: &mut Child,
    pidfd: Option<&OwnedFd>,
    deadline: Option<Instant>,
    interrupt: Option<&dyn Interrupt>,
) -> std::io::Result<Waited> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Waited::Exited(status));
        }
        if let Some(signal) = interrupt.and_then(Interrupt::take) {
            return Ok(Waited::Signal(signal));
        }
        let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Ok(Waited::Deadline);
        }
        match pidfd {
            Some(pidfd) => {
                // At most a minute per poll: `Timespec` cannot hold every `Duration`.
                let timeout =
                    Timespec::try_from(left.min(Duration::from_secs(60))).unwrap_or(Timespec { tv_sec: 1, tv_nsec: 0 });
                let mut fds = vec![PollFd::new(pidfd, PollFlags::IN)];
                if let Some(interrupt) = interrupt {
                    fds.push(PollFd::from_borrowed_fd(interrupt.fd(), PollFlags::IN));
                }
                // Readable once the process has exited or a signal came; EINTR just loops.
                let _ = poll(&mut fds, Some(&timeout));
            }
            None => std::thread::sleep(left.min(Duration::from_millis(2))),
        }
    }
}

fn read_capped(mut stream: impl std::io::Read, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (kept, truncated)
}

fn collect(rx: &mpsc::Receiver<(usize, (Vec<u8>, bool))>, wait: Duration) -> (Vec<u8>, Vec<u8>, bool) {
    let deadline = Instant::now() + wait;
    let (mut stdout, mut stderr, mut truncated) = (Vec::new(), Vec::new(), false);
    for _ in 0..2 {
        let Ok((index, (bytes, cut))) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        truncated |= cut;
        if index == 0 { stdout = bytes } else { stderr = bytes }
    }
    (stdout, stderr, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out =
            run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]), &RunOptions::default()).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout_str(), "out\n");
        assert_eq!(out.stderr_str(), "err\n");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let started = Instant::now();
        let err = run(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30; wait"]),
            &RunOptions { timeout: Some(Duration::from_millis(200)), ..RunOptions::default() },
        )
        .unwrap_err();
        assert!(matches!(err, ProcessError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_is_truncated_at_the_limit() {
        let out = run(
            Command::new("sh").args(["-c", "head -c 100000 /dev/zero"]),
            &RunOptions { capture_limit: 1000, ..RunOptions::default() },
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
    }

    #[test]
    fn a_process_group_is_found_by_its_start_time_and_ended() {
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30 & sleep 30; wait"])
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let stat = proc_stat(pid).unwrap();
        assert_eq!(stat.pgrp, pid);
        // A later start time is another process that reuses the number: left alone.
        assert!(group_members(pid, stat.start_ticks + 1_000_000).is_empty());
        // The shell starts its two sleeps on its own time: wait until both are there.
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_members(pid, stat.start_ticks).len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let ended = end_group(pid, stat.start_ticks, Duration::from_millis(200));
        let _ = child.wait();
        assert!(ended.found >= 2, "{ended:?}");
        assert!(ended.killed, "the shell ignores SIGTERM: {ended:?}");
        assert_eq!(ended.survivors, 0);
        assert!(group_members(pid, stat.start_ticks).is_empty());
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&mut Command::new("/nonexistent/bulwark-x"), &RunOptions::default()).unwrap_err();
        assert!(matches!(err, ProcessError::Spawn { .. }));
    }
}
