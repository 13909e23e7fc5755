//! Installing bulwark's hooks into test repositories with the real installer.

use std::path::Path;

use crate::{Outcome, TestEnv};

impl TestEnv {
    /// `bulwark install --repo REPO --role ROLE`, which must succeed.
    #[track_caller]
    pub fn install(&self, repo: &Path, role: &str) -> Outcome {
        let out = self.bulwark(self.root(), &["install", "--repo", repo.to_str().unwrap(), "--role", role]);
        out.assert_code(0);
        out
    }
}
