"""Grade a whole class: ``make grade SUBMISSIONS=<folder or .zip> [WORKERS=N]``.

1. **Intake** (:mod:`convae.grading.intake`): every file of the submissions becomes a job or a
   logged problem; nothing is dropped silently.
2. **Base gradebook**: the chapters found are (re)registered in the course gradebook
   (``grading/gradebook.db``) exactly as ``make release`` does; each job grades against a snapshot.
3. **Workers**: ``python -m convae.grading.worker JOB.json`` per student and chapter, ``WORKERS`` at a
   time, each with its own folder, user id, sandbox and gradebook copy.
4. **Collect**: each job's submission is merged into the course gradebook (replacing an older grade
   of the same student and chapter, so reruns are idempotent); ``grades.csv`` is nbgrader's own
   export; feedback goes to ``feedback/<student>/<chapter>/<chapter>.html``; ``log.txt`` has one
   line per job and one per problem.

Outputs go to ``--out`` (default ``grading/``); the run's work folders to a private temporary
folder that is removed at the end unless ``--keep``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from convae.book import chapters
from convae.grading import limits as chapter_limits
from convae.grading.intake import collect
from convae.grading.sandbox import capabilities, describe, use_this_environment
from convae.grading.worker import RESULT_PREFIX, UID_BASE, UID_COUNT
from convae.judge import course_root
from convae.progress import Progress

#: defaults for one notebook. Each chapter's cell and notebook time limits come from
#: grading/limits.json (`make limits`, :mod:`convae.grading.limits`); these times apply only to a chapter
#: missing there (the log says so). --limit name=value overrides any limit for every chapter.
LIMITS = {
    "wall_seconds": 900, "cell_seconds": 600, "cpu_seconds": 1800,
    "memory_bytes": 6 * 2**30, "file_bytes": 256 * 2**20, "nproc": 512, "output_chars": 5_000_000,
}


def register_chapters(root: Path, gradebook: Path, wanted: list[str], scratch: Path) -> dict:
    """Make the gradebook know each chapter (as `make release` would); return {chapter: release path}."""
    course = scratch / "base"
    (course / "grading").mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "nbgrader_config.py", course)
    shutil.copytree(root / "solutions", course / "solutions", dirs_exist_ok=True)
    gradebook.parent.mkdir(parents=True, exist_ok=True)
    releases = {}
    for chapter in wanted:
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", chapter, "--force",
                        "--log-level=ERROR", f"--CourseDirectory.db_url=sqlite:///{gradebook}"],
                       cwd=course, check=True, capture_output=True)
        releases[chapter] = course / "notebooks" / chapter / f"{chapter}.ipynb"
    return releases


def merge(gradebook: Path, job_gradebook: Path, chapter: str, student: str) -> None:
    """Copy one submission from a job's gradebook into the course gradebook, replacing an old one.

    Both databases share the assignment's rows (the job's is a snapshot of the course's), so the
    submission's rows can be copied as they are; sqlite is written by this one process only.
    """
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{gradebook}") as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(chapter, student)
        except MissingEntry:
            pass
    db = sqlite3.connect(gradebook)
    try:
        db.execute("ATTACH DATABASE ? AS job", (str(job_gradebook),))
        (sa_id,) = db.execute(
            "SELECT s.id FROM job.submitted_assignment s JOIN job.assignment a ON s.assignment_id = a.id "
            "WHERE a.name = ? AND s.student_id = ?", (chapter, student)).fetchone()
        db.execute("INSERT INTO submitted_assignment SELECT * FROM job.submitted_assignment WHERE id = ?", (sa_id,))
        db.execute("INSERT INTO submitted_notebook SELECT * FROM job.submitted_notebook WHERE assignment_id = ?", (sa_id,))
        for table in ("grade", "comment"):
            db.execute(f"INSERT INTO {table} SELECT * FROM job.{table} WHERE notebook_id IN "
                       "(SELECT id FROM job.submitted_notebook WHERE assignment_id = ?)", (sa_id,))
        db.commit()
    finally:
        db.close()


class WorkerProcess:
    """One long-lived ``python -m convae.grading.worker --serve``; restarted if it dies."""

    def __init__(self, log_path: Path):
        self.log_path, self.proc = log_path, None

    def grade(self, job_path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "convae.grading.worker", "--serve"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                         stderr=open(self.log_path, "a"))
        self.proc.stdin.write(f"{job_path}\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
                if "error" in result:
                    raise RuntimeError(result["error"])
                return result
        self.proc = None
        raise RuntimeError(f"the worker process died (see {self.log_path.name})")

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def grade_all(job_files: list[Path], workers: int, scratch: Path, report) -> list[tuple[Path, dict]]:
    """Grade every job with ``workers`` worker processes; a failed job still yields a result."""
    queue = list(job_files)
    lock = threading.Lock()
    results = []

    def drain(index: int):
        worker = WorkerProcess(scratch / f"worker-{index}.log")
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    path = queue.pop(0)
                try:
                    result = worker.grade(path)
                except Exception as err:  # the batch always finishes; the job is reported
                    result = failed_result(path, str(err))
                with lock:
                    results.append((path, result))
                    report(result)
        finally:
            worker.close()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(max(1, workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def log_lines(result: dict) -> list[str]:
    head = f"{result['student']}\t{result['chapter']}\t{result['score']:g}/{result['max_score']:g}"
    status = "ok" if not result["problems"] else "PROBLEMS"
    lines = [f"{head}\t{status}\t{result['seconds']:.1f} s\t{result.get('peak_mb', 0):.0f} MB"]
    lines += [f"{result['student']}\t{result['chapter']}\t- {p}" for p in result["problems"]]
    return lines


def plan(submissions: Path, root: Path, gradebook: Path, scratch: Path, table: dict, overrides: dict,
         caps: dict) -> list[Path]:
    """Intake and one job file per student and chapter in ``scratch``; returns the job files.

    ``table`` holds each chapter's measured limits (:func:`convae.grading.limits.read`); the lines
    saying which limits each chapter got go to ``scratch/limits.txt`` for the log."""
    intake = collect(submissions, chapters(root), scratch / "intake")
    wanted = sorted({job.chapter for job in intake.jobs})
    releases = register_chapters(root, gradebook, wanted, scratch)
    per_chapter = {chapter: chapter_limits.for_chapter(table, chapter, LIMITS, overrides) for chapter in wanted}
    (scratch / "limits.txt").write_text("".join(f"{note}\n" for _, _, note in per_chapter.values()))
    snapshot = scratch / "gradebook-snapshot.db"
    shutil.copy(gradebook, snapshot)
    job_files = []
    for index, job in enumerate(intake.jobs):
        work = scratch / f"job-{index:04d}"
        work.mkdir(mode=0o711)
        spec = {"student": job.student, "chapter": job.chapter,
                "notebook": str(job.notebook) if job.notebook else None,
                "file": job.origin, "problems": job.problems, "course_root": str(root),
                "sidecars": {name: str(path) for name, path in job.sidecars.items()},
                "gradebook": str(snapshot), "release": str(releases[job.chapter]), "workdir": str(work),
                "uid": UID_BASE + index % UID_COUNT, "limits": per_chapter[job.chapter][0],
                "expected_seconds": per_chapter[job.chapter][1], "caps": caps}
        (work / "job.json").write_text(json.dumps(spec))
        job_files.append(work / "job.json")
    (scratch / "intake.json").write_text(json.dumps({"files": intake.files, "problems": intake.problems}))
    (scratch / "jobs.txt").write_text("".join(f"{path}\n" for path in job_files))
    return job_files


def limit_notes(scratch: Path) -> list[str]:
    """The log lines saying which time limits each chapter of this run got (written by :func:`plan`)."""
    path = scratch / "limits.txt"
    return path.read_text().splitlines() if path.exists() else []


def failed_result(job_path: Path, reason: str) -> dict:
    spec = json.loads(job_path.read_text())
    return {"student": spec["student"], "chapter": spec["chapter"], "file": spec["file"], "score": 0.0,
            "max_score": 0.0, "cells": {}, "seconds": 0.0, "problems": [f"grader error: {reason}"], "failed": True}


def place_feedback(job_path: Path, result: dict, feedback: Path) -> None:
    """``feedback/<student>/<chapter>/<chapter>.html``, readable (0644, folders 0755, as nbgrader's
    generate_feedback leaves them: release_feedback keeps the mode and each student reads their
    page as themselves), with the submission's exchange sidecars beside it, which
    ``nbgrader release_feedback`` needs (intake checked and staged them)."""
    target = feedback / result["student"] / result["chapter"]
    for folder in (feedback, target.parent, target):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    page = target / f"{result['chapter']}.html"
    shutil.copyfile(job_path.parent / "feedback.html", page)
    page.chmod(0o644)
    spec = json.loads(job_path.read_text())
    for name, staged in spec.get("sidecars", {}).items():
        shutil.copyfile(staged, target / name)
        (target / name).chmod(0o644)


def finish(scratch: Path, results: list, root: Path, out: Path, gradebook: Path, log: list[str],
           seconds: float, workers: int, caps: dict) -> str:
    """Merge every job into the course gradebook, export grades.csv, place feedback, write the log."""
    from convae.grading.worker import set_scores

    ordered = sorted(results, key=lambda r: (r[1]["student"], r[1]["chapter"]))
    for path, result in ordered:
        if result.get("failed"):  # no gradebook from the job: the student still gets a (zero) grade
            set_scores(gradebook, result["chapter"], result["student"], {})
            continue
        merge(gradebook, path.parent / "gradebook.db", result["chapter"], result["student"])
        place_feedback(path, result, out / "feedback")
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(out / "grades.csv"),
                    "--log-level=ERROR", f"--CourseDirectory.db_url=sqlite:///{gradebook}"],
                   cwd=root, check=True, capture_output=True)
    intake = json.loads((scratch / "intake.json").read_text())
    log = log + intake["problems"] + [line for _, r in ordered for line in log_lines(r)]
    log.append(f"# {len(intake['files'])} files in, {len(ordered)} graded, {len(intake['problems'])} not gradable "
               f"(listed above); {seconds:.1f} s, {len(ordered) / max(seconds, 1e-9) * 60:.1f} submissions/min")
    out.mkdir(parents=True, exist_ok=True)
    (out / "log.txt").write_text("\n".join(log) + "\n")
    (out / "results.json").write_text(json.dumps({"results": [r for _, r in ordered], "seconds": seconds,
                                                  "workers": workers, "caps": caps}, indent=1))
    return log[-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, nargs="?",
                        help="folder <student>/<chapter>/<chapter>.ipynb, or an LMS .zip")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="default: grading/ in the course")
    parser.add_argument("--gradebook", type=Path, default=None, help="default: <out>/gradebook.db")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help=f"override a limit ({', '.join(LIMITS)})")
    parser.add_argument("--default-limits", action="store_true",
                        help=f"ignore {chapter_limits.FILE}: the defaults for every chapter (how `make limits` measures)")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (printed at the end)")
    parser.add_argument("--plan", type=Path, metavar="DIR",
                        help="cluster step 1: write job files to DIR (shared storage) and stop; DIR/jobs.txt lists them")
    parser.add_argument("--collect", type=Path, metavar="DIR",
                        help="cluster step 3: merge the results the tasks left in DIR")
    ns = parser.parse_args(argv)
    if not ns.collect and not ns.submissions:
        parser.error("give SUBMISSIONS (a folder or a zip), or --collect DIR")
    if ns.submissions and not ns.submissions.exists():
        parser.error(f"no submissions at {ns.submissions}: pass SUBMISSIONS=<folder with "
                     "<student>/<chapter>/<chapter>.ipynb, or an LMS .zip> (see grading/README.md)")
    use_this_environment()

    root = course_root()
    out = (ns.out or root / "grading").resolve()
    gradebook = (ns.gradebook or out / "gradebook.db").resolve()
    overrides = {}
    for item in ns.limit:
        name, _, value = item.partition("=")
        if name not in LIMITS:
            parser.error(f"unknown limit {name!r}; known: {', '.join(LIMITS)}")
        overrides[name] = int(float(value))
    table = None if ns.default_limits else chapter_limits.read(root)
    caps = capabilities()
    started = time.monotonic()
    log = [f"# convae grading run, {time.strftime('%Y-%m-%d %H:%M:%S')}, submissions: {ns.submissions or ns.collect}",
           f"# {describe(caps)}", f"# workers: {ns.workers}; default limits: {json.dumps(LIMITS)}"]
    print("\n".join(log), flush=True)

    if ns.collect:  # the tasks ran elsewhere; a job without result.json did not finish
        scratch = ns.collect.resolve()
        log += limit_notes(scratch)
        job_files = [Path(line) for line in (scratch / "jobs.txt").read_text().split()]
        results = [(path, json.loads((path.parent / "result.json").read_text())) if (path.parent / "result.json").exists()
                   else (path, failed_result(path, "no result: the task did not run or died")) for path in job_files]
        summary = finish(scratch, results, root, out, gradebook, log, time.monotonic() - started, 0, caps)
        print(summary)
        return 0

    scratch = ns.plan.resolve() if ns.plan else Path(tempfile.mkdtemp(prefix="convae-grade-"))
    scratch.mkdir(parents=True, exist_ok=True)
    os.chmod(scratch, 0o711)
    try:
        job_files = plan(ns.submissions, root, gradebook, scratch, table, overrides, caps)
        log += limit_notes(scratch)
        print("\n".join(limit_notes(scratch)), flush=True)
        if ns.plan:
            print(f"{len(job_files)} jobs planned; run `python -m convae.grading.worker JOB.json` for each line "
                  f"of {scratch / 'jobs.txt'}, then `--collect {scratch}`")
            return 0
        progress = Progress(len(job_files), "graded")  # printed only, not in log.txt
        results = grade_all(job_files, ns.workers, scratch,
                            report=lambda result: print("\n".join([*log_lines(result), progress.step()]), flush=True))
        summary = finish(scratch, results, root, out, gradebook, log, time.monotonic() - started, ns.workers, caps)
        print(summary)
        print(f"grades: {out / 'grades.csv'}   feedback: {out / 'feedback'}   log: {out / 'log.txt'}")
    finally:
        if ns.keep:
            print(f"work folders kept in {scratch}")
        elif not ns.plan:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
