"""A real JupyterHub on localhost with nbgrader's exchange, for a class of one instructor and three students.

``python grading/cluster/hub.py up STATE`` creates the system users (``useradd``, idempotent), the
exchange folder with the permissions nbgrader documents, the instructor's course folder, the Hub's
config, and starts JupyterHub (PyPI ``jupyterhub``, pinned in requirements-cluster.txt) with npm's
``configurable-http-proxy`` (grading/cluster/node_modules); ``down STATE`` stops it. tests/cluster/
test_hub.py drives the class through it (grading/README.md, "A real class, end to end").

Needs root: the Hub spawns each user's server as that user, and users are created.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = ROOT / ".venv"
PROXY = HERE / "node_modules" / ".bin" / "configurable-http-proxy"
COURSE_ID = "convae"
INSTRUCTOR = "cvinstructor"
STUDENTS = ("cvalice", "cvbob", "cvmallory")
#: the Hub's token for the course's admin service (the test's REST calls)
SERVICE = "course-admin"

EXCHANGE_CONFIG = '''\
# nbgrader's exchange for this Hub (every user's nbgrader reads it: JUPYTER_CONFIG_PATH).
# On a real Hub these lines go in /etc/jupyter/nbgrader_config.py.
c = get_config()  # noqa: F821
c.Exchange.root = {exchange!r}
c.CourseDirectory.course_id = {course!r}
# (the course's own nbgrader_config.py picks its collect, convae.grading.exchange.SafeCollect)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MARKER = ".convae-cluster-user"


def ensure_user(name: str) -> pwd.struct_passwd:
    """A local system user with a fresh, empty home (mode 700): created if missing (``useradd``),
    its home emptied if this script created it before (a marker file says so); a user of the same
    name that this script did not create is left alone, and the run stops."""
    try:
        info = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
        info = pwd.getpwnam(name)
        (Path(info.pw_dir) / MARKER).touch()
    home = Path(info.pw_dir)
    if not (home / MARKER).exists():
        raise SystemExit(f"user {name} exists and was not made by {__file__}: not touching their home")
    for entry in home.iterdir():  # last term's files, caches and Jupyter state
        if entry.name != MARKER:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    home.chmod(0o700)
    return info


def user_env(name: str, state: Path) -> dict:
    info = pwd.getpwnam(name)
    return {"HOME": info.pw_dir, "USER": name, "LOGNAME": name, "SHELL": "/bin/bash",
            "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "JUPYTER_CONFIG_PATH": str(state / "etc" / "jupyter"), "CONVAE_FAST": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def as_user(name: str, cmd: list[str], state: Path, cwd: str | Path | None = None, check=True,
            timeout=300) -> subprocess.CompletedProcess:
    """Run ``cmd`` as the system user ``name`` (``runuser -u``), with a clean environment, in ``cwd``
    (default: their home)."""
    env = user_env(name, state)
    full = [str(VENV / "bin" / "python"), str(HERE / "reach.py"), "--", "runuser", "-u", name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()], *cmd]
    proc = subprocess.run(full, cwd=cwd or env["HOME"], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"as {name}: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


@dataclass
class Hub:
    state: Path
    url: str
    token: str
    exchange: Path
    course: Path  # the instructor's course folder

    def api(self, method: str, path: str, body=None, expect=(200, 201, 202, 204)):
        """One call to the Hub's REST API with the course's service token: the decoded JSON (or None)."""
        return self._call(method, f"/hub/api{path}", body, expect)

    def server(self, method: str, user: str, path: str, body=None, expect=(200, 201, 204)):
        """A call to ``user``'s own Jupyter server, through the Hub's proxy (the service token has
        access:servers)."""
        return self._call(method, f"/user/{user}/api{path}", body, expect)

    def _call(self, method: str, route: str, body, expect):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{route}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        assert status in expect, f"{method} {route}: HTTP {status}: {text[:500]}"
        return json.loads(text) if text.strip() else None

    def start_server(self, user: str, timeout=180):
        """Start ``user``'s server through the API and wait until the Hub says it is ready."""
        self.api("POST", f"/users/{user}/server", expect=(201, 202, 400))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}")
            server = model.get("servers", {}).get("", {})
            if server.get("ready"):
                return model
            time.sleep(1)
        raise AssertionError(f"{user}'s server did not become ready in {timeout} s:\n{self.log_tail()}")

    def stop_server(self, user: str):
        self.api("DELETE", f"/users/{user}/server", expect=(202, 204, 400))

    def log_tail(self, chars=4000) -> str:
        path = self.state / "jupyterhub.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no hub log)"


