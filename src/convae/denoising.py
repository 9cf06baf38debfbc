"""Helpers for chapter 06 (denoising): training batches corrupted on the fly, per-image filters,
fair tuning, SSIM, and the results grid.

Nothing here is an exercise's answer: the noise models, PSNR, the median filter and the denoiser
are written in the notebook, and these helpers take them as arguments (``corrupt``, ``score``).
The classical filters are SciPy's and scikit-image's.
"""
from __future__ import annotations

import time

import keras
import matplotlib.pyplot as plt
import numpy as np

from convae import config
from convae.plots import show_image
from convae.training import fit_then_release, one_cycle_schedule


class NoisyBatches(keras.utils.PyDataset):
    """Shuffled training batches ``(corrupt(clean batch), target)``, corrupted as they are asked for.

    Nothing is stacked in memory: every batch is corrupted when Keras asks for it, with a seed made
    from ``(seed, epoch, batch index)``, so every epoch shows every image with a **fresh noise draw**
    and a run is reproducible. ``corrupt(images, seed)`` is the notebook's noise model (an integer
    seed, as the exercises take). The target is the clean batch, or ``target_noise(clean batch,
    seed)`` drawn with an independent seed (Noise2Noise: a second noisy copy as the target).
    """

    def __init__(self, clean, corrupt, batch_size: int, seed: int = 0, target_noise=None):
        super().__init__()
        self.clean = np.asarray(clean, dtype=np.float32)
        self.corrupt, self.target_noise = corrupt, target_noise
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.clean))

    def __len__(self):
        return -(-len(self.clean) // self.batch_size)

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.rng.permutation(len(self.clean))

    def release(self):
        """Let go of the images and the noise functions once training is over
        (:func:`convae.training.fit_then_release` says why)."""
        self.clean = self.corrupt = self.target_noise = None

    def seeds(self, index: int) -> tuple[int, int]:
        """The integer seeds of batch ``index`` of this epoch: one for the input, one for the target."""
        state = np.random.SeedSequence((self.seed, self.epoch, index)).generate_state(2)
        return int(state[0]), int(state[1])

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        clean = self.clean[rows]
        input_seed, target_seed = self.seeds(index)
        target = clean if self.target_noise is None else self.target_noise(clean, target_seed)
        return (np.asarray(self.corrupt(clean, input_seed), dtype=np.float32),
                np.asarray(target, dtype=np.float32))


def fit_denoiser(model, clean, corrupt, *, epochs: int, batch_size: int = 32, peak_rate: float = 3e-3,
                 seed: int = 0, target_noise=None, verbose: int | None = None) -> float:
    """Train ``model`` to map ``corrupt(clean)`` to ``clean`` (or to ``target_noise(clean)``) for
    ``epochs`` epochs, a fresh noise draw in every epoch (:class:`NoisyBatches`), with the one-cycle
    learning rate of :func:`convae.autoencoders.fit_autoencoder`; return the seconds. ``verbose``
    as there (None: CONVAE_PROGRESS; 0: silent).

    ``clean`` has the model's input shape, e.g. (n, 28, 28, 1). The model must be freshly compiled
    (the schedule counts from the optimiser's step counter).
    """
    if int(model.optimizer.iterations) > 0:
        raise ValueError("fit_denoiser trains a freshly compiled model once; this one has already taken "
                         f"{int(model.optimizer.iterations)} steps. Build and compile it again to retrain it.")
    keras.utils.set_random_seed(seed)
    batches = NoisyBatches(clean, corrupt, batch_size, seed, target_noise)
    model.optimizer.learning_rate = one_cycle_schedule(peak_rate, epochs * len(batches))
    start = time.perf_counter()
    fit_then_release(model, batches, epochs=epochs, verbose=config.keras_verbose(verbose))
    return time.perf_counter() - start


def per_image(denoise, images, **params) -> np.ndarray:
    """Apply ``denoise(image_2d, **params)`` to every image of an (n, h, w) or (n, h, w, 1) stack."""
    images = np.asarray(images, dtype=np.float64)
    squeezed = images.reshape(images.shape[:3])
    return np.stack([denoise(image, **params) for image in squeezed]).reshape(images.shape)


def tune(denoise, grid, noisy, clean, score) -> tuple:
    """The parameter setting of ``grid`` (a list of keyword dicts) whose ``denoise`` output has the
    highest mean ``score(clean, estimates)`` (one number per image) on these *validation* images;
    returns ``(best_params, {str(params): mean score})``.
    """
    means = {}
    for params in grid:
        means[_label(params)] = float(np.mean(score(clean, denoise(noisy, **params))))
    best = max(grid, key=lambda params: means[_label(params)])
    return best, means


def _label(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def ssim(clean, estimates) -> np.ndarray:
    """scikit-image's structural similarity of each image with its estimate (``data_range=1``)."""
    from skimage.metrics import structural_similarity

    clean, estimates = np.asarray(clean, np.float64), np.asarray(estimates, np.float64)
    return np.array([structural_similarity(c.reshape(c.shape[:2]), e.reshape(c.shape[:2]), data_range=1.0)
                     for c, e in zip(clean, estimates)])


def results_table(scores: dict, methods, rows) -> str:
    """``scores[(row, method)] = (psnr, ssim)`` as a text table, one line per row (noise), one
    ``PSNR/SSIM`` cell per method; ``-`` where a method was not run on that noise."""
    width = 14
    lines = ["noise".ljust(8) + "".join(m.rjust(width) for m in methods)]
    for row in rows:
        cells = [f"{scores[(row, m)][0]:.2f}/{scores[(row, m)][1]:.3f}" if (row, m) in scores else "-"
                 for m in methods]
        lines.append(row.ljust(8) + "".join(c.rjust(width) for c in cells))
    return "\n".join(lines)


def show_grid(images: dict, scores: dict, methods, rows, index: int = 0, size: float = 1.25):
    """One test image per row (a noise kind and level) through every method (columns).

    ``images[(row, method)]`` is an array of images (its ``index``-th is shown) and
    ``scores[(row, method)]`` the per-image ``(psnr, ssim)`` arrays, shown under each panel for
    that image; a method that was not run on a row leaves its panel blank.
    """
    fig, axes = plt.subplots(len(rows), len(methods), figsize=(size * len(methods), size * 1.3 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, method in enumerate(methods):
            ax = axes[r, c]
            if (row, method) in images:
                show_image(np.asarray(images[(row, method)][index]).reshape(28, 28), ax=ax)
                if (row, method) in scores:
                    p, s = scores[(row, method)]
                    ax.set_xlabel(f"{p[index]:.1f} dB\n{s[index]:.2f}", fontsize=7)
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title(method, fontsize=8)
        axes[r, 0].set_ylabel(row, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig
