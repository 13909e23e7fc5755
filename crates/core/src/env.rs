//! Every environment variable bulwark reads, in one place.

/// Path of the config file; overrides the lookup order (after `--config`).
pub const CONFIG: &str = "BULWARK_CONFIG";
/// Directory for the event journal, jobs and scan state.
pub const STATE_DIR: &str = "BULWARK_STATE_DIR";
/// Set for a release build (`[service.release] build`): the commit being built.
pub const COMMIT: &str = "BULWARK_COMMIT";
/// A non-empty reason lets one refused action through; always journaled as `breakglass.used`.
pub const BREAK_GLASS: &str = "BULWARK_BREAK_GLASS";
/// Set by `bulwark-hook` when it runs a chained (pre-existing) hook, to avoid loops.
pub const IN_CHAIN: &str = "BULWARK_IN_CHAIN";
/// Test-only: stop dead at a named phase boundary (read only by binaries built for tests).
pub const TEST_CRASH_AT: &str = "BULWARK_TEST_CRASH_AT";
/// Test-only: hang (sleep forever) at a named point, e.g. the sidecar's service loop.
pub const TEST_HANG_AT: &str = "BULWARK_TEST_HANG_AT";
/// Test-only: must be `1` as well for `TEST_CRASH_AT` to be honoured (debug builds only).
pub const TEST_HOOKS: &str = "BULWARK_TEST_HOOKS";
/// Test-only: the time `[[freeze]]` windows are judged at (RFC 3339), so tests can move the
/// clock; honoured with `TEST_HOOKS=1` in debug builds only.
pub const TEST_NOW: &str = "BULWARK_TEST_NOW";
/// Standard: disable colors.
pub const NO_COLOR: &str = "NO_COLOR";
/// Standard: running under CI (plain output).
pub const CI: &str = "CI";
/// Standard XDG state home, the last fallback for the state directory.
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
/// Home directory, for the XDG fallback.
pub const HOME: &str = "HOME";

/// Git's variables that point a `git` process at a particular repository. Inside a hook
/// they point at the hook's repository; a child that works on another repository must not
/// inherit them.
pub const GIT_REPO_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_REFLOG_ACTION",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_PUSH_OPTION_COUNT",
];
