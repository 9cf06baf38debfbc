"""`make binder`'s parts: the environment it builds is binder/'s, and its memory cap kills a kernel
that goes over it and names the cell. The whole check (every chapter in full mode, about 45 minutes on
two cores) is `make binder`; its figures are in the README."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_binder_environment_is_made_from_binder_pins_and_its_python():
    from convae.binder import binder_pins, conda_python

    environment = ROOT / "binder" / "environment.yml"
    pins = binder_pins(environment)
    requirements = {line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                    if "==" in line and not line.lstrip().startswith("#")}
    assert set(pins) == requirements and len(pins) == len(requirements)
    assert conda_python(environment) == "3.11"


def test_binder_pins_without_a_pip_list_is_an_error_that_says_so(tmp_path):
    from convae.binder import binder_pins

    environment = tmp_path / "environment.yml"
    environment.write_text("name: x\ndependencies:\n  - python=3.11\n")
    with pytest.raises(ValueError, match="no '- pip:' list"):
        binder_pins(environment)


def write_chapter(root: Path, name: str, cells: list[str]) -> None:
    import nbformat

    folder = root / "solutions" / name
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nbformat.write(nb, folder / f"{name}.ipynb")
    (root / "bench").mkdir(exist_ok=True)


def test_a_kernel_over_the_memory_cap_is_killed_and_the_cell_named(tmp_path, monkeypatch):
    """A cell that holds 400 MB under a 250 MB cap: the kernel dies in that cell, as on Binder, and the
    error says which cell and how much; the cells before it ran."""
    from convae.bench import METRICS_ENV, MemoryLimitExceeded, run_chapter

    write_chapter(tmp_path, "00-hungry", [
        "import numpy as np\nsmall = np.ones(10)",
        "big = np.ones((400, 2**20 // 8))  # 400 MB, touched\nimport time\ntime.sleep(5)",
        "print('never')",
    ])
    monkeypatch.setenv(METRICS_ENV, "")
    with pytest.raises(MemoryLimitExceeded) as caught:
        run_chapter("00-hungry", tmp_path, tmp_path / "bench" / ".m.jsonl", memory_limit=250 * 2**20)
    message = str(caught.value)
    assert "00-hungry: the kernel reached" in message and "in cell 2 of 3" in message, message
    assert "over the limit of 250 MB, and was killed" in message, message
    reached = float(message.split("reached ")[1].split(" MB")[0].replace(",", ""))
    assert 250 < reached < 600, message


def test_a_kernel_under_the_cap_runs_to_the_end_with_its_python_named(tmp_path, monkeypatch):
    import sys

    from convae.bench import METRICS_ENV, run_chapter

    write_chapter(tmp_path, "00-light", ["import numpy as np\nx = np.ones((50, 2**20 // 8))", "print(x.sum())"])
    monkeypatch.setenv(METRICS_ENV, "")
    result = run_chapter("00-light", tmp_path, tmp_path / "bench" / ".m.jsonl", memory_limit=1024 * 2**20)
    assert 50 < result["peak_mb"] < 1024
    # the kernel is this interpreter's ipykernel: make binder runs from the Binder venv's python
    assert Path(result["kernel_python"]).resolve() == Path(sys.executable).resolve()
