"""Reading what a student's code sent, with every size checked before anything is allocated.

The judge reads bytes that student code wrote: a line on its socket, ``.npy`` arrays in base64, a
Keras ``.keras`` archive. Each reader here bounds what it will hold *before* it holds it:

- :class:`LineReader` reads a line in chunks from a file descriptor, with a cap on its length and
  a deadline (``readline()`` on a socket would hold any number of bytes for any time);
- :func:`decode` reads the ``.npy`` header first (shape, dtype) and refuses an array too large,
  of object dtype or whose data does not match its header, before it makes the array;
- :func:`model_problems_before_building` opens a ``.keras`` archive and refuses unexpected members,
  an uncompressed size over the cap, weights in ``model.weights.h5`` whose shapes add up to more
  than the cap, and a config whose layers would need more parameters than the cap, counted from
  the config (layer by layer, with the shapes propagated from the model's input) without building
  a single weight.

Every refusal is a :class:`Refused` whose message is a sentence a student can read.
Used by both sides of the judge: the grading pipeline's trusted side reads lines only
(:mod:`convae.grading.judge_server`), its sandboxed side decodes and rebuilds
(:mod:`convae.grading.judge_sandbox`); the one-shot judge of :func:`convae.judge.hidden_check`
does all of it in one process, with the same code.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import select
import time
import zipfile
import zlib

import numpy as np

#: one request line from the kernel: {"chapter": ..., "exercise": ...}
MAX_REQUEST_BYTES = 4096
#: one results line from the kernel. Measured: the largest array answer of chapters 01-04 is 84 KB
#: in base64, chapter 04's specified MLP as a .keras file 3.6 MB (11 MB with Adam's state after
#: training); 16 MB leaves room for that and holds little on the trusted side.
MAX_RESULTS_BYTES = 16 * 2**20
#: one decoded array (100 times the largest answer measured)
MAX_ARRAY_BYTES = 8 * 2**20
#: a .keras archive: total uncompressed size, and the size of its config.json
MAX_ARCHIVE_BYTES = 96 * 2**20
MAX_CONFIG_BYTES = 2**20
KERAS_MEMBERS = {"metadata.json", "config.json", "model.weights.h5"}
#: parameters of a model the grader agrees to build: this many times the exercise's budget (the
#: specification check then says by how much it is over), never less than MIN_MODEL_PARAMS
PARAMS_OVER_BUDGET, MIN_MODEL_PARAMS = 10, 1_000_000
MAX_LAYERS = 2000
#: dtypes an encoded array may have: numbers, booleans, and text (cases carry modes like "min")
ARRAY_KINDS = "biufUS"


class Refused(ValueError):
    """Bytes the judge will not read further; the message is a sentence for the student."""


def megabytes(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 1024:,.0f} KB"


# ---------------------------------------------------------------- lines

class LineReader:
    """Lines from a file descriptor (socket or pipe), each at most ``limit`` bytes, each within
    ``timeout`` seconds; the bytes are returned raw, without the newline, never parsed here."""

    CHUNK = 1 << 16

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, bytearray()

    def _fill(self, deadline: float | None, what: str, limit: int) -> None:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            raise Refused(f"{what} did not arrive within the time allowed")
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            raise Refused(f"{what} did not arrive within the time allowed")
        chunk = os.read(self.fd, min(self.CHUNK, limit + 1 - len(self.buffer)) or 1)
        if not chunk:
            raise EOFError(f"the connection closed before {what} was complete")
        self.buffer += chunk

    def line(self, limit: int, timeout: float | None, what: str = "a message") -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if 0 <= end <= limit:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                return line
            if len(self.buffer) > limit:
                raise Refused(f"{what} was longer than {megabytes(limit)}, the most the grader reads")
            start = len(self.buffer)
            self._fill(deadline, what, limit)

    def exactly(self, n: int, timeout: float | None, what: str = "a message") -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self.buffer) < n:
            self._fill(deadline, what, n)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data


def write_all(fd: int, *parts: bytes) -> None:
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


# ---------------------------------------------------------------- arrays

def decode(text, max_bytes: int = MAX_ARRAY_BYTES):
    """A base64 ``.npy`` as an array (a 0-d one as its number), its header checked first."""
    if not isinstance(text, str):
        raise Refused(f"an answer arrived as {type(text).__name__}, not as an encoded array")
    if len(text) > (max_bytes + 4096) * 4 // 3 + 4:
        raise Refused(f"an answer was larger than {megabytes(max_bytes)}, the most the grader accepts per array")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("an answer was not a valid encoded array") from None
    f = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f, max_header_size=1024)
    except Exception as err:
        raise Refused(f"an answer was not a valid .npy array ({str(err)[:120]})") from None
    if dtype.hasobject or dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise Refused(f"an answer has dtype {dtype}; the grader accepts numbers, booleans and text only")
    size = math.prod(int(n) for n in shape) * dtype.itemsize
    if size > max_bytes:
        raise Refused(f"an answer is an array of shape {tuple(shape)} ({dtype}, {size:,} bytes); "
                      f"the grader accepts at most {megabytes(max_bytes)} per array")
    if len(raw) - f.tell() != size:
        raise Refused(f"an answer claims shape {tuple(shape)} ({dtype}) but carries {len(raw) - f.tell():,} "
                      f"bytes of data instead of {size:,}")
    f.seek(0)
    arr = np.lib.format.read_array(f, allow_pickle=False)
    return arr.item() if arr.ndim == 0 else arr


# ---------------------------------------------------------------- Keras archives

def model_budget(max_params: int | None) -> int:
    """The largest model the grader builds for an exercise whose budget is ``max_params``."""
    return max(PARAMS_OVER_BUDGET * (max_params or 0), MIN_MODEL_PARAMS)


def _read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    with zf.open(name) as fh:  # never trust the sizes the zip declares: read at most limit + 1
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"the model file's {name} is larger than {megabytes(limit)}")
    return data


def model_problems_before_building(raw: bytes, cap: int) -> str | None:
    """Why the grader will not build this ``.keras`` archive (a sentence), or None.

    ``cap``: the most parameters the grader builds (see :func:`model_budget`).
    """
    try:
        return _archive_problems(raw, cap)
    except Refused as err:
        return str(err)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError):
        return "the model arrived as a damaged .keras archive"


def _archive_problems(raw: bytes, cap: int) -> str | None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        return "the model arrived as a file that is not a Keras .keras archive"
    names = [i.filename for i in infos]
    if len(names) != len(set(names)) or not set(names) <= KERAS_MEMBERS or "config.json" not in names:
        return (f"the model file holds {', '.join(sorted(names)[:8]) or 'nothing'}; a .keras file of built-in "
                f"layers holds only {', '.join(sorted(KERAS_MEMBERS))}")
    if sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
        return f"the model file unpacks to more than {megabytes(MAX_ARCHIVE_BYTES)}"
    config = _read_member(zf, "config.json", MAX_CONFIG_BYTES)
    try:
        config = json.loads(config)
    except (ValueError, RecursionError):
        return "the model file's config.json is not valid JSON"
    weights = _read_member(zf, "model.weights.h5", MAX_ARCHIVE_BYTES) if "model.weights.h5" in names else b""
    stored = weight_elements(weights) if weights else 0
    if stored is None:
        return "the model file's model.weights.h5 cannot be read as HDF5"
    if stored > 3 * cap + 1000:  # the model's weights and an optimiser's state (Adam: two per weight)
        return (f"the model file stores {stored:,} numbers of weights; the grader builds models of at most "
                f"{cap:,} parameters for this exercise")
    needed = config_parameters(config)
    if needed is not None and needed > cap:
        return (f"its config asks for {needed:,} parameters; the grader builds models of at most {cap:,} "
                "parameters for this exercise (the budget is in the exercise's text)")
    return None


def weight_elements(data: bytes) -> int | None:
    """How many numbers the HDF5 weights file declares (shapes only: no data is read)."""
    import h5py

    total = 0

    def visit(_, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += math.prod(int(n) for n in (obj.shape or ()))

    try:
        with h5py.File(io.BytesIO(data), "r") as fh:
            fh.visititems(visit)
    except Exception:  # anything HDF5 cannot read is refused; this runs in the sandbox
        return None
    return total


# Layers without weights: their output shape is all that matters
NO_WEIGHTS = {
    "InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "Flatten", "Reshape", "Permute", "RepeatVector", "Activation", "ReLU",
    "LeakyReLU", "ELU", "Softmax", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "UpSampling1D",
    "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
    "Cropping2D", "Cropping3D", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "Rescaling", "Identity",
}
CONV = {"Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
MODELS = {"Sequential", "Functional", "Model"}


def _channels(config: dict, shape) -> int:
    axis = 1 if config.get("data_format") == "channels_first" else -1
    return int(shape[axis])


def _layer_weights(name: str, config: dict, shape) -> int | None:
    """Parameters of one built-in layer given its input shape, from its config; None if unknown."""
    if name in NO_WEIGHTS:
        return 0
    bias = bool(config.get("use_bias", True))
    if name == "Dense":
        units = int(config["units"])
        return units * int(shape[-1]) + units * bias
    if name in CONV:
        kernel = math.prod(int(k) for k in config["kernel_size"])
        filters, groups = int(config["filters"]), int(config.get("groups") or 1)
        return kernel * _channels(config, shape) // groups * filters + filters * bias
    if name in ("DepthwiseConv2D", "DepthwiseConv1D"):
        out = _channels(config, shape) * int(config.get("depth_multiplier", 1))
        return math.prod(int(k) for k in config["kernel_size"]) * out + out * bias
    if name in ("SeparableConv2D", "SeparableConv1D"):
        mid = _channels(config, shape) * int(config.get("depth_multiplier", 1))
        filters = int(config["filters"])
        return math.prod(int(k) for k in config["kernel_size"]) * mid + mid * filters + filters * bias
    if name in ("BatchNormalization", "LayerNormalization"):
        axes = config.get("axis", -1)
        dims = math.prod(int(shape[a]) for a in (axes if isinstance(axes, list) else [axes]))
        learned = dims * (bool(config.get("center", True)) + bool(config.get("scale", True)))
        return learned + (2 * dims if name == "BatchNormalization" else 0)
    if name == "Embedding":
        return int(config["input_dim"]) * int(config["output_dim"])
    return None


def _output_shape(entry: dict, shape):
    """A layer's output shape from an unbuilt copy (a layer's constructor allocates no weights)."""
    import keras

    entry = {k: v for k, v in entry.items() if k not in ("build_config", "compile_config", "inbound_nodes")}
    layer = keras.saving.deserialize_keras_object(entry, safe_mode=True)
    return layer.compute_output_shape(shape)


def _is_shape(value) -> bool:
    return isinstance(value, (list, tuple)) and all(v is None or isinstance(v, int) for v in value)


def config_parameters(config: dict) -> int | None:
    """Parameters the model of a ``.keras`` config would build, counted without building it:
    the shapes are propagated from its input, layer by layer. None if it cannot be counted (a
    layer this function does not know, a graph it cannot follow): the sandbox's memory limit
    is then what stops a model too large."""
    try:
        counted = _model_parameters(config, None, [0])
    except (Refused, RecursionError):
        raise
    except Exception:  # a config Keras itself would refuse: let Keras say why, in the sandbox
        return None
    return None if counted is None else counted[0]


def _model_parameters(entry: dict, shape, seen: list) -> tuple[int, object] | None:
    """(parameters, output shape) of a layer or model config given its input shape."""
    seen[0] += 1
    if seen[0] > MAX_LAYERS:
        raise Refused(f"the model has more than {MAX_LAYERS} layers")
    name, config = entry.get("class_name"), entry.get("config") or {}
    if name == "Sequential":
        layers = config.get("layers", [])
        if layers and layers[0].get("class_name") == "InputLayer":
            shape = layers[0]["config"].get("batch_shape") or layers[0]["config"].get("batch_input_shape")
        elif shape is None:
            shape = config.get("build_input_shape") or (entry.get("build_config") or {}).get("input_shape")
        if not _is_shape(shape):
            return None
        total = 0
        for layer in layers:
            if layer.get("class_name") == "InputLayer":
                continue
            counted = _model_parameters(layer, shape, seen)
            if counted is None:
                return None
            total, shape = total + counted[0], counted[1]
        return total, shape
    if name in ("Functional", "Model"):
        return _functional_parameters(config, shape, seen)
    if shape is None or not _is_shape(shape):
        return None
    params = _layer_weights(name, config, shape)
    if params is None:
        return None
    return params, tuple(_output_shape(entry, tuple(shape)))


def _tensors(node):
    """The keras_history of every tensor in an inbound node's arguments."""
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            yield tuple(node["config"]["keras_history"])
        else:
            for value in node.values():
                yield from _tensors(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tensors(value)


def _functional_parameters(config: dict, input_shape, seen: list):
    shapes, total = {}, 0
    inputs = config.get("input_layers", [])
    inputs = [inputs] if inputs and isinstance(inputs[0], str) else inputs
    for layer in config.get("layers", []):
        name = layer.get("name") or layer.get("config", {}).get("name")
        if layer.get("class_name") == "InputLayer":
            shape = layer["config"].get("batch_shape")
            if input_shape is not None and len(inputs) == 1 and _is_shape(input_shape):
                shape = input_shape  # a nested model takes the shape it is called with
            if not _is_shape(shape):
                return None
            shapes[(name, 0, 0)] = tuple(shape)
            continue
        for index, node in enumerate(layer.get("inbound_nodes", [])):
            history = list(_tensors(node.get("args", [])))
            if not history or any((h[0], h[1], h[2]) not in shapes for h in history):
                return None
            ins = [shapes[(h[0], h[1], h[2])] for h in history]
            counted = _model_parameters(layer, ins[0] if len(ins) == 1 else ins, seen) \
                if layer.get("class_name") in MODELS or len(ins) == 1 else _merge(layer, ins)
            if counted is None:
                return None
            if index == 0:  # a shared layer's weights count once
                total += counted[0]
            shapes[(name, index, 0)] = tuple(counted[1])
    outputs = config.get("output_layers", [])
    outputs = [outputs] if outputs and isinstance(outputs[0], str) else outputs
    if not outputs or any((o[0], o[1], o[2]) not in shapes for o in outputs):
        return None
    return total, shapes[tuple(outputs[0][:3])]


def _merge(layer: dict, shapes: list):
    if layer.get("class_name") not in NO_WEIGHTS:
        return None
    return 0, tuple(_output_shape(layer, [tuple(s) for s in shapes]))
