//! `[server]`: who may update protected refs on the git server.

use std::path::PathBuf;

use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Identities that may update protected refs (fast-forward only).
    pub allow: Vec<String>,
    /// Identities that may create or fast-forward the promotion gate's refs
    /// (`refs/bulwark/verified/*`, pushed by staging sidecars): the sidecar's identity, and
    /// nobody else (not even `allow`, so a merge bot cannot vouch for its own merge). Empty:
    /// nobody may.
    pub verifiers: Vec<String>,
    /// Identities that may break glass with `git push -o bulwark-break-glass=REASON`.
    pub admins: Vec<String>,
    /// Environment variables that hold the pusher's identity, first set one wins.
    pub identity_vars: Vec<String>,
    /// Let pushes create a non-branch ref whose short name is a protected branch
    /// (`refs/tags/main`), which `git rev-parse main` in clones then resolves to.
    pub allow_shadowing: bool,
    /// Where this repository's server hooks journal (relative: to the repository's git
    /// dir). Unset: the usual state directory, else `<git-dir>/bulwark/state`.
    pub state_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            verifiers: Vec::new(),
            admins: Vec::new(),
            identity_vars: ["GL_USERNAME", "GITEA_PUSHER_NAME", "GL_USER", "REMOTE_USER", "USER"]
                .map(String::from)
                .to_vec(),
            allow_shadowing: false,
            state_dir: None,
        }
    }
}
