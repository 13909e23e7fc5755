//! `[protect]`: which branches are guarded, and the role of this machine.

use serde::Deserialize;

use super::BranchPattern;

/// What kind of place this repository is; decides which rules the hooks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A developer's (or agent's) clone: no commits on protected branches.
    #[default]
    Dev,
    /// A production checkout: no commits at all; protected branches only follow the remote.
    Production,
    /// The bare repository on the git server: pre-receive/update rules.
    Server,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dev => "dev",
            Role::Production => "production",
            Role::Server => "server",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dev" => Ok(Role::Dev),
            "production" => Ok(Role::Production),
            "server" => Ok(Role::Server),
            other => Err(format!("unknown role `{other}`; expected dev, production or server")),
        }
    }
}

/// `[protect]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtectConfig {
    /// Exact branch names (short names, `main`, not `refs/heads/main`).
    pub branches: Vec<String>,
    /// Regexes that must match the whole branch name.
    pub patterns: Vec<BranchPattern>,
    /// The role; when absent, what `bulwark install --role` recorded, else `dev`.
    pub role: Option<Role>,
}

impl Default for ProtectConfig {
    fn default() -> Self {
        Self { branches: vec!["main".into(), "master".into()], patterns: Vec::new(), role: None }
    }
}

/// `.bulwark.toml` in a work tree: may only add client-side protection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorktreePolicy {
    pub protect: WorktreeProtect,
}

/// `[protect]` of `.bulwark.toml`: additions only (no role, no removal).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorktreeProtect {
    pub branches: Vec<String>,
    pub patterns: Vec<BranchPattern>,
}
