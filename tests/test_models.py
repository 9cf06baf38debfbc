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

from convae.checks import CheckFailed, expect_model, model_layers, model_problems
from convae.judge import hidden_check
from convae.specs import CNN_SPEC, CONV_AE_SPEC, MLP_SPEC, dense_autoencoder_spec
from convae.training import one_cycle_rate, one_cycle_schedule


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
    # chapter 04 teaches this (logits and from_logits=True) as the alternative its exercises do not use
    (lambda: compiled(mlp(512, out_activation=None), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
     MLP_SPEC, "does not end in a softmax"),
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


def keras_one_cycle(peak, total_steps, warmup=0.2):
    """Chapter 04's schedule (its `one_cycle`): Keras's CosineDecay with a linear warm-up."""
    warmup_steps = int(warmup * total_steps)
    return keras.optimizers.schedules.CosineDecay(peak / 10, total_steps - warmup_steps, warmup_target=peak,
                                                  warmup_steps=warmup_steps)


@pytest.mark.parametrize("make_schedule", [keras_one_cycle, one_cycle_schedule], ids=["chapter04", "helper"])
@pytest.mark.parametrize("total", [1000, 32, 7])
def test_keras_cosine_decay_with_warmup_is_the_one_cycle_rate(total, make_schedule):
    """Chapter 04's CosineDecay and the helper package's (chapters 05-07): the same rate at every step."""
    peak = 2e-3
    schedule = make_schedule(peak, total)
    for step in range(total + 1):
        assert float(schedule(step)) == pytest.approx(one_cycle_rate(step, total, peak), rel=1e-5, abs=1e-10)


def test_an_optimizer_with_the_schedule_trains_at_the_schedules_rate():
    """Inside fit, the optimiser's rate follows its own step counter (no callback sets it)."""
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    schedule = keras_one_cycle(1e-2, total_steps=10)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).normal(size=(24, 4)).astype("float32"), np.arange(24) % 3
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 6 of the 10 planned steps
    assert int(model.optimizer.iterations) == 6
    assert float(model.optimizer.learning_rate) == pytest.approx(one_cycle_rate(6, 10, 1e-2), rel=1e-5)


def test_fit_autoencoder_trains_on_the_one_cycle_schedule_once():
    """The autoencoder chapters' loop: the rate follows the schedule inside fit, ends at zero, and a
    second call (which would start the schedule part-way) is refused in a sentence."""
    import numpy as np

    from convae.autoencoders import fit_autoencoder

    model = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="relu"), layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(24, 4)).astype("float32")
    fit_autoencoder(model, x, epochs=2, batch_size=8, peak_rate=1e-2)
    assert int(model.optimizer.iterations) == 6  # 3 batches x 2 epochs
    assert float(model.optimizer.learning_rate) == pytest.approx(one_cycle_rate(6, 6, 1e-2), abs=1e-9)
    assert float(model.optimizer._learning_rate(3)) == pytest.approx(one_cycle_rate(3, 6, 1e-2), rel=1e-5)
    with pytest.raises(ValueError, match="freshly compiled model once"):
        fit_autoencoder(model, x, epochs=1, batch_size=8)



def test_a_restarted_model_trains_again_exactly_as_the_first_time():
    """convae.training.restart: weights and optimiser state back to the start, so the same fit gives
    the same weights (CPU is deterministic here); a different number of steps is refused, because the
    compiled training step keeps the first schedule."""
    import numpy as np

    from convae.autoencoders import fit_autoencoder
    from convae.training import restart

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="relu"), layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse")
    initial = model.get_weights()
    x = np.random.default_rng(0).normal(size=(24, 4)).astype("float32")
    fit_autoencoder(model, x, epochs=2, batch_size=8, peak_rate=1e-2, seed=3, verbose=0)
    first = model.get_weights()
    assert not np.allclose(first[0], initial[0])
    restart(model, initial)
    assert int(model.optimizer.iterations) == 0 and np.array_equal(model.get_weights()[0], initial[0])
    fit_autoencoder(model, x, epochs=2, batch_size=8, peak_rate=1e-2, seed=3, verbose=0)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(first, model.get_weights()))
    restart(model, initial)
    with pytest.raises(ValueError, match="retrain it with the same ones"):
        fit_autoencoder(model, x, epochs=3, batch_size=8, peak_rate=1e-2, verbose=0)



