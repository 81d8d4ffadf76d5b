"""One interface over every way edgecnn runs a model: float, Numba int8, LiteRT, onnxruntime.

`open_backend(path, name)` returns an object with `prepare(images)` (uint8
images (N, H, W) grey or (N, H, W, 3) RGB -> the model's input array), `prepare_values(x)` (float
input values of any shape, for models whose input is not an image),
`run(x)` (outputs, int8 for int8 models; a list for several), `run_all(x)`
(always a list) and `dequantize(y)` (outputs as real numbers). Every model
the runtime runs is served: int8, uint8 or float32 inputs (a float or uint8
input is quantized by the model's own QUANTIZE op, as LiteRT does), several
inputs (`inputs`, a list of IOSpec; `prepare_values` takes a list) and
several outputs (`outputs`; `select_output(classes)` picks the
classification output that `labels` and `dequantize` describe). Imports happen per backend, so the device path (numba or
litert on a .tflite) never loads the trainer or onnx.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import BackendUnavailableError, EdgecnnError, ShapeError

BACKENDS = ("float", "numba", "litert", "litert-ref", "litert-builtin", "onnxruntime")
TRAIN_EXTRA = 'pip install "edgecnn[train]"'
ONNX_EXTRA = 'pip install "edgecnn[onnx]"'


def check_image_input(shape, images: np.ndarray) -> None:
    """ShapeError unless `images` ((N, H, W) grey or (N, H, W, C) pixels 0..255) have the channels of an
    (H, W, C) image input. Floats are refused: NaN or 1e9 cast to int8 would be an arbitrary input."""
    if images.dtype != np.uint8 and (images.dtype.kind not in "ui" or images.size and
                                     (images.min() < 0 or images.max() > 255)):
        raise ShapeError(f"images must be pixels 0..255 (uint8 or integers in range), got {images.dtype}; real-valued "
                         "input goes through prepare_values (or compare's inputs=)")
    channels = images.shape[3] if images.ndim == 4 else 1
    if images.ndim not in (3, 4) or len(shape) != 3 or shape[2] != channels:
        dims = "x".join(map(str, shape))
        what = f"a {channels}-channel image" if images.ndim in (3, 4) else f"images of shape {images.shape[1:]}"
        if len(shape) == 3 and shape[2] in (1, 3):  # an image model fed the other kind of image
            hint = "give it colour (RGB) images, e.g. --dataset cifar10" if shape[2] == 3 else \
                "give it grey images, e.g. --dataset mnist"
        else:
            hint = "give `edgecnn predict` a .npy file of that shape"
        raise ShapeError(f"the model takes input of shape {dims}, not {what}; {hint}")


@dataclass
class IOSpec:
    """One model input or output: what a caller must feed, or what comes back.

    `scale` / `zero_point` are None for float32 tensors. `value_range` is the
    span of real values a float input plausibly holds: the range the model's
    own QUANTIZE op can represent (its output's int8/uint8 range, dequantized),
    or None when unknown.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]  # without the batch
    scale: float | None = None
    zero_point: int | None = None
    value_range: tuple[float, float] | None = None

    @property
    def is_float(self) -> bool:
        return self.dtype == np.float32

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name, "shape": list(self.shape),
                "scale": self.scale, "zero_point": self.zero_point}


