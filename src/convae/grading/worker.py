"""Grade one student's notebook for one chapter: ``python -m convae.grading.worker JOB.json``.

The same command runs locally (``make grade`` starts several at once) and on a cluster (one task
per student, see grading/README.md). A job file names the submission, a snapshot of the gradebook
and a private work folder; the worker leaves there ``result.json`` (score, per-cell scores, every
problem in plain words), ``gradebook.db`` (the snapshot plus this submission, merged later by
``convae.grading.run``) and ``feedback.html``.

Steps: read and repair the notebook (invalid JSON, duplicated or edited graded cells) → start the
judge outside the sandbox → ``nbgrader autograde`` with the student's kernel in the sandbox
(:mod:`convae.grading.sandbox`) under a wall-time limit and a memory watchdog → require a passing
verdict from the judge for every hidden check of a cell that nbgrader scored → feedback.
A submission that cannot be graded still gets a result: zero points and the reason.
"""
from __future__ import annotations

import copy
import fcntl
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat

from convae.grading.judge_sandbox import JUDGE_UID_OFFSET, write_policy
from convae.grading.judge_server import JudgeServer
from convae.grading.limits import read_timings, slow_problem, where_time_went
from convae.grading.sandbox import capabilities, use_this_environment
from convae.procwatch import ProcessWatch, kill_processes

HIDDEN_CALL = re.compile(r"""hidden_check\(\s*["']([\w-]+)["']\s*,\s*["'](\w+)["']""")


# ---------------------------------------------------------------- reading the submission

def graded_cells(nb) -> dict:
    """grade_id -> cell, for cells with nbgrader metadata, in notebook order (first wins)."""
    cells = {}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id and grade_id not in cells:
            cells[grade_id] = cell
    return cells


#: the nbgrader metadata that decides how a cell is graded; the release's values are the truth
ROLE_KEYS = ("grade", "solution", "locked", "task", "points")


def set_cell_type(cell, cell_type: str) -> None:
    """Turn a cell into ``cell_type`` in place, with the fields nbformat requires of that type."""
    cell.cell_type = cell_type
    if cell_type == "code":
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def restore_roles(nb, expected: dict) -> list[str]:
    """Make every cell's nbgrader metadata agree with the release: ``expected`` is the release's
    grade_id -> cell. A grade_id the release does not know (a cell copied from another chapter),
    nbgrader flags without a grade_id, or a second copy of a graded cell lose their nbgrader
    metadata and run as ordinary cells; changed flags, points or cell type of a known cell are set
    back to the release's. nbgrader itself would fail the whole notebook on the first two."""
    problems, seen = [], {}
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        grade_id = meta.get("grade_id")
        if grade_id not in expected:
            del cell["metadata"]["nbgrader"]  # still runs, as an ordinary cell
            if grade_id:
                problems.append(f"unknown graded cell {grade_id}: this chapter's release has no such cell "
                                "(copied from another chapter?); it ran as an ordinary cell, not graded")
            elif any(meta.get(key) for key in ROLE_KEYS):
                problems.append(f"cell {cell.get('id') or index} has nbgrader flags but no grade_id: "
                                "it ran as an ordinary cell, not graded")
            continue
        seen[grade_id] = seen.get(grade_id, 0) + 1
        if seen[grade_id] > 1:
            del cell["metadata"]["nbgrader"]
            continue
        truth = expected[grade_id]
        changed = [f"{key} {meta.get(key, '-')} instead of {truth.metadata.nbgrader.get(key, '-')}"
                   for key in ROLE_KEYS if meta.get(key) != truth.metadata.nbgrader.get(key)]
        if cell.cell_type != truth.cell_type:
            changed.append(f"a {cell.cell_type} cell instead of {truth.cell_type}")
            set_cell_type(cell, truth.cell_type)
        if changed:
            cell["metadata"]["nbgrader"] = copy.deepcopy(truth.metadata.nbgrader)
            problems.append(f"changed grading metadata of cell {grade_id} ({', '.join(changed)}): "
                            "restored from the release before grading")
    problems += [f"duplicated graded cell {grade_id} ({count} copies): the first is graded, "
                 "the others ran as ordinary cells" for grade_id, count in seen.items() if count > 1]
    return problems


