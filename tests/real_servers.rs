//! The server guard under the real server software, on 127.0.0.1 only, started and stopped
//! by the tests: Apache with `git-http-backend` and basic auth (smart HTTP), and gitolite3
//! over a real OpenSSH `sshd` (non-default port, test keys).
//!
//! `.ci/run` installs them from Debian's packages; where they are missing (or the tests do
//! not run as root, which sshd, Apache's user switch and gitolite's user need) each test says
//! `SKIPPED: <reason>` on stderr, and under `CI=true` fails instead.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use bulwark_testutil::{Outcome, TestEnv, is_root, run, skipped, wait_for};

const CONFIG: &str = "[server]\nallow = [\"merger-bot\"]\nadmins = [\"ops\"]\n";

/// `Some(reason)` when this machine cannot run the real servers (for [`skipped`], which
/// fails under CI).
fn missing(needs: &[&str]) -> Option<String> {
    let reason = if is_root() {
        let absent: Vec<&str> = needs.iter().copied().filter(|p| !Path::new(p).exists()).collect();
        if absent.is_empty() {
            return None;
        }
        format!("not installed: {} (apt-get install gitolite3 openssh-server apache2)", absent.join(", "))
    } else {
        "the real-server tests run as root (sshd, Apache's user switch, gitolite's own user)".to_owned()
    };
    Some(reason)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16, child: &mut Child, log: &Path) {
    let up = wait_for(Duration::from_secs(20), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "nothing listens on 127.0.0.1:{port}: {}", std::fs::read_to_string(log).unwrap_or_default());
}

/// A daemon started by a test in its own process group (Apache's workers are its
/// children), stopped with the whole group and reaped when the test ends, however it ends.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn spawn(cmd: &mut Command) -> Daemon {
        use std::os::unix::process::CommandExt as _;
        use std::process::Stdio;
        // No inherited pipes: a daemon must not keep the test harness's output open.
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Daemon { child }
    }

    fn signal_group(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args([signal, "--", &group]).stderr(std::process::Stdio::null()).status();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal_group("-TERM");
        let group = self.child.id().to_string();
        let child = &mut self.child;
        let _ = wait_for(Duration::from_secs(10), || {
            let _ = child.try_wait();
            (run(Command::new("pgrep").args(["-g", &group])).code != 0).then_some(())
        });
        self.signal_group("-KILL");
        let _ = self.child.wait();
    }
}

fn chown(user: &str, path: &Path) {
    run(Command::new("chown").args(["-R", &format!("{user}:{user}")]).arg(path)).assert_code(0);
}

/// The bulwark binaries, copied where another user can run them (the build directory
/// may not be readable by the web server's or gitolite's user).
fn public_bin(env: &TestEnv) -> PathBuf {
    let dir = env.path("public-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["bulwark", "bulwark-hook"] {
        std::fs::copy(bulwark_testutil::bin(name), dir.join(name)).unwrap();
    }
    dir
}

