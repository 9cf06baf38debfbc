"""What the chapters report with convae.bench.record, read from the session's one fast-mode run of
each chapter (conftest's `executed`; no chapter runs twice for these checks).

- every figure a bench target names is one the chapter records: a renamed ``record()`` key would
  otherwise turn that target's verdict into "not measured" in `make bench`, with the suite green;
- a training chapter's models learn in fast mode: a floor that a model which stopped learning
  (zeroed weights, a broken layer) misses by far.
"""
from __future__ import annotations

import pytest

from conftest import CHAPTERS, RECORDED
from convae.bench import TARGETS

pytestmark = pytest.mark.slow

#: figures of the run itself, not recorded by the notebook (anchors' figures come from their recipes)
RUN_FIGURES = {"seconds", "peak_mb"}

#: fast-mode floors, far below what the chapter measures in fast mode (2026-12, 2 cores: MLP 0.863,
#: CNN 0.906 test accuracy; chapter 05's 1-NN on the deep autoencoder's codes 0.50, mean of 20 label
#: draws) and far above what a model that cannot learn reaches (about 0.10: a constant code gives
#: every test image the label of one labelled image)
FLOORS = {"04-mlp-vs-cnn": {"mlp_test_acc": 0.5, "cnn_test_acc": 0.5},
          "05-autoencoders": {"fewlabel_acc_ae": 0.3},
          # chapter 06: the sigma-0.5 denoiser adds 4.25 dB to the noisy test digits' mean PSNR in fast
          # mode (2026-12-02); a denoiser that did not learn adds at most about 0.4 dB (an all-black
          # output), one that ignores its input and draws the mean digit about 2.5 dB
          "06-denoising": {"dae_gain_over_noisy_g050": 3.0},
          # chapter 07: the course classifier agrees with the digit asked of the CVAE for 0.678 of its
          # samples in fast mode (2026-12-02; 0.694 on JAX); a CVAE that ignores its label, or draws a
          # constant image, gets 0.10 in expectation (the requests are balanced over the ten digits)
          "07-vae": {"cvae_label_acc": 0.3}}


def named_figures(chapter: str) -> set[str]:
    names = {name for target in TARGETS[chapter] for name in (target.metric, target.of) if name}
    return {name for name in names if not name.startswith("anchor_")} - RUN_FIGURES


@pytest.mark.parametrize("chapter", sorted(TARGETS))
def test_every_target_names_a_figure_the_chapter_records(chapter, executed):
    assert chapter in CHAPTERS, f"convae.bench.TARGETS names {chapter}, which is not a chapter"
    executed(chapter)
    missing = sorted(named_figures(chapter) - set(RECORDED[chapter]))
    assert not missing, (f"{chapter}: its targets name {missing}, which the notebook does not record "
                         f"(it records {sorted(RECORDED[chapter])})")


@pytest.mark.parametrize("chapter", sorted(FLOORS))
def test_training_chapters_learn_in_fast_mode(chapter, executed):
    executed(chapter)
    short = {name: RECORDED[chapter].get(name) for name, floor in FLOORS[chapter].items()
             if not RECORDED[chapter].get(name, 0) >= floor}
    assert not short, f"{chapter} in fast mode: {short} below the floors {FLOORS[chapter]}"
