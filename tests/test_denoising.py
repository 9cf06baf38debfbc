"""Chapter 06's hidden checks and helpers.

The noise models are judged by statistics (grading/checks/06-denoising.py): the author's answers
must pass on many seeds (a false failure fails a correct student at random), and answers with the
mistakes students make must fail. PSNR and the median filter are checked against scikit-image and
SciPy, and the denoiser's judge is run on the specified model and on a broken one.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT
from convae import denoising
from convae.judge import load_exercises, load_references

CHAPTER = "06-denoising"
EXERCISES = load_exercises(CHAPTER, ROOT)
#: seeds per statistical exercise here (1,000 seeds, measured once: no failure; see the checks' docstring)
SEEDS = 150


@pytest.fixture(scope="module")
def references():
    return load_references(CHAPTER, ROOT)


def verdicts(name, answer, seeds):
    """The judge's sentences for ``answer`` on every case of every seed (None where it passed)."""
    spec = EXERCISES[name]
    out = []
    for seed in seeds:
        for args in spec.draw(np.random.default_rng(seed)):
            copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            out.append(spec.verdict(answer(*copies), None, name, args))
    return out


@pytest.mark.parametrize("name", ["add_gaussian_noise", "salt_and_pepper", "mask_blocks"])
def test_the_authors_noise_models_pass_on_every_seed(name, references):
    failures = [v for v in verdicts(name, references[name], range(SEEDS)) if v]
    assert not failures, f"{len(failures)} false failures, e.g. {failures[0]}"


# ---------------------------------------------------------------- known wrong answers

def gaussian_wrong():
    def no_clip(x, s, seed):
        return (x + np.random.default_rng(seed).normal(0, s, x.shape)).astype(x.dtype)

    def variance(x, s, seed):
        return np.clip(x + np.random.default_rng(seed).normal(0, s**2, x.shape), 0, 1).astype(x.dtype)

    def uniform(x, s, seed):
        half = s * np.sqrt(3)  # the same standard deviation
        return np.clip(x + np.random.default_rng(seed).uniform(-half, half, x.shape), 0, 1).astype(x.dtype)

    def one_per_image(x, s, seed):
        noise = np.random.default_rng(seed).normal(0, s, (len(x),) + (1,) * (x.ndim - 1))
        return np.clip(x + noise, 0, 1).astype(x.dtype)

    def same_for_all(x, s, seed):
        return np.clip(x + np.random.default_rng(seed).normal(0, s, x.shape[1:]), 0, 1).astype(x.dtype)

    def float64(x, s, seed):
        return np.clip(x + np.random.default_rng(seed).normal(0, s, x.shape), 0, 1)

    def rescaled(x, s, seed):  # min-max scaling instead of clipping
        y = x + np.random.default_rng(seed).normal(0, s, x.shape)
        return ((y - y.min()) / (y.max() - y.min())).astype(x.dtype)

    return [no_clip, variance, uniform, one_per_image, same_for_all, float64, rescaled]


def salt_pepper_wrong():
    def salt_only(x, p, seed):
        y = x.copy()
        y[np.random.default_rng(seed).uniform(size=x.shape) < p] = 1
        return y

    def twice_the_fraction(x, p, seed):
        rng = np.random.default_rng(seed)
        y = x.copy()
        y[rng.uniform(size=x.shape) < p] = 0
        y[rng.uniform(size=x.shape) < p] = 1
        return y

    def same_for_all(x, p, seed):
        rng = np.random.default_rng(seed)
        hit = rng.uniform(size=x.shape[1:]) < p
        y = x.copy()
        y[:, hit] = rng.integers(0, 2, size=hit.sum())
        return y

    def random_values(x, p, seed):
        rng = np.random.default_rng(seed)
        hit = rng.uniform(size=x.shape) < p
        y = x.copy()
        y[hit] = rng.uniform(size=hit.sum())
        return y

    return [salt_only, twice_the_fraction, same_for_all, random_values]


def _blocks(x, size, count, seed, corner_high, cut=False, value=0.0, same=False):
    rng = np.random.default_rng(seed)
    y = x.copy()
    n, h, w = x.shape[:3]
    rows = rng.integers(0, corner_high(h, size), size=(1 if same else n, count))
    cols = rng.integers(0, corner_high(w, size), size=(1 if same else n, count))
    for i in range(n):
        for r, c in zip(rows[0 if same else i], cols[0 if same else i]):
            y[i, r:r + size, c:c + size] = value
    return y


