"""Hidden checks run in a pristine judge process and explain wrong answers in plain words."""
from __future__ import annotations

import numpy as np
import pytest

from convae.checks import CheckFailed, compare, expect
from convae.judge import hidden_check


def test_a_correct_function_passes_on_fresh_inputs():
    assert "hidden cases passed" in hidden_check("01-pixels", "normalise", lambda x: x / np.float32(255))


@pytest.mark.parametrize("exercise, wrong, phrase", [
    ("normalise", lambda x: x, "expected floating-point values"),
    ("normalise", lambda x: x / 256.0, "wrong values"),
    ("flatten", lambda x: np.asarray(x).reshape(len(x), 784), "raised ValueError"),
    ("invert", lambda x: 255 - x.astype(int), "expected unsigned integer values"),
    ("brighten", lambda x, d: x + np.uint8(abs(d) % 256), "wrong values"),
    ("class_mean_images", lambda x, y: None, "returned None"),
    ("rgb_to_gray", lambda x: x.mean(axis=-1), "wrong values"),
])
def test_wrong_answers_fail_with_a_plain_message(exercise, wrong, phrase):
    with pytest.raises(CheckFailed) as err:
        hidden_check("01-pixels", exercise, wrong)
    message = str(err.value)
    assert phrase in message, message
    assert "new inputs" in message and "Traceback" not in message


def test_patching_the_kernel_side_compare_does_not_fool_the_judge(monkeypatch):
    """The student patches every `compare` the kernel holds (the judge module keeps its own
    reference): a judgement in this process is fooled, the judge's pristine process is not."""
    import json

    import convae.checks
    import convae.judge
    from conftest import ROOT

    for module in (convae.checks, convae.judge):
        monkeypatch.setattr(module, "compare", lambda *a, **k: None)  # "everything is fine"
    task = convae.judge.draw_task("01-pixels", "normalise", ROOT)
    results = [convae.judge._run_student(lambda x: x, [convae.judge.decode(a) for a in args]) for args in task.cases]
    assert convae.judge.verdict_on_results(task, json.dumps({"results": results}).encode())["ok"], \
        "the patch is live in this process"
    with pytest.raises(CheckFailed, match="expected floating-point values"):
        hidden_check("01-pixels", "normalise", lambda x: x)


def test_compare_accepts_numbers_where_a_number_is_expected():
    assert compare(26, np.asarray(26), "output_size(28, 3)") is None
    assert compare(np.int64(26), 26, "output_size(28, 3)") is None
    assert compare(26.5, 26, "output_size(28, 3)") == "output_size(28, 3) returned 26.5, expected 26."
    assert "expected a single number" in compare([26], 26, "output_size(28, 3)")


def test_expect_explains_shape_dtype_and_in_place_changes():
    assert "shape (4,), expected shape (2, 2)" in compare(np.zeros(4), np.zeros((2, 2)), "f(x)")
    assert "return a NumPy array" in compare([1, 2], np.zeros(2), "f(x)")

    def in_place(x):
        x += 1
        return x

    with pytest.raises(CheckFailed, match="changed its input array in place"):
        x = np.zeros(3)
        expect(in_place, x, returns=x + 1)


def test_a_missing_specification_is_reported_as_not_the_students_fault():
    with pytest.raises(CheckFailed, match="not your fault"):
        hidden_check("01-pixels", "no_such_exercise", lambda x: x)


def test_a_request_cannot_make_the_judge_run_a_file_of_the_students(tmp_path, monkeypatch):
    """Student code chooses the chapter name it sends; a path there would make the judge execute
    grading/checks/<path>.py outside the sandbox."""
    from convae.judge import judge

    evil = tmp_path / "evil.py"
    evil.write_text("import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\nEXERCISES = {}\n")
    for chapter in (f"../../../../../../{tmp_path}/evil", "01-pixels/../../x", "01-pixels\n"):
        sent = []
        verdict = judge({"chapter": chapter, "exercise": "normalise"}, None, sent.append)
        assert verdict["ok"] is False and "unknown exercise" in sent[0]["error"]
    sent = []
    assert judge({"chapter": "01-pixels", "exercise": "os.system"}, None, sent.append)["ok"] is False
    assert "unknown exercise" in sent[0]["error"]
    assert not (tmp_path / "RAN").exists()
