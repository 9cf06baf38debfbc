"""The grading kit against an attack-and-fault corpus on chapter 01 (issue: grading a whole class).

One real run of `python -m convae.grading.run` (what `make grade` calls) grades every case with two
workers in the sandbox; each test then checks one case's exact score and log line. A second small
run grades an LMS zip, and a third regrades into the same gradebook to show reruns are idempotent.
"""
from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, needs_root
from convae.grading import limits
from convae.grading.corpus import SEND_OVERSIZED, answer, attacks, load, with_cell

pytestmark = pytest.mark.slow
CHAPTER = "01-pixels"
# The run uses each chapter's own limits from grading/limits.json, as `make grade` does.
CELL_SECONDS = limits.read(ROOT)["01-pixels"]["cell_seconds"]
MODELS_CHAPTER = "04-mlp-vs-cnn"
ZERO_INIT_MLP = """def build_mlp():
    model = keras.Sequential([keras.Input(shape=(784,)),
                              layers.Dense(512, activation="relu", kernel_initializer="zeros"), layers.Dropout(0.2),
                              layers.Dense(512, activation="relu", kernel_initializer="zeros"), layers.Dropout(0.2),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""

# Valid Keras in the style of keras.io and most books: the functional API (an InputLayer is not a
# layer the student chose) passes; a subclassed model, which no grader can rebuild from a saved
# config, loses its points with a sentence saying how to write it instead.
FUNCTIONAL_MLP = """def build_mlp():
    inputs = keras.Input(shape=(784,))
    x = layers.Dense(512, activation="relu")(inputs)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""
