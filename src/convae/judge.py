"""Hidden checks judged by a pristine process, not by the student's kernel.

A student's code runs in the same kernel as the test cells and can patch anything there, so a
hidden check must not trust objects in that kernel. Here the kernel only *runs the student's
function*; everything else happens in a fresh ``python -I -m convae.judge`` process:

1. the judge draws new inputs with a seed taken at grading time (``secrets``), so no answer can be
   prepared for them;
2. the kernel calls the student's function on them and sends the outputs back (as ``.npy`` bytes,
   never pickles: the judge must not run code that the student's objects carry);
3. the judge computes the reference answers itself, compares with :func:`convae.checks.compare`
   and answers in plain words. The kernel raises that message, so it shows in feedback.

A function that returns a Keras model sends the model's ``.keras`` file (config and weights); the
judge checks the archive, rebuilds it with ``safe_mode=True`` and an exercise's ``judge`` inspects
or trains that copy, never the object in the student's kernel (whose methods the student may have
patched).

The references are the author's own solutions: the judge reads ``solutions/<chapter>/<chapter>.ipynb``
and runs only its imports, literal constants and ``def``/``class`` statements, so nothing is written
twice. How to draw inputs and compare answers lives per chapter in ``grading/checks/<chapter>.py``
(a dict ``EXERCISES`` of :class:`Exercise`), outside the student package.

The judge has two sides. The trusted one (:func:`draw_task`) checks the request, draws the cases
and computes the references: it reads the solutions and never decodes what the kernel sent. The
other (:func:`verdict_on_results`) decodes the kernel's raw results with every size checked first
(:mod:`convae.bounded`: ``.npy`` headers, ``.keras`` archives and their parameter counts), rebuilds
models and runs the exercise's verdict. :func:`judge` runs one exchange: a request line, the
cases, the results (one bounded line), a verdict.

``hidden_check`` starts a one-shot judge process (``python -I -m convae.judge``) and speaks to it
over a pair of pipes: both sides in that one process, as on a student's own machine there is
nothing to protect, but with the same bounded reading and decoding. The grading pipeline
(``convae.grading``) instead serves the trusted side outside the student's sandbox
(:mod:`convae.grading.judge_server`), where the solutions are readable and the kernel cannot reach,
passes its unix socket in ``CONVAE_JUDGE_SOCKET``, and hands the results to a sandboxed process
with its own user id (:mod:`convae.grading.judge_sandbox`); it records every verdict itself: a test
cell that nbgrader saw pass without a passing verdict from the judge is scored 0.
"""
from __future__ import annotations

import ast
import base64
import functools
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from convae.bounded import (MAX_REQUEST_BYTES, MAX_RESULTS_BYTES, LineReader, Refused, decode,
                            model_budget, model_problems_before_building)
from convae.checks import CheckFailed, compare

PROTOCOL = 1
#: set by the grading pipeline: the unix socket of a judge that runs outside the sandbox
SOCKET_ENV = "CONVAE_JUDGE_SOCKET"
CHAPTER_ID = re.compile(r"\d\d-[a-z0-9-]+")
#: seconds the judge waits for the kernel's results (the student's function runs meanwhile)
RESULTS_TIMEOUT = 300


@dataclass
class Exercise:
    """How to judge one exercise.

    draw: ``rng -> list of argument tuples`` (one tuple per case; arrays and scalars only).
    judge: ``(actual, expected, call, args) -> message or None``; by default :func:`compare`
        with ``kind`` and ``atol``.
    reference: the name of the reference function in the solution notebook (default: the
        exercise name).
    needs_reference: False where ``judge`` ignores the expected answer (a model exercise judged by
        its specification and training): the trusted side then builds no author's model and never
        imports Keras.
    max_params: the exercise's parameter budget, for an exercise that returns a model: a model
        far over it (:func:`convae.bounded.model_budget`) is refused before it is built.
    """

    draw: Callable
    kind: str | None = None
    atol: float = 1e-6
    judge: Callable | None = None
    reference: str | None = None
    needs_reference: bool = True
    max_params: int | None = None

    def verdict(self, actual, expected, call, args):
        if self.judge is not None:
            return self.judge(actual, expected, call, args)
        return compare(actual, expected, call, kind=self.kind, atol=self.atol)


