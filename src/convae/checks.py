"""Checks that students can read: call their function, compare, and explain a failure in plain words.

The visible test cells of every chapter use :func:`expect`; the hidden checks (``convae.judge``) use
the same :func:`compare` in a pristine process, so a student sees the same kind of message from both.

Every helper sets ``__tracebackhide__`` so that IPython shows the student the failed check, not the
internals of this module.
"""
from __future__ import annotations

import numpy as np

#: what a dtype "kind" letter means, in words for students
KIND_WORDS = {"f": "floating-point", "u": "unsigned integer", "i": "integer", "b": "boolean"}


class CheckFailed(AssertionError):
    """A check failed; the message says what is wrong and what to look at.

    IPython shows an exception through its ``_render_traceback_`` when it has one: a student sees
    the one sentence that matters, not this module's frames.
    """

    def _render_traceback_(self):
        return [f"\x1b[0;31mCheckFailed\x1b[0m: {self}"]


def describe(value) -> str:
    """A short description of a value: "a float32 array of shape (2, 3)", "None", "a list"."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if value is None:
        return "None (did you forget `return`?)"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def compare(actual, expected, call: str, *, kind: str | None = None, atol: float = 1e-6,
            rtol: float = 1e-6) -> str | None:
    """Compare a returned value with the expected array.

    Returns None when they agree, else a sentence naming ``call``, what was wrong and what was
    expected. ``kind`` is a NumPy dtype kind the result must have ("f" float, "u" uint8-like,
    "b" boolean); None accepts any numeric dtype.
    """
    expected = np.asarray(expected)
    if expected.ndim == 0:  # a number is expected (a size, a count): any real scalar will do
        if isinstance(actual, (bool, np.bool_)) or not (np.isscalar(actual) or np.ndim(actual) == 0):
            return f"{call} returned {describe(actual)}; expected a single number ({expected.item()!r})."
        if not np.isclose(float(actual), float(expected), atol=atol, rtol=rtol):
            return f"{call} returned {actual!r}, expected {expected.item()!r}."
        return None
    if not isinstance(actual, np.ndarray):
        if isinstance(actual, (list, tuple)) or np.isscalar(actual):
            return f"{call} returned {describe(actual)}; return a NumPy array instead (np.asarray helps)."
        return f"{call} returned {describe(actual)}; expected an array of shape {expected.shape}."
    if actual.shape != expected.shape:
        return (f"{call} returned an array of shape {actual.shape}, expected shape {expected.shape}. "
                "Check which axes you kept, removed or reshaped.")
    if kind is not None and actual.dtype.kind != kind:
        want = KIND_WORDS.get(kind, kind)
        extra = f" such as {expected.dtype}" if kind in "ui" else ""
        return f"{call} returned dtype {actual.dtype}, expected {want} values{extra}."
    if actual.dtype.kind not in "biuf":
        return f"{call} returned an array of dtype {actual.dtype}; expected numbers."
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    if not np.all(np.isfinite(a)):
        return f"{call} returned NaN or infinite values; expected finite numbers."
    close = np.isclose(a, e, atol=atol, rtol=rtol)
    if not close.all():
        wrong = np.argwhere(~close)
        first = tuple(int(i) for i in wrong[0])
        where = f"at index {first} " if first else ""
        return (f"{call} returned wrong values at {len(wrong)} of {close.size} positions: "
                f"{where}you returned {a[first]:.6g}, expected {e[first]:.6g}.")
    return None


def call_student(fn, *args, name: str | None = None):
    """Call a student function; turn an exception into a plain-words failure."""
    __tracebackhide__ = True
    name = name or getattr(fn, "__name__", "your function")
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(f"{name} is not written yet: replace `raise NotImplementedError()` "
                          "with your code, run that cell, then run this one.") from None
    except Exception as err:
        raise CheckFailed(f"{name} raised {type(err).__name__}: {err}") from None


def expect(fn, *args, returns, kind: str | None = None, atol: float = 1e-6, call: str | None = None,
           unchanged_inputs: bool = True):
    """Call ``fn(*args)`` and check that it returns ``returns``.

    ``call`` is how the call is shown in a failure message (default ``name(...)``). With
    ``unchanged_inputs`` the check also fails when the function modified an input array in place.
    """
    __tracebackhide__ = True
    name = getattr(fn, "__name__", "your function")
    call = call or f"{name}(...)"
    before = [a.copy() for a in args if isinstance(a, np.ndarray)]
    result = call_student(fn, *args, name=call)
    problem = compare(result, returns, call, kind=kind, atol=atol)
    if problem:
        raise CheckFailed(problem)
    if unchanged_inputs:
        after = [a for a in args if isinstance(a, np.ndarray)]
        if any(not np.array_equal(b, a) for b, a in zip(before, after)):
            raise CheckFailed(f"{call} changed its input array in place; work on a copy "
                              "(e.g. `images.astype(...)` or `images.copy()`) instead.")
    return result
