"""GATHER: a fold-only op. Its rule, the converter's Dense-on-4-D shape chain it folds, and hostile chains.

GATHER is never run: the reader evaluates it (with SHAPE, REDUCE_PROD, PACK,
CONCATENATION) where its inputs are static shape values. The chain test
builds the file the TensorFlow converter writes for Keras' Dense on an
(N, H, W, C) tensor, checks what the reader makes of it, and runs it against
LiteRT's BUILTIN_REF; the hostile test reads 3,000 chained shape ops.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import tflite
from tflite_models import raw_model

from edgecnn.deploy.litert import LiteRTRunner
from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.ops.gather import fold
from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.runtime.prepare import prepare_graph
from edgecnn.deploy.tflite import read_tflite
from edgecnn.errors import UnsupportedOpError

I8, I32 = tflite.TensorType.INT8, tflite.TensorType.INT32
OPTS0 = {"axis": 0, "batch_dims": 0}


# ---------------------------------------------------------------- the rule


def test_fold_picks_dimensions_like_numpy_take():
    shape = np.array([2, 6, 5, 8])
    assert fold([shape, np.array([0, 1, 2])], OPTS0)[0].tolist() == [2, 6, 5]
    assert fold([shape, np.array([3])], OPTS0)[0].tolist() == [8]
    assert fold([shape, np.array(1)], OPTS0)[0].tolist() == 6  # scalar index -> scalar
    assert fold([shape, np.array([3, 3, 0])], OPTS0)[0].tolist() == [8, 8, 2]  # repeats allowed
    m = np.arange(12).reshape(3, 4)
    assert fold([m, np.array([[1], [3]])], {"axis": -1, "batch_dims": 0})[0].shape == (3, 2, 1)
    assert np.array_equal(fold([m, np.array([2, 0])], OPTS0)[0], m[[2, 0]])


@pytest.mark.parametrize("values, options", [
    ([np.array([2, 6]), np.array([2])], OPTS0),  # index past the end
    ([np.array([2, 6]), np.array([-1])], OPTS0),  # negative index: the kernel refuses it
    ([np.array([2, 6]), np.array([0])], {"axis": 1, "batch_dims": 0}),  # axis outside the rank
    ([np.array(7), np.array([0])], OPTS0),  # a scalar has nothing to gather
    ([np.ones((2, 2), int), np.zeros((2, 1), int)], {"axis": 1, "batch_dims": 1}),
])  # fmt: skip
def test_fold_refuses_what_it_cannot_fold(values, options):
    with pytest.raises(UnsupportedOpError, match="GATHER"):
        fold(values, options)


def test_registration_is_fold_only_with_a_decoder():
    opdef = REGISTRY["GATHER"]
    assert opdef.prepare is None and opdef.fold is fold
    assert opdef.decode(None) == OPTS0  # TFLite's parser defaults when the table is absent


# ---------------------------------------------------------------- the converter's chain


def _options(kind, **fields):
    def fn(b):
        getattr(tflite, f"{kind}Start")(b)
        for name, value in fields.items():
            getattr(tflite, f"{kind}Add{name}")(b, value)
        return getattr(tflite, f"{kind}End")(b)

    return getattr(tflite.BuiltinOptions, kind), fn


def dense_on_4d_file(rng, h=6, w=5, c=8, units=6) -> bytes:
    """What TF 2.20 writes for Keras Dense(units) on an (N, h, w, c) int8 tensor (bias folded into the FC).

    x -> SHAPE -> GATHER[0,1,2] -> REDUCE_PROD -> PACK(rows, c) -> RESHAPE (file shape (1, 1), signature
    (-1, -1)) -> FULLY_CONNECTED (file shape (1, units)) -> RESHAPE to CONCATENATION(GATHER[0,1,2], [units]).
    """
    tensors, ops = [], []

    def add(name, shape, ttype=I8, data=None, signature=None, scale=None, zp=None):
        if ttype == I8 and scale is None and data is None:
            scale, zp = [float(rng.uniform(0.01, 0.05))], [int(rng.integers(-20, 20))]
        tensors.append({"name": name, "shape": shape, "type": ttype, "data": data, "signature": signature,
                        "scale": scale, "zero_point": zp})  # fmt: skip
        return len(tensors) - 1

    def const32(name, values):
        values = np.asarray(values, "<i4")
        return add(name, values.shape, I32, values.tobytes())

    x = add("x", (1, h, w, c), signature=(-1, h, w, c))
    shape = add("Tensordot/Shape", (4,), I32)
    free = add("Tensordot/GatherV2", (3,), I32)
    rows = add("Tensordot/Prod", (), I32)
    last = add("Tensordot/GatherV2_1", (1,), I32)
    depth = add("Tensordot/Prod_1", (), I32)
    stack = add("Tensordot/stack", (2,), I32)
    flat = add("Tensordot/Reshape", (1, 1), signature=(-1, -1), scale=tensors[x]["scale"], zp=tensors[x]["zero_point"])
    weights = add("kernel", (units, c), I8, rng.integers(-127, 128, (units, c), dtype=np.int8).tobytes(),
                  scale=[0.02], zp=[0])  # fmt: skip
    bias = add("bias", (units,), I32, rng.integers(-500, 500, units).astype("<i4").tobytes(),
               scale=[0.02 * tensors[x]["scale"][0]], zp=[0])  # fmt: skip
    matmul = add("Tensordot/MatMul", (1, units), signature=(-1, units))
    out_shape = add("Tensordot/concat_1", (4,), I32)
    y = add("Tensordot", (1, h, w, units), signature=(-1, h, w, units))
    ops += [
        {"op": "SHAPE", "inputs": [x], "outputs": [shape], "options": _options("ShapeOptions", OutType=I32)},
        {"op": "GATHER", "inputs": [shape, const32("free_axes", [0, 1, 2])], "outputs": [free],
         "options": _options("GatherOptions", Axis=0)},
        {"op": "REDUCE_PROD", "inputs": [free, const32("axis0", [0])], "outputs": [rows],
         "options": _options("ReducerOptions", KeepDims=False)},
        {"op": "GATHER", "inputs": [shape, const32("contracted", [3])], "outputs": [last],
         "options": _options("GatherOptions", Axis=0)},
        {"op": "REDUCE_PROD", "inputs": [last, const32("axis0b", [0])], "outputs": [depth],
         "options": _options("ReducerOptions", KeepDims=False)},
        {"op": "PACK", "inputs": [rows, depth], "outputs": [stack],
         "options": _options("PackOptions", ValuesCount=2, Axis=0)},
        {"op": "RESHAPE", "inputs": [x, stack], "outputs": [flat]},
        {"op": "FULLY_CONNECTED", "version": 4, "inputs": [flat, weights, bias], "outputs": [matmul],
         "options": _options("FullyConnectedOptions")},
        {"op": "CONCATENATION", "inputs": [free, const32("units", [units])], "outputs": [out_shape],
         "options": _options("ConcatenationOptions", Axis=0)},
        {"op": "RESHAPE", "inputs": [matmul, out_shape], "outputs": [y]},
    ]  # fmt: skip
    return raw_model(tensors, ops, [x], [y])


def test_dense_on_4d_chain_folds_and_runs_like_litert(rng):
    data = dense_on_4d_file(rng)
    graph = read_tflite(data)
    assert [op.kind for op in graph.ops] == ["RESHAPE", "FULLY_CONNECTED", "RESHAPE"]
    assert [op.options["new_shape"] for op in graph.ops if op.kind == "RESHAPE"] == [[-1, 8], [-1, 6, 5, 6]]
    # The converter's (1, 1) and (1, 6) placeholders become the batch-1 shapes: 30 rows of 8, then of 6.
    shapes = [graph.tensors[op.outputs[0]].shape for op in graph.ops]
    assert shapes == [(30, 8), (30, 6), (1, 6, 5, 6)]
    x = rng.integers(-128, 128, (5, 6, 5, 8), dtype=np.int8)
    x[0], x[1] = -128, 127
    got, want = Runtime(graph).run(x), LiteRTRunner(data, "ref").run(x)
    assert got.shape == want.shape == (5, 6, 5, 6)
    assert np.array_equal(got, want)


def test_gather_of_run_time_values_is_refused_by_name():
    # An embedding lookup gathers activations: not a shape computation, so it stays and the runtime names it.
    tensors = [
        {"name": "table", "shape": (1, 4), "type": I8, "scale": [0.1], "zero_point": [0]},
        {"name": "idx", "shape": (2,), "type": I32, "data": np.array([0, 0], "<i4").tobytes()},
        {"name": "out", "shape": (1, 2), "type": I8, "scale": [0.1], "zero_point": [0]},
    ]
    ops = [{"op": "GATHER", "inputs": [0, 1], "outputs": [2], "options": _options("GatherOptions", Axis=1)}]
    graph = read_tflite(raw_model(tensors, ops, [0], [2]))
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(GATHER\).*only known at run time"):
        prepare_graph(graph)


# ---------------------------------------------------------------- hostile chains


def chained_shape_ops(length: int) -> bytes:
    """x -> SHAPE -> `length` identity GATHERs (and REDUCE_PROD/PACK every tenth step) -> RESHAPE(x)."""
    tensors = [
        {"name": "x", "shape": (1, 4, 3), "type": I8, "scale": [0.1], "zero_point": [0], "signature": (-1, 4, 3)},
        {"name": "y", "shape": (1, 12), "type": I8, "scale": [0.1], "zero_point": [0], "signature": (-1, 12)},
        {"name": "all", "shape": (3,), "type": I32, "data": np.array([0, 1, 2], "<i4").tobytes()},
        {"name": "rest", "shape": (2,), "type": I32, "data": np.array([1, 2], "<i4").tobytes()},
        {"name": "first", "shape": (1,), "type": I32, "data": np.array([0], "<i4").tobytes()},
        {"name": "axis0", "shape": (1,), "type": I32, "data": np.array([0], "<i4").tobytes()},
        {"name": "s0", "shape": (3,), "type": I32},
    ]
    gather = _options("GatherOptions", Axis=0)
    ops = [{"op": "SHAPE", "inputs": [0], "outputs": [6], "options": _options("ShapeOptions", OutType=I32)}]
    current = 6
    for k in range(length):
        tensors.append({"name": f"s{k + 1}", "shape": (3,), "type": I32})
        ops.append({"op": "GATHER", "inputs": [current, 2], "outputs": [len(tensors) - 1], "options": gather})
        current = len(tensors) - 1
    # [batch, 4 * 3] from the end of the chain
    tensors += [{"name": "batch", "shape": (1,), "type": I32}, {"name": "dims", "shape": (2,), "type": I32},
                {"name": "prod", "shape": (), "type": I32}, {"name": "prod1", "shape": (1,), "type": I32},
                {"name": "new_shape", "shape": (2,), "type": I32}]  # fmt: skip
    batch, dims, prod, prod1, new_shape = range(len(tensors) - 5, len(tensors))
    ops += [
        {"op": "GATHER", "inputs": [current, 4], "outputs": [batch], "options": gather},
        {"op": "GATHER", "inputs": [current, 3], "outputs": [dims], "options": gather},
        {"op": "REDUCE_PROD", "inputs": [dims, 5], "outputs": [prod], "options": _options("ReducerOptions")},
        {"op": "PACK", "inputs": [prod], "outputs": [prod1], "options": _options("PackOptions", ValuesCount=1)},
        {"op": "CONCATENATION", "inputs": [batch, prod1], "outputs": [new_shape],
         "options": _options("ConcatenationOptions", Axis=0)},
        {"op": "RESHAPE", "inputs": [0, new_shape], "outputs": [1]},
    ]  # fmt: skip
    return raw_model(tensors, ops, [0], [1])


def test_three_thousand_chained_shape_ops_read_without_recursion():
    data = chained_shape_ops(3000)  # thrice Python's default recursion limit
    start = time.perf_counter()
    graph = read_tflite(data)
    elapsed = time.perf_counter() - start
    assert [op.kind for op in graph.ops] == ["RESHAPE"]
    assert graph.ops[0].options == {"new_shape": [-1, 12]}
    assert len(graph.tensors) == 2  # every shape tensor dropped
    assert elapsed < 10, f"{elapsed:.1f}s to fold 3,006 shape ops: folding is not linear"
    x = np.arange(-12, 12, dtype=np.int8).reshape(2, 4, 3)
    assert np.array_equal(Runtime(graph).run(x), x.reshape(2, 12))
