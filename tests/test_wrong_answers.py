"""Every hidden check passes its reference and fails known-wrong answers with its own sentence (issue 13).

Each chapter's ``grading/checks/<chapter>.py`` lists, next to its ``EXERCISES``:

- ``WRONG_ANSWERS``: exercise -> [(a wrong student function, a phrase (regex) the failure must contain)],
  common slips such as a flipped kernel, padding on the wrong side, ``np.roll`` for a shift, an
  off-by-one, a dtype slip, a model that cannot learn; every exercise has at least one;
- ``VALID_ANSWERS`` (optional): exercise -> [other right answers], e.g. a smaller valid model that
  must pass the learning threshold.

A new chapter joins by listing its answers there. Each case runs one judgement as the pipeline
does, both sides in this process: the trusted side draws cases from a fresh seed and computes the
references (:func:`convae.judge.draw_task`), the student's function answers as the kernel would
(``_run_student``: a model travels as its ``.keras`` bytes) and the sandboxed side decodes,
rebuilds and judges (:func:`convae.judge.verdict_on_results`). The transports around them are
tested in tests/test_judge.py and tests/test_grading.py.
"""
from __future__ import annotations

import json
import re
import types

import numpy as np
import pytest

from conftest import CHAPTERS, ROOT
from convae.judge import _run_student, checks_path, decode, draw_task, load_references, verdict_on_results

#: fresh draws per answer of an exercise judged on arrays (cheap); a model is trained once
DRAWS = 3


def checks_module(chapter: str) -> types.ModuleType:
    """A chapter's hidden-check specification as a module, as the judge runs it."""
    path = checks_path(chapter, ROOT)
    module = types.ModuleType(f"checks_{chapter.replace('-', '_')}")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


#: chapters with hidden checks (a chapter being written may have none yet)
MODULES = {chapter: checks_module(chapter) for chapter in CHAPTERS
           if (ROOT / "grading" / "checks" / f"{chapter}.py").exists()}


def judged(chapter: str, exercise: str, fn) -> dict:
    """One judgement of ``fn`` for ``exercise``: {ok, message}."""
    task = draw_task(chapter, exercise, ROOT)
    results = [_run_student(fn, [decode(a) for a in args]) for args in task.cases]
    return verdict_on_results(task, json.dumps({"results": results}).encode())


def is_model_exercise(chapter: str, exercise: str) -> bool:
    return not MODULES[chapter].EXERCISES[exercise].needs_reference


def cases():
    for chapter, module in MODULES.items():
        for exercise in module.EXERCISES:
            yield pytest.param(chapter, exercise, "reference", None, id=f"{chapter}-{exercise}-reference")
            for fn in getattr(module, "VALID_ANSWERS", {}).get(exercise, []):
                yield pytest.param(chapter, exercise, fn.__name__, None, id=f"{chapter}-{exercise}-{fn.__name__}")
            for fn, phrase in getattr(module, "WRONG_ANSWERS", {}).get(exercise, []):
                yield pytest.param(chapter, exercise, fn.__name__, phrase, id=f"{chapter}-{exercise}-{fn.__name__}")


def answer_named(chapter: str, exercise: str, name: str):
    module = MODULES[chapter]
    if name == "reference":
        wanted = module.EXERCISES[exercise].reference or exercise
        return load_references(chapter, ROOT, wanted)[wanted]
    answers = [*getattr(module, "VALID_ANSWERS", {}).get(exercise, []),
               *(fn for fn, _ in getattr(module, "WRONG_ANSWERS", {}).get(exercise, []))]
    return next(fn for fn in answers if fn.__name__ == name)


@pytest.mark.parametrize("chapter", sorted(MODULES))
def test_every_exercise_lists_known_wrong_answers(chapter):
    """A chapter without wrong answers for an exercise would leave that hidden check untested."""
    module = MODULES[chapter]
    wrong = getattr(module, "WRONG_ANSWERS", None)
    assert wrong is not None, f"grading/checks/{chapter}.py has no WRONG_ANSWERS"
    assert set(wrong) == set(module.EXERCISES), (sorted(set(module.EXERCISES) ^ set(wrong)))
    names = [fn.__name__ for answers in wrong.values() for fn, _ in answers]
    names += [fn.__name__ for answers in getattr(module, "VALID_ANSWERS", {}).values() for fn in answers]
    assert all(answers for answers in wrong.values()) and len(names) == len(set(names)) and "<lambda>" not in names


@pytest.mark.parametrize("chapter, exercise, name, phrase", list(cases()))
def test_the_hidden_check_passes_right_answers_and_explains_wrong_ones(chapter, exercise, name, phrase):
    fn = answer_named(chapter, exercise, name)
    for _ in range(1 if is_model_exercise(chapter, exercise) else DRAWS):
        verdict = judged(chapter, exercise, fn)
        if phrase is None:
            assert verdict["ok"], f"{chapter} {exercise}: the right answer {name} failed: {verdict['message']}"
        else:
            assert not verdict["ok"], f"{chapter} {exercise}: the wrong answer {name} passed the hidden check"
            assert re.search(phrase, verdict["message"]), (phrase, verdict["message"])
            assert "Traceback" not in verdict["message"]
