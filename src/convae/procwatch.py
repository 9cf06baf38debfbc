"""Watch a set of processes from a background thread: peak resident memory, and a hook to act.

Used by ``make bench`` (peak memory of a chapter's kernel) and by the grading worker (limits on a
student's processes).
"""
from __future__ import annotations

import threading
import time


def total_rss(processes) -> int:
    """Resident memory of ``processes`` in bytes; processes that vanished count as 0."""
    import psutil

    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def kill_processes(processes) -> None:
    """SIGKILL each of ``processes``; those already gone are skipped."""
    import psutil

    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            pass


class ProcessWatch:
    """Subclasses say which processes to watch, and may stop watching by returning True from check."""

    interval = 0.1

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def processes(self) -> list:
        raise NotImplementedError

    def check(self, rss: int, elapsed: float) -> bool:
        return False

    def _run(self):
        # A sample at once and a last one when stopped, so a block shorter than one interval is measured.
        start = time.monotonic()
        while True:
            rss = total_rss(self.processes())
            self.peak = max(self.peak, rss)
            if self.check(rss, time.monotonic() - start):
                return
            if self._stop.wait(self.interval):
                break
        self.peak = max(self.peak, total_rss(self.processes()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
