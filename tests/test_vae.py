"""Chapter 07's helpers (convae.vae): the encoder's structure check, the course's digit classifier and
its cache, image grids; and the chapter's Sampling layer and loss as the notebook defines them.

The hidden checks' verdicts on right and wrong answers are in tests/test_wrong_answers.py; the whole
chapter runs in tests/test_chapters.py.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from conftest import ROOT
from convae import specs
from convae.checks import CheckFailed, model_problems
from convae.judge import load_references
from convae.vae import (build_classifier, digit_classifier, encoder_problems, expect_encoder, feature_model,
                        image_grid)


def encoder(latent_dim=4, hidden=(32,), mean_activation=None, log_var_activation=None,
            names=("z_mean", "z_log_var"), outputs=2):
    inputs = keras.Input((784,))
    h = inputs
    for units in hidden:
        h = layers.Dense(units, activation="relu")(h)
    heads = [layers.Dense(latent_dim, activation=mean_activation, name=names[0])(h),
             layers.Dense(latent_dim, activation=log_var_activation, name=names[1])(h)]
    return keras.Model(inputs, heads[:outputs] if outputs > 1 else heads[0])


def test_a_valid_encoder_passes_and_every_slip_gets_its_own_sentence():
    spec = specs.vae_encoder_spec(4)
    assert encoder_problems(encoder(), spec) is None
    cases = {
        "output(s); an encoder of a VAE gives two": encoder(outputs=1),
        "expected ('z_mean', 'z_log_var'), in that order": encoder(names=("z_log_var", "z_mean")),
        "has activation 'softplus'; a log-variance is any real number": encoder(log_var_activation="softplus"),
        "has activation 'relu'; a mean is any real number": encoder(mean_activation="relu"),
        "expected (None, 4)": encoder(latent_dim=3),
        "encoder is linear": encoder(hidden=()),
        "the budget is 608,000": encoder(hidden=(800,)),
        "takes inputs of shape (28, 28, 1)": keras.Model(i := keras.Input((28, 28, 1)), [
            layers.Dense(4, name="z_mean")(f := layers.Dense(8, activation="relu")(layers.Flatten()(i))),
            layers.Dense(4, name="z_log_var")(f)]),
        "returned a int": 3,
    }
    for phrase, model in cases.items():
        problem = encoder_problems(model, spec)
        assert problem is not None and phrase in problem, (phrase, problem)


def test_a_lambda_layer_is_refused_in_words():
    inputs = keras.Input((784,))
    h = layers.Lambda(lambda t: t * 2)(inputs)
    h = layers.Dense(8, activation="relu")(h)
    model = keras.Model(inputs, [layers.Dense(2, name="z_mean")(h), layers.Dense(2, name="z_log_var")(h)])
    assert "Lambda layer" in encoder_problems(model, specs.vae_encoder_spec(2))


def test_the_visible_check_raises_the_same_sentence():
    with pytest.raises(CheckFailed, match="has activation 'softplus'"):
        expect_encoder(lambda d: encoder(d, log_var_activation="softplus"), specs.vae_encoder_spec(4))
    with pytest.raises(CheckFailed, match="is not written yet"):
        expect_encoder(lambda d: (_ for _ in ()).throw(NotImplementedError()), specs.vae_encoder_spec(4))
    assert expect_encoder(lambda d: encoder(d), specs.vae_encoder_spec(4)).count_params() > 0


def test_the_chapters_own_encoder_meets_its_spec_at_every_size_the_judge_asks():
    build = load_references("07-vae", ROOT, "build_encoder")["build_encoder"]
    for latent_dim in (2, 5, 10, 16, 20):
        assert encoder_problems(build(latent_dim), specs.vae_encoder_spec(latent_dim)) is None


def test_the_classifier_meets_its_own_spec_and_gives_64_features():
    model = build_classifier()
    assert model_problems(model, specs.CLASSIFIER_SPEC) is None
    assert model.count_params() == 56_714
    features = feature_model(model).predict(np.zeros((3, 784), "float32"), verbose=0)
    assert features.shape == (3, 64)


def test_the_classifier_is_cached_per_training_set(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVAE_WORK_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(256, 784)).astype("float32"), rng.integers(0, 10, size=256)
    first, seconds = digit_classifier(x, y, epochs=1)
    assert seconds > 0 and len(list((tmp_path / "07-vae").glob("classifier-*.weights.h5"))) == 1
    again, seconds_again = digit_classifier(x, y, epochs=1)
    assert seconds_again == 0.0
    np.testing.assert_allclose(again.predict(x[:8], verbose=0), first.predict(x[:8], verbose=0), rtol=1e-5, atol=1e-6)
    _, other = digit_classifier(x[:128], y[:128], epochs=1)  # other images: trained, not loaded
    assert other > 0 and len(list((tmp_path / "07-vae").glob("classifier-*.weights.h5"))) == 2


def test_image_grid_places_images_row_by_row():
    images = np.stack([np.full((4, 4), v) for v in (0.0, 0.25, 0.5, 0.75, 1.0, 0.1)])
    ax = image_grid(images.reshape(6, 16), 2, 3, gap=1)
    canvas = ax.images[0].get_array()
    assert canvas.shape == (2 * 5 - 1, 3 * 5 - 1)
    assert canvas[0, 0] == 0.0 and canvas[0, 5] == 0.25 and canvas[5, 0] == 0.75 and canvas[5, 10] == 0.1
    assert canvas[4, 0] == 1.0  # the gap is white


def test_the_chapters_sampling_layer_draws_and_adds_the_kl_term():
    """The notebook's Sampling layer (run from the solution's definitions, as the judge reads them)."""
    refs = load_references("07-vae", ROOT, "Sampling")
    kl = load_references("07-vae", ROOT, "kl_divergence")["kl_divergence"]
    layer = refs["Sampling"](beta=2.0, seed=3)
    mean = np.tile(np.array([[0.5, -1.0, 2.0]], "float32"), (50_000, 1))
    log_var = np.tile(np.array([[0.0, np.log(4.0), np.log(0.01)]], "float32"), (50_000, 1))
    z = keras.ops.convert_to_numpy(layer([mean, log_var]))
    np.testing.assert_allclose(z.mean(axis=0), [0.5, -1.0, 2.0], atol=0.03)
    np.testing.assert_allclose(z.std(axis=0), [1.0, 2.0, 0.1], rtol=0.03)
    assert np.isclose(float(sum(layer.losses)), 2.0 * kl(mean, log_var).mean(), rtol=1e-4)
    again = keras.ops.convert_to_numpy(layer([mean[:5], log_var[:5]]))
    assert not np.allclose(again, z[:5]), "the seed generator advances: new noise at every call"


def test_the_anchor_recipe_is_registered_with_its_targets():
    from convae.anchors import RECIPES
    from convae.bench import ANCHORS, TARGETS

    assert ANCHORS["07-vae"] == ("vae",) and "vae" in RECIPES
    named = {t.of for t in TARGETS["07-vae"] if t.of}
    assert {"anchor_vae_test_nelbo", "anchor_vae_train_seconds"} <= named


@pytest.mark.slow
def test_the_chapter_executes_on_jax_in_fast_mode(tmp_path):
    """Issue 12: the chapter runs on JAX too (``make bench KERAS_BACKEND=jax`` installs
    requirements-jax.txt into .venv first). Skipped, saying so, where JAX is not installed."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed here: `pip install -r requirements-jax.txt` (as `make bench "
                    "KERAS_BACKEND=jax` does) to run this test")
    out = tmp_path / "07-vae-jax.ipynb"
    env = dict(os.environ, KERAS_BACKEND="jax", CONVAE_FAST="1", CONVAE_WORK_DIR=str(tmp_path / "work"))
    run = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output", str(out),
                          str(ROOT / "solutions" / "07-vae" / "07-vae.ipynb")],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    import nbformat

    nb = nbformat.read(out, as_version=4)
    assert "(jax backend)" in "".join(o.get("text", "") for o in nb.cells[1].outputs)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
