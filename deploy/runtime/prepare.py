"""Prepare a whole graph: each op's registry prepare step, in execution order, once.

Everything float happens in the op modules' prepare steps (multipliers from
float32 scales in float64, activation ranges, lookup tables), with the
checks LiteRT makes when it loads a model, so a graph that LiteRT refuses is
refused here too, with a message that names the op and the problem. The
runtime, the naive interpreter and both exporters start from this list.

Activation tensors carry a batch of 1 in the graph; at run time tensor t
holds N images as an array of shape (N * t.shape[0], *t.shape[1:]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgecnn.deploy.ops import lookup
from edgecnn.deploy.ops.base import OpDef, PrepareContext
from edgecnn.deploy.ops.fully_connected import FC_RESCALE_MODES
from edgecnn.errors import ModelError, ShapeError, UnsupportedOpError
from edgecnn.int8.graph import Int8Graph


@dataclass(frozen=True)
class PreparedOp:
    """One kernel call: kernel(params, *(shape, data) per input, *constants, *(shape, data) per output)."""

    index: int
    kind: str
    opdef: OpDef
    params: Any
    inputs: tuple[int, ...]  # tensor indices read at run time
    constants: tuple  # ((shape, flat data), ...) for filter and bias, in TFLite's order
    outputs: tuple[int, ...]  # tensor indices written

    @property
    def input(self) -> int:
        """The first input (the activation of single-input ops)."""
        return self.inputs[0]

    @property
    def output(self) -> int:
        return self.outputs[0]

    @property
    def kernel(self):
        return self.opdef.numba_kernel()


def prepare_op(graph: Int8Graph, index: int, fc_rescale: str = "float") -> PreparedOp:
    """Validate one op as LiteRT does at load time and build its kernel call."""
    op = graph.ops[index]
    opdef = lookup(op.kind)
    if opdef.prepare is None:
        raise UnsupportedOpError(f"op {index} ({op.kind}): its value is only known at run time "
                                 f"(edgecnn folds {op.kind} only when its result is a constant)")  # fmt: skip
    lo, hi = opdef.input_range()
    if not lo <= len(op.inputs) <= hi:
        raise ModelError(f"op {index} ({op.kind}): {len(op.inputs)} inputs; {op.kind} takes {lo} to {hi}")
    prepared = opdef.prepare(PrepareContext(graph, index, op, opdef, fc_rescale))
    outputs = prepared.outputs or tuple(op.outputs)
    return PreparedOp(index, op.kind, opdef, prepared.params, tuple(prepared.inputs), tuple(prepared.constants),
                      outputs)  # fmt: skip


def prepare_graph(graph: Int8Graph, fc_rescale: str = "float") -> list[PreparedOp]:
    """Every op in execution order; the graph must be a valid DAG whose inputs and outputs have batch 1."""
    if fc_rescale not in FC_RESCALE_MODES:
        raise ValueError(f"fc_rescale must be one of {sorted(FC_RESCALE_MODES)}, got {fc_rescale!r}")
    graph.validate()
    for t in graph.inputs + graph.outputs:
        tensor = graph.tensors[t]
        if tensor.shape[:1] != (1,):
            raise ShapeError(f"graph input/output {tensor.name} must have batch 1, has shape {tensor.shape}")
    return [prepare_op(graph, index, fc_rescale) for index in range(len(graph.ops))]
