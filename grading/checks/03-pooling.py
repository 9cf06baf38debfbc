"""Hidden checks of chapter 03 (see convae.judge): how to draw fresh inputs and judge answers.

The reference answers are the author's functions in solutions/03-pooling/03-pooling.ipynb. Inputs
vary in height, width, channels, window size and stride, and include maps whose size is not a
multiple of the window (the leftover rows and columns must be dropped, as Keras's "valid" padding
does), strides smaller and larger than the window, and maps whose values are all negative (a
maximum started at 0 would be wrong).
"""
import numpy as np

from convae.judge import Exercise, exactly


# ---------------------------------------------------------------- output sizes and parameter counts

def size_cases(rng):
    cases = []
    for padding in ("valid", "valid", "valid", "same", "same", "same"):
        n = int(rng.integers(1, 64))
        cases.append((n, int(rng.integers(1, min(n, 7) + 1)), int(rng.integers(1, 5)), padding))
    # a window of 2 every 3 cells on 3k + 1 cells: the last cell fills no window
    cases.append((3 * int(rng.integers(3, 12)) + 1, 2, 3, "valid"))
    # windows that overlap, with a leftover
    cases.append((2 * int(rng.integers(5, 20)), 3, 2, "valid"))
    return cases


def dense_cases(rng):
    cases = []
    for pool in (1, 2, 3, int(rng.integers(2, 5))):
        height, width = (int(v) for v in rng.integers(pool, 48, size=2))
        cases.append((height, width, int(rng.integers(1, 65)), pool, int(rng.integers(1, 257))))
    side = int(rng.integers(3, 20))  # global pooling: a window as large as the map
    cases.append((side, side, int(rng.integers(1, 65)), side, int(rng.integers(1, 257))))
    return cases


# ---------------------------------------------------------------- maps to pool

def window(rng, height, width, stride=None):
    size = int(rng.integers(1, min(height, width, 5) + 1))
    return size, int(stride if stride is not None else rng.integers(1, 5))


def odd(rng, low, high):
    return int(rng.integers(low, high)) | 1


def map2d_cases(rng):
    cases = []
    h, w = odd(rng, 3, 25), odd(rng, 3, 25)  # odd sides, 2 x 2 windows: last row and column dropped
    cases.append((rng.normal(size=(h, w)), 2, 2))
    h, w = (int(v) for v in rng.integers(2, 25, size=2))  # all values negative
    cases.append((-rng.uniform(1, 10, size=(h, w)), *window(rng, h, w)))
    h, w = (int(v) for v in rng.integers(4, 25, size=2))  # bright uint8 pixels: a uint8 sum would wrap
    cases.append((rng.integers(100, 256, size=(h, w), dtype=np.uint8), int(rng.integers(2, 5)), int(rng.integers(1, 4))))
    h, w = (int(v) for v in rng.integers(6, 25, size=2))  # overlapping windows: stride < size
    cases.append((rng.normal(size=(h, w)) * 5, int(rng.integers(3, 6)), int(rng.integers(1, 3))))
    h, w = (int(v) for v in rng.integers(6, 25, size=2))  # stride > size: cells skipped
    cases.append((rng.normal(size=(h, w)), 2, int(rng.integers(3, 5))))
    return cases


def map3d(rng, low=2, negative=False):
    h, w = (int(v) for v in rng.integers(low, 21, size=2))
    x = rng.normal(size=(h, w, int(rng.integers(1, 7))))
    return -np.abs(x) if negative else x


def pool2d_cases(rng):
    cases = []
    for mode in ("max", "avg", "sum", "max", "avg", "sum"):
        x = map3d(rng, negative=(mode == "max" and not cases))
        cases.append((x, *window(rng, x.shape[0], x.shape[1]), mode))
    x = map3d(rng, low=5)
    x = x[: x.shape[0] - 1 + x.shape[0] % 2, : x.shape[1] - 1 + x.shape[1] % 2]  # odd height and width
    cases.append((x, 2, 2, "max"))
    # windows of one cell make "sum" and "avg" agree (7 % of draws above): a sum over 2 x 2 tells them apart
    cases.append((map3d(rng), 2, 1, "sum"))
    return cases


def global_cases(rng):
    cases = [(map3d(rng, low=1), mode) for mode in ("max", "avg", "max", "avg")]
    cases.append((map3d(rng, low=1, negative=True), "max"))
    cases.append((rng.integers(0, 256, size=(int(rng.integers(2, 15)), int(rng.integers(2, 15)), 3), dtype=np.uint8), "avg"))
    return cases


