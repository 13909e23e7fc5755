//! Freeze windows (`[[freeze]]`): a deploy that has not started waits while a window holds;
//! a rollback, a redeploy of the reverted commit and the watchdog never wait.

use bulwark_core::config::{ActiveFreeze, FreezeConfig, active_freeze};
use bulwark_core::env;

/// The freeze in force now, if any.
pub fn now_active(windows: &[FreezeConfig]) -> Option<ActiveFreeze> {
    if windows.is_empty() {
        return None;
    }
    active_freeze(windows, now())
}

/// How the end of a freeze is written in notes, events and `status`.
pub fn until_text(freeze: &ActiveFreeze) -> String {
    freeze.until.map_or_else(|| "no end within a year".to_owned(), |t| t.to_string())
}

/// The time windows are judged at: the real clock, or in a test build with the test hooks
/// on, `BULWARK_TEST_NOW` (so end-to-end tests can step in and out of a window).
fn now() -> jiff::Timestamp {
    if cfg!(debug_assertions)
        && std::env::var_os(env::TEST_HOOKS).is_some_and(|v| v == "1")
        && let Some(now) = std::env::var(env::TEST_NOW).ok().and_then(|t| t.parse().ok())
    {
        return now;
    }
    jiff::Timestamp::now()
}