def repair(raw: bytes, release) -> tuple[object, list[str]]:
    """Parse and repair a submitted notebook; return (notebook or None, problems)."""
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        return None, [f"not a valid notebook ({type(err).__name__}: {first}): graded as blank, 0 points"]
    expected = graded_cells(release)
    problems = restore_roles(nb, expected)
    present = graded_cells(nb)
    for grade_id, cell in expected.items():
        meta = cell.metadata["nbgrader"]
        if grade_id not in present:
            problems.append(f"missing cell {grade_id}: restored from the release before grading")
        elif meta.get("locked") and present[grade_id].source.strip() != cell.source.strip():
            problems.append(f"edited locked cell {grade_id}: restored from the release before grading")
    return nb, problems


# ---------------------------------------------------------------- running nbgrader in the sandbox

class KernelWatch(ProcessWatch):
    """Kill the student's processes at the wall-time or memory limit, and all of them at the end.

    With a user id of its own, the student's processes are exactly those of that user (a process
    that double-forks away from the kernel is still found); without, the children of this worker.
    """

    def __init__(self, uid: int | None, wall_seconds: float, memory_bytes: int):
        super().__init__()
        self.uid, self.wall, self.memory, self.reason = uid, wall_seconds, memory_bytes, ""

    def processes(self):
        import psutil

        if self.uid is None:
            return psutil.Process().children(recursive=True)
        return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == self.uid]

    def kill_all(self):
        kill_processes(self.processes())

    def check(self, rss: int, elapsed: float) -> bool:
        if elapsed > self.wall:
            self.reason = f"timeout: the notebook ran longer than {self.wall:.0f} s and was stopped, 0 points"
        elif rss > self.memory:
            self.reason = f"memory: the notebook used more than {self.memory / 2**30:.1f} GiB and was stopped, 0 points"
        if self.reason:
            self.kill_all()
        return bool(self.reason)

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.kill_all()  # nothing of the student's outlives the job


def nbgrader_api(course: Path, overrides: dict):
    """nbgrader's Python API on a course folder, with its nbgrader_config.py and ``overrides``.

    In-process: one import of nbgrader serves every job of a worker (the import alone takes ~3 s).
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.merge(Config(overrides))
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def write_kernelspec(job_dir: Path, policy_path: Path) -> Path:
    """A kernelspec "convae-sandbox" whose command starts ipykernel through the sandbox."""
    spec_dir = job_dir / "jupyter" / "kernels" / "convae-sandbox"
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "convae.grading.sandbox", str(policy_path), "--",
            sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "Python 3 (graded, sandboxed)", "language": "python"}))
    return job_dir / "jupyter"


# ---------------------------------------------------------------- scores

def read_scores(gradebook: Path, chapter: str, student: str) -> dict:
    """grade_id -> [score, max_score] of one submission, from a gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{gradebook}") as gb:
        submission = gb.find_submission(chapter, student)
        return {g.name: [float(g.score or 0), float(g.max_score)]
                for nb in submission.notebooks for g in nb.grades}


def set_scores(gradebook: Path, chapter: str, student: str, scores: dict) -> None:
    """Write auto scores (grade_id -> points) into a gradebook; create the submission if needed."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{gradebook}") as gb:
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(chapter, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                if grade.name in scores:
                    grade.auto_score = scores[grade.name]
                    grade.needs_manual_grade = False
        gb.db.commit()


def hidden_exercises(source_nb) -> dict:
    """grade_id -> [(chapter, exercise), ...] called by the cell's hidden tests."""
    return {grade_id: HIDDEN_CALL.findall(cell.source) for grade_id, cell in graded_cells(source_nb).items()
            if cell.cell_type == "code" and HIDDEN_CALL.search(cell.source)}


def failure_page(student: str, chapter: str, problems: list[str], max_score: float) -> str:
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    return (f"<!doctype html><meta charset='utf-8'><title>{chapter}: feedback for {html.escape(student)}</title>"
            f"<h1>{chapter}: feedback for {html.escape(student)}</h1>"
            f"<p>Score: 0 / {max_score:g}. Your notebook could not be graded to the end:</p><ul>{items}</ul>"
            "<p>Run the notebook from top to bottom (Kernel → Restart and run all) and press Validate; "
            "fix what fails, then submit again. Ask your instructor if this looks wrong.</p>")


