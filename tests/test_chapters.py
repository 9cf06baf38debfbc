"""The chapter contract, checked for every folder in solutions/ (a new chapter needs no new test).

1. the solution notebook executes top to bottom in fast mode;
2. nbgrader autograde gives the solution full marks and the released notebook 0;
3. the committed notebooks/ equal what `make release` generates;
4. the release holds no solution code and no hidden tests, and every graded cell has points;
   running the solution in place writes nothing into its folder, and a release holds only the
   notebook (and the assets the chapter lists);
5. the book builds with warnings as errors (test_book.py).
"""
from __future__ import annotations

import csv
import json
import shutil
import time

import nbformat
import pytest

from conftest import CHAPTERS, NBGRADER, ROOT, course_env, notebook_path, run
from convae.nbgrader_hooks import hidden_lines
from convae.paths import listed_assets
from test_feedback import leaked_hidden_lines

pytestmark = pytest.mark.slow
SESSION_START = time.time()  # at collection, before any chapter runs


def cell_text(output) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


def solution_code(source: str) -> list[str]:
    """The non-trivial lines between BEGIN/END SOLUTION markers."""
    lines, inside = [], False
    for line in source.splitlines():
        s = line.strip()
        if s == "### BEGIN SOLUTION":
            inside = True
        elif s == "### END SOLUTION":
            inside = False
        elif inside and len(s) > 8 and not s.startswith("#"):
            lines.append(s)
    return lines


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_executes_in_fast_mode(chapter, executed):
    nb = executed(chapter)
    errors = [(c.id, o.get("ename"), o.get("evalue")) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, f"cells raised: {errors}"
    # nbgrader gives a test cell with any stderr 0 points: graded cells must be silent on stderr.
    noisy = [(c.id, cell_text(o)[:200]) for c in nb.cells if c.cell_type == "code"
             and c.metadata.get("nbgrader", {}).get("grade") for o in c.outputs if o.get("name") == "stderr"]
    assert not noisy, f"graded cells wrote to stderr: {noisy}"


@pytest.fixture(scope="module")
def autograded(course, released):
    """Submit each chapter's solution and its blank release, autograde, export and give feedback."""
    for chapter in CHAPTERS:
        for student, source in (("author", notebook_path("solutions", chapter)), ("blank", released[chapter])):
            dest = course / "grading" / "submitted" / student / chapter
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, dest / f"{chapter}.ipynb")
        run([*NBGRADER, "autograde", chapter, "--create", "--force", "--log-level=WARN"], course, course_env(course))
        run([*NBGRADER, "generate_feedback", chapter, "--force", "--log-level=WARN"], course, course_env(course))
    run([*NBGRADER, "export", "--to", "grades.csv", "--log-level=WARN"], course, course_env(course))
    with open(course / "grades.csv") as fh:
        return {(row["assignment"], row["student_id"]): row for row in csv.DictReader(fh)}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_autograde_solution_full_marks_release_zero(chapter, autograded):
    author, blank = autograded[(chapter, "author")], autograded[(chapter, "blank")]
    assert float(author["max_score"]) > 0
    assert float(author["score"]) == float(author["max_score"]), f"solution scored {author['score']}/{author['max_score']}"
    assert float(blank["score"]) == 0, f"the blank release scored {blank['score']}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_feedback_never_shows_hidden_tests(chapter, autograded, course):
    source = nbformat.read(notebook_path("solutions", chapter), as_version=4)
    secret = [line for c in source.cells if c.cell_type == "code" for line in hidden_lines(c.source)]
    assert secret, "every chapter has hidden tests"
    for student in ("author", "blank"):
        html = (course / "grading" / "feedback" / student / chapter / f"{chapter}.html").read_text()
        leaked = leaked_hidden_lines(html, source)  # the page's text: nbconvert highlights code into spans
        assert not leaked, f"feedback for {student} shows hidden test lines: {leaked[:3]}"
    blank_html = (course / "grading" / "feedback" / "blank" / chapter / f"{chapter}.html").read_text()
    assert "is not written yet" in blank_html, "a blank answer gets plain-words feedback"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_committed_release_is_up_to_date(chapter, released):
    committed = notebook_path("notebooks", chapter)
    assert committed.exists(), f"{committed} is missing: run `make release` and commit notebooks/"
    fresh = json.loads(released[chapter].read_text())
    assert json.loads(committed.read_text()) == fresh, f"{committed} is stale: run `make release` and commit it"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_release_has_no_solutions_no_hidden_tests_and_points_everywhere(chapter):
    source = nbformat.read(notebook_path("solutions", chapter), as_version=4)
    release = nbformat.read(notebook_path("notebooks", chapter), as_version=4)
    text = "\n".join(c.source for c in release.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"the release contains {marker!r}"
    release_lines = {line.strip() for line in text.splitlines()}
    for cell in source.cells:
        for line in solution_code(cell.source):
            assert line not in release_lines, f"solution code leaked into the release: {line!r}"
        for line in hidden_lines(cell.source):
            if not line.startswith("#") and not line.startswith("from ") and not line.startswith("import "):
                assert line not in text, f"hidden test leaked into the release: {line!r}"
    assert all(not c.get("outputs") for c in release.cells if c.cell_type == "code"), "the release has outputs"
    graded = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(graded) >= 4, "every chapter has at least four graded exercises"
    assert all(c.metadata["nbgrader"].get("points", 0) > 0 for c in graded), "a graded cell has no points"
    assert all(hidden_lines(c.source) for c in graded if c.cell_type == "code"), "a graded cell has no hidden tests"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_run_in_place_leaves_nothing_for_the_release_to_carry(chapter, executed, tmp_path):
    """Running a solution in its own folder (as `make book` does) writes checkpoints and caches
    under convae.paths.work_dir, not next to the notebook; and a release holds only the notebook
    and the assets the chapter lists, even when the author's folder holds more (a trained model)."""
    executed(chapter)  # the session's one fast-mode run, in solutions/<chapter>/
    folder = ROOT / "solutions" / chapter
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if p.is_file() and p.name != f"{chapter}.ipynb" and p.stat().st_mtime >= SESSION_START)
    assert not written, (f"running {chapter} in place wrote {written} into its folder; write them under "
                         f"convae.paths.work_dir({chapter!r}) instead")
    course = tmp_path / "course"
    (course / "grading").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(folder, course / "solutions" / chapter)
    (course / "solutions" / chapter / "best_mlp.keras").write_bytes(b"a trained model the author left there")
    run([*NBGRADER, "generate_assignment", chapter, "--force", "--log-level=WARN"], course, course_env(course))
    release = course / "notebooks" / chapter
    held = sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file())
    source = course / "solutions" / chapter
    assets = sorted(p.relative_to(source).as_posix() for glob in listed_assets(source) for p in source.glob(glob))
    assert held == sorted([f"{chapter}.ipynb", *assets]), f"the release of {chapter} holds {held}"
