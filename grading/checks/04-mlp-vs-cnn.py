"""Hidden checks of chapter 04 (see convae.judge): fresh inputs, and models judged by training.

The reference answers are the author's functions in solutions/04-mlp-vs-cnn/04-mlp-vs-cnn.ipynb.

A model exercise gets the student's model as the judge's own copy, rebuilt from its saved config
and weights. It is checked against the same specification as the visible test cell
(:mod:`convae.specs`), then **trained here**, briefly, on a fixed seeded subset of MNIST, with a
fixed optimiser: a model that meets the letter of the specification but cannot learn (a
zero-initialised layer, a dropout rate of 0.99, ...) fails with a sentence saying so. The threshold
is one that small valid models also pass (measured: see LEARNING_THRESHOLD).
"""
import functools

import numpy as np

from convae.checks import model_layers, model_problems
from convae.judge import Exercise, exactly
from convae.specs import CNN_SPEC, MLP_SPEC

#: fixed, so every submission is trained on the same images with the same seed
TRAIN_IMAGES, HELD_OUT_IMAGES, EPOCHS, BATCH_SIZE, LEARNING_RATE, SEED = 2_000, 1_000, 2, 64, 1e-3, 4
#: held-out accuracy a model must reach after that training. Measured on this subset: the
#: specified MLP and CNN reach 0.88 and 0.90, a 784 -> 32 -> 10 MLP 0.80, a CNN with 8 filters per
#: layer and no hidden Dense layer 0.62;
#: a model that cannot learn (zero-initialised, dropout 0.99) stays near 0.10.
LEARNING_THRESHOLD = 0.35


# ---------------------------------------------------------------- models

@functools.lru_cache(maxsize=1)
def training_subset():
    """The same 2,000 training and 1,000 held-out MNIST images for every submission."""
    from convae.data import fixed_subset

    x_train, y_train, x_held, y_held = fixed_subset(TRAIN_IMAGES, HELD_OUT_IMAGES, SEED)
    scale = lambda images: images.astype("float32") / 255  # noqa: E731
    return scale(x_train), y_train, scale(x_held), y_held


def settle_batch_norm(model) -> None:
    """Keras's default BatchNormalization momentum 0.99 needs hundreds of steps before the moving
    averages used at prediction time mean anything; the judge's short training has 63. Nested
    models included (an encoder inside a Sequential is a layer of it, its layers are not)."""
    import keras

    for layer in model_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9


def held_out_accuracy(model) -> float:
    """Train the judge's copy briefly with a fixed optimiser; its accuracy on held-out images."""
    import keras

    x, y, x_held, y_held = training_subset()
    shape = tuple(model.inputs[0].shape[1:])
    x, x_held = x.reshape((len(x), *shape)), x_held.reshape((len(x_held), *shape))
    settle_batch_norm(model)
    keras.utils.set_random_seed(SEED)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=0)
    return float(model.evaluate(x_held, y_held, batch_size=500, verbose=0)[1])


def judge_model(spec):
    def judge(model, reference, call, args):
        problem = model_problems(model, spec)
        if problem:
            return problem
        accuracy = held_out_accuracy(model)
        if not accuracy >= LEARNING_THRESHOLD:
            return (f"{spec.call} builds a model that does not learn: a copy trained for {EPOCHS} epochs on "
                    f"{TRAIN_IMAGES:,} MNIST images (Adam, learning rate {LEARNING_RATE}) classifies only "
                    f"{accuracy:.1%} of {HELD_OUT_IMAGES:,} other images correctly; a model built to the "
                    f"specification reaches about 90 % (the threshold is {LEARNING_THRESHOLD:.0%}). Look at the "
                    "activations (ReLU in the hidden layers), the dropout rates and any initialisers you set.")
        return None

    return judge


# ---------------------------------------------------------------- the best epoch

