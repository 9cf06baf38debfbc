"""convae.grading.exchange.SafeCollect against nbgrader 0.9.6's own collect, on one hostile inbound.

No Hub needed: the inbound folder is built by hand, as root (every entry owned by root, so the
student whose name the folders carry is "root"). nbgrader's collect follows a planted link (the
solution arrives as the student's notebook) and one 2 GB file stops the whole batch; SafeCollect
refuses each with a line and collects everybody else.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convae.grading.exchange import copy_regular

CHAPTER = "01-pixels"
TS = "2026-12-01 10:00:00.000000 UTC"
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


@pytest.fixture
def exchange(tmp_path):
    """An exchange whose inbound holds: root's honest submission (a notebook and nbgrader's two
    files), root's later one with a link to a secret, a 2 GB sparse file, a fifo and a hard link;
    and a folder named after a user who does not own it."""
    secret = tmp_path / "solutions.ipynb"
    secret.write_text('{"secret": "the solution"}')
    inbound = tmp_path / "exchange" / "convae" / "inbound"
    inbound.mkdir(parents=True)
    honest = inbound / f"daemon+{CHAPTER}+{TS}+aaaa"  # a folder that claims to be daemon's
    honest.mkdir()
    (honest / f"{CHAPTER}.ipynb").write_text(NOTEBOOK)
    hostile = inbound / f"root+{CHAPTER}+{TS}+bbbb"
    hostile.mkdir()
    (hostile / f"{CHAPTER}.ipynb").symlink_to(secret)
    (hostile / "timestamp.txt").write_text(TS)
    (hostile / "submission_secret.txt").write_text("s3cret")
    with open(hostile / "big.ipynb", "wb") as fh:
        fh.truncate(2 * 10**9 + 1)
    os.mkfifo(hostile / "pipe.ipynb")
    os.link(secret, hostile / "hard.ipynb")
    (hostile / "sub").mkdir()
    (hostile / "sub" / "ok.ipynb").write_text(NOTEBOOK)
    (hostile / "linked-folder").symlink_to(tmp_path, target_is_directory=True)
    course = tmp_path / "course"
    course.mkdir()
    return tmp_path, course


def collect(tmp_path, course, factory=None):
    args = [sys.executable, "-m", "nbgrader", "collect", CHAPTER, f"--Exchange.root={tmp_path / 'exchange'}",
            "--CourseDirectory.course_id=convae", f"--CourseDirectory.root={course}", "--debug"]
    if factory:
        args.append(f"--ExchangeFactory.collect={factory}")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # nbgrader runs alembic
    return subprocess.run(args, cwd=course, capture_output=True, text=True, timeout=300, env=dict(os.environ, PATH=path))


def test_plain_nbgrader_collect_is_stopped_by_one_big_file(exchange):
    tmp_path, course = exchange
    proc = collect(tmp_path, course)
    assert proc.returncode != 0
    assert "Directory size is too big" in proc.stderr + proc.stdout


def test_plain_nbgrader_collect_follows_a_planted_link(exchange):
    tmp_path, course = exchange
    hostile = tmp_path / "exchange" / "convae" / "inbound" / f"root+{CHAPTER}+{TS}+bbbb"
    (hostile / "big.ipynb").unlink()
    (hostile / "pipe.ipynb").unlink()
    (hostile / "linked-folder").unlink()  # copytree would follow it into the course it writes: no end
    proc = collect(tmp_path, course)
    assert proc.returncode == 0, proc.stderr
    collected = course / "submitted" / "root" / CHAPTER / f"{CHAPTER}.ipynb"
    assert not collected.is_symlink() and "the solution" in collected.read_text()


def test_safe_collect_refuses_each_and_collects_the_rest(exchange):
    tmp_path, course = exchange
    proc = collect(tmp_path, course, "convae.grading.exchange.SafeCollect")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    got = course / "submitted" / "root" / CHAPTER
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*")) == [
        "sub", "sub/ok.ipynb", "submission_secret.txt", "timestamp.txt"]
    assert not any("the solution" in p.read_text() for p in got.rglob("*") if p.is_file())
    for line in (f"root+{CHAPTER}+{TS}+bbbb/{CHAPTER}.ipynb: a symbolic link, not followed",
                 "big.ipynb: too large, 2,000,000,001 bytes",
                 "pipe.ipynb: a fifo, not followed",
                 "hard.ipynb: a hard link, one of 2 names of one file",
                 "linked-folder: a symbolic link, not followed",
                 f"daemon+{CHAPTER}+{TS}+aaaa (named after daemon but owned by root)"):
        assert line in log, (line, log)
    assert not (course / "submitted" / "daemon").exists()


def test_copy_regular_caps_a_submission_at_max_dir_size(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.ipynb", "b.ipynb", "c.ipynb"):
        (src / name).write_bytes(b"x" * 600)
    refused = copy_regular(str(src), str(tmp_path / "dest"), max_file_bytes=1000, max_dir_bytes=1300)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["a.ipynb", "b.ipynb"]
    assert refused == ["c.ipynb: not collected, the submission would pass 1,300 bytes (CourseDirectory.max_dir_size)"]


def test_copy_regular_refuses_a_linked_submission_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(OSError):
        copy_regular(str(tmp_path / "link"), str(tmp_path / "dest"))
