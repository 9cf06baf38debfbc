"""Checks that students can read: call their function, compare, and explain a failure in plain words.

The visible test cells of every chapter use :func:`expect`; the hidden checks (``convae.judge``) use
the same :func:`compare` in a pristine process, so a student sees the same kind of message from both.

Every helper sets ``__tracebackhide__`` so that IPython shows the student the failed check, not the
internals of this module.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

import numpy as np

#: characters per line of a failure as shown to students (see CheckFailed._render_traceback_)
DISPLAY_WIDTH = 76
#: what a dtype "kind" letter means, in words for students
KIND_WORDS = {"f": "floating-point", "u": "unsigned integer", "i": "integer", "b": "boolean"}


class CheckFailed(AssertionError):
    """A check failed; the message says what is wrong and what to look at.

    IPython shows an exception through its ``_render_traceback_`` when it has one: a student sees
    the one sentence that matters, not this module's frames.
    """

    def _render_traceback_(self):
        # Wrapped for display only (str(self) stays one line): the Validate dialog, the feedback
        # page and `nbgrader validate` (which cuts lines at 87 characters) do not wrap a long line.
        lines = [textwrap.fill(line, DISPLAY_WIDTH, subsequent_indent=" " * (len(line) - len(line.lstrip())),
                               break_long_words=False, break_on_hyphens=False)
                 for line in f"CheckFailed: {self}".split("\n")]
        return ["\x1b[0;31mCheckFailed\x1b[0m" + "\n".join(lines)[len("CheckFailed"):]]


def describe(value) -> str:
    """A short description of a value: "a float32 array of shape (2, 3)", "None", "a list"."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if value is None:
        return "None (did you forget `return`?)"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def compare(actual, expected, call: str, *, kind: str | None = None, atol: float = 1e-6,
            rtol: float = 1e-6) -> str | None:
    """Compare a returned value with the expected array.

    Returns None when they agree, else a sentence naming ``call``, what was wrong and what was
    expected. ``kind`` is a NumPy dtype kind the result must have ("f" float, "u" uint8-like,
    "b" boolean); None accepts any numeric dtype.
    """
    expected = np.asarray(expected)
    if expected.ndim == 0:  # a number is expected (a size, a count): any real scalar will do
        if isinstance(actual, (bool, np.bool_)) or not (np.isscalar(actual) or np.ndim(actual) == 0):
            return f"{call} returned {describe(actual)}; expected a single number ({expected.item()!r})."
        if not np.isclose(float(actual), float(expected), atol=atol, rtol=rtol):
            return f"{call} returned {actual!r}, expected {expected.item()!r}."
        return None
    if not isinstance(actual, np.ndarray):
        if isinstance(actual, (list, tuple)) or np.isscalar(actual):
            return f"{call} returned {describe(actual)}; return a NumPy array instead (np.asarray helps)."
        return f"{call} returned {describe(actual)}; expected an array of shape {expected.shape}."
    if actual.shape != expected.shape:
        return (f"{call} returned an array of shape {actual.shape}, expected shape {expected.shape}. "
                "Check which axes you kept, removed or reshaped.")
    if kind is not None and actual.dtype.kind != kind:
        want = KIND_WORDS.get(kind, kind)
        extra = f" such as {expected.dtype}" if kind in "ui" else ""
        return f"{call} returned dtype {actual.dtype}, expected {want} values{extra}."
    if actual.dtype.kind not in "biuf":
        return f"{call} returned an array of dtype {actual.dtype}; expected numbers."
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    if not np.all(np.isfinite(a)):
        return f"{call} returned NaN or infinite values; expected finite numbers."
    close = np.isclose(a, e, atol=atol, rtol=rtol)
    if not close.all():
        wrong = np.argwhere(~close)
        first = tuple(int(i) for i in wrong[0])
        where = f"at index {first} " if first else ""
        return (f"{call} returned wrong values at {len(wrong)} of {close.size} positions: "
                f"{where}you returned {a[first]:.6g}, expected {e[first]:.6g}.")
    return None


def call_student(fn, *args, name: str | None = None):
    """Call a student function; turn an exception into a plain-words failure."""
    __tracebackhide__ = True
    name = name or getattr(fn, "__name__", "your function")
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(f"{name} is not written yet: replace `raise NotImplementedError()` "
                          "with your code, run that cell, then run this one.") from None
    except Exception as err:
        raise CheckFailed(f"{name} raised {type(err).__name__}: {err}") from None