/// Lets other users through the test's temp dir (created 0700).
fn open_root(env: &TestEnv) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `git` as the pusher, hermetic, with the given extra environment.
fn git_push(env: &TestEnv, clone: &Path, args: &[&str], extra: &[(&str, &str)]) -> Outcome {
    let mut cmd = env.command("git");
    cmd.current_dir(clone).arg("push").args(args);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The remote's `ref`, read as root from a repository another user owns.
fn remote_rev(env: &TestEnv, repo: &Path, rev: &str) -> String {
    let out = run(env.command("git").arg("-c").arg("safe.directory=*").arg("-C").arg(repo).args(["rev-parse", rev]));
    out.assert_code(0);
    out.stdout.trim().to_owned()
}

fn bulwark_as_admin(env: &TestEnv, args: &[&str]) -> Outcome {
    let mut cmd = env.bin_command("bulwark");
    cmd.args(args)
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*");
    run(&mut cmd)
}

// ---------------------------------------------------------------------------------------
// Smart HTTP: Apache 2.4, mod_cgi, git-http-backend, basic auth.

const APACHE: &str = "/usr/sbin/apache2";
const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";
const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

struct Apache {
    _daemon: Daemon,
    port: u16,
}

fn start_apache(env: &TestEnv, project_root: &Path, passwords: &[(&str, &str)]) -> Apache {
    let dir = env.path("apache");
    std::fs::create_dir_all(dir.join("run")).unwrap();
    let mut htpasswd = String::new();
    for (user, password) in passwords {
        let hash = run(Command::new("openssl").args(["passwd", "-apr1", password]));
        hash.assert_code(0);
        let _ = writeln!(htpasswd, "{user}:{}", hash.stdout.trim());
    }
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    let port = free_port();
    let mut modules = String::new();
    for m in
        ["mpm_prefork", "authz_core", "authn_core", "authn_file", "auth_basic", "authz_user", "alias", "cgi", "env"]
    {
        let _ = writeln!(modules, "LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so");
    }
    let conf = format!(
        r#"{modules}ServerName 127.0.0.1
ServerRoot {dir}
Listen 127.0.0.1:{port}
PidFile {dir}/run/httpd.pid
DefaultRuntimeDir {dir}/run
Mutex file:{dir}/run
ErrorLog {dir}/error.log
LogLevel warn
User www-data
Group www-data
StartServers 1
MinSpareServers 1
MaxSpareServers 2
DocumentRoot {dir}/empty
SetEnv GIT_PROJECT_ROOT {root}
SetEnv GIT_HTTP_EXPORT_ALL 1
ScriptAlias /git/ {HTTP_BACKEND}/
<Location /git/>
    AuthType Basic
    AuthName "git"
    AuthUserFile {dir}/htpasswd
    Require valid-user
</Location>
"#,
        dir = dir.display(),
        root = project_root.display(),
    );
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("httpd.conf"), conf).unwrap();
    let log = dir.join("error.log");
    let mut cmd = Command::new(APACHE);
    cmd.args(["-f"]).arg(dir.join("httpd.conf")).args(["-DFOREGROUND"]);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    let mut daemon = Daemon::spawn(&mut cmd);
    wait_listening(port, &mut daemon.child, &log);
    Apache { _daemon: daemon, port }
}

