"""C99 export for microcontrollers: one self-contained .c file, bit-exact with the Numba runtime.

The float side is the runtime's own: `prepare_graph` validates the graph as
LiteRT does and builds every multiplier, shift, activation range and lookup
table, so the C file holds only integers (plus the binary64 FULLY_CONNECTED
scales in the default fc_rescale="float" mode, because TFLite's reference
kernel itself rescales in floating point there).

The file holds:
- a header comment starting with the magic line "edgecnn-c v1";
- #defines for the input/output sizes and quantization parameters;
- weights as `static const int8_t`, biases and per-channel multipliers and
  shifts as `static const int32_t`, LOGISTIC/TANH tables as 256 int8;
- the kernels the model uses (deploy/export/c_source.py);
- one static int8 arena for the activations, planned here at export time;
- `int <name>_invoke(const int8_t *input, int8_t *output)` for batch 1;
- under `#ifdef EDGECNN_MAIN`, a main() that reads raw int8 inputs from
  stdin and writes the raw int8 outputs to stdout.
No malloc, no libc in the inference path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import edgecnn
from edgecnn.deploy.export.c_source import BLOCKS
from edgecnn.int8.graph import Int8Graph
from edgecnn.deploy.runtime.params import RESCALE_FLOAT
from edgecnn.deploy.runtime.prepare import FC_RESCALE_MODES, PreparedOp, prepare_graph
from edgecnn.errors import UnsupportedOpError
from edgecnn.fileio import atomic_path

MAGIC = "edgecnn-c"
FORMAT_VERSION = 1
SOFTMAX_MAX_DEPTH = 4095  # the Q12.19 sum of up to 4095 terms of at most 2^19 fits an int32

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VALUES_PER_LINE = 20


# ---------------------------------------------------------------- arena plan


@dataclass(frozen=True)
class ArenaPlan:
    """Byte offset of every intermediate tensor in one static arena, and the arena's size."""

    offsets: dict[int, int]
    size: int


def plan_arena(graph: Int8Graph, steps: list[PreparedOp]) -> ArenaPlan:
    """Greedy first-fit by size: a tensor may share bytes with any tensor whose lifetime it does not meet.

    A tensor lives from the op that writes it to the last op that reads it;
    an op's input and output meet at that op, so they never overlap. For a
    chain this is the classic ping-pong of two buffers. The graph input and
    output live in the caller's buffers, not here.
    """
    lifetime: dict[int, list[int]] = {}
    for i, step in enumerate(steps):
        if step.output not in graph.outputs:
            lifetime[step.output] = [i, i]
    for i, step in enumerate(steps):
        if step.input in lifetime:
            lifetime[step.input][1] = max(lifetime[step.input][1], i)
    sizes = {t: math.prod(graph.tensors[t].shape) for t in lifetime}
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    offsets = {}
    for t in sorted(lifetime, key=lambda t: (-sizes[t], lifetime[t][0])):
        first, last = lifetime[t]
        offset = 0
        for other_offset, other_size, other_first, other_last in sorted(placed):
            if other_last < first or last < other_first:
                continue  # never alive together
            if offset + sizes[t] <= other_offset:
                break
            offset = max(offset, other_offset + other_size)
        offsets[t] = offset
        placed.append((offset, sizes[t], first, last))
    return ArenaPlan(offsets, max((o + s for o, s, _, _ in placed), default=0))


# ---------------------------------------------------------------- C literals


def _int_literal(v: int) -> str:
    # -2147483648 is not an int literal in C (it is -(2147483648), a long): spell it as an expression.
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def _double_literal(v: float) -> str:
    """An exact C99 hex literal, with the decimal value beside it for readers."""
    return f"{float(v).hex()} /* {float(v)!r} */" if v != 0 else "0.0"


def _array(c_type: str, name: str, values, literal=None) -> str:
    texts = [literal(float(v)) if literal else _int_literal(int(v)) for v in values]
    per_line = 4 if literal else _VALUES_PER_LINE
    body = "\n".join("    " + ", ".join(texts[i:i + per_line]) + "," for i in range(0, len(texts), per_line))
    return f"static const {c_type} {name}[{len(texts)}] = {{\n{body}\n}};\n"


def _c_string(text: str) -> str:
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


def _comment_text(text) -> str:
    """Anything, made safe inside a /* */ comment on one line."""
    return re.sub(r"[^\x20-\x7e]", "?", str(text)).replace("*/", "* /").replace("/*", "/ *")


