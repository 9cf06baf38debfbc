"""Hidden checks of chapter 01 (see convae.judge): how to draw fresh inputs and judge answers.

The reference answers are the author's functions in solutions/01-pixels/01-pixels.ipynb. Inputs
vary in size so that an answer hard-coded to 28x28 or to 3 images does not pass.
"""
import numpy as np

from convae.judge import Exercise


def images(rng, n=None, height=None, width=None):
    n = n or int(rng.integers(1, 7))
    height = height or int(rng.integers(3, 33))
    width = width or int(rng.integers(3, 33))
    return rng.integers(0, 256, size=(n, height, width), dtype=np.uint8)


def colour_image(rng):
    return rng.integers(0, 256, size=(int(rng.integers(2, 40)), int(rng.integers(2, 40)), 3), dtype=np.uint8)


def labelled_images(rng):
    n = int(rng.integers(20, 60))
    labels = np.concatenate([np.arange(10), rng.integers(0, 10, size=n - 10)]).astype(np.uint8)
    rng.shuffle(labels)
    return images(rng, n=n, height=28, width=28), labels


EXERCISES = {
    "rgb_to_gray": Exercise(draw=lambda rng: [(colour_image(rng),) for _ in range(3)], kind="f", atol=1e-3),
    "normalise": Exercise(draw=lambda rng: [(images(rng),) for _ in range(3)], kind="f", atol=1e-6),
    "flatten": Exercise(draw=lambda rng: [(images(rng),) for _ in range(3)], atol=0),
    "class_mean_images": Exercise(draw=lambda rng: [labelled_images(rng) for _ in range(2)], kind="f", atol=1e-4),
    "invert": Exercise(draw=lambda rng: [(images(rng),) for _ in range(3)], kind="u", atol=0),
    "brighten": Exercise(
        draw=lambda rng: [(images(rng), int(d)) for d in (rng.integers(1, 200), -rng.integers(1, 200), 0)],
        kind="u", atol=0),
}
