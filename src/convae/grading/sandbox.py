"""Start a student's Jupyter kernel inside a sandbox made of what the OS gives (no Docker).

nbgrader starts kernels from a kernelspec; the grading worker writes one whose command is
``python -m convae.grading.sandbox POLICY.json -- python -m ipykernel_launcher -f {connection_file}``.
This module then, before it ``exec``s the kernel:

==============================  ==================================================================
measure                         what it guards against
==============================  ==================================================================
network namespace (unshare)     any network: no interface is up, not even loopback. The kernel
                                talks to nbgrader over unix sockets (ZMQ ``ipc`` transport).
mount namespace + empty tmpfs   reading the solutions, hidden-check specs, the repository's git
over secret folders             history or gradebook: those paths look empty from inside. /tmp,
                                /var/tmp and /dev/shm become private and empty, so the only
                                shared place the kernel can write is its own folder.
a user id of its own            writing anywhere but its own folder, reading other students'
(one per job, no passwd entry)  folders or the job's gradebook (root-only, mode 700), signalling
                                or tracing the grader's processes.
rlimits                         CPU time (RLIMIT_CPU), memory (RLIMIT_AS), size of any file written
                                (RLIMIT_FSIZE), fork bombs (RLIMIT_NPROC, counted per user id),
                                core dumps.
its own HOME and cwd            caches and config written by matplotlib, IPython or Keras stay in
                                the job's folder.
==============================  ==================================================================

The judge's sandboxed side (:mod:`convae.grading.judge_sandbox`) enters the same sandbox with a
policy derived from the kernel's: its own folder and user id, and its stdin/stdout kept for the
judge's protocol (``"stdio": "keep"``); no ``-f`` connection file.

Wall time and output size are limited by the worker (a timeout on the nbgrader process, and a
per-cell output cap in :mod:`convae.nbgrader_hooks`). Namespaces and a new user id need root; without
it :func:`capabilities` says what is missing and the run log states it at the top, so a weaker
sandbox is never a silent one.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import stat
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None), f"mount {target}")


def use_this_environment() -> None:
    """Put this interpreter's bin folder first on PATH: nbgrader runs `alembic` from PATH, and
    the grader may be started as `.venv/bin/python -m ...` without an activated environment."""
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def blocked_ancestor(path: str) -> str | None:
    """The first folder on the way to ``path`` (not ``path`` itself) that other users cannot pass
    through (no o+x)."""
    parts = Path(path).resolve().parts
    for i in range(2, len(parts)):
        folder = os.path.join(*parts[:i])
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


#: world-writable folders: each gets a private, empty tmpfs, so "writable" means "the kernel's own"
SHARED_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def cover_and_keep(keep: list[str]) -> None:
    """Cover folders the kernel must not use, keeping the paths it needs visible inside them.

    Covered: each folder that blocks the way to a kept path (the interpreter may live in a private
    home, here /root/.pyenv under /root, mode 700) gets an empty tmpfs (mode 711) with only the kept
    paths bound back; each shared scratch folder (/tmp, ...) gets a private empty tmpfs, with the
    kept paths under it (the job's own folder lives in /tmp) bound back.
    """
    keep = [str(Path(p).resolve()) for p in dict.fromkeys(keep)]
    covers = {b: "mode=711,size=64k" for b in filter(None, map(blocked_ancestor, keep))}
    for scratch in SHARED_SCRATCH:
        if os.path.isdir(scratch):
            covers.setdefault(scratch, "mode=1777,size=256m")
    # a cover inside another is already hidden by the outer one (and would no longer exist)
    covers = {c: o for c, o in covers.items()
              if not any(c != other and c.startswith(other.rstrip("/") + "/") for other in covers)}
    under = sorted(((path, cover) for path in keep for cover in covers
                    if path == cover or path.startswith(cover.rstrip("/") + "/")), key=lambda pc: len(pc[0]))
    # Hold each kept folder by a file descriptor: once its parent is covered, /proc/self/fd/N
    # still names it, and it is bound back from there.
    held = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path, _ in under}
    for cover in sorted(covers, key=len):
        mount("tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, covers[cover])
    for path, cover in under:
        os.makedirs(path, exist_ok=True)
        folder = Path(path)
        while str(folder) != cover:  # passable, not listable, whatever the umask was
            os.chmod(folder, 0o711)
            folder = folder.parent
        mount(f"/proc/self/fd/{held[path]}", path, None, MS_BIND | MS_REC)
    for fd in held.values():
        os.close(fd)


def capabilities() -> dict:
    """Which isolation measures this machine allows, tried in a throwaway child process."""
    result = {"rlimits": True, "separate_user": os.geteuid() == 0}
    pid = os.fork()
    if pid == 0:  # child: try the namespaces, report through the exit code
        code = 0
        try:
            unshare(CLONE_NEWNET)
        except OSError:
            code |= 1
        try:
            unshare(CLONE_NEWNS)
            mount("none", "/", None, MS_REC | MS_PRIVATE)
        except OSError:
            code |= 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    result["network_namespace"] = not code & 1
    result["mount_namespace"] = not code & 2
    return result


def describe(caps: dict) -> str:
    missing = [name for name, ok in caps.items() if not ok]
    if not missing:
        return "sandbox: network namespace, mount namespace, separate user, rlimits - all active"
    return (f"sandbox: WEAKER than designed, missing {', '.join(missing)} (needs root and "
            "unshare); student code can then read what this user can read" +
            (" and reach the network" if "network_namespace" in missing else ""))


def enter(policy: dict) -> None:
    """Apply the policy to this process (called as root where possible), in a safe order."""
    home = Path(policy["home"])
    if policy.get("namespaces", True):
        if policy["caps"].get("network_namespace"):
            unshare(CLONE_NEWNET)
        if policy["caps"].get("mount_namespace"):
            unshare(CLONE_NEWNS)
            mount("none", "/", None, MS_REC | MS_PRIVATE)
            cover_and_keep(policy.get("keep", []))
            for path in policy.get("hide", []):
                if os.path.isdir(path):
                    mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
    limits = {
        resource.RLIMIT_CPU: policy["cpu_seconds"],
        resource.RLIMIT_AS: policy["memory_bytes"],
        resource.RLIMIT_FSIZE: policy["file_bytes"],
        resource.RLIMIT_CORE: 0,
    }
    if policy["caps"].get("separate_user"):
        limits[resource.RLIMIT_NPROC] = policy["nproc"]
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
    if policy["caps"].get("separate_user"):
        os.setgroups([])
        os.setgid(policy["gid"])
        os.setuid(policy["uid"])
    os.chdir(home)


def kernel_env(policy: dict) -> dict:
    home = policy["home"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVAE_COURSE_ROOT", "JPY_", "NBGRADER_DB"))}
    env.update(HOME=home, MPLCONFIGDIR=f"{home}/.config/matplotlib", IPYTHONDIR=f"{home}/.ipython",
               JUPYTER_RUNTIME_DIR=f"{home}/.runtime", XDG_CACHE_HOME=f"{home}/.cache",
               KERAS_HOME=f"{home}/.keras", TMPDIR=f"{home}/.tmp", PYTHONDONTWRITEBYTECODE="1")
    return env


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    policy = json.loads(Path(argv[0]).read_text())
    command = argv[argv.index("--") + 1:]
    home = Path(policy["home"])
    if "-f" in command:
        # The connection file is the grader's (mode 600); hand the kernel its own copy.
        index = command.index("-f") + 1
        own = home / ".runtime" / Path(command[index]).name
        own.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(command[index], own)
        if policy["caps"].get("separate_user"):
            for path in (own, own.parent):
                os.chown(path, policy["uid"], policy["gid"])
        command[index] = str(own)
    env = kernel_env(policy)
    # The kernel's own stdout/stderr (its banner, C-level noise) go to a file in its folder, not
    # into the grader's output; what cells print still reaches nbgrader through ZMQ. The judge's
    # sandboxed side (policy "stdio": "keep") speaks its protocol on stdin/stdout: only stderr goes.
    log = os.open(home / policy.get("log", ".kernel.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if policy["caps"].get("separate_user"):
        os.fchown(log, policy["uid"], policy["gid"])
    if policy.get("stdio") != "keep":
        os.dup2(log, 1)
    os.dup2(log, 2)
    enter(policy)
    for folder in (".tmp", ".config/matplotlib", ".ipython", ".cache"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    os.execve(command[0], command, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
