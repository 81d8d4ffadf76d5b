"""C99 export for microcontrollers: one self-contained .c file, bit-exact with the Numba runtime.

The float side is the runtime's own: `prepare_graph` validates the graph as
LiteRT does and builds every multiplier, shift, activation range and lookup
table, so the C file holds only integers (plus the binary64 FULLY_CONNECTED
scales in the default fc_rescale="float" mode, because TFLite's reference
kernel itself rescales in floating point there).

This module names no op: each op's registration (`deploy/ops/<op>.py`)
gives a C hook, `c(emit, step) -> CSource`, and its kernel text (`c_blocks`);
see docs/ops.md. The file holds:
- a header comment starting with the magic line "edgecnn-c v1";
- #defines for the input/output sizes and quantization parameters;
- the kernels the model uses, dependencies first;
- each op's constants (weights, biases, multipliers, tables) and params struct;
- one static arena for the intermediate tensors, planned here over the DAG;
- `int <name>_invoke(const int8_t *input, int8_t *output)` for batch 1 when the
  graph has one int8 input and one int8 output; otherwise
  `int <name>_invoke(const <type> *input0, ..., <type> *output0, ...)`, one
  argument per graph input then per graph output, typed int8_t, uint8_t or float;
- under `#ifdef EDGECNN_MAIN`, a main() that reads records (every input, in
  order, raw) from stdin and writes every output, in order, to stdout.
No malloc, no libc in the inference path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import edgecnn
from edgecnn.deploy.export.c_source import BLOCKS, CSource
from edgecnn.deploy.ops import REGISTRY
from edgecnn.deploy.runtime.prepare import FC_RESCALE_MODES, PreparedOp, prepare_graph
from edgecnn.errors import UnsupportedOpError
from edgecnn.fileio import atomic_path
from edgecnn.int8.graph import Int8Graph

MAGIC = "edgecnn-c"
FORMAT_VERSION = 1

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VALUES_PER_LINE = 20
C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
           "float32": "float"}  # fmt: skip


def itemsize(dtype: str) -> int:
    return np.dtype(dtype).itemsize


# ---------------------------------------------------------------- arena plan


@dataclass(frozen=True)
class ArenaPlan:
    """Byte offset of every intermediate tensor in one static arena, the arena's size, and each tensor's lifetime.

    buffers: tensors that live in a caller's output buffer instead (offset inside it), while that buffer
    is still free (before the op that writes the graph output).
    """

    offsets: dict[int, int]
    size: int
    lifetimes: dict[int, tuple[int, int]]  # tensor -> (first op index, last op index)
    buffers: dict[int, str] = field(default_factory=dict)  # tensor -> the output argument it lives in


def tensor_bytes(graph: Int8Graph, t: int) -> int:
    tensor = graph.tensors[t]
    return math.prod(tensor.shape) * itemsize(tensor.dtype)


def lifetimes(graph: Int8Graph, steps: list[PreparedOp], owned=()) -> dict[int, tuple[int, int]]:
    """Every tensor the arena holds: (the op that writes it, the last op that reads it).

    Graph inputs and outputs live in the caller's buffers, constants in
    `static const` arrays: neither is here, except the inputs in `owned`
    (export_c's input_in_arena), which live in the arena from before op 0
    to their last reader. An output nobody reads lives at its op only,
    which still keeps it apart from that op's inputs.
    """
    caller = (set(graph.inputs) | set(graph.outputs)) - set(owned)
    span: dict[int, list[int]] = {t: [0, -1] for t in owned}
    for i, step in enumerate(steps):
        for t in step.outputs:
            if t not in caller:
                span[t] = [i, i]
    for i, step in enumerate(steps):
        for t in step.inputs:
            if t in span:
                span[t][1] = max(span[t][1], i)
    return {t: (first, last) for t, (first, last) in span.items() if last >= first}


def _alias_groups(graph: Int8Graph, steps: list[PreparedOp], span: dict, in_place: dict):
    """(tensor -> the tensor whose bytes it reuses, tensor -> its byte offset relative to that one): an op's
    output takes its input's bytes, starting `delta` bytes before them, where the op's kernel allows it
    (in_place[step] = (k, delta)) and input k dies at that op."""
    root = {t: t for t in span}
    relative = {t: 0 for t in span}
    for i, (k, delta) in sorted((in_place or {}).items()):
        step = steps[i]
        if k is None or not step.outputs or k >= len(step.inputs):
            continue
        t_out, t_in = step.outputs[0], step.inputs[k]
        if (t_out in span and t_in in span and span[t_in][1] == i and step.inputs.count(t_in) == 1
                and graph.tensors[t_in].dtype == graph.tensors[t_out].dtype and root[t_out] == t_out):  # fmt: skip
            root[t_out] = t_in
            relative[t_out] = -delta
    return root, relative


def plan_arena(graph: Int8Graph, steps: list[PreparedOp], in_place: dict | None = None,
               spare: list | None = None, scratch: dict | None = None, owned=()) -> ArenaPlan:  # fmt: skip
    """Greedy first-fit by size: a buffer may share bytes with any buffer whose lifetime it does not meet.

    A tensor lives from the op that writes it to the last op that reads it;
    an op's inputs and outputs all meet at that op, so they never overlap,
    whatever the branches, except where the op's kernel works in place
    (`in_place`: {op index: (input k, delta)}, from each op's CSource): then
    the output starts delta bytes before input k's first byte when input k
    dies at that op, and the two are one buffer. For a chain without
    in-place ops this is the classic ping-pong of two buffers. `spare`:
    [(output argument, bytes, op index that writes it)], the caller's
    int8/uint8 output buffers, free for int8/uint8 buffers that die before
    that op. `scratch`: {op index: bytes} an op needs while it runs, planned
    like a tensor living at that op only (key -1 - op index in the result),
    8-byte aligned. `owned`: graph inputs that live in the arena (lifetimes()).
    Offsets are aligned to the element size (float32 at 4, ...).
    """
    span = lifetimes(graph, steps, owned)
    sizes = {t: tensor_bytes(graph, t) for t in span}
    in_place = {i: (v, 0) if isinstance(v, int) else v for i, v in (in_place or {}).items()}
    root, relative = _alias_groups(graph, steps, span, in_place)
    align_of = {t: itemsize(graph.tensors[t].dtype) for t in span}
    # int8/uint8 tensors may live in a caller's output buffer (spare), except the model's own inputs, whose
    # buffer must exist outside invoke (<name>_<input>_buffer()).
    narrow_of = {t: graph.tensors[t].dtype in ("int8", "uint8") and t not in owned for t in span}
    for i, nbytes in (scratch or {}).items():
        if nbytes:
            t = -1 - i
            span[t], sizes[t], root[t], relative[t], align_of[t], narrow_of[t] = (i, i), nbytes, t, 0, 8, False
    groups: dict[int, list[int]] = {}
    base: dict[int, int] = {}
    for t in span:
        r, rel = t, 0
        while root[r] != r:
            rel += relative[r]
            r = root[r]
        groups.setdefault(r, []).append(t)
        base[t] = rel
    for r, ts in groups.items():  # the group's lowest byte at 0
        low = min(base[t] for t in ts)
        for t in ts:
            base[t] -= low
    gspan = {r: (min(span[t][0] for t in ts), max(span[t][1] for t in ts)) for r, ts in groups.items()}
    gsize = {r: max(base[t] + sizes[t] for t in ts) for r, ts in groups.items()}
    galign = {r: max(align_of[t] for t in ts) for r, ts in groups.items()}
    narrow = {r: all(narrow_of[t] for t in ts) for r, ts in groups.items()}

    def first_fit(placed, size, first, last, align, limit=None):
        offset = 0
        for other_offset, other_size, other_first, other_last in sorted(placed):
            if other_last < first or last < other_first:
                continue  # never alive together
            if offset + size <= other_offset:
                break
            offset = max(offset, -(-(other_offset + other_size) // align) * align)
        return offset if limit is None or offset + size <= limit else None

    def place(order):
        arena: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
        in_spare = {arg: [] for arg, _, _ in spare or []}
        goffset, gbuffer = {}, {}
        for r in order:
            first, last = gspan[r]
            for arg, nbytes, writer in spare or []:
                if narrow[r] and last < writer:
                    offset = first_fit(in_spare[arg], gsize[r], first, last, 1, nbytes)
                    if offset is not None:
                        goffset[r], gbuffer[r] = offset, arg
                        in_spare[arg].append((offset, gsize[r], first, last))
                        break
            else:
                goffset[r] = first_fit(arena, gsize[r], first, last, galign[r])
                arena.append((goffset[r], gsize[r], first, last))
        return max((o + s for o, s, _, _ in arena), default=0), goffset, gbuffer

    # First fit in a few orders (largest first; by first use; by size x lifetime): the smallest arena wins.
    orders = [sorted(groups, key=lambda r: (-gsize[r], gspan[r][0], r)),
              sorted(groups, key=lambda r: (gspan[r][0], -gsize[r], r)),
              sorted(groups, key=lambda r: (-gsize[r] * (gspan[r][1] - gspan[r][0] + 1), r))]  # fmt: skip
    size, goffset, gbuffer = min((place(order) for order in orders), key=lambda result: result[0])
    offsets = {t: goffset[r] + base[t] for r, ts in groups.items() for t in ts}
    buffers = {t: gbuffer[r] for r, ts in groups.items() for t in ts if r in gbuffer}
    return ArenaPlan(offsets, size, {t: v for t, v in span.items() if t >= 0}, buffers)


# ---------------------------------------------------------------- C literals


def int_literal(v: int) -> str:
    # -2147483648 is not an int literal in C (it is -(2147483648), a long): spell it as an expression.
    if v == -(2**31):
        return "(-2147483647 - 1)"
    if v == -(2**63):
        return "(-9223372036854775807LL - 1)"
    return str(v) if -(2**31) <= v < 2**31 else f"{v}LL"


def double_literal(v: float) -> str:
    """An exact C99 hex literal, with the decimal value beside it for readers."""
    return f"{float(v).hex()} /* {float(v)!r} */" if v != 0 else "0.0"


def float_literal(v: float) -> str:
    """An exact C99 hex float32 literal."""
    return f"{float(np.float32(v)).hex()}f" if v != 0 else "0.0f"


def c_string(text: str) -> str:
    out = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)  # \? keeps "??x" from being read as a trigraph
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def comment_text(text) -> str:
    """Anything, made safe inside a /* */ comment on one line."""
    return re.sub(r"[^\x20-\x7e]", "?", str(text)).replace("*/", "* /").replace("/*", "/ *")


# ---------------------------------------------------------------- what a C hook gets


class CEmitter:
    """The exporter's side of an op's C hook: the graph, the model's options, and literal writers.

    Hooks use `prefix(step)` for every file-scope name they define, so ops never clash.
    """

    def __init__(self, graph: Int8Graph, name: str, fc_rescale: str, integer_only: bool = False):
        self.graph, self.name, self.fc_rescale = graph, name, fc_rescale
        # integer_only: hooks must emit no floating point (FULLY_CONNECTED's binary64 rescale becomes its
        # exact integer twin); the exporter checks the kernels it emits and refuses float ones.
        self.integer_only = integer_only

    @staticmethod
    def prefix(step: PreparedOp) -> str:
        return f"op{step.index}"

    def shape(self, t: int) -> tuple[int, ...]:
        return tuple(self.graph.tensors[t].shape)

    def size(self, t: int) -> int:
        """Elements of tensor t (batch 1)."""
        return math.prod(self.graph.tensors[t].shape)

    def c_type(self, t: int) -> str:
        return C_TYPES[self.graph.tensors[t].dtype]

    int_literal = staticmethod(int_literal)  # exact C spellings of one value, for calls and structs
    float_literal = staticmethod(float_literal)
    double_literal = staticmethod(double_literal)

    @staticmethod
    def array(c_type: str, name: str, values) -> str:
        """`static const c_type name[n] = {...};` of integers, or of exact literals for double/float."""
        values = np.asarray(values).reshape(-1)
        if c_type == "double":
            texts, per_line = [double_literal(float(v)) for v in values], 4
        elif c_type == "float":
            texts, per_line = [float_literal(float(v)) for v in values], 8
        else:
            texts, per_line = [int_literal(int(v)) for v in values], _VALUES_PER_LINE
        if not texts:
            raise ValueError(f"{name}: C has no empty arrays")
        body = "\n".join("    " + ", ".join(texts[i:i + per_line]) + "," for i in range(0, len(texts), per_line))
        return f"static const {c_type} {name}[{len(texts)}] = {{\n{body}\n}};\n"

    @staticmethod
    def struct(c_type: str, name: str, fields) -> str:
        """`static const c_type name = {.field = value, ...};`; int values become exact literals."""
        body = "\n".join(f"    .{k} = {int_literal(int(v)) if isinstance(v, (int, np.integer)) else v},"
                         for k, v in fields)  # fmt: skip
        return f"static const {c_type} {name} = {{\n{body}\n}};\n"

    @staticmethod
    def fail(step: PreparedOp, message: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"op {step.index} ({step.kind}): not exportable to C: {message}")


# ---------------------------------------------------------------- kernel blocks


def all_blocks() -> dict[str, tuple[tuple[str, ...], str]]:
    """The shared primitives and every registered op's C blocks; a name means one text."""
    blocks = dict(BLOCKS)
    for opdef in REGISTRY.values():
        for name, block in opdef.c_blocks.items():
            if blocks.setdefault(name, block) != block:
                raise RuntimeError(f"C block {name!r} of {opdef.name} differs from another with that name")
    return blocks


def blocks_in_order(needed, blocks=None) -> list[str]:
    """The needed kernel blocks and everything they use, dependencies first, in a deterministic order."""
    blocks = all_blocks() if blocks is None else blocks
    order: list[str] = []

    def emit(name, path=()):
        if name in path:
            raise RuntimeError(f"C blocks depend on each other in a cycle: {' -> '.join(path + (name,))}")
        if name not in blocks:
            raise RuntimeError(f"unknown C block {name!r}")
        if name not in order:
            for dep in blocks[name][0]:
                emit(dep, path + (name,))
            order.append(name)

    for name in sorted(needed):
        emit(name)
    return order


_blocks_in_order = blocks_in_order  # the old private name, kept for tests written against it


# ---------------------------------------------------------------- the file


@dataclass(frozen=True)
class _Io:
    """One graph input or output as a C argument."""

    tensor: int
    arg: str  # the parameter name
    c_type: str
    macro: str  # INPUT, INPUT0, OUTPUT1, ...


def _ios(graph: Int8Graph) -> tuple[list[_Io], list[_Io]]:
    classic = (len(graph.inputs) == 1 and len(graph.outputs) == 1
               and graph.tensors[graph.inputs[0]].dtype == "int8" == graph.tensors[graph.outputs[0]].dtype)  # fmt: skip
    result = []
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        ios = []
        for k, t in enumerate(indices):
            suffix = "" if classic else str(k)
            ios.append(_Io(t, f"{role}{suffix}", C_TYPES[graph.tensors[t].dtype], f"{role.upper()}{suffix}"))
        result.append(ios)
    return result[0], result[1]


def _buffer_signature(name: str, io: _Io) -> str:
    return f"{io.c_type} *{name}_{io.arg}_buffer(void)"


def _signature(name: str, inputs: list[_Io], outputs: list[_Io]) -> str:
    args = [f"const {io.c_type} *{io.arg}" for io in inputs] + [f"{io.c_type} *{io.arg}" for io in outputs]
    return f"int {name}_invoke({', '.join(args)})"


def _quantized(tensor) -> bool:
    return tensor.dtype != "float32" and tensor.scale.size >= 1 and tensor.zero_point.size >= 1


def _header(graph: Int8Graph, name: str, fc_rescale: str, steps, arena: ArenaPlan, constant_bytes: int,
            scratch: int, inputs: list[_Io], outputs: list[_Io]) -> str:  # fmt: skip
    meta = graph.metadata or {}
    macro = name.upper()
    kinds = ", ".join(dict.fromkeys(step.kind for step in steps)) or "none"
    lines = [
        f"{MAGIC} v{FORMAT_VERSION}",
        "",
        f"int8 inference for `{name}`, written by edgecnn {edgecnn.__version__}"
        + (f" from a model made by edgecnn {comment_text(meta['edgecnn_version'])}" if "edgecnn_version" in meta
           else "") + ".",  # fmt: skip
        "Bit-exact with LiteRT's BUILTIN_REF int8 kernels and edgecnn's runtime",
        f"(FULLY_CONNECTED rescale mode: {fc_rescale}).",
    ]
    if "arch" in meta:
        lines.append(f"Architecture: {comment_text(meta['arch'])}.")
    lines += [f"Ops ({len(steps)}): {kinds}.", "", f"  {_signature(name, inputs, outputs)};"]
    for role, ios in (("input", inputs), ("output", outputs)):
        for io in ios:
            tensor = graph.tensors[io.tensor]
            lines.append(f"    {io.arg}: {macro}_{io.macro}_SIZE {io.c_type} values, "
                         f"{comment_text(tensor.name)} {tuple(tensor.shape)}"
                         + (f", real = {macro}_{io.macro}_SCALE * (q - {macro}_{io.macro}_ZERO_POINT)"
                            if _quantized(tensor) else ""))  # fmt: skip
    lines += [
        "    returns 0, or -1 where TFLite aborts at run time (e.g. a softmax row too long for its fixed point).",
        f"  Not reentrant: intermediate tensors share one static arena of {arena.size} bytes,",
        f"  which also holds each op's scratch ({scratch} bytes apart); inputs and outputs are the caller's buffers.",
        f"  Constants: {constant_bytes} bytes.",
        "",
        "Build: cc -std=c99 -O2 -c model.c (no libm, no malloc; -O3 vectorizes the dot products on desktop CPUs).",
        "With -DEDGECNN_MAIN the file has a main() that reads records from stdin until EOF, each the raw",
        "bytes of every input in order, and writes the raw bytes of every output, in order, to stdout.",
    ]
    labels = meta.get("labels")
    if labels:
        lines += ["", "Labels: " + ", ".join(f"{i}: {comment_text(label)}" for i, label in enumerate(labels))]
    return "/* " + "\n * ".join(line for line in lines).replace(" \n", "\n") + "\n */\n"


def _defines(graph: Int8Graph, name: str, arena: ArenaPlan, inputs: list[_Io], outputs: list[_Io]) -> str:
    macro = name.upper()
    rows = [(f"{macro}_FORMAT_VERSION", str(FORMAT_VERSION))]
    rows += [(f"{macro}_NUM_INPUTS", str(len(inputs))), (f"{macro}_NUM_OUTPUTS", str(len(outputs)))]
    for io in inputs + outputs:
        rows.append((f"{macro}_{io.macro}_SIZE", str(math.prod(graph.tensors[io.tensor].shape))))
    for io in inputs + outputs:
        tensor = graph.tensors[io.tensor]
        if _quantized(tensor):
            rows.append((f"{macro}_{io.macro}_SCALE", repr(float(tensor.scale[0]))))
            rows.append((f"{macro}_{io.macro}_ZERO_POINT", str(int(tensor.zero_point[0]))))
    rows.append((f"{macro}_ARENA_SIZE", str(arena.size)))
    labels = (graph.metadata or {}).get("labels") or []
    rows.append((f"{macro}_NUM_LABELS", str(len(labels))))
    text = "".join(f"#define {k} {v}\n" for k, v in rows)
    if labels:
        text += (f"\nconst char *const {name}_labels[{len(labels)}] = {{\n"
                 + "".join(f"    {c_string(label)},\n" for label in labels) + "};\n")  # fmt: skip
    return text


def _main(name: str, inputs: list[_Io], outputs: list[_Io]) -> str:
    macro = name.upper()
    decls = "\n".join(f"    static {io.c_type} {io.arg}[{macro}_{io.macro}_SIZE];" for io in inputs + outputs)
    record = " + ".join(f"sizeof {io.arg}" for io in inputs)
    reads = "\n".join(f"        got += fread({io.arg}, 1, sizeof {io.arg}, stdin);" for io in inputs)
    writes = "\n".join(f"        if (fwrite({io.arg}, 1, sizeof {io.arg}, stdout) != sizeof {io.arg}) return 1;"
                       for io in outputs)  # fmt: skip
    args = ", ".join(io.arg for io in inputs + outputs)
    return f"""
#ifdef EDGECNN_MAIN
#include <stdio.h>

/* Records of every input's raw bytes, in order, on stdin until EOF -> every output's raw bytes on stdout. */
int main(void)
{{
{decls}
    for (;;) {{
        size_t got = 0;
{reads}
        if (got == 0 && feof(stdin)) break;
        if (got != {record}) {{
            fputs("{name}: the input is not a whole number of records (every input, in order)\\n", stderr);
            return 1;
        }}
        if ({name}_invoke({args}) != 0) {{
            fputs("{name}: inference failed\\n", stderr);
            return 1;
        }}
{writes}
    }}
    if (ferror(stdin)) return 1;
    return fflush(stdout) == 0 ? 0 : 1;
}}
#endif
"""


def _hook_source(emit: CEmitter, step: PreparedOp) -> CSource:
    if step.opdef.c is None:
        supported = ", ".join(name for name, opdef in REGISTRY.items() if opdef.c is not None)
        raise UnsupportedOpError(f"op {step.index} ({step.kind}): the C exporter does not support this operator; "
                                 f"supported: {supported}")  # fmt: skip
    source = step.opdef.c(emit, step)
    if not isinstance(source, CSource):
        raise TypeError(f"{step.kind}'s C hook returned {type(source).__name__}, not CSource")
    return source


@dataclass(frozen=True)
class CExport:
    """One model's C: the self-contained .c text, the matching .h text, and the sizes the exporter planned."""

    name: str
    source: str
    header: str
    arena_bytes: int  # the static arena of intermediate tensors
    scratch_bytes: int  # the ops' shared scratch buffer
    constant_bytes: int  # weights, biases, multipliers, tables (flash)
    inputs: list  # [{"name", "arg", "dtype", "shape", "bytes", "scale", "zero_point"}]
    outputs: list

    @property
    def ram_bytes(self) -> int:
        """What the .c file reserves: arena + scratch (the caller's input/output buffers not included)."""
        return self.arena_bytes + self.scratch_bytes

    @property
    def io_bytes(self) -> int:
        """The caller's input and output buffers (not the inputs the model holds in its arena)."""
        return sum(io["bytes"] for io in self.inputs + self.outputs if not io.get("in_arena"))


_FLOAT_WORD = re.compile(r"\b(double|float)\b")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def to_c(graph: Int8Graph, name: str = "edgecnn_model", fc_rescale: str = "float",
         integer_only: bool = False, input_in_arena: bool = False) -> str:  # fmt: skip
    """The C99 source of `graph`: `<name>_invoke(inputs..., outputs...)`, batch 1.

    fc_rescale is the runtime's option: "float" (current LiteRT reference,
    binary64 multiply + round half away) or "integer" (older runtimes, no
    floating point anywhere in the file's code). integer_only=True keeps the
    "float" arithmetic but writes FULLY_CONNECTED's binary64 rescale in exact
    integer arithmetic, so the file has no floating point and gives the same
    bytes; graphs with float inputs/outputs are then refused. Raises
    UnsupportedOpError for ops without a C lowering, and the runtime's
    ModelError / ShapeError for graphs LiteRT would refuse.
    """
    return export_c(graph, name, fc_rescale, integer_only, input_in_arena).source


def export_c(graph: Int8Graph, name: str = "edgecnn_model", fc_rescale: str = "float",
             integer_only: bool = False, input_in_arena: bool = False) -> CExport:  # fmt: skip
    """to_c's source plus the header (`<name>.h`: the API, sizes, qparams, labels) and the planned sizes.

    input_in_arena: the model owns its input buffers, inside the arena (RAM then includes them, and the
    planner reuses their bytes once read, e.g. for a first conv in place): `<name>_<input>_buffer()`
    returns each one; fill it and pass it to invoke (another pointer is copied in first). X-CUBE-AI's
    activation pool holds the input likewise.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"the C name must be an identifier (letters, digits, _), got {name!r}")
    if fc_rescale not in FC_RESCALE_MODES:
        raise ValueError(f"fc_rescale must be one of {sorted(FC_RESCALE_MODES)}, got {fc_rescale!r}")
    for i, op in enumerate(graph.ops):
        opdef = REGISTRY.get(op.kind)
        if opdef is None or opdef.c is None:
            supported = ", ".join(n for n, d in REGISTRY.items() if d.c is not None)
            raise UnsupportedOpError(f"op {i} ({op.kind}): the C exporter does not support this operator; "
                                     f"supported: {supported}")  # fmt: skip
    steps = prepare_graph(graph, fc_rescale)
    inputs, outputs = _ios(graph)
    emit = CEmitter(graph, name, fc_rescale, integer_only)
    sources = [_hook_source(emit, step) for step in steps]
    writer = {t: i for i, step in enumerate(steps) for t in step.outputs}
    first_arg: dict[int, str] = {}
    for io in inputs + outputs:
        first_arg.setdefault(io.tensor, io.arg)
    spare = [(io.arg, tensor_bytes(graph, io.tensor),
              writer[io.tensor] if first_arg[io.tensor] == io.arg and io.tensor in writer else len(steps))
             for io in outputs if io.c_type in ("int8_t", "uint8_t")]  # fmt: skip
    read = {t for step in steps for t in step.inputs}
    owned: list[_Io] = []  # inputs in the arena (input_in_arena): read by an op, not an output, once each
    for io in inputs:
        if input_in_arena and io.tensor in read and io.tensor not in set(graph.outputs) | {o.tensor for o in owned}:
            owned.append(io)
    arena = plan_arena(graph, steps, {i: (s.in_place, s.in_place_offset) for i, s in enumerate(sources)
                                      if s.in_place is not None},
                       spare, {i: max(s.scratch_bytes, s.in_place_scratch) for i, s in enumerate(sources)},
                       [io.tensor for io in owned])  # fmt: skip
    if integer_only:
        for io in inputs + outputs:
            if io.c_type == "float":
                raise UnsupportedOpError(f"--integer-only: graph {io.arg} {graph.tensors[io.tensor].name!r} is "
                                         "float32; an integer-only file needs int8/uint8 inputs and outputs")
        for step, source in zip(steps, sources):
            for block in blocks_in_order(source.blocks):
                if _FLOAT_WORD.search(_COMMENT.sub("", all_blocks()[block][1])):
                    raise UnsupportedOpError(f"op {step.index} ({step.kind}): --integer-only: its C kernel "
                                             f"{block!r} uses floating point")  # fmt: skip

    # Where each tensor lives: a caller's buffer (the first graph argument that names it), the arena,
    # or a static const array for a constant fed as a run-time input.
    home: dict[int, str] = {}
    for io in inputs + outputs:
        if io not in owned:
            home.setdefault(io.tensor, io.arg)
    constant_data = []

    def where(t: int) -> str:
        tensor = graph.tensors[t]
        c_type = C_TYPES[tensor.dtype]
        if t in home:
            return home[t]
        if tensor.is_constant:
            home[t] = f"ec_tensor{t}"
            constant_data.append(emit.array(c_type, home[t], tensor.data))
            return home[t]
        if t in arena.buffers:  # in a caller's output buffer, before that output is written
            return f"({c_type} *)(void *)((int8_t *)(void *){arena.buffers[t]} + {arena.offsets[t]})"
        if c_type == "int8_t":
            return f"ec_arena + {arena.offsets[t]}"
        return f"({c_type} *)(void *)(ec_arena + {arena.offsets[t]})"

    def aliased(step: PreparedOp, source: CSource) -> bool:
        t_out, t_in = step.outputs[0], step.inputs[source.in_place]
        return (t_out in arena.offsets and t_in in arena.offsets
                and arena.offsets[t_out] == arena.offsets[t_in] - source.in_place_offset
                and arena.buffers.get(t_out) == arena.buffers.get(t_in))  # fmt: skip

    sources = [CSource(s.in_place_call, s.data, s.in_place_blocks, s.constant_bytes, s.in_place_scratch)
               if s.in_place_call and s.in_place is not None and aliased(step, s) else s
               for step, s in zip(steps, sources)]  # fmt: skip
    blocks = {b for s in sources for b in s.blocks}
    body = []
    for step, source in zip(steps, sources):
        names = ", ".join(f"{comment_text(graph.tensors[t].name)} {tuple(graph.tensors[t].shape)}"
                          for t in step.outputs)  # fmt: skip
        body.append(f"    /* op {step.index}: {step.kind} -> {names} */")
        call = source.call
        for k, t in enumerate(step.inputs):
            call = call.replace(f"@IN{k}@", where(t))
        for k, t in enumerate(step.outputs):
            call = call.replace(f"@OUT{k}@", where(t))
        if "@SCRATCH@" in call:  # planned in the arena like a tensor living at this op only
            call = call.replace("@SCRATCH@", f"(void *)(ec_arena + {arena.offsets[-1 - step.index]})")
        if re.search(r"@[A-Z]+\d*@", call):
            raise RuntimeError(f"op {step.index} ({step.kind}): C call has an unknown placeholder: {call}")
        body += ["    " + line for line in call.strip("\n").split("\n")]
    # Graph outputs no op writes into their own buffer: a graph input, or a tensor listed twice.
    for io in outputs:
        if home[io.tensor] != io.arg:
            blocks.add("copy")
            nbytes = tensor_bytes(graph, io.tensor)
            body.append(f"    ec_copy((const int8_t *)(const void *){home[io.tensor]}, (int8_t *)(void *){io.arg}, "
                        f"{nbytes});")  # fmt: skip
    for io in owned:  # the model's own input buffer: the caller's bytes copied in unless they are there already
        blocks.add("copy")
        nbytes = tensor_bytes(graph, io.tensor)
        body[:0] = [f"    ec_copy((const int8_t *)(const void *){io.arg}, (int8_t *)(void *){where(io.tensor)}, "
                    f"{nbytes});"]  # fmt: skip
    read |= set(graph.outputs)
    body[:0] = [f"    (void){io.arg}; /* not read by any op */" for io in inputs if io.tensor not in read]
    buffers = "".join(f"\n{_buffer_signature(name, io)}\n{{\n    return {where(io.tensor)};\n}}\n" for io in owned)
    constant_bytes = sum(s.constant_bytes for s in sources) + sum(
        tensor_bytes(graph, t) for t in home if graph.tensors[t].is_constant)
    scratch = 0  # the ops' scratch is planned inside the arena
    wide_arena = any(t < 0 or graph.tensors[t].dtype not in ("int8", "uint8")
                     for t in arena.offsets if t not in arena.buffers)  # fmt: skip
    if wide_arena:  # the arena is int64_t words: what the file reserves is a whole number of them
        arena = ArenaPlan(arena.offsets, -(-arena.size // 8) * 8, arena.lifetimes, arena.buffers)
    if not arena.size:
        arena_text = ""
    elif wide_arena:  # 8-byte alignment for float, int32 and int64 tensors in the arena
        arena_text = (f"static int64_t ec_arena_words[{-(-arena.size // 8)}];\n"
                      "static int8_t *const ec_arena = (int8_t *)ec_arena_words;\n")  # fmt: skip
    else:
        arena_text = f"static int8_t ec_arena[{arena.size}];\n"

    parts = [
        _header(graph, name, fc_rescale, steps, arena, constant_bytes, scratch, inputs, outputs),
        "\n#include <stddef.h>\n#include <stdint.h>\n",
        _NO_LIBC_CALLS,
        "\n" + _defines(graph, name, arena, inputs, outputs),
        "\n/* ---------------------------------------------------------------- kernels */\n\n",
        "\n".join(all_blocks()[b][1] for b in blocks_in_order(blocks)),
        "\n/* ---------------------------------------------------------------- constants */\n\n",
        "\n".join([s.data for s in sources if s.data] + constant_data),
        "\n/* ---------------------------------------------------------------- inference */\n\n",
        arena_text,
        "\n" if arena.size or scratch else "",
        buffers,
        f"{_signature(name, inputs, outputs)}\n{{\n",
        "\n".join(body) + ("\n" if body else ""),
        "    return 0;\n}\n",
        _main(name, inputs, outputs),
    ]
    source = "".join(parts)
    if integer_only and _FLOAT_WORD.search(_COMMENT.sub("", source.split("#ifdef EDGECNN_MAIN")[0])):
        raise RuntimeError("--integer-only: the C file still uses floating point")  # a hook forgot integer_only
    described = [[_describe(graph, io) for io in ios] for ios in (inputs, outputs)]
    for io, d in zip(inputs, described[0]):
        d["in_arena"] = io in owned
    header = _h_file(graph, name, fc_rescale, integer_only, arena.size, scratch, constant_bytes, inputs, outputs,
                     owned)  # fmt: skip
    return CExport(name, source, header, arena.size, scratch, constant_bytes, described[0], described[1])


# gcc turns copy and fill loops into memcpy/memset calls (-ftree-loop-distribute-patterns, on at -O2/-Os),
# which would make a freestanding build need libc: this file switches that off for itself.
_NO_LIBC_CALLS = """
/* No libc: keep gcc from turning the copy and fill loops below into memcpy/memset calls. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-tree-loop-distribute-patterns")
#endif
"""


def _describe(graph: Int8Graph, io: _Io) -> dict:
    tensor = graph.tensors[io.tensor]
    quantized = _quantized(tensor)
    return {"name": tensor.name, "arg": io.arg, "dtype": tensor.dtype, "shape": [int(d) for d in tensor.shape],
            "bytes": tensor_bytes(graph, io.tensor),
            "scale": float(tensor.scale[0]) if quantized else None,
            "zero_point": int(tensor.zero_point[0]) if quantized else None}  # fmt: skip


def _h_file(graph: Int8Graph, name: str, fc_rescale: str, integer_only: bool, arena: int, scratch: int,
            constant_bytes: int, inputs: list[_Io], outputs: list[_Io], owned=()) -> str:  # fmt: skip
    """`<name>.h`: the entry point, the #defines of the .c (sizes, qparams, arena) and the labels' declaration."""
    guard = f"{name.upper()}_H"
    macro = name.upper()
    labels = (graph.metadata or {}).get("labels") or []
    lines = [
        f"/* {name}.h: the API of {name}.c, written by edgecnn {edgecnn.__version__}.",
        f" * RAM: {arena + scratch} bytes (intermediate tensors and the ops' scratch), static in {name}.c "
        "(not reentrant);",
        (" * the model owns its input buffers (in that RAM), the caller the output buffers. Constants (flash): "
         if owned else " * the caller owns the input and output buffers. Constants (flash): ")
        + f"{constant_bytes} bytes. FULLY_CONNECTED rescale: {fc_rescale}"
        + (", integer-only (no floating point)." if integer_only else "."),
        " * Every external symbol starts with the prefix " + comment_text(name) + " (edgecnn export --prefix). */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        _defines(graph, name, ArenaPlan({}, arena, {}), inputs, outputs).split("\nconst char")[0].rstrip("\n"),
        f"#define {macro}_RAM_SIZE {arena + scratch}",
        f"#define {macro}_CONSTANT_SIZE {constant_bytes}",
        "",
    ]
    if labels:
        lines.append(f"extern const char *const {name}_labels[{len(labels)}];")
    for io in owned:
        lines += [f"/* The model's own {io.arg} buffer, inside its RAM: write the {io.arg} here and pass this pointer"
                  " to invoke", " * (another pointer is copied in first). Overwritten by the inference. */",
                  f"{_buffer_signature(name, io)};"]  # fmt: skip
    lines += [
        "/* Runs one inference: returns 0, or -1 where TFLite aborts at run time. */",
        f"{_signature(name, inputs, outputs)};",
        "",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)


def write_c(graph: Int8Graph, path, name: str = "edgecnn_model", fc_rescale: str = "float",
            integer_only: bool = False, header: bool = False, input_in_arena: bool = False):  # fmt: skip
    """Write to_c(graph) to `path` atomically; returns the path.

    header=True also writes `<path without .c>.h` and returns the CExport (sizes, I/O) instead.
    """
    result = export_c(graph, name, fc_rescale, integer_only, input_in_arena)
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(result.source, encoding="ascii")
    if not header:
        return path
    with atomic_path(path.with_suffix(".h")) as tmp:
        Path(tmp).write_text(result.header, encoding="ascii")
    return result
