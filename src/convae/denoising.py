"""Helpers for chapter 06 (denoising): corrupted training sets, per-image filters, fair tuning,
SSIM, and the results grid.

Nothing here is an exercise's answer: the noise models, PSNR, the median filter and the denoiser
are written in the notebook, and these helpers take them as arguments (``corrupt``, ``score``).
The classical filters are SciPy's and scikit-image's.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from convae.plots import show_image


def noisy_copies(clean, corrupt, copies: int, seed: int):
    """``(inputs, targets)``: ``copies`` corrupted versions of every image, stacked, and the clean
    images repeated to match, so that training for one epoch over them shows each image with
    ``copies`` independent noise draws. ``corrupt(images, seed)`` is the notebook's noise model.
    """
    clean = np.asarray(clean)
    inputs = np.concatenate([corrupt(clean, seed + c) for c in range(copies)])
    return inputs.astype(np.float32), np.concatenate([clean] * copies).astype(np.float32)


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
