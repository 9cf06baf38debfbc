"""The judge's trusted side, served on a unix socket from outside the student's sandbox.

The worker runs it in its own (trusted) process while nbgrader executes the student's notebook.
Each connection is one judgement (:func:`convae.judge.judge`): this side checks the request (a
chapter id and an identifier, never a path), draws the cases from ``secrets``, computes the
references from solutions/, sends the cases and reads the kernel's results as raw bytes. It never
decodes them: the sandboxed side (:mod:`convae.grading.judge_sandbox`, its own process, user id
and limits) does, and answers in one short line. Every verdict is appended to a file the sandbox
cannot reach; after autograde the worker trusts those verdicts, not what the notebook says.

What student code can send here is bounded: a request line of at most
:data:`convae.bounded.MAX_REQUEST_BYTES` within ``request_timeout`` seconds, a results line of at
most :data:`convae.bounded.MAX_RESULTS_BYTES` within ``results_timeout``, read in chunks (never an
unbounded ``readline()``); at most ``max_concurrent`` connections at once and ``max_connections``
per job; at most ``max_per_exercise`` judgements per exercise per job (a notebook's own hidden
tests need one or two; thousands would be harvesting the judge's messages). Refusals are counted
and, at the end of the job, written to the verdicts file as ``log`` lines for the run log.
"""
from __future__ import annotations

import json
import os
import socket
import threading
from collections import Counter
from pathlib import Path

from convae.bounded import MAX_REQUEST_BYTES, LineReader, Refused
from convae.grading.judge_sandbox import JUDGEMENT_SECONDS, SandboxedJudge
from convae.judge import RESULTS_TIMEOUT, checked_request, judge

#: judgements per exercise per job; the notebook's own hidden tests call each once or twice
MAX_PER_EXERCISE = 10
MAX_CONNECTIONS = 300
MAX_CONCURRENT = 4
REQUEST_TIMEOUT = 20


class JudgeServer:
    def __init__(self, address: Path, root: Path, record: Path, judge_policy: Path, *,
                 request_timeout: float = REQUEST_TIMEOUT, results_timeout: float = RESULTS_TIMEOUT,
                 judge_timeout: float = JUDGEMENT_SECONDS, max_per_exercise: int = MAX_PER_EXERCISE,
                 max_connections: int = MAX_CONNECTIONS, max_concurrent: int = MAX_CONCURRENT):
        self.address, self.root, self.record = Path(address), Path(root), Path(record)
        self.request_timeout, self.results_timeout = request_timeout, results_timeout
        self.max_per_exercise, self.max_connections = max_per_exercise, max_connections
        self.sandbox = SandboxedJudge(judge_policy, timeout=judge_timeout)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self.connections = 0
        self.judged: Counter = Counter()
        self.refused: Counter = Counter()
        self.broken: list[str] = []

    def __enter__(self):
        self.address.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.address))
        os.chmod(self.address, 0o666)  # the sandbox user connects; the folder stays root's
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._sock.close()
        self._thread.join(timeout=5)
        with self._lock:
            for conn in self._open:  # a client still connected gets end-of-file, its thread ends
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for worker in self._workers:
            worker.join(timeout=self.sandbox.timeout + 5)
        self.sandbox.close()
        self.address.unlink(missing_ok=True)
        self._write(self.summary())

    def summary(self) -> list[dict]:
        """``log`` records for what was refused during the job (empty when nothing was)."""
        lines = []
        for (chapter, exercise), count in sorted(self.refused.items()):
            lines.append({"log": f"judge: {count:,} more requests for {exercise} refused after the first "
                                 f"{self.max_per_exercise} (a notebook's own checks need one or two: this "
                                 "looks like harvesting the judge's messages)"})
        if self.broken:
            lines.append({"log": f"judge: {len(self.broken):,} connections broke the protocol and were closed "
                                 f"(first: {self.broken[0]})"})
        return lines

    def _write(self, records: list[dict]) -> None:
        if records:
            with self._lock, open(self.record, "a") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in records)

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            with self._lock:
                self.connections += 1
                over = self.connections > self.max_connections
            # at most max_concurrent at once; the next waits (others queue in the backlog) as long
            # as a request may take to arrive
            if over or not self._slots.acquire(timeout=self.request_timeout):
                with self._lock:
                    self.broken.append(f"more than {self.max_connections} connections in one job" if over
                                       else "too many connections at once")
                conn.close()
                continue
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._open.add(conn)
                self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()

    def _serve(self, conn: socket.socket):
        def reply(msg: dict) -> None:
            try:
                conn.sendall((json.dumps(msg) + "\n").encode())
            except OSError:  # the client went away; the verdict is still recorded
                pass

        try:
            reader = LineReader(conn.fileno())
            try:
                line = reader.line(MAX_REQUEST_BYTES, self.request_timeout, "the request")
                try:
                    request = json.loads(line)
                except (ValueError, RecursionError):
                    raise Refused("the request was not JSON") from None
                chapter, exercise = checked_request(request)
            except (Refused, EOFError) as err:
                with self._lock:
                    self.broken.append(str(err)[:200])
                reply({"error": f"the hidden check's judge could not read the request ({str(err)[:200]})."})
                return
            with self._lock:
                self.judged[(chapter, exercise)] += 1
                over = self.judged[(chapter, exercise)] > self.max_per_exercise
                if over:
                    self.refused[(chapter, exercise)] += 1
            if over:
                reply({"error": f"the hidden check of {exercise} was asked for more than {self.max_per_exercise} "
                                "times in this notebook; the judge answers no more (its own checks need one or two)."})
                return
            verdict = judge(request, reader, reply, root=self.root, verdict_of=self.sandbox.verdict,
                            timeout=self.results_timeout)
        except Exception as err:  # a broken or hostile client must not take the judge down
            verdict = {"ok": False, "message": f"connection failed: {type(err).__name__}: {str(err)[:200]}"}
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()
            self._slots.release()
        self._write([verdict])