def test_rows_on_demand_train_exactly_as_the_whole_transformed_array():
    """convae.autoencoders.RowsOnDemand: fit_autoencoder on rows computed per batch gives the same
    weights as on the array computed whole (same seed), and arrays of unequal length are refused."""
    import numpy as np

    from convae.autoencoders import RowsOnDemand, fit_autoencoder

    def with_flag(x, flag):
        return np.concatenate([x, flag[:, None]], axis=1)

    x = np.random.default_rng(0).normal(size=(24, 4)).astype("float32")
    flag = (np.arange(24) % 2).astype("float32")
    trained = []
    for inputs in (with_flag(x, flag), RowsOnDemand(with_flag, x, flag)):
        keras.utils.set_random_seed(2)
        model = keras.Sequential([keras.Input((5,)), layers.Dense(3, activation="relu"), layers.Dense(4)])
        model.compile(optimizer="adam", loss="mse")
        fit_autoencoder(model, inputs, target=x, epochs=2, batch_size=8, seed=5, verbose=0)
        trained.append(model.get_weights())
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(*trained))
    with pytest.raises(ValueError, match="one length"):
        RowsOnDemand(with_flag, x, flag[:5])


def test_per_image_scores_in_batches_equal_the_whole_array_at_once():
    """convae.autoencoders.per_image_in_batches: the score of every image, computed on slices (the
    last one short), equals the score of the whole array's outputs."""
    import numpy as np

    from convae.autoencoders import per_image_in_batches

    model = keras.Sequential([keras.Input((4,)), layers.Dense(4, activation="sigmoid")])
    x = np.random.default_rng(0).random((23, 4), dtype=np.float32)

    def squared_error(images, outputs):
        return np.mean((images - outputs) ** 2, axis=1)

    whole = squared_error(x, model.predict(x, verbose=0))
    sliced = per_image_in_batches(squared_error, model, x, batch_size=5)
    assert sliced.shape == (23,) and np.allclose(sliced, whole, atol=1e-6)


def test_the_course_fits_let_go_of_their_training_arrays():
    """convae.training.fit_then_release: after fit_autoencoder, fit_denoiser and fit_classifier the
    arrays trained on are freed once the caller drops them (Keras's tf.data generator keeps the
    PyDataset alive; without release() each array stayed in memory: chapter 05 grew 18 MB a digit)."""
    import gc
    import weakref

    import numpy as np

    from convae.autoencoders import fit_autoencoder
    from convae.denoising import fit_denoiser
    from convae.vae import fit_classifier

    def trained_on(fit, make_model):
        x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
        alive = weakref.ref(x)
        fit(make_model(), x)
        del x
        gc.collect()
        return alive() is None

    def dense(outputs, loss="mse"):
        def make():
            model = keras.Sequential([keras.Input((4,)), layers.Dense(outputs)])
            model.compile(optimizer="adam", loss=loss)
            return model
        return make

    assert trained_on(lambda m, x: fit_autoencoder(m, x, epochs=1, batch_size=8, verbose=0), dense(4))
    assert trained_on(lambda m, x: fit_denoiser(m, x, lambda c, seed: c + 0.1, epochs=1, batch_size=8, verbose=0),
                      dense(4))
    assert trained_on(lambda m, x: fit_classifier(m, x, np.zeros(len(x), "int32"), epochs=1, batch_size=8, verbose=0),
                      dense(10, "sparse_categorical_crossentropy"))


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