#[test]
fn smart_http_under_apache_guards_main_and_journals_in_the_repository() {
    if let Some(reason) = missing(&[APACHE, HTTP_BACKEND, "/usr/bin/openssl"]) {
        return skipped(&reason);
    }
    let env = TestEnv::new();
    open_root(&env);
    let bin = public_bin(&env);
    let root = env.path("srv-git");
    std::fs::create_dir_all(&root).unwrap();
    let remote = root.join("app.git");
    env.git(env.root(), &["init", "-q", "--bare", "-b", "main", remote.to_str().unwrap()]);
    std::fs::write(remote.join("bulwark.toml"), CONFIG).unwrap();
    let hook = bin.join("bulwark-hook");
    env.bulwark(
        env.root(),
        &["install", "--repo", remote.to_str().unwrap(), "--role", "server", "--hook-binary", hook.to_str().unwrap()],
    )
    .assert_code(0);
    chown("www-data", &root);
    let users = [("merger-bot", "pw-merger"), ("alice", "pw-alice"), ("ops", "pw-ops")];
    let apache = start_apache(&env, &root, &users);
    let url = |user: &str| {
        let password = users.iter().find(|(u, _)| *u == user).unwrap().1;
        format!("http://{user}:{password}@127.0.0.1:{}/git/app.git", apache.port)
    };

    let clone = env.init("dev");
    env.commit_file(&clone, "README", "hello\n", "initial commit");
    // Allowed identity: creates, then fast-forwards main.
    git_push(&env, &clone, &[&url("merger-bot"), "main"], &[]).assert_code(0);
    env.commit_file(&clone, "f1", "x", "work");
    git_push(&env, &clone, &[&url("merger-bot"), "main"], &[]).assert_code(0);
    assert_eq!(remote_rev(&env, &remote, "main"), env.rev(&clone, "main"));
    // Anyone else: refused with the reason, as `remote:` lines; a branch is fine.
    env.commit_file(&clone, "f2", "x", "more work");
    git_push(&env, &clone, &[&url("alice"), "main"], &[]).assert_code(1).assert_stderr_contains(
        "remote: error: `main` is protected on this server: only `merger-bot` may update it, and you are `alice`",
    );
    git_push(&env, &clone, &[&url("alice"), "main:feature"], &[]).assert_code(0);
    assert_eq!(remote_rev(&env, &remote, "feature"), env.rev(&clone, "main"));
    // Force push and deletion, even by the allowed identity.
    let before = remote_rev(&env, &remote, "main");
    env.git(&clone, &["reset", "-q", "--hard", "HEAD~2"]);
    env.commit_file(&clone, "g", "y", "rewritten");
    git_push(&env, &clone, &["--force", &url("merger-bot"), "main"], &[])
        .assert_code(1)
        .assert_stderr_contains("remote: error: `main` only moves forward on this server");
    git_push(&env, &clone, &[&url("merger-bot"), "--delete", "main"], &[])
        .assert_code(1)
        .assert_stderr_contains("`main` is protected on this server and cannot be deleted");
    assert_eq!(remote_rev(&env, &remote, "main"), before);
    // An admin breaks glass: Apache's CGI environment has no HOME, yet it is recorded.
    git_push(&env, &clone, &["--force", "-o", "bulwark-break-glass=INC-1 revert a leak", &url("ops"), "main"], &[])
        .assert_code(0)
        .assert_stderr_contains("remote: warning: bulwark: glass broken by `ops` (INC-1 revert a leak)");
    assert_eq!(remote_rev(&env, &remote, "main"), env.rev(&clone, "main"));

    let journal = bulwark_core::Journal::in_dir(&remote.join("bulwark/state")).read_all().unwrap();
    let kinds: Vec<&str> = journal.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "push.accepted",
            "push.accepted",
            "push.rejected",
            "push.accepted",
            "push.rejected",
            "push.rejected",
            "breakglass.used",
            "push.accepted"
        ],
        "{journal:?}"
    );
    assert_eq!(journal[2].str("identity"), Some("alice"));
    assert_eq!(journal[6].str("identity"), Some("ops"));
    bulwark_as_admin(&env, &["events", "--repo", remote.to_str().unwrap(), "--kind", "breakglass"])
        .assert_code(0)
        .assert_stdout_contains("reason=\"INC-1 revert a leak\"");
}

// ---------------------------------------------------------------------------------------
// gitolite3 over OpenSSH.

const SSHD: &str = "/usr/sbin/sshd";
const GITOLITE: &str = "/usr/bin/gitolite";
const GITOLITE_SHELL: &str = "/usr/share/gitolite3/gitolite-shell";
/// gitolite runs as this user (never root), created by the test if missing.
const GL_USER: &str = "bulwarkgl";

fn as_gitolite(home: &Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", GL_USER, "--", "env"]).arg(format!("HOME={}", home.display()));
    cmd.arg(format!("PATH={}", std::env::var("PATH").unwrap_or_default())).args(args);
    run(&mut cmd)
}

struct GitoliteServer {
    _sshd: Daemon,
    port: u16,
    home: PathBuf,
    keys: PathBuf,
}

impl GitoliteServer {
    fn url(&self, repo: &str) -> String {
        format!("ssh://{GL_USER}@127.0.0.1:{}/{repo}", self.port)
    }

    /// `git ARGS` in `dir` as the holder of `user`'s key.
    fn git_as(&self, env: &TestEnv, dir: &Path, user: &str, args: &[&str]) -> Outcome {
        let ssh = format!(
            "ssh -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            self.keys.join(user).display()
        );
        run(env.command("git").current_dir(dir).args(args).env("GIT_SSH_COMMAND", ssh))
    }

    fn events(&self) -> Vec<bulwark_core::Event> {
        bulwark_core::Journal::in_dir(&self.home.join(".local/state/bulwark")).read_all().unwrap()
    }
}

