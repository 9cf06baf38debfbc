"""Where notebooks write their files, and what a release folder may hold (convae.paths).

The end-to-end check (a chapter run in place, then released) is in tests/test_chapters.py.
"""
from __future__ import annotations

import json

import pytest

from convae.paths import prune_release, work_dir


def test_work_dir_is_per_user_and_per_chapter_and_outside_the_course(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVAE_WORK_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # as in the grading sandbox: HOME is the job's folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "the-graders-cache"))  # not read
    assert work_dir("04-mlp-vs-cnn") == tmp_path / "home" / ".cache" / "convae" / "04-mlp-vs-cnn"
    assert (tmp_path / "home" / ".cache" / "convae" / "04-mlp-vs-cnn").is_dir(), "created on demand"
    monkeypatch.setenv("CONVAE_WORK_DIR", str(tmp_path / "scratch"))
    assert work_dir("04-mlp-vs-cnn") == tmp_path / "scratch" / "04-mlp-vs-cnn"
    for bad in ("../solutions", "04-mlp-vs-cnn/..", "/etc"):
        with pytest.raises(ValueError, match="is not a chapter id"):
            work_dir(bad)


def test_a_release_keeps_its_notebook_and_listed_assets_only(tmp_path):
    folder = tmp_path / "04-mlp-vs-cnn"
    (folder / "figures" / "old").mkdir(parents=True)
    notebook = {"cells": [], "metadata": {"convae": {"assets": ["figures/*.png"]}}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "04-mlp-vs-cnn.ipynb").write_text(json.dumps(notebook))
    for name in ("best_mlp.keras", "figures/diagram.png", "figures/old/model.h5", "cache.npz"):
        (folder / name).write_bytes(b"x")
    (folder / "link.ipynb").symlink_to(tmp_path)
    assert prune_release(folder) == ["best_mlp.keras", "cache.npz", "figures/old/model.h5", "link.ipynb"]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "04-mlp-vs-cnn.ipynb", "figures", "figures/diagram.png"]