def _struct(c_type: str, name: str, fields: list[tuple[str, str]]) -> str:
    body = "\n".join(f"    .{k} = {v}," for k, v in fields)
    return f"static const {c_type} {name} = {{\n{body}\n}};\n"


# ---------------------------------------------------------------- per-op emission


@dataclass
class _OpSource:
    data: str  # constant arrays and the params struct
    call: str  # the statement in invoke(); uses the @IN@ and @OUT@ placeholders
    blocks: tuple[str, ...]  # kernel blocks it needs
    constant_bytes: int
    patch: int = 0  # int16 entries of the shared conv patch it needs


def _shape(graph: Int8Graph, t: int) -> tuple[int, ...]:
    return tuple(graph.tensors[t].shape)


def _conv_source(graph: Int8Graph, step: PreparedOp, prefix: str) -> _OpSource:
    p = step.params
    (filter_shape, filter_data), (_, bias_data) = step.constants
    _, in_h, in_w, in_depth = _shape(graph, step.input)
    _, out_h, out_w, out_depth = _shape(graph, step.output)
    depthwise = step.kind == "DEPTHWISE_CONV_2D"
    _, filter_h, filter_w, filter_depth = filter_shape
    data = _array("int8_t", f"{prefix}_filter", filter_data)
    data += _array("int32_t", f"{prefix}_multiplier", p.output_multiplier)
    data += _array("int32_t", f"{prefix}_shift", p.output_shift)
    if bias_data.size:
        data += _array("int32_t", f"{prefix}_bias", bias_data)
    fields = [
        ("input_h", in_h), ("input_w", in_w), ("input_depth", in_depth),
        ("output_h", out_h), ("output_w", out_w), ("output_depth", out_depth),
        ("filter_h", filter_h), ("filter_w", filter_w), ("filter_depth", 1 if depthwise else filter_depth),
        ("stride_h", p.stride_height), ("stride_w", p.stride_width),
        ("dilation_h", p.dilation_height), ("dilation_w", p.dilation_width),
        ("pad_top", p.padding_top), ("pad_left", p.padding_left),
        ("input_offset", p.input_offset), ("output_offset", p.output_offset),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
        ("filter", f"{prefix}_filter"), ("bias", f"{prefix}_bias" if bias_data.size else "NULL"),
        ("multiplier", f"{prefix}_multiplier"), ("shift", f"{prefix}_shift"),
    ]  # fmt: skip
    data += _struct("ec_conv_params", f"{prefix}_params", fields)
    nbytes = filter_data.size + 4 * (bias_data.size + 2 * out_depth)
    if depthwise:
        return _OpSource(data, f"ec_depthwise_conv_2d(&{prefix}_params, @IN@, @OUT@);", ("depthwise_conv_2d",),
                         nbytes)  # fmt: skip
    return _OpSource(data, f"ec_conv_2d(&{prefix}_params, @IN@, @OUT@, ec_patch);", ("conv_2d",), nbytes,
                     filter_h * filter_w * filter_depth)  # fmt: skip


def _fully_connected_source(graph: Int8Graph, step: PreparedOp, prefix: str) -> _OpSource:
    p = step.params
    (filter_shape, filter_data), (_, bias_data) = step.constants
    units, depth = filter_shape
    rows = math.prod(_shape(graph, step.input)) // depth
    data = _array("int8_t", f"{prefix}_filter", filter_data)
    if bias_data.size:
        data += _array("int32_t", f"{prefix}_bias", bias_data)
    fields = [
        ("rows", rows), ("depth", depth), ("units", units),
        ("input_offset", p.input_offset), ("weights_offset", p.weights_offset), ("output_offset", p.output_offset),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
        ("filter", f"{prefix}_filter"), ("bias", f"{prefix}_bias" if bias_data.size else "NULL"),
    ]  # fmt: skip
    if p.rescale == RESCALE_FLOAT:
        data += _array("double", f"{prefix}_effective_scale", p.effective_scale, _double_literal)
        fields.append(("effective_scale", f"{prefix}_effective_scale"))
        block, nbytes = "fully_connected_float", 8 * units
    else:
        data += _array("int32_t", f"{prefix}_multiplier", p.output_multiplier)
        data += _array("int32_t", f"{prefix}_shift", p.output_shift)
        fields += [("multiplier", f"{prefix}_multiplier"), ("shift", f"{prefix}_shift")]
        block, nbytes = "fully_connected_integer", 8 * units
    data += _struct("ec_fc_params", f"{prefix}_params", fields)
    nbytes += filter_data.size + 4 * bias_data.size
    return _OpSource(data, f"ec_fully_connected(&{prefix}_params, @IN@, @OUT@);", (block,), nbytes)