/// A fresh gitolite (admin key `admin`, users `alice`, `merger-bot`, `ops`) served by its
/// own sshd on a free port of 127.0.0.1.
fn start_gitolite(env: &TestEnv) -> GitoliteServer {
    let home = env.path("gitolite-home");
    std::fs::create_dir_all(&home).unwrap();
    if run(Command::new("id").arg(GL_USER)).code != 0 {
        run(Command::new("useradd").args(["--system", "--shell", "/bin/sh", "--no-create-home", GL_USER]))
            .assert_code(0);
    }
    // A home per test; `*`: no password, but not a locked account (sshd refuses those).
    run(Command::new("usermod").arg("--home").arg(&home).args(["-p", "*", GL_USER])).assert_code(0);
    chown(GL_USER, &home);
    let keys = env.path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for user in ["admin", "alice", "merger-bot", "ops"] {
        run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", user, "-f"]).arg(keys.join(user)))
            .assert_code(0);
    }
    let admin_pub = home.join("admin.pub");
    std::fs::copy(keys.join("admin.pub"), &admin_pub).unwrap();
    chown(GL_USER, &admin_pub);
    as_gitolite(&home, &["gitolite", "setup", "-pk", admin_pub.to_str().unwrap()]).assert_code(0);
    // What the README tells an admin to do: LOCAL_CODE and repo-specific hooks.
    let rc = home.join(".gitolite.rc");
    let text = std::fs::read_to_string(&rc)
        .unwrap()
        .replace(
            "# LOCAL_CODE                =>  \"$rc{GL_ADMIN_BASE}/local\",",
            "LOCAL_CODE => \"$rc{GL_ADMIN_BASE}/local\",",
        )
        .replace("# 'repo-specific-hooks',", "'repo-specific-hooks',");
    assert!(text.contains("LOCAL_CODE => ") && text.contains("\n            'repo-specific-hooks',"), "{text}");
    std::fs::write(&rc, text).unwrap();
    std::fs::create_dir_all(home.join(".gitolite/local/hooks/repo-specific")).unwrap();
    chown(GL_USER, &home);

    let dir = env.path("sshd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join("host_key")))
        .assert_code(0);
    let port = free_port();
    let conf = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile .ssh/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowUsers {GL_USER}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), conf).unwrap();
    let log = dir.join("sshd.log");
    let mut cmd = Command::new(SSHD);
    cmd.args(["-D", "-e", "-f"]).arg(dir.join("sshd_config")).arg("-E").arg(&log);
    let mut daemon = Daemon::spawn(&mut cmd);
    wait_listening(port, &mut daemon.child, &log);
    GitoliteServer { _sshd: daemon, port, home, keys }
}

/// Commits gitolite's config (and the users' keys) as the admin, over ssh.
fn push_gitolite_conf(env: &TestEnv, gl: &GitoliteServer, conf: &str) -> Outcome {
    let admin = env.path("gitolite-admin");
    if !admin.exists() {
        gl.git_as(env, env.root(), "admin", &["clone", "-q", &gl.url("gitolite-admin"), admin.to_str().unwrap()])
            .assert_code(0);
        for user in ["alice", "merger-bot", "ops"] {
            std::fs::copy(gl.keys.join(format!("{user}.pub")), admin.join(format!("keydir/{user}.pub"))).unwrap();
        }
    }
    std::fs::write(admin.join("conf/gitolite.conf"), conf).unwrap();
    env.git(&admin, &["add", "-A"]);
    env.git(&admin, &["commit", "-q", "-m", "gitolite config"]);
    gl.git_as(env, &admin, "admin", &["push", "origin", "master"])
}

const GL_CONF: &str = "repo gitolite-admin\n    RW+ = admin\n\nrepo app\n    RW+ = @all\n";

