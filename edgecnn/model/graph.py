"""The float model as a graph: named nodes, each a layer applied to the outputs of earlier nodes.

A node reads the graph input (named "input") or other nodes' outputs; Add and
Concatenate read two or more. Nodes are kept in a topological order (the order
given, where that is already one), which is the order `forward` runs them, the
reverse of `backward`, and the order a quantizer walks them. Where a node's output
feeds several nodes, `backward` sums the gradients arriving from each.

`Sequential` is the chain special case of this class.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgecnn.errors import ModelError, ShapeError
from edgecnn.model.layers import Layer, layer_from_config

INPUT = "input"


class Node(NamedTuple):
    name: str
    layer: Layer
    inputs: tuple[str, ...]  # names of nodes (or INPUT) whose outputs this layer reads, in order


def _topological(nodes: list[Node]) -> list[Node]:
    """Kahn's algorithm, taking ready nodes in their given order, so a sorted list stays as it is."""
    by_name = {}
    for node in nodes:
        if not isinstance(node.name, str) or not node.name or node.name == INPUT:
            raise ModelError(f"bad node name {node.name!r}: names are non-empty strings other than {INPUT!r}")
        if node.name in by_name:
            raise ModelError(f"two nodes are named {node.name!r}")
        by_name[node.name] = node
    for node in nodes:
        for src in node.inputs:
            if src != INPUT and src not in by_name:
                raise ModelError(f"node {node.name!r} reads {src!r}, which is not a node of the graph")
    done, order = {INPUT}, []
    pending = list(nodes)
    while pending:
        ready = [n for n in pending if all(s in done for s in n.inputs)]
        if not ready:
            raise ModelError(f"the graph has a cycle through {', '.join(n.name for n in pending)}")
        for n in ready:
            done.add(n.name)
            order.append(n)
        pending = [n for n in pending if n.name not in done]
    return order


def _sum(a, b):
    """a + b in a new array; large float ones over workers.py's threads (a training step's
    shortcut gradients are memory-bound passes of megabytes)."""
    if a.shape != b.shape or a.dtype != b.dtype or a.dtype.kind != "f" or not (a.flags.c_contiguous and
                                                                           b.flags.c_contiguous):
        return a + b
    from edgecnn.reference.workers import over_spans

    out = np.empty_like(a)
    a_flat, b_flat, out_flat = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    over_spans(out.size, lambda i, j: np.add(a_flat[i:j], b_flat[i:j], out=out_flat[i:j]))
    return out


