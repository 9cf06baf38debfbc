"""The three ways to install the course agree: requirements.txt, environment.yml, binder/."""
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> set[str]:
    lines = [ln.strip().lstrip("- ").strip() for ln in path.read_text().splitlines()]
    return {ln for ln in lines if "==" in ln and not ln.startswith("#")}


def test_conda_and_binder_environments_use_the_same_pins_as_requirements():
    reference = pins(ROOT / "requirements.txt")
    assert {"tensorflow-cpu==2.21.0", "keras==3.15.1", "nbgrader==0.9.6"} <= reference
    assert pins(ROOT / "environment.yml") == reference
    assert pins(ROOT / "binder" / "environment.yml") == reference
    assert "python=3.11" in (ROOT / "environment.yml").read_text()
    assert "-e ." in (ROOT / "environment.yml").read_text(), "conda users get the helper package too"
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test +# .*runs the whole test suite", readme, re.M), "the README's first command"
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert commands == ["make test", "make test-cluster"], "CI runs the README's test command, then the cluster class"
    assert dry_run("test").splitlines()[-1].startswith("CONVAE_FAST=1 .venv/bin/python -m pytest"), \
        "make test is the whole suite in fast mode"


#: what each verb runs (its last command, as `make -n` prints it)
COMMANDS = {
    "setup": "", "data": ".venv/bin/python -m convae.data", "lab": ".venv/bin/jupyter lab",
    "test": "CONVAE_FAST=1 .venv/bin/python -m pytest", "release": "nbgrader generate_assignment",
    "book": ".venv/bin/python -m convae.book", "grade": ".venv/bin/python -m convae.grading.run",
    "limits": ".venv/bin/python -m convae.grading.limits", "check": "nbgrader validate",
    "bench": ".venv/bin/python -m convae.bench", "binder": ".venv/bin/python -m convae.binder",
}


def dry_run(verb: str, *args: str) -> str:
    # Under `make test` this runs inside make: a nested make would print "Entering directory" lines
    # (MAKELEVEL, MAKEFLAGS), so it is started as a top-level one.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    proc = subprocess.run(["make", "--no-print-directory", "-n", verb, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_make_verb_is_in_the_readme_and_runs_what_it_says():
    """The README documents exactly the Makefile's verbs, and each verb runs its module."""
    readme, makefile = (ROOT / "README.md").read_text(), (ROOT / "Makefile").read_text()
    verbs = set(re.search(r"^\.PHONY: (.*)$", makefile, re.M).group(1).split()) - {"help", "clean"}
    documented = set(re.findall(r"`make (\w+)", readme)) | set(re.findall(r"^make (\w+) ", readme, re.M))
    assert verbs == documented == set(COMMANDS), (verbs ^ documented) or (verbs ^ set(COMMANDS))
    for verb, command in COMMANDS.items():
        assert re.search(re.escape(command) + r"(\s|$)", dry_run(verb, "NOTEBOOK=x.ipynb"), re.M), verb


def test_make_check_without_a_notebook_says_how_to_call_it():
    proc = subprocess.run(["make", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "usage: make check NOTEBOOK=notebooks/01-pixels/01-pixels.ipynb" in proc.stdout


@pytest.mark.slow
def test_make_check_validates_a_students_notebook(tmp_path):
    """`make check` is nbgrader's Validate from a shell: two exercises of chapter 01 (its imports,
    a stand-in for the MNIST cell), one solved and one wrong, fail on the wrong one's cell alone, in words."""
    import nbformat

    from convae.grading.corpus import WRONG_NORMALISE, answer, load

    release, source = load("01-pixels")
    kept = {"normalise", "normalise_check", "flatten", "flatten_check"}
    cells = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") in kept]
    imports = next(c for c in release.cells if c.cell_type == "code")
    release.cells = [imports, nbformat.v4.new_code_cell("x_train = np.zeros((5, 28, 28), np.uint8)", id="mnist"), *cells]
    nbformat.write(answer(release, source, replace={"normalise": WRONG_NORMALISE}), tmp_path / "work.ipynb")
    proc = subprocess.run(["make", "check", f"NOTEBOOK={tmp_path / 'work.ipynb'}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, CONVAE_FAST="1"))
    words = " ".join((proc.stdout + proc.stderr).split())  # words: failures are wrapped for display
    assert "VALIDATION FAILED ON 1 CELL(S)!" in words, words[-2000:]
    assert "normalise([[0, 51, 255]]) returned dtype uint8, expected floating-point values" in words, words[-2000:]