#[test]
fn gitolite_over_ssh_guards_main_through_its_own_hooks() {
    if let Some(reason) = missing(&[SSHD, GITOLITE, GITOLITE_SHELL, "/usr/bin/ssh", "/usr/bin/ssh-keygen"]) {
        return skipped(&reason);
    }
    let env = TestEnv::new();
    open_root(&env);
    let bin = public_bin(&env);
    let gl = start_gitolite(&env);
    push_gitolite_conf(&env, &gl, GL_CONF).assert_code(0);
    let app = gl.home.join("repositories/app.git");
    let update_link = std::fs::read_link(app.join("hooks/update")).unwrap();

    // Straight into a gitolite repository: refused, with the way that works.
    let app_arg = app.to_str().unwrap();
    bulwark_as_admin(&env, &["install", "--repo", app_arg, "--role", "server", "--server-hook", "update"])
        .assert_code(2)
        .assert_stderr_contains("whose `update` hook is its access control")
        .assert_stderr_contains(&format!("--gitolite {}", gl.home.display()));
    bulwark_as_admin(&env, &["install", "--repo", app_arg, "--role", "server"])
        .assert_code(2)
        .assert_stderr_contains("is managed by gitolite");
    assert_eq!(std::fs::read_link(app.join("hooks/update")).unwrap(), update_link, "gitolite's update untouched");

    std::fs::write(app.join("bulwark.toml"), CONFIG).unwrap();
    let hook = bin.join("bulwark-hook");
    bulwark_as_admin(
        &env,
        &[
            "install",
            "--role",
            "server",
            "--gitolite",
            gl.home.to_str().unwrap(),
            "--hook-binary",
            hook.to_str().unwrap(),
        ],
    )
    .assert_code(0)
    .assert_stdout_contains("installed: server role for gitolite");
    assert_eq!(std::fs::read_link(app.join("hooks/update")).unwrap(), update_link, "gitolite's update untouched");
    // gitolite's own `setup` keeps bulwark (it re-links its common hooks).
    as_gitolite(&gl.home, &["gitolite", "setup"]).assert_code(0);
    bulwark_as_admin(&env, &["status", "--repo", app_arg]).assert_code(0).assert_stdout_contains("all intact");

    let clone = env.init("dev");
    env.commit_file(&clone, "README", "hello\n", "initial commit");
    let url = gl.url("app");
    gl.git_as(&env, &clone, "merger-bot", &["push", &url, "main"]).assert_code(0);
    env.commit_file(&clone, "f1", "x", "work");
    gl.git_as(&env, &clone, "merger-bot", &["push", &url, "main"]).assert_code(0);
    assert_eq!(remote_rev(&env, &app, "main"), env.rev(&clone, "main"));
    env.commit_file(&clone, "f2", "x", "more work");
    gl.git_as(&env, &clone, "alice", &["push", &url, "main"]).assert_code(1).assert_stderr_contains(
        "remote: error: `main` is protected on this server: only `merger-bot` may update it, and you are `alice`",
    );
    gl.git_as(&env, &clone, "alice", &["push", &url, "main:feature"]).assert_code(0);
    let before = remote_rev(&env, &app, "main");
    env.git(&clone, &["reset", "-q", "--hard", "HEAD~2"]);
    env.commit_file(&clone, "g", "y", "rewritten");
    gl.git_as(&env, &clone, "merger-bot", &["push", "--force", &url, "main"])
        .assert_code(1)
        .assert_stderr_contains("remote: error: `main` only moves forward on this server");
    gl.git_as(&env, &clone, "merger-bot", &["push", &url, "--delete", "main"])
        .assert_code(1)
        .assert_stderr_contains("`main` is protected on this server and cannot be deleted");
    assert_eq!(remote_rev(&env, &app, "main"), before);
    gl.git_as(&env, &clone, "ops", &["push", "--force", "-o", "bulwark-break-glass=INC-2 bad rebase", &url, "main"])
        .assert_code(0)
        .assert_stderr_contains("remote: warning: bulwark: glass broken by `ops` (INC-2 bad rebase)");
    let events = gl.events();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "push.accepted",
            "push.accepted",
            "push.rejected",
            "push.accepted",
            "push.rejected",
            "push.rejected",
            "breakglass.used",
            "push.accepted"
        ],
        "{events:?}"
    );
    assert_eq!(events[2].str("identity"), Some("alice"), "gitolite's GL_USER");

    // The admin still changes gitolite's own config (branch `master`), and a repository
    // that gets gitolite's repo-specific hooks loses bulwark loudly, not silently.
    let audit = gl.home.join(".gitolite/local/hooks/repo-specific/audit");
    let marker = gl.home.join("audit-ran");
    std::fs::write(&audit, format!("#!/bin/sh\ncat >/dev/null\ntouch {}\n", marker.display())).unwrap();
    bulwark_testutil::set_executable(&audit);
    chown(GL_USER, &audit);
    let conf = format!("{GL_CONF}    option hook.pre-receive = audit\n");
    push_gitolite_conf(&env, &gl, &conf).assert_code(0);
    bulwark_as_admin(&env, &["status", "--repo", app_arg])
        .assert_code(1)
        .assert_stderr_contains("error: ")
        .assert_stderr_contains("PROTECTION OFF: gitolite replaced bulwark's shim with its multi-hook driver");
    // Listed among the repo-specific hooks, bulwark runs again, and so does the other hook.
    let conf = format!(
        "{GL_CONF}    option hook.pre-receive = audit\n    option hook.pre-receive.bulwark = bulwark\n    option hook.post-receive.bulwark = bulwark-post-receive\n"
    );
    push_gitolite_conf(&env, &gl, &conf).assert_code(0);
    bulwark_as_admin(&env, &["status", "--repo", app_arg]).assert_code(0).assert_stdout_contains("all intact");
    env.commit_file(&clone, "f3", "x", "later work");
    gl.git_as(&env, &clone, "alice", &["push", &url, "main"])
        .assert_code(1)
        .assert_stderr_contains("remote: error: `main` is protected on this server");
    gl.git_as(&env, &clone, "merger-bot", &["push", &url, "main"]).assert_code(0);
    assert!(marker.exists(), "gitolite's driver still runs the repository's other hooks");

    // Removed the way it was installed: for the whole installation, not one repository.
    bulwark_as_admin(&env, &["uninstall", "--repo", app_arg])
        .assert_code(2)
        .assert_stderr_contains(&format!("bulwark uninstall --gitolite {}", gl.home.display()));
    bulwark_as_admin(&env, &["uninstall", "--gitolite", gl.home.to_str().unwrap()]).assert_code(0);
    assert!(!gl.home.join(".gitolite/local/hooks/common/pre-receive").exists());
    assert!(!gl.home.join("repositories/testing.git/hooks/pre-receive").exists());
    assert_eq!(std::fs::read_link(app.join("hooks/update")).unwrap(), update_link, "gitolite's update untouched");
    env.commit_file(&clone, "f4", "x", "after bulwark");
    gl.git_as(&env, &clone, "alice", &["push", &url, "main"]).assert_code(0);
}

