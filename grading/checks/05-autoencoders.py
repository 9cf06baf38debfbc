"""Hidden checks of chapter 05 (see convae.judge): fresh inputs, and autoencoders judged by training.

The reference answers are the author's functions in solutions/05-autoencoders/05-autoencoders.ipynb.

A model exercise gets the student's model as the judge's own copy, rebuilt from its saved config
and weights. It is checked against the same specification as the visible test cell
(:func:`convae.specs.dense_autoencoder_spec`, :data:`convae.specs.CONV_AE_SPEC`: input and output
shapes, a layer named ``code`` of the right size on every path, no connection around it, a
non-linear encoder, a sigmoid output, a budget, a reconstruction loss), then **trained here**,
briefly, on a fixed seeded subset of MNIST with a fixed optimiser and loss, and must reconstruct
held-out digits better than a threshold that a constant output cannot reach. See
RECONSTRUCTION_THRESHOLD for what was measured, and why structure is checked first.
"""
import functools

import numpy as np

from convae.checks import model_problems
from convae.judge import Exercise
from convae.specs import CONV_AE_SPEC, dense_autoencoder_spec

#: fixed, so every submission is trained on the same images with the same seed (94 steps)
TRAIN_IMAGES, HELD_OUT_IMAGES, EPOCHS, BATCH_SIZE, LEARNING_RATE, SEED = 2_000, 500, 3, 32, 3e-3, 5
#: held-out MSE per pixel (MNIST x/255) a model must reach after that training. Drawing the mean
#: training image for every input scores 0.0695 on these 500 digits: a model whose output ignores
#: its input (dead units, a zero-initialised layer, a constant) cannot pass. Measured on this
#: subset (2026-12, TF backend, 2 cores; judge seconds include compiling):
#:   specified dense 784-256-k-256-784:  k=16 0.0263, k=48 0.0230 (about 5 s)
#:   smaller valid dense 784-32-16-32-784 (52,064 parameters):  0.0425
#:   specified conv (UpSampling2D + Conv2D, 120,769 parameters):  0.0214 (about 14 s)
#:   smaller valid conv, 4 and 8 filters, Conv2DTranspose (26,761 parameters):  0.0610
#:   broken, zero-initialised dense:  0.1531 (fails)
#:   broken, skip connection around the code:  0.0170; identity, code of 784:  0.0215; a linear
#:   encoder:  learns too. Training cannot tell these from good models, so the structure check
#:   (the specification) refuses them first, each with its own sentence.
#: Not every valid model learns this fast: 784-16-16-16-784 with tanh stays at 0.0696 after these
#: 94 steps (the mean image) and fails; the message says what to look at.
RECONSTRUCTION_THRESHOLD = 0.066
MEAN_IMAGE_MSE = 0.0695
#: code sizes the hidden check asks build_autoencoder for (a tiny code such as 4 leaves the
#: specified model at 0.044 and smaller valid ones near the mean image after 94 steps)
CODE_SIZES = (16, 24, 32, 48)


# ---------------------------------------------------------------- models

@functools.lru_cache(maxsize=1)
def training_subset():
    """The same 2,000 training and 500 held-out MNIST images (x/255, flattened) for every submission."""
    from convae.data import fixed_pixels

    return fixed_pixels(TRAIN_IMAGES, HELD_OUT_IMAGES, SEED)


def held_out_mse(model) -> float:
    """Train the judge's copy briefly with a fixed optimiser and loss; its MSE per pixel on held-out digits."""
    import keras

    x, x_held = training_subset()
    shape = tuple(model.inputs[0].shape[1:])
    x, x_held = x.reshape((len(x), *shape)), x_held.reshape((len(x_held), *shape))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # the default 0.99 needs far more than these 63 steps
    keras.utils.set_random_seed(SEED)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="binary_crossentropy")
    model.fit(x, x, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=0)
    reconstruction = keras.ops.convert_to_numpy(model.predict(x_held, batch_size=500, verbose=0))
    return float(np.mean((reconstruction.reshape(len(x_held), -1) - x_held.reshape(len(x_held), -1)) ** 2))