def mask_wrong():
    fits = lambda length, size: length - size + 1  # noqa: E731
    return [
        lambda x, s, k, seed: _blocks(x, s, k, seed, lambda length, size: length - size),  # last position never drawn
        lambda x, s, k, seed: _blocks(x, s, k, seed, lambda length, size: length),  # blocks cut at the border
        lambda x, s, k, seed: _blocks(x, s, 1, seed, fits),  # count ignored
        lambda x, s, k, seed: _blocks(x, s, k, seed, fits, same=True),  # same blocks in every image
        lambda x, s, k, seed: _blocks(x, s, k, seed, fits, value=1.0),  # erased to white
    ]


@pytest.mark.parametrize("name,wrong", [("add_gaussian_noise", f) for f in gaussian_wrong()]
                         + [("salt_and_pepper", f) for f in salt_pepper_wrong()]
                         + [("mask_blocks", f) for f in mask_wrong()])
def test_a_wrong_noise_model_fails(name, wrong):
    for seed in range(3):  # every draw must catch it
        assert any(verdicts(name, wrong, [seed])), f"{name}: a wrong answer passed for seed {seed}"


def test_psnr_and_the_median_agree_with_scikit_image_and_scipy(references):
    from scipy import ndimage
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    for clean, estimate in EXERCISES["psnr"].draw(rng):
        expected = [peak_signal_noise_ratio(c.astype(np.float64), e.astype(np.float64), data_range=1.0)
                    for c, e in zip(clean, estimate)]
        assert np.allclose(references["psnr"](clean, estimate), expected, atol=1e-9)
    for (images,) in EXERCISES["median3x3"].draw(rng):
        expected = ndimage.median_filter(images, size=(1, 3, 3), mode="nearest")
        assert np.allclose(references["median3x3"](images), expected, atol=0)


@pytest.mark.parametrize("name,wrong", [
    ("psnr", lambda c, e: 20 * np.log10(1 / np.mean((c - e).reshape(len(c), -1) ** 2, axis=1))),
    ("psnr", lambda c, e: 10 * np.log(1 / np.mean((c - e).reshape(len(c), -1) ** 2, axis=1))),
    ("psnr", lambda c, e: 10 * np.log10(255**2 / np.mean((c - e).reshape(len(c), -1) ** 2, axis=1))),
    ("median3x3", lambda x: np.stack([__import__("scipy.ndimage").ndimage.uniform_filter(i, 3, mode="nearest")
                                      for i in x])),
    ("median3x3", lambda x: __import__("scipy.ndimage").ndimage.median_filter(x, size=(1, 3, 3), mode="constant")),
    ("median3x3", lambda x: __import__("scipy.ndimage").ndimage.median_filter(x, size=(1, 3, 3), mode="mirror")),
])
def test_a_wrong_psnr_or_median_fails(name, wrong, references):
    spec = EXERCISES[name]
    cases = spec.draw(np.random.default_rng(1))
    problems = [spec.verdict(wrong(*args), references[name](*args), name, args) for args in cases]
    assert any(problems)


# ---------------------------------------------------------------- helpers

def test_tune_picks_the_best_setting_on_the_images_it_is_given():
    clean = np.zeros((4, 6, 6))
    noisy = clean + 0.3

    def shrink(x, factor):
        return x * factor

    def score(c, e):
        return -np.mean((c - e).reshape(len(c), -1) ** 2, axis=1)

    best, means = denoising.tune(shrink, [{"factor": 1.0}, {"factor": 0.1}, {"factor": 0.5}], noisy, clean, score)
    assert best == {"factor": 0.1}
    assert means["factor=0.1"] > means["factor=0.5"] > means["factor=1"]


