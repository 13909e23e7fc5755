//! Reading the local repository in-process (gix): the current branch, where it pushes, and
//! its tip. No `git` process is started for these, which keeps the wrapper's own cost close
//! to the two remote reads it cannot avoid.

use std::path::Path;

use gix::bstr::ByteSlice as _;
use gix::remote::Direction;

/// The local repository could not be read, or does not say what to verify.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// No repository at or above the directory.
    #[error("{dir} is not inside a git repository: {message}")]
    NotARepository { dir: String, message: String },
    /// HEAD is detached, so there is no current branch to default to.
    #[error("HEAD is detached, so there is no current branch to verify")]
    Detached,
    /// The branch name is not a valid ref name.
    #[error("`{name}` is not a valid branch name")]
    InvalidBranch { name: String },
    /// The branch does not exist locally.
    #[error("there is no local branch `{name}`")]
    NoSuchBranch { name: String },
    /// The branch's push configuration is invalid.
    #[error("cannot tell where branch `{branch}` pushes to: {message}")]
    Config { branch: String, message: String },
    /// The remote's configuration (or the URL given as the remote) cannot be read.
    #[error("cannot tell where remote `{remote}` is: {message}")]
    Remote { remote: String, message: String },
    /// Reading refs failed.
    #[error("cannot read {what}: {message}")]
    Read { what: String, message: String },
}

/// Where a local branch's commits must arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The local branch's short name (`feature`).
    pub local_branch: String,
    /// The remote to read: a configured name, or a URL.
    pub remote: String,
    /// The full name of the branch on the remote (`refs/heads/feature`).
    pub remote_ref: String,
}

impl Target {
    /// The remote branch's short name.
    pub fn remote_branch(&self) -> &str {
        self.remote_ref.strip_prefix("refs/heads/").unwrap_or(&self.remote_ref)
    }
}

/// What a remote name (or URL) means to git at one moment: where it is read from and where
/// it is pushed to, after `url.<base>.insteadOf` and `pushInsteadOf` rewriting.
///
/// Taken before the wrapped command runs and again after it: a command that re-points the
/// remote (`git remote set-url`, a new rewrite rule, a `pushurl`, a removed or renamed
/// remote, a hand-edited config) changes it, and then nothing it pushed can be verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMeaning {
    /// A remote configured under that name (otherwise the name is taken as a URL or path).
    pub configured: bool,
    /// The URLs it is read from, rewritten; `git ls-remote` reads the first.
    pub fetch: Vec<String>,
    /// The URLs it is pushed to, rewritten.
    pub push: Vec<String>,
    /// What git reads when it is given the first fetch URL itself (a rule can match an
    /// already rewritten URL again): the URL the wrapper's reads really go to.
    pub read: Option<String>,
}

impl RemoteMeaning {
    /// The URL the remote is read from, pinned for every read of one run.
    pub fn pinned(&self) -> Option<&str> {
        self.fetch.first().map(String::as_str)
    }
}

/// The repository the command runs in.
pub struct Local {
    repo: gix::Repository,
}

impl Local {
    /// The repository at or above `dir` (git's own discovery; `GIT_DIR` is not consulted,
    /// matching the `git` children, which drop it).
    pub fn discover(dir: &Path) -> Result<Self, LocalError> {
        let repo = gix::discover(dir)
            .map_err(|e| LocalError::NotARepository { dir: dir.display().to_string(), message: e.to_string() })?;
        Ok(Self { repo })
    }

    /// The same repository opened afresh, so that configuration written since (by the
    /// wrapped command) is seen.
    pub fn reopen(&self) -> Result<Self, LocalError> {
        let dir = self.repo.workdir().unwrap_or_else(|| self.repo.git_dir());
        Self::discover(dir)
    }

    /// What `name_or_url` means now: a configured remote's URLs, or the URL itself, each as
    /// git rewrites it.
    pub fn remote_meaning(&self, name_or_url: &str) -> Result<RemoteMeaning, LocalError> {
        let config_error =
            |e: gix::Error| LocalError::Remote { remote: name_or_url.to_owned(), message: e.to_string() };
        let configured = self.repo.remote_names().iter().any(|name| name.as_bytes() == name_or_url.as_bytes());
        let remote = if configured {
            self.repo.find_remote(name_or_url).map_err(config_error)?
        } else {
            self.repo.remote_at(name_or_url).map_err(config_error)?
        };
        let urls = |direction| remote.urls(direction).map(|url| url.to_bstring().to_str_lossy().into_owned()).collect();
        let fetch: Vec<String> = urls(Direction::Fetch);
        let push = urls(Direction::Push);
        let read = match fetch.first() {
            Some(url) => Some(self.rewritten(url).map_err(config_error)?),
            None => None,
        };
        Ok(RemoteMeaning { configured, fetch, push, read })
    }