def dense_ae_stack(code=32, hidden="relu", code_activation="relu", output="sigmoid", width=256, name="code"):
    return [layers.Dense(width, activation=hidden), layers.Dense(code, activation=code_activation, name=name),
            layers.Dense(width, activation="relu"), layers.Dense(784, activation=output)]


def conv_ae_stack(code=32, output="sigmoid"):
    """Strided convolutions, a Dense code, Conv2DTranspose back up: 120,769 parameters at code 32."""
    return [layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"), layers.Flatten(),
            layers.Dense(code, activation="relu", name="code"), layers.Dense(7 * 7 * 32, activation="relu"),
            layers.Reshape((7, 7, 32)), layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(1, 3, padding="same", activation=output)]


def ae_compiled(model, loss="binary_crossentropy"):
    model.compile(optimizer="adam", loss=loss)
    return model


STYLES = ("sequential", "functional", "nested", "composed")


@pytest.mark.parametrize("style", STYLES)
def test_sequential_functional_and_nested_models_are_judged_alike(style, tmp_path):
    """keras.Model(inputs, outputs) lists an InputLayer, a Sequential does not; nested models are
    looked into. The chapter-04 classifiers and the chapter-05 autoencoders, in each style, pass
    here and on the copy rebuilt from their .keras file."""
    assert judged(compiled(styled(style, (784,), mlp_stack(), 2)), MLP_SPEC, tmp_path) is None
    assert judged(compiled(styled(style, (28, 28, 1), cnn_stack(), 4)), CNN_SPEC, tmp_path) is None
    assert judged(ae_compiled(styled(style, (784,), dense_ae_stack(), 2)), dense_autoencoder_spec(32), tmp_path) is None
    assert judged(ae_compiled(styled(style, (28, 28, 1), conv_ae_stack(), 4), loss="mse"), CONV_AE_SPEC,
                  tmp_path) is None


def test_the_judge_settles_batch_normalization_inside_nested_models():
    import importlib.util

    from convae.judge import course_root

    path = course_root() / "grading" / "checks" / "04-mlp-vs-cnn.py"
    spec = importlib.util.spec_from_file_location("checks_04", path)
    checks_04 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks_04)
    inner = layers.BatchNormalization()
    model = keras.Sequential([keras.Input((784,)), keras.Sequential([layers.Dense(8), inner]), layers.Dense(10)])
    checks_04.settle_batch_norm(model)
    assert inner.momentum == 0.9


def test_operations_of_the_functional_api_are_judged_like_layers(tmp_path):
    """``x + y`` or ``keras.ops.sin(x)`` in a functional model is an operation in its graph (and in
    its saved config): it is named in words, and it cannot hide a connection around the code."""
    inputs = keras.Input((784,))
    hidden = layers.Dense(64, activation="relu")(inputs)
    sine = compiled(keras.Model(inputs, layers.Dense(10, activation="softmax")(keras.ops.sin(hidden))))
    assert "uses keras.ops.sin, which this exercise does not ask for" in judged(sine, MLP_SPEC, tmp_path)


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
    (lambda: ae_compiled(called(SmallCNN(784, "sigmoid"), (784,))), dense_autoencoder_spec(32),
     "returns a subclassed model"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), SmallCNN(32, "relu"), layers.Dense(784, activation="sigmoid")])),
     dense_autoencoder_spec(32), r"contains a subclassed model \(class SmallCNN"),
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


# ---------------------------------------------------------------- autoencoders (chapter 05)

def skip_by_adding():
    inputs = keras.Input((784,))
    code = layers.Dense(32, activation="relu", name="code")(layers.Dense(256, activation="relu")(inputs))
    decoded = layers.Dense(784, activation="sigmoid")(layers.Dense(256, activation="relu")(code))
    return keras.Model(inputs, layers.Add(name="add_input")([decoded, inputs]))


