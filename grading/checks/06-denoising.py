"""Hidden checks of chapter 06 (see convae.judge): noise models judged by their statistics, PSNR and
the median filter against the author's answers, and the denoiser judged by training.

The reference answers are the author's functions in solutions/06-denoising/06-denoising.ipynb
(``psnr`` and ``median3x3``; the notebook asserts that they agree with scikit-image's
``peak_signal_noise_ratio`` and SciPy's ``median_filter``).

**Noise models** draw random numbers, so no answer equals the author's: each is judged on what any
correct answer must satisfy (which pixels may change, and to what) and on statistics of its output
on inputs chosen here (a mid-gray image for the unclipped noise, black and white pixels for the
clipping, pixels away from 0 and 1 so that salt, pepper and erased pixels can be told apart). A
statistic must lie within TOLERANCE standard errors of its exact expectation, so a correct answer
fails with a probability of about 2e-9 per statistic (two-sided normal tail beyond 6). Measured
(2026-12-02, the author's answers on seeds 10,000-10,999): add_gaussian_noise 0 failures in 5,000
cases, salt_and_pepper 0 in 4,000, mask_blocks 0 in 3,000; tests/test_denoising.py repeats it on
150 seeds and checks that answers with known mistakes fail.

**The denoiser** is the judge's own copy, rebuilt from its saved config and weights, checked
against :data:`convae.specs.DENOISER_SPEC`, then trained here for a few seconds on the fixed seeded
MNIST subset (:func:`convae.data.fixed_subset`) with clipped Gaussian noise of sigma 0.5 on the
inputs and the clean images as targets; it must raise the PSNR of held-out noisy digits by
PSNR_GAIN_THRESHOLD dB. See there for what was measured.
"""
import functools
import math

import numpy as np

from convae.checks import model_problems
from convae.judge import Exercise
from convae.specs import DENOISER_SPEC

#: standard errors a statistic may stray from its expectation
TOLERANCE = 6.0


