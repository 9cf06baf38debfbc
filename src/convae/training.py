"""Training helpers: a one-cycle learning-rate policy.

Chapter 04 uses Keras's own schedule instead, ``keras.optimizers.schedules.CosineDecay`` with a
warm-up, which the optimiser evaluates inside the compiled training step and which gives the same
rate as :func:`one_cycle_rate` at every step (tests/test_models.py). :class:`OneCycle`, a callback
that sets the rate from Python before every batch, stays until chapter 05
(:mod:`convae.autoencoders`) has switched too; :func:`one_cycle_rate` is the formula both follow.

Backend-agnostic (Keras 3 only, no TensorFlow imports), so the chapters and ``make bench`` run
with ``KERAS_BACKEND=jax`` as well.
"""
from __future__ import annotations

import math

import keras


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


class OneCycle(keras.callbacks.Callback):
    """Set the optimizer's learning rate before every batch from :func:`one_cycle_rate`.

    The model must be compiled with a plain number as its learning rate (``optimizer="adam"``),
    which this callback then overwrites; ``rates`` keeps what it set, for plotting.
    """

    def __init__(self, peak: float, epochs: int, steps_per_epoch: int, warmup: float = 0.2):
        super().__init__()
        self.peak, self.warmup = peak, warmup
        self.total_steps = epochs * steps_per_epoch
        self.step = 0
        self.rates: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        rate = one_cycle_rate(self.step, self.total_steps, self.peak, self.warmup)
        self.model.optimizer.learning_rate = rate
        self.rates.append(rate)
        self.step += 1


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Batches in one pass over ``n_examples`` (the last batch may be smaller)."""
    return -(-n_examples // batch_size)
