"""Helpers for chapter 07 (variational autoencoders): the encoder's structure check, the course's own
digit classifier (the judge of generated digits, and the "same CNN" of the synthetic-data
experiment), and image grids.

Nothing here is an exercise's answer. The chapter's exercises — the KL divergence of a diagonal
Gaussian, the reparameterised sample, the Bernoulli negative log-likelihood, the encoder, the
importance-weighted bound, the Fréchet distance, the active units — are written in the notebook,
and so is the Keras machinery built from them after each exercise (the ``Sampling`` layer, the
summed loss): these helpers take their results as arguments. Keras 3 only (no backend imports), so
TensorFlow, JAX and PyTorch all run them.
"""
from __future__ import annotations

import time
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np

from convae import config
from convae.training import ArrayBatches
from convae.checks import _activation, _construction_problem, describe, model_layers, parameter_count
from convae.specs import CLASSIFIER_SPEC, VAEEncoderSpec

#: the names of the encoder's two outputs, in this order
ENCODER_OUTPUTS = ("z_mean", "z_log_var")


# ---------------------------------------------------------------- the encoder exercise's structure check

def _output_layer(tensor):
    """The layer whose call produced ``tensor`` (looking through a nested model to its layer)."""
    operation = tensor._keras_history[0]
    while isinstance(operation, keras.Model):
        index = tensor._keras_history[2]
        tensor = operation.outputs[index]
        operation = tensor._keras_history[0]
    return operation


def encoder_problems(model, spec: VAEEncoderSpec) -> str | None:
    """The first way ``model`` misses a VAE encoder's specification, as a sentence; None if it meets it.

    The same sentence in the visible check (the student's kernel) and in the hidden check (the
    judge's copy rebuilt from the model's .keras file).
    """
    try:
        return _encoder_problems(model, spec)
    except Exception as err:  # a model Keras can build but this walk cannot read: say so in words
        return (f"the check could not inspect the model {spec.call} returned ({type(err).__name__}: "
                f"{str(err)[:300]}). Build it with the functional API from built-in layers: "
                "keras.Model(inputs, [z_mean, z_log_var]).")


def _encoder_problems(model, spec: VAEEncoderSpec) -> str | None:
    call = spec.call
    if not isinstance(model, keras.Model):
        return f"{call} returned {describe(model)}; expected a Keras model (keras.Model(inputs, [z_mean, z_log_var]))."
    problem = _construction_problem(model, call)
    if problem:
        return problem
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        inputs = outputs = []
    if len(inputs) != 1:
        return f"{call} builds a model with {len(inputs)} inputs; expected one, keras.Input(shape={spec.input_shape})."
    got_in = tuple(inputs[0].shape)[1:]
    if got_in != tuple(spec.input_shape):
        return f"{call} takes inputs of shape {got_in}; expected {tuple(spec.input_shape)} (one image, no batch axis)."
    if len(outputs) != 2:
        return (f"{call} builds a model with {len(outputs)} output(s); an encoder of a VAE gives two, "
                "[z_mean, z_log_var]: keras.Model(inputs, [z_mean, z_log_var]).")
    names = tuple(_output_layer(t).name for t in outputs)
    if names != ENCODER_OUTPUTS:
        return (f"{call}'s outputs come from layers named {names}; expected {ENCODER_OUTPUTS}, in that order "
                "(name=\"z_mean\" and name=\"z_log_var\"): the mean first, then the log-variance.")
    for tensor, name in zip(outputs, ENCODER_OUTPUTS):
        shape = tuple(tensor.shape)
        if shape != (None, spec.latent_dim):
            return (f"{call}'s output {name!r} has shape {shape}; expected (None, {spec.latent_dim}): "
                    f"one number per latent dimension.")
    kinds = sorted({type(layer).__name__ for layer in model_layers(model)} - set(spec.allowed))
    if kinds:
        return f"{call} uses {', '.join(kinds)}, which this exercise does not ask for; use only {', '.join(spec.allowed)}."
    for tensor, name in zip(outputs, ENCODER_OUTPUTS):
        activation = _activation(_output_layer(tensor))
        if activation not in (None, "linear"):
            what = ("a log-variance is any real number (negative for a variance below 1)" if name == "z_log_var"
                    else "a mean is any real number, negative too")
            return (f"{call}'s layer {name!r} has activation {activation!r}; {what}, so that layer takes no "
                    "activation (activation=None).")
    hidden = [layer for layer in model_layers(model) if layer.name not in ENCODER_OUTPUTS]
    if not any(type(layer).__name__ in ("ReLU", "LeakyReLU", "ELU", "MaxPooling2D")
               or _activation(layer) not in (None, "linear") for layer in hidden):
        return (f"{call}'s encoder is linear (no activation before z_mean and z_log_var): give its hidden "
                "layer a non-linear activation such as \"relu\".")
    params = parameter_count(model)
    if params > spec.max_params:
        return f"{call} has {params:,} parameters; the budget is {spec.max_params:,}."
    return None