def exactly(actual, expected, call, args):
    """A judge for answers that must match exactly (counts, sizes, indices, copied pixels): no
    relative tolerance, which would forgive an off-by-a-few on millions."""
    return compare(actual, expected, call, atol=0, rtol=0)


# ---------------------------------------------------------------- encoding (no pickles, ever)

def encode(value) -> str:
    buf = io.BytesIO()
    np.save(buf, np.asarray(value), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def describe_args(args) -> str:
    parts = []
    for a in args:
        parts.append(f"an array of shape {a.shape} ({a.dtype})" if isinstance(a, np.ndarray) else repr(a))
    return ", ".join(parts)


# ---------------------------------------------------------------- the judge's side

def course_root() -> Path:
    """``$CONVAE_COURSE_ROOT``, else the repository this package is installed from (editable)."""
    env = os.environ.get("CONVAE_COURSE_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2]


def checks_path(chapter: str, root: Path) -> Path:
    path = root / "grading" / "checks" / f"{chapter}.py"
    if not path.exists():
        raise FileNotFoundError(f"no hidden-check specification {path}")
    return path


def load_exercises(chapter: str, root: Path) -> dict:
    return exercises_from_source(chapter, checks_path(chapter, root).read_text())


@functools.lru_cache(maxsize=8)
def exercises_from_source(chapter: str, source: str) -> dict:
    """``EXERCISES`` of a chapter's hidden-check specification, from its text: the sandboxed side
    of the pipeline gets the text over its pipe, as it cannot see grading/."""
    module = types.ModuleType(f"convae_checks_{chapter.replace('-', '_')}")
    module.__file__ = f"grading/checks/{chapter}.py"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module.EXERCISES


def _definitions_only(source: str) -> tuple[list, list]:
    """Top-level (imports, definitions) of one code cell: defs, classes and literal constants."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return [], []
    imports, definitions = [], []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            definitions.append(node)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                ast.literal_eval(node.value)
                definitions.append(node)
            except ValueError:
                pass
    return imports, definitions


def _global_names(node: ast.stmt, filename: str) -> set[str]:
    """The global names a definition uses (a parameter called ``kernels`` is not the module
    ``kernels``): ``co_names`` of its code objects, nested functions included."""
    names, stack = set(), [compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return names


def _needed_by(name: str, definitions: list, filename: str) -> list:
    """The definitions that ``name`` needs: itself and, transitively, the globals it uses."""
    defining = {}
    for node in definitions:
        names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [t.id for t in node.targets]
        defining.update(dict.fromkeys(names, node))
    keep, todo = set(), [name]
    while todo:
        node = defining.get(todo.pop())
        if node is not None and id(node) not in keep:
            keep.add(id(node))
            todo.extend(_global_names(node, filename))
    return [node for node in definitions if id(node) in keep]


def load_references(chapter: str, root: Path, wanted: str | None = None) -> dict:
    """Run the definitions of the author's notebook in a fresh namespace and return it.

    Only the imports whose names the definitions use are run: the judge should not pay for the
    plotting libraries a chapter imports for its figures. With ``wanted``, only that reference and
    what it needs are defined, so judging ``best_epoch`` does not import Keras for ``build_mlp``.
    """
    path = root / "solutions" / chapter / f"{chapter}.ipynb"
    nb = json.loads(path.read_text())
    imports, definitions = [], []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            cell_imports, cell_definitions = _definitions_only(src)
            imports += cell_imports
            definitions += cell_definitions
    if wanted is not None:
        definitions = _needed_by(wanted, definitions, str(path))
    used = set().union(*(_global_names(d, str(path)) for d in definitions)) if definitions else set()
    needed = [i for i in imports if any((a.asname or a.name).split(".")[0] in used for a in i.names)]
    body = needed + definitions
    namespace: dict = {"__name__": f"reference_{chapter.replace('-', '_')}"}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


@functools.lru_cache(maxsize=None)
def _exercises(chapter: str, root: Path) -> dict:
    return load_exercises(chapter, root)


@functools.lru_cache(maxsize=None)
def _references(chapter: str, root: Path, wanted: str | None) -> dict:
    """A chapter's references, read once per process, only the one needed and what it uses (so
    judging ``best_epoch`` imports no Keras for ``build_mlp``)."""
    return load_references(chapter, root, wanted)


def checked_request(request) -> tuple[str, str]:
    """(chapter, exercise) of a request, or :class:`Refused`. The request comes from student code
    and names files the judge reads and runs (grading/checks/<chapter>.py): accept chapter ids and
    identifiers only, never a path."""
    request = request if isinstance(request, dict) else {}
    chapter, exercise = str(request.get("chapter"))[:100], str(request.get("exercise"))[:100]
    if not CHAPTER_ID.fullmatch(chapter) or not exercise.isidentifier():
        raise Refused(f"the hidden check was asked for an unknown exercise {exercise!r} in chapter {chapter!r}.")
    return chapter, exercise


@dataclass
class Task:
    """One judgement as the trusted side prepared it: the cases it drew (as sent to the kernel)
    and the encoded expected answers (None where the exercise's judge needs no reference)."""

    chapter: str
    exercise: str
    seed: int
    cases: list
    expected: list | None
    checks_source: str


def encode_expected(value) -> dict:
    """The author's answer as it travels to the sandboxed side: an array, or a model's .keras bytes."""
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Model):
        return _model_result(value)
    return {"value": encode(value)}


def draw_task(chapter: str, exercise: str, root: Path) -> Task:
    """The trusted side's part: draw the cases from a seed taken now, compute the references."""
    path = checks_path(chapter, root)
    spec = _exercises(chapter, root)[exercise]
    seed = secrets.randbits(63)
    cases = spec.draw(np.random.default_rng(seed))
    expected = None
    if spec.needs_reference:
        name = spec.reference or exercise
        reference = _references(chapter, root, name)[name]
        expected = [encode_expected(reference(*[a.copy() if isinstance(a, np.ndarray) else a for a in args]))
                    for args in cases]
    return Task(chapter, exercise, seed, [[encode(a) for a in args] for args in cases], expected,
                path.read_text())


def judge(request, inp: LineReader, reply: Callable[[dict], None], root: Path | None = None,
          verdict_of: Callable | None = None, timeout: float = RESULTS_TIMEOUT) -> dict:
    """Judge one exercise over a line-based JSON channel and return the verdict it sent.

    ``request`` is the client's first line, already read: ``{"chapter": ..., "exercise": ...}``;
    ``inp`` reads the kernel's results (raw, bounded), ``reply`` sends a message. ``verdict_of(task,
    raw_results)`` decides: by default :func:`verdict_on_results` in this process (the one-shot
    judge); the grading pipeline passes its sandboxed side. The verdict (``ok``, ``message``,
    ``seed``, ``chapter``, ``exercise``, and ``log`` for the run log) is what the pipeline records.
    """
    try:
        chapter, exercise = checked_request(request)
    except Refused as err:
        reply({"error": str(err)})
        return {"chapter": None, "exercise": None, "ok": False, "message": str(err), "error": True}
    verdict = {"chapter": chapter, "exercise": exercise, "ok": False}
    try:
        task = draw_task(chapter, exercise, Path(root or course_root()))
    except Exception as err:
        message = (f"the hidden check for {exercise!r} in chapter {chapter} could not start "
                   f"({type(err).__name__}: {err}). This is not your fault: tell your instructor.")
        reply({"error": message})
        return dict(verdict, message=message, error=True)
    verdict["seed"] = task.seed
    reply({"protocol": PROTOCOL, "seed": task.seed, "cases": task.cases})
    try:
        raw = inp.line(MAX_RESULTS_BYTES, timeout, "your function's answers")
    except (Refused, EOFError) as err:
        answer = {"ok": False, "message": f"the hidden check got no usable answer from your function: {err}."}
        if isinstance(err, Refused):  # too long or too slow; a kernel stopped mid-check is not news
            answer["log"] = f"judge: {exercise}: {err}"
    else:
        answer = (verdict_of or verdict_on_results)(task, raw)
    verdict.update(ok=answer["ok"], message=answer["message"])
    if answer.get("log"):
        verdict["log"] = answer["log"]
    reply({"ok": verdict["ok"], "message": verdict["message"]})
    return verdict


# ---------------------------------------------------------------- the sandboxed side: student bytes

def memory_limit_words() -> str:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return "the memory available" if soft == resource.RLIM_INFINITY else f"{soft / 2**30:.0f} GB"


def verdict_on_results(task: Task, raw: bytes, exercises: dict | None = None) -> dict:
    """Decode the kernel's raw results (bounded), rebuild models (checked first), judge: {ok,
    message[, log]}. In the pipeline this runs in the sandboxed side, never in the trusted one."""
    exercise = task.exercise
    spec = (exercises or exercises_from_source(task.chapter, task.checks_source))[exercise]
    try:
        results = json.loads(raw).get("results", [])
        if not isinstance(results, list) or len(results) != len(task.cases):
            raise Refused("it sent the wrong number of results")
        for encoded_args, encoded_expected, result in zip(task.cases, task.expected or [None] * len(task.cases),
                                                         results):
            args = [decode(a) for a in encoded_args]
            call = f"{exercise}({describe_args(args)})"
            if not isinstance(result, dict):
                raise Refused("a result was not a JSON object")
            if "error" in result:
                return {"ok": False, "message": f"On new inputs, {call} {str(result['error'])[:2000]}"}
            expected = None if encoded_expected is None else decode_answer(encoded_expected, None)
            if "model" in result:
                try:
                    actual = rebuild_model(result["model"], spec.max_params)
                except Refused as err:
                    return {"ok": False, "message": f"{call} returned a model that the grader will not build: {err}.",
                            "log": f"judge: {exercise}: model refused before it was built: {err}"}
                except MemoryError:
                    message = (f"the grader's copy of your model could not be built within {memory_limit_words()}: "
                               f"{call} returns a model far larger than the exercise asks for.")
                    return {"ok": False, "message": message, "log": f"judge: {exercise}: {message}"}
                except Exception as err:
                    return {"ok": False, "message": f"{call} returned a model the grader cannot rebuild from its saved "
                                                    f"config and weights ({type(err).__name__}: {str(err)[:300]}). Use "
                                                    "built-in Keras layers only (no Lambda or custom layers)."}
            elif "value" in result:
                actual = decode(result["value"])
            else:
                raise Refused("a result carried neither a value nor a model")
            problem = spec.verdict(actual, expected, call, args)
            if problem:
                where = "On the grader's own copy of your model" if "model" in result else "On new inputs drawn at grading time"
                return {"ok": False, "message": f"{where}: {problem}"}
    except Refused as err:
        return {"ok": False, "message": f"the hidden check got no usable answer from your function ({err}).",
                "log": f"judge: {exercise}: unusable answer refused ({err})"}
    except MemoryError:
        message = f"the hidden check could not judge your answer within {memory_limit_words()}."
        return {"ok": False, "message": message, "log": f"judge: {exercise}: {message}"}
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
        return {"ok": False, "message": f"the hidden check got no usable answer from your function ({str(err)[:300]})."}
    return {"ok": True, "message": f"{exercise}: {len(task.cases)} hidden cases passed."}


def decode_answer(encoded: dict, max_params: int | None):
    """An answer as :func:`encode_expected` or the kernel encodes it: an array or a model."""
    if "model" in encoded:
        return rebuild_model(encoded["model"], max_params)
    return decode(encoded["value"])


# ---------------------------------------------------------------- the kernel's side

def _run_student(fn, args) -> dict:
    try:
        value = fn(*args)
    except NotImplementedError:
        return {"error": "raised NotImplementedError: the function is not written yet."}
    except Exception as err:
        return {"error": f"raised {type(err).__name__}: {err}"}
    if value is None:
        return {"error": "returned None (did you forget `return`?)."}
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Model):
        return _model_result(value)
    try:
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError
        return {"value": encode(arr)}
    except Exception:
        return {"error": f"returned a {type(value).__name__}, which is not a numeric array."}