# ---------------------------------------------------------------- one job

def prepare(job: dict, work: Path) -> tuple[dict, list[str]]:
    """The job's folders: course/ (config, gradebook copy, the repaired submission; the grader's
    only), home/ (the kernel's, owned by its user id) and judge/ (the judge's socket); and the
    problems found so far (intake's and the repair's)."""
    root, student, chapter = Path(job["course_root"]), job["student"], job["chapter"]
    for sub in ("course", "home", "judge"):
        shutil.rmtree(work / sub, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o711)
    paths = {"course": work / "course", "home": work / "home", "judge": work / "judge"}
    for folder in paths.values():
        folder.mkdir()
    os.chmod(paths["course"], 0o700)
    os.chmod(paths["judge"], 0o711)
    shutil.copy(root / "nbgrader_config.py", paths["course"])
    (paths["course"] / "grading").mkdir()
    paths["gradebook"] = paths["course"] / "grading" / "gradebook.db"
    shutil.copy(job["gradebook"], paths["gradebook"])
    release = nbformat.read(job["release"], as_version=4)
    problems = list(job.get("problems", []))
    nb = None  # no notebook at all: the blank release scores 0 and the student still has a grade
    if job["notebook"]:
        nb, repair_problems = repair(Path(job["notebook"]).read_bytes(), release)
        problems += repair_problems
    submitted = paths["course"] / "grading" / "submitted" / student / chapter
    submitted.mkdir(parents=True)
    nbformat.write(nb if nb is not None else release, submitted / f"{chapter}.ipynb")
    return paths, problems


def sandbox_kernelspec(job: dict, work: Path, home: Path, judge_dir: Path, caps: dict) -> Path:
    """Write the sandbox policy and the kernelspec that applies it; return the JUPYTER_PATH."""
    root, limits, uid = Path(job["course_root"]), job["limits"], int(job["uid"])
    if caps.get("separate_user"):
        os.chown(home, uid, uid)
    os.chmod(home, 0o700)
    policy = {"home": str(home), "uid": uid, "gid": uid, "caps": caps, "nproc": limits["nproc"],
              "cpu_seconds": limits["cpu_seconds"], "memory_bytes": limits["memory_bytes"],
              "file_bytes": limits["file_bytes"],
              # what the kernel needs: the interpreter, the repository (venv, package, data), its
              # own folder and the judge's socket
              "keep": [sys.base_prefix, sys.prefix, str(root), str(home), str(judge_dir)],
              "hide": [str(root / d) for d in ("solutions", "grading", ".git", "tests", "bench", "book")]
              + [str(Path(p)) for p in job.get("hide", [])]}
    policy_path = work / "policy.json"
    policy_path.write_text(json.dumps(policy))
    return write_kernelspec(work, policy_path)


def confirm_with_judge(source, scores: dict, verdicts_path: Path) -> tuple[dict, list[str]]:
    """Cells nbgrader scored but whose hidden checks the judge never confirmed: {grade_id: 0}."""
    verdicts = [json.loads(line) for line in verdicts_path.read_text().splitlines()] if verdicts_path.exists() else []
    confirmed = {(v["chapter"], v["exercise"]) for v in verdicts if v.get("ok")}
    overrides = {}
    problems = [v["log"] for v in verdicts if v.get("log")]  # what the judge refused, and why
    for grade_id, calls in hidden_exercises(source).items():
        missing = [exercise for chapter, exercise in calls if (chapter, exercise) not in confirmed]
        if scores.get(grade_id, [0])[0] > 0 and missing:
            overrides[grade_id] = 0.0
            problems.append(f"tampering: cell {grade_id} passed inside the notebook, but the judge never "
                            f"confirmed {', '.join(missing)}; scored 0")
    return overrides, problems


#: the sandbox's user ids: one per job being graded on this machine, whichever run it belongs to
UID_BASE, UID_COUNT = 61000, 4000
UID_LOCKS = Path(tempfile.gettempdir()) / "convae-grading-uids"


