"""Run a `.tflite` in LiteRT (or tflite-runtime), the judge edgecnn is held to.

Light on purpose: numpy and the interpreter only, so a device without Numba,
onnx or the trainer can use it.

Resolvers:
- "ref": BUILTIN_REF, the reference kernels edgecnn's runtime matches bit for bit;
- "builtin": the optimized kernels (ruy) without XNNPACK; may differ by ±1
  on exact-half rounding ties;
- "default": what LiteRT does out of the box (XNNPACK where it applies).

LiteRT's C++ side prints "INFO: Created TensorFlow Lite XNNPACK delegate" on
file descriptor 2 when it builds an interpreter. That would break the CLI's
"one JSON document on stdout, one line on error" contract, so native output
is captured while an interpreter is built or resized and dropped; set
EDGECNN_LITERT_LOG=1 to see it. LiteRT's errors still arrive, as exceptions.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgecnn.errors import BackendUnavailableError, ShapeError, TFLiteFormatError

RESOLVERS = ("ref", "builtin", "default")
_INPUT_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.float32))
_RESOLVER_NAMES = {"ref": "BUILTIN_REF", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "default": "AUTO"}


def load_interpreter_module():
    """The interpreter module: ai_edge_litert first, then tflite_runtime."""
    try:
        from ai_edge_litert import interpreter

        return interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter

        return interpreter
    except ImportError:
        raise BackendUnavailableError(
            "LiteRT is not installed: pip install ai-edge-litert (or tflite-runtime on older devices)"
        ) from None


def backend_version() -> str:
    """e.g. "ai_edge_litert 2.3.0"; raises BackendUnavailableError without one."""
    module = load_interpreter_module()
    package = module.__name__.split(".")[0]
    try:
        from importlib.metadata import version

        return f"{package} {version(package.replace('_', '-'))}"
    except Exception:  # metadata missing in some vendor builds
        return package


class LiteRTRunner:
    """One interpreter for one model; `run` takes a batch of any size (int8, or the model's uint8/float32 input)."""

    def __init__(self, model: bytes | str | os.PathLike, resolver: str = "ref", num_threads: int = 1,
                 preserve_all_tensors: bool = False):  # fmt: skip
        if resolver not in RESOLVERS:
            raise ValueError(f"resolver must be one of {RESOLVERS}, not {resolver!r}")
        module = load_interpreter_module()
        if isinstance(model, (bytes, bytearray, memoryview)):
            content, self.source = bytes(model), "<bytes>"
        else:
            self.source = str(model)
            try:
                content = Path(model).read_bytes()
            except OSError as e:
                raise TFLiteFormatError(f"cannot read {model}: {e.strerror or e}") from None
        kwargs = {"model_content": content, "num_threads": int(num_threads)}
        if preserve_all_tensors:  # every intermediate readable after invoke (`edgecnn compare`)
            kwargs["experimental_preserve_all_tensors"] = True
        resolver_type = getattr(module, "OpResolverType", None)
        if resolver_type is not None:
            kwargs["experimental_op_resolver_type"] = getattr(resolver_type, _RESOLVER_NAMES[resolver])
        elif resolver != "default":
            raise BackendUnavailableError(f"{module.__name__} is too old to select the {resolver!r} op resolver")
        self.resolver = resolver
        try:
            with native_stderr_quiet(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "preserve_all_tensors is for debugging"
                self.interpreter = module.Interpreter(**kwargs)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise TFLiteFormatError(f"{self.source}: LiteRT cannot load the model: {_one_line(e)}") from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if not inputs:
            raise TFLiteFormatError(f"{self.source}: the model has no input")
        self._inputs = inputs
        self._input = inputs[0]
        self._outputs = [o["index"] for o in outputs]
        for detail in inputs:
            if np.dtype(detail["dtype"]) not in _INPUT_DTYPES:
                raise TFLiteFormatError(
                    f"{self.source}: {np.dtype(detail['dtype']).name} input; edgecnn runs models with "
                    "int8, uint8 or float32 input (a float or uint8 edge is the model's own QUANTIZE)"
                )
        # Per input, in the model's input order; input_dtype / input_shape are the first input's.
        self.input_dtypes = [np.dtype(d["dtype"]) for d in inputs]
        self.input_shapes = [tuple(int(v) for v in d["shape"][1:]) for d in inputs]  # without the batch
        self.input_dtype = self.input_dtypes[0]
        self.input_shape = self.input_shapes[0]
        self._batch = int(self._input["shape"][0])

    def run(self, x) -> np.ndarray | list[np.ndarray]:
        """The outputs for input `x` of shape (N,) + input_shape, in the model's input dtype.

        int8 models take int8; a model whose graph starts with QUANTIZE takes
        its float32 or uint8 input. A model with several inputs takes a list
        of arrays in its input order, all with the same N. One output comes
        back as an array (int8, uint8 or float32, as the model says), several
        as a list.
        """
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(arrays) != len(self._inputs):
            raise ShapeError(f"the model has {len(self._inputs)} inputs, got {len(arrays)} arrays")
        arrays = [np.asarray(a) for a in arrays]
        for a, dtype, shape in zip(arrays, self.input_dtypes, self.input_shapes):
            if a.dtype != dtype:
                raise ShapeError(f"LiteRT input must be {dtype.name}, got {a.dtype}")
            if a.ndim != len(shape) + 1 or tuple(a.shape[1:]) != shape or a.shape[0] < 1:
                dims = ", ".join(map(str, shape))
                raise ShapeError(f"LiteRT input has shape {a.shape}, the model takes (N, {dims})")
        if len({a.shape[0] for a in arrays}) != 1:
            raise ShapeError(f"inputs have different batch sizes {[a.shape[0] for a in arrays]}")
        if arrays[0].shape[0] != self._batch:
            with native_stderr_quiet():
                for detail, a in zip(self._inputs, arrays):
                    self.interpreter.resize_tensor_input(detail["index"], list(a.shape))
                self.interpreter.allocate_tensors()
            self._batch = arrays[0].shape[0]
        for detail, a in zip(self._inputs, arrays):
            self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(a))
        self.interpreter.invoke()
        # get_tensor copies, so the results outlive the next invoke.
        out = [self.interpreter.get_tensor(i) for i in self._outputs]
        return out[0] if len(out) == 1 else out


def _one_line(e: Exception) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return "; ".join(lines) or type(e).__name__


@contextlib.contextmanager
def native_stderr_quiet():
    """Capture what C++ code writes to fd 2 meanwhile; pass it on only if EDGECNN_LITERT_LOG=1."""
    if os.environ.get("EDGECNN_LITERT_LOG") == "1":
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, pytest capture)
        fd = 2
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)
