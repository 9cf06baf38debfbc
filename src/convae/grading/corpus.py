"""Generated submissions: honest answers, attacks and faults, for the tests and for scale runs.

``python -m convae.grading.corpus --students 200 --out DIR`` writes a class in nbgrader's submitted
layout (``DIR/<student>/<chapter>/<chapter>.ipynb``): a seeded mix of full, partial and blank work,
as a real class hands in. :func:`attacks` builds the adversarial corpus of chapter 01 that
tests/test_grading.py grades and checks line by line.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import nbformat

from convae.judge import course_root

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def load(chapter: str, root: Path | None = None):
    """(release, source) notebooks of a chapter: the student version and the author's."""
    root = root or course_root()
    release = nbformat.read(root / "notebooks" / chapter / f"{chapter}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / chapter / f"{chapter}.ipynb", as_version=4)
    return release, source


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def solution_cells(source) -> dict:
    """grade_id -> the author's answer, markers removed, for every solution cell."""
    return {_grade_id(c): "\n".join(ln for ln in c.source.splitlines() if ln.strip() not in MARKERS)
            for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def answer(release, source, solved: set[str] | None = None, replace: dict | None = None):
    """The release with the author's answers in the ``solved`` cells (None = all) and the given
    ``replace``ments (grade_id -> source) in others: what a student hands in."""
    nb = copy.deepcopy(release)
    answers = solution_cells(source)
    for cell in nb.cells:
        grade_id = _grade_id(cell)
        if replace and grade_id in replace:
            cell.source = replace[grade_id]
        elif grade_id in answers and (solved is None or grade_id in solved):
            cell.source = answers[grade_id]
    return nb


def with_cell(nb, code: str, after: str | None = None):
    """A copy of ``nb`` with an ordinary code cell added after cell ``after`` (None: after the first code cell)."""
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if (_grade_id(c) == after if after else c.cell_type == "code"))
    cell = nbformat.v4.new_code_cell(code)
    cell.pop("id", None)
    nb.cells.insert(index + 1, cell)
    for i, c in enumerate(nb.cells):  # keep ids unique and valid
        c["id"] = c.get("id") or f"student-{i}"
    return nb


def with_foreign_cell(nb, grade_id: str = "conv2d_single_check"):
    """A copy of ``nb`` with a graded test cell, ``grade_id`` of another chapter, pasted in after
    the first code cell: what a student does by copying a cell across notebooks."""
    nb = with_cell(nb, "print('a test cell copied from chapter 02')")
    cell = next(c for c in nb.cells if c.get("id", "").startswith("student-"))
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": 2,
                                 "schema_version": 3, "solution": False, "task": False}
    return nb


def dumps(nb) -> bytes:
    return nbformat.writes(nb).encode()


# ---------------------------------------------------------------- chapter 01's attack corpus

WRONG_NORMALISE = "def normalise(images):\n    return images\n"

PATCH_CHECKS = """# attack: make every check pass without solving anything
import convae.checks, convae.judge
expect = lambda *args, **kwargs: None
convae.checks.expect = expect
convae.judge.hidden_check = lambda *args, **kwargs: "all hidden cases passed"
"""

PATCH_NUMPY = """# attack: make numpy's comparisons always agree
import numpy as np
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(np.asarray(a), np.asarray(b)).shape, bool)
np.array_equal = lambda *args, **kwargs: True
np.allclose = lambda *args, **kwargs: True
"""

PATCH_BUILTINS = """# attack: swallow every exception, so no test cell can fail
import builtins
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
builtins.AssertionError = type("NeverRaised", (Exception,), {})
"""

#: where the grader's runs keep their jobs (run.py's mkdtemp honours TMPDIR), as the grader sees it
#: when it writes the corpus: the attacks look there, not in a /tmp that may hold no job at all
GRADER_SCRATCH = os.path.join(tempfile.gettempdir(), "convae-grade-*")