def epoch_cases(rng):
    cases = []
    for mode in ("min", "max", "min", "max"):
        n = int(rng.integers(2, 30))
        cases.append((np.round(rng.uniform(0, 1, size=n), 2), mode))  # rounding makes ties likely
    values = rng.uniform(0, 1, size=int(rng.integers(3, 10)))
    values[[1, -1]] = values.min() if rng.integers(2) else 0.0  # a tie for the minimum
    cases.append((values, "min"))
    cases.append((rng.uniform(0, 1, size=1), "max"))  # one epoch only
    return cases


# ---------------------------------------------------------------- confusion matrices

def confusion_cases(rng):
    cases = []
    for _ in range(4):
        n_classes = int(rng.integers(2, 13))
        n = int(rng.integers(1, 300))
        labels = rng.integers(0, n_classes, size=n)
        predictions = np.where(rng.uniform(size=n) < 0.7, labels, rng.integers(0, n_classes, size=n))
        cases.append((labels, predictions, n_classes))
    cases.append((np.array([0, 0, 0]), np.array([2, 2, 2]), 5))  # absent classes, all wrong
    return cases


def recall_cases(rng):
    cases = []
    for _ in range(4):
        n_classes = int(rng.integers(2, 13))
        counts = rng.integers(0, 50, size=(n_classes, n_classes))
        counts[np.arange(n_classes), rng.integers(0, n_classes, size=n_classes)] += 1  # no empty row
        cases.append((counts,))
    cases.append((np.diag(rng.integers(1, 9, size=4)),))  # all correct
    return cases


# ---------------------------------------------------------------- shifts

def shift_cases(rng):
    cases = []
    for dtype in ("uint8", "float32", "uint8", "float64"):
        n, height, width = int(rng.integers(1, 5)), int(rng.integers(3, 31)), int(rng.integers(3, 31))
        images = rng.integers(1, 256, size=(n, height, width)).astype(dtype)  # no zeros: a fill shows
        dx, dy = int(rng.integers(-width + 1, width)), int(rng.integers(-height + 1, height))
        cases.append((images, dx, dy))
    images = rng.uniform(0.1, 1, size=(2, 28, 28)).astype("float32")
    cases.append((images, 0, 0))
    cases.append((images, int(rng.choice([-1, 1])) * int(rng.integers(28, 40)), 0))  # everything leaves
    cases.append((images, 0, -int(rng.integers(1, 7))))
    return cases


def judge_shift(actual, expected, call, args):
    problem = exactly(actual, expected, call, args)
    if problem and isinstance(actual, np.ndarray) and actual.shape == expected.shape:
        images, dx, dy = args
        if np.array_equal(actual, np.roll(images, (dy, dx), axis=(1, 2))):
            return (f"{call} wraps pixels around to the other side (like np.roll); pixels that leave the "
                    "image should be lost, and the uncovered ones 0.")
    if problem is None and actual.dtype != expected.dtype:
        return f"{call} returned dtype {actual.dtype}; keep the input's dtype ({expected.dtype})."
    return problem


EXERCISES = {
    # the judge ignores the author's model: the trusted side builds none (and imports no Keras)
    "build_mlp": Exercise(draw=lambda rng: [()], judge=judge_model(MLP_SPEC), needs_reference=False,
                          max_params=MLP_SPEC.max_params),
    "build_cnn": Exercise(draw=lambda rng: [()], judge=judge_model(CNN_SPEC), needs_reference=False,
                          max_params=CNN_SPEC.max_params),
    "best_epoch": Exercise(draw=epoch_cases, judge=exactly),
    "confusion_matrix": Exercise(draw=confusion_cases, judge=exactly),
    "per_class_accuracy": Exercise(draw=recall_cases, kind="f", atol=1e-9),
    "shift_images": Exercise(draw=shift_cases, judge=judge_shift),
}


# ---------------------------------------------------------------- known-wrong answers
# Common slips, each with a phrase its hidden check must answer it with (tests/test_wrong_answers.py):
# a check that lets one of them through, or answers it with another sentence, is broken.
# VALID_ANSWERS: smaller models than the chapter's, which must pass the learning threshold too.

