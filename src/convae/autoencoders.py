"""Helpers for the autoencoder chapters: one training loop, figures, and NumPy geometry.

Nothing here is an exercise's answer: the chapters' exercises (PCA, reconstruction errors, ROC
areas, the contractive penalty, the models) are written in the notebooks, and these helpers take
their results as arguments. Keras 3 only (no backend imports), so every backend runs them.
"""
from __future__ import annotations

import time

import keras
import matplotlib.pyplot as plt
import numpy as np

from convae import config
from convae.plots import show_image
from convae.training import ArrayBatches, fit_then_release, one_cycle_schedule


class RowsOnDemand:
    """``function(*arrays)`` computed only for the rows asked for: ``rows_on_demand[[3, 7]]`` is
    ``function(*(a[[3, 7]] for a in arrays))``. Hand it to :func:`fit_autoencoder` (which slices one
    batch at a time) instead of the whole transformed array: chapter 07's conditional VAE trains on
    its images with their one-hot labels appended, and that 60,000 × 794 float32 array would cost
    190 MB at the peak.
    """

    def __init__(self, function, *arrays):
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"RowsOnDemand needs arrays of one length, got {[len(a) for a in arrays]}")
        self.function, self.arrays = function, arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, rows):
        return self.function(*(a[rows] for a in self.arrays))

def fit_autoencoder(model, x, *, epochs: int, batch_size: int = 256, peak_rate: float = 2e-3,
                    target=None, seed: int = 0, verbose: int | None = None) -> float:
    """Train ``model`` to map ``x`` to ``target`` (default: ``x`` itself) with a one-cycle
    learning rate (:func:`convae.training.one_cycle_schedule`, set on the model's compiled
    optimiser); return the training seconds. ``verbose`` goes to ``fit``: None means
    :func:`convae.config.keras_verbose` (CONVAE_PROGRESS), 0 silences a model of a sweep.

    One loop for every autoencoder of a chapter, so comparisons differ only in the model. The
    batches are streamed from the arrays (:class:`ArrayBatches`), shuffled with ``seed``.
    """
    if int(model.optimizer.iterations) > 0:
        # The schedule counts from the optimiser's own step counter: a second call would start it
        # part-way through, so it refuses instead of training at the wrong rates.
        raise ValueError("fit_autoencoder trains a freshly compiled model once; this one has already taken "
                         f"{int(model.optimizer.iterations)} steps. Build and compile it again to retrain it "
                         "(or put it back with convae.training.restart).")
    keras.utils.set_random_seed(seed)
    batches = ArrayBatches(x, x if target is None else target, batch_size, seed)
    # Set on the compiled model's optimiser, so the student's compile() (loss, optimiser) stands.
    schedule = (peak_rate, epochs * len(batches))
    first_schedule = getattr(model, "_convae_schedule", None)
    if first_schedule is None:
        model.optimizer.learning_rate = one_cycle_schedule(*schedule)
        model._convae_schedule = repr(schedule)  # a string: Keras would wrap a tuple in a tracker
    elif first_schedule != repr(schedule):
        # A model put back by convae.training.restart reuses its compiled training step, which holds
        # the schedule of its first training: a different one would be silently ignored.
        raise ValueError(f"this restarted model was first trained with (peak rate, steps) = {first_schedule}; "
                         f"retrain it with the same ones, not {schedule} (same images count, batch size and "
                         "epochs), or build a new model")
    start = time.perf_counter()
    fit_then_release(model, batches, epochs=epochs, verbose=config.keras_verbose(verbose))
    return time.perf_counter() - start


def _outputs_in_batches(model, x, batch_size: int):
    """``(slice of x, the model's outputs for it as NumPy)`` for consecutive slices of ``x``."""
    for start in range(0, len(x), batch_size):
        part = x[start:start + batch_size]
        yield part, keras.ops.convert_to_numpy(model.predict_on_batch(part))


def predict_in_batches(model, x, batch_size: int = 1000) -> np.ndarray:
    """``model.predict(x)``, one slice of ``x`` at a time.

    ``predict`` on a NumPy array hands all of it to TensorFlow first: for the 60,000 training
    images that is 188 MB more at the peak, on top of the outputs it gathers. Slices keep the peak
    at one batch.
    """
    return np.concatenate([outputs for _, outputs in _outputs_in_batches(model, x, batch_size)])


def per_image_in_batches(score, model, images, batch_size: int = 1000) -> np.ndarray:
    """``score(images, model's outputs for them)`` (one number per image) for all of ``images``,
    ``batch_size`` images at a time, concatenated.

    ``score`` is the notebook's own function (e.g. chapter 05's ``reconstruction_error``). At once,
    10,000 test images would add their outputs and the float64 differences a score computes,
    about 100 MB at the peak, which a 2 GB Binder cannot spare.
    """
    return np.concatenate([np.asarray(score(part, outputs))
                           for part, outputs in _outputs_in_batches(model, images, batch_size)])


def orthonormal_basis(vectors) -> np.ndarray:
    """An orthonormal basis (columns) of the span of the columns of ``vectors`` (thin SVD)."""
    u, s, _ = np.linalg.svd(np.asarray(vectors, dtype=np.float64), full_matrices=False)
    return u[:, s > s.max() * 1e-10]


def principal_angles(a, b) -> np.ndarray:
    """Principal angles in degrees between the column spaces of ``a`` and ``b`` (smallest first):
    the arc cosines of the singular values of Qaᵀ Qb for orthonormal bases Qa, Qb."""
    cosines = np.linalg.svd(orthonormal_basis(a).T @ orthonormal_basis(b), compute_uv=False)
    return np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))


def show_rows(rows: dict, n: int = 10, size: float = 1.1, suptitle: str | None = None):
    """Rows of images with a label on the left: e.g. originals and reconstructions by two models.

    ``rows`` maps a label to an array of square grayscale images, (n, 28, 28), (n, 28, 28, 1) or
    flattened (n, 784); the first ``n`` of each are shown, column by column, so a column is one
    input and what each model made of it.
    """
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, size * len(rows) * 1.05), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        images = np.asarray(images).reshape(len(images), -1)
        side = int(round(np.sqrt(images.shape[1])))
        images = images.reshape(len(images), side, side)
        for c in range(n):
            show_image(images[c], ax=axes[r, c])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def scatter_codes(panels: dict, labels, size: float = 4.5, s: float = 3):
    """Side-by-side scatter plots of 2-D codes coloured by label, one panel per name in ``panels``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1, size), squeeze=False,
                             layout="constrained")  # keeps each panel's axis labels clear of its neighbour
    for ax, (title, codes) in zip(axes.flat, panels.items()):
        codes = np.asarray(codes)
        points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=s, vmin=-0.5, vmax=9.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("code 1")
        ax.set_ylabel("code 2")
    fig.colorbar(points, ax=axes.ravel().tolist(), ticks=range(10), label="digit")
    return fig

