"""Where notebooks write files, and what a chapter's release folder may hold.

A chapter folder holds its notebook and nothing else: nbgrader's ``generate_assignment`` copies
every other file it finds there into the student release (``CourseDirectory.include`` is read only
by the exchange), so a notebook that saved its trained models next to itself — as chapter 04's
checkpoints did when ``make book`` ran it in place — would hand them out with the next release.

* :func:`work_dir` is the one place notebooks write checkpoints and caches: ``$CONVAE_WORK_DIR/<chapter>``
  or ``~/.cache/convae/<chapter>``, created on demand. On Binder and JupyterHub that is the
  user's own home; in the grading sandbox ``HOME`` is the job's private folder, so a graded run
  writes there and nowhere else. ``XDG_CACHE_HOME`` is deliberately not read: the sandbox gives
  the kernel its own ``HOME`` but would pass that variable on from the grader, pointing at a
  folder the kernel may not write.
* :func:`release_only_notebooks` is ``GenerateAssignment.post_convert_hook`` in ``nbgrader_config.py``:
  after a release it removes whatever is not a notebook or an asset the chapter lists
  (``"convae": {"assets": [...]}`` in the notebook's metadata), and says what it removed.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from pathlib import Path

ENV_VAR = "CONVAE_WORK_DIR"
_CHAPTER = re.compile(r"^[0-9]{2}-[a-z0-9-]+$")


def work_dir(chapter: str) -> Path:
    """The folder where ``chapter``'s notebook writes checkpoints and caches (created if missing).

    Files in it belong to the last run of the chapter: the next run overwrites them.
    """
    if not _CHAPTER.match(chapter):
        raise ValueError(f"{chapter!r} is not a chapter id (like '04-mlp-vs-cnn')")
    base = os.environ.get(ENV_VAR) or Path.home() / ".cache" / "convae"
    folder = Path(base) / chapter
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def listed_assets(folder: Path) -> list[str]:
    """The file globs the chapter's notebooks list in their metadata under ``convae.assets``."""
    globs = []
    for notebook in sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink()):
        globs += json.loads(notebook.read_text()).get("metadata", {}).get("convae", {}).get("assets", [])
    return globs


def prune_release(folder: Path) -> list[str]:
    """Remove from a release folder everything but its notebooks and listed assets; return what went."""
    assets = listed_assets(folder)
    removed = []
    for path in sorted(folder.rglob("*"), reverse=True):  # files before the folders that hold them
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
            continue
        notebook = path.suffix == ".ipynb" and path.parent == folder and not path.is_symlink()
        if notebook or (not path.is_symlink() and any(fnmatch.fnmatch(rel, g) for g in assets)):
            continue
        path.unlink()
        removed.append(rel)
    return sorted(removed)


def release_only_notebooks(release_root: str | Path):
    """A ``post_convert_hook`` for ``GenerateAssignment`` that prunes ``release_root/<assignment>``."""
    def hook(assignment: str, student: str, notebooks: list) -> None:
        folder = Path(release_root) / assignment
        removed = prune_release(folder) if folder.is_dir() else []
        if removed:
            print(f"[convae] not released from {assignment}: {', '.join(removed)} (not a notebook; a file "
                  "the chapter needs goes in its notebook's metadata under convae.assets)", file=sys.stderr)
    return hook
