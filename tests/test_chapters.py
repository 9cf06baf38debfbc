"""The chapter contract, checked for every folder in solutions/ (a new chapter needs no new test).

1. the solution notebook executes top to bottom in fast mode;
2. nbgrader autograde gives the solution full marks and the released notebook 0;
3. the committed notebooks/ equal what `make release` generates;
4. the release holds no solution code and no hidden tests, and every graded cell has points;
5. the book builds with warnings as errors (test_book.py).
"""
from __future__ import annotations

import csv
import json
import shutil

import nbformat
import pytest

from conftest import CHAPTERS, NBGRADER, course_env, notebook_path, run
from convae.nbgrader_hooks import hidden_lines

pytestmark = pytest.mark.slow


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
        leaked = [s for s in secret if s in html or json.dumps(s)[1:-1] in html]
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