READ_SECRETS = f"scratch = {GRADER_SCRATCH!r}\n" + """# attack: read the solutions, the hidden-check specs and the gradebook from disk
import glob, os, convae.judge
found = []
root = str(convae.judge.course_root())
for pattern in [root + "/solutions/*/*.ipynb", root + "/grading/checks/*.py", root + "/grading/*.db",
                root + "/solutions/01-pixels/01-pixels.ipynb", root + "/grading/checks/01-pixels.py",
                scratch + "/*/course/grading/gradebook.db", scratch + "/*/verdicts.jsonl",
                root + "/.git/HEAD"]:
    for path in glob.glob(pattern) or ([pattern] if "*" not in pattern else []):
        try:
            found.append((path, len(open(path, "rb").read())))
        except OSError as err:
            found.append((path, type(err).__name__))
print("SECRETS FOUND:", [f for f in found if isinstance(f[1], int)])
print("SECRETS DENIED:", len([f for f in found if not isinstance(f[1], int)]))
"""

WRITE_ELSEWHERE = f"scratch = {GRADER_SCRATCH!r}\n" + """# attack: write into other students' folders, the gradebook and the course
import glob, os, convae.judge
root = str(convae.judge.course_root())
targets = glob.glob(scratch + "/job-*/home") + glob.glob(scratch + "/job-*/course/grading")
targets += [root + "/grading", root + "/solutions/01-pixels", root + "/notebooks", "/tmp"]
written = []
for folder in targets:
    try:
        with open(os.path.join(folder, "PWNED-by-mallory"), "w") as fh:
            fh.write("x")
        written.append(folder)
    except OSError:
        pass
print("WROTE INTO:", written)
"""

# attack: speak the judge's protocol directly: garbage, an over-long line, then a flood of requests
JUDGE_FLOOD = """# attack: garbage, a line over the judge's limit, and 30 requests for one exercise
import json, os, socket
def judge_connection():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(os.environ["CONVAE_JUDGE_SOCKET"])
    return sock
for payload in (b"\\x00\\xff not json\\n", b"x" * 100_000):
    try:
        with judge_connection() as sock:
            sock.sendall(payload)
            sock.recv(4096)
    except OSError:  # the judge may close before it has read everything
        pass
answers = []
for _ in range(30):
    with judge_connection() as sock:
        sock.sendall(json.dumps({"chapter": "01-pixels", "exercise": "invert"}).encode() + b"\\n")
        answers.append(sock.recv(1 << 20)[:40])
print("JUDGE FLOOD:", len(answers), "answers")
"""
# a .keras file that asks for Dense(1_000_000) after a 784-wide input: a tiny saved model whose
# config.json is edited (it needs no weights); building it would take about 16 GB
OVERSIZED_KERAS = """import io, json, tempfile, zipfile
import keras

def with_units(model, layer, units):
    # the .keras bytes of a small saved model whose config.json gives layer `layer` `units`
    with tempfile.TemporaryDirectory() as folder:
        model.save(folder + "/small.keras")
        data = open(folder + "/small.keras", "rb").read()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(content)
                config["config"]["layers"][layer]["config"]["units"] = units
                content = json.dumps(config).encode()
            zout.writestr(item, content)
    return out.getvalue()

def oversized_keras_bytes(units=1_000_000):
    small = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    small.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return with_units(small, 1, units)
"""
# attack: build_mlp's model is sent to the judge as that file (the visible check sees a good model)
SEND_OVERSIZED = OVERSIZED_KERAS + """
import base64, convae.judge
_honest = convae.judge._model_result
convae.judge._model_result = lambda model: (
    {"model": base64.b64encode(oversized_keras_bytes()).decode()} if model.inputs[0].shape[-1] == 784
    else _honest(model))
"""
INFINITE_LOOP = "while True:\n    pass\n"
# one line that leaves the kernel alive but unable to answer (its own message code calls isinstance)
HANG_KERNEL = "import builtins\nbuiltins.isinstance = lambda *args: True\n"
KILL_KERNEL = "import os\nos._exit(3)\n"
MEMORY_BOMB = "import numpy as np\nhog = np.ones((200_000, 100_000))  # 160 GB\n"
# 300,000 lines (about 11 MB) are twice the cap on output; more would only make the case slower
OUTPUT_FLOOD = "for i in range(300_000):\n    print(i, 'flooding the grader with output')\n"
STDERR_NOISE = ("import sys, warnings\n\ndef normalise(images):\n"
                "    print('debug: normalising', file=sys.stderr)\n"
                "    warnings.warn('a harmless warning')\n"
                "    return images / 255.0\n")


