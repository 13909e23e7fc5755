//! SIGTERM, SIGINT and SIGHUP to the wrapper: caught, never fatal on their own.
//!
//! A supervisor that stops the wrapper (systemd, a CI runner's cancel button, `kill`) must
//! stop the command it wraps too, and the journal must say that the push was not verified.
//! The handlers only note the signal and wake the waiter through a self-pipe; the waiter
//! passes the signal on, journals it, and the wrapper exits 128+N.

use std::io::Read as _;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signals the wrapper catches and passes on.
pub const CAUGHT: [i32; 3] = [SIGTERM, SIGINT, SIGHUP];

/// The last caught signal not yet taken, 0 for none.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// The installed handlers: the read end of their wake-up pipe.
pub struct Signals {
    wake: UnixStream,
}

impl Signals {
    /// Installs the handlers for [`CAUGHT`], for the rest of the process's life (a signal
    /// that arrives later is still noticed at the next [`Signals::take`]).
    pub fn install() -> std::io::Result<Self> {
        let (wake, write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        for signal in CAUGHT {
            // Both actions run in the handler, in this order: note, then wake.
            signal_hook::flag::register_usize(signal, &PENDING, usize::try_from(signal).unwrap_or(0))?;
            signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
        }
        Ok(Self { wake })
    }

    /// Readable when a signal arrived (for `poll(2)` beside the child being waited for).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The signal that arrived since the last call, if any.
    pub fn take(&self) -> Option<i32> {
        let mut drain = [0u8; 64];
        while matches!((&self.wake).read(&mut drain), Ok(n) if n > 0) {}
        let signal = PENDING.swap(0, Ordering::SeqCst);
        i32::try_from(signal).ok().filter(|s| *s != 0)
    }
}

/// `SIGTERM` for 15, and so on (for messages and events).
pub fn name(signal: i32) -> String {
    match signal {
        SIGTERM => "SIGTERM".to_owned(),
        SIGINT => "SIGINT".to_owned(),
        SIGHUP => "SIGHUP".to_owned(),
        other => format!("signal {other}"),
    }
}

/// The exit code a shell gives a process killed by `signal`: 128+N.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}