SUBCLASSED_CNN = """class SmallCNN(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(16, 3, activation="relu")
        self.pool = layers.MaxPooling2D(2)
        self.flat = layers.Flatten()
        self.out = layers.Dense(10, activation="softmax")

    def call(self, x):
        return self.out(self.flat(self.pool(self.conv(x))))

def build_cnn():
    model = SmallCNN()
    model(keras.ops.zeros((1, 28, 28, 1)))  # builds its weights
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""

# student -> (score, a line the run log must contain for that student, or "ok" for a clean run)
EXPECTED = {
    "correct": (12, "ok"),
    "blank": (0, "ok"),
    "partial": (4, "ok"),
    "wrong-normalise": (10, "ok"),
    "patch-checks": (0, "- tampering: cell normalise_check passed inside the notebook, but the judge never "
                        "confirmed normalise; scored 0"),
    "patch-numpy": (10, "ok"),
    "patch-builtins": (10, "ok"),
    "read-secrets": (12, "ok"),
    "write-elsewhere": (12, "ok"),
    "infinite-loop": (0, f"- timeout: cell student-2 ran longer than {CELL_SECONDS} s (the cell limit for 01-pixels); "
                         "the notebook was stopped there, 0 points"),
    # alive but unable to answer: stopped at the chapter's cell limit, not after 600 s
    "hang-kernel": (0, f"- timeout: cell student-2 ran longer than {CELL_SECONDS} s (the cell limit for 01-pixels); "
                       "the notebook was stopped there, 0 points"),
    "foreign-cell": (12, "- unknown graded cell conv2d_single_check: this chapter's release has no such cell "
                         "(copied from another chapter?); it ran as an ordinary cell, not graded"),
    # garbage, an over-long line and 30 requests for invert on the judge's socket: the 31st, the
    # notebook's own check, is refused too (invert's 1 point); the rest is graded
    "judge-flood": (11, "- judge: 21 more requests for invert refused after the first 10 (a notebook's own "
                        "checks need one or two: this looks like harvesting the judge's messages)"),
    "kill-kernel": (0, "- crash: the kernel died while running the notebook (os._exit, a signal or a hard limit), 0 points"),
    "memory-bomb": (12, "- memory: cell student-2 ran out of memory (MemoryError)"),
    "output-flood": (12, "- output: cell student-2 printed too much; its output was cut"),
    "stderr-noise": (12, "ok"),
    "html-payloads": (12, "ok"),  # feedback payloads (see test_feedback_pages_run_no_student_code)
    "edited-test": (10, "- edited locked cell normalise_check: restored from the release before grading"),
    "deleted-test": (12, "- missing cell normalise_check: restored from the release before grading"),
    "duplicated-test": (12, "- duplicated graded cell normalise_check (2 copies): the first is graded, "
                            "the others ran as ordinary cells"),
    "not-json": (0, "- not a valid notebook (NotJSONError"),
    "wrong-name": (12, "- wrong file name 'my work.ipynb' (expected 01-pixels.ipynb): graded anyway"),
    "notes-only": (0, "- no notebook submitted (only notes-only/01-pixels/notes.txt): graded as blank, 0 points"),
}


SIDECAR_TEXT = {"timestamp.txt": "2026-12-02 10:15:00.123456 UTC", "submission_secret.txt": "4f2c9a0e81b7d3e6"}


def grade(submissions: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "convae.grading.run", str(submissions), "--workers", "2", "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT,
                          env=dict(os.environ, CONVAE_FAST="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_grades(path: Path) -> dict:
    with open(path) as fh:
        return {(row["student_id"], row["assignment"]): row for row in csv.DictReader(fh)}


def feedback_text(out: Path, student: str) -> str:
    # words, not line breaks: a check's failure is wrapped for display (CheckFailed._render_traceback_)
    from test_feedback import page_text
    return page_text((out / "feedback" / student / CHAPTER / f"{CHAPTER}.html").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    submissions, out = base / "submitted", base / "out"
    release, source = load(CHAPTER)
    files = 0
    for name, data in attacks(release, source).items():
        path = submissions / name / CHAPTER / f"{CHAPTER}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        files += 1
    correct = (submissions / "correct" / CHAPTER / f"{CHAPTER}.ipynb").read_bytes()
    for rel, data in {"wrong-name/01-pixels/my work.ipynb": correct,
                      "notes-only/01-pixels/notes.txt": b"I could not get it to run",
                      "frank/99-nope/99-nope.ipynb": correct}.items():
        (submissions / rel).parent.mkdir(parents=True, exist_ok=True)
        (submissions / rel).write_bytes(data)
        files += 1
    # a student who links the solution instead of handing in work (a shared exchange folder is writable)
    (submissions / "linked" / CHAPTER).mkdir(parents=True)
    (submissions / "linked" / CHAPTER / f"{CHAPTER}.ipynb").symlink_to(ROOT / "solutions" / CHAPTER / f"{CHAPTER}.ipynb")
    files += 1
    # nbgrader collect's sidecars, which release_feedback needs beside the page: as nbgrader writes
    # them for one student; for another, a link to the solution and a file of binary junk
    for name, text in SIDECAR_TEXT.items():
        (submissions / "correct" / CHAPTER / name).write_text(text)
    (submissions / "wrong-name" / CHAPTER / "submission_secret.txt").symlink_to(ROOT / "solutions" / CHAPTER / f"{CHAPTER}.ipynb")
    (submissions / "wrong-name" / CHAPTER / "timestamp.txt").write_bytes(b"\x00\xff" * 10)
    files += 4
    # Chapter 04 in the same run: Keras models judged by training, inside the sandbox's limits.
    release4, source4 = load(MODELS_CHAPTER)
    for name, data in {"keras-correct": answer(release4, source4),
                       "keras-cannot-learn": answer(release4, source4, replace={"build_mlp": ZERO_INIT_MLP}),
                       "keras-oversized": with_cell(answer(release4, source4), SEND_OVERSIZED),
                       "keras-styles": answer(release4, source4, replace={"build_mlp": FUNCTIONAL_MLP,
                                                                          "build_cnn": SUBCLASSED_CNN})}.items():
        path = submissions / name / MODELS_CHAPTER / f"{MODELS_CHAPTER}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(data, path)
        files += 1
    proc = grade(submissions, out)
    log = (out / "log.txt").read_text()
    return {"out": out, "log": log, "files": files, "stdout": proc.stdout, "grades": read_grades(out / "grades.csv")}


def test_feedback_pages_run_no_student_code(corpus):
    """The page the grader wrote for a notebook full of script, event-handler, javascript:-URL,
    frame, form, SVG, widget and metadata payloads (in markdown and in outputs its code displayed)
    holds none of them, and still shows the student's harmless text, table, image and HTML."""
    from test_feedback import active_content, harmless_content_shows
    page = (corpus["out"] / "feedback" / "html-payloads" / CHAPTER / f"{CHAPTER}.html").read_text()
    assert "Score: 12.0 / 12.0" in page, "a real nbgrader feedback page, not the grader's failure page"
    assert active_content(page) == []
    assert harmless_content_shows(page) == []


