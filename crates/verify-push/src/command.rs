//! Running the wrapped command: terminal passed through, signals passed on, a deadline.
//!
//! Off a terminal (an agent, a CI job, a service) the command runs in its own process group,
//! so that a signal to the wrapper, or `--command-timeout`, reaches everything it started
//! (a `git push` under a shell under an agent), not only its first process. When the
//! wrapper is the terminal's foreground job, the command stays in the wrapper's group
//! instead: prompts (ssh passphrases, credentials) keep working and the terminal's own
//! Ctrl-C, Ctrl-Z and hang-up already reach every process of the job; a signal sent to
//! the wrapper alone is passed on to the command's first process. A Ctrl-C there is the
//! command's to handle: the wrapper stops only if the command died of it (what shells do).

use std::ffi::OsString;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use crate::signals::Signals;
use bulwark_core::process::{Interrupt, Waited, pid_of, pidfd_of, wait};

/// How long a command may take to exit after it was passed a signal (or timed out),
/// before its whole group is killed with SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// How the wrapped command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself.
    Exited(ExitStatus),
    /// The wrapper caught this signal and passed it on; the command is gone.
    Interrupted(i32),
    /// It ran past `--command-timeout` and was stopped (SIGTERM, then SIGKILL).
    TimedOut,
}

/// Runs `program args` with the wrapper's stdin, stdout, stderr and environment.
pub fn run(
    program: &OsString,
    args: &[OsString],
    timeout: Option<Duration>,
    signals: &Signals,
) -> std::io::Result<Ended> {
    let own_group = !foreground_job();
    let mut cmd = Command::new(program);
    cmd.args(args);
    if own_group {
        cmd.process_group(0);
    }
    let mut child = cmd.spawn()?;
    let pidfd = pidfd_of(&child);
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut interrupted = false;
    let (first, ended) = loop {
        match wait(&mut child, pidfd.as_ref(), deadline, Some(signals as &dyn Interrupt))? {
            Waited::Exited(status) => {
                if interrupted && status.signal() == Some(Signal::INT.as_raw()) {
                    return Ok(Ended::Interrupted(Signal::INT.as_raw()));
                }
                return Ok(Ended::Exited(status));
            }
            // In the terminal's job the command got the Ctrl-C too, and it decides (an
            // agent may take it as "cancel this step"): like a shell, wait for it, and stop
            // only if it died of it.
            Waited::Signal(signal) if signal == Signal::INT.as_raw() && !own_group => interrupted = true,
            Waited::Signal(signal) => break (signal, Ended::Interrupted(signal)),
            Waited::Deadline => break (Signal::TERM.as_raw(), Ended::TimedOut),
        }
    };
    // Pass it on, give the command a moment to clean up (a git lock file, a trap), passing
    // on further signals too, then kill whatever is left of the group.
    pass_on(&child, own_group, first);
    let grace = Instant::now().checked_add(GRACE);
    loop {
        match wait(&mut child, pidfd.as_ref(), grace, Some(signals as &dyn Interrupt))? {
            Waited::Exited(_) => break,
            Waited::Signal(signal) => pass_on(&child, own_group, signal),
            Waited::Deadline => {
                pass_on(&child, own_group, Signal::KILL.as_raw());
                child.wait()?;
                break;
            }
        }
    }
    if own_group {
        // The first process is gone; anything it left behind in its group goes too.
        if let Some(pid) = pid_of(&child) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
    Ok(ended)
}

/// Sends `signal` to the command: its whole group when it has its own, else its first
/// process. A Ctrl-C on the terminal already reached every process of the foreground job,
/// so SIGINT is not sent again there (a second Ctrl-C means "force quit" to some programs).
fn pass_on(child: &Child, own_group: bool, signal: i32) {
    let (Some(pid), Some(signal)) = (pid_of(child), Signal::from_named_raw(signal)) else {
        return;
    };
    if own_group {
        let _ = kill_process_group(pid, signal);
    } else if signal != Signal::INT {
        let _ = kill_process(pid, signal);
    }
}

/// Whether the wrapper is the foreground job of its controlling terminal.
fn foreground_job() -> bool {
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|pgrp: Pid| pgrp == rustix::process::getpgrp())
}