def _model_result(model) -> dict:
    """A Keras model travels as the bytes of its ``.keras`` file: config and weights, no code."""
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            model.save(path)
            return {"model": base64.b64encode(path.read_bytes()).decode("ascii")}
    except Exception as err:
        return {"error": f"returned a model that Keras cannot save ({type(err).__name__}: {err})."}


def rebuild_model(data: str, max_params: int | None = None):
    """The judge's copy of a student's model, rebuilt from config and weights in this process.

    The archive is checked first (:func:`convae.bounded.model_problems_before_building`): a model
    far over the exercise's budget is refused in words before a weight is allocated.
    ``safe_mode=True``: a Lambda layer or anything else that would run the student's code is
    refused, so the judge runs none of it.
    """
    if not isinstance(data, str) or len(data) > MAX_RESULTS_BYTES:
        raise Refused("the model did not arrive as an encoded .keras file")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise Refused("the model did not arrive as an encoded .keras file") from None
    problem = model_problems_before_building(raw, model_budget(max_params))
    if problem:
        raise Refused(problem)
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(raw)
        try:
            return keras.saving.load_model(path, safe_mode=True)
        except Exception as err:
            if "ResourceExhausted" in type(err).__name__ or "OOM when allocating" in str(err):
                raise MemoryError(str(err)[:200]) from None
            raise


