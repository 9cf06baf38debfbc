"""The cluster tests (``make test-cluster``): a real JupyterHub with nbgrader's exchange, a real Slurm.

They start system services, create system users and need root, so plain ``make test`` (pytest's
testpaths = tests) does not collect them: only a run that names this folder does.
"""
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "grading" / "cluster"))  # hub.py, slurm.py, reach.py


def pytest_ignore_collect(collection_path, config):
    """Collected only when this folder (or a file in it) is named on the command line."""
    named = [Path(a.split("::")[0]).resolve() for a in config.args]
    if any(p == HERE or HERE in p.parents for p in named):
        return None
    return True


@pytest.fixture(autouse=True)
def _root_only():
    if os.geteuid() != 0:
        pytest.fail("the cluster tests create system users and start services: run them as root (CI does)")
