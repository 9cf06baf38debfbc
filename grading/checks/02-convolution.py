"""Hidden checks of chapter 02 (see convae.judge): how to draw fresh inputs and judge answers.

The reference answers are the author's functions in solutions/02-convolution/02-convolution.ipynb.
Image sizes, kernel sizes (square and not), channels, filters, strides and paddings vary from case
to case, so an answer hard-coded to the visible examples does not pass. When an answer is wrong in
a way that a common slip explains (a flipped kernel, the odd "same" zero on the wrong side, integer
output), the message names the slip. ``edge_kernel`` has many right answers: the kernel is judged
by what it does to fresh edge images, not by equality with the author's kernel.
"""
import numpy as np

from convae.checks import compare, describe
from convae.judge import Exercise


# ---------------------------------------------------------------- helpers (independent of the notebook)

def _correlate_valid(x, k, stride=1):
    """(H, W, C) x (kh, kw, C, N) -> (H', W', N), 'valid' cross-correlation."""
    kh, kw = k.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[::stride, ::stride]
    return np.einsum("ijcuv,uvcn->ijn", windows, k)


def _same_pads(size, f, stride, extra_before):
    total = max((-(-size // stride) - 1) * stride + f - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if extra_before else (small, big)


def _conv2d_variant(x, k, stride, padding, flip=False, extra_before=False):
    x = np.asarray(x, dtype=float)
    k = np.asarray(k, dtype=float)
    if flip:
        k = k[::-1, ::-1]
    if padding == "same":
        pads = [_same_pads(x.shape[0], k.shape[0], stride, extra_before),
                _same_pads(x.shape[1], k.shape[1], stride, extra_before)]
        x = np.pad(x, pads + [(0, 0)])
    return _correlate_valid(x, k, stride)


def _matches(actual, candidate, atol=1e-5):
    actual = np.asarray(actual)
    return (actual.shape == candidate.shape and actual.dtype.kind in "biuf"
            and np.allclose(actual.astype(float), candidate, atol=atol, rtol=1e-6))


FLIP_HINT = ("your answer is the result for the kernel flipped upside down and left to right: that is "
             "the textbook convolution (scipy.signal.convolve2d). Deep learning's convolution, and this "
             "exercise, lays the kernel over each window as it is: sum(window * kernel).")


# ---------------------------------------------------------------- conv2d_single

def single_case(rng, square):
    h, w = (int(v) for v in rng.integers(3, 16, size=2))
    # a square kernel must fit both sides (kh <= w too: a 12 x 3 image cannot take a 5 x 5 kernel)
    kh = int(rng.integers(1, min(h, w if square else h, 5) + 1))
    kw = kh if square else int(rng.integers(1, min(w, 5) + 1))
    image = rng.normal(size=(h, w)).round(2)
    kernel = rng.normal(size=(kh, kw)).round(2)
    return image, kernel


def judge_conv2d_single(actual, expected, call, args):
    problem = compare(actual, expected, call, kind="f", atol=1e-5)
    if problem and _matches(actual, _conv2d_variant(args[0][:, :, None], args[1][:, :, None, None], 1,
                                                    "valid", flip=True)[:, :, 0]):
        return f"{call}: {FLIP_HINT}"
    return problem


# ---------------------------------------------------------------- pad

def pad_case(rng, dtype):
    h, w = (int(v) for v in rng.integers(1, 12, size=2))
    if dtype == "uint8":
        image = rng.integers(1, 256, size=(h, w), dtype=np.uint8)
    else:
        image = rng.uniform(0.1, 1.0, size=(h, w))
    return image, int(rng.integers(1, 4))


def judge_pad(actual, expected, call, args):
    return compare(actual, expected, call, kind=np.asarray(expected).dtype.kind, atol=0)


# ---------------------------------------------------------------- output_size and same_padding

def size_case(rng, divisible):
    """(W, F, P, S) with F <= W + 2P; `divisible` says whether S divides W - F + 2P."""
    while True:
        s = int(rng.integers(1, 5)) if divisible else int(rng.integers(2, 5))
        f = int(rng.integers(1, 8))
        p = int(rng.integers(0, 4))
        w = int(rng.integers(max(f - 2 * p, 1), 80))
        if ((w - f + 2 * p) % s == 0) == divisible:
            return w, f, p, s


def same_case(rng, kind):
    s = 1 if kind in ("stride 1", "even kernel") else int(rng.integers(2, 5))
    if kind == "small kernel":  # F < S: the raw padding can be negative and must become 0
        w, f = int(rng.integers(2, 40)), 1
        while (w - 1) % s == 0:
            w += 1
        return w, f, s
    f = int(rng.integers(1, 4)) * 2 if kind == "even kernel" else int(rng.integers(1, 8))
    return int(rng.integers(max(f, 2), 60)), f, s


def judge_same_padding(actual, expected, call, args):
    problem = compare(actual, expected, call, kind="i", atol=0)
    if problem and np.shape(actual) == (2,) and np.asarray(actual).dtype.kind == "f":
        return (f"{call} returned floats {np.asarray(actual).tolist()}; return whole numbers, "
                "e.g. with // instead of / (and np.ceil(...) wrapped in int(...)).")
    if problem and np.shape(actual) == (2,) and np.asarray(actual).dtype.kind in "iuf":
        if not np.array_equal(actual, expected) and np.array_equal(np.asarray(actual)[::-1], expected):
            return (f"{call} returned {np.asarray(actual).tolist()}, expected {np.asarray(expected).tolist()}: "
                    "the extra zero goes after (bottom or right), not before.")
    return problem


# ---------------------------------------------------------------- conv2d_filter

def filter_case(rng, channels):
    kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
    h, w = int(rng.integers(kh, 13)), int(rng.integers(kw, 13))
    return rng.normal(size=(h, w, channels)).round(2), rng.normal(size=(kh, kw, channels)).round(2)


def filter_cases(rng):
    # one 1-channel case, the rest with 2-4 channels: an answer that ignores channels fails
    return [filter_case(rng, 1)] + [filter_case(rng, int(rng.integers(2, 5))) for _ in range(3)]


def judge_conv2d_filter(actual, expected, call, args):
    image, kernel = args
    problem = compare(actual, expected, call, kind="f", atol=1e-5)
    if not problem:
        return None
    out_h, out_w = np.shape(expected)
    if np.shape(actual) == (out_h, out_w, image.shape[2]):
        return (f"{call} returned one map per channel, shape {np.shape(actual)}; one filter gives one map: "
                f"add the channels up too, for shape {(out_h, out_w)}.")
    if _matches(actual, _conv2d_variant(image, kernel[..., None], 1, "valid", flip=True)[..., 0]):
        return f"{call}: {FLIP_HINT}"
    if image.shape[2] > 1 and _matches(actual, _correlate_valid(image[..., :1], kernel[..., :1, None])[..., 0]):
        return (f"{call}: your answer uses only the first channel; a filter as deep as the image sums its "
                "window over every channel.")
    return problem


# ---------------------------------------------------------------- conv2d

def conv_case(rng, padding, stride, f=None):
    f = f or int(rng.integers(1, 6))
    channels, filters = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = (int(v) for v in rng.integers(f, 13, size=2))
    image = rng.normal(size=(h, w, channels)).round(2)
    bank = rng.normal(size=(f, f, channels, filters)).round(2)
    return image, bank, stride, padding


def conv_cases(rng):
    cases = [
        conv_case(rng, "valid", 1),
        conv_case(rng, "valid", 2),
        conv_case(rng, "valid", 3),
        conv_case(rng, "same", 1, f=int(rng.choice([3, 5]))),
        conv_case(rng, "same", 1, f=int(rng.choice([2, 4]))),  # asymmetric padding
        conv_case(rng, "same", 2),
        conv_case(rng, "same", 3, f=int(rng.choice([2, 4]))),
    ]
    order = rng.permutation(len(cases))
    return [cases[i] for i in order]


def judge_conv2d(actual, expected, call, args):
    image, bank, stride, padding = args
    problem = compare(actual, expected, call, kind="f", atol=1e-5)
    if not problem:
        return None
    if np.shape(actual) != np.shape(expected):
        rule = ("with padding 'same' the output has ceil(H / stride) x ceil(W / stride) positions"
                if padding == "same" else
                "with padding 'valid' each axis has (size - F) // stride + 1 positions")
        return f"{problem} Remember: {rule}, and one feature map per filter (the last axis)."
    if _matches(actual, _conv2d_variant(image, bank, stride, padding, flip=True)):
        return f"{call}: {FLIP_HINT}"
    if padding == "same" and _matches(actual, _conv2d_variant(image, bank, stride, padding, extra_before=True)):
        return (f"{call}: your 'same' padding puts the odd extra zero row/column at the top/left; "
                "Keras puts it at the bottom/right (before = total // 2, after = total - before).")
    return problem


# ---------------------------------------------------------------- edge_kernel

WORDS = {
    "vertical": ("dark on the left and bright on the right", "horizontal", "row"),
    "horizontal": ("dark above and bright below", "vertical", "column"),
}


def _edge_image(rng, direction, position, shape=(9, 9)):
    lo, hi = sorted(rng.uniform(0.0, 1.0, size=2))
    hi = max(hi, lo + 0.2)
    image = np.full(shape, lo)
    image[:, position:] = hi  # a vertical edge: dark left, bright right
    return image if direction == "vertical" else image.T.copy()


def judge_edge_kernel(actual, expected, call, args):
    direction = str(args[0])
    edge_words, other, line = WORDS[direction]
    k = np.asarray(actual)
    if k.shape != (3, 3):
        return f"{call} returned {describe(actual)}; expected a 3x3 kernel."
    if k.dtype.kind not in "iuf" or not np.all(np.isfinite(k.astype(float))):
        return f"{call} returned a 3x3 array of dtype {k.dtype} or with NaN/infinite values; expected finite numbers."
    k = k.astype(float)
    scale = np.abs(k).max()
    if scale == 0:
        return f"{call} returned a kernel of zeros: it gives 0 everywhere, so it detects nothing."
    tol = 1e-6 * scale
    rng = np.random.default_rng()  # fresh test images every time; any correct kernel passes them all
    for level in rng.uniform(0.1, 1.0, size=3):
        response = _correlate_valid(np.full((7, 8, 1), level), k[:, :, None, None])[..., 0]
        if np.abs(response).max() > tol:
            return (f"{call} gives {response[0, 0]:.3g} on a flat image (every pixel {level:.2f}): an edge "
                    "detector must give 0 where nothing changes. Make its weights add up to 0.")
    for position in range(1, 9):
        image = _edge_image(rng, direction, position)
        response = _correlate_valid(image[:, :, None], k[:, :, None, None])[..., 0]
        if response.min() < -tol:
            return (f"{call} gives a negative response ({response.min():.3g}) to an edge that is {edge_words}; "
                    "the exercise asks for a positive one. Check the signs of your weights.")
        if 2 <= position <= 7 and response.max() <= tol:
            return f"{call} gives no positive response to an edge that is {edge_words}: it does not see the edge."
        crossing = _edge_image(rng, other, position)
        response = _correlate_valid(crossing[:, :, None], k[:, :, None, None])[..., 0]
        if np.abs(response).max() > tol:
            return (f"{call} responds ({np.abs(response).max():.3g}) to a {other} edge; it should give 0 "
                    f"there. A {other} edge is constant along each {line}, so what counts is the sum "
                    f"of each {line} of your kernel.")
    return None


# ---------------------------------------------------------------- relu

def relu_case(rng):
    shape = tuple(int(v) for v in rng.integers(1, 9, size=int(rng.integers(1, 4))))
    return (rng.normal(size=shape),)


EXERCISES = {
    "conv2d_single": Exercise(draw=lambda rng: [single_case(rng, square) for square in (True, False, False)],
                              judge=judge_conv2d_single),
    "pad": Exercise(draw=lambda rng: [pad_case(rng, "uint8"), pad_case(rng, "float"),
                                      (rng.uniform(0.1, 1, size=(3, 5)), 0)],
                    judge=judge_pad),
    "output_size": Exercise(draw=lambda rng: [size_case(rng, d) for d in (True, False, True, False, False, False)]),
    "same_padding": Exercise(
        draw=lambda rng: [same_case(rng, kind) for kind in ("stride 1", "even kernel", "stride 2+",
                                                            "stride 2+", "small kernel", "stride 2+")],
        judge=judge_same_padding),
    "conv2d_filter": Exercise(draw=filter_cases, judge=judge_conv2d_filter),
    "conv2d": Exercise(draw=conv_cases, judge=judge_conv2d),
    "edge_kernel": Exercise(draw=lambda rng: [(d,) for d in rng.permutation(["vertical", "horizontal"]).tolist()],
                            judge=judge_edge_kernel),
    "relu": Exercise(draw=lambda rng: [relu_case(rng) for _ in range(3)], kind="f", atol=1e-12),
}


# ---------------------------------------------------------------- known-wrong answers
# Common slips, each with a phrase its hidden check must answer it with (tests/test_wrong_answers.py):
# a check that lets one of them through, or answers it with another sentence, is broken.

def conv2d_single_flipped(image, kernel):  # scipy.signal.convolve2d's convolution
    k = np.asarray(kernel, dtype=float)[::-1, ::-1]
    return _correlate_valid(np.asarray(image, dtype=float)[:, :, None], k[:, :, None, None])[:, :, 0]


def conv2d_single_one_row_short(image, kernel):
    return conv2d_single_flipped(image, np.asarray(kernel)[::-1, ::-1])[:-1]


def pad_as_floats(image, p):
    image = np.asarray(image)
    out = np.zeros((image.shape[0] + 2 * p, image.shape[1] + 2 * p))
    out[p:p + image.shape[0], p:p + image.shape[1]] = image
    return out


def pad_after_only(image, p):
    return np.pad(np.asarray(image), ((0, 2 * p), (0, 2 * p)))


def output_size_true_division(W, F, P, S):
    return (W - F + 2 * P) / S + 1


def output_size_off_by_one(W, F, P, S):
    return (W - F + 2 * P) // S


def same_padding_extra_zero_before(W, F, S):
    total = max((-(-W // S) - 1) * S + F - W, 0)
    return np.array([total - total // 2, total // 2])


def same_padding_true_division(W, F, S):
    total = max((np.ceil(W / S) - 1) * S + F - W, 0)
    return np.array([total / 2, total / 2])


def conv2d_filter_flipped(image, kernel):
    return _conv2d_variant(image, np.asarray(kernel)[..., None], 1, "valid", flip=True)[..., 0]


def conv2d_filter_map_per_channel(image, kernel):  # forgot to add the channels up
    image, kernel = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
    return np.stack([_correlate_valid(image[..., c:c + 1], kernel[..., c:c + 1, None])[..., 0]
                     for c in range(image.shape[2])], axis=-1)


def conv2d_filter_first_channel_only(image, kernel):
    image, kernel = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
    return _correlate_valid(image[..., :1], kernel[..., :1, None])[..., 0]


def conv2d_flipped(image, bank, stride, padding):
    return _conv2d_variant(image, bank, stride, padding, flip=True)


def conv2d_same_zero_on_the_wrong_side(image, bank, stride, padding):
    return _conv2d_variant(image, bank, stride, padding, extra_before=True)


def conv2d_ignores_stride(image, bank, stride, padding):
    return _conv2d_variant(image, bank, 1, padding)


SOBEL = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def edge_kernel_of_zeros(direction):
    return np.zeros((3, 3))


def edge_kernel_wrong_sign(direction):
    return -SOBEL if direction == "vertical" else -SOBEL.T


def edge_kernel_other_direction(direction):
    return SOBEL.T if direction == "vertical" else SOBEL


def edge_kernel_not_zero_sum(direction):
    return SOBEL + 0.1 if direction == "vertical" else SOBEL.T + 0.1


def relu_as_abs(x):
    return np.abs(np.asarray(x, dtype=float))


def relu_rounds_to_int(x):
    return np.maximum(np.asarray(x), 0).astype(int)


WRONG_ANSWERS = {
    "conv2d_single": [(conv2d_single_flipped, "the textbook convolution"),
                      (conv2d_single_one_row_short, "returned an array of shape")],
    "pad": [(pad_as_floats, "expected unsigned integer values"), (pad_after_only, "wrong values")],
    "output_size": [(output_size_true_division, r"returned \d+\.\d+, expected \d+\."),
                    (output_size_off_by_one, r"returned \d+, expected \d+\.")],
    "same_padding": [(same_padding_extra_zero_before, "the extra zero goes after"),
                     (same_padding_true_division, "returned floats")],
    "conv2d_filter": [(conv2d_filter_flipped, "the textbook convolution"),
                      (conv2d_filter_map_per_channel, "one filter gives one map"),
                      (conv2d_filter_first_channel_only, "uses only the first channel")],
    "conv2d": [(conv2d_flipped, "the textbook convolution"),
               (conv2d_same_zero_on_the_wrong_side, "puts the odd extra zero row/column at the top/left"),
               (conv2d_ignores_stride, "Remember: with padding")],
    "edge_kernel": [(edge_kernel_of_zeros, "a kernel of zeros"), (edge_kernel_wrong_sign, "negative response"),
                    (edge_kernel_other_direction, r"responds \(\S+\) to a (horizontal|vertical) edge; it should give 0"),
                    (edge_kernel_not_zero_sum, "on a flat image")],
    "relu": [(relu_as_abs, "wrong values"), (relu_rounds_to_int, "expected floating-point values")],
}
#: other right answers: an edge detector has many (Prewitt's, a bare difference of columns)
def edge_kernel_prewitt(direction):
    prewitt = np.array([[-1.0, 0.0, 1.0]] * 3)
    return prewitt if direction == "vertical" else prewitt.T.copy()


def edge_kernel_difference_of_columns(direction):
    k = np.array([[0, -1, 1]] * 3, dtype=np.int64)
    return k if direction == "vertical" else k.T.copy()


VALID_ANSWERS = {"edge_kernel": [edge_kernel_prewitt, edge_kernel_difference_of_columns]}