# Feedback pages: student HTML that must stay inert when the instructor opens the page. Each payload
# sets document.title to PWNED-<name> if it ever runs (what a browser check looks for); the harmless
# content around them (text, a table, a plain image, bold HTML output) must still show.
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
HARMLESS_MARKDOWN = ("The mean image looks like a blurred seven.\n\n| digit | count |\n|---|---|\n| 7 | 1028 |\n\n"
                     f"![a plain image](data:image/png;base64,{PNG_1PX})\n")


def _pwn(name: str) -> str:
    return f"document.title='PWNED-{name}'"


MARKDOWN_PAYLOADS = "\n\n".join([
    f"<img src=x onerror=\"{_pwn('img-onerror')}\">",
    f"<script>{_pwn('script')}</script>",
    f"[a markdown link](javascript:{_pwn('md-link')})",
    f"<a href=\"javascript:{_pwn('a-href')}\">an html link</a>",
    f"<a href=\"jav&#x09;ascript&colon;{_pwn('a-entities')}\">an obfuscated link</a>",
    f"<svg onload=\"{_pwn('svg-onload')}\"><script>{_pwn('svg-script')}</script></svg>",
    "<iframe src=\"data:text/html;base64,PHNjcmlwdD5wYXJlbnQuZG9jdW1lbnQudGl0bGU9J1BXTkVELWlmcmFtZSc8L3NjcmlwdD4=\"></iframe>",
    f"<iframe srcdoc=\"<script>parent.{_pwn('srcdoc')}</script>\"></iframe>",
    f"<object data=\"javascript:{_pwn('object')}\"></object><embed src=\"javascript:{_pwn('embed')}\">",
    f"<form action=\"javascript:{_pwn('form')}\"><button>send</button></form>",
    f"<meta http-equiv=\"refresh\" content=\"0;url=javascript:{_pwn('meta-refresh')}\">",
    "<base href=\"https://evil.example/\">",
    f"<style>body {{ background: url(\"javascript:{_pwn('style-tag')}\") }}</style>",
    f"<div style=\"background-image: url(javascript:{_pwn('style-attr')}); width: expression({_pwn('expr')})\">styled</div>",
    f"<details open ontoggle=\"{_pwn('details')}\"><summary>s</summary></details>",
    "<a id=MathJax></a><a id=MathJax name=root href=\"https://evil.example/mathjax\">clobber</a>",
    f"<math><mtext><table><mglyph><style><img src=x onerror=\"{_pwn('mxss')}\"></style></mglyph></table></mtext></math>",
    f"<img src=\"x\" alt=\"a\" title='\"><img src=x onerror={_pwn('attr-break')}>'>",
    f"$\\href{{javascript:{_pwn('tex-href')}}}{{maths link}}$",
])
# (data, metadata) of outputs the student's code displays: what IPython.display.HTML, SVG,
# Javascript, Markdown, Latex and widgets send, plus metadata the template writes into attributes
OUTPUT_PAYLOADS = [
    ({"text/html": f"<b>harmless bold output</b><script>{_pwn('html-script')}</script>"}, {}),
    ({"text/html": f"<img src=x onerror=\"{_pwn('html-img')}\">"}, {}),
    ({"text/html": f"<p>isolated</p><script>{_pwn('html-isolated')}</script>"}, {"text/html": {"isolated": True}}),
    ({"image/svg+xml": f"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"{_pwn('svg-output')}\">"
                       f"<script>{_pwn('svg-output-script')}</script><circle r=\"5\"/></svg>"}, {}),
    ({"application/javascript": _pwn("javascript-output"), "text/plain": "<IPython.core.display.Javascript object>"}, {}),
    ({"text/markdown": f"[markdown output link](javascript:{_pwn('markdown-output')})"}, {}),
    ({"text/latex": f"$\\href{{javascript:{_pwn('latex-output')}}}{{x}}$"}, {}),
    ({"application/vnd.jupyter.widget-view+json": {"model_id": "0", "version_major": 2, "version_minor": 0},
      "text/plain": "a widget"}, {}),
    ({"image/png": PNG_1PX}, {"image/png": {"width": f"1 onerror={_pwn('png-width')}", "height": 1}}),
    ({"text/html": "<p>x</p>"}, {"image/png": {"filenames": f"javascript:{_pwn('filenames')}"}}),
]
PRINT_PAYLOAD = f"print(\"<script>{_pwn('stdout')}</script>\")\n"