def skip_by_concatenating():
    inputs = keras.Input((784,))
    hidden = layers.Dense(256, activation="relu", name="hidden")(inputs)
    code = layers.Dense(32, activation="relu", name="code")(hidden)
    joined = layers.Concatenate(name="join")([code, hidden])
    return keras.Model(inputs, layers.Dense(784, activation="sigmoid", name="pixels")(joined))


def skip_by_plus():
    inputs = keras.Input((784,))
    code = layers.Dense(32, activation="relu", name="code")(inputs)
    decoded = layers.Dense(784)(code)
    return keras.Model(inputs, layers.Activation("sigmoid", name="pixels")(decoded + inputs))


def two_codes():
    encoder = keras.Sequential(dense_ae_stack()[:2], name="encoder")
    decoder = keras.Sequential([layers.Dense(256, activation="relu", name="code"), layers.Dense(784, activation="sigmoid")])
    return keras.Sequential([keras.Input((784,)), encoder, decoder])


def conv_encoder(code=32):
    return [layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"), layers.Flatten(),
            layers.Dense(code, activation="relu", name="code")]


AE32 = dense_autoencoder_spec(32)


@pytest.mark.parametrize("model, spec, message", [
    (lambda: ae_compiled(keras.Sequential([keras.Input((28, 28)), layers.Flatten(), *dense_ae_stack()])), AE32,
     r"inputs of shape \(28, 28\); expected \(784,\)"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack()[:3], layers.Dense(10, activation="sigmoid")])),
     AE32, r"outputs of shape \(None, 10\); expected \(None, 784\): an autoencoder reconstructs its input"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(name="bottleneck")])), AE32,
     r"has no layer named 'code': .*layers.Dense\(32, activation=\"relu\", name=\"code\"\)"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(code=16)])), AE32,
     r"layer 'code' outputs \(16,\) \(16 numbers per image\); the code must hold exactly 32 numbers"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((28, 28, 1)), *conv_encoder(code=64), *conv_ae_stack()[4:]])),
     CONV_AE_SPEC, r"layer 'code' outputs \(64,\) \(64 numbers per image\); the code must hold exactly 32"),
    (lambda: ae_compiled(two_codes()), AE32, "uses a layer named 'code' 2 times"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(hidden=None, code_activation=None)])),
     AE32, r"encoder is linear .* no more than PCA"),
    (lambda: ae_compiled(skip_by_adding()), AE32, r"skips the layer 'code' \(input -> add_input\)"),
    (lambda: ae_compiled(skip_by_plus()), AE32, r"skips the layer 'code' \(input -> add(_\d+)? -> pixels\)"),  # Keras numbers unnamed ops: add, add_1, ...
    (lambda: ae_compiled(keras.Model(inputs := keras.Input((784,)), inputs)), AE32, "has no layer named 'code'"),
    (lambda: ae_compiled(skip_by_concatenating()), AE32, r"skips the layer 'code' \(input -> hidden -> join -> pixels\)"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(output="relu")])), AE32,
     "does not end in a sigmoid: its last layer is a Dense with activation 'relu'"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(output=None)])), AE32,
     "does not end in a sigmoid: its last layer is a Dense with activation 'linear'"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(width=1024)])), AE32,
     "has 1,674,032 parameters; the budget is 632,000"),
    (lambda: keras.Sequential([keras.Input((784,)), *dense_ae_stack()]), AE32,
     r"not compiled: call model.compile\(optimizer=\"adam\", loss=\"binary_crossentropy\"\)"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack()]), loss="sparse_categorical_crossentropy"),
     AE32, "compiled with loss 'sparse_categorical_crossentropy'; an autoencoder is trained to reproduce its input"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack()]),
                         loss=keras.losses.BinaryCrossentropy(from_logits=True)), AE32, "from_logits=True"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(32, activation="relu", name="code"),
                                           layers.Dense(784, activation="relu"), layers.Reshape((28, 28, 1)),
                                           layers.Conv2D(1, 3, padding="same", activation="sigmoid")])),
     CONV_AE_SPEC, "has 0 Conv2D layers in its encoder; the specification asks for at least 1"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((28, 28, 1)), *conv_encoder(), layers.Dense(784, activation="sigmoid"),
                                           layers.Reshape((28, 28, 1))])),
     CONV_AE_SPEC, "has 0 Conv2D or Conv2DTranspose layers in its decoder"),
    (lambda: ae_compiled(keras.Sequential([keras.Input((28, 28, 1)), layers.SeparableConv2D(4, 3, padding="same"),
                                           *conv_ae_stack()])),
     CONV_AE_SPEC, "uses SeparableConv2D, which this exercise does not ask for"),
])
def test_each_way_to_miss_an_autoencoder_specification_is_named_here_and_on_the_rebuilt_copy(model, spec, message,
                                                                                               tmp_path):
    problem = judged(model(), spec, tmp_path)
    assert problem is not None and re.search(message, problem), problem


