"""Model exercises (chapters 04 and 05): the specification check, the judge's training check, the schedule.

The specification check runs in the student's kernel (visible test cell) and in the judge (hidden
check) on the copy rebuilt from the model's .keras file, so every branch below is a sentence a
student may read, and each is asserted on both.
"""
from __future__ import annotations

import math
import re

import keras
import pytest
from keras import layers

from convae.checks import CheckFailed, model_layers, model_problems
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


# ---------------------------------------------------------------- every way of writing a model, judged alike

def chain(inputs, stack):
    """The functional API: call each layer on the previous output; keras.Model(inputs, outputs)."""
    x = inputs
    for layer in stack:
        x = layer(x)
    return keras.Model(inputs, x)


def styled(style, input_shape, stack, split):
    """The same layers as one Sequential, one functional model, or two models (the first ``split``
    layers and the rest, e.g. an encoder and a decoder) nested in a Sequential or composed with the
    functional API. The inner models of "nested" and the second of "composed" have no Input of their
    own: Keras builds them when they are called."""
    if style == "sequential":
        return keras.Sequential([keras.Input(input_shape), *stack])
    if style == "functional":
        return chain(keras.Input(input_shape), stack)
    front, back = stack[:split], stack[split:]
    if style == "nested":
        return keras.Sequential([keras.Input(input_shape), keras.Sequential(front, name="encoder"),
                                 keras.Sequential(back, name="decoder")])
    encoder = chain(keras.Input(input_shape), front)
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.Sequential(back, name="decoder")(encoder(inputs)))


def rebuilt(model, folder):
    """The judge's copy: the model's .keras file loaded in safe mode (what the hidden check sees)."""
    path = folder / "model.keras"
    model.save(path)
    return keras.saving.load_model(path, safe_mode=True)


def judged(model, spec, folder):
    """The verdict on the student's object, asserted equal to the verdict on the rebuilt copy."""
    here = model_problems(model, spec)
    assert model_problems(rebuilt(model, folder), spec) == here
    return here


def mlp_stack():
    return [layers.Dense(64, activation="relu"), layers.Dropout(0.2), layers.Dense(10, activation="softmax")]


def cnn_stack():
    return [layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2), layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")]


STYLES = ("sequential", "functional", "nested", "composed")


@pytest.mark.parametrize("style", STYLES)
def test_sequential_functional_and_nested_models_are_judged_alike(style, tmp_path):
    """keras.Model(inputs, outputs) lists an InputLayer, a Sequential does not; nested models are
    looked into. The chapter-04 classifiers, in each style, pass
    here and on the copy rebuilt from their .keras file."""
    assert judged(compiled(styled(style, (784,), mlp_stack(), 2)), MLP_SPEC, tmp_path) is None
    assert judged(compiled(styled(style, (28, 28, 1), cnn_stack(), 4)), CNN_SPEC, tmp_path) is None


def test_a_rule_is_enforced_inside_nested_models_too(tmp_path):
    """A wrong layer hidden in a nested model is found: the walker flattens it."""
    stack = mlp_stack()
    stack[1] = layers.GaussianNoise(0.1)
    nested = styled("nested", (784,), stack, 2)
    assert model_layers(nested)[1] is stack[1]
    assert "uses GaussianNoise, which this exercise does not ask for" in model_problems(compiled(nested), MLP_SPEC)


# ---------------------------------------------------------------- models the grader cannot rebuild

class SmallCNN(keras.Model):
    """A subclassed model, as in the TensorFlow tutorials: no configuration that Keras can rebuild."""

    def __init__(self, units=10, activation="softmax"):
        super().__init__()
        self.flatten = layers.Flatten()
        self.out = layers.Dense(units, activation=activation)

    def call(self, x):
        return self.out(self.flatten(x))


class Doubling(keras.layers.Layer):
    def call(self, x):
        return 2 * x


def called(model, shape):
    """A subclassed model gets weights only once it has seen data."""
    model(keras.ops.zeros((1, *shape)))
    return model


@pytest.mark.parametrize("model, spec, message", [
    (lambda: compiled(called(SmallCNN(), (28, 28, 1))), CNN_SPEC,
     r"returns a subclassed model \(class SmallCNN, .*keras.Sequential\(\[...\]\) or with the functional API"),
    (lambda: compiled(keras.Sequential([keras.Input((784,)), SmallCNN(32, "relu"), layers.Dense(10, activation="softmax")])),
     MLP_SPEC, r"contains a subclassed model \(class SmallCNN"),
    (lambda: compiled(keras.Sequential([keras.Input((784,)), Doubling(), layers.Dense(10, activation="softmax")])),
     MLP_SPEC, r"uses a layer class of your own \(Doubling\)"),
    (lambda: compiled(keras.Sequential([keras.Input((784,)), layers.Lambda(lambda x: x / 2),
                                        layers.Dense(10, activation="softmax")])), MLP_SPEC, "uses a Lambda layer"),
    (lambda: compiled(keras.Sequential(mlp_stack())), MLP_SPEC,
     r"without an input shape: start it with keras.Input\(shape=\(784,\)\)"),
    (lambda: compiled(keras.Model([a := keras.Input((784,)), b := keras.Input((784,))],
                                  layers.Dense(10, activation="softmax")(layers.Add()([a, b])))), MLP_SPEC,
     "a model with 2 inputs and 1 outputs; expected one of each"),
])
def test_models_the_grader_cannot_rebuild_get_a_sentence(model, spec, message):
    problem = model_problems(model(), spec)
    assert problem is not None and re.search(message, problem), problem
