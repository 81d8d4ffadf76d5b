"""Where two back ends part: every op's output compared, image by image (`edgecnn compare`).

    from edgecnn.deploy.compare import compare, first_divergence
    d = first_divergence("model.tflite", "litert-ref", "litert", images=test_images)
    if d is not None:
        print(d.message())   # op 0 (CONV_2D) output conv_2d_0, image 3: 2 of 4704 elements differ ...

Back ends: numba, litert-ref, litert, litert-builtin, tflite-runtime[-ref|
-builtin], onnxruntime, c (see intermediates.py for how each gives its
intermediate tensors). Op indices are those of edgecnn's graph (`edgecnn
summary`), which folds static shape ops away. Images go through in chunks
sized to a memory budget, so intermediates never pile up.

"Where they part" is the first image (in the order given) on which any op
output differs, and on that image the first op in execution order whose
output differs. The full report counts every image; `first_divergence`
stops after the first chunk that differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgecnn.deploy.intermediates import SOURCES, op_outputs, open_source
from edgecnn.errors import EdgecnnError, ModelError
from edgecnn.int8.graph import Int8Graph

BACKENDS = SOURCES
MEMORY_BUDGET = 64 << 20  # bytes of intermediates per back end and chunk
MAX_CHUNK = 256
NAME_WIDTH = 40


def short_name(name: str) -> str:
    """A tensor name for one line: the converter's first ';'-separated part, its end kept if long."""
    head = name.split(";")[0] + ("..." if ";" in name else "")
    return head if len(head) <= NAME_WIDTH else "..." + head[-(NAME_WIDTH - 3):]


@dataclass
class Divergence:
    """The first place two back ends part: op, its output tensor, image, and how much they differ there."""

    op_index: int
    builtin: str
    tensor: str
    image: int  # index into the images/inputs given
    differing: int  # elements of this op output that differ on this image
    elements: int  # elements of this op output per image
    max_diff: float  # largest |a - b| on this image (an int for integer tensors)
    backends: tuple[str, str] = ("", "")

    def message(self) -> str:
        """One line, for a gate's failure message."""
        a, b = self.backends
        return (f"{a} and {b} first differ at op {self.op_index} ({self.builtin}) output {short_name(self.tensor)}, "
                f"image {self.image}: {self.differing} of {self.elements} elements differ "
                f"(largest difference {self.max_diff})")  # fmt: skip

    def as_dict(self) -> dict:
        d = asdict(self)
        d["backends"] = list(self.backends)
        d["max_diff"] = _json_number(self.max_diff)
        return d


@dataclass
class OpDiff:
    """One op output over every image compared."""

    op_index: int
    builtin: str
    tensor: str
    tensor_index: int
    compared: bool = True  # False when a back end does not give this tensor
    elements: int = 0  # compared, over all images
    differing: int = 0
    max_diff: float = 0
    images_differing: int = 0
    first_image: int | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["max_diff"] = _json_number(self.max_diff)
        return d


@dataclass
class Report:
    model: str
    backends: tuple[str, str]
    images: int = 0
    ops: list[OpDiff] = field(default_factory=list)
    first: Divergence | None = None
    other: str | None = None

    @property
    def identical(self) -> bool:
        return self.first is None

    def as_dict(self) -> dict:
        return {"model": self.model, "other": self.other, "backends": list(self.backends), "images": self.images,
                "identical": self.identical, "first_divergence": self.first.as_dict() if self.first else None,
                "ops": [op.as_dict() for op in self.ops]}  # fmt: skip


@dataclass
class LoadedModel:
    graph: Int8Graph
    data: bytes  # the .tflite bytes LiteRT and tflite-runtime run
    name: str


def load_model(model) -> LoadedModel:
    """A .tflite path or its bytes, read and checked once (a LoadedModel passes as it is)."""
    from pathlib import Path

    from edgecnn.deploy.tflite.reader import read_tflite

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        return LoadedModel(read_tflite(data), data, "<bytes>")
    path = Path(model)
    if path.is_dir():
        raise EdgecnnError(f"{path} is a folder, not a model file")
    if path.suffix.lower() != ".tflite":
        raise EdgecnnError(f"{path.name}: compare takes int8 .tflite models")
    return LoadedModel(read_tflite(path), path.read_bytes(), path.name)


