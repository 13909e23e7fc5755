//! Test-only crash points: stop dead (SIGKILL to ourselves) at a named phase boundary, so
//! end-to-end tests can check that a restart converges; and hang points (sleep forever), so
//! they can check that a stuck loop is noticed.
//!
//! Honoured only when all three hold, so production cannot trigger it by accident:
//! the binary is a debug build (`cargo build`/`cargo test`; release builds compile the
//! check away), `BULWARK_TEST_HOOKS=1`, and `BULWARK_TEST_CRASH_AT` (or `BULWARK_TEST_HANG_AT`) names this point.

use bulwark_core::env;

/// Whether the test hooks ask for `variable` = `name` (never in a release build).
fn asked(variable: &str, name: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var_os(env::TEST_HOOKS).is_some_and(|v| v == "1")
        && std::env::var(variable).is_ok_and(|v| v == name)
}

/// Kills this process with SIGKILL if the test hooks ask for a crash at `name`.
pub fn point(name: &str) {
    if asked(env::TEST_CRASH_AT, name) {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort();
    }
}

/// Hangs this thread for good if the test hooks ask for a hang at `name` (a loop that
/// stops making progress while the process lives: what systemd's watchdog is for).
pub fn hang_point(name: &str) {
    if asked(env::TEST_HANG_AT, name) {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
