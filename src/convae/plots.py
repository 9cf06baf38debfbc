"""Figures that several chapters draw: grids of images, a digit as a heatmap, colour channels.

Every function draws on matplotlib and returns the figure (or axes), so a notebook can add a title
or save it. Grayscale images are shown with ``vmin=0, vmax=255`` (uint8) or ``vmin=0, vmax=1``
(floats) so that black is 0 and white is the maximum, never a rescaled range.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def _gray_range(image) -> tuple[float, float]:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return 0, 255
    if image.dtype == bool:
        return 0, 1
    lo, hi = float(image.min()), float(image.max())
    if lo >= 0 and hi <= 1:
        return 0, 1
    if lo >= 0 and hi <= 255:  # floats on the 0..255 scale (a gray conversion, a mean image)
        return 0, 255
    return lo, hi


def show_image(image, ax=None, title: str | None = None, cmap: str = "gray"):
    """One image: grayscale (H, W) with a fixed 0..max range, or colour (H, W, 3)."""
    ax = ax or plt.figure(figsize=(3, 3)).gca()
    image = np.asarray(image)
    if image.ndim == 3:
        ax.imshow(image)
    else:
        vmin, vmax = _gray_range(image)
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def show_images(images, titles=None, ncols: int = 10, size: float = 1.3, cmap: str = "gray",
                suptitle: str | None = None):
    """A grid of images with optional titles (e.g. labels)."""
    images = list(images)
    nrows = max(1, -(-len(images) // ncols))
    ncols = min(ncols, len(images))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            show_image(images[i], ax=ax, title=None if titles is None else str(titles[i]), cmap=cmap)
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def digit_heatmap(image, ax=None, annot: bool = True, title: str | None = None):
    """A digit as a seaborn heatmap: every pixel a cell, its value written in it."""
    import seaborn as sns  # imported here: only the chapters that draw heatmaps pay for it

    image = np.asarray(image)
    ax = ax or plt.figure(figsize=(11, 10)).gca()
    vmin, vmax = _gray_range(image)
    fmt = "d" if image.dtype.kind in "ui" else ".1f"
    sns.heatmap(image, ax=ax, cmap="gray", vmin=vmin, vmax=vmax, annot=annot, fmt=fmt,
                annot_kws={"fontsize": 6}, cbar=True, square=True, xticklabels=4, yticklabels=4)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    if title:
        ax.set_title(title)
    return ax


def show_channels(rgb, names=("red", "green", "blue")):
    """A colour image next to its three channels, each drawn as the grayscale matrix it is."""
    rgb = np.asarray(rgb)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    show_image(rgb, ax=axes[0], title=f"colour image {rgb.shape}")
    for c, (ax, name) in enumerate(zip(axes[1:], names)):
        show_image(rgb[..., c], ax=ax, title=f"{name} channel [..., {c}]")
    fig.tight_layout()
    return fig


def show_feature_maps(maps, titles=None, ncols: int = 8, size: float = 1.6, cmap: str = "gray",
                      suptitle: str | None = None, symmetric: bool = False):
    """Feature maps side by side, each with its own colour scale and a colour bar.

    ``maps`` is (n, H, W) or (H, W, n) with ``channels_last=True``-style data: pass
    ``np.moveaxis(x, -1, 0)`` for Keras's (H, W, channels). With ``symmetric``, 0 is the middle of
    the scale (use a diverging ``cmap`` such as "RdBu_r"): negative and positive responses differ.
    """
    maps = np.asarray(maps, dtype=float)
    n = len(maps)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols * 1.2, size * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        limit = np.abs(maps[i]).max() or 1.0
        vmin, vmax = (-limit, limit) if symmetric else (None, None)
        im = ax.imshow(maps[i], cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def learning_curves(histories: dict, metrics=("loss", "accuracy")):
    """Training and validation curves of several models, one panel per metric.

    ``histories`` maps a model's name to ``model.fit(...).history``. Solid lines are the training
    set, dashed the validation set, one colour per model; epochs count from 1 as Keras prints them.
    """
    metrics = [m for m in metrics if any(m in h for h in histories.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for colour, (name, history) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], histories.items()):
            if metric not in history:
                continue
            epochs = np.arange(1, len(history[metric]) + 1)
            ax.plot(epochs, history[metric], color=colour, marker="o", markersize=3, label=f"{name}, training")
            if f"val_{metric}" in history:
                ax.plot(epochs, history[f"val_{metric}"], color=colour, linestyle="--", marker="o",
                        markersize=3, label=f"{name}, validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