def expect(fn, *args, returns, kind: str | None = None, atol: float = 1e-6, call: str | None = None,
           unchanged_inputs: bool = True):
    """Call ``fn(*args)`` and check that it returns ``returns``.

    ``call`` is how the call is shown in a failure message (default ``name(...)``). With
    ``unchanged_inputs`` the check also fails when the function modified an input array in place.
    """
    __tracebackhide__ = True
    name = getattr(fn, "__name__", "your function")
    call = call or f"{name}(...)"
    before = [a.copy() for a in args if isinstance(a, np.ndarray)]
    result = call_student(fn, *args, name=call)
    problem = compare(result, returns, call, kind=kind, atol=atol)
    if problem:
        raise CheckFailed(problem)
    if unchanged_inputs:
        after = [a for a in args if isinstance(a, np.ndarray)]
        if any(not np.array_equal(b, a) for b, a in zip(before, after)):
            raise CheckFailed(f"{call} changed its input array in place; work on a copy "
                              "(e.g. `images.astype(...)` or `images.copy()`) instead.")
    return result


# ---------------------------------------------------------------- Keras models built to a specification
#
# A model is judged by the layers the student chose, found by walking its graph: nested models (a
# Sequential inside a Sequential, an encoder and a decoder composed into one model) are flattened,
# and an InputLayer is not a choice (keras.Model(inputs, outputs) lists one, a Sequential does not).
# The same walk runs in the student's kernel (visible check) and in the judge, on the copy rebuilt
# from the model's .keras file, so both read the same sentence.

