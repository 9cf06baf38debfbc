"""Wall time of N chapter-01 submissions: local ``make grade WORKERS=2`` next to this machine's Slurm.

``python grading/cluster/timing.py N [WORKDIR]`` (as root; CPU-heavy: run it niced, once, on a quiet
machine): writes a seeded class of N (convae.grading.corpus), grades it locally, then on a fresh
single-node Slurm (grading/cluster/slurm.py: ``run --plan``, one ``sbatch --array`` task per
submission, ``run --collect``), checks both give the same grades and prints both times and the load.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slurm  # noqa: E402

from convae.grading.corpus import write_class  # noqa: E402

ROOT = slurm.ROOT


def grades(out: Path) -> dict:
    with open(out / "grades.csv") as fh:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(fh)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0])
    work = Path(argv[1] if len(argv) > 1 else tempfile.mkdtemp(prefix="convae-timing-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    write_class(work / "submissions", n)
    env = dict(os.environ, CONVAE_FAST="1", TF_CPP_MIN_LOG_LEVEL="3")
    python = str(ROOT / ".venv" / "bin" / "python")
    print(f"# {n} submissions; load before: {os.getloadavg()}", flush=True)
    started = time.monotonic()
    subprocess.run(["make", "--no-print-directory", "grade", f"SUBMISSIONS={work / 'submissions'}", "WORKERS=2",
                    f"GRADE_ARGS=--out {work / 'local'}"], cwd=ROOT, check=True, env=env, capture_output=True)
    local = time.monotonic() - started
    print(f"local WORKERS=2: {local:.0f} s; load {os.getloadavg()}", flush=True)
    state = work / "slurm"
    slurm.up(state)
    try:
        started = time.monotonic()
        subprocess.run([python, "-m", "convae.grading.run", str(work / "submissions"), "--plan", str(work / "plan"),
                        "--out", str(work / "slurm-out")], cwd=ROOT, check=True, env=env, capture_output=True)
        job = slurm.sbatch_array(state, work / "plan" / "jobs.txt", f"1-{n}")
        final = slurm.wait(state, job, timeout=6 * 3600)
        subprocess.run([python, "-m", "convae.grading.run", "--collect", str(work / "plan"), "--out",
                        str(work / "slurm-out")], cwd=ROOT, check=True, env=env, capture_output=True)
        on_slurm = time.monotonic() - started
    finally:
        slurm.down(state)
    same = grades(work / "local") == grades(work / "slurm-out")
    failed = sorted(i for i, s in final.items() if s != "COMPLETED")
    print(f"Slurm (plan + array of {n}, 2 at a time + collect): {on_slurm:.0f} s; load {os.getloadavg()}; "
          f"same grades as local: {same}; tasks not completed: {failed or 'none'}")
    return 0 if same and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