def test_keras_models_are_judged_by_training_in_the_sandbox(corpus):
    """A correct chapter-04 notebook gets all 14 points; a build_mlp whose hidden layers start at
    zero meets the specification but cannot learn, and loses exactly its 3 points."""
    grades = corpus["grades"]
    assert float(grades[("keras-correct", MODELS_CHAPTER)]["score"]) == 14
    assert float(grades[("keras-cannot-learn", MODELS_CHAPTER)]["score"]) == 11
    feedback = (corpus["out"] / "feedback" / "keras-cannot-learn" / MODELS_CHAPTER / f"{MODELS_CHAPTER}.html").read_text()
    assert "does not learn" in " ".join(html.unescape(re.sub(r"<[^>]+>", "", feedback)).split())


def test_functional_models_pass_and_a_subclass_is_told_how_to_write_it(corpus):
    """A functional-API build_mlp keeps its 3 points; a subclassed build_cnn loses its 3 with the
    sentence of the specification check, not a traceback."""
    assert float(corpus["grades"][("keras-styles", MODELS_CHAPTER)]["score"]) == 11
    page = (corpus["out"] / "feedback" / "keras-styles" / MODELS_CHAPTER / f"{MODELS_CHAPTER}.html").read_text()
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())
    assert "build_cnn() returns a subclassed model (class SmallCNN" in text
    # the check answers in words; before, a subclass met a raw AttributeError raised inside checks.py
    # (later narrative cells that use the refused model may still fail: they are not graded)
    assert "convae/checks.py" not in text and "checks.py" not in text


def test_the_judge_refuses_an_oversized_model_and_a_flood_and_the_grader_stays_small(corpus):
    """A .keras file whose config asks for Dense(1_000_000) (about 16 GB to build) loses build_mlp's
    3 points with a sentence, before anything is built; the run log says so; the flood's broken
    connections are logged; no worker (the judge's trusted side) grew by 300 MB in any job."""
    assert float(corpus["grades"][("keras-oversized", MODELS_CHAPTER)]["score"]) == 11
    assert ("keras-oversized\t04-mlp-vs-cnn\t- judge: build_mlp: model refused before it was built: its config "
            "asks for 785,000,000 parameters; the grader builds models of at most 7,000,000 parameters for this "
            "exercise (the budget is in the exercise's text)") in corpus["log"]
    page = (corpus["out"] / "feedback" / "keras-oversized" / MODELS_CHAPTER / f"{MODELS_CHAPTER}.html").read_text()
    assert "returned a model that the grader will not build" in " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())
    assert ("- judge: 2 connections broke the protocol and were closed (first: the request was not JSON)"
            in student_lines(corpus["log"], "judge-flood"))
    results = json.loads((corpus["out"] / "results.json").read_text())["results"]
    growth = {(r["student"], r["chapter"]): r["grader_growth_mb"] for r in results if "grader_growth_mb" in r}
    assert len(growth) == len([r for r in results if not r.get("failed")]), "every graded job reports it"
    print("grader growth per job, MB: max", max(growth.values()), "oversized", growth[("keras-oversized", MODELS_CHAPTER)])
    assert max(growth.values()) < 300, sorted(growth.items(), key=lambda kv: -kv[1])[:3]


def student_lines(log: str, student: str) -> list[str]:
    return [line.split("\t", 2)[2] for line in log.splitlines() if line.startswith(f"{student}\t{CHAPTER}\t")]


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_case_gets_its_exact_score_and_log_line(student, corpus):
    score, line = EXPECTED[student]
    row = corpus["grades"][(student, CHAPTER)]
    assert float(row["score"]) == score and float(row["max_score"]) == 12, (student, row["score"])
    lines = student_lines(corpus["log"], student)
    # the intake's lines about a student's files (a refused sidecar) come before the job's own
    first = next(i for i, entry in enumerate(lines) if re.match(r"[\d.]+/12\t", entry))
    assert lines[first].startswith(f"{score}/12\t"), lines
    if line == "ok":
        assert lines[first].split("\t")[1] == "ok" and len(lines) == 1, lines
    else:
        assert any(entry.startswith(line) for entry in lines[first + 1:]), lines