def _qrange(dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def graph_specs(graph) -> tuple[list[IOSpec], list[IOSpec]]:
    """(inputs, outputs) of an Int8Graph; a float input's value_range comes from the QUANTIZE op reading it."""
    def spec(t: int) -> IOSpec:
        tensor = graph.tensors[t]
        quantized = tensor.dtype != "float32" and tensor.scale.size and tensor.zero_point.size
        s = IOSpec(tensor.name, np.dtype(tensor.dtype), tuple(int(d) for d in tensor.shape[1:]),
                   float(tensor.scale[0]) if quantized else None, int(tensor.zero_point[0]) if quantized else None)
        if s.is_float:
            for op in graph.ops:
                if op.kind == "QUANTIZE" and op.inputs and op.inputs[0] == t:
                    q = graph.tensors[op.outputs[0]]
                    if q.scale.size and q.zero_point.size and q.dtype in ("int8", "uint8", "int16"):
                        lo, hi = _qrange(q.dtype)
                        scale, zp = float(q.scale[0]), int(q.zero_point[0])
                        s.value_range = ((lo - zp) * scale, (hi - zp) * scale)
                    break
        return s

    return [spec(t) for t in graph.inputs], [spec(t) for t in graph.outputs]


def classification_output(outputs: list[IOSpec], classes: int | None) -> int:
    """Index of the first output whose last dimension is `classes` (0 when none is given or there is one output).

    A ShapeError when the model has several outputs and none has `classes` entries.
    """
    if classes is None or len(outputs) == 1:
        return 0
    for k, o in enumerate(outputs):
        if o.shape and o.shape[-1] == classes:
            return k
    shapes = ", ".join(f"{o.name} {'x'.join(map(str, o.shape))}" for o in outputs)
    raise ShapeError(f"none of the model's {len(outputs)} outputs has {classes} classes ({shapes})")


class Int8Backend:
    """Shared pre- and post-processing for .tflite (and ONNX-exported) models, from their I/O specs.

    Inputs may be int8, uint8 or float32 (a float or uint8 input is quantized by
    the model's own QUANTIZE op); a model may have several inputs and outputs.
    `output_index` picks the classification output (`select_output`), whose
    labels and qparams `labels`, `output_scale`, `output_zero_point` and
    `dequantize` describe.
    """

    is_int8 = True

    def __init__(self, graph=None, specs=None):
        self.graph = graph
        self.inputs, self.outputs = specs if specs is not None else graph_specs(graph)
        self.metadata = graph.metadata if graph is not None else {}
        self._label_names = self.metadata.get("labels") if isinstance(self.metadata, dict) else None
        self.select_output(None)

    # --- the first input (the image, for image models) and the classification output -------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs[0].shape

    @property
    def _scale(self):
        return self.inputs[0].scale

    @property
    def _zp(self):
        return self.inputs[0].zero_point

    def select_output(self, classes: int | None) -> int:
        """Make the first output with `classes` entries in its last dimension the classification output."""
        k = classification_output(self.outputs, classes)
        if classes is None and len(self.outputs) > 1:  # metadata labels name the classification output
            labels = _json_list(self._label_names)
            if labels is not None:
                k = next((i for i, o in enumerate(self.outputs) if int(np.prod(o.shape)) == len(labels)), 0)
        return self.select_output_index(k)

    def select_output_index(self, k: int) -> int:
        """Make output k the classification output: labels, output_scale/zero_point and dequantize follow it."""
        self.output_index = k
        out = self.outputs[k]
        self.labels = _labels(_json_list(self._label_names), int(np.prod(out.shape)))
        self.output_scale = out.scale if out.scale is not None else 1.0
        self.output_zero_point = out.zero_point if out.zero_point is not None else 0
        return k

    @property
    def output_name(self) -> str:
        return self.outputs[self.output_index].name

    # --- inputs ----------------------------------------------------------------------------------------
    def _quantize(self, spec: IOSpec, x: np.ndarray) -> np.ndarray:
        """Real values -> the input's dtype: float32 as they are, int8/uint8 quantized as TFLite's QUANTIZE."""
        x = np.asarray(x)
        if x.dtype == spec.dtype:
            return x
        if x.dtype.kind not in "biuf":
            raise ShapeError(f"input {spec.name} takes numbers, not {x.dtype}")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):  # NaN has no int8 value: refuse, never guess
            raise ShapeError(f"input {spec.name}: the values hold NaN or infinity")
        if spec.is_float:
            return x.astype(np.float32)
        from edgecnn.int8.rules import quantize_input

        return quantize_input(x.astype(np.float32), spec.scale, spec.zero_point, *_qrange(spec.dtype))

    def prepare_values(self, x):
        """Real input values (N, *input_shape) -> the model's input; arrays already in its dtype pass as they are.

        Several inputs: a list (or tuple) of arrays, one per input, in the model's input order.
        """
        if isinstance(x, (list, tuple)):
            if len(x) != len(self.inputs):
                raise ShapeError(f"the model has {len(self.inputs)} inputs, got {len(x)} arrays")
            return [self._quantize(s, a) for s, a in zip(self.inputs, x)]
        if len(self.inputs) != 1:
            raise ShapeError(f"the model has {len(self.inputs)} inputs; give one array per input")
        return self._quantize(self.inputs[0], x)

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (N, H, W[, C]) -> the model's (only) input, in its dtype: pixel/255 (then the
        metadata's mean/std) as float32, quantized with the input's qparams for int8/uint8 inputs."""
        from edgecnn.int8.preprocessing import fit_pixels, normalization, pixels_to_float

        images = np.asarray(images)
        if len(self.inputs) != 1:
            names = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))}" for s in self.inputs)
            raise ShapeError(f"the model has {len(self.inputs)} inputs ({names}); images feed models with one")
        spec = self.inputs[0]
        check_image_input(spec.shape, images)
        px = fit_pixels(images, spec.shape)
        norm = normalization(_json_dict(self.metadata.get("preprocessing")))  # (mean, std) it was trained with
        if norm is None and not spec.is_float and abs(spec.scale - 1 / 255) < 1e-9:  # lossless: q = pixel + zp
            lo, hi = _qrange(spec.dtype)
            return np.clip(px.astype(np.int32) + spec.zero_point, lo, hi).astype(spec.dtype)
        # what the quantizer evaluated: quantize((pixel/255 - mean) / std), all in float32
        return self._quantize(spec, pixels_to_float(px, *(norm or (None, None))))

    # --- outputs ---------------------------------------------------------------------------------------
    def dequantize(self, y: np.ndarray, k: int | None = None) -> np.ndarray:
        """Output k (default: the classification output) as real numbers."""
        spec = self.outputs[self.output_index if k is None else k]
        if spec.scale is None:
            return np.asarray(y, np.float64)
        return (np.asarray(y, np.float64) - spec.zero_point) * spec.scale

    def run_all(self, x) -> list[np.ndarray]:
        """Every output, as a list in the model's output order."""
        y = self.run(x)
        return list(y) if isinstance(y, (list, tuple)) else [y]