def _phi(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _Phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def clipped_moments(sigma: float) -> tuple:
    """Mean and variance of clip(sigma * Z, 0, 1) for a standard normal Z: a black pixel's noise."""
    a = 1 / sigma
    tail = 1 - _Phi(a)
    mean = sigma * (_phi(0) - _phi(a)) + tail
    second = sigma**2 * ((_Phi(a) - 0.5) - a * _phi(a)) + tail
    return mean, second - mean**2


def _within(value, expected, standard_error, what, call, advice):
    if abs(value - expected) > TOLERANCE * standard_error:
        return (f"{call}: {what} is {value:.4f}, but for this noise it should be {expected:.4f} "
                f"(give or take {TOLERANCE * standard_error:.4f}). {advice}")
    return None


def _basic(actual, images, call):
    """Shape, dtype (kept from the input), finite values in [0, 1]; a sentence or None."""
    actual = np.asarray(actual)
    if actual.shape != images.shape:
        return f"{call} returned an array of shape {actual.shape}; expected the input's shape {images.shape}."
    if actual.dtype != images.dtype:
        return (f"{call} returned {actual.dtype} values for {images.dtype} images; keep the input's dtype "
                "(e.g. `.astype(images.dtype)` at the end).")
    if not np.all(np.isfinite(actual)):
        return f"{call} returned values that are not finite (nan or inf)."
    if actual.min() < 0 or actual.max() > 1:
        return (f"{call} returned values from {actual.min():.3f} to {actual.max():.3f}; pixels must stay in "
                "[0, 1]: clip the result (np.clip(..., 0, 1)).")
    return None


def _same_for_every_image(changes) -> bool:
    changes = changes.reshape(len(changes), -1)
    return len(changes) > 1 and all(np.array_equal(changes[0], c) for c in changes[1:])


# ---------------------------------------------------------------- Gaussian noise

def gaussian_cases(rng):
    cases = []
    # mid-gray, noise small enough never to reach 0 or 1 (0.5 is 6.25 sigma away or more)
    for shape, dtype in (((40, 28, 28), np.float64), ((40, 28, 28, 1), np.float32)):
        cases.append((np.full(shape, 0.5, dtype), float(rng.uniform(0.02, 0.08)), int(rng.integers(2**31))))
    # black and white pixels: the clipping
    for shape, dtype in (((30, 784), np.float32), ((30, 28, 28), np.float64)):
        images = (rng.uniform(size=shape) < 0.5).astype(dtype)
        cases.append((images, float(rng.uniform(0.1, 0.6)), int(rng.integers(2**31))))
    # ordinary images: only range, shape and dtype
    cases.append((rng.uniform(size=(5, 28, 28)).astype(np.float32), float(rng.uniform(0.05, 1.0)),
                  int(rng.integers(2**31))))
    return cases


def judge_gaussian(actual, expected, call, args):
    images, sigma, _ = args
    problem = _basic(actual, images, call)
    if problem:
        return problem
    noise = np.asarray(actual, np.float64) - images
    flat_noise, flat_images = noise.reshape(len(noise), -1), images.reshape(len(images), -1)
    if _same_for_every_image(flat_noise):
        return f"{call} adds the same noise to every image; draw one independent value per pixel of every image."
    mid = (flat_images >= 6 * sigma) & (flat_images <= 1 - 6 * sigma)
    if mid.all():
        n = noise.size
        advice = ("Add rng.normal(0, sigma, size=images.shape): sigma is the standard deviation, one "
                  "independent draw per pixel.")
        mean_problem = _within(noise.mean(), 0.0, sigma / math.sqrt(n), "the mean of the noise", call, advice)
        # variance within each image, pooled: a single draw per image has none
        within = float(np.mean(flat_noise.var(axis=1)))
        n_within = n - len(flat_noise)
        var_problem = _within(within, sigma**2, sigma**2 * math.sqrt(2 / n_within),
                              "the variance of the noise within an image", call, advice)
        # a Gaussian puts 68.3 % within one sigma (uniform noise of the same spread: 57.7 %)
        p = math.erf(1 / math.sqrt(2))
        share_problem = _within(float(np.mean(np.abs(noise) < sigma)), p, math.sqrt(p * (1 - p) / n),
                                "the share of pixels moved by less than sigma", call,
                                "The noise must be normal (Gaussian), not uniform.")
        return mean_problem or var_problem or share_problem
    for value, sign, word in ((0.0, 1, "black"), (1.0, -1, "white")):
        where = flat_images == value
        n = int(where.sum())
        if n == 0:
            continue
        moved = sign * flat_noise[where]  # how far a black pixel went up, a white one down
        untouched = float(np.mean(moved == 0))
        problem = _within(untouched, 0.5, math.sqrt(0.25 / n), f"the share of {word} pixels still exactly {value:g}",
                          call, "Half of the noise pushes them out of [0, 1], and clipping brings them back: "
                                "add the noise first, then clip.")
        if problem:
            return problem
        mean, variance = clipped_moments(sigma)
        problem = _within(float(moved.mean()), mean, math.sqrt(variance / n),
                          f"the mean change of {word} pixels", call,
                          "Use sigma as the standard deviation of the noise, added to every pixel, then clip.")
        if problem:
            return problem
    return None


# ---------------------------------------------------------------- salt and pepper

def salt_pepper_cases(rng):
    cases = []
    for shape, dtype in (((40, 28, 28), np.float64), ((40, 784), np.float32), ((20, 28, 28, 1), np.float32)):
        images = rng.uniform(0.05, 0.95, size=shape).astype(dtype)
        cases.append((images, float(rng.uniform(0.02, 0.5)), int(rng.integers(2**31))))
    cases.append((rng.uniform(0.05, 0.95, size=(3, 5, 7)), 0.0, int(rng.integers(2**31))))  # nothing changes
    return cases


def judge_salt_pepper(actual, expected, call, args):
    images, fraction, _ = args
    problem = _basic(actual, images, call)
    if problem:
        return problem
    actual = np.asarray(actual)
    changed = actual != images
    if np.any(changed & (actual != 0) & (actual != 1)):
        return f"{call} changed pixels to values other than 0 and 1; a hit pixel becomes pepper (0) or salt (1)."
    n, hits = changed.size, int(changed.sum())
    problem = _within(hits / n, fraction, math.sqrt(max(fraction * (1 - fraction), 1e-12) / n),
                      "the share of pixels hit", call,
                      "`fraction` is the share of all pixels that become 0 or 1, salt and pepper together.")
    if problem or hits == 0:
        return problem
    if _same_for_every_image(changed):
        return f"{call} hits the same pixels in every image; draw the hits independently for each image."
    return _within(float(np.mean(actual[changed] == 1)), 0.5, math.sqrt(0.25 / hits), "the share of salt (1) among the hit pixels",
                   call, "Salt and pepper are equally likely.")


# ---------------------------------------------------------------- masking

def mask_cases(rng):
    cases = []
    for shape in ((28, 28), (20, 16, 3), (12, 12, 1)):
        h, w = shape[:2]
        size = int(rng.integers(2, min(h, w) // 2 + 1))
        count = int(rng.integers(1, 5))
        positions = max(h - size + 1, w - size + 1)
        # enough blocks that each edge is touched: misses it with probability < 1e-9
        n = math.ceil(21 * positions / count)
        images = rng.uniform(0.05, 1.0, size=(n, *shape))
        cases.append((images, size, count, int(rng.integers(2**31))))
    return cases


def expected_erased(h, w, size, count) -> float:
    """Mean number of erased pixels: count squares at independent uniform positions, overlaps allowed."""
    rows, cols = h - size + 1, w - size + 1

    def cover(length, positions):  # how many positions put a square over each coordinate
        return np.array([min(i, positions - 1) - max(0, i - size + 1) + 1 for i in range(length)])

    q = np.outer(cover(h, rows), cover(w, cols)) / (rows * cols)
    return float(np.sum(1 - (1 - q) ** count))


def judge_mask(actual, expected, call, args):
    from scipy import ndimage

    images, size, count, _ = args
    problem = _basic(actual, images, call)
    if problem:
        return problem
    actual = np.asarray(actual)
    if np.any((actual != images) & (actual != 0)):
        return f"{call} changed pixels to values other than 0; an erased pixel is set to 0, every other pixel is kept."
    erased = actual == 0
    if erased.ndim == 4:
        if np.any(erased != erased[..., :1]):
            return f"{call} erases some channels of a pixel but not others; erase all of a pixel's channels."
        erased = erased[..., 0]
    n, h, w = erased.shape
    square = np.ones((size, size), bool)
    areas = erased.reshape(n, -1).sum(axis=1)
    for i in range(n):
        if not np.array_equal(ndimage.binary_opening(erased[i], structure=square), erased[i]):
            return (f"{call}: in image {i} the erased pixels are not a union of {size}x{size} squares that lie "
                    "inside the image; each block's top-left corner must leave room for the whole block.")
        if not size * size <= areas[i] <= count * size * size:
            return (f"{call}: image {i} has {areas[i]} erased pixels; {count} blocks of {size}x{size} erase "
                    f"between {size * size} and {count * size * size}.")
    if _same_for_every_image(erased):
        return f"{call} erases the same blocks in every image; draw the positions independently for each image."
    for what, line in (("top row", erased[:, 0, :]), ("bottom row", erased[:, -1, :]),
                       ("left column", erased[:, :, 0]), ("right column", erased[:, :, -1])):
        if not line.any():
            return (f"{call} never erased a pixel of the {what} in {n} images; every position that fits the "
                    f"block must be possible (the top-left corner runs from 0 to {h - size} and {w - size}).")
    # the area of a single image is at most count * size^2, so its standard deviation is at most half that
    return _within(float(areas.mean()), expected_erased(h, w, size, count), count * size * size / (2 * math.sqrt(n)),
                   "the mean number of erased pixels per image", call,
                   f"Erase `count` blocks in every image, each at its own random position.")


# ---------------------------------------------------------------- PSNR and the median filter

def psnr_cases(rng):
    cases = []
    for shape in ((6, 28, 28), (4, 784), (3, 28, 28, 1), (2, 5, 9)):
        clean = rng.uniform(size=shape)
        cases.append((clean, np.clip(clean + rng.normal(scale=rng.uniform(0.01, 0.5), size=shape), 0, 1)))
    clean = rng.uniform(size=(2, 28, 28)).astype(np.float32)
    cases.append((clean, clean + np.float32(0.25)))  # a constant error of 0.25: 12.04 dB
    return cases


def median_cases(rng):
    cases = []
    for _ in range(4):
        n, h, w = int(rng.integers(1, 6)), int(rng.integers(1, 30)), int(rng.integers(1, 30))
        cases.append((rng.uniform(size=(n, h, w)),))
    images = rng.uniform(size=(3, 28, 28))
    images[rng.uniform(size=images.shape) < 0.2] = 1.0  # salt: what a median removes
    cases.append((images,))
    return cases


# ---------------------------------------------------------------- the denoiser

#: fixed, so every submission is trained on the same images with the same noise and seed (189 steps)
TRAIN_IMAGES, HELD_OUT_IMAGES, EPOCHS, BATCH_SIZE, LEARNING_RATE, SEED, SIGMA = 2_000, 500, 3, 32, 3e-3, 6, 0.5
#: dB a trained copy must add to the PSNR of the 500 held-out noisy digits (9.39 dB at sigma 0.5).
#: Measured on this subset (2026-12-02, TF backend, 2 cores shared with a load average near 9, so
#: the seconds, which include compiling, are about 4 times an idle machine's):
#:   specified 16-32 / 32-16 (18,817 parameters):  17.78 dB, +8.40 (19 s)
#:   32 filters throughout (28,353):  +8.49 (21 s)
#:   smaller valid 4-32 / 8-4 (3,865):  +7.71 (16 s)
#:   smaller valid, decoder UpSampling2D(4) + Conv2D(1) (5,089):  +6.51 (17 s)
#:   the mean training digit for every input (a model that ignores its input):  11.86 dB, +2.47
#:   all-black output:  9.74 dB, +0.35;  broken, zero-initialised kernels:  8.12 dB, -1.26 (fails)
#: A skip connection around the code or a linear encoder is refused by the structure check first.
PSNR_GAIN_THRESHOLD = 4.0


@functools.lru_cache(maxsize=1)
def training_subset():
    """Clean and noisy (sigma 0.5, clipped, seeded) training and held-out images, (n, 28, 28, 1)."""
    from convae.data import fixed_subset

    x_train, _, x_held, _ = fixed_subset(TRAIN_IMAGES, HELD_OUT_IMAGES, SEED)
    rng = np.random.default_rng(SEED)
    maps = lambda images: images.reshape(len(images), 28, 28, 1).astype("float32") / 255  # noqa: E731
    noisy = lambda images: np.clip(images + rng.normal(0, SIGMA, images.shape), 0, 1).astype("float32")  # noqa: E731
    x_train, x_held = maps(x_train), maps(x_held)
    return x_train, noisy(x_train), x_held, noisy(x_held)


def mean_psnr(clean, estimates) -> float:
    errors = np.mean((np.asarray(clean, np.float64) - np.asarray(estimates, np.float64)).reshape(len(clean), -1) ** 2,
                     axis=1)
    return float(np.mean(10 * np.log10(1 / errors)))


def held_out_gain(model) -> tuple:
    """Train the judge's copy briefly (fixed optimiser and loss); (PSNR of its outputs, of the noisy inputs)."""
    import keras

    x, x_noisy, x_held, x_held_noisy = training_subset()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # the default 0.99 needs far more than these steps
    keras.utils.set_random_seed(SEED)
    # binary cross-entropy: with a sigmoid output, MSE starts far slower (a copy of the specified model
    # trained with MSE for these steps stays at the all-black image, 9.8 dB)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="binary_crossentropy")
    model.fit(x_noisy, x, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=0)
    denoised = keras.ops.convert_to_numpy(model.predict(x_held_noisy, batch_size=500, verbose=0))
    return mean_psnr(x_held, denoised), mean_psnr(x_held, x_held_noisy)


def judge_denoiser(model, reference, call, args):
    problem = model_problems(model, DENOISER_SPEC)
    if problem:
        return problem
    denoised, noisy = held_out_gain(model)
    if not denoised - noisy >= PSNR_GAIN_THRESHOLD:
        return (f"{DENOISER_SPEC.call} builds a model that does not learn to denoise: a copy trained for {EPOCHS} "
                f"epochs on {TRAIN_IMAGES:,} MNIST digits with Gaussian noise of sigma {SIGMA} (Adam, learning rate "
                f"{LEARNING_RATE}, binary cross-entropy against the clean digits) brings {HELD_OUT_IMAGES} other noisy "
                f"digits from {noisy:.1f} dB to {denoised:.1f} dB; it must gain at least {PSNR_GAIN_THRESHOLD} dB. "
                "Look at the activations (ReLU in the hidden layers), any initialisers or constraints you set, "
                "and the strides (the decoder must undo the encoder's).")
    return None


EXERCISES = {
    "add_gaussian_noise": Exercise(draw=gaussian_cases, judge=judge_gaussian, needs_reference=False),
    "salt_and_pepper": Exercise(draw=salt_pepper_cases, judge=judge_salt_pepper, needs_reference=False),
    "mask_blocks": Exercise(draw=mask_cases, judge=judge_mask, needs_reference=False),
    "psnr": Exercise(draw=psnr_cases, kind="f", atol=1e-6),
    "median3x3": Exercise(draw=median_cases, kind="f", atol=1e-12),
    # the judge ignores the author's model: the trusted side builds none (and imports no Keras)
    "build_denoiser": Exercise(draw=lambda rng: [()], judge=judge_denoiser, needs_reference=False,
                               max_params=DENOISER_SPEC.max_params),
}


# ---------------------------------------------------------------- known answers (tests/test_wrong_answers.py)
# More wrong noise models, each checked over many seeds, are in tests/test_denoising.py.

def gaussian_not_clipped(images, sigma, seed):
    return (images + np.random.default_rng(seed).normal(0, sigma, images.shape)).astype(images.dtype)


def gaussian_as_float64(images, sigma, seed):
    return np.clip(images + np.random.default_rng(seed).normal(0, sigma, images.shape), 0, 1)


def salt_only(images, fraction, seed):
    out = images.copy()
    out[np.random.default_rng(seed).random(images.shape) < fraction] = 1
    return out


def mask_ignoring_count(images, size, count, seed):
    out, rng = images.copy(), np.random.default_rng(seed)
    for image in out:
        top, left = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
        image[top:top + size, left:left + size] = 0
    return out


def psnr_with_20_log10(clean, estimate):
    mse = np.mean((np.asarray(clean, float) - np.asarray(estimate, float)).reshape(len(clean), -1) ** 2, axis=1)
    return 20 * np.log10(1 / mse)


def median_as_mean_filter(images):
    from scipy.ndimage import uniform_filter

    return np.stack([uniform_filter(np.asarray(image, float), 3, mode="nearest") for image in images])


def denoiser_zero_initialised():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((28, 28, 1)),
                              layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", kernel_initializer="zeros"),
                              layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="code",
                                            kernel_initializer="zeros"),
                              layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu",
                                                     kernel_initializer="zeros"),
                              layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


WRONG_ANSWERS = {
    "add_gaussian_noise": [(gaussian_not_clipped, r"must stay in \[0, 1\]: clip"),
                           (gaussian_as_float64, "keep the input's dtype")],
    "salt_and_pepper": [(salt_only, "Salt and pepper are equally likely")],
    "mask_blocks": [(mask_ignoring_count, "Erase `count` blocks in every image")],
    "psnr": [(psnr_with_20_log10, "returned wrong values")],
    "median3x3": [(median_as_mean_filter, "returned wrong values")],
    "build_denoiser": [(denoiser_zero_initialised, "does not learn to denoise")],
}
