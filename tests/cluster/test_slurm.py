"""Grading on a real single-node Slurm cluster, with the worker command of grading/README.md (issue 16).

A seeded class of chapter 01 (full, partial and blank work) is graded twice: locally (``make grade
WORKERS=2``) and on Slurm (``run --plan``, one ``sbatch --array`` task per line of jobs.txt,
``run --collect``). One array task is cancelled (``scancel JOB_INDEX``) while it runs: the first
collect gives that student 0 and a ``grader error: no result`` line (nobody is lost silently); the
task is submitted again, and the second collect gives the same grades as the local run.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
import shutil
from pathlib import Path

import psutil
import pytest

import slurm as slurmlib
from convae.grading.corpus import write_class
from convae.grading.worker import UID_BASE, UID_COUNT

ROOT = Path(__file__).resolve().parents[2]
STUDENTS = 4
CANCELLED = 2  # the array index cancelled mid-way


def grades(out: Path) -> dict[str, float]:
    with open(out / "grades.csv") as fh:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(fh)}


def run_module(*args, timeout=900):
    proc = subprocess.run(["nice", "-n", "15", sys.executable, "-m", "convae.grading.run", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, CONVAE_FAST="1", TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def sandbox_processes() -> list:
    top = UID_BASE + 2 * UID_COUNT + 20000  # the kernels' ids and the judges' (+10000)
    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and UID_BASE <= p.info["uids"].real < top]


@pytest.fixture(scope="module")
def work():
    folder = Path(tempfile.mkdtemp(prefix="convae-slurm-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(work):
    state = work / "slurm"
    slurmlib.up(state)
    try:
        yield state
    finally:
        slurmlib.down(state)


@pytest.fixture(scope="module")
def local(work):
    submissions = work / "submissions"
    write_class(submissions, STUDENTS)
    started = time.monotonic()
    proc = subprocess.run(["nice", "-n", "15", "make", "--no-print-directory", "grade", f"SUBMISSIONS={submissions}",
                           "WORKERS=2", f"GRADE_ARGS=--out {work / 'local'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"grades": grades(work / "local"), "seconds": time.monotonic() - started, "submissions": submissions}


@pytest.fixture(scope="module")
def on_slurm(work, cluster, local):
    plan, out, result = work / "plan", work / "slurm-out", {}
    started = time.monotonic()
    run_module(local["submissions"], "--plan", plan, "--out", out)
    jobs = (plan / "jobs.txt").read_text().split()
    assert len(jobs) == STUDENTS
    job = slurmlib.sbatch_array(cluster, plan / "jobs.txt", f"1-{len(jobs)}")
    deadline = time.monotonic() + 600
    while slurmlib.states(cluster, job).get(str(CANCELLED)) != "RUNNING":
        assert time.monotonic() < deadline, slurmlib.states(cluster, job)
        time.sleep(0.5)
    time.sleep(3)  # mid-way: its worker and kernel are up
    slurmlib.run(["scancel", f"{job}_{CANCELLED}"], cluster)
    result["first_states"] = slurmlib.wait(cluster, job)
    result["left_running"] = [p.pid for p in sandbox_processes()]
    cancelled_job = Path(jobs[CANCELLED - 1]).parent
    result["cancelled_student"] = __import__("json").loads((cancelled_job / "job.json").read_text())["student"]
    result["result_after_cancel"] = (cancelled_job / "result.json").exists()
    run_module("--collect", plan, "--out", out)
    result["first_grades"], result["first_log"] = grades(out), (out / "log.txt").read_text()
    # the cancelled task again, alone
    again = slurmlib.sbatch_array(cluster, plan / "jobs.txt", str(CANCELLED))
    result["second_states"] = slurmlib.wait(cluster, again)
    run_module("--collect", plan, "--out", out)
    result["grades"], result["log"] = grades(out), (out / "log.txt").read_text()
    result["seconds"] = time.monotonic() - started
    print(f"\nlocal WORKERS=2: {local['seconds']:.0f} s; Slurm (plan, array with one task cancelled and rerun, "
          f"two collects): {result['seconds']:.0f} s; {os.getloadavg()}")
    return result


def test_local_run_has_a_mix_of_scores(local):
    scores = sorted(local["grades"].values())
    assert len(scores) == STUDENTS and scores[0] < scores[-1], local["grades"]


def test_the_cancelled_task_was_cancelled_and_the_rest_completed(on_slurm):
    states = on_slurm["first_states"]
    assert states[str(CANCELLED)] == "CANCELLED", states
    assert all(s == "COMPLETED" for i, s in states.items() if i != str(CANCELLED)), states
    assert not on_slurm["result_after_cancel"]
    assert on_slurm["left_running"] == [], "sandboxed processes outlived the cancelled task"


def test_first_collect_loses_nobody(on_slurm, local):
    student = on_slurm["cancelled_student"]
    assert set(on_slurm["first_grades"]) == set(local["grades"])
    assert on_slurm["first_grades"][student] == 0
    assert f"{student}\t01-pixels\t- grader error: no result" in on_slurm["first_log"], on_slurm["first_log"]


def test_rerun_gives_the_local_grades(on_slurm, local):
    assert on_slurm["second_states"] == {str(CANCELLED): "COMPLETED"}, on_slurm["second_states"]
    assert on_slurm["grades"] == local["grades"], (on_slurm["grades"], local["grades"])
    assert "grader error" not in on_slurm["log"], on_slurm["log"]