def with_feedback_payloads(nb):
    """A copy of ``nb`` with a markdown cell of payloads and harmless content, and a code cell that
    displays every output payload (the kernel, not the file, makes the outputs the grader renders)."""
    code = ("import json\nfrom IPython.display import display\n"
            f"for data, metadata in json.loads({json.dumps(json.dumps(OUTPUT_PAYLOADS))}):\n"
            "    display(data, raw=True, metadata=metadata)\n" + PRINT_PAYLOAD)
    nb = with_cell(nb, code)
    index = next(i for i, c in enumerate(nb.cells) if c.get("id", "").startswith("student-"))  # the cell just added
    markdown = nbformat.v4.new_markdown_cell(HARMLESS_MARKDOWN + "\n" + MARKDOWN_PAYLOADS)
    markdown["id"] = "student-payloads"
    nb.cells.insert(index + 1, markdown)
    return nb


def attacks(release, source) -> dict[str, bytes]:
    """Every case of the chapter-01 corpus: name -> the submitted notebook's bytes."""
    full = answer(release, source)
    cases = {
        "correct": full,
        "blank": release,
        "partial": answer(release, source, solved={"normalise", "flatten"}),
        "wrong-normalise": answer(release, source, replace={"normalise": WRONG_NORMALISE}),
        # each attack: every answer right except normalise, then the attack tries to pass normalise
        "patch-checks": with_cell(answer(release, source, replace={"normalise": WRONG_NORMALISE}), PATCH_CHECKS),
        "patch-numpy": with_cell(answer(release, source, replace={"normalise": WRONG_NORMALISE}), PATCH_NUMPY),
        "patch-builtins": with_cell(answer(release, source, replace={"normalise": WRONG_NORMALISE}), PATCH_BUILTINS),
        "read-secrets": with_cell(full, READ_SECRETS),
        "write-elsewhere": with_cell(full, WRITE_ELSEWHERE),
        "infinite-loop": with_cell(full, INFINITE_LOOP),
        "kill-kernel": with_cell(full, KILL_KERNEL),
        "memory-bomb": with_cell(full, MEMORY_BOMB),
        "output-flood": with_cell(full, OUTPUT_FLOOD),
        "stderr-noise": answer(release, source, replace={"normalise": STDERR_NOISE}),
        "html-payloads": with_feedback_payloads(full),
    }
    edited = copy.deepcopy(full)
    for cell in edited.cells:
        if _grade_id(cell) == "normalise_check":
            cell.source = "print('all good')  # the student replaced the test"
        if _grade_id(cell) == "normalise":
            cell.source = WRONG_NORMALISE
    cases["edited-test"] = edited
    deleted = copy.deepcopy(full)
    deleted.cells = [c for c in deleted.cells if _grade_id(c) != "normalise_check"]
    cases["deleted-test"] = deleted
    duplicated = copy.deepcopy(full)
    index = next(i for i, c in enumerate(duplicated.cells) if _grade_id(c) == "normalise_check")
    twin = copy.deepcopy(duplicated.cells[index])
    twin["id"] = "normalise-check-copy"
    duplicated.cells.insert(index + 1, twin)
    cases["duplicated-test"] = duplicated
    cases["hang-kernel"] = with_cell(full, HANG_KERNEL)
    cases["foreign-cell"] = with_foreign_cell(full)
    cases["judge-flood"] = with_cell(full, JUDGE_FLOOD)
    out = {name: dumps(nb) for name, nb in cases.items()}
    out["not-json"] = dumps(full)[:5000]  # a truncated upload
    return out


# ---------------------------------------------------------------- a class for scale runs

def write_class(out: Path, students: int, chapter: str = "01-pixels", seed: int = 0) -> list[Path]:
    """``students`` submissions in nbgrader's layout: 60 % full, 30 % partial, 10 % blank."""
    release, source = load(chapter)
    ids = sorted(solution_cells(source))
    rng = random.Random(seed)
    paths = []
    for i in range(students):
        roll = rng.random()
        solved = set(ids) if roll < 0.6 else set(rng.sample(ids, rng.randint(1, len(ids) - 1))) if roll < 0.9 else set()
        path = out / f"student{i:04d}" / chapter / f"{chapter}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(dumps(answer(release, source, solved=solved)))
        paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="write generated submissions for a scale run")
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chapter", default="01-pixels")
    ns = parser.parse_args(argv)
    paths = write_class(ns.out, ns.students, ns.chapter)
    print(json.dumps({"written": len(paths), "folder": str(ns.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