#: loss and metric names as Keras writes them in a compile config, snake_case
SPARSE_CROSSENTROPY = {"sparse_categorical_crossentropy"}
ACCURACY = {"accuracy", "acc", "sparse_categorical_accuracy"}
RECONSTRUCTION_LOSSES = {"binary_crossentropy", "mean_squared_error", "mse"}
#: layers that only rearrange numbers: a sigmoid before a Reshape still gives pixels in [0, 1]
SHAPE_ONLY = {"Reshape", "Flatten", "Permute", "Cropping2D"}
#: layer classes that are non-linear whatever their arguments (max pooling included)
NONLINEAR_LAYERS = {"ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "MaxPooling2D", "GlobalMaxPooling2D"}


@dataclass(frozen=True)
class ModelSpec:
    """What an exercise asks of a classifier: the checks that the visible test cell and the hidden
    check (on the judge's rebuilt copy) both run, so a student reads the same sentence from both.

    allowed: the layer classes it may use; at_least: layer class -> minimum count, where a tuple
    of classes counts together (e.g. max or average pooling).
    """

    call: str
    input_shape: tuple
    n_classes: int
    max_params: int
    allowed: tuple
    at_least: tuple = ()  # ((class names, count, what it is in words), ...)
    args: tuple = ()  # what the visible check passes to the student's function


@dataclass(frozen=True)
class AutoencoderSpec:
    """What an exercise asks of an autoencoder, checked by :func:`model_problems`:

    - one input of ``input_shape`` (no batch axis) and an output of the same shape;
    - only layer classes in ``allowed``; ``at_least`` entries ``(class names, count, words[, where])``
      count layers in the whole model, or only in the ``"encoder"`` (every layer on a path from the
      input to the code, the code included) or the ``"decoder"`` (every layer after it);
    - exactly one layer named ``code_layer`` whose output, flattened, holds ``code_size`` numbers;
    - no skip connection: every path from the input to the output passes through the code layer
      (otherwise the decoder can copy its input and the code need not learn anything);
    - a non-linear encoder (with linear layers only an autoencoder learns what PCA finds);
    - a sigmoid output (pixels in [0, 1]); at most ``max_params`` weights, counted from the weights;
    - compiled with a reconstruction loss: binary cross-entropy or mean squared error.
    """

    call: str
    input_shape: tuple
    code_size: int
    max_params: int
    allowed: tuple
    at_least: tuple = ()
    code_layer: str = "code"
    args: tuple = ()  # what the visible check passes to the student's function, e.g. (code_size,)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _config_name(entry) -> str:
    """A loss or metric as a compile config stores it: "accuracy", {"class_name": "BinaryCrossentropy",
    ...}, or a plain function such as keras.losses.binary_crossentropy ({"class_name": "function",
    "config": "binary_crossentropy"})."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        if entry.get("class_name") == "function" and isinstance(entry.get("config"), str):
            return entry["config"]
        return _snake(entry.get("class_name", "")) if entry.get("class_name") else str(entry)
    return _snake(type(entry).__name__)


def parameter_count(model) -> int:
    """Trainable and non-trainable weights, counted from the weights themselves."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def _built_from_config(model) -> bool:
    """A Sequential or functional model: Keras can save and rebuild it from its configuration."""
    import keras
    from keras.src.models.functional import Functional

    return type(model) in (keras.Sequential, Functional)


def model_layers(model, *, with_models: bool = False) -> list:
    """The layers a student chose, nested models flattened in order; no InputLayer.

    ``with_models`` also lists the nested models themselves, each before its layers.
    """
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            found += [layer] * with_models + model_layers(layer, with_models=with_models)
        else:
            found.append(layer)
    return found


@dataclass(eq=False)
class Step:
    """One call of a layer in a model's graph, nested models flattened. ``parents`` are the steps
    whose outputs it takes (``None`` stands for the model's input); ``shape`` is its output shape
    without the batch axis."""

    layer: object
    parents: list
    shape: tuple


def model_graph(model) -> Step | None:
    """The step that computes a one-input, one-output model's output (``None``: the input itself).

    Walks back from the output tensor through the graph Keras recorded; a nested model's step is
    replaced by the steps inside it, its inputs bound to the steps that feed it.
    """
    import keras

    memo, scopes = {}, []

    def producer(tensor, bound):
        if id(tensor) in bound:
            return bound[id(tensor)]
        operation, node_index, tensor_index = tensor._keras_history
        if isinstance(operation, keras.layers.InputLayer):
            raise ValueError(f"the graph has an input {operation.name!r} that is not the model's input")
        node = operation._inbound_nodes[node_index]
        key = (id(node), id(bound))
        if key not in memo:
            parents = [producer(t, bound) for t in node.input_tensors]
            if isinstance(operation, keras.Model):
                inner = {id(t): p for t, p in zip(operation.inputs, parents)}
                scopes.append(inner)  # keeps the dict alive, so its id is not reused for another scope
                memo[key] = [producer(t, inner) for t in operation.outputs]
            else:
                memo[key] = Step(operation, parents, tuple(node.output_tensors[0].shape)[1:])
        found = memo[key]
        return found[tensor_index] if isinstance(found, list) else found

    return producer(model.outputs[0], {id(model.inputs[0]): None})


def _steps(output: Step | None) -> list:
    """Every step of the graph, parents before children."""
    order, seen = [], set()

    def visit(step):
        if step is None or id(step) in seen:
            return
        seen.add(id(step))
        for parent in step.parents:
            visit(parent)
        order.append(step)

    visit(output)
    return order


def _path_around(output: Step | None, cut: Step) -> list | None:
    """A path from the input to ``output`` that avoids ``cut``, as a list of steps; None if every
    path passes through it."""
    dead = set()  # steps known to reach the input only through the cut: each is tried once

    def search(step):
        if step is None:
            return []
        if step is cut or id(step) in dead:
            return None
        for parent in step.parents:
            path = search(parent)
            if path is not None:
                return path + [step]
        dead.add(id(step))
        return None

    return search(output)


def _operation_name(operation) -> str:
    """A layer's class name, or ``keras.ops.<name>`` for an operation such as ``inputs + x``."""
    import keras

    kind = type(operation).__name__
    return kind if isinstance(operation, keras.layers.Layer) else f"keras.ops.{_snake(kind)}"


def _activation(layer) -> str | None:
    """The activation a layer applies last: its ``activation`` argument, or what an activation
    layer (ReLU, Softmax) or operation (keras.ops.sigmoid) is."""
    kind = type(layer).__name__
    if kind in ("Softmax", "ReLU", "Relu", "Sigmoid"):
        return kind.lower()
    return getattr(getattr(layer, "activation", None), "__name__", None)


def _last_words(layer) -> str:
    if layer is None:
        return "its output is its input"
    return f"its last layer is a {type(layer).__name__} with activation {_activation(layer)!r}"


def _final_layer(output: Step | None):
    """The layer that sets the output's values: shape-only layers at the end are looked through."""
    while output is not None and type(output.layer).__name__ in SHAPE_ONLY and len(output.parents) == 1:
        output = output.parents[0]
    return None if output is None else output.layer


def _nonlinear(layer) -> bool:
    return type(layer).__name__ in NONLINEAR_LAYERS or _activation(layer) not in (None, "linear")


def _construction_problem(model, call: str) -> str | None:
    """A model the grader cannot rebuild from its configuration (a subclass, a custom or Lambda layer)."""
    import keras

    rewrite = ("Write it as keras.Sequential([...]) or with the functional API (inputs = keras.Input(...); "
               "outputs = layer(...)(inputs) ...; keras.Model(inputs, outputs)), with built-in Keras layers.")
    for where, layer in [("returns", model)] + [("contains", m) for m in model_layers(model, with_models=True)]:
        name = type(layer).__name__
        if isinstance(layer, keras.Model) and not _built_from_config(layer):
            return (f"{call} {where} a subclassed model (class {name}, with its own call()): the grader rebuilds "
                    f"every model from its saved configuration, and a subclass has none that it can rebuild "
                    f"(registering the class does not help: the grader never runs your code). {rewrite}")
        if name == "Lambda":
            return (f"{call} uses a Lambda layer: the grader rebuilds models in safe mode, which does not run the "
                    "Python code a Lambda holds. Use a built-in layer instead (Reshape, Flatten, Activation, ...).")
        if not type(layer).__module__.startswith("keras."):
            return (f"{call} uses a layer class of your own ({name}): the grader rebuilds models in safe mode, "
                    f"from built-in Keras layers only. {rewrite}")
    return None


def _compile_problem(model, call: str, losses: set, words: str, advice: str) -> tuple[str | None, dict]:
    compiled = model.get_compile_config() if hasattr(model, "get_compile_config") else {}
    if not compiled:
        return f"{call} returns a model that is not compiled: call {advice} before returning it.", {}
    loss = compiled.get("loss")
    if _config_name(loss) not in losses:
        return f"{call} is compiled with loss {_config_name(loss)!r}; {words}", compiled
    if isinstance(loss, dict) and isinstance(loss.get("config"), dict) and loss["config"].get("from_logits"):
        return f"{call} uses from_logits=True, but its outputs are probabilities, not logits.", compiled
    return None, compiled


def model_problems(model, spec) -> str | None:
    """The first way ``model`` misses ``spec`` (a :class:`ModelSpec` or an :class:`AutoencoderSpec`),
    as a sentence; None when it meets it.

    Every model Keras can build should get one of the sentences below; if inspecting one fails all
    the same, the failure is said in words (with the error), never shown as this module's traceback.
    """
    try:
        return _model_problems(model, spec)
    except Exception as err:
        return (f"the check could not inspect the model {spec.call} returned ({type(err).__name__}: "
                f"{str(err)[:300]}). Build it as keras.Sequential or keras.Model(inputs, outputs) from "
                "built-in layers; if it is built that way, tell your instructor.")


def _model_problems(model, spec) -> str | None:
    import keras

    call = spec.call
    if not isinstance(model, keras.Model):
        return f"{call} returned {describe(model)}; expected a Keras model (keras.Sequential or keras.Model)."
    problem = _construction_problem(model, call)
    if problem:
        return problem
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:  # a Sequential model given no input shape has neither yet
        inputs = outputs = []
    if not inputs:
        return (f"{call} built a model without an input shape: start it with "
                f"keras.Input(shape={spec.input_shape}).")
    if len(inputs) != 1 or len(outputs) != 1:
        return f"{call} builds a model with {len(inputs)} inputs and {len(outputs)} outputs; expected one of each."
    got_in = tuple(inputs[0].shape)[1:]
    if got_in != tuple(spec.input_shape):
        return f"{call} takes inputs of shape {got_in}; expected {tuple(spec.input_shape)} (one example, no batch axis)."
    got_out = tuple(outputs[0].shape)
    if isinstance(spec, AutoencoderSpec):
        want_out = (None, *spec.input_shape)
        if got_out != want_out:
            return (f"{call} gives outputs of shape {got_out}; expected {want_out}: an autoencoder reconstructs "
                    "its input, so its output has the input's shape.")
    elif got_out != (None, spec.n_classes):
        return f"{call} gives outputs of shape {got_out}; expected (None, {spec.n_classes}): one score per class."
    output = model_graph(model)
    # every operation on the way to the output: layers, and keras.ops calls of the functional API
    operations = list({id(s.layer): s.layer for s in _steps(output)}.values())
    kinds = [type(op).__name__ for op in operations]
    foreign = sorted({_operation_name(op) for op in operations if type(op).__name__ not in spec.allowed})
    if foreign:
        return (f"{call} uses {', '.join(foreign)}, which this exercise does not ask for; "
                f"use only {', '.join(spec.allowed)}.")
    if isinstance(spec, AutoencoderSpec):
        return _autoencoder_problems(model, spec, output)
    for names, count, words in spec.at_least:
        have = sum(k in names for k in kinds)
        if have < count:
            return f"{call} has {have} {words}; the specification asks for at least {count}."
    last = _final_layer(output)
    if _activation(last) != "softmax":
        return (f"{call} does not end in a softmax: {_last_words(last)}. The outputs must be probabilities "
                "that sum to 1 (activation=\"softmax\").")
    params = parameter_count(model)
    if params > spec.max_params:
        return f"{call} has {params:,} parameters; the budget is {spec.max_params:,}."
    problem, compiled = _compile_problem(
        model, call, SPARSE_CROSSENTROPY,
        "the labels are integers 0-9 and the outputs are softmax probabilities, so use "
        "loss=\"sparse_categorical_crossentropy\".",
        "model.compile(optimizer=\"adam\", loss=\"sparse_categorical_crossentropy\", metrics=[\"accuracy\"])")
    if problem:
        return problem
    metrics = compiled.get("metrics") or []
    if not any(_config_name(m) in ACCURACY for m in (metrics if isinstance(metrics, list) else [metrics])):
        return f"{call} is compiled without the accuracy metric: add metrics=[\"accuracy\"]."
    return None


def _autoencoder_problems(model, spec: AutoencoderSpec, output: Step | None) -> str | None:
    call, name = spec.call, spec.code_layer
    steps = _steps(output)
    codes = [s for s in steps if s.layer.name == name]
    if not codes:
        return (f"{call} has no layer named {name!r}: give the bottleneck layer that name, e.g. "
                f"layers.Dense({spec.code_size}, activation=\"relu\", name=\"{name}\").")
    if len(codes) > 1:
        return f"{call} uses a layer named {name!r} {len(codes)} times; name only the bottleneck {name!r}, once."
    code = codes[0]
    size = int(np.prod(code.shape))
    if size != spec.code_size:
        return (f"{call}'s layer {name!r} outputs {code.shape} ({size:,} numbers per image); the code must hold "
                f"exactly {spec.code_size} numbers.")
    bypass = _path_around(output, code)
    if bypass is not None:
        route = " -> ".join(["input"] + [s.layer.name for s in bypass])
        return (f"{call}'s output is computed from its input along a path that skips the layer {name!r} "
                f"({route}): with a connection around the code the decoder can copy its input, and the code "
                f"need not learn anything. Make every path from the input to the output pass through {name!r}.")
    encoder = _steps(code)
    if not any(_nonlinear(s.layer) for s in encoder):
        return (f"{call}'s encoder is linear (no activation other than 'linear' up to and including {name!r}): "
                "a linear autoencoder learns no more than PCA, which this chapter computes directly. Give the "
                "encoder's layers a non-linear activation such as \"relu\".")
    encoder_ids = {id(s) for s in encoder}
    for names, count, words, *where in spec.at_least:
        part = where[0] if where else "model"
        chosen = {"model": steps, "encoder": encoder, "decoder": [s for s in steps if id(s) not in encoder_ids]}[part]
        have = len({id(s.layer) for s in chosen if type(s.layer).__name__ in names})
        if have < count:
            place = "" if part == "model" else f" in its {part}"
            return f"{call} has {have} {words}{place}; the specification asks for at least {count}."
    last = _final_layer(output)
    if _activation(last) != "sigmoid":
        return (f"{call} does not end in a sigmoid: {_last_words(last)}. Pixels lie in [0, 1], and so must "
                "the reconstruction (activation=\"sigmoid\").")
    params = parameter_count(model)
    if params > spec.max_params:
        return f"{call} has {params:,} parameters; the budget is {spec.max_params:,}."
    problem, _ = _compile_problem(
        model, call, RECONSTRUCTION_LOSSES,
        "an autoencoder is trained to reproduce its input, pixel by pixel: use loss=\"binary_crossentropy\" "
        "or loss=\"mse\".",
        "model.compile(optimizer=\"adam\", loss=\"binary_crossentropy\")")
    return problem


def expect_model(build, spec):
    """Call ``build()`` and check the model against ``spec`` (a ModelSpec or an AutoencoderSpec); return it."""
    __tracebackhide__ = True
    model = call_student(build, *spec.args, name=spec.call)
    problem = model_problems(model, spec)
    if problem:
        raise CheckFailed(problem)
    return model
