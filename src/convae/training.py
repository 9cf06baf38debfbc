"""Training helpers: a one-cycle learning-rate policy.

The schedule is Keras's own, ``keras.optimizers.schedules.CosineDecay`` with a warm-up
(:func:`one_cycle_schedule`), which the optimiser evaluates inside the compiled training step;
:func:`one_cycle_rate` is the formula it follows, written out so tests can check it step by step.

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