    /// `url` after the rewrite rules that `git ls-remote URL` applies to it.
    fn rewritten(&self, url: &str) -> Result<String, gix::Error> {
        let remote = self.repo.remote_at(url)?;
        Ok(remote.url(Direction::Fetch).map_or_else(|| url.to_owned(), |u| u.to_bstring().to_str_lossy().into_owned()))
    }

    /// The common git dir (where `bulwark.toml` lives).
    pub fn common_dir(&self) -> &Path {
        self.repo.common_dir()
    }

    /// The branch HEAD is on (possibly unborn).
    pub fn current_branch(&self) -> Result<String, LocalError> {
        let head = self
            .repo
            .head_name()
            .map_err(|e| LocalError::Read { what: "HEAD".into(), message: e.to_string() })?
            .ok_or(LocalError::Detached)?;
        match head.as_bstr().strip_prefix(b"refs/heads/") {
            Some(short) => Ok(short.to_str_lossy().into_owned()),
            None => Err(LocalError::Detached),
        }
    }

    /// Where `local_branch` pushes to on `remote_override` (or on its configured push
    /// remote, else `origin`).
    ///
    /// The remote branch follows git's own push configuration where it names one (push
    /// refspecs, `push.default`), and otherwise `branch.<name>.merge` when the remote is the
    /// branch's own: an agent that pushes `feature` to a differently named upstream is
    /// checked against that upstream. Any other remote gets the same name.
    pub fn target(&self, local_branch: &str, remote_override: Option<&str>) -> Result<Target, LocalError> {
        // `refs/heads/x` and `x` name the same branch.
        let local_branch = local_branch.strip_prefix("refs/heads/").unwrap_or(local_branch);
        let full: gix::refs::FullName = format!("refs/heads/{local_branch}")
            .try_into()
            .map_err(|_| LocalError::InvalidBranch { name: local_branch.to_owned() })?;
        if local_branch.starts_with('-') {
            return Err(LocalError::InvalidBranch { name: local_branch.to_owned() });
        }
        let name_of = |direction| {
            self.repo.branch_remote_name(local_branch, direction).map(|name| name.as_bstr().to_str_lossy().into_owned())
        };
        let push_remote = name_of(Direction::Push);
        let fetch_remote = name_of(Direction::Fetch);
        let remote =
            remote_override.map(str::to_owned).or_else(|| push_remote.clone()).unwrap_or_else(|| "origin".to_owned());
        let config_error =
            |e: gix::Error| LocalError::Config { branch: local_branch.to_owned(), message: e.to_string() };
        let mut remote_ref = None;
        if push_remote.as_deref() == Some(remote.as_str()) {
            remote_ref =
                self.repo.branch_remote_ref_name(full.as_ref(), Direction::Push).transpose().map_err(config_error)?;
        }
        if remote_ref.is_none() && fetch_remote.as_deref() == Some(remote.as_str()) {
            remote_ref =
                self.repo.branch_remote_ref_name(full.as_ref(), Direction::Fetch).transpose().map_err(config_error)?;
        }
        let remote_ref = remote_ref.unwrap_or(full);
        Ok(Target {
            local_branch: local_branch.to_owned(),
            remote,
            remote_ref: remote_ref.as_bstr().to_str_lossy().into_owned(),
        })
    }

    /// The commit `refs/heads/<branch>` points to now, `None` if there is no such branch.
    pub fn branch_tip(&self, branch: &str) -> Result<Option<String>, LocalError> {
        let name = format!("refs/heads/{branch}");
        let read_error = |e: gix::Error| LocalError::Read { what: format!("`{name}`"), message: e.to_string() };
        let Some(mut reference) = self.repo.try_find_reference(name.as_str()).map_err(read_error)? else {
            return Ok(None);
        };
        let id = reference.peel_to_id().map_err(read_error)?;
        Ok(Some(id.detach().to_string()))
    }

    /// Whether the object store has `oid` (then ancestry can be decided without a fetch).
    pub fn has_object(&self, oid: &str) -> bool {
        gix::ObjectId::from_hex(oid.as_bytes()).is_ok_and(|id| self.repo.has_object(id))
    }
}