def judge_autoencoder(spec_for):
    """``spec_for(args)`` gives the specification of one case (the code size is an argument)."""

    def judge(model, reference, call, args):
        spec = spec_for(args)
        problem = model_problems(model, spec)
        if problem:
            return problem
        mse = held_out_mse(model)
        if not mse <= RECONSTRUCTION_THRESHOLD:
            return (f"{spec.call} builds a model that does not learn to reconstruct: a copy trained for {EPOCHS} "
                    f"epochs on {TRAIN_IMAGES:,} MNIST digits (Adam, learning rate {LEARNING_RATE}, binary "
                    f"cross-entropy) reconstructs {HELD_OUT_IMAGES} other digits with a mean squared error of "
                    f"{mse:.4f} per pixel; the threshold is {RECONSTRUCTION_THRESHOLD}, and drawing the mean digit "
                    f"for every image scores about {MEAN_IMAGE_MSE}. Look at the activations (ReLU in the hidden layers), "
                    "any initialisers or constraints you set, and whether the code is wide enough to carry "
                    "information.")
        return None

    return judge


# ---------------------------------------------------------------- reconstruction errors

def error_cases(rng):
    cases = []
    for shape in ((3, 784), (2, 28, 28), (4, 28, 28, 1), (1, 5)):
        images = rng.uniform(size=shape)
        cases.append((images, np.clip(images + rng.normal(scale=0.2, size=shape), 0, 1)))
    images = rng.integers(0, 2, size=(5, 7, 3)).astype("float32")
    cases.append((images, images.copy()))  # perfect: all zeros
    return cases


# ---------------------------------------------------------------- PCA

def pca_cases(rng):
    cases = []
    for _ in range(4):
        n, d = int(rng.integers(8, 60)), int(rng.integers(3, 20))
        rank = int(rng.integers(1, d + 1))
        # distinct variances along random directions, so the top-k subspace is well defined
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0][:, :rank]
        spread = np.sort(rng.uniform(1, 10, size=rank))[::-1] * (1 + np.arange(rank)[::-1])
        train = rng.normal(size=(n, rank)) * spread @ basis.T + rng.normal(scale=0.01, size=(n, d)) + rng.normal(size=d)
        images = rng.normal(size=(int(rng.integers(1, 10)), d)) * 3
        cases.append((train, images, int(rng.integers(0, min(rank, n - 1) + 1))))
    train = rng.normal(size=(20, 6)) * np.array([6, 5, 4, 3, 2, 1.0])
    cases.append((train, train[:3], 6))  # every direction kept
    return cases


# ---------------------------------------------------------------- the contractive penalty

def penalty_cases(rng):
    cases = []
    for _ in range(4):
        d, m, n = int(rng.integers(1, 40)), int(rng.integers(1, 20)), int(rng.integers(1, 10))
        cases.append((rng.normal(size=(d, m)), 1 / (1 + np.exp(-rng.normal(scale=2, size=(n, m))))))
    cases.append((rng.normal(size=(5, 3)), np.array([[0.0, 1.0, 0.5]])))  # saturated units give nothing
    return cases


# ---------------------------------------------------------------- ROC AUC

def auc_cases(rng):
    cases = []
    for _ in range(3):
        n_normal, n_anomalous = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        cases.append((rng.normal(size=n_normal), rng.normal(rng.uniform(-1, 2), size=n_anomalous)))
    # many ties: scores on a coarse grid
    cases.append((rng.integers(0, 5, size=50).astype(float), rng.integers(0, 5, size=40).astype(float)))
    cases.append((np.full(3, 0.7), np.full(4, 0.7)))  # all tied: 0.5
    cases.append((rng.uniform(0, 1, size=20), rng.uniform(2, 3, size=10)))  # perfectly separated: 1
    return cases


EXERCISES = {
    "reconstruction_error": Exercise(draw=error_cases, kind="f", atol=1e-9),
    "pca_reconstruct": Exercise(draw=pca_cases, kind="f", atol=1e-6),
    "contractive_penalty": Exercise(draw=penalty_cases, kind="f", atol=1e-9),
    "roc_auc": Exercise(draw=auc_cases, atol=1e-9),
    # the judge ignores the author's model: the trusted side builds none (and imports no Keras)
    "build_autoencoder": Exercise(draw=lambda rng: [(int(rng.choice(CODE_SIZES)),)],
                                  judge=judge_autoencoder(lambda args: dense_autoencoder_spec(int(args[0]))),
                                  needs_reference=False, max_params=dense_autoencoder_spec(max(CODE_SIZES)).max_params),
    "build_conv_autoencoder": Exercise(draw=lambda rng: [()], judge=judge_autoencoder(lambda args: CONV_AE_SPEC),
                                       needs_reference=False, max_params=CONV_AE_SPEC.max_params),
}


# ---------------------------------------------------------------- known-wrong answers
# Common slips, each with a phrase its hidden check must answer it with (tests/test_wrong_answers.py):
# a check that lets one of them through, or answers it with another sentence, is broken.
# VALID_ANSWERS: a smaller model than the chapter's, which must pass the threshold too.

