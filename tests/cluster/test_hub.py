"""A class on a real JupyterHub with nbgrader's exchange, as people do it (issue 16).

One instructor and three students (system users). Through the Hub's REST API the course's service
starts each user's server; each user runs nbgrader as themselves (``runuser -u``) and the students
write their answers through their own server's contents API. The instructor releases chapter 01;
alice answers everything, bob part, mallory is hostile: she replaces her submitted notebook in the
inbound folder with a link to the instructor's solutions, plants a 2 GB (sparse) file beside it
and forges a submission in alice's name. The instructor collects (the course's SafeCollect), grades
what was collected with ``make grade`` (as root, for the sandbox), releases feedback; each student
fetches their own feedback. What each student can and cannot reach in the exchange is asserted.
"""
from __future__ import annotations

import csv
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest

import hub as hublib
from convae.grading.corpus import answer, load, solution_cells

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = "01-pixels"
ALICE, BOB, MALLORY = hublib.STUDENTS
INSTRUCTOR = hublib.INSTRUCTOR


def home(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


def nbgrader(user, *args, state, cwd=None, check=True):
    return hublib.as_user(user, ["nbgrader", *args], state, cwd=cwd, check=check)


def shell(user, script, state, cwd=None):
    """A bash snippet as ``user``; (return code, stdout + stderr)."""
    proc = hublib.as_user(user, ["bash", "-c", script], state, cwd=cwd, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def hub():
    state = Path(tempfile.mkdtemp(prefix="convae-hub-"))
    hub = hublib.up(state)
    try:
        yield hub
    finally:
        for user in (INSTRUCTOR, *hublib.STUDENTS):
            try:
                hub.stop_server(user)
            except Exception:  # noqa: BLE001 (stopping everything whatever failed)
                pass
        hublib.down(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def term(hub):
    """The whole term, once: {step: what it left}, for the tests below to check."""
    state, course, out = hub.state, hub.course, {}
    # every user's server, started through the Hub's API
    for user in (INSTRUCTOR, *hublib.STUDENTS):
        hub.api("POST", f"/users/{user}/server", expect=(201, 202))
    out["servers"] = {user: hub.start_server(user)["servers"][""] for user in (INSTRUCTOR, *hublib.STUDENTS)}
    out["server_owner"] = {}
    for proc in psutil.process_iter(["cmdline", "username"]):
        if any("jupyterhub-singleuser" in part for part in proc.info["cmdline"] or []):
            user = proc.environ().get("JUPYTERHUB_USER")
            out["server_owner"].setdefault(user, []).append(proc.info["username"])

    nbgrader(INSTRUCTOR, "release_assignment", CHAPTER, state=state, cwd=course)
    release, source = load(CHAPTER, ROOT)
    ids = sorted(solution_cells(source))
    notebooks = {ALICE: answer(release, source), BOB: answer(release, source, solved=set(ids[: len(ids) // 2])),
                 MALLORY: answer(release, source, solved=set())}
    out["ids"] = ids
    submit_logs = {}
    for student, nb in notebooks.items():
        nbgrader(student, "fetch_assignment", CHAPTER, state=state)
        assert (home(student) / CHAPTER / f"{CHAPTER}.ipynb").is_file()
        # the answer, written by the student's own server (as the student), as JupyterLab saves it
        hub.server("PUT", student, f"/contents/{CHAPTER}/{CHAPTER}.ipynb",
                   {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(nb))})
        saved = home(student) / CHAPTER / f"{CHAPTER}.ipynb"
        assert pwd.getpwuid(saved.stat().st_uid).pw_name == student
        submit_logs[student] = nbgrader(student, "submit", CHAPTER, state=state).stderr
    # each student's inbound folder, as nbgrader's submit printed it to them
    inbound = {s: Path(re.search(r"Destination: (.+)", log).group(1).strip()) for s, log in submit_logs.items()}
    out["inbound"] = inbound

    # what a student can reach in the exchange
    ex = hub.exchange / hublib.COURSE_ID
    alice_ts = inbound[ALICE].name.split("+")[2]
    out["probes"] = {
        "list inbound": shell(MALLORY, f"ls {ex / 'inbound'}", state),
        "guess alice's submission": shell(
            MALLORY, f"cat '{ex / 'inbound' / f'{ALICE}+{CHAPTER}+{alice_ts}+AAAAAAAAAAAA'}/{CHAPTER}.ipynb'", state),
        "write into the release": shell(MALLORY, f"touch {ex / 'outbound' / CHAPTER / 'x.ipynb'}", state),
        "overwrite the released notebook": shell(MALLORY, f"echo x >> {ex / 'outbound' / CHAPTER / f'{CHAPTER}.ipynb'}", state),
        "read alice's home": shell(MALLORY, f"ls {home(ALICE)}", state),
        "read the instructor's solutions": shell(MALLORY, f"cat {course / 'solutions' / CHAPTER / f'{CHAPTER}.ipynb'}", state),
        "fetch the release again": shell(MALLORY, f"ls {ex / 'outbound' / CHAPTER}", state),
    }

    # mallory's attack on the collect: her notebook becomes a link to the solution, a 2 GB (sparse)
    # file beside it, and a forged submission in alice's name with a later timestamp
    solution = course / "solutions" / CHAPTER / f"{CHAPTER}.ipynb"
    mine = inbound[MALLORY]
    forged = ex / "inbound" / f"{ALICE}+{CHAPTER}+2099-01-01 00:00:00.000000 UTC+forged"
    code, text = shell(MALLORY, f"""set -e
        cd '{mine}'; chmod u+w . '{CHAPTER}.ipynb'; rm '{CHAPTER}.ipynb'
        ln -s '{solution}' '{CHAPTER}.ipynb'; truncate -s 2G big.ipynb
        mkdir '{forged}'; cp ~/{CHAPTER}/{CHAPTER}.ipynb '{forged}/'; echo '2099-01-01 00:00:00.000000 UTC' > '{forged}/timestamp.txt'
        ls -la '{mine}'""", state)
    assert code == 0, text
    out["planted"] = text

    collect = nbgrader(INSTRUCTOR, "collect", CHAPTER, state=state, cwd=course)
    out["collect_log"] = collect.stdout + collect.stderr
    submitted = course / "grading" / "submitted"
    out["submitted"] = {p.relative_to(submitted).as_posix(): p for p in sorted(submitted.rglob("*")) if p.is_file() or p.is_symlink()}
    out["answers"] = {s: json.loads(nbformat.writes(nb)) for s, nb in notebooks.items()}

    # grading, as root (the sandbox needs it), on what was collected; then the instructor's files again
    started = time.monotonic()
    grade = subprocess.run(["nice", "-n", "15", "make", "--no-print-directory", "grade", f"SUBMISSIONS={submitted}",
                            "WORKERS=2", f"GRADE_ARGS=--out {course / 'grading'}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
    out["grade_seconds"] = time.monotonic() - started
    assert grade.returncode == 0, grade.stdout[-3000:] + grade.stderr[-3000:]
    info = pwd.getpwnam(INSTRUCTOR)
    subprocess.run(["chown", "-R", f"{info.pw_uid}:{info.pw_gid}", str(course / "grading")], check=True)
    out["log"] = (course / "grading" / "log.txt").read_text()
    with open(course / "grading" / "grades.csv") as fh:
        out["grades"] = {row["student_id"]: row for row in csv.DictReader(fh)}

    release_fb = nbgrader(INSTRUCTOR, "release_feedback", CHAPTER, state=state, cwd=course)
    out["release_feedback_log"] = release_fb.stderr
    out["fetched"] = {}
    for student in hublib.STUDENTS:
        nbgrader(student, "fetch_feedback", CHAPTER, state=state)
        folder = home(student) / CHAPTER / "feedback"
        out["fetched"][student] = sorted(folder.rglob("*.html")) if folder.exists() else []
    out["probes"]["list released feedback"] = shell(ALICE, f"ls {ex / 'feedback'}", state)
    out["feedback_dir"] = course / "grading" / "feedback"
    return out


def test_servers_run_as_their_users(term):
    for user, server in term["servers"].items():
        assert server["ready"], user
    assert term["server_owner"] == {user: [user] for user in (INSTRUCTOR, *hublib.STUDENTS)}, term["server_owner"]


@pytest.mark.parametrize("probe", ["list inbound", "guess alice's submission", "write into the release",
                                   "overwrite the released notebook", "read alice's home",
                                   "read the instructor's solutions", "list released feedback"])
def test_students_cannot(term, probe):
    code, text = term["probes"][probe]
    assert code != 0, f"{probe}: a student could ({text!r})"
    assert "Permission denied" in text or "No such file" in text, text


def test_students_can_read_the_release(term):
    code, text = term["probes"]["fetch the release again"]
    assert code == 0 and f"{CHAPTER}.ipynb" in text, text


def test_collect_refuses_the_planted_link_the_big_file_and_the_forgery(term):
    log, submitted = term["collect_log"], term["submitted"]
    assert re.search(rf"refused, not collected: {MALLORY}\+{CHAPTER}\+[^/]+/{CHAPTER}\.ipynb: a symbolic link", log), log
    assert re.search(rf"refused, not collected: {MALLORY}\+{CHAPTER}\+[^/]+/big\.ipynb: too large, 2,147,483,648 bytes", log), log
    assert re.search(rf"refused, not collected: {ALICE}\+{CHAPTER}\+2099[^(]+\(named after {ALICE} but owned by {MALLORY}\)", log), log
    assert f"{MALLORY}/{CHAPTER}/{CHAPTER}.ipynb" not in submitted and f"{MALLORY}/{CHAPTER}/big.ipynb" not in submitted
    assert not any(p.is_symlink() for p in submitted.values())
    # alice's own submission, not the forgery; bob's as he wrote it
    for student in (ALICE, BOB):
        got = json.loads(submitted[f"{student}/{CHAPTER}/{CHAPTER}.ipynb"].read_text())
        assert [c["source"] for c in got["cells"]] == [c["source"] for c in term["answers"][student]["cells"]]
        assert f"{student}/{CHAPTER}/timestamp.txt" in submitted
        assert f"{student}/{CHAPTER}/submission_secret.txt" in submitted


def test_grades(term):
    grades, log = term["grades"], term["log"]
    score = {s: float(grades[s]["score"]) for s in hublib.STUDENTS}
    max_score = float(grades[ALICE]["max_score"])
    assert max_score > 0 and score[ALICE] == max_score, (score, log)
    assert 0 < score[BOB] < max_score, (score, log)
    assert score[MALLORY] == 0, (score, log)
    assert re.search(rf"{MALLORY}\t{CHAPTER}\t.*no notebook", log), log


def test_each_student_fetches_only_their_own_feedback(term):
    feedback = term["feedback_dir"]
    own = {s: (feedback / s / CHAPTER / f"{CHAPTER}.html").read_bytes() for s in hublib.STUDENTS}
    assert len(set(own.values())) == 3  # three different pages (mallory's: nothing collected, 0 points)
    for student in hublib.STUDENTS:
        fetched = term["fetched"][student]
        assert len(fetched) == 1, fetched
        assert fetched[0].read_bytes() == own[student]
        assert pwd.getpwuid(fetched[0].stat().st_uid).pw_name == student
