"""The judge, served on a unix socket from outside the student's sandbox.

The worker runs it in its own (trusted) process while nbgrader executes the student's notebook.
Every connection is one :func:`convae.judge.judge` exchange; every verdict is appended to a file the
sandbox cannot reach. After autograde the worker trusts those verdicts, not what the notebook says.
"""
from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

from convae.judge import judge


class JudgeServer:
    def __init__(self, address: Path, root: Path, record: Path, timeout: float = 300):
        self.address, self.root, self.record, self.timeout = Path(address), Path(root), Path(record), timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

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
        self.address.unlink(missing_ok=True)

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        conn.settimeout(self.timeout)
        try:
            with conn, conn.makefile("r") as reader, conn.makefile("w") as writer:
                request = json.loads(reader.readline() or "{}")
                verdict = judge(request, reader, writer, root=self.root)
        except Exception as err:  # a broken or hostile client must not take the judge down
            verdict = {"ok": False, "message": f"connection failed: {type(err).__name__}: {err}"}
        with self._lock, open(self.record, "a") as fh:
            fh.write(json.dumps(verdict) + "\n")