class NumbaBackend(Int8Backend):
    name = "numba"

    def __init__(self, graph, fc_rescale: str = "float"):
        super().__init__(graph)
        from edgecnn.deploy.runtime import Runtime

        self.runtime = Runtime(graph, fc_rescale=fc_rescale)

    def run(self, x):
        return self.runtime.run(x)


class LiteRTBackend(Int8Backend):
    def __init__(self, graph, model_bytes: bytes, resolver: str, num_threads: int = 1):
        super().__init__(graph)
        from edgecnn.deploy.litert import LiteRTRunner

        self.name = {"ref": "litert-ref", "builtin": "litert-builtin", "default": "litert"}[resolver]
        self.runner = LiteRTRunner(model_bytes, resolver=resolver, num_threads=num_threads)

    def run(self, x):
        return self.runner.run(x)


class OnnxBackend(Int8Backend):
    """onnxruntime (CPU) on an edgecnn ONNX export; qparams and labels come from its metadata."""

    name = "onnxruntime"

    def __init__(self, model_bytes: bytes, num_threads: int = 1, source: str = "model", specs=None):
        try:
            import onnx
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError(f"the onnxruntime backend needs onnx and onnxruntime: {ONNX_EXTRA}") from None
        try:
            model = onnx.load_from_string(model_bytes)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise EdgecnnError(f"{source}: not a valid ONNX file ({exc})") from None
        props = {p.key: p.value for p in model.metadata_props}
        if specs is None and "input_scale" not in props and "input0_scale" not in props \
                and "exactness" not in props:
            raise EdgecnnError(f"{source}: not an edgecnn ONNX export (no input_scale/input_zero_point metadata); "
                               "make one with `edgecnn export model.tflite --out model.onnx`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_name = self.input_names[0]
        if specs is None:
            try:
                specs = (_onnx_specs(self.session.get_inputs(), props, "input"),
                         _onnx_specs(self.session.get_outputs(), props, "output"))
            except (ValueError, RecursionError) as exc:
                raise EdgecnnError(f"{source}: malformed edgecnn metadata ({type(exc).__name__})") from None
        self.graph = None
        self.inputs, self.outputs = specs
        self.metadata = {k: v for k, v in props.items()}
        self._label_names = props.get("labels")
        self.select_output(None)

    def run(self, x):
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        feed = {name: np.ascontiguousarray(a, dtype=spec.dtype)
                for name, a, spec in zip(self.input_names, arrays, self.inputs)}
        out = self.session.run(None, feed)
        return out[0] if len(out) == 1 else out


_ONNX_DTYPES = {"tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(float)": np.float32}


def _onnx_specs(values, props: dict, role: str) -> list[IOSpec]:
    """I/O specs of an edgecnn ONNX export: types from the session, qparams from `{role}[k]_scale` metadata."""
    specs = []
    for k, v in enumerate(values):
        suffix = "" if len(values) == 1 else str(k)
        dtype = np.dtype(_ONNX_DTYPES.get(v.type, np.int8))
        scale, zp = props.get(f"{role}{suffix}_scale"), props.get(f"{role}{suffix}_zero_point")
        quantized = dtype != np.float32 and scale is not None
        specs.append(IOSpec(v.name, dtype, tuple(d if isinstance(d, int) else 1 for d in v.shape[1:]),
                            float(scale) if quantized else None, int(zp or 0) if quantized else None))
    return specs


class FloatBackend:
    name = "float"
    is_int8 = False

    def __init__(self, path):
        from edgecnn.model.checkpoint import load_checkpoint

        self._attach(load_checkpoint(path))

    @classmethod
    def from_model(cls, model) -> "FloatBackend":
        """A float model object (trained in-process, or imported from ONNX) behind the backend interface."""
        backend = cls.__new__(cls)
        backend._attach(model)
        return backend

    def _attach(self, model) -> None:
        self.model = model
        self.input_shape = tuple(model.input_shape)
        self.labels = list(getattr(model, "labels", None) or [])
        self.metadata = {"labels": self.labels}
        self.inputs = [IOSpec("input", np.dtype(np.float32), self.input_shape)]
        self.outputs = [IOSpec("output", np.dtype(np.float32), (len(self.labels),))]
        self.output_index = 0

    def select_output(self, classes: int | None) -> int:
        return 0

    @property
    def output_name(self) -> str:
        return "output"

    def run_all(self, x) -> list[np.ndarray]:
        return [self.run(x)]

    def prepare(self, images):
        """uint8 images (N, H, W[, C]) -> float32 pixel / 255, zero-padded (centred) to the model's input."""
        from edgecnn.int8.preprocessing import fit_pixels, pixels_to_float

        images = np.asarray(images)
        check_image_input(self.input_shape, images)
        return pixels_to_float(fit_pixels(images, self.input_shape))

    def prepare_values(self, x):
        return np.asarray(x, np.float32)

    def run(self, x):
        return self.model.predict(x)

    def dequantize(self, y, k: int | None = None):
        return np.asarray(y, np.float64)


def _json_dict(value):
    """A metadata value as a dict: .tflite metadata holds dicts, ONNX metadata their JSON text."""
    if isinstance(value, str):
        import json

        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _missing(exc: ModuleNotFoundError, *names: str) -> bool:
    """True when `exc` is about one of the optional packages `names`, not a bug inside edgecnn."""
    return (exc.name or "").split(".")[0] in names


def _json_list(value):
    """A metadata list (ONNX metadata holds its JSON text), else None."""
    value = _json_dict(value) if isinstance(value, str) else value
    return value if isinstance(value, list) else None


def _labels(labels, n: int) -> list[str]:
    """The model's class names when its metadata holds a list of n strings, else "0".."n-1"."""
    if isinstance(labels, list) and len(labels) == n and all(isinstance(v, str) for v in labels):
        return labels
    return [str(i) for i in range(n)]


def default_backend(path) -> str:
    """float for .npz, onnxruntime for .onnx; for .tflite the bit-exact numba runtime, or LiteRT where
    Numba is not installed (a light device install)."""
    import importlib.util

    suffix = Path(path).suffix.lower()
    if suffix in (".npz", ".onnx"):
        return {".npz": "float", ".onnx": "onnxruntime"}[suffix]
    try:
        import numba  # noqa: F401
    except ImportError:
        for module in ("ai_edge_litert", "tflite_runtime"):
            if importlib.util.find_spec(module) is not None:
                return "litert"
    return "numba"


def open_backend(path, backend: str | None = None, *, fc_rescale: str = "float", num_threads: int = 1):
    path = Path(path)
    if path.is_dir():
        raise EdgecnnError(f"{path} is a folder, not a model file")
    suffix = path.suffix.lower()
    if backend is None:
        backend = default_backend(path)
    if backend not in BACKENDS:
        raise EdgecnnError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if suffix == ".npz":
        if backend != "float":
            raise EdgecnnError(f"{path.name} is a float checkpoint; backend {backend} runs int8 .tflite models "
                               f"(make one with `edgecnn quantize {path.name} --out model.tflite`)")
        return FloatBackend(path)
    if suffix == ".onnx":
        if backend != "onnxruntime":
            raise EdgecnnError(f"{path.name} is an ONNX model; only the onnxruntime backend runs it")
        return OnnxBackend(path.read_bytes(), num_threads=num_threads, source=path.name)
    if suffix != ".tflite":
        raise EdgecnnError(f"{path.name}: unknown model type (expected .npz, .tflite or .onnx)")
    if backend == "float":
        raise EdgecnnError(f"{path.name} is an int8 model; the float backend runs .npz checkpoints")
    from edgecnn.deploy.tflite.reader import read_tflite

    graph = read_tflite(path)  # errors name the file
    data = path.read_bytes()
    if backend == "numba":
        try:
            return NumbaBackend(graph, fc_rescale=fc_rescale)
        except ModuleNotFoundError as exc:
            if not _missing(exc, "numba"):
                raise
            raise BackendUnavailableError(f"the numba backend needs numba, which is not installed: {TRAIN_EXTRA} "
                                          "(or use --backend litert)") from None
    if backend == "onnxruntime":
        try:
            from edgecnn.deploy.export.onnx import to_bytes
        except ModuleNotFoundError as exc:
            if not _missing(exc, "onnx", "onnxruntime"):
                raise
            raise BackendUnavailableError(f"the onnxruntime backend needs onnx and onnxruntime: {ONNX_EXTRA}") from None
        return OnnxBackend(to_bytes(graph, fc_rescale), num_threads=num_threads, source=path.name,
                           specs=graph_specs(graph))  # in memory
    resolver = {"litert": "default", "litert-ref": "ref", "litert-builtin": "builtin"}[backend]
    return LiteRTBackend(graph, data, resolver, num_threads=num_threads)