def _autoencoder(*layers_):
    import keras

    model = keras.Sequential(list(layers_))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def autoencoder_zero_initialised(code_size):  # meets the specification, reconstructs the mean digit
    from keras import Input, layers

    return _autoencoder(Input((784,)), layers.Dense(256, activation="relu", kernel_initializer="zeros"),
                        layers.Dense(code_size, name="code", kernel_initializer="zeros"),
                        layers.Dense(256, activation="relu", kernel_initializer="zeros"),
                        layers.Dense(784, activation="sigmoid"))


def autoencoder_without_code_layer(code_size):
    from keras import Input, layers

    return _autoencoder(Input((784,)), layers.Dense(256, activation="relu"), layers.Dense(code_size),
                        layers.Dense(256, activation="relu"), layers.Dense(784, activation="sigmoid"))


def autoencoder_small(code_size):  # 784-32-code-32-784 (measured 0.0425 at code 16)
    from keras import Input, layers

    return _autoencoder(Input((784,)), layers.Dense(32, activation="relu"), layers.Dense(code_size, name="code"),
                        layers.Dense(32, activation="relu"), layers.Dense(784, activation="sigmoid"))


def conv_autoencoder_relu_output():
    from keras import Input, layers

    return _autoencoder(Input((28, 28, 1)), layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                        layers.Flatten(), layers.Dense(32, name="code"), layers.Dense(14 * 14 * 16, activation="relu"),
                        layers.Reshape((14, 14, 16)), layers.UpSampling2D(2),
                        layers.Conv2D(1, 3, padding="same", activation="relu"))


def reconstruction_error_summed(images, reconstructions):
    diff = (np.asarray(images, dtype=float) - np.asarray(reconstructions, dtype=float)).reshape(len(images), -1)
    return np.sum(diff**2, axis=1)


def reconstruction_error_one_number(images, reconstructions):
    return np.mean((np.asarray(images, dtype=float) - np.asarray(reconstructions, dtype=float)) ** 2)


def _top_components(train, k):
    centred = np.asarray(train, dtype=float) - np.asarray(train, dtype=float).mean(axis=0)
    return np.linalg.svd(centred, full_matrices=False)[2][:k]


def pca_not_centred(train, images, k):
    components = np.linalg.svd(np.asarray(train, dtype=float), full_matrices=False)[2][:k]
    return np.asarray(images, dtype=float) @ components.T @ components


def pca_mean_not_added_back(train, images, k):
    components = _top_components(train, k)
    return (np.asarray(images, dtype=float) - np.mean(train, axis=0)) @ components.T @ components


def contractive_penalty_unsquared_derivative(W, h):
    h = np.asarray(h, dtype=float)
    return (h * (1 - h)) @ np.sum(np.asarray(W, dtype=float) ** 2, axis=0)


def contractive_penalty_without_derivative(W, h):
    return np.full(len(h), np.sum(np.asarray(W, dtype=float) ** 2))


def roc_auc_ties_count_zero(normal_scores, anomalous_scores):
    return float(np.mean(np.asarray(anomalous_scores)[:, None] > np.asarray(normal_scores)[None, :]))


def roc_auc_the_wrong_way_round(normal_scores, anomalous_scores):
    a, n = np.asarray(anomalous_scores)[:, None], np.asarray(normal_scores)[None, :]
    return float(np.mean(n > a) + 0.5 * np.mean(n == a))


WRONG_ANSWERS = {
    "reconstruction_error": [(reconstruction_error_summed, "wrong values"),
                             (reconstruction_error_one_number, "returned a float; return a NumPy array instead")],
    "pca_reconstruct": [(pca_not_centred, "wrong values"), (pca_mean_not_added_back, "wrong values")],
    "contractive_penalty": [(contractive_penalty_unsquared_derivative, "wrong values"),
                            (contractive_penalty_without_derivative, "wrong values")],
    "roc_auc": [(roc_auc_ties_count_zero, r"returned \S+, expected \S+\."),
                (roc_auc_the_wrong_way_round, r"returned \S+, expected \S+\.")],
    "build_autoencoder": [(autoencoder_zero_initialised, "builds a model that does not learn to reconstruct"),
                          (autoencoder_without_code_layer, "has no layer named 'code'")],
    "build_conv_autoencoder": [(conv_autoencoder_relu_output, "does not end in a sigmoid")],
}
VALID_ANSWERS = {"build_autoencoder": [autoencoder_small]}
