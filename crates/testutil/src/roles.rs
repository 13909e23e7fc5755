//! Installing bulwark's hooks into test repositories with the real installer.

use std::path::{Path, PathBuf};

use crate::{Outcome, TestEnv, file_url, run};

impl TestEnv {
    /// `bulwark install --repo REPO --role ROLE`, which must succeed.
    #[track_caller]
    pub fn install(&self, repo: &Path, role: &str) -> Outcome {
        let out = self.bulwark(self.root(), &["install", "--repo", repo.to_str().unwrap(), "--role", role]);
        out.assert_code(0);
        out
    }
}

impl TestEnv {
    /// A bare server (`server.git`) guarded by the server role through `server_hook`
    /// (`pre-receive` or `update`) with `config` as its `bulwark.toml`, whose `main` was
    /// created by `merger-bot`, and a developer clone of it (`dev`).
    pub fn guarded_server(&self, config: &str, server_hook: &str) -> (PathBuf, PathBuf) {
        let remote = self.bare("server.git");
        std::fs::write(remote.join("bulwark.toml"), config).unwrap();
        self.bulwark(
            self.root(),
            &["install", "--repo", remote.to_str().unwrap(), "--role", "server", "--server-hook", server_hook],
        )
        .assert_code(0);
        let seed = self.init("seed");
        self.commit_file(&seed, "README", "hello\n", "initial commit");
        self.push_as(&seed, "merger-bot", &[&file_url(&remote), "main"]).assert_code(0);
        let clone = self.clone_repo(&remote, "dev");
        (remote, clone)
    }

    /// `git push ARGS` in `repo` as the server identity `who` (`GL_USERNAME`).
    pub fn push_as(&self, repo: &Path, who: &str, args: &[&str]) -> Outcome {
        run(self.command("git").current_dir(repo).arg("push").args(args).env("GL_USERNAME", who))
    }
}