// ---------------------------------------------------------------------------------------
// Plain SSH: whether the identity can be trusted.

/// A pusher account with a login shell, created by the test if missing.
const SHELL_USER: &str = "bulwarksh";

#[test]
fn status_warns_when_pushers_have_a_shell_that_names_them_anything() {
    if let Some(reason) = missing(&["/usr/sbin/useradd"]) {
        return skipped(&reason);
    }
    let env = TestEnv::new();
    let remote = env.bare("server.git");
    env.install(&remote, "server");
    let home = env.path("sh-home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    if run(Command::new("id").arg(SHELL_USER)).code != 0 {
        run(Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/bin/bash", SHELL_USER]))
            .assert_code(0);
    }
    run(Command::new("usermod").arg("--home").arg(&home).args(["--shell", "/bin/bash", SHELL_USER])).assert_code(0);
    let keys = home.join(".ssh/authorized_keys");
    std::fs::write(&keys, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8y alice\n").unwrap();
    chown(SHELL_USER, &remote);
    let status = || bulwark_as_admin(&env, &["status", "--repo", remote.to_str().unwrap()]);
    status()
        .assert_code(0)
        .assert_stderr_contains("warning: identity: these accounts can push to this repository with a shell")
        .assert_stderr_contains("`bulwarksh` (owner; shell /bin/bash, 1 ssh key(s) without a forced command)");
    // A forced command per key (what gitolite writes): nothing to say.
    std::fs::write(&keys, "command=\"/usr/bin/git-shell -c \\\"$SSH_ORIGINAL_COMMAND\\\"\",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8y alice\n").unwrap();
    let out = status();
    out.assert_code(0);
    assert!(!out.stderr.contains("warning: identity"), "{}", out.stderr);
    // git-shell as the login shell: nothing to say either.
    std::fs::write(&keys, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE8y alice\n").unwrap();
    run(Command::new("usermod").args(["--shell", "/usr/bin/git-shell", SHELL_USER])).assert_code(0);
    let out = status();
    assert!(!out.stderr.contains("warning: identity"), "{}", out.stderr);
}
