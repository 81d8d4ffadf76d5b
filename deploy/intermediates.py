"""Every op's output tensor from one back end, for `edgecnn compare`.

`open_source(name, graph, data)` returns an object whose `tensors(inputs)`
maps graph tensor indices (every op output of `graph`) to their values for a
batch of N images, shaped (N, ...), one row per image. How each back end gives
its intermediates:

- numba: `Runtime.run_intermediates`;
- litert, litert-ref, litert-builtin: LiteRT on the file's own bytes with
  `experimental_preserve_all_tensors` (with XNNPACK too: its values equal a
  run of a copy whose outputs are every tensor), matched by tensor name;
- tflite-runtime[-ref|-builtin]: the same in tflite-runtime's own
  interpreter (often a separate venv, numpy < 2), run as a subprocess
  (`tflrt_intermediates.py`) that exchanges .npz files, never pickles;
- onnxruntime and c: the exporters on a copy of the graph whose outputs are
  every op output; the C file is built with gcc and run through its
  stdin/stdout main, one record per image.

A tensor a back end does not give (LiteRT frees or renames a few) is left out
of the dict; the comparison reports it as not compared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgecnn.deploy.backends import ONNX_EXTRA, TRAIN_EXTRA, _missing
from edgecnn.errors import BackendUnavailableError, EdgecnnError
from edgecnn.int8.graph import Int8Graph

LITERT_RESOLVERS = {"litert": "default", "litert-ref": "ref", "litert-builtin": "builtin"}
TFLRT_RESOLVERS = {"tflite-runtime": "default", "tflite-runtime-ref": "ref", "tflite-runtime-builtin": "builtin"}
SOURCES = ("numba", *LITERT_RESOLVERS, *TFLRT_RESOLVERS, "onnxruntime", "c")
TFLRT_ENV = "EDGECNN_TFLRT_PYTHON"
TFLRT_WORKER = Path(__file__).with_name("tflrt_intermediates.py")
C_FLAGS = ["-std=c99", "-O2"]


def op_outputs(graph: Int8Graph) -> list[int]:
    """Every tensor an op computes, in execution order, once each."""
    return list(dict.fromkeys(t for op in graph.ops for t in op.outputs))


def every_tensor_out(graph: Int8Graph) -> Int8Graph:
    """A shallow copy of `graph` whose outputs are every op output (the exporters then expose them all).

    Tensors with several rows per image (SPACE_TO_BATCH_ND's blocks) stay
    inside: the exporters' outputs have one row per image.
    """
    outs = [t for t in op_outputs(graph) if graph.tensors[t].shape[:1] == (1,) or t in graph.outputs]
    return dataclasses.replace(graph, outputs=outs)


def per_image(array: np.ndarray, images: int) -> np.ndarray:
    """(N, K): one row per image, for tensors whose rows are image-major (edgecnn's runtime, C, ONNX)."""
    return np.asarray(array).reshape(images, -1)


def block_major(graph: Int8Graph) -> set[int]:
    """Tensors whose rows TFLite orders block by block: SPACE_TO_BATCH_ND's output (row block * N + image)
    and what ops compute from it, up to the BATCH_TO_SPACE_ND that puts the images back together."""
    found: set[int] = set()
    for op in graph.ops:
        if op.kind == "SPACE_TO_BATCH_ND" or (op.kind != "BATCH_TO_SPACE_ND" and any(t in found for t in op.inputs)):
            found.update(op.outputs)
    return found


def per_image_block_major(array: np.ndarray, images: int) -> np.ndarray:
    """(N, K) from a block-major tensor (see block_major): its r rows per image regrouped by image."""
    array = np.asarray(array)
    rows = array.shape[0] // images if array.ndim else 1
    if rows <= 1:
        return array.reshape(images, -1)
    return np.ascontiguousarray(array.reshape(rows, images, -1).transpose(1, 0, 2)).reshape(images, -1)


def overwritten(graph: Int8Graph, address: dict[int, int]) -> set[int]:
    """Op outputs whose buffer a later op output reuses (an in-place op): what is read there is not theirs.

    `address`: graph tensor -> its buffer's address after invoke. A RESHAPE
    sharing its input's buffer holds the same bytes, so that input stays.
    """
    producer = {t: op for op in graph.ops for t in op.outputs}
    holders: dict[int, list[int]] = {}  # address -> the tensors whose values it holds now
    dropped = set()
    for t in op_outputs(graph):
        a = address.get(t)
        if not a:
            continue
        earlier = holders.get(a, [])
        if earlier and producer[t].kind == "RESHAPE" and producer[t].inputs[:1] == earlier[-1:]:
            earlier.append(t)
            continue
        dropped.update(earlier)
        holders[a] = [t]
    return dropped


def tflite_rows(graph: Int8Graph):
    """A function (tensor, array, N) -> (N, K) for tensors as TFLite lays them out."""
    blocks = block_major(graph)
    return lambda t, array, n: per_image_block_major(array, n) if t in blocks else per_image(array, n)


def open_source(name: str, graph: Int8Graph, data: bytes | None, fc_rescale: str = "float"):
    """The intermediates of back end `name` for `graph` (`data`: the .tflite bytes LiteRT and tflite-runtime run)."""
    if name not in SOURCES:
        raise EdgecnnError(f"unknown backend {name!r}; choose from {', '.join(SOURCES)}")
    if name == "numba":
        return NumbaSource(graph, fc_rescale)
    if name in LITERT_RESOLVERS:
        return LiteRTSource(graph, data, LITERT_RESOLVERS[name])
    if name in TFLRT_RESOLVERS:
        return TFLiteRuntimeSource(graph, data, TFLRT_RESOLVERS[name])
    if name == "onnxruntime":
        return OnnxSource(graph, fc_rescale)
    return CSource(graph, fc_rescale)


def unavailable(exc: ModuleNotFoundError, packages: tuple[str, ...], message: str):
    """Raise BackendUnavailableError(message) when `exc` is about one of the optional `packages`, else exc."""
    if not _missing(exc, *packages):
        raise exc
    raise BackendUnavailableError(message) from None


class NumbaSource:
    name = "numba"

    def __init__(self, graph: Int8Graph, fc_rescale: str):
        try:
            from edgecnn.deploy.runtime import Runtime
        except ModuleNotFoundError as exc:
            unavailable(exc, ("numba", "llvmlite"), f"the numba backend needs numba: {TRAIN_EXTRA}")
        self.graph = graph
        self.runtime = Runtime(graph, fc_rescale=fc_rescale, chunk_size=1 << 30)

    def tensors(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        n = inputs[0].shape[0]
        return {t: per_image(v, n) for t, v in self.runtime.run_intermediates(inputs).items()}

    def close(self):
        pass


def match_by_name(graph: Int8Graph, details: list[tuple[int, str, tuple, str]]) -> dict[int, int]:
    """Graph tensor -> the interpreter's tensor index, by name (the k-th of a repeated name to the k-th).

    `details` are (index, name, shape, dtype) in the file's tensor order. A
    pair whose dtype differs is dropped; sizes are checked per batch by the
    comparison (a dynamic tensor's shape is known only after invoke).
    """
    by_name: dict[str, list] = {}
    for d in details:
        by_name.setdefault(d[1], []).append(d)
    seen: dict[str, int] = {}
    found = {}
    wanted = set(op_outputs(graph))
    for t, tensor in enumerate(graph.tensors):
        k = seen.get(tensor.name, 0)
        seen[tensor.name] = k + 1
        candidates = by_name.get(tensor.name, [])
        if t not in wanted or k >= len(candidates):
            continue
        index, _, _, dtype = candidates[k]
        if np.dtype(dtype) == np.dtype(tensor.dtype):
            found[t] = index
    return found


class LiteRTSource:
    """LiteRT (ai-edge-litert, else tflite_runtime in this interpreter) with every tensor preserved."""

    def __init__(self, graph: Int8Graph, data: bytes, resolver: str):
        from edgecnn.deploy.litert import LiteRTRunner

        self.name = {v: k for k, v in LITERT_RESOLVERS.items()}[resolver]
        self.graph = graph
        self.runner = LiteRTRunner(data, resolver=resolver, preserve_all_tensors=True)
        interpreter = self.runner.interpreter
        details = [(d["index"], d["name"], tuple(int(v) for v in d["shape"]), d["dtype"])
                   for d in interpreter.get_tensor_details()]  # fmt: skip
        self.index_of = match_by_name(graph, details)
        self.rows = tflite_rows(graph)

    def tensors(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        n = inputs[0].shape[0]
        self.runner.run(inputs)
        interpreter = self.runner.interpreter
        got, address = {}, {}
        for t, index in self.index_of.items():
            try:
                got[t] = self.rows(t, interpreter.get_tensor(index), n)
                address[t] = int(interpreter.tensor(index)().__array_interface__["data"][0])
            except ValueError:  # freed or never allocated (e.g. inside a delegate)
                continue
        for t in overwritten(self.graph, address):
            got.pop(t)
        return got

    def close(self):
        pass


def tflrt_python() -> str:
    """The python that has tflite-runtime: $EDGECNN_TFLRT_PYTHON, else this one when it imports tflite_runtime."""
    path = os.environ.get(TFLRT_ENV)
    if path:
        if not os.access(path, os.X_OK):
            raise BackendUnavailableError(f"${TFLRT_ENV}={path} is not an executable python")
        return path
    import importlib.util

    if importlib.util.find_spec("tflite_runtime") is not None:
        return sys.executable
    raise BackendUnavailableError(f"tflite-runtime is not installed here: pip install tflite-runtime, or set "
                                  f"${TFLRT_ENV} to a python that has it")  # fmt: skip


class TFLiteRuntimeSource:
    """tflite-runtime's own interpreter in a worker process; batches go and come back as .npz files."""

    def __init__(self, graph: Int8Graph, data: bytes, resolver: str):
        self.name = {v: k for k, v in TFLRT_RESOLVERS.items()}[resolver]
        self.graph = graph
        self.dir = tempfile.TemporaryDirectory(prefix="edgecnn-compare-")
        model = Path(self.dir.name) / "model.tflite"
        model.write_bytes(data)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.proc = subprocess.Popen([tflrt_python(), str(TFLRT_WORKER), str(model), resolver], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)  # fmt: skip
        header = self._reply()
        self.version = header.get("tflite_runtime")
        details = [(d[0], d[1], tuple(d[2]), d[3]) for d in header["tensors"]]
        self.index_of = match_by_name(graph, details)
        self.rows = tflite_rows(graph)
        self.jobs = 0

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        try:
            reply = json.loads(line)
        except ValueError:
            self.close()
            raise BackendUnavailableError(f"the tflite-runtime worker stopped (exit {self.proc.poll()})") from None
        if "error" in reply:
            raise EdgecnnError(f"tflite-runtime: {reply['error']}")
        return reply

    def tensors(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        n = inputs[0].shape[0]
        self.jobs += 1
        src, dst = (Path(self.dir.name) / f"{kind}{self.jobs}.npz" for kind in ("in", "out"))
        np.savez(src, **{f"input{k}": np.ascontiguousarray(x) for k, x in enumerate(inputs)})
        wanted = sorted(set(self.index_of.values()))
        self.proc.stdin.write(json.dumps({"inputs": str(src), "out": str(dst), "tensors": wanted}) + "\n")
        self.proc.stdin.flush()
        addresses = {int(i): a for i, a in self._reply()["addresses"].items()}
        try:
            with np.load(dst, allow_pickle=False) as z:
                values = {int(k[1:]): z[k] for k in z.files}
        finally:
            src.unlink(missing_ok=True)
            dst.unlink(missing_ok=True)
        got = {t: self.rows(t, values[i], n) for t, i in self.index_of.items() if i in values}
        for t in overwritten(self.graph, {t: addresses[i] for t, i in self.index_of.items() if i in addresses}):
            got.pop(t, None)
        return got

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()


class OnnxSource:
    """onnxruntime on the ONNX export of a copy whose outputs are every op output."""

    name = "onnxruntime"

    def __init__(self, graph: Int8Graph, fc_rescale: str):
        try:
            import onnxruntime as ort

            from edgecnn.deploy.export.onnx import to_bytes
        except ModuleNotFoundError as exc:
            unavailable(exc, ("onnx", "onnxruntime"),
                        f"the onnxruntime backend needs onnx and onnxruntime: {ONNX_EXTRA}")
        self.graph = every_tensor_out(graph)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(to_bytes(self.graph, fc_rescale), options,
                                            providers=["CPUExecutionProvider"])  # fmt: skip
        self.input_names = [i.name for i in self.session.get_inputs()]

    def tensors(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        n = inputs[0].shape[0]
        outs = self.session.run(None, dict(zip(self.input_names, inputs)))
        return {t: per_image(v, n) for t, v in zip(self.graph.outputs, outs)}

    def close(self):
        pass


class CSource:
    """The C export of a copy whose outputs are every op output, built with gcc; one record per image."""

    name = "c"

    def __init__(self, graph: Int8Graph, fc_rescale: str):
        from edgecnn.deploy.export.c import to_c

        gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("gcc")
        if gcc is None:
            raise BackendUnavailableError("the c backend needs gcc (or $CC) on the PATH")
        self.graph = every_tensor_out(graph)
        self.dir = tempfile.TemporaryDirectory(prefix="edgecnn-compare-")
        source = Path(self.dir.name) / "compare_model.c"
        source.write_text(to_c(self.graph, name="compare_model", fc_rescale=fc_rescale))
        self.exe = Path(self.dir.name) / "compare_model"
        p = subprocess.run([gcc, *C_FLAGS, "-DEDGECNN_MAIN", str(source), "-o", str(self.exe), "-lm"],
                           capture_output=True, text=True)  # fmt: skip
        if p.returncode != 0:
            first = next((s for s in p.stderr.splitlines() if "error" in s), p.stderr.strip()[:200])
            raise EdgecnnError(f"gcc could not build the C export: {first}")
        tensors = [self.graph.tensors[t] for t in self.graph.outputs]
        self.sizes = [int(np.prod(t.shape, dtype=np.int64)) for t in tensors]  # one image: batch rows included
        self.dtypes = [np.dtype(t.dtype) for t in tensors]

    def tensors(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        n = inputs[0].shape[0]
        records = b"".join(x[k].tobytes() for k in range(n) for x in inputs)
        p = subprocess.run([str(self.exe)], input=records, capture_output=True)
        if p.returncode != 0:
            raise EdgecnnError(f"the C export failed (exit {p.returncode}): {p.stderr.decode(errors='replace')[:200]}")
        record = sum(s * d.itemsize for s, d in zip(self.sizes, self.dtypes))
        if len(p.stdout) != n * record:
            raise EdgecnnError(f"the C export wrote {len(p.stdout)} bytes, expected {n * record}")
        rows = np.frombuffer(p.stdout, np.uint8).reshape(n, record)
        got, offset = {}, 0
        for t, size, dtype in zip(self.graph.outputs, self.sizes, self.dtypes):
            got[t] = np.ascontiguousarray(rows[:, offset:offset + size * dtype.itemsize]).view(dtype)
            offset += size * dtype.itemsize
        return got

    def close(self):
        self.dir.cleanup()
