"""The judge's sandboxed side: where the grading pipeline parses and runs what a student sent.

The trusted side (:mod:`convae.grading.judge_server`, in the worker) draws the cases and computes
the references, but never decodes what the kernel answers. It hands the kernel's raw results line,
with the encoded cases and expected answers and the text of the chapter's
``grading/checks/<chapter>.py``, to this process, which decodes the arrays (headers checked
first), rebuilds models (archives checked first), runs the exercise's verdict (a comparison, or a
model's specification check and training) and answers ``{"ok", "message", "log"}`` in one short
line.

It runs through :mod:`convae.grading.sandbox` like the kernel: no network, the solutions, grading/
and the repository's history covered, rlimits (address space, CPU, file size), and a user id of
its own (:data:`JUDGE_UID_OFFSET` above the job's kernel uid), so the kernel cannot signal, trace or
read it. One process serves a whole job (a Keras import costs 6-7 s and ~570 MB); if it dies
(a hard limit, a crash in a C library), :class:`SandboxedJudge` says so in the verdict, logs it and
starts a new one for the next judgement.

Frames on its stdin: a JSON header line ``{"task": {...}, "results_bytes": N}`` then N raw bytes;
on its stdout: one JSON line per frame. Anything else that writes to stdout (a library's print)
goes to stderr instead, so it cannot break the protocol.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from convae.bounded import LineReader, Refused, write_all
from convae.judge import Task, memory_limit_words, verdict_on_results

#: the judge's user id = the job's kernel uid + this (kernel uids are 61000-64999, see run.py)
JUDGE_UID_OFFSET = 10_000
#: a task header from the trusted side (encoded cases and expected answers, the checks' text)
MAX_TASK_BYTES = 64 * 2**20
#: the sandboxed side's answer: a sentence, not a document
MAX_ANSWER_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 3000
#: seconds one judgement may take in the sandboxed side (measured: a chapter-04 model, Keras
#: import included, 10-20 s on 2 busy cores)
JUDGEMENT_SECONDS = 240


def write_policy(kernel_policy: Path, home: Path, uid: int) -> Path:
    """The sandboxed judge's policy: the kernel's (same covers, hidden folders and limits) with its
    own folder and user id, stdin/stdout kept for the protocol, and no view of the kernel's folder
    or the judge's socket."""
    policy = json.loads(Path(kernel_policy).read_text())
    home.mkdir(parents=True, exist_ok=True)
    if policy["caps"].get("separate_user"):
        os.chown(home, uid, uid)
    os.chmod(home, 0o700)
    dropped = {str(Path(policy["home"]))} | {p for p in policy["keep"] if p.endswith("/judge")}
    policy.update(home=str(home), uid=uid, gid=uid, stdio="keep", log=".judge.log",
                  keep=[p for p in policy["keep"] if p not in dropped] + [str(home)])
    path = Path(kernel_policy).with_name("judge-policy.json")
    path.write_text(json.dumps(policy))
    return path


class SandboxedJudge:
    """The trusted side's handle on the sandboxed process: one judgement at a time, each with a
    wall-time limit; a dead or stuck process is killed, reported and restarted on the next call."""

    def __init__(self, policy: Path, timeout: float = JUDGEMENT_SECONDS):
        self.policy, self.timeout = Path(policy), timeout
        self.proc: subprocess.Popen | None = None
        self.reader: LineReader | None = None
        self.lock = threading.Lock()
        self.starts = 0

    def _start(self) -> None:
        command = [sys.executable, "-m", "convae.grading.sandbox", str(self.policy), "--",
                   sys.executable, "-m", "convae.grading.judge_sandbox"]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)
        self.reader = LineReader(self.proc.stdout.fileno())
        self.starts += 1

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            for stream in (self.proc.stdin, self.proc.stdout):
                stream.close()
        self.proc = self.reader = None

    def verdict(self, task: Task, raw: bytes) -> dict:
        header = json.dumps({"task": asdict(task), "results_bytes": len(raw)}).encode() + b"\n"
        with self.lock:
            for attempt in (1, 2):
                if self.proc is None or self.proc.poll() is not None:
                    self._stop()
                    self._start()
                try:
                    write_all(self.proc.stdin.fileno(), header, raw)
                    answer = json.loads(self.reader.line(MAX_ANSWER_BYTES, self.timeout, "the judge's verdict"))
                    if not (isinstance(answer, dict) and isinstance(answer.get("ok"), bool)
                            and isinstance(answer.get("message"), str)):
                        raise ValueError("not a verdict")
                    break
                except (OSError, EOFError) as err:
                    # it died: perhaps between two judgements, so once more on a fresh process
                    self._stop()
                    if attempt == 1:
                        continue
                    failure = err
                except ValueError as err:  # Refused is a ValueError: too long or too slow
                    self._stop()
                    failure = err
                return self._failure(task, failure)
            return {"ok": answer["ok"], "message": answer["message"][:MAX_MESSAGE_CHARS],
                    **({"log": str(answer["log"])[:500]} if answer.get("log") else {})}

    def _failure(self, task: Task, err: Exception) -> dict:
        what = ("died" if isinstance(err, (OSError, EOFError)) else "did not answer in time"
                if isinstance(err, Refused) else "answered something that is not a verdict")
        message = (f"the grader's copy of your answer could not be judged within {self.limits_words()}: "
                   f"{task.exercise} returns something far larger or slower than the exercise asks for.")
        return {"ok": False, "message": message,
                "log": f"judge: {task.exercise}: the sandboxed judge {what} ({str(err)[:200]}); "
                       "restarted for the next check"}

    def limits_words(self) -> str:
        try:
            memory = json.loads(self.policy.read_text())["memory_bytes"] / 2**30
        except (OSError, ValueError, KeyError):
            return f"{self.timeout:.0f} s"
        return f"{memory:.0f} GB and {self.timeout:.0f} s"

    def close(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.stdin.close()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            self._stop()


def serve(fd_in: int, fd_out: int) -> int:
    """The sandboxed process: judge frames until the trusted side closes the pipe."""
    reader = LineReader(fd_in)
    while True:
        try:
            header = json.loads(reader.line(MAX_TASK_BYTES, None, "a task"))
            raw = reader.exactly(int(header["results_bytes"]), None, "the results")
        except EOFError:
            return 0
        try:
            answer = verdict_on_results(Task(**header["task"]), raw)
        except MemoryError:
            answer = {"ok": False, "message": f"the hidden check could not judge your answer within "
                                              f"{memory_limit_words()}.", "log": "judge: out of memory"}
        except Exception as err:  # the job goes on: a sentence, and a line for the instructor
            answer = {"ok": False, "message": "the hidden check could not judge your answer "
                                              f"({type(err).__name__}); tell your instructor.",
                      "log": f"judge: {header['task'].get('exercise')}: {type(err).__name__}: {str(err)[:200]}"}
        answer["message"] = answer["message"][:MAX_MESSAGE_CHARS]
        write_all(fd_out, json.dumps(answer).encode() + b"\n")


def main() -> int:
    sys.dont_write_bytecode = True
    protocol_out = os.dup(1)
    os.dup2(2, 1)  # a stray print (TensorFlow, a library) must not reach the protocol
    sys.stdout = os.fdopen(1, "w", buffering=1)
    return serve(0, protocol_out)


if __name__ == "__main__":
    sys.exit(main())