def prepare(state: Path) -> tuple[Path, Path]:
    """Users, the exchange, the exchange config and the instructor's course; returns (exchange, course)."""
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # users read the exchange config below it
    for name in (INSTRUCTOR, *STUDENTS):
        ensure_user(name)
    # nbgrader's documented exchange: a folder writable by everyone (mode 777); nbgrader's release
    # creates <course>/outbound (755), inbound (2733: write-only for students) and feedback (711)
    exchange = state / "exchange"
    exchange.mkdir(exist_ok=True)
    exchange.chmod(0o777)
    config_dir = state / "etc" / "jupyter"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "nbgrader_config.py").write_text(EXCHANGE_CONFIG.format(exchange=str(exchange), course=COURSE_ID))
    for folder in (state / "etc", config_dir):
        folder.chmod(0o755)
    (config_dir / "nbgrader_config.py").chmod(0o644)
    # the instructor's course folder: what a course repository checkout holds for nbgrader
    home = Path(pwd.getpwnam(INSTRUCTOR).pw_dir)
    course = home / COURSE_ID
    if course.exists():
        shutil.rmtree(course)
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for part in ("solutions", "notebooks", "grading/checks"):
        shutil.copytree(ROOT / part, course / part, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if (ROOT / "grading" / "limits.json").exists():
        shutil.copy(ROOT / "grading" / "limits.json", course / "grading")
    info = pwd.getpwnam(INSTRUCTOR)
    subprocess.run(["chown", "-R", f"{info.pw_uid}:{info.pw_gid}", str(course)], check=True)
    return exchange, course


def hub_config(state: Path, port: int, token: str) -> Path:
    users = [INSTRUCTOR, *STUDENTS]
    env = {k: v for k, v in user_env(INSTRUCTOR, state).items() if k not in ("HOME", "USER", "LOGNAME", "SHELL")}
    config = f'''\
import sys
sys.path.insert(0, {str(HERE)!r})
from jupyterhub.spawner import LocalProcessSpawner
import reach


class CourseSpawner(LocalProcessSpawner):
    """Each user's server as that user, in a mount namespace where the course's Python is
    reachable (reach.py: it lives under /root here)."""

    def make_preexec_fn(self, name):
        drop = super().make_preexec_fn(name)

        def preexec():
            reach.enter()
            drop()
        return preexec


c = get_config()  # noqa: F821
c.JupyterHub.spawner_class = CourseSpawner
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.ConfigurableHTTPProxy.pid_file = {str(state / "proxy.pid")!r}
c.JupyterHub.db_url = "sqlite:///{state / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(state / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(state / "jupyterhub.pid")!r}
# nobody logs in through a browser here: the test drives the Hub with a service token
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {secrets.token_hex(16)!r}
c.Authenticator.allowed_users = {set(users)!r}
c.Authenticator.admin_users = {{{INSTRUCTOR!r}}}
c.JupyterHub.services = [{{"name": {SERVICE!r}, "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": {SERVICE!r}, "services": [{SERVICE!r}],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}}]
# each user's server runs as that system user (LocalProcessSpawner), from the course's venv
c.Spawner.cmd = [{str(VENV / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.environment = {env!r}
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.cleanup_servers = True
'''
    path = state / "jupyterhub_config.py"
    path.write_text(config)
    path.chmod(0o600)
    return path


def up(state: Path) -> Hub:
    """Prepare everything and start the Hub; returns once its API answers."""
    assert os.geteuid() == 0, "the Hub spawns servers as other users and creates them: run as root"
    assert PROXY.exists(), f"{PROXY} is missing: `make test-cluster` installs it (npm install in grading/cluster)"
    exchange, course = prepare(state)
    port, token = free_port(), secrets.token_hex(32)
    config = hub_config(state, port, token)
    log = open(state / "jupyterhub.log", "ab")
    proc = subprocess.Popen([str(VENV / "bin" / "jupyterhub"), "-f", str(config)], cwd=state,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ.get('PATH', '')}"))
    (state / "hub.pgid").write_text(str(proc.pid))
    hub = Hub(state=state, url=f"http://127.0.0.1:{port}", token=token, exchange=exchange, course=course)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterHub exited ({proc.returncode}):\n{hub.log_tail()}")
        try:
            hub.api("GET", "/")
            return hub
        except (OSError, AssertionError):
            time.sleep(1)
    raise AssertionError(f"JupyterHub did not answer in 120 s:\n{hub.log_tail()}")


def down(state: Path, users=(INSTRUCTOR, *STUDENTS)) -> None:
    """Stop the Hub, its proxy and every user's server (the Hub's process group, then the users')."""
    pgid_file = state / "hub.pgid"
    if pgid_file.exists():
        pgid = int(pgid_file.read_text())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            for _ in range(20):
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
        pgid_file.unlink()
    import psutil

    uids = set()
    for name in users:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            pass
    # servers left behind (the Hub stops them on SIGTERM; they run in sessions of their own), by pid
    left = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real in uids]
    for proc in left:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: hub.py up|down STATE_DIR", file=sys.stderr)
        return 2
    state = Path(argv[1]).resolve()
    if argv[0] == "up":
        hub = up(state)
        (state / "hub.json").write_text(json.dumps({"url": hub.url, "token": hub.token}))
        print(f"JupyterHub at {hub.url}; service token in {state / 'hub.json'}; stop: hub.py down {state}")
    else:
        down(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
