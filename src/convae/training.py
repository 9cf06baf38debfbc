"""Training helpers: a one-cycle learning-rate policy, and batches streamed from NumPy arrays.

The schedule is Keras's own, ``keras.optimizers.schedules.CosineDecay`` with a warm-up
(:func:`one_cycle_schedule`), which the optimiser evaluates inside the compiled training step;
:func:`one_cycle_rate` is the formula it follows, written out so tests can check it step by step.

Backend-agnostic (Keras 3 only, no TensorFlow imports), so the chapters and ``make bench`` run
with ``KERAS_BACKEND=jax`` as well.
"""
from __future__ import annotations

import math

import keras
import numpy as np


def one_cycle_rate(step: int, total_steps: int, peak: float, warmup: float = 0.2,
                   start_fraction: float = 0.1) -> float:
    """The learning rate at ``step`` of ``total_steps``: a linear warm-up from
    ``start_fraction * peak`` to ``peak`` over the first ``warmup`` of the steps, then a cosine
    decay to 0 at the last step.

    Why: a small rate at first while the random weights give wild gradients, a large one to cover
    ground, and a rate that shrinks to nothing so the last epochs settle into a minimum instead
    of bouncing around it (Smith & Topin 2019, "super-convergence").
    """
    warmup_steps = max(1, int(warmup * total_steps))
    if step < warmup_steps:
        return peak * (start_fraction + (1 - start_fraction) * step / warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def one_cycle_schedule(peak: float, total_steps: int, warmup: float = 0.2,
                       start_fraction: float = 0.1) -> keras.optimizers.schedules.CosineDecay:
    """Keras's own ``CosineDecay`` with a linear warm-up, set up to give :func:`one_cycle_rate`
    at every step (tests/test_models.py). The optimiser evaluates it inside the compiled training
    step, so no Python callback runs per batch. Chapter 04 writes the same call out in the
    notebook (its ``one_cycle``) to teach it; the autoencoder chapters use this one.
    """
    warmup_steps = max(1, int(warmup * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        start_fraction * peak, max(1, total_steps - warmup_steps),
        warmup_target=peak, warmup_steps=warmup_steps)


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Batches in one pass over ``n_examples`` (the last batch may be smaller)."""
    return -(-n_examples // batch_size)


def restart(model, initial_weights) -> None:
    """Put a compiled model back where it started: ``initial_weights`` (from ``model.get_weights()``
    before its first training) and a fresh optimiser state (step counter and moments at zero), so it
    trains again from scratch with the training step Keras compiled for it the first time.

    Why not build a new model each time: on TensorFlow each newly built model that is trained keeps
    about 11 MB after it is deleted (clear_session and gc do not return it); measured on a
    784-128-16-128-784 autoencoder, eight new models in a row took the process from 583 to 711 MB,
    one model restarted eight times from 583 to 646 MB. Chapter 05's ten one-class models are one.
    :func:`convae.autoencoders.fit_autoencoder` checks that a restarted model trains on the same
    number of steps as before, since its compiled step keeps the first learning-rate schedule.
    """
    model.set_weights(initial_weights)
    for variable in model.optimizer.variables:
        if variable.name != "learning_rate":  # the rate comes from the schedule, not from this variable
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled ``(input, target)`` batches sliced from NumPy arrays, one batch at a time.

    ``model.fit(x, x)`` on the TensorFlow backend copies ``x`` into TensorFlow twice (once as input,
    once as target) before the first step: for 60,000 MNIST images that is about 0.7 GB more at the
    peak, measured, which a 2 GB Binder cannot spare (``fit(x, y)`` copies ``x`` once: 172 MB for
    chapter 04's 55,000 training images, at each of its four fits). A PyDataset hands Keras one
    batch at a time instead: about the same speed for the dense autoencoders, about 40 % slower per
    epoch for chapter 04's CNN on two cores (measured; more workers or ``steps_per_execution`` did
    not change it). Used for validation batches too (the order of a validation pass does not change
    its loss).
    """

    def __init__(self, x, target, batch_size: int, seed: int = 0):
        super().__init__()
        self.x, self.target, self.batch_size = x, target, batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))

    def release(self):
        """Let go of the arrays once training is over (:func:`convae.training.fit_then_release` says why)."""
        self.x = self.target = None

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        return self.x[rows], self.target[rows]


def fit_then_release(model, batches, *, epochs: int, verbose: int, validation_data=None, **fit_options):
    """``model.fit(batches, epochs=epochs, verbose=verbose, ...)`` on a PyDataset that has a
    ``release()`` method, called when training ends (or fails); so is that of ``validation_data``
    if it is one too. Returns ``fit``'s History.

    Why: on TensorFlow, Keras feeds a PyDataset through ``tf.data.Dataset.from_generator``, whose
    generator state stays registered after ``fit`` returns and keeps the dataset alive, and with
    it every array it was made from. Measured: chapter 05's one-class loop grew by 18 MB per digit
    (that digit's images) until the datasets let go of their arrays.
    """
    try:
        return model.fit(batches, epochs=epochs, verbose=verbose, validation_data=validation_data, **fit_options)
    finally:
        for dataset in (batches, validation_data):
            if hasattr(dataset, "release"):
                dataset.release()