def _compiled(*layers_):
    import keras

    model = keras.Sequential(list(layers_))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def mlp_zero_initialised():  # meets the specification, cannot learn: every hidden unit stays alike
    from keras import Input, layers

    return _compiled(Input((784,)), layers.Dense(512, activation="relu", kernel_initializer="zeros"),
                     layers.Dropout(0.2), layers.Dense(512, activation="relu", kernel_initializer="zeros"),
                     layers.Dropout(0.2), layers.Dense(10, activation="softmax"))


def mlp_without_dropout():
    from keras import Input, layers

    return _compiled(Input((784,)), layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax"))


def mlp_small():  # 784 -> 32 -> 10: 25,450 parameters (measured 0.80 on the judge's subset)
    from keras import Input, layers

    return _compiled(Input((784,)), layers.Dense(32, activation="relu"), layers.Dropout(0.2),
                     layers.Dense(10, activation="softmax"))


def cnn_zero_initialised():
    from keras import Input, layers

    return _compiled(Input((28, 28, 1)), layers.Conv2D(16, 3, activation="relu", kernel_initializer="zeros"),
                     layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu", kernel_initializer="zeros"),
                     layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax"))


def cnn_one_conv_layer():
    from keras import Input, layers

    return _compiled(Input((28, 28, 1)), layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2),
                     layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax"))


def cnn_small():  # 8 filters per layer, no hidden Dense layer (measured 0.62 on the judge's subset)
    from keras import Input, layers

    return _compiled(Input((28, 28, 1)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
                     layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                     layers.Dense(10, activation="softmax"))


def best_epoch_zero_based(values, mode):
    return int(np.argmin(values) if mode == "min" else np.argmax(values))


def best_epoch_last_on_ties(values, mode):
    values = np.asarray(values, dtype=float)[::-1]
    return len(values) - int(np.argmin(values) if mode == "min" else np.argmax(values))


def confusion_matrix_transposed(labels, predictions, n_classes):
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(predictions), np.asarray(labels)), 1)
    return counts


def confusion_matrix_fancy_index(labels, predictions, n_classes):  # repeated pairs count once
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    counts[np.asarray(labels), np.asarray(predictions)] += 1
    return counts


def per_class_accuracy_by_column(counts):  # precision, not recall
    counts = np.asarray(counts)
    return np.diag(counts) / np.maximum(counts.sum(axis=0), 1)


def per_class_accuracy_integer_division(counts):
    counts = np.asarray(counts)
    return np.diag(counts) // counts.sum(axis=1)


def shift_with_roll(images, dx, dy):
    return np.roll(np.asarray(images), (dy, dx), axis=(1, 2))


def shift_as_floats(images, dx, dy):
    images = np.asarray(images)
    out = np.zeros(images.shape)
    h, w = images.shape[1:]
    if abs(dx) < w and abs(dy) < h:
        out[:, max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] = \
            images[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


def shift_the_other_way(images, dx, dy):
    return shift_as_floats(images, -dx, -dy).astype(np.asarray(images).dtype)


WRONG_ANSWERS = {
    "build_mlp": [(mlp_zero_initialised, "builds a model that does not learn"),
                  (mlp_without_dropout, "has 0 Dropout layers; the specification asks for at least 1")],
    "build_cnn": [(cnn_zero_initialised, "builds a model that does not learn"),
                  (cnn_one_conv_layer, "has 1 Conv2D layers; the specification asks for at least 2")],
    "best_epoch": [(best_epoch_zero_based, r"returned \d+, expected \d+\."),
                   (best_epoch_last_on_ties, r"returned \d+, expected \d+\.")],
    "confusion_matrix": [(confusion_matrix_transposed, "wrong values"), (confusion_matrix_fancy_index, "wrong values")],
    "per_class_accuracy": [(per_class_accuracy_by_column, "wrong values"),
                           (per_class_accuracy_integer_division, "expected floating-point values")],
    "shift_images": [(shift_with_roll, "wraps pixels around to the other side"),
                     (shift_as_floats, "keep the input's dtype"), (shift_the_other_way, "wrong values")],
}
VALID_ANSWERS = {"build_mlp": [mlp_small], "build_cnn": [cnn_small]}
