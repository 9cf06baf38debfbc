"""make bench: the anchor recipes run (fast mode), the verdicts say plainly what is met or not."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convae.bench import (TARGETS, AnchorFailed, compare, comparison_table, default_results_path,
                          run_anchor)

FAST_ENV = {**os.environ, "CONVAE_FAST": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_anchor_recipe_runs_in_its_own_process(name):
    # run_anchor runs `python -m convae.anchors NAME` and reads the JSON line it prints.
    result = run_anchor(name, env=FAST_ENV)
    # Fast mode, 1 epoch on 2,000 images, seed 0: measured 0.62 (convnet) and 0.76 (mlp), seeds
    # 0-3 gave 0.61-0.67 and 0.75-0.82; chance is 0.1.
    assert 0.5 < result["test_acc"] <= 1, result
    assert result["train_seconds"] > 0, result
    assert result["epochs"] == 1, result
    assert result["backend"], result


def test_a_failed_anchor_is_reported_with_the_end_of_its_stderr():
    with pytest.raises(AnchorFailed, match="(?s)no-such-recipe.*invalid choice"):
        run_anchor("no-such-recipe", env=FAST_ENV)


def test_bench_refuses_fast_mode():
    run = subprocess.run([sys.executable, "-m", "convae.bench"], env=FAST_ENV, capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "full mode" in run.stderr


CNN_TARGETS = [t for t in TARGETS["04-mlp-vs-cnn"] if t[0] == "cnn"]
ANCHOR_FIGURES = {"anchor_convnet_test_acc": 0.9922, "anchor_convnet_train_seconds": 100.0}


def judged(**ours):
    return compare({**ANCHOR_FIGURES, **ours}, CNN_TARGETS, time_budget=1 / 3)["cnn"]


def test_target_met():
    row = judged(cnn_test_acc=0.9925, cnn_train_seconds=30.0)
    assert row["met"] and row["verdict"] == "met"
    assert row["time_ratio"] == pytest.approx(0.3)


def test_accuracy_short_of_target_says_by_how_much():
    row = judged(cnn_test_acc=0.991, cnn_train_seconds=30.0)
    assert not row["met"]
    assert row["verdict"] == "accuracy 0.9910 < 0.992 target"


def test_training_too_long_says_the_ratio():
    row = judged(cnn_test_acc=0.9925, cnn_train_seconds=41.0)
    assert row["verdict"] == "time ratio 0.41 > 0.33"


def test_both_failures_are_named():
    row = judged(cnn_test_acc=0.99, cnn_train_seconds=50.0)
    assert row["verdict"] == "accuracy 0.9900 < 0.992 target; time ratio 0.50 > 0.33"


def test_missing_metric_is_named_and_the_rest_still_judged():
    row = judged(cnn_test_acc=0.99)
    assert not row["met"] and row["time_ratio"] is None
    assert row["verdict"] == "missing cnn_train_seconds; accuracy 0.9900 < 0.992 target"
    line = comparison_table({"cnn": row}).splitlines()[-1]
    assert line.split()[:5] == ["cnn", "vs", "convnet", "0.9900", "-"]
    assert line.endswith(row["verdict"])


def test_a_failed_anchor_leaves_no_figures_and_no_crash():
    rows = compare({"cnn_test_acc": 0.995, "cnn_train_seconds": 10.0}, CNN_TARGETS)
    assert rows["cnn"]["verdict"] == "missing anchor_convnet_test_acc, anchor_convnet_train_seconds"
    assert "missing anchor_convnet_test_acc" in comparison_table(rows)


def test_table_states_the_targets():
    table = comparison_table(compare({}, TARGETS["04-mlp-vs-cnn"]))
    assert table.splitlines()[0] == "targets: cnn test acc >= 0.992, mlp test acc >= 0.983; train time <= 0.33 x the anchor's"


def test_results_file_per_backend():
    assert default_results_path("tensorflow") == "bench/results.json"
    assert default_results_path("jax") == "bench/results-jax.json"
