//! A child process with a deadline, waited for without threads.
//!
//! The wrapper sits in an agent's path and pays for two remote reads on every run, so the
//! way it waits matters: here the child writes into two anonymous in-memory files (no
//! reader thread needed while it runs), and the parent waits with core's
//! [`process::wait`] (`poll(2)` on a pidfd; it also wakes for a caught signal).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bulwark_core::process::{self, Interrupt, ProcessError, Waited, describe, pidfd_of, wait};

use crate::signals::Signals;

/// How much of each stream is kept.
const CAPTURE_LIMIT: u64 = 1 << 20;

/// A finished child: its status and (capped) output.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A running child with a deadline.
pub struct Bounded {
    command: String,
    child: Child,
    pidfd: Option<OwnedFd>,
    stdout: File,
    stderr: File,
    /// `None`: the timeout is too large to represent, so there is none.
    deadline: Option<Instant>,
    timeout: Duration,
}

/// Starts `cmd` (stdin from /dev/null, in its own process group) with `timeout` counted
/// from now.
pub fn start(mut cmd: Command, timeout: Duration) -> Result<Bounded, ProcessError> {
    let command = describe(&cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let spawn_error = |source: std::io::Error| ProcessError::Spawn { program: program.clone(), source };
    let stdout = capture_file("bulwark-stdout").map_err(spawn_error)?;
    let stderr = capture_file("bulwark-stderr").map_err(spawn_error)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(stdout.try_clone().map_err(spawn_error)?))
        .stderr(Stdio::from(stderr.try_clone().map_err(spawn_error)?))
        .process_group(0);
    let child = cmd.spawn().map_err(spawn_error)?;
    // The command holds the child's ends of the capture files; drop them now.
    drop(cmd);
    let pidfd = pidfd_of(&child);
    Ok(Bounded {
        command,
        child,
        pidfd,
        stdout: File::from(stdout),
        stderr: File::from(stderr),
        deadline: Instant::now().checked_add(timeout),
        timeout,
    })
}

fn capture_file(name: &str) -> std::io::Result<OwnedFd> {
    match rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC) {
        Ok(fd) => Ok(fd),
        // No memfd (old kernel, seccomp): an unlinked temporary file does the same.
        Err(_) => Ok(OwnedFd::from(tempfile::tempfile()?)),
    }
}

impl Bounded {
    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Waits until the child exits or the deadline passes (then kills its whole process
    /// group), and returns its status and output. A caught signal (when `signals` is given)
    /// ends the wait early: the child's group is killed and the signal returned.
    pub fn finish(mut self, signals: Option<&Signals>) -> Result<Finished, Stop> {
        let waited = wait(&mut self.child, self.pidfd.as_ref(), self.deadline, signals.map(|s| s as &dyn Interrupt))
            .map_err(|source| Stop::Process(ProcessError::Wait { command: self.command.clone(), source }))?;
        let status = match waited {
            Waited::Exited(status) => status,
            Waited::Deadline | Waited::Signal(_) => {
                // Not reaped yet, so the pid (= the group id) still names our child.
                process::kill_group(&mut self.child);
                if let Waited::Signal(signal) = waited {
                    return Err(Stop::Signal(signal));
                }
                let stderr = read_capture(&mut self.stderr);
                return Err(Stop::Process(ProcessError::TimedOut {
                    command: self.command,
                    after: self.timeout,
                    stdout: String::new(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                }));
            }
        };
        Ok(Finished { status, stdout: read_capture(&mut self.stdout), stderr: read_capture(&mut self.stderr) })
    }
}

/// Why [`Bounded::finish`] returned no output.
#[derive(Debug)]
pub enum Stop {
    /// The child could not be waited for, or ran past its deadline (and was killed).
    Process(ProcessError),
    /// The wrapper caught this signal (the child's group was killed).
    Signal(i32),
}

impl Interrupt for Signals {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        Signals::fd(self)
    }

    fn take(&self) -> Option<i32> {
        Signals::take(self)
    }
}

fn read_capture(file: &mut File) -> Vec<u8> {
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_ok() {
        // Keep what could be read; the exit status tells the rest.
        let _ = file.take(CAPTURE_LIMIT).read_to_end(&mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_status_and_both_streams() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let done = start(cmd, Duration::from_secs(10)).unwrap().finish(None).unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr, b"err\n");
    }

    #[test]
    fn the_deadline_kills_the_whole_group() {
        let started = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & sleep 30; wait"]);
        let err = start(cmd, Duration::from_millis(200)).unwrap().finish(None).unwrap_err();
        assert!(matches!(err, Stop::Process(ProcessError::TimedOut { .. })), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = start(Command::new("/nonexistent/bulwark-x"), Duration::from_secs(1)).err().unwrap();
        assert!(matches!(err, ProcessError::Spawn { .. }));
    }
}
