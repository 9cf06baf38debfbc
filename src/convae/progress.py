"""Progress lines for long runs that people watch (``make grade``): "N of M, time left"."""
from __future__ import annotations

import time


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: short, and precise enough to plan a coffee."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts finished items of ``total`` and estimates the time left from the mean time per item
    so far (items run in parallel count as they finish, so the estimate includes the parallelism)."""

    def __init__(self, total: int, what: str = "done", clock=time.monotonic):
        self.total, self.what, self.clock = total, what, clock
        self.done, self.started = 0, clock()

    def step(self) -> str:
        """Count one more finished item; return the line to print."""
        self.done += 1
        elapsed = self.clock() - self.started
        line = f"{self.what} {self.done} of {self.total}, {duration(elapsed)} elapsed"
        if self.done < self.total:
            line += f", about {duration(elapsed / self.done * (self.total - self.done))} left"
        return line
