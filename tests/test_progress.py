"""convae.progress: the "N of M, time left" line of make grade."""
from convae.progress import Progress, duration


def test_duration_reads_like_a_person_would_say_it():
    assert [duration(s) for s in (0, 42.4, 185, 3720)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]


def test_progress_counts_and_estimates_the_time_left_from_the_mean_so_far():
    now = [100.0]
    progress = Progress(4, "graded", clock=lambda: now[0])
    now[0] = 130.0
    assert progress.step() == "graded 1 of 4, 30 s elapsed, about 1 min 30 s left"
    now[0] = 160.0
    assert progress.step() == "graded 2 of 4, 1 min 00 s elapsed, about 1 min 00 s left"
    progress.step()
    assert progress.step() == "graded 4 of 4, 1 min 00 s elapsed"


# CONVAE_PROGRESS (convae.config): what the helpers' fit(verbose=...) gets.

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402

from convae import config  # noqa: E402


@pytest.mark.parametrize("value, verbose", [("bar", 1), ("epoch", 2), ("off", 0), (" Epoch ", 2), ("OFF", 0)])
def test_each_progress_setting_gives_its_keras_verbose(monkeypatch, value, verbose):
    monkeypatch.setenv(config.PROGRESS_ENV, value)
    assert config.keras_verbose() == verbose


@pytest.mark.parametrize("unset", [True, False])
def test_the_default_is_a_progress_bar_for_the_student_in_jupyterlab(monkeypatch, unset):
    if unset:
        monkeypatch.delenv(config.PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(config.PROGRESS_ENV, "")
    assert config.progress() == "bar" and config.keras_verbose() == 1


def test_an_unknown_setting_names_the_allowed_ones(monkeypatch):
    monkeypatch.setenv(config.PROGRESS_ENV, "bars")
    with pytest.raises(ValueError, match=r"CONVAE_PROGRESS='bars'.*use one of: bar, epoch, off"):
        config.keras_verbose()


def test_a_verbose_the_caller_gives_wins_over_the_setting(monkeypatch):
    monkeypatch.setenv(config.PROGRESS_ENV, "bar")
    assert config.keras_verbose(0) == 0 and config.keras_verbose(2) == 2 and config.keras_verbose(None) == 1


@pytest.mark.parametrize("setting, headless", [(None, "epoch"), ("bar", "epoch"), ("epoch", "epoch"), ("off", "off")])
def test_headless_runs_get_a_line_per_epoch_unless_asked_for_silence(setting, headless):
    environ = {"OTHER": "kept"} if setting is None else {"OTHER": "kept", config.PROGRESS_ENV: setting}
    before = dict(environ)
    assert config.headless_progress(environ) == headless
    assert config.headless_env(environ) == {"OTHER": "kept", config.PROGRESS_ENV: headless}
    assert environ == before  # a copy: the caller's environment is left as it was


def test_a_headless_run_refuses_an_unknown_setting_before_any_kernel_starts():
    with pytest.raises(ValueError, match="use one of"):
        config.headless_env({config.PROGRESS_ENV: "verbose"})


FIT_ONCE_PER_SETTING = textwrap.dedent("""
    import os, sys
    import convae, keras, numpy as np
    from convae.autoencoders import fit_autoencoder

    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    for setting in ("epoch", "off", "bar"):
        os.environ["CONVAE_PROGRESS"] = setting  # read at each fit, so one import serves all three
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
        model.compile(optimizer="adam", loss="mse")
        print(f"=== {setting}", flush=True)
        fit_autoencoder(model, x, epochs=2, batch_size=16)
        sys.stdout.flush()
""")


@pytest.mark.slow
def test_one_tiny_fit_per_setting_prints_what_the_setting_says():
    # One TensorFlow import, in a process of its own (the test process stays free of it).
    run = subprocess.run([sys.executable, "-c", FIT_ONCE_PER_SETTING], capture_output=True, text=True,
                         env={**os.environ, "CONVAE_FAST": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    sections = dict(part.split("\n", 1) for part in run.stdout.split("=== ")[1:])
    epoch, off, bar = sections["epoch"], sections["off"], sections["bar"]
    # Keras's verbose=2: a header and a summary per epoch, nothing in between
    lines = epoch.splitlines()
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"], repr(epoch)
    assert len(lines) == 4 and all(line.startswith("2/2 - ") and "loss" in line for line in lines[1::2]), repr(epoch)
    assert "\r" not in epoch and "\b" not in epoch, repr(epoch)  # nothing a stored output would pile up
    assert off == "", repr(off)
    # why headless runs must not use the bar: it redraws itself with carriage returns / backspaces
    assert "Epoch 1/2" in bar and ("\r" in bar or "\b" in bar), repr(bar)
