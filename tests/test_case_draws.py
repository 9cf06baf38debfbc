"""Every hidden check's draw makes cases its reference can answer, for many seeds.

The judge draws cases from a seed taken at grading time, so a draw that fails for 1 seed in 80
(chapter 02 once drew a 5 x 5 kernel for a 12 x 3 image) fails a student's check at random.
Model exercises (needs_reference=False) are judged on the student's model, not a reference.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import CHAPTERS, ROOT
from convae.judge import load_exercises, load_references

SEEDS = 400


def exercises():
    for chapter in CHAPTERS:
        for name, spec in load_exercises(chapter, ROOT).items():
            if getattr(spec, "needs_reference", True):
                yield chapter, name, spec


@pytest.mark.parametrize("chapter,name,spec", list(exercises()), ids=lambda v: v if isinstance(v, str) else "")
def test_the_reference_answers_every_drawn_case(chapter, name, spec):
    reference = load_references(chapter, ROOT, spec.reference or name)[spec.reference or name]
    for seed in range(SEEDS):
        for args in spec.draw(np.random.default_rng(seed)):
            try:
                reference(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
            except Exception as err:
                pytest.fail(f"{chapter} {name}: seed {seed} drew a case the reference cannot answer: "
                            f"{type(err).__name__}: {err}")
