//! Test-only crash points: stop dead (SIGKILL to ourselves) at a named phase boundary, so
//! end-to-end tests can check that a restart converges.
//!
//! Honoured only when all three hold, so production cannot trigger it by accident:
//! the binary is a debug build (`cargo build`/`cargo test`; release builds compile the
//! check away), `BULWARK_TEST_HOOKS=1`, and `BULWARK_TEST_CRASH_AT` names this point.

use bulwark_core::env;

/// Kills this process with SIGKILL if the test hooks ask for a crash at `name`.
pub fn point(name: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    if std::env::var_os(env::TEST_HOOKS).is_none_or(|v| v != "1") {
        return;
    }
    if std::env::var(env::TEST_CRASH_AT).is_ok_and(|v| v == name) {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort();
    }
}