def test_noisy_batches_draw_fresh_noise_every_epoch_reproducibly():
    clean = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)

    def corrupt(x, seed):  # a recognisable "noise": the seed, added to the image
        return x + seed

    batches = denoising.NoisyBatches(clean, corrupt, batch_size=4, seed=3)
    assert len(batches) == 3

    def epoch(b):
        pairs = [b[i] for i in range(len(b))]
        b.on_epoch_end()
        return pairs

    first, second = epoch(batches), epoch(batches)
    for pairs in (first, second):  # every image once per epoch, the clean image as its target
        targets = np.concatenate([t for _, t in pairs]).ravel()
        assert sorted(targets) == list(range(10))
        assert all(x.dtype == t.dtype == np.float32 and x.shape == t.shape for x, t in pairs)
    offsets = lambda pairs: {float((x - t).ravel()[0]) for x, t in pairs}  # noqa: E731
    assert len(offsets(first) | offsets(second)) == 6, "every batch of every epoch needs its own seed"
    again = denoising.NoisyBatches(clean, corrupt, batch_size=4, seed=3)
    assert all(np.array_equal(x, y) and np.array_equal(t, u) for (x, t), (y, u) in zip(first, epoch(again)))
    other = denoising.NoisyBatches(clean, corrupt, batch_size=4, seed=4)
    assert offsets(epoch(other)).isdisjoint(offsets(first))


def test_noisy_batches_draw_the_target_noise_with_its_own_seed():
    clean = np.zeros((8, 2, 2, 1), dtype=np.float32)

    def corrupt(x, seed):
        return x + np.random.default_rng(seed).normal(size=x.shape)

    plain = denoising.NoisyBatches(clean, corrupt, batch_size=8, seed=1)
    paired = denoising.NoisyBatches(clean, corrupt, batch_size=8, seed=1, target_noise=corrupt)
    (x, t), (x2, t2) = plain[0], paired[0]
    assert np.array_equal(x, x2), "the same seed gives the same inputs, with or without a noisy target"
    assert np.array_equal(t, clean) and not np.allclose(t2, x2), "the target's noise is an independent draw"


def test_fit_denoiser_takes_one_step_per_batch_and_refuses_a_second_call():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Conv2D(1, 3, padding="same", activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    clean = np.random.default_rng(0).uniform(size=(64, 28, 28, 1)).astype("float32")
    assert denoising.fit_denoiser(model, clean, lambda x, seed: x, epochs=2, batch_size=16) > 0
    assert int(model.optimizer.iterations) == 8
    with pytest.raises(ValueError, match="freshly compiled"):
        denoising.fit_denoiser(model, clean, lambda x, seed: x, epochs=1)


def test_ssim_and_per_image_work_image_by_image():
    from scipy import ndimage
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    clean = rng.uniform(size=(3, 28, 28, 1))
    noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape), 0, 1)
    expected = [structural_similarity(c[..., 0], n[..., 0], data_range=1.0) for c, n in zip(clean, noisy)]
    assert np.allclose(denoising.ssim(clean, noisy), expected)
    blurred = denoising.per_image(ndimage.gaussian_filter, noisy, sigma=1.0)
    assert blurred.shape == noisy.shape
    assert np.allclose(blurred[1, ..., 0], ndimage.gaussian_filter(noisy[1, ..., 0], sigma=1.0))


def test_results_table_shows_missing_cells_as_dashes():
    text = denoising.results_table({("g050", "dae"): (21.234, 0.8)}, ["noisy", "dae"], ["g050"])
    assert "21.23/0.800" in text and text.splitlines()[1].split()[1] == "-"


# ---------------------------------------------------------------- the denoiser's judge

def _denoiser(first=16, zero=False):
    import keras
    from keras import layers

    init = "zeros" if zero else "glorot_uniform"
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(first, 3, strides=2, padding="same", activation="relu", kernel_initializer=init),
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="code", kernel_initializer=init),
        layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu", kernel_initializer=init),
        layers.Conv2DTranspose(first, 3, strides=2, padding="same", activation="relu", kernel_initializer=init),
        layers.Conv2D(1, 3, padding="same", activation="sigmoid", kernel_initializer=init),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


@pytest.mark.slow
def test_the_denoisers_judge_passes_the_specified_model_and_fails_a_dead_one():
    judge = EXERCISES["build_denoiser"].verdict
    assert judge(_denoiser(), None, "build_denoiser()", ()) is None
    problem = judge(_denoiser(zero=True), None, "build_denoiser()", ())
    assert problem and "does not learn to denoise" in problem