def _pool_source(graph: Int8Graph, step: PreparedOp, prefix: str) -> _OpSource:
    p = step.params
    _, in_h, in_w, depth = _shape(graph, step.input)
    _, out_h, out_w, _ = _shape(graph, step.output)
    fields = [
        ("input_h", in_h), ("input_w", in_w), ("depth", depth), ("output_h", out_h), ("output_w", out_w),
        ("filter_h", p.filter_height), ("filter_w", p.filter_width),
        ("stride_h", p.stride_height), ("stride_w", p.stride_width),
        ("pad_top", p.padding_top), ("pad_left", p.padding_left),
        ("act_min", p.activation_min), ("act_max", p.activation_max),
    ]  # fmt: skip
    kernel = "ec_max_pool_2d" if step.kind == "MAX_POOL_2D" else "ec_average_pool_2d"
    data = _struct("ec_pool_params", f"{prefix}_params", fields)
    return _OpSource(data, f"{kernel}(&{prefix}_params, @IN@, @OUT@);", (kernel[3:],), 0)


def _softmax_source(graph: Int8Graph, step: PreparedOp, prefix: str) -> _OpSource:
    p = step.params
    shape = _shape(graph, step.input)
    depth = shape[-1]
    if depth > SOFTMAX_MAX_DEPTH:
        raise UnsupportedOpError(f"op {step.index} (SOFTMAX): rows of {depth} values are too long for the int8 "
                                 f"softmax's int32 sum (at most {SOFTMAX_MAX_DEPTH})")  # fmt: skip
    fields = [
        ("rows", math.prod(shape) // depth), ("depth", depth), ("input_multiplier", p.input_multiplier),
        ("input_left_shift", p.input_left_shift), ("diff_min", p.diff_min),
    ]  # fmt: skip
    data = _struct("ec_softmax_params", f"{prefix}_params", fields)
    return _OpSource(data, f"if (ec_softmax(&{prefix}_params, @IN@, @OUT@) != 0) return -1;", ("softmax",), 0)


def _lookup_source(graph: Int8Graph, step: PreparedOp, prefix: str) -> _OpSource:
    size = math.prod(_shape(graph, step.input))
    data = _array("int8_t", f"{prefix}_table", step.params.table)
    return _OpSource(data, f"ec_lookup({prefix}_table, @IN@, @OUT@, {size});", ("lookup",), 256)


def _reshape_source(graph: Int8Graph, step: PreparedOp, prefix: str) -> _OpSource:
    return _OpSource("", f"ec_copy(@IN@, @OUT@, {math.prod(_shape(graph, step.input))});", ("copy",), 0)


_SOURCES = {
    "CONV_2D": _conv_source,
    "DEPTHWISE_CONV_2D": _conv_source,
    "FULLY_CONNECTED": _fully_connected_source,
    "MAX_POOL_2D": _pool_source,
    "AVERAGE_POOL_2D": _pool_source,
    "SOFTMAX": _softmax_source,
    "LOGISTIC": _lookup_source,
    "TANH": _lookup_source,
    "RESHAPE": _reshape_source,
}


def _blocks_in_order(needed: set[str]) -> list[str]:
    """The needed kernel blocks and everything they use, dependencies first."""
    closure: set[str] = set()

    def visit(name):
        if name not in closure:
            closure.add(name)
            for dep in BLOCKS[name][0]:
                visit(dep)

    for name in needed:
        visit(name)
    order: list[str] = []

    def emit(name):
        if name not in order:
            for dep in BLOCKS[name][0]:
                emit(dep)
            order.append(name)

    for name in BLOCKS:  # the file's order, so the output is deterministic
        if name in closure:
            emit(name)
    return order


# ---------------------------------------------------------------- the file


def _header(graph: Int8Graph, name: str, fc_rescale: str, steps, arena: ArenaPlan, constant_bytes: int,
            patch: int) -> str:  # fmt: skip
    x, y = graph.input, graph.output
    meta = graph.metadata or {}
    macro = name.upper()
    kinds = ", ".join(dict.fromkeys(step.kind for step in steps)) or "none"
    lines = [
        f"{MAGIC} v{FORMAT_VERSION}",
        "",
        f"int8 inference for `{name}`, written by edgecnn {edgecnn.__version__}"
        + (f" from a model made by edgecnn {_comment_text(meta['edgecnn_version'])}" if "edgecnn_version" in meta
           else "") + ".",  # fmt: skip
        "Bit-exact with LiteRT's BUILTIN_REF int8 kernels and edgecnn's runtime",
        f"(FULLY_CONNECTED rescale mode: {fc_rescale}).",
    ]
    if "arch" in meta:
        lines.append(f"Architecture: {_comment_text(meta['arch'])}.")
    lines += [
        f"Ops ({len(steps)}): {kinds}.",
        "",
        f"  int {name}_invoke(const int8_t *input, int8_t *output);",
        f"    input:  {macro}_INPUT_SIZE int8 values, NHWC shape {tuple(x.shape)},",
        f"            real = {macro}_INPUT_SCALE * (q - {macro}_INPUT_ZERO_POINT)",
        f"    output: {macro}_OUTPUT_SIZE int8 values, shape {tuple(y.shape)}",
        "    returns 0, or -1 where TFLite aborts (a softmax row too long for its fixed point).",
        f"  Not reentrant: activations share one static arena of {arena.size} bytes,",
        f"  plus {2 * patch} bytes of conv scratch.",
        f"  Constants: {constant_bytes} bytes.",
        "",
        "Build: cc -std=c99 -O2 -c model.c (no libm, no malloc; -O3 vectorizes the dot products on desktop CPUs).",
        "With -DEDGECNN_MAIN the file has a main()",
        f"that reads raw {macro}_INPUT_SIZE-byte int8 inputs from stdin until EOF and writes the outputs",
        "to stdout.",
    ]
    labels = meta.get("labels")
    if labels:
        lines += ["", "Labels: " + ", ".join(f"{i}: {_comment_text(label)}" for i, label in enumerate(labels))]
    return "/* " + "\n * ".join(line for line in lines).replace(" \n", "\n") + "\n */\n"


def _defines(graph: Int8Graph, name: str, arena: ArenaPlan, fc_rescale: str) -> str:
    macro = name.upper()
    x, y = graph.input, graph.output
    rows = [
        (f"{macro}_FORMAT_VERSION", str(FORMAT_VERSION)),
        (f"{macro}_INPUT_SIZE", str(math.prod(x.shape))),
        (f"{macro}_OUTPUT_SIZE", str(math.prod(y.shape))),
        (f"{macro}_INPUT_SCALE", repr(float(x.scale[0]))),
        (f"{macro}_INPUT_ZERO_POINT", str(int(x.zero_point[0]))),
        (f"{macro}_OUTPUT_SCALE", repr(float(y.scale[0]))),
        (f"{macro}_OUTPUT_ZERO_POINT", str(int(y.zero_point[0]))),
        (f"{macro}_ARENA_SIZE", str(arena.size)),
    ]
    labels = (graph.metadata or {}).get("labels") or []
    rows.append((f"{macro}_NUM_LABELS", str(len(labels))))
    text = "".join(f"#define {k} {v}\n" for k, v in rows)
    if labels:
        text += (f"\nconst char *const {name}_labels[{len(labels)}] = {{\n"
                 + "".join(f"    {_c_string(label)},\n" for label in labels) + "};\n")  # fmt: skip
    if fc_rescale == "float" and any(op.kind == "FULLY_CONNECTED" for op in graph.ops):
        text += ("\n/* FULLY_CONNECTED rescales in IEEE binary64, as TFLite does: a 32-bit `double` would round\n"
                 "   differently (use fc_rescale=\"integer\" for such targets, matching older TFLite runtimes). */\n"
                 "#if DBL_MANT_DIG < 53\n#error \"this model needs a 64-bit double\"\n#endif\n")  # fmt: skip
    return text


def _main(name: str) -> str:
    macro = name.upper()
    return f"""
#ifdef EDGECNN_MAIN
#include <stdio.h>

/* Raw int8 inputs of {macro}_INPUT_SIZE bytes on stdin until EOF -> raw int8 outputs on stdout. */
int main(void)
{{
    static int8_t input[{macro}_INPUT_SIZE], output[{macro}_OUTPUT_SIZE];
    size_t got;
    while ((got = fread(input, 1, sizeof input, stdin)) == sizeof input) {{
        if ({name}_invoke(input, output) != 0) {{
            fputs("{name}: inference failed\\n", stderr);
            return 1;
        }}
        if (fwrite(output, 1, sizeof output, stdout) != sizeof output) return 1;
    }}
    if (got != 0 || ferror(stdin)) {{
        fputs("{name}: the input is not a whole number of {macro}_INPUT_SIZE-byte records\\n", stderr);
        return 1;
    }}
    return fflush(stdout) == 0 ? 0 : 1;
}}
#endif
"""


def to_c(graph: Int8Graph, name: str = "edgecnn_model", fc_rescale: str = "float") -> str:
    """The C99 source of `graph`: `int <name>_invoke(const int8_t *input, int8_t *output)`, batch 1.

    fc_rescale is the runtime's option: "float" (current LiteRT reference,
    binary64 multiply + round half away) or "integer" (older runtimes, no
    floating point anywhere in the file's code). Raises UnsupportedOpError
    for ops the runtime does not run, and the runtime's ModelError /
    ShapeError for graphs LiteRT would refuse.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"the C name must be an identifier (letters, digits, _), got {name!r}")
    if fc_rescale not in FC_RESCALE_MODES:
        raise ValueError(f"fc_rescale must be one of {sorted(FC_RESCALE_MODES)}, got {fc_rescale!r}")
    for i, op in enumerate(graph.ops):
        if op.kind not in _SOURCES:
            raise UnsupportedOpError(f"op {i} ({op.kind}): the C exporter does not support this operator; "
                                     f"supported: {', '.join(_SOURCES)}")  # fmt: skip
    steps = prepare_graph(graph, fc_rescale)
    if len(graph.outputs) != 1:
        raise UnsupportedOpError(f"the C exporter writes one output tensor; this graph has {len(graph.outputs)}")
    arena = plan_arena(graph, steps)
    input_t, output_t = graph.inputs[0], graph.outputs[0]

    def where(t: int) -> str:
        if t == input_t:
            return "input"
        if t == output_t:
            return "output"
        return f"ec_arena + {arena.offsets[t]}"

    sources = [_SOURCES[step.kind](graph, step, f"op{step.index}") for step in steps]
    blocks = {b for s in sources for b in s.blocks}
    body = []
    for step, source in zip(steps, sources):
        out_t = graph.tensors[step.output]
        body.append(f"    /* op {step.index}: {step.kind} -> {_comment_text(out_t.name)} {tuple(out_t.shape)} */")
        body.append("    " + source.call.replace("@IN@", where(step.input)).replace("@OUT@", where(step.output)))
    if output_t == input_t:  # no op computes the output: it is the input
        blocks.add("copy")
        body.append(f"    ec_copy(input, output, {math.prod(graph.output.shape)});")
    constant_bytes = sum(s.constant_bytes for s in sources)
    patch = max((s.patch for s in sources), default=0)

    parts = [
        _header(graph, name, fc_rescale, steps, arena, constant_bytes, patch),
        "\n#include <stddef.h>\n#include <stdint.h>\n",
        "#include <float.h>\n" if "fully_connected_float" in blocks else "",
        "\n" + _defines(graph, name, arena, fc_rescale),
        "\n/* ---------------------------------------------------------------- kernels */\n\n",
        "\n".join(BLOCKS[b][1] for b in _blocks_in_order(blocks)),
        "\n/* ---------------------------------------------------------------- constants */\n\n",
        "\n".join(s.data for s in sources if s.data),
        "\n/* ---------------------------------------------------------------- inference */\n\n",
        f"static int8_t ec_arena[{arena.size}];\n" if arena.size else "",
        f"static int16_t ec_patch[{patch}]; /* one conv window as x + input_offset */\n" if patch else "",
        "\n" if arena.size or patch else "",
        f"int {name}_invoke(const int8_t *input, int8_t *output)\n{{\n",
        "\n".join(body) + ("\n" if body else ""),
        "    return 0;\n}\n",
        _main(name),
    ]
    return "".join(parts)


def write_c(graph: Int8Graph, path, name: str = "edgecnn_model", fc_rescale: str = "float") -> Path:
    """Write to_c(graph) to `path` atomically; returns the path."""
    text = to_c(graph, name, fc_rescale)
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="ascii")
    return path

