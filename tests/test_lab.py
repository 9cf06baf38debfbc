"""A real JupyterLab, started as `make lab` starts it, runs nbgrader's Validate on a chapter."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import CHAPTERS, ROOT

pytestmark = pytest.mark.slow
TOKEN = "convae-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_jupyterlab(base: str, proc, seconds: float, what: str = "JupyterLab"):
    """Return once the server at ``base`` answers; fail if ``proc`` exits first or time runs out."""
    for _ in range(int(seconds * 2)):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            return
        except OSError:
            assert proc.poll() is None, f"{what} exited with {proc.returncode}"
            time.sleep(0.5)
    pytest.fail(f"{what} did not answer within {seconds:.0f} s")


@pytest.fixture(scope="module")
def lab():
    port = free_port()
    jupyter = Path(sys.executable).with_name("jupyter")
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", "--allow-root", f"--ServerApp.root_dir={ROOT}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, CONVAE_FAST="1"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_jupyterlab(base, proc, seconds=60)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def validate(base: str, path: str) -> dict:
    request = urllib.request.Request(
        f"{base}/assignments/validate", data=urllib.parse.urlencode({"path": path}).encode(),
        headers={"Authorization": f"token {TOKEN}"}, method="POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        reply = json.loads(response.read())
    assert reply["success"], reply["value"]
    return reply["value"]


def test_lab_serves_the_course_with_the_nbgrader_extension(lab):
    page = urllib.request.urlopen(f"{lab}/lab?token={TOKEN}", timeout=10).read().decode()
    assert "JupyterLab" in page
    extensions = json.loads(urllib.request.urlopen(f"{lab}/lab/api/extensions?token={TOKEN}", timeout=10).read())
    assert "jupyter-nbgrader" in [e["name"] for e in extensions]


def graded_cells(chapter: str) -> int:
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / chapter / f"{chapter}.ipynb", as_version=4)
    return sum(1 for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_validate_lists_every_unsolved_exercise_in_plain_words(lab, chapter):
    result = validate(lab, f"notebooks/{chapter}/{chapter}.ipynb")
    failed = result.get("failed", [])
    assert len(failed) == graded_cells(chapter), [f["raw_error"] for f in failed]
    # Check failures are wrapped for the Validate dialog (convae.checks), so words are compared, not lines.
    assert all("is not written yet" in " ".join(f["raw_error"].split()) for f in failed), \
        [f["raw_error"] for f in failed]


# Two chapters, a NumPy one and the first with Keras models judged on a rebuilt copy: that every
# solution passes all its checks is test_chapters' autograde of each (its full marks); here it is
# the lab's Validate button that is tested, and each solved chapter took up to a minute more.
@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c[:2] in ("01", "04")])
def test_validate_passes_a_solved_notebook(lab, chapter):
    result = validate(lab, f"solutions/{chapter}/{chapter}.ipynb")
    assert not result.get("failed") and not result.get("changed"), result
