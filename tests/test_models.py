"""Model exercises (chapter 04): the specification check, the judge's training check, the schedule.

The specification check runs in the student's kernel (visible test cell) and in the judge (hidden
check) on the rebuilt copy, so every branch below is a sentence a student may read.
"""
from __future__ import annotations

import math

import keras
import pytest
from keras import layers

from convae.checks import CheckFailed, model_problems
from convae.judge import hidden_check
from convae.specs import CNN_SPEC, MLP_SPEC
from convae.training import one_cycle_rate


def compiled(model, loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    model.compile(optimizer="adam", loss=loss, metrics=list(metrics))
    return model


def mlp(*hidden, dropout=0.2, out_activation="softmax", inputs=784, initializer="glorot_uniform"):
    stack = [keras.Input((inputs,))]
    for units in hidden:
        stack += [layers.Dense(units, activation="relu", kernel_initializer=initializer), layers.Dropout(dropout)]
    return keras.Sequential(stack + [layers.Dense(10, activation=out_activation)])


def test_the_specified_and_smaller_models_pass():
    assert model_problems(compiled(mlp(512, 512)), MLP_SPEC) is None
    assert model_problems(compiled(mlp(32)), MLP_SPEC) is None
    small_cnn = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
                                  layers.Conv2D(8, 3, activation="relu"), layers.AveragePooling2D(2), layers.Flatten(),
                                  layers.Dense(10, activation="softmax")])
    assert model_problems(compiled(small_cnn), CNN_SPEC) is None


@pytest.mark.parametrize("model, spec, message", [
    (lambda: compiled(mlp(512, inputs=28)), MLP_SPEC, r"inputs of shape \(28,\); expected \(784,\)"),
    (lambda: compiled(mlp(512, out_activation=None)), MLP_SPEC, "does not end in a softmax"),
    (lambda: mlp(512), MLP_SPEC, "not compiled"),
    (lambda: compiled(mlp(512), loss="mse"), MLP_SPEC, "compiled with loss 'mse'"),
    (lambda: compiled(mlp(512), metrics=()), MLP_SPEC, "without the accuracy metric"),
    (lambda: compiled(mlp(1024, 512)), MLP_SPEC, "parameters; the budget is 700,000"),
    (lambda: compiled(keras.Sequential([keras.Input((784,)), layers.Dense(10, activation="softmax")])), MLP_SPEC,
     "has 1 Dense layers"),
    (lambda: compiled(mlp(512)), CNN_SPEC, r"inputs of shape \(784,\); expected \(28, 28, 1\)"),
    (lambda: compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")])),
     CNN_SPEC, "has 0 Conv2D layers"),
    (lambda: compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3), layers.Conv2D(4, 3), layers.Flatten(),
                                        layers.Dense(10, activation="softmax")])), CNN_SPEC, "has 0 pooling layers"),
    (lambda: compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3), layers.MaxPooling2D(2), layers.Conv2D(4, 3),
                                        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")]),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)), CNN_SPEC, "from_logits=True"),
    (lambda: "a model", MLP_SPEC, "returned a str; expected a Keras model"),
])
def test_each_way_to_miss_the_specification_is_named(model, spec, message):
    import re

    problem = model_problems(model(), spec)
    assert problem is not None and re.search(message, problem), problem


def test_a_model_that_cannot_learn_fails_the_hidden_check():
    """Zero-initialised hidden layers meet the letter of the specification but never learn (every
    unit of a layer gets the same gradient): the judge's brief training says so."""

    def build_mlp():
        return compiled(mlp(512, 512, initializer="zeros"))

    with pytest.raises(CheckFailed, match=r"does not learn: .* classifies only 1\d\.\d% of 1,000 other images"):
        hidden_check("04-mlp-vs-cnn", "build_mlp", build_mlp)


def test_one_cycle_rises_to_its_peak_then_decays_to_zero():
    total, peak = 1000, 3e-3
    rates = [one_cycle_rate(step, total, peak) for step in range(total)]
    assert math.isclose(rates[0], peak / 10)
    assert max(rates) == pytest.approx(peak) and rates.index(max(rates)) == 200  # 20 % warm-up
    assert all(a <= b for a, b in zip(rates[:200], rates[1:201]))  # rising
    assert all(a >= b for a, b in zip(rates[200:], rates[201:]))  # then falling
    assert rates[-1] < 1e-4 * peak and one_cycle_rate(total, total, peak) == pytest.approx(0, abs=1e-12)
    assert rates[600] == pytest.approx(peak / 2, rel=1e-6)  # the cosine's midpoint
