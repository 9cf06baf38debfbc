"""Hidden checks of exercises that return a Keras model (the pattern chapter 04 builds on).

A throwaway chapter in a temporary course: its "solution notebook" defines the reference
`build_model`, its spec judges the rebuilt copy. The student's model crosses as a .keras file.
"""
from __future__ import annotations


import nbformat
import pytest

from convae.checks import CheckFailed
from convae.judge import hidden_check

SOLUTION = '''import keras


def build_model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])
'''

SPEC = '''import numpy as np

from convae.judge import Exercise, output_shape


def judge_model(model, reference, call, args):
    if output_shape(model) != (None, 3):
        return f"{call} builds a model with output shape {output_shape(model)}, expected (None, 3)."
    if model.count_params() > 2 * reference.count_params():
        return f"{call} has {model.count_params():,} parameters; the budget is {2 * reference.count_params():,}."
    return None


EXERCISES = {"build_model": Exercise(draw=lambda rng: [()], judge=judge_model)}
'''


@pytest.fixture
def course(tmp_path, monkeypatch):
    chapter = tmp_path / "solutions" / "99-demo"
    chapter.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SOLUTION)]), chapter / "99-demo.ipynb")
    (tmp_path / "grading" / "checks").mkdir(parents=True)
    (tmp_path / "grading" / "checks" / "99-demo.py").write_text(SPEC)
    monkeypatch.setenv("CONVAE_COURSE_ROOT", str(tmp_path))
    return tmp_path


def test_models_are_judged_as_rebuilt_copies(course):
    import keras

    def good():
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])

    def wrong_output():
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(10, activation="softmax")])

    def lambda_layer():
        return keras.Sequential([keras.Input((8,)), keras.layers.Lambda(lambda x: x[:, :3])])

    assert "1 hidden cases passed" in hidden_check("99-demo", "build_model", good)
    with pytest.raises(CheckFailed, match=r"output shape \(None, 10\), expected \(None, 3\)"):
        hidden_check("99-demo", "build_model", wrong_output)
    with pytest.raises(CheckFailed, match="cannot rebuild .*no Lambda or custom layers"):
        hidden_check("99-demo", "build_model", lambda_layer)


def test_patching_the_model_in_the_kernel_does_not_change_the_verdict(course, monkeypatch):
    import keras

    big = lambda: keras.Sequential([keras.Input((8,)), keras.layers.Dense(512), keras.layers.Dense(3)])  # noqa: E731
    monkeypatch.setattr(keras.Model, "count_params", lambda self: 67)  # the known nbgrader trick
    with pytest.raises(CheckFailed, match="parameters; the budget is"):
        hidden_check("99-demo", "build_model", big)