def expect_encoder(build, spec: VAEEncoderSpec):
    """Call ``build(*spec.args)`` and check the encoder against ``spec``; return it (visible check)."""
    __tracebackhide__ = True
    from convae.checks import CheckFailed, call_student

    model = call_student(build, *spec.args, name=spec.call)
    problem = encoder_problems(model, spec)
    if problem:
        raise CheckFailed(problem)
    return model


# ---------------------------------------------------------------- the course's digit classifier

def build_classifier(seed: int = 0):
    """The course's digit classifier, to :data:`convae.specs.CLASSIFIER_SPEC`: a small CNN on
    flattened (784,) images whose penultimate layer, ``features`` (64 ReLU units), gives the
    features of the Fréchet distance. Compiled with Adam and sparse categorical cross-entropy."""
    from keras import layers

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=CLASSIFIER_SPEC.input_shape),
        layers.Reshape((28, 28, 1)),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(64, activation="relu", name="features"),
        layers.Dense(CLASSIFIER_SPEC.n_classes, activation="softmax"),
    ], name="digit_classifier")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_classifier(model, x, y, *, epochs: int, batch_size: int = 128, peak_rate: float = 3e-3,
                   seed: int = 0, verbose: int | None = None) -> float:
    """Train a freshly compiled classifier on images ``x`` (n, 784) in [0, 1] and labels ``y``,
    batches streamed (:class:`convae.training.ArrayBatches`), a one-cycle rate; the seconds.
    ``verbose`` as in :func:`convae.autoencoders.fit_autoencoder` (None: CONVAE_PROGRESS)."""
    from convae.training import fit_then_release, one_cycle_schedule

    keras.utils.set_random_seed(seed)
    batches = ArrayBatches(np.asarray(x, "float32"), np.asarray(y, "int32"), batch_size, seed)
    model.optimizer.learning_rate = one_cycle_schedule(peak_rate, epochs * len(batches))
    start = time.perf_counter()
    fit_then_release(model, batches, epochs=epochs, verbose=config.keras_verbose(verbose))
    return time.perf_counter() - start


def digit_classifier(x_train, y_train, *, epochs: int, chapter: str = "07-vae"):
    """The course's classifier trained on ``x_train`` (n, 784) / ``y_train``, cached.

    The weights are kept in :func:`convae.paths.work_dir` under a name that says what they were
    trained on (images, epochs, backend), so a rerun of the chapter loads them in a second, and a
    run on other data trains its own. Returns ``(model, seconds)``; 0 seconds when it was loaded.
    """
    from convae.paths import work_dir

    x_train = np.asarray(x_train, "float32")
    fingerprint = f"{len(x_train)}-{int(np.asarray(y_train[:1000]).sum())}-{float(x_train[:1000].sum()):.3f}"
    path = work_dir(chapter) / f"classifier-{fingerprint}-{epochs}ep-{keras.backend.backend()}.weights.h5"
    model = build_classifier()
    if path.exists():
        try:
            with warnings.catch_warnings():  # the optimiser's state is not needed to predict
                warnings.simplefilter("ignore")
                model.load_weights(path)
            return model, 0.0
        except Exception:  # a stale or broken cache: train again
            path.unlink(missing_ok=True)
            model = build_classifier()
    seconds = fit_classifier(model, x_train, y_train, epochs=epochs)
    model.save_weights(path)
    return model, seconds


def feature_model(classifier):
    """The classifier cut at its ``features`` layer: images (n, 784) -> (n, 64) features."""
    return keras.Model(classifier.inputs, classifier.get_layer("features").output)


# ---------------------------------------------------------------- figures

def image_grid(images, rows: int, cols: int, ax=None, title: str | None = None, gap: int = 1):
    """Draw ``rows * cols`` square gray images (flattened or not) as one picture, row by row."""
    images = np.asarray(images)[: rows * cols]
    side = int(round(np.sqrt(images[0].size)))
    images = images.reshape(rows, cols, side, side)
    canvas = np.ones((rows * (side + gap) - gap, cols * (side + gap) - gap))
    for r in range(rows):
        for c in range(cols):
            canvas[r * (side + gap):r * (side + gap) + side, c * (side + gap):c * (side + gap) + side] = images[r, c]
    if ax is None:
        _, ax = plt.subplots(figsize=(cols * 0.55 + 0.4, rows * 0.55 + 0.6))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax
