"""The fast/full switch and the progress switch, each read in exactly one place.

Set ``CONVAE_FAST=1`` to run every chapter on small data with few epochs. Fast mode changes
*sizes*, never logic: notebooks call :func:`pick` (or :func:`subset`) wherever a size or an epoch
count appears, so CI, autograding and the benchmark all run the same code.

Next to it, ``CONVAE_PROGRESS`` says how training reports its epochs (:func:`keras_verbose` turns
it into Keras's ``fit(verbose=...)``; Keras itself cannot tell a browser from a log file):

- ``bar`` (the default, for a student in JupyterLab): Keras's live progress bar;
- ``epoch``: one line per epoch, for outputs that are stored rather than watched: the book, the
  tests, ``make bench`` and the grader set it (:func:`headless_progress`; ``off``, if set, stays),
  since a bar's carriage-return updates would fill the stored notebook;
- ``off``: nothing.
"""
from __future__ import annotations

import os

ENV_VAR = "CONVAE_FAST"
FAST: bool = os.environ.get(ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}
MODE: str = "fast" if FAST else "full"

PROGRESS_ENV = "CONVAE_PROGRESS"
#: What each value of CONVAE_PROGRESS passes to Keras's ``fit(verbose=...)``.
KERAS_VERBOSE = {"bar": 1, "epoch": 2, "off": 0}
DEFAULT_PROGRESS, HEADLESS_PROGRESS = "bar", "epoch"


def pick(full, fast):
    """Return ``fast`` in fast mode and ``full`` otherwise (sizes, epochs, batch counts)."""
    return fast if FAST else full


def subset(*arrays, full: int | None = None, fast: int):
    """The first ``fast`` (fast mode) or ``full`` (full mode; None = all) items of each array."""
    n = pick(full, fast)
    out = tuple(a if n is None else a[:n] for a in arrays)
    return out if len(out) > 1 else out[0]


def progress(environ=None) -> str:
    """The CONVAE_PROGRESS setting of ``environ`` (default: this process's), checked; unset or empty
    means ``bar``. Read at each call, so a test or a runner can change it without reimporting."""
    environ = os.environ if environ is None else environ
    value = environ.get(PROGRESS_ENV, "").strip().lower() or DEFAULT_PROGRESS
    if value not in KERAS_VERBOSE:
        raise ValueError(f"{PROGRESS_ENV}={environ[PROGRESS_ENV]!r} is not a progress setting; "
                         f"use one of: {', '.join(KERAS_VERBOSE)}")
    return value


def keras_verbose(verbose: int | None = None) -> int:
    """What to pass to Keras's ``fit(verbose=...)``: 1 (bar), 2 (one line per epoch) or 0 (off).

    A ``verbose`` given by the caller wins (a sweep passes 0 and prints a line per model itself);
    None means the CONVAE_PROGRESS setting."""
    return KERAS_VERBOSE[progress()] if verbose is None else verbose


def headless_progress(environ=None) -> str:
    """The setting for a kernel whose outputs are stored, not watched: ``epoch``, or ``off`` if that
    was asked for (a bar, the default, is for a screen)."""
    return "off" if progress(environ) == "off" else HEADLESS_PROGRESS


def headless_env(environ=None) -> dict:
    """A copy of ``environ`` (default: this process's) for such a kernel: CONVAE_PROGRESS set by
    :func:`headless_progress`."""
    environ = dict(os.environ if environ is None else environ)
    return {**environ, PROGRESS_ENV: headless_progress(environ)}