def test_a_hung_kernel_is_stopped_at_the_chapters_limit_not_after_600_s(corpus):
    results = {(r["student"], r["chapter"]): r for r in json.loads((corpus["out"] / "results.json").read_text())["results"]}
    hung = results[("hang-kernel", CHAPTER)]
    assert CELL_SECONDS < hung["seconds"] < CELL_SECONDS + 60, hung["seconds"]
    assert f"# limits for {CHAPTER}: cell {CELL_SECONDS} s" in corpus["log"], "the log says which limits applied"
    correct = results[("correct", CHAPTER)]
    assert correct["kernel_start_seconds"] > 0 and "normalise_check" in correct["cell_seconds"], \
        "the worker records where a job's time went"


@needs_root
def test_the_sandbox_is_fully_active_and_said_so(corpus):
    assert "# sandbox: network namespace, mount namespace, separate user, rlimits - all active" in corpus["log"]


def test_nothing_is_lost_count_in_equals_count_out(corpus):
    log, grades = corpus["log"], corpus["grades"]
    summary = re.search(r"# (\d+) files in, (\d+) graded, (\d+) not gradable", log)
    assert int(summary.group(1)) == corpus["files"]
    assert int(summary.group(2)) == len(EXPECTED) + 4 and int(summary.group(3)) == 4
    assert "frank\t99-nope\t- unknown chapter, ignored: frank/99-nope/99-nope.ipynb" in log
    # a link to the solution is never read: the student is not graded, and the log names the link
    assert ("linked\t01-pixels\t- refused, not read: linked/01-pixels/01-pixels.ipynb "
            "(a symbolic link; only regular files are graded)") in log
    assert not any(line.startswith("linked\t01-pixels\t") and "/12" in line for line in log.splitlines())
    assert {student for student, _ in grades} == set(EXPECTED) | {"keras-correct", "keras-cannot-learn",
                                                                  "keras-oversized", "keras-styles"}, \
        "every student is in grades.csv"
    header = "assignment,duedate,timestamp,student_id,last_name,first_name,email,raw_score,late_submission_penalty,score,max_score"
    assert (corpus["out"] / "grades.csv").read_text().splitlines()[0] == header, "nbgrader's export format"


def test_feedback_is_left_releasable_with_the_exchanges_sidecars(corpus):
    """nbgrader's release_feedback keeps the mode it finds and needs timestamp.txt and
    submission_secret.txt beside each page: make grade leaves pages 644 in folders 755 with the
    collected sidecars copied beside them, and refuses a linked or binary sidecar with a line."""
    import stat
    feedback = corpus["out"] / "feedback"
    folder = feedback / "correct" / CHAPTER
    assert {p.name: p.read_text() for p in folder.glob("*.txt")} == SIDECAR_TEXT
    for path in [feedback, folder.parent, folder]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    refused_folder = feedback / "wrong-name" / CHAPTER
    assert sorted(p.name for p in refused_folder.iterdir()) == [f"{CHAPTER}.html"]
    lines = student_lines(corpus["log"], "wrong-name")
    assert ("- refused, not read: wrong-name/01-pixels/submission_secret.txt "
            "(a symbolic link; only regular files are graded)") in lines, lines
    assert ("- refused, not read: wrong-name/01-pixels/timestamp.txt "
            "(not one short line of printable text)") in lines, lines


def test_patched_checks_are_caught_for_every_cell_they_faked(corpus):
    lines = student_lines(corpus["log"], "patch-checks")
    faked = {re.search(r"cell (\w+) passed", line).group(1) for line in lines if "tampering" in line}
    assert faked == {"rgb_to_gray_check", "normalise_check", "flatten_check", "class_mean_images_check",
                     "invert_check", "brighten_check"}


@needs_root
def test_student_code_cannot_read_solutions_or_write_outside_its_folder(corpus):
    text = feedback_text(corpus["out"], "read-secrets")
    assert "SECRETS FOUND: []" in text
    assert int(re.search(r"SECRETS DENIED: (\d+)", text).group(1)) >= 2, "the direct reads were refused"
    assert "WROTE INTO: ['/tmp']" in feedback_text(corpus["out"], "write-elsewhere"), "only its private /tmp"
    leaked = [p for p in [Path("/tmp"), ROOT / "grading", ROOT / "solutions" / CHAPTER, ROOT / "notebooks",
                          corpus["out"]] if (p / "PWNED-by-mallory").exists()]
    assert not leaked


