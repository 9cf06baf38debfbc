"""Let other users run the course's Python when it lives in a private folder (here /root/.pyenv).

``.venv/bin/python`` links to the interpreter it was made from; on this machine (and in CI) that is
pyenv's, under /root (mode 700), so a Hub user's server cannot start (``Permission denied:
.venv/bin/jupyterhub-singleuser``). On a real Hub, build the environment from a Python every user
can read (/usr/bin/python3.11, /opt/...). Here each user's process gets a mount namespace of its own
in which every folder blocking the way (/root) is covered by an empty tmpfs (mode 711) with only the
interpreter's folder bound back, as the grading sandbox does (:func:`convae.grading.sandbox.cover_and_keep`
also covers /tmp; this does not, the exchange lives there). Nothing else of /root becomes visible.

``python reach.py -- CMD...`` (as root): enter such a namespace and exec CMD (e.g. ``runuser -u ...``).
:func:`enter` is also the Hub's spawner hook (jupyterhub_config.py), run in the child before it
drops to the user.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from convae.grading.sandbox import (CLONE_NEWNS, MS_BIND, MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_REC,
                                    blocked_ancestor, mount, unshare)

ROOT = Path(__file__).resolve().parents[2]


def needed() -> list[str]:
    return [str(Path(p).resolve()) for p in (sys.base_prefix, sys.prefix, ROOT)]


def enter(keep: list[str] | None = None) -> None:
    """As root: a private mount namespace where every path in ``keep`` is reachable by all users."""
    keep = keep or needed()
    covers = sorted({b for b in map(blocked_ancestor, keep) if b}, key=len)
    if not covers:
        return
    unshare(CLONE_NEWNS)
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    held = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in keep
            if any(path.startswith(c.rstrip("/") + "/") for c in covers)}
    for cover in covers:
        mount("tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, "mode=711,size=64k")
    for path, fd in held.items():
        os.makedirs(path, exist_ok=True)
        cover = next(c for c in covers if path.startswith(c.rstrip("/") + "/"))
        folder = Path(path)
        while str(folder) != cover:
            os.chmod(folder, 0o711)
            folder = folder.parent
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "--" or len(args) < 2:
        print("usage: reach.py -- CMD...", file=sys.stderr)
        sys.exit(2)
    enter()
    os.execvp(args[1], args[1:])