def prepare_images(graph: Int8Graph, images) -> list[np.ndarray]:
    """uint8 dataset images (N, H, W) -> the model's input arrays, exactly as `edgecnn eval` feeds them."""
    from edgecnn.deploy.backends import Int8Backend

    x = Int8Backend(graph).prepare(np.asarray(images))
    return list(x) if isinstance(x, (list, tuple)) else [x]


def check_inputs(graph: Int8Graph, inputs) -> list[np.ndarray]:
    arrays = [np.asarray(a) for a in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    if len(arrays) != len(graph.inputs):
        raise ModelError(f"the model has {len(graph.inputs)} inputs, got {len(arrays)} arrays")
    for a, t in zip(arrays, graph.inputs):
        tensor = graph.tensors[t]
        if a.dtype != np.dtype(tensor.dtype) or tuple(a.shape[1:]) != tuple(tensor.shape[1:]):
            raise ModelError(f"input {tensor.name} takes {tensor.dtype} (N, {', '.join(map(str, tensor.shape[1:]))}), "
                             f"got {a.dtype} {a.shape}")  # fmt: skip
    if len({len(a) for a in arrays}) != 1 or len(arrays[0]) == 0:
        raise ModelError(f"inputs need the same, non-zero number of images, got {[len(a) for a in arrays]}")
    return arrays


def chunk_size(graph: Int8Graph, budget: int = MEMORY_BUDGET) -> int:
    """Images per chunk so that one back end's intermediates stay under `budget` bytes."""
    per_image = sum(int(np.prod(graph.tensors[t].shape, dtype=np.int64)) * np.dtype(graph.tensors[t].dtype).itemsize
                    for t in op_outputs(graph))  # fmt: skip
    return int(max(1, min(MAX_CHUNK, budget // max(per_image, 1))))


def pairs(graph_a: Int8Graph, graph_b: Int8Graph) -> list[tuple[int, str, int, int]]:
    """(op index, builtin, tensor in a, tensor in b) for every op output; two graphs must have the same ops."""
    if graph_b is graph_a:
        return [(i, op.kind, t, t) for i, op in enumerate(graph_a.ops) for t in op.outputs]
    kinds_a, kinds_b = [op.kind for op in graph_a.ops], [op.kind for op in graph_b.ops]
    if kinds_a != kinds_b:
        at = next((i for i, (x, y) in enumerate(zip(kinds_a, kinds_b)) if x != y), min(len(kinds_a), len(kinds_b)))
        kind_a, kind_b = (k[at] if at < len(k) else "none" for k in (kinds_a, kinds_b))
        raise ModelError(f"the two models have different ops (op {at}: {kind_a} vs {kind_b})")
    return [(i, a.kind, ta, tb) for i, (a, b) in enumerate(zip(graph_a.ops, graph_b.ops))
            for ta, tb in zip(a.outputs, b.outputs)]  # fmt: skip


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| per element, (N, K); floats by value (NaN equals NaN, -0 equals 0; a number against NaN is inf)."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        a, b = a.astype(np.float64), b.astype(np.float64)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        with np.errstate(invalid="ignore"):
            d = np.abs(a - b)
        return np.where(same, 0.0, np.where(np.isnan(d), np.inf, d))
    return np.abs(a.astype(np.int64) - b.astype(np.int64))


def compare_chunk(report: Report, table: list[tuple[int, str, int, int]], got_a: dict, got_b: dict,
                  offset: int, images: int) -> None:  # fmt: skip
    """Add one chunk's counts to `report` (images offset .. offset+images-1); set `report.first` if unset."""
    first_per_image: dict[int, tuple] = {}
    for row, (i, kind, ta, tb) in zip(report.ops, table):
        a, b = got_a.get(ta), got_b.get(tb)
        if a is None or b is None or a.shape != b.shape:
            row.compared = False
            continue
        d = difference(a.reshape(images, -1), b.reshape(images, -1))
        row.elements += d.size
        per_image = np.count_nonzero(d, axis=1)
        bad = np.flatnonzero(per_image)
        if not bad.size:
            continue
        row.differing += int(per_image.sum())
        row.max_diff = max(row.max_diff, _number(d.max()))
        row.images_differing += int(bad.size)
        if row.first_image is None:
            row.first_image = offset + int(bad[0])
        if report.first is None and int(bad[0]) not in first_per_image:
            k = int(bad[0])
            first_per_image[k] = (row, int(per_image[k]), d.shape[1], _number(d[k].max()))
    if report.first is None and first_per_image:
        k = min(first_per_image)  # the first image that differs; rows were visited in op order
        row, differing, elements, largest = first_per_image[k]
        report.first = Divergence(row.op_index, row.builtin, row.tensor, offset + k, differing, elements, largest,
                                  report.backends)  # fmt: skip


def _json_number(v):
    """JSON has no infinity: a float output that is inf or NaN on one side only differs by "inf"."""
    return v if np.isfinite(v) else "inf"


def _number(v) -> float:
    v = v.item() if hasattr(v, "item") else v
    return int(v) if float(v).is_integer() else float(v)


def compare(model, backend_a: str, backend_b: str, images=None, *, inputs=None, other=None,
            fc_rescale: str = "float", chunk: int | None = None, stop_at_first: bool = False,
            progress=None) -> Report:  # fmt: skip
    """Every op output of `model` in `backend_a` against `backend_b`, over every image.

    Give `images` (uint8 dataset images (N, H, W), fed as `edgecnn eval`
    feeds them) or `inputs` (the model's input arrays, a list for several
    inputs). `other`: a second .tflite with the same ops, run in backend_b
    (a model against its edited copy). `progress(done)` is called per chunk.
    """
    for backend in (backend_a, backend_b):
        if backend not in BACKENDS:
            raise EdgecnnError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if (images is None) == (inputs is None):
        raise ValueError("give images or inputs (one of the two)")
    a = load_model(model)
    b = a if other is None else load_model(other)
    graph_a, graph_b = a.graph, b.graph
    table = pairs(graph_a, graph_b)
    arrays = check_inputs(graph_a, prepare_images(graph_a, images) if images is not None else inputs)
    if other is not None:
        check_inputs(graph_b, arrays)
    report = Report(a.name, (backend_a, backend_b), other=None if other is None else b.name)
    report.ops = [OpDiff(i, kind, graph_a.tensors[ta].name, ta) for i, kind, ta, _ in table]
    step = int(chunk or min(chunk_size(graph_a), chunk_size(graph_b)))
    sources = []
    try:
        sources.append(open_source(backend_a, graph_a, a.data, fc_rescale))
        sources.append(open_source(backend_b, graph_b, b.data, fc_rescale))
        total = len(arrays[0])
        for start in range(0, total, step):
            part = [np.ascontiguousarray(x[start:start + step]) for x in arrays]
            n = len(part[0])
            compare_chunk(report, table, sources[0].tensors(part), sources[1].tensors(part), start, n)
            report.images += n
            if progress is not None:
                progress(report.images)
            if stop_at_first and report.first is not None:
                break
    finally:
        for source in sources:
            source.close()
    return report


def first_divergence(model, backend_a: str, backend_b: str, images=None, *, inputs=None,
                     fc_rescale: str = "float") -> Divergence | None:  # fmt: skip
    """Where `backend_a` and `backend_b` first part on `model` (first image, then first op), or None.

    `model`: a .tflite path or its bytes. `images`: uint8 dataset images, or
    `inputs`: the model's input arrays. Stops after the first chunk that differs.
    """
    return compare(model, backend_a, backend_b, images, inputs=inputs, fc_rescale=fc_rescale,
                   stop_at_first=True).first