def output_shape(model) -> tuple:
    """A model's output shape, e.g. (None, 10). ``model.output`` raises for a Sequential model in
    Keras 3.15 (measured); ``model.outputs`` works for Sequential and functional models alike."""
    return tuple(model.outputs[0].shape)


def _open_judge():
    """A (reader, writer, close) channel to a judge: the pipeline's socket, else a fresh process."""
    address = os.environ.get(SOCKET_ENV)
    if address:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
        reader, writer = sock.makefile("r"), sock.makefile("w")

        def close():
            reader.close(), writer.close(), sock.close()

        return reader, writer, close
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "convae.judge"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CONVAE_COURSE_ROOT": str(course_root())},
    )

    def close():
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
        proc.wait(timeout=60)

    return proc.stdout, proc.stdin, close


def hidden_check(chapter: str, exercise: str, fn) -> str:
    """Judge ``fn`` for ``exercise`` outside this kernel; raise :class:`CheckFailed` if wrong."""
    __tracebackhide__ = True
    try:
        reader, writer, close = _open_judge()
    except OSError as err:
        raise CheckFailed(f"the hidden check could not reach its judge ({err}); tell your instructor.") from None
    try:
        writer.write(json.dumps({"chapter": chapter, "exercise": exercise}) + "\n")
        writer.flush()
        first = json.loads(reader.readline() or "{}")
        if "error" in first or "cases" not in first:
            raise CheckFailed(first.get("error") or "the hidden check's judge did not answer; tell your instructor.")
        try:
            cases = [[decode(a) for a in args] for args in first["cases"]]
        except Refused as err:
            raise CheckFailed(f"the hidden check's judge sent cases this kernel cannot read ({err}); "
                              "tell your instructor.") from None
        writer.write(json.dumps({"results": [_run_student(fn, args) for args in cases]}) + "\n")
        writer.flush()
        verdict = json.loads(reader.readline() or "{}")
    finally:
        close()
    if not verdict.get("ok"):
        raise CheckFailed(verdict.get("message", "the hidden check gave no verdict"))
    return verdict["message"]


def main(argv=None) -> int:
    """One judgement over stdin/stdout (what :func:`hidden_check` starts outside the pipeline):
    both sides in this one process, with the same bounded reading and decoding as the pipeline."""
    sys.dont_write_bytecode = True  # leave no __pycache__ in grading/checks
    inp = LineReader(sys.stdin.fileno())

    def reply(msg: dict) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    try:
        request = json.loads(inp.line(MAX_REQUEST_BYTES, RESULTS_TIMEOUT, "the request"))
    except (Refused, EOFError, ValueError) as err:
        reply({"error": f"the hidden check's request was not readable ({err})."})
        return 1
    verdict = judge(request, inp, reply)
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