class Graph:
    """Layers wired as a DAG from one NHWC input to one output; `forward` returns the output (logits)."""

    def __init__(self, nodes, input_shape, output: str | None = None, arch: str = "custom", labels=None):
        nodes = [n if isinstance(n, Node) else Node(n[0], n[1], tuple(n[2])) for n in nodes]
        if not nodes:
            raise ModelError("a model needs at least one layer")
        for node in nodes:
            if node.layer.name is None:
                node.layer.name = node.name
            if node.layer.name != node.name:
                raise ModelError(f"node {node.name!r} holds layer {node.layer.name!r}; the names must agree")
            arity = node.layer.arity
            if (arity == 1 and len(node.inputs) != 1) or (arity is None and len(node.inputs) < 2):
                want = "one input" if arity == 1 else "two or more inputs"
                raise ModelError(f"node {node.name!r} ({node.layer.kind}) needs {want}, got {len(node.inputs)}")
        self.nodes: list[Node] = _topological(nodes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output = output if output is not None else self.nodes[-1].name
        if self.output not in {n.name for n in self.nodes}:
            raise ModelError(f"the output {self.output!r} is not a node of the graph")
        self.arch = arch
        self.labels = list(labels) if labels is not None else None
        self._consumers = {INPUT: 0, **{n.name: 0 for n in self.nodes}}
        for n in self.nodes:
            for s in n.inputs:
                self._consumers[s] += 1
        self._build_shapes()
        if self.labels is None:
            self.labels = [str(i) for i in range(self.output_shape[0] if len(self.output_shape) == 1 else 10)]

    # -- structure ----------------------------------------------------------------
    def _build_shapes(self, rng=None, dtype=np.float32):
        self.shapes = {INPUT: self.input_shape}
        for n in self.nodes:
            ins = [self.shapes[s] for s in n.inputs]
            self.shapes[n.name] = n.layer.build(ins[0] if n.layer.arity == 1 else ins, rng, dtype)
        self.output_shape = self.shapes[self.output]

    @property
    def layers(self) -> list[Layer]:
        """Every node's layer, in topological order."""
        return [n.layer for n in self.nodes]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def consumers(self, name: str) -> list[Node]:
        """The nodes that read `name`'s output, in topological order."""
        return [n for n in self.nodes if name in n.inputs]

    def is_chain(self) -> bool:
        """True if each node reads only the one before it (what a Sequential is)."""
        prev = INPUT
        for n in self.nodes:
            if n.inputs != (prev,):
                return False
            prev = n.name
        return self.output == prev

    # -- parameters -----------------------------------------------------------------
    def init_params(self, seed: int = 0, dtype=np.float32):
        """Fresh parameters from one generator, drawn node by node in topological order."""
        self._build_shapes(np.random.default_rng(seed), dtype)
        return self

    def named_params(self):
        """Yield (key, array) with keys like 'conv1/w', in a fixed order (the optimizer's)."""
        for layer in self.layers:
            for k in sorted(layer.params):
                yield f"{layer.name}/{k}", layer.params[k]

    def named_grads(self):
        for layer in self.layers:
            for k in sorted(layer.params):
                yield f"{layer.name}/{k}", layer.grads[k]

    def named_buffers(self):
        """Yield (key, array) of non-trained state such as 'bn1/mean', in a fixed order."""
        for layer in self.layers:
            for k in sorted(layer.buffers):
                yield f"{layer.name}/{k}", layer.buffers[k]

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.named_params())

    def load_state_dict(self, state: dict[str, np.ndarray], buffers: dict[str, np.ndarray] | None = None) -> None:
        """Copy in parameters (and buffers, if given), checking every name and shape first."""
        for store, source, what in (("params", state, "array"), ("buffers", buffers, "buffer")):
            if source is None:
                continue
            for layer in self.layers:
                for k, v in getattr(layer, store).items():
                    key = f"{layer.name}/{k}"
                    if key not in source:
                        raise ShapeError(f"checkpoint has no {what} {key}")
                    if source[key].shape != v.shape:
                        raise ShapeError(f"{key}: checkpoint shape {source[key].shape} != model shape {v.shape}")
                    getattr(layer, store)[k] = np.array(source[key], dtype=v.dtype)

    def astype(self, dtype):
        for layer in self.layers:
            layer.params = {k: v.astype(dtype) for k, v in layer.params.items()}
            layer.buffers = {k: v.astype(dtype) for k, v in layer.buffers.items()}
        return self

    @property
    def total_params(self) -> int:
        return sum(layer.param_count() for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)

    def _dtype(self):
        for layer in self.layers:
            for v in layer.params.values():
                return v.dtype
        return np.float32

    # -- math -------------------------------------------------------------------------
    def check_input(self, x: np.ndarray) -> None:
        if x.ndim != 1 + len(self.input_shape) or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(f"input shape {tuple(x.shape)} does not match the model's "
                             f"(N, {', '.join(map(str, self.input_shape))})")

    def _run(self, x, train: bool, keep_all: bool):
        self.check_input(x)
        values = {INPUT: x}
        left = dict(self._consumers)
        for n in self.nodes:
            ins = [values[s] for s in n.inputs]
            values[n.name] = n.layer.forward(ins[0] if n.layer.arity == 1 else ins, train)
            if not keep_all:  # drop what no later node reads (the layers' caches keep what backward needs)
                for s in n.inputs:
                    left[s] -= 1
                    if left[s] == 0 and s != self.output:
                        del values[s]
        return values

    def forward(self, x, train: bool = False):
        """The output for an NHWC batch. train=True: BatchNorm uses (and updates) batch statistics."""
        return self._run(x, train, keep_all=False)[self.output]

    def backward(self, dout, input_grad: bool = False):
        """Fill every layer's grads from dL/d(output); returns dL/d(input) if `input_grad`, else None.

        Gradients of a node read by several nodes are summed in the reverse
        topological order of those readers, a fixed order, so results repeat bit
        for bit. Without `input_grad`, nodes that read only the graph input skip
        dL/dx, which training never reads.
        """
        pending = {self.output: dout}
        for n in reversed(self.nodes):
            dy = pending.pop(n.name, None)
            if dy is None:  # the node does not reach the output
                dy = np.zeros((len(dout), *self.shapes[n.name]), dtype=dout.dtype)
            need_dx = input_grad or any(s != INPUT for s in n.inputs)
            dx = n.layer.backward(dy, need_dx=need_dx)
            dxs = [dx] if n.layer.arity == 1 else list(dx)
            for src, d in zip(n.inputs, dxs):
                if src == INPUT and not need_dx:
                    continue
                # out of place: d may be the very array another reader also received (Add passes dy on)
                pending[src] = d if src not in pending else _sum(pending[src], d)
        return pending.get(INPUT) if input_grad else None

    def forward_trace(self, x):
        """Forward, returning every node's output in node order (for calibration and SQNR)."""
        values = self._run(x, False, keep_all=True)
        return [values[n.name] for n in self.nodes]

    def predict(self, x, batch_size: int = 1000) -> np.ndarray:
        """Outputs for any number of inputs, in eval mode, in batches to bound memory."""
        dtype = self._dtype()
        out = [self.forward(np.asarray(x[i:i + batch_size], dtype=dtype)) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, *self.output_shape), dtype=dtype)

    # -- serialisation --------------------------------------------------------------------
    def spec(self) -> dict:
        return {
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "labels": self.labels,
            "nodes": [{**n.layer.config(), "inputs": list(n.inputs)} for n in self.nodes],
            "output": self.output,
        }

    @classmethod
    def from_spec(cls, spec: dict) -> "Graph":
        if "layers" in spec and "nodes" not in spec:
            from edgecnn.model.sequential import Sequential

            return Sequential.from_spec(spec)
        nodes = []
        for cfg in spec["nodes"]:
            if not isinstance(cfg, dict) or not isinstance(cfg.get("inputs"), list) or \
                    not all(isinstance(s, str) for s in cfg["inputs"]):
                raise ModelError(f"a graph node needs an 'inputs' list of node names, got {cfg!r:.80}")
            cfg = dict(cfg)
            inputs = tuple(cfg.pop("inputs"))
            layer = layer_from_config(cfg)
            nodes.append(Node(layer.name, layer, inputs))
        return cls(nodes, spec["input_shape"], output=spec.get("output"), arch=spec.get("arch", "custom"),
                   labels=spec.get("labels"))

    def folded(self) -> "Graph":
        """A copy for inference with each BatchNorm merged into the conv or dense layer it follows.

        A BN folds when its input is a Conv2D or Dense node without an activation that
        nothing else reads; the BN's activation moves onto that layer. BNs that cannot
        fold stay. Parameters are the eval-mode ones, cast back to the model's dtype.
        """
        from edgecnn.model.folding import fold_graph_batchnorms

        return fold_graph_batchnorms(self)


class GraphBuilder:
    """Wire a graph in code: `x = g.add(Conv2D(...), x)`; each call returns the new node's name."""

    def __init__(self, input_shape, arch: str = "custom", labels=None):
        self.input_shape, self.arch, self.labels = input_shape, arch, labels
        self.input = INPUT
        self.nodes: list[Node] = []

    def add(self, layer: Layer, *inputs: str) -> str:
        if layer.name is None:
            layer.name = f"{layer.kind}{len(self.nodes)}"
        self.nodes.append(Node(layer.name, layer, tuple(inputs)))
        return layer.name

    def build(self, output: str | None = None) -> Graph:
        return Graph(self.nodes, self.input_shape, output=output, arch=self.arch, labels=self.labels)
