"""The three ways to install the course agree: requirements.txt, environment.yml, binder/."""
from pathlib import Path

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
    assert "make test" in readme and "make lab" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"
