"""A filter sliding over an image, one step at a time: an interactive figure and its static twin.

- :func:`sliding_window` (``image, kernel, stride=1``) returns an ipywidgets box: a slider (and a
  play button) moves the window. The figure shows the image with the current window outlined, the
  kernel, and the feature map filled in up to the current position, with the sum that gives the
  current value. Moving the slider needs a live kernel (JupyterLab, Binder).
- :func:`sliding_window_steps` (``image, kernel, steps=None, stride=1``) draws a few snapshots of
  the same into one matplotlib figure: the version for the book and for print.

Both compute what deep learning calls a convolution: a cross-correlation in "valid" mode, the
kernel laid over each window as it is (not flipped), exactly as ``keras.layers.Conv2D`` does.
``padding=p`` adds a ring of ``p`` zeros first, drawn hatched, with the original image framed.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

WINDOW_COLOUR = "tab:orange"
PAD_FRAME_COLOUR = "tab:cyan"
#: images larger than this (rows or columns) are drawn without a number in every cell
ANNOTATE_UP_TO = 12


def _check(image, kernel, stride, padding=0) -> tuple[np.ndarray, np.ndarray, int]:
    image = np.asarray(image, dtype=float)
    kernel = np.asarray(kernel, dtype=float)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"image and kernel must be 2-D arrays; got shapes {image.shape} and {kernel.shape}")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be a whole number of zeros, 0 or more, not {padding!r}")
    image = np.pad(image, int(padding))
    if kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        raise ValueError(f"the kernel {kernel.shape} is larger than the image {image.shape}: "
                         "pad the image first (np.pad) or use a smaller kernel")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, not {stride!r}")
    return image, kernel, int(stride)


def feature_map(image, kernel, stride: int = 1) -> np.ndarray:
    """The full 'valid' cross-correlation of a 2-D image with a 2-D kernel (what the figures fill in)."""
    image, kernel, stride = _check(image, kernel, stride)
    kh, kw = kernel.shape
    rows = (image.shape[0] - kh) // stride + 1
    cols = (image.shape[1] - kw) // stride + 1
    out = np.empty((rows, cols))
    for i in range(rows):
        for j in range(cols):
            window = image[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.sum(window * kernel)
    return out


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{value:.1e}"


def _annotate(ax, values, colours, fontsize):
    for (r, c), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(c, r, _fmt(value), ha="center", va="center", fontsize=fontsize, color=colours[r, c])


def _text_colours(values, norm, cmap):
    """Black text on light cells, white on dark ones."""
    rgba = cmap(norm(np.nan_to_num(values)))
    luminance = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
    return np.where(luminance < 0.5, "white", "black")


def _grid(ax, shape):
    ax.set_xticks(np.arange(-0.5, shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, shape[0], 1), minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.5)
    ax.tick_params(which="both", length=0)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_matrix(ax, values, cmap_name, vmin, vmax, annotate):
    cmap = plt.get_cmap(cmap_name).copy()
    cmap.set_bad("0.93")  # cells not computed yet
    norm = plt.Normalize(vmin, vmax)
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm)
    _grid(ax, values.shape)
    if annotate:
        fontsize = max(6, 12 - max(values.shape) // 2)
        _annotate(ax, values, _text_colours(values, norm, cmap), fontsize)


def _map_scale(full_map):
    """(cmap, vmin, vmax) for a feature map: diverging and symmetric around 0 when it has signs."""
    lo, hi = float(full_map.min()), float(full_map.max())
    if lo < 0:
        limit = max(abs(lo), abs(hi)) or 1.0
        return "RdBu_r", -limit, limit
    return "Blues", 0.0, (hi or 1.0)


def _position(step, out_shape):
    if not 0 <= step < out_shape[0] * out_shape[1]:
        raise ValueError(f"step must be between 0 and {out_shape[0] * out_shape[1] - 1}, not {step}")
    return divmod(int(step), out_shape[1])


def _draw_input(ax, image, kernel, i, j, stride, padding, annotate):
    lo, hi = min(0.0, float(image.min())), float(image.max()) or 1.0
    _draw_matrix(ax, image, "gray", lo, hi, annotate and max(image.shape) <= ANNOTATE_UP_TO)
    if padding:
        rows, cols = image.shape
        for r in range(rows):
            for c in range(cols):
                if min(r, c) < padding or r >= rows - padding or c >= cols - padding:
                    ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="0.45", linewidth=0))
        ax.add_patch(Rectangle((padding - 0.5, padding - 0.5), cols - 2 * padding, rows - 2 * padding,
                               fill=False, edgecolor=PAD_FRAME_COLOUR, linewidth=1.5, linestyle="--"))
    kh, kw = kernel.shape
    ax.add_patch(Rectangle((j * stride - 0.5, i * stride - 0.5), kw, kh, fill=False,
                           edgecolor=WINDOW_COLOUR, linewidth=3, clip_on=False))


def _draw_partial_map(ax, full_map, i, j, annotate):
    partial = np.full(full_map.shape, np.nan)
    flat = partial.reshape(-1)
    flat[:i * full_map.shape[1] + j + 1] = full_map.reshape(-1)[:i * full_map.shape[1] + j + 1]
    cmap, vmin, vmax = _map_scale(full_map)
    _draw_matrix(ax, partial, cmap, vmin, vmax, annotate and max(full_map.shape) <= ANNOTATE_UP_TO)
    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=WINDOW_COLOUR, linewidth=3, clip_on=False))


def _input_title(image, padding):
    rows, cols = image.shape
    if not padding:
        return f"input {rows}×{cols}"
    return f"input {rows - 2 * padding}×{cols - 2 * padding} + padding {padding} (hatched)"


def _kernel_title(kernel, stride):
    return f"kernel {kernel.shape[0]}×{kernel.shape[1]}" + (f", stride {stride}" if stride > 1 else "")


def draw_step(image, kernel, step: int, stride: int = 1, padding: int = 0, annotate: bool = True):
    """One moment of the slide: the image with the window, the kernel, the feature map so far.

    ``step`` counts output positions row by row, from 0. Returns the matplotlib figure.
    """
    image, kernel, stride = _check(image, kernel, stride, padding)
    full_map = feature_map(image, kernel, stride)
    i, j = _position(step, full_map.shape)
    kh, kw = kernel.shape
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2), layout="constrained", gridspec_kw={"width_ratios": [
        image.shape[1], max(kernel.shape[1], image.shape[1] * 0.6), image.shape[1]]})
    _draw_input(axes[0], image, kernel, i, j, stride, padding, annotate)
    axes[0].set_title(f"{_input_title(image, padding)}\nwindow: rows {i * stride}–{i * stride + kh - 1}, "
                      f"columns {j * stride}–{j * stride + kw - 1}", fontsize=9)
    limit = float(np.abs(kernel).max()) or 1.0
    _draw_matrix(axes[1], kernel, "RdBu_r", -limit, limit, annotate)
    axes[1].set_title(_kernel_title(kernel, stride), fontsize=9)
    _draw_partial_map(axes[2], full_map, i, j, annotate)
    window = image[i * stride:i * stride + kh, j * stride:j * stride + kw]
    axes[2].set_title(f"feature map {full_map.shape[0]}×{full_map.shape[1]}: output[{i}, {j}]\n"
                      f"= sum(window × kernel) = {_fmt(float(np.sum(window * kernel)))}", fontsize=9)
    fig.suptitle(f"step {step + 1} of {full_map.size}", fontsize=10)
    return fig


def sliding_window_steps(image, kernel, steps=None, stride: int = 1, padding: int = 0,
                         annotate: bool = True, size: float = 2.6):
    """A few snapshots of the kernel sliding over the image, side by side: the book's version.

    Top row: the image with the window of each step outlined. Bottom row: the feature map filled in
    up to that step, the newest value outlined. The first column shows the kernel and the finished
    feature map. ``steps`` counts output positions row by row from 0 (default: the first two, the
    start of the second row and the last). Returns the matplotlib figure.
    """
    image, kernel, stride = _check(image, kernel, stride, padding)
    full_map = feature_map(image, kernel, stride)
    if steps is None:
        steps = sorted({0, min(1, full_map.size - 1), min(full_map.shape[1], full_map.size - 1), full_map.size - 1})
    steps = [int(s) for s in steps]
    positions = [_position(s, full_map.shape) for s in steps]
    kh, kw = kernel.shape
    ncols = len(steps) + 1
    fig, axes = plt.subplots(2, ncols, figsize=(size * ncols, size * 2.25), squeeze=False, layout="constrained")
    limit = float(np.abs(kernel).max()) or 1.0
    _draw_matrix(axes[0, 0], kernel, "RdBu_r", -limit, limit, annotate)
    axes[0, 0].set_title(_kernel_title(kernel, stride), fontsize=9)
    cmap, vmin, vmax = _map_scale(full_map)
    _draw_matrix(axes[1, 0], full_map, cmap, vmin, vmax, annotate and max(full_map.shape) <= ANNOTATE_UP_TO)
    axes[1, 0].set_title(f"finished feature map {full_map.shape[0]}×{full_map.shape[1]}", fontsize=9)
    for col, (step, (i, j)) in enumerate(zip(steps, positions), start=1):
        _draw_input(axes[0, col], image, kernel, i, j, stride, padding, annotate)
        axes[0, col].set_title(f"step {step + 1} of {full_map.size}: rows {i * stride}–{i * stride + kh - 1},\n"
                               f"columns {j * stride}–{j * stride + kw - 1}", fontsize=9)
        _draw_partial_map(axes[1, col], full_map, i, j, annotate)
        axes[1, col].set_title(f"output[{i}, {j}] = {_fmt(float(full_map[i, j]))}", fontsize=9)
    fig.suptitle(_input_title(image, padding) + ", " + _kernel_title(kernel, stride)
                 + ": the orange window and the value it gives", fontsize=10)
    return fig


def sliding_window(image, kernel, stride: int = 1, padding: int = 0, annotate: bool = True):
    """The interactive figure: move the slider (or press play) to slide the kernel over the image.

    Returns an ipywidgets ``VBox``; its ``slider`` attribute is the step slider. The figure needs a
    live kernel: on a static web page, use :func:`sliding_window_steps` instead.
    """
    import ipywidgets
    from IPython.display import display

    _check(image, kernel, stride, padding)  # fail here, with a clear message, not in the callback
    n_steps = feature_map(np.pad(np.asarray(image, dtype=float), int(padding)), kernel, stride).size
    slider = ipywidgets.IntSlider(value=0, min=0, max=n_steps - 1, description="step",
                                  continuous_update=True, readout=True)
    play = ipywidgets.Play(value=0, min=0, max=n_steps - 1, interval=800, description="play")
    ipywidgets.jslink((play, "value"), (slider, "value"))
    output = ipywidgets.Output()

    def render(change=None):
        fig = draw_step(image, kernel, slider.value, stride, padding, annotate)
        with output:
            output.clear_output(wait=True)
            display(fig)
        plt.close(fig)  # shown once, inside the widget; not again at the end of the cell

    slider.observe(render, names="value")
    render()
    box = ipywidgets.VBox([ipywidgets.HBox([play, slider]), output])
    box.slider = slider
    return box