@contextmanager
def claimed_uid(preferred: int):
    """A sandbox user id that no other job on this machine holds, trying ``preferred`` first.

    The watchdog kills every process of its job's user id. Two grading runs at once (a test run
    beside `make grade`) numbered their jobs alike, so their job-0013s shared an id, and the first
    to finish killed the other's kernel: a correct notebook logged as a crash (seen here). Each job
    holds an flock on one file per id while it runs; the lock dies with the process."""
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    for step in range(UID_COUNT):
        uid = UID_BASE + (preferred - UID_BASE + step) % UID_COUNT
        fd = os.open(UID_LOCKS / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another job on this machine runs as this id
            os.close(fd)
            continue
        try:
            yield uid
        finally:
            os.close(fd)
        return
    raise RuntimeError(f"all {UID_COUNT} sandbox user ids ({UID_BASE}-{UID_BASE + UID_COUNT - 1}) are in use")


def grade(job: dict) -> dict:
    """Grade one job under a user id no other job on this machine holds (see :func:`claimed_uid`)."""
    with claimed_uid(int(job["uid"])) as uid:
        return grade_as(dict(job, uid=uid))


def grade_as(job: dict) -> dict:
    """Grade one job (see the module docstring); write and return its result."""
    start = time.monotonic()
    os.umask(0o077)  # everything the worker writes is the grader's; the kernel gets only home/
    student, chapter = job["student"], job["chapter"]
    root, work, limits = Path(job["course_root"]), Path(job["workdir"]), job["limits"]
    caps = job.get("caps") or capabilities()
    paths, problems = prepare(job, work)
    course, home, judge_dir, gradebook = (paths[k] for k in ("course", "home", "judge", "gradebook"))
    source = nbformat.read(root / "solutions" / chapter / f"{chapter}.ipynb", as_version=4)
    max_score = sum(float(c.metadata["nbgrader"].get("points", 0)) for c in graded_cells(source).values()
                    if c.metadata["nbgrader"].get("grade"))
    jupyter_path = sandbox_kernelspec(job, work, home, judge_dir, caps)
    timings_path = work / "cells.jsonl"  # per-cell seconds, appended as the notebook runs
    timings_path.unlink(missing_ok=True)

    os.environ.update(CONVAE_FAST=job.get("fast", "1"), JUPYTER_PATH=str(jupyter_path),
                      CONVAE_JUDGE_SOCKET=str(judge_dir / "sock"), TF_CPP_MIN_LOG_LEVEL="3",
                      TF_ENABLE_ONEDNN_OPTS="0", PYTHONDONTWRITEBYTECODE="1",
                      CONVAE_PROGRESS="epoch")  # Keras: a line per epoch in the stored notebook, no bar
    api = nbgrader_api(course, {
        "Execute": {"kernel_name": "convae-sandbox", "timeout": limits["cell_seconds"],
                    "interrupt_on_timeout": False},
        "LimitedExecute": {"max_output_chars": limits["output_chars"], "timings_file": str(timings_path)},
        "KernelManager": {"transport": "ipc", "ip": f"{home}/k"},
    })
    # the judge's sandboxed side: the kernel's sandbox, with a user id of its own
    judge_policy = write_policy(work / "policy.json", work / "judge-home", int(job["uid"]) + JUDGE_UID_OFFSET)
    server = JudgeServer(judge_dir / "sock", root=root, record=work / "verdicts.jsonl", judge_policy=judge_policy)
    grader_rss = resident_bytes()
    watch = KernelWatch(int(job["uid"]) if caps.get("separate_user") else None,
                        limits["wall_seconds"], limits["memory_bytes"])
    with server, watch:
        outcome = api.autograde(chapter, student, force=True, create=True)
    nbgrader_log = outcome.get("log", "") + "\n" + outcome.get("error", "")
    (work / "nbgrader.log").write_text(nbgrader_log)
    timings = read_timings(timings_path)
    autograded = course / "grading" / "autograded" / student / chapter / f"{chapter}.ipynb"

    if watch.reason or not outcome.get("success") or not autograded.exists():
        problems.append(watch.reason or diagnose(nbgrader_log, limits, chapter, timings))
        set_scores(gradebook, chapter, student, {g: 0.0 for g in graded_cells(source)})
        feedback = failure_page(student, chapter, problems, max_score)
    else:
        overrides, tampering = confirm_with_judge(source, read_scores(gradebook, chapter, student),
                                                  work / "verdicts.jsonl")
        problems += tampering + runtime_problems(autograded)
        if overrides:
            set_scores(gradebook, chapter, student, overrides)
        fb = api.generate_feedback(chapter, student, force=True)
        page = course / "grading" / "feedback" / student / chapter / f"{chapter}.html"
        feedback = page.read_text() if fb.get("success") and page.exists() else failure_page(
            student, chapter, problems + ["feedback could not be generated"], max_score)
    scores = read_scores(gradebook, chapter, student)
    seconds = time.monotonic() - start
    slow = slow_problem(seconds, job.get("expected_seconds"), where_time_went(timings, seconds))
    result = {
        "student": student, "chapter": chapter, "file": job.get("file", job["notebook"]),
        "score": sum(s for s, _ in scores.values()), "max_score": max_score,
        "cells": scores, "problems": problems + [slow] * bool(slow), "seconds": round(seconds, 2),
        "peak_mb": round(watch.peak / 2**20, 1),
        # this process (trusted: nbgrader, the judge's trusted side) during the job, an upper bound
        "grader_growth_mb": round((peak_resident_bytes() - grader_rss) / 2**20, 1),
        "kernel_start_seconds": timings["kernel_start"], "cell_seconds": timings["cells"],
    }
    (work / "feedback.html").write_text(feedback)
    shutil.copy(gradebook, work / "gradebook.db")
    (work / "result.json").write_text(json.dumps(result, indent=1))
    return result


def resident_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def peak_resident_bytes() -> int:
    """This process's peak resident memory so far (VmHWM): nothing between two samples is missed."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resident_bytes()


def diagnose(log: str, limits: dict, chapter: str, timings: dict) -> str:
    """One plain sentence for an nbgrader run that did not finish."""
    if "CellTimeoutError" in log or "Timeout waiting for execute reply" in log or "TimeoutError" in log:
        if timings.get("kernel_start") is None:  # no cell ever started: the kernel, not the student
            return (f"timeout: the kernel did not answer within {limits['cell_seconds']} s, before the first "
                    "cell ran (a grader-side stall: rerun this student), 0 points")
        stuck = timings.get("unfinished") or []
        which = f"cell {stuck[0]}" if stuck else "a cell"
        return (f"timeout: {which} ran longer than {limits['cell_seconds']} s (the cell limit for {chapter}); "
                "the notebook was stopped there, 0 points")
    if "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log.lower():
        return "crash: the kernel died while running the notebook (os._exit, a signal or a hard limit), 0 points"
    tail = [ln for ln in log.strip().splitlines() if "ERROR" in ln][-1:] or log.strip().splitlines()[-1:]
    return f"error: nbgrader could not grade the notebook ({tail[0][:200] if tail else 'no output'}), 0 points"


def runtime_problems(autograded: Path) -> list[str]:
    """Limits the notebook hit while it still finished: memory errors, truncated output."""
    nb = nbformat.read(autograded, as_version=4)
    found = []
    for cell in nb.cells:
        name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "?")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") == "MemoryError":
                found.append(f"memory: cell {name} ran out of memory (MemoryError)")
            if "[output truncated by the grader" in str(out.get("data", {}).get("text/plain", "")):
                found.append(f"output: cell {name} printed too much; its output was cut")
    return found


RESULT_PREFIX = "@@convae-result "


def serve(stdin=sys.stdin, stdout=sys.stdout) -> int:
    """Grade job files named on stdin, one per line; answer each with one result line."""
    for line in stdin:
        try:
            result = grade(json.loads(Path(line.strip()).read_text()))
        except Exception as err:  # report and go on with the next job
            result = {"error": f"{type(err).__name__}: {err}"}
        stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
        stdout.flush()
    return 0


def main(argv=None) -> int:
    """``worker JOB.json`` grades one job (a cluster task); ``worker --serve`` grades many."""
    argv = sys.argv[1:] if argv is None else argv
    use_this_environment()
    if argv == ["--serve"]:
        return serve()
    result = grade(json.loads(Path(argv[0]).read_text()))
    print(json.dumps({k: result[k] for k in ("student", "chapter", "score", "max_score", "problems")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