def test_feedback_explains_failures_and_never_shows_hidden_tests(corpus):
    text = feedback_text(corpus["out"], "wrong-normalise")
    assert "normalise([[0, 51, 255]]) returned dtype uint8, expected floating-point values" in text
    from test_feedback import leaked_hidden_lines
    _, source = load(CHAPTER)
    for student in EXPECTED:
        page = (corpus["out"] / "feedback" / student / CHAPTER / f"{CHAPTER}.html").read_text()
        assert leaked_hidden_lines(page, source) == [], student  # the page's text: its code is highlighted
    assert "could not be graded to the end" in feedback_text(corpus["out"], "infinite-loop")


@pytest.fixture(scope="module")
def lms_zip(tmp_path_factory, corpus):
    """A Canvas-style download: flat files named <student>_<ids>_<original name>, in one folder."""
    base = tmp_path_factory.mktemp("lms")
    release, source = load(CHAPTER)
    cases = attacks(release, source)
    archive = base / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("submissions/carol_1234_5678_01-pixels.ipynb", cases["correct"])
        zf.writestr("submissions/dave_LATE_1235_5679_01-pixels-1.ipynb", cases["partial"])
        zf.writestr("submissions/../../escape.ipynb", cases["correct"])
    out = base / "out"
    grade(archive, out)
    return {"out": out, "log": (out / "log.txt").read_text(), "grades": read_grades(out / "grades.csv")}


def test_an_lms_zip_is_graded_by_file_name(lms_zip):
    assert float(lms_zip["grades"][("carol", CHAPTER)]["score"]) == 12
    assert float(lms_zip["grades"][("dave", CHAPTER)]["score"]) == 4
    assert "?\t?\t- unsafe path in the zip, ignored: submissions/../../escape.ipynb" in lms_zip["log"]
    assert re.search(r"# 3 files in, 2 graded, 1 not gradable", lms_zip["log"])


def test_regrading_is_idempotent_and_replaces_the_old_grade(lms_zip, tmp_path):
    again = tmp_path / "again"
    again.mkdir()
    (again / "carol" / CHAPTER).mkdir(parents=True)
    blank, _ = load(CHAPTER)
    import nbformat

    nbformat.write(blank, again / "carol" / CHAPTER / f"{CHAPTER}.ipynb")  # carol resubmits a blank
    grade(again, lms_zip["out"])
    grades = read_grades(lms_zip["out"] / "grades.csv")
    assert float(grades[("carol", CHAPTER)]["score"]) == 0, "the new submission replaced the old grade"
    assert float(grades[("dave", CHAPTER)]["score"]) == 4, "other students keep theirs"
    rows = (lms_zip["out"] / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + 2, rows


def test_cluster_mode_plan_one_task_per_student_then_collect(tmp_path):
    """The documented cluster flow: --plan, the worker command once per line of jobs.txt, --collect."""
    release, source = load(CHAPTER)
    cases = attacks(release, source)
    for student, case in (("ann", "correct"), ("ben", "partial"), ("cal", "correct")):
        path = tmp_path / "class" / student / CHAPTER / f"{CHAPTER}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_bytes(cases[case])
    shared, out = tmp_path / "shared", tmp_path / "out"
    env = dict(os.environ, CONVAE_FAST="1")
    subprocess.run([sys.executable, "-m", "convae.grading.run", str(tmp_path / "class"), "--plan", str(shared),
                    "--out", str(out)], check=True, capture_output=True, cwd=ROOT, env=env)
    jobs = (shared / "jobs.txt").read_text().split()
    assert len(jobs) == 3
    for job in jobs[:2]:  # the third task "never runs", as when a node dies
        subprocess.run([sys.executable, "-m", "convae.grading.worker", job], check=True, capture_output=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "convae.grading.run", "--collect", str(shared), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    grades = read_grades(out / "grades.csv")
    assert {k: float(v["score"]) for k, v in grades.items()} == {
        ("ann", CHAPTER): 12.0, ("ben", CHAPTER): 4.0, ("cal", CHAPTER): 0.0}
    assert "cal\t01-pixels\t- grader error: no result: the task did not run or died" in (out / "log.txt").read_text()
