"""Benchmark: a push through a real git server, with bulwark's server hooks vs none.

Apache 2.4 (mpm_prefork, mod_cgi) runs `git-http-backend` with basic auth on 127.0.0.1, as
in tests/real_servers.rs. Each round pushes a fast-forward of 1,000 new commits to `main`
(protected: identity check, merge-base in the quarantine, post-receive journal) as
`merger-bot` into a fresh copy of a small bare repository (copy and chown inside the timing
for both variants). Runs are interleaved; medians and the ratio are printed.

Needs root (Apache switches to www-data) and `apt-get install apache2`.

    python3 benches/server_push_http.py [--rounds N]
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402
from server_push import fast_import_commits  # noqa: E402

MODULES = ["mpm_prefork", "authz_core", "authn_core", "authn_file", "auth_basic", "authz_user", "alias", "cgi", "env"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_apache(box: Path, root: Path) -> tuple:
    conf_dir = box / "apache"
    (conf_dir / "run").mkdir(parents=True)
    (conf_dir / "empty").mkdir()
    password = subprocess.run(["openssl", "passwd", "-apr1", "pw"], check=True, capture_output=True, text=True)
    (conf_dir / "htpasswd").write_text(f"merger-bot:{password.stdout.strip()}\n")
    port = free_port()
    modules = "".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n" for m in MODULES)
    (conf_dir / "httpd.conf").write_text(f"""{modules}ServerName 127.0.0.1
ServerRoot {conf_dir}
Listen 127.0.0.1:{port}
PidFile {conf_dir}/run/httpd.pid
DefaultRuntimeDir {conf_dir}/run
Mutex file:{conf_dir}/run
ErrorLog {conf_dir}/error.log
User www-data
Group www-data
DocumentRoot {conf_dir}/empty
SetEnv GIT_PROJECT_ROOT {root}
SetEnv GIT_HTTP_EXPORT_ALL 1
ScriptAlias /git/ /usr/lib/git-core/git-http-backend/
<Location /git/>
    AuthType Basic
    AuthName "git"
    AuthUserFile {conf_dir}/htpasswd
    Require valid-user
</Location>
""")
    proc = subprocess.Popen(["/usr/sbin/apache2", "-f", str(conf_dir / "httpd.conf"), "-DFOREGROUND"],
                            env={"PATH": os.environ["PATH"]}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    sys.exit(f"apache did not start: {(conf_dir / 'error.log').read_text()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0 or not Path("/usr/sbin/apache2").exists():
        sys.exit("error: run as root with apache2 installed (apt-get install apache2)")
    common.build_release()
    box = common.sandbox("bulwark-bench-http-")
    box.chmod(0o755)
    env = common.hermetic_env(box)
    root = box / "srv-git"
    root.mkdir()

    work = box / "work"
    common.git(env, box, "init", "-q", "-b", "main", str(work))
    (work / "README").write_text("x\n")
    common.git(env, work, "add", "README")
    common.git(env, work, "commit", "-q", "-m", "base")
    base = common.git(env, work, "rev-parse", "HEAD").stdout.strip()

    templates = {}
    for name in ["plain", "guarded"]:
        t = box / f"{name}-template.git"
        common.git(env, box, "init", "-q", "--bare", "-b", "main", str(t))
        common.git(env, work, "push", "-q", str(t), "main")
        if name == "guarded":
            (t / "bulwark.toml").write_text('[server]\nallow = ["merger-bot"]\n')
            subprocess.run([str(common.RELEASE / "bulwark"), "install", "--repo", str(t), "--role", "server"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
        templates[name] = t
    fast_import_commits(env, work, "main", 1_000, base)

    proc, port = start_apache(box, root)
    counter = [0]

    def push(template: Path):
        def run():
            counter[0] += 1
            name = f"target-{counter[0]}.git"
            target = root / name
            shutil.copytree(template, target, symlinks=True)
            subprocess.run(["chown", "-R", "www-data:www-data", str(target)], check=True)
            url = f"http://merger-bot:pw@127.0.0.1:{port}/git/{name}"
            subprocess.run(["git", "push", "-q", url, "main"], cwd=work, env=env, check=True,
                           stderr=subprocess.DEVNULL)
            shutil.rmtree(target)
        return run

    try:
        times = common.interleaved(
            {"without hook": push(templates["plain"]), "with bulwark": push(templates["guarded"])},
            args.rounds, warmup=1)
        common.report("push of 1,000 commits to main through Apache + git-http-backend", times,
                      [("with / without", "with bulwark", "without hook", ("≤", 1.3, lambda r: r <= 1.3))],
                      "python3 benches/server_push_http.py")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        shutil.rmtree(box, ignore_errors=True)


if __name__ == "__main__":
    main()
