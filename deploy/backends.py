"""One interface over every way edgecnn runs a model: float, Numba int8, LiteRT, onnxruntime.

`open_backend(path, name)` returns an object with `prepare(images)` (uint8
images (N, H, W) -> the model's input array), `prepare_values(x)` (float
input values of any shape, for models whose input is not an image),
`run(x)` (outputs, int8 for int8 models) and `dequantize(y)` (outputs as
real numbers). Imports happen per backend, so the device path (numba or
litert on a .tflite) never loads the trainer or onnx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.errors import BackendUnavailableError, EdgecnnError, ShapeError

BACKENDS = ("float", "numba", "litert", "litert-ref", "litert-builtin", "onnxruntime")
TRAIN_EXTRA = 'pip install "edgecnn[train]"'
ONNX_EXTRA = 'pip install "edgecnn[onnx]"'


def pad_to(images: np.ndarray, h: int, w: int) -> np.ndarray:
    """Zero-pad (N, h0, w0) images to (N, h, w), centred: 28x28 MNIST -> 32x32 LeNet input."""
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise ShapeError(f"expected grayscale images (N, H, W), got shape {images.shape}")
    n, h0, w0 = images.shape
    if h0 > h or w0 > w:
        raise ShapeError(f"images are {h0}x{w0}, larger than the model's {h}x{w} input")
    top, left = (h - h0) // 2, (w - w0) // 2
    out = np.zeros((n, h, w), dtype=images.dtype)
    out[:, top:top + h0, left:left + w0] = images
    return out


def image_size(input_shape, model: str = "the model") -> tuple[int, int]:
    """(H, W) of a one-channel image input; ShapeError for any other input (features, RGB, ...)."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 1:
        dims = "x".join(map(str, shape))
        raise ShapeError(f"{model} takes input of shape {dims}, not a one-channel image; "
                         "give `edgecnn predict` a .npy file of that shape")
    return int(shape[0]), int(shape[1])


class Int8Backend:
    """Shared preprocessing for int8 models: pixel/255 quantized with the input's qparams."""

    is_int8 = True

    def __init__(self, graph):
        self.graph = graph
        t = graph.input
        self.input_shape = tuple(t.shape[1:])
        self.metadata = graph.metadata
        self.labels = _labels(graph.metadata.get("labels"), int(np.prod(graph.output.shape[1:])))
        self._scale, self._zp = float(t.scale[0]), int(t.zero_point[0])
        self.output_scale, self.output_zero_point = float(graph.output.scale[0]), int(graph.output.zero_point[0])

    def prepare_values(self, x: np.ndarray) -> np.ndarray:
        """Real input values (N, *input_shape) -> int8 with the input's qparams; int8 arrays pass as they are."""
        x = np.asarray(x)
        if x.dtype == np.int8:
            return x
        from edgecnn.int8.rules import quantize_input

        return quantize_input(x.astype(np.float32), self._scale, self._zp)

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, np.float64) - self.output_zero_point) * self.output_scale

    def prepare(self, images: np.ndarray) -> np.ndarray:
        from edgecnn.int8.preprocessing import normalization

        h, w = image_size(self.input_shape)
        px = pad_to(np.asarray(images), h, w).astype(np.int32)
        norm = normalization(_json_dict(self.metadata.get("preprocessing")))  # (mean, std) it was trained with
        if norm is None and abs(self._scale - 1 / 255) < 1e-9:  # the lossless path: q = pixel + zp
            q = px + self._zp
        else:  # what the quantizer evaluated: quantize((pixel/255 - mean) / std), all in float32
            from edgecnn.int8.preprocessing import pixels_to_float
            from edgecnn.int8.rules import quantize_input

            return quantize_input(pixels_to_float(px[..., None], *(norm or (None, None))), self._scale, self._zp)
        return np.clip(q, -128, 127).astype(np.int8)[..., None]


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

    def __init__(self, model_bytes: bytes, num_threads: int = 1, source: str = "model"):
        import json

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
        if "input_scale" not in props or "input_zero_point" not in props:
            raise EdgecnnError(f"{source}: not an edgecnn ONNX export (no input_scale/input_zero_point metadata); "
                               "make one with `edgecnn export model.tflite --out model.onnx`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = tuple(self.session.get_inputs()[0].shape[1:])
        try:
            self._scale, self._zp = float(props["input_scale"]), int(props["input_zero_point"])
            self.output_scale = float(props.get("output_scale", "1"))
            self.output_zero_point = int(props.get("output_zero_point", "0"))
            outputs = int(np.prod([d if isinstance(d, int) else 1 for d in self.session.get_outputs()[0].shape[1:]]))
            labels = json.loads(props["labels"]) if "labels" in props else None
        except (ValueError, RecursionError) as exc:
            raise EdgecnnError(f"{source}: malformed edgecnn metadata ({type(exc).__name__})") from None
        self.metadata = {k: v for k, v in props.items()}
        self.labels = _labels(labels, outputs)

    def run(self, x):
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.int8)})[0]


class FloatBackend:
    name = "float"
    is_int8 = False

    def __init__(self, path):
        from edgecnn.model.checkpoint import load_checkpoint

        self.model = load_checkpoint(path)
        self.input_shape = tuple(self.model.input_shape)
        self.labels = list(self.model.labels)
        self.metadata = {"labels": self.labels}

    def prepare(self, images):
        h, w = image_size(self.input_shape)
        return (pad_to(np.asarray(images), h, w).astype(np.float32) / 255.0)[..., None]

    def prepare_values(self, x):
        return np.asarray(x, np.float32)

    def run(self, x):
        return self.model.predict(x)

    def dequantize(self, y):
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
        return OnnxBackend(to_bytes(graph, fc_rescale), num_threads=num_threads, source=path.name)  # in memory
    resolver = {"litert": "default", "litert-ref": "ref", "litert-builtin": "builtin"}[backend]
    return LiteRTBackend(graph, data, resolver, num_threads=num_threads)
