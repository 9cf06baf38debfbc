"""Shared fixtures: the chapter list, a temporary nbgrader course, notebooks executed once."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convae import config
from convae.book import chapters

ROOT = Path(__file__).resolve().parents[1]
# Namespaces and a separate user need root (CI runs as root). Elsewhere the run still grades, says
# "WEAKER than designed" in its log, and the checks of the confinement itself are skipped; under CI
# (CI=true) they run and fail instead: a sandbox that CI cannot build is a failure, not a skip.
needs_root = pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",
                                reason="the full sandbox needs root (namespaces, a separate user)")
CHAPTERS = chapters(ROOT)
# Every notebook the tests execute (nbclient, nbgrader, the grader) inherits this process's
# environment: Keras reports a line per epoch there, never a progress bar in stored outputs.
os.environ[config.PROGRESS_ENV] = config.headless_progress()


def notebook_path(folder: str, chapter: str) -> Path:
    return ROOT / folder / chapter / f"{chapter}.ipynb"


def run(cmd, cwd, env=None, timeout=1200):
    """Run a command; on failure, show its output in the test report."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    """A private copy of the course (config, solutions, hidden-check specs) for nbgrader runs.

    nbgrader writes a gradebook and working folders; doing that in a copy keeps the repository's
    own grading/ untouched and the tests independent of what an instructor has there.
    """
    dest = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", dest)
    shutil.copytree(ROOT / "solutions", dest / "solutions")
    shutil.copytree(ROOT / "grading" / "checks", dest / "grading" / "checks")
    return dest


NBGRADER = [sys.executable, "-m", "nbgrader"]


def course_env(course: Path) -> dict:
    # nbgrader runs `alembic` from PATH: put this environment's bin folder first
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, CONVAE_FAST="1", CONVAE_COURSE_ROOT=str(course), PATH=path)


@pytest.fixture(scope="session")
def released(course) -> dict:
    """`nbgrader generate_assignment` of every chapter in the private course: {chapter: path}."""
    paths = {}
    for chapter in CHAPTERS:
        run([*NBGRADER, "generate_assignment", chapter, "--force", "--log-level=WARN"], course, course_env(course))
        paths[chapter] = course / "notebooks" / chapter / f"{chapter}.ipynb"
    return paths


_executed: dict = {}
#: chapter -> what its fast-mode run reported with convae.bench.record (filled by `executed`)
RECORDED: dict = {}


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """Execute a solution notebook once per session, in fast mode: executed(chapter) -> notebook.

    The contract test and the book build share the run (the book needs outputs anyway); the
    metrics the chapter records land in RECORDED[chapter], as `make bench` would collect them.
    """
    import json

    from convae.bench import METRICS_ENV
    from convae.book import execute_chapter

    def get(chapter: str):
        if chapter not in _executed:
            metrics = tmp_path_factory.mktemp("metrics") / f"{chapter}.jsonl"
            os.environ[METRICS_ENV] = str(metrics)  # the kernel inherits it
            try:
                _executed[chapter] = execute_chapter(chapter, ROOT)
            finally:
                del os.environ[METRICS_ENV]
            lines = metrics.read_text().splitlines() if metrics.exists() else []
            RECORDED[chapter] = {k: v for line in lines for k, v in json.loads(line).items()}
        return _executed[chapter]

    return get