def test_valid_variants_of_the_autoencoders_pass(tmp_path):
    """Pooling and upsampling instead of strides, an Activation layer as the output, a sigmoid
    before a Reshape, the MSE loss written as a class: all meet the specification."""
    pooled = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(8, 3, padding="same"), layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(32, name="code"),
        layers.Dense(7 * 7 * 8, activation="relu"), layers.Reshape((7, 7, 8)), layers.UpSampling2D(2),
        layers.Conv2D(8, 3, padding="same", activation="relu"), layers.UpSampling2D(2), layers.Conv2D(1, 3, padding="same"),
        layers.Activation("sigmoid")])
    assert judged(ae_compiled(pooled, loss=keras.losses.MeanSquaredError()), CONV_AE_SPEC, tmp_path) is None
    reshaped = keras.Sequential([keras.Input((28, 28, 1)), *conv_encoder(), layers.Dense(14 * 14, activation="relu"),
                                 layers.Reshape((14, 14, 1)),
                                 layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),
                                 layers.Flatten(), layers.Reshape((28, 28, 1))])
    assert judged(ae_compiled(reshaped), CONV_AE_SPEC, tmp_path) is None
    small = keras.Sequential([keras.Input((784,)), layers.Dense(2, activation="relu", name="code"),
                              layers.Dense(784, activation="sigmoid")])
    assert judged(ae_compiled(small, loss=keras.losses.binary_crossentropy), dense_autoencoder_spec(2), tmp_path) is None


def test_a_check_that_cannot_inspect_a_model_says_so_in_words():
    """Here the fault is the specification's (an at_least entry without its words): the student
    reads a sentence that names the error and sends them to the instructor, not a traceback."""
    from dataclasses import replace

    broken = replace(CONV_AE_SPEC, at_least=((("Conv2D",), 1),))
    model = ae_compiled(keras.Sequential([keras.Input((28, 28, 1)), *conv_ae_stack()]))
    problem = model_problems(model, broken)
    assert problem.startswith("the check could not inspect the model build_conv_autoencoder() returned (ValueError")
    assert problem.endswith("tell your instructor.")


def test_the_visible_check_passes_the_code_size_and_raises_the_sentence():
    def build_autoencoder(code_size):
        return ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(code=code_size)]))

    assert expect_model(build_autoencoder, dense_autoencoder_spec(8)).get_layer("code").units == 8
    with pytest.raises(CheckFailed, match=r"build_autoencoder\(8\) does not end in a sigmoid"):
        expect_model(lambda code_size: ae_compiled(keras.Sequential([keras.Input((784,)), *dense_ae_stack(code_size, output="relu")])),
                     dense_autoencoder_spec(8))
    with pytest.raises(ValueError, match="smaller than the 784 pixels"):
        dense_autoencoder_spec(784)