EXERCISES = {
    "pooled_size": Exercise(draw=size_cases, judge=exactly),
    "maxpool2d": Exercise(draw=map2d_cases, atol=0),
    "avgpool2d": Exercise(draw=map2d_cases, kind="f", atol=1e-6),
    "pool2d": Exercise(draw=pool2d_cases, kind="f", atol=1e-6),
    "global_pool": Exercise(draw=global_cases, kind="f", atol=1e-6),
    "dense_params": Exercise(draw=dense_cases, judge=exactly),
}


# ---------------------------------------------------------------- known-wrong answers
# Common slips, each with a phrase its hidden check must answer it with (tests/test_wrong_answers.py):
# a check that lets one of them through, or answers it with another sentence, is broken.

def _windows(x, size, stride):
    return np.lib.stride_tricks.sliding_window_view(np.asarray(x), (size, size), axis=(0, 1))[::stride, ::stride]


def pooled_size_same_as_valid(n, size, stride, padding):
    return (n - size) // stride + 1


def pooled_size_off_by_one(n, size, stride, padding):
    return -(-n // stride) if padding == "same" else (n - size) // stride


def maxpool_started_at_zero(image, size, stride):
    return np.maximum(_windows(image, size, stride).max(axis=(-2, -1)), 0)


def maxpool_keeps_leftovers(image, size, stride):
    image = np.asarray(image)
    rows, cols = -(-image.shape[0] // stride), -(-image.shape[1] // stride)
    return np.array([[image[i * stride:i * stride + size, j * stride:j * stride + size].max()
                      for j in range(cols)] for i in range(rows)])


def avgpool_sums_in_uint8(image, size, stride):
    image = np.asarray(image)
    return _windows(image, size, stride).sum(axis=(-2, -1), dtype=image.dtype) / (size * size)


def avgpool_ignores_stride(image, size, stride):
    return _windows(image, size, size).mean(axis=(-2, -1))


def pool2d_sum_as_mean(x, size, stride, mode):
    reduce = {"max": np.max, "avg": np.mean, "sum": np.mean}[mode]
    return reduce(_windows(x, size, stride), axis=(-2, -1))


def pool2d_ignores_stride(x, size, stride, mode):
    return {"max": np.max, "avg": np.mean, "sum": np.sum}[mode](_windows(x, size, 1), axis=(-2, -1))


def global_max_started_at_zero(x, mode):
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x.max(axis=(0, 1)), 0) if mode == "max" else x.mean(axis=(0, 1))


def global_pool_keeps_dims(x, mode):
    x = np.asarray(x, dtype=np.float64)
    return x.max(axis=(0, 1), keepdims=True) if mode == "max" else x.mean(axis=(0, 1), keepdims=True)


def dense_params_without_bias(height, width, channels, pool, units):
    return (height // pool) * (width // pool) * channels * units


def dense_params_rounds_up(height, width, channels, pool, units):
    return -(-height // pool) * -(-width // pool) * channels * units + units


# The student reads about the first drawn case that fails. Ignoring the stride changes the output's
# shape on most draws, but where the shapes happen to agree (a (16, 6) map, window 5, stride 4 gives
# 3 x 1 either way) it is the values that are wrong: both messages are right.
WRONG_ANSWERS = {
    "pooled_size": [(pooled_size_same_as_valid, r"returned -?\d+, expected \d+\."),
                    (pooled_size_off_by_one, r"returned -?\d+, expected \d+\.")],
    "maxpool2d": [(maxpool_started_at_zero, "wrong values"), (maxpool_keeps_leftovers, "returned an array of shape")],
    "avgpool2d": [(avgpool_sums_in_uint8, "wrong values"), (avgpool_ignores_stride, "returned an array of shape|returned wrong values")],
    "pool2d": [(pool2d_sum_as_mean, "wrong values"), (pool2d_ignores_stride, "returned an array of shape|returned wrong values")],
    "global_pool": [(global_max_started_at_zero, "wrong values"), (global_pool_keeps_dims, "returned an array of shape")],
    "dense_params": [(dense_params_without_bias, r"returned \d+, expected \d+\."),
                     (dense_params_rounds_up, r"returned \d+, expected \d+\.")],
}
