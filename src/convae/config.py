"""The fast/full switch, read in exactly one place.

Set ``CONVAE_FAST=1`` to run every chapter on small data with few epochs. Fast mode changes
*sizes*, never logic: notebooks call :func:`pick` (or :func:`subset`) wherever a size or an epoch
count appears, so CI, autograding and the benchmark all run the same code.
"""
from __future__ import annotations

import os

ENV_VAR = "CONVAE_FAST"
FAST: bool = os.environ.get(ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}
MODE: str = "fast" if FAST else "full"


def pick(full, fast):
    """Return ``fast`` in fast mode and ``full`` otherwise (sizes, epochs, batch counts)."""
    return fast if FAST else full


def subset(*arrays, full: int | None = None, fast: int):
    """The first ``fast`` (fast mode) or ``full`` (full mode; None = all) items of each array."""
    n = pick(full, fast)
    out = tuple(a if n is None else a[:n] for a in arrays)
    return out if len(out) > 1 else out[0]
