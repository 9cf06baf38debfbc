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


# ---------------------------------------------------------------- known-wrong answers
# Common slips, each with a phrase its hidden check must answer it with (tests/test_wrong_answers.py):
# a check that lets one of them through, or answers it with another sentence, is broken.

def gray_as_plain_mean(rgb):
    return np.asarray(rgb, dtype=np.float64).mean(axis=-1)


def gray_weights_reversed(rgb):  # BGR order, as OpenCV loads images
    return np.asarray(rgb, dtype=np.float64) @ np.array([0.114, 0.587, 0.299])


def normalise_forgot_to_divide(images):
    return images


def normalise_by_256(images):
    return np.asarray(images) / 256.0


def flatten_hard_coded_784(images):
    return np.asarray(images).reshape(len(images), 784)


def flatten_column_by_column(images):
    images = np.asarray(images)
    return images.transpose(0, 2, 1).reshape(len(images), -1)


def class_means_without_return(images, labels):
    np.stack([np.asarray(images)[np.asarray(labels) == k].mean(axis=0) for k in range(10)])


def class_means_off_by_one(images, labels):
    images, labels = np.asarray(images, dtype=np.float64), np.asarray(labels)
    return np.stack([images[labels == (k + 1) % 10].mean(axis=0) for k in range(10)])


def invert_as_int(images):
    return 255 - np.asarray(images).astype(int)


def invert_from_256(images):
    return (256 - np.asarray(images).astype(int)).astype(np.uint8)


def brighten_wraps_around(images, delta):
    return (np.asarray(images).astype(int) + delta).astype(np.uint8)


def brighten_as_int16(images, delta):
    return np.clip(np.asarray(images, dtype=np.int16) + delta, 0, 255)


WRONG_ANSWERS = {
    "rgb_to_gray": [(gray_as_plain_mean, "wrong values"), (gray_weights_reversed, "wrong values")],
    "normalise": [(normalise_forgot_to_divide, "expected floating-point values"), (normalise_by_256, "wrong values")],
    "flatten": [(flatten_hard_coded_784, "raised ValueError"), (flatten_column_by_column, "wrong values")],
    "class_mean_images": [(class_means_without_return, "returned None"), (class_means_off_by_one, "wrong values")],
    "invert": [(invert_as_int, "expected unsigned integer values"), (invert_from_256, "wrong values")],
    "brighten": [(brighten_wraps_around, "wrong values"), (brighten_as_int16, "expected unsigned integer values")],
}
