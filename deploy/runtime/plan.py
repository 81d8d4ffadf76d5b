"""Turn a prepared graph into the executor's plan: an int64 op table, flat constant pools, an arena layout.

Built once per model (Runtime.__init__), from the registry's prepared ops (prepare.py),
so every check and every float computation stays where it was. What this adds:
- weights packed for the GEMM (vnni.py's [k4][tiles][16][4] bytes, and madd.py's int16 pairs
  [k2][tiles][16][2] for the portable tile: both, so either kernel path runs the plan), the
  (128 + zp) * sum(w) fold in the conv/FC bias (fast_conv.py),
  depthwise weights expanded along an output row (fast_ops.py);
- per-channel requantization constants for the one-shift form (fast_conv.requant_constants);
- an arena: every activation tensor gets an offset for `group` images, tensors whose
  lifetimes do not overlap share bytes (first fit, in execution order).

`build_plan` returns None, with the reason, when an op or tensor is outside what the
executor covers (then Runtime uses the per-op path, which covers everything).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecnn.deploy.runtime import executor as ex
from edgecnn.deploy.runtime import fast_conv as fc
from edgecnn.deploy.runtime import fast_ops as fo
from edgecnn.deploy.runtime import vnni
from edgecnn.deploy.runtime.cpu import MADD_TILES
from edgecnn.deploy.runtime.params import RESCALE_FLOAT

ALIGN = 64
ARENA_TARGET = 256 * 1024  # bytes of live tensors per group: the group stays in L2
MAX_GROUP = 32
A_BLOCK_BYTES = 48 * 1024  # one im2col block (uint8 rows x Kp)
C_BLOCK_BYTES = 64 * 1024  # its int32 results (rows x Cp)
EXPAND_TO = 512  # per-channel requantization constants are repeated to about this length


class Unsupported(Exception):
    """The executor does not cover this graph (the message says why)."""


@dataclass
class Plan:
    ops: np.ndarray  # int64 [n_ops, FIELDS]
    i8: np.ndarray  # int8 pool (lookup tables)
    w8: np.ndarray  # int8 pool (VNNI-packed weights)
    i32: np.ndarray  # int32 pool (folded biases, int16-pair and depthwise weights)
    i64: np.ndarray  # int64 pool (requantization constants)
    f64: np.ndarray  # float64 pool (FC effective scales)
    io: np.ndarray  # int64 [1 + outputs, 3]: arena offset, bytes per image, position in an output row
    group: int  # images per pass
    arena_bytes: int
    a_bytes: int  # im2col scratch (uint8; int16 on the portable path: twice the values' bytes)
    c_words: int  # int32 scratch
    out_row: int  # int8 bytes of all outputs of one image
    output_sizes: tuple  # per output: bytes per image
    macs: int = 0  # multiply-accumulates per image (conv, depthwise, FC): decides the split executor


class _Pools:
    def __init__(self):
        self.parts = {"i8": [], "w8": [], "i32": [], "i64": [], "f64": []}
        self.sizes = dict.fromkeys(self.parts, 0)

    def add(self, pool: str, array) -> int:
        dtype = {"i8": np.int8, "w8": np.int8, "i32": np.int32, "i64": np.int64, "f64": np.float64}[pool]
        array = np.ascontiguousarray(np.asarray(array).reshape(-1)).astype(dtype, casting="unsafe")
        offset = self.sizes[pool]
        self.parts[pool].append(array)
        self.sizes[pool] += array.size + (-array.size % 16)  # keep every part 16-element aligned
        if array.size % 16:
            self.parts[pool].append(np.zeros(-array.size % 16, dtype))
        return offset

    def array(self, pool: str) -> np.ndarray:
        dtype = {"i8": np.int8, "w8": np.int8, "i32": np.int32, "i64": np.int64, "f64": np.float64}[pool]
        return np.concatenate(self.parts[pool]) if self.parts[pool] else np.zeros(16, dtype)


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((np.asarray(v, np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


def requant_vectors(multipliers, shifts) -> np.ndarray:
    """vnni.py's requantization blocks for a per-lane list of (M, shift): one block of RQV_BLOCK int64s per 16 lanes.

    Lanes past the list (up to the next multiple of 16) get M = 0: they compute 0 and are never stored.
    """
    m = np.asarray(multipliers, np.int64).reshape(-1)
    s = np.asarray(shifts, np.int64).reshape(-1)
    groups = -(-m.size // 16)
    lanes = np.zeros((5, groups * 16), np.int64)  # M, left, total, round_pos, round_neg per lane
    lanes[2], lanes[3], lanes[4] = 31, 1 << 30, 1 << 30
    for j, (mj, sj) in enumerate(zip(m, s)):
        lanes[:, j] = fc.requant_constants(int(mj), int(sj))
    blocks = np.zeros((groups, vnni.RQV_BLOCK), np.int64)
    for index, at in ((0, vnni.RQV_M), (2, vnni.RQV_TOTAL), (3, vnni.RQV_POS), (4, vnni.RQV_NEG)):
        per_group = lanes[index].reshape(groups, 16)
        blocks[:, at:at + 8] = per_group[:, 0::2]
        blocks[:, at + 8:at + 16] = per_group[:, 1::2]
    blocks[:, vnni.RQV_LEFT:vnni.RQV_LEFT + 8] = lanes[1].astype(np.int32).reshape(groups, 16).view(np.int64)
    blocks[:, vnni.RQV_FLAGS] = int(not lanes[1].any())  # no lane shifts left: the loops skip the shift
    return blocks.reshape(-1)


def pack_vnni(w_kc: np.ndarray, kp: int, cp: int) -> np.ndarray:
    """[K][C] int8 -> vnni.py's layout: per 64-channel chunk, [k4][tiles][16 lanes][4 bytes]."""
    k, c = w_kc.shape
    padded = np.zeros((kp, cp), np.int8)
    padded[:k, :c] = w_kc
    parts = []
    for chunk in range((cp + 63) // 64):
        tiles = min(4, (cp - 64 * chunk) // 16)
        block = padded[:, 64 * chunk:64 * chunk + 16 * tiles]
        parts.append(block.reshape(kp // 4, 4, tiles, 16).transpose(0, 2, 3, 1).reshape(-1))
    return np.concatenate(parts)


def pack_pairs(w_kc: np.ndarray, kp: int, cp: int, tiles: int = MADD_TILES) -> np.ndarray:
    """[K][C] int8 -> madd.py's layout, int32 words: per chunk of `tiles` 16-channel tiles, [k2][tiles][16 lanes]
    words of two int16s (w[2*k2][c] in the low half, w[2*k2 + 1][c] in the high one). kp, cp: K and C padded
    (kp even, cp a multiple of 16) with zero weights."""
    k, c = w_kc.shape
    padded = np.zeros((kp, cp), np.int16)
    padded[:k, :c] = w_kc
    parts = []
    for chunk in range(-(-cp // (16 * tiles))):
        n = min(tiles, (cp - 16 * tiles * chunk) // 16)
        block = padded[:, 16 * tiles * chunk:16 * tiles * chunk + 16 * n]
        parts.append(np.ascontiguousarray(block.reshape(kp // 2, 2, n, 16).transpose(0, 2, 3, 1)).reshape(-1))
    return np.concatenate(parts).view(np.int32)


def _gemm_row(pools, row, w_kc, bias, in_zp, rescale):
    """Fill the GEMM fields shared by CONV_2D and FULLY_CONNECTED (weights as [K][C])."""
    k, cout = w_kc.shape
    kp, cp = -(-k // 4) * 4, -(-cout // 16) * 16
    sums = w_kc.astype(np.int64).sum(axis=0)
    bias64 = np.zeros(cout, np.int64) if bias.size == 0 else bias.astype(np.int64)
    folded = _wrap32(bias64 - (128 + in_zp) * sums)
    # Per-channel constants repeated: long flat requantization loops, in whole groups of 16.
    reps = -(-EXPAND_TO // cout)
    reps = -(-reps // (16 // np.gcd(cout, 16))) * (16 // np.gcd(cout, 16))
    row[fc.F_PAD_BYTE] = in_zp + 128
    row[fc.F_K], row[fc.F_KP], row[fc.F_CP] = k, kp, cp
    row[fc.F_W8] = pools.add("w8", pack_vnni(w_kc, kp, cp))
    row[fc.F_PAIRS] = pools.add("i32", pack_pairs(w_kc, kp, cp))
    row[fc.F_BIAS] = pools.add("i32", np.tile(folded, reps))
    row[fc.F_EXPANDED] = reps * cout
    kind, values = rescale
    if kind == "float":
        eff = np.zeros(cp)
        eff[:cout] = values
        row[fc.F_FLOAT], row[fc.F_EFF] = 1, pools.add("f64", eff)
    else:
        multipliers, shifts = (np.tile(np.asarray(v).reshape(-1), reps) for v in values)
        row[fc.F_RQ] = pools.add("i64", requant_vectors(multipliers, shifts))
    block = min(A_BLOCK_BYTES // kp, C_BLOCK_BYTES // (4 * cp), 512)
    row[fc.F_BLOCK] = max(4, block // 4 * 4)


def _direct_row(pools, row, w, in_shape, out_shape, p, scratch):
    """Fields and weights of fast_conv._conv_direct: per filter row, kw*cin taps padded to 4 (VNNI) or 2 (pairs)."""
    cout, kh, kw, cin = w.shape
    out_h, out_w = out_shape[1], out_shape[2]
    row_k = kw * cin
    row_kp = -(-row_k // 4) * 4
    cp = int(row[fc.F_CP])
    w_rows = np.zeros((kh, row_kp, cout), np.int8)
    w_rows[:, :row_k, :] = w.reshape(cout, kh, row_k).transpose(1, 2, 0)
    plane_h = max(p.padding_top + in_shape[1], (out_h - 1) * p.stride_height + (kh - 1) * p.dilation_height + 1)
    plane_w = max(p.padding_left + in_shape[2], (out_w - 1) * p.stride_width + kw)
    row[fc.F_PLANE_H], row[fc.F_PLANE_W] = plane_h, plane_w
    row[fc.F_ROW_K4] = row_kp // 4
    row[fc.F_W_DIRECT] = pools.add("w8", pack_vnni(w_rows.reshape(kh * row_kp, cout), kh * row_kp, cp))
    row_k2 = -(-row_k // 2) * 2
    pairs = np.zeros((kh, row_k2, cout), np.int8)
    pairs[:, :row_k, :] = w.reshape(cout, kh, row_k).transpose(1, 2, 0)
    row[fc.F_PAIRS_DIRECT] = pools.add("i32", pack_pairs(pairs.reshape(kh * row_k2, cout), kh * row_k2, cp))
    row[fc.F_DIRECT_ROWS] = max(1, C_BLOCK_BYTES // (4 * cp * out_w))
    scratch["a"] = max(scratch["a"], 2 * (plane_h * plane_w * cin + 64))  # int16 on the portable path
    scratch["c"] = max(scratch["c"], row[fc.F_DIRECT_ROWS] * out_w * cp)


def _window(row, in_shape, out_shape, kh, kw, p, pool=False):
    _, in_h, in_w, cin = in_shape
    _, out_h, out_w, cout = out_shape
    row[fc.F_IN_H], row[fc.F_IN_W], row[fc.F_CIN] = in_h, in_w, cin
    row[fc.F_OUT_H], row[fc.F_OUT_W], row[fc.F_COUT] = out_h, out_w, cout
    row[fc.F_KH], row[fc.F_KW] = kh, kw
    row[fc.F_SH], row[fc.F_SW] = p.stride_height, p.stride_width
    row[fc.F_DH] = 1 if pool else p.dilation_height
    row[fc.F_DW] = 1 if pool else p.dilation_width
    row[fc.F_PAD_T], row[fc.F_PAD_L] = p.padding_top, p.padding_left
    row[fc.F_ACT_MIN], row[fc.F_ACT_MAX] = p.activation_min, p.activation_max


def _op_row(graph, op, pools, scratch):
    """(opcode row without arena offsets, input tensors, output tensor) for one prepared op."""
    row = np.zeros(fc.FIELDS, np.int64)
    shape = lambda t: tuple(graph.tensors[t].shape)  # noqa: E731
    size = lambda t: int(np.prod(shape(t)))  # noqa: E731
    p, kind = op.params, op.kind
    inputs = tuple(op.inputs)
    if len(op.outputs) != 1:
        raise Unsupported(f"{kind} with {len(op.outputs)} outputs")
    out = op.outputs[0]
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        (f_shape, f_data), (_, bias) = op.constants
        in_shape, out_shape = shape(inputs[0]), shape(out)
        if len(in_shape) != 4 or in_shape[0] != 1:
            raise Unsupported(f"{kind} input shape {in_shape}")
        w = np.asarray(f_data, np.int8).reshape(f_shape)
        _window(row, in_shape, out_shape, f_shape[1], f_shape[2], p)
        row[fc.F_OUT_ZP] = p.output_offset
        if kind == "CONV_2D":
            if f_shape[3] != in_shape[3]:
                raise Unsupported("grouped CONV_2D")
            row[0] = ex.OP_GEMM
            _gemm_row(pools, row, w.reshape(f_shape[0], -1).T, np.asarray(bias), -p.input_offset,
                      ("integer", (p.output_multiplier, p.output_shift)))  # fmt: skip
            if p.dilation_width == 1:
                _direct_row(pools, row, w, in_shape, out_shape, p, scratch)
            scratch["a"] = max(scratch["a"], 2 * row[fc.F_BLOCK] * row[fc.F_KP])
            scratch["c"] = max(scratch["c"], row[fc.F_BLOCK] * row[fc.F_CP])
        else:
            row[0] = ex.OP_DEPTHWISE
            cout, out_w, out_h = out_shape[3], out_shape[2], out_shape[1]
            kh, kw = f_shape[1], f_shape[2]
            sh, sw, dh, dw = p.stride_height, p.stride_width, p.dilation_height, p.dilation_width
            plane_h = max(p.padding_top + in_shape[1], (out_h - 1) * sh + (kh - 1) * dh + 1)
            plane_w = max(p.padding_left + in_shape[2], (out_w - 1) * sw + (kw - 1) * dw + 1)
            q_cols = -(-plane_w // sw)  # columns per phase (fast_ops.depthwise)
            row[fo.F_IN_OFFSET], row[fo.F_DEPTH_MULT] = p.input_offset, cout // in_shape[3]
            row[fo.F_PLANE_H], row[fo.F_PLANE_W] = plane_h, q_cols
            taps = w.reshape(kh * kw, cout).astype(np.int32)
            row_len = out_w * cout
            row_stride = -(-row_len // 16) * 16
            expanded = np.zeros((kh * kw, row_stride), np.int16)  # int16 weights, two per int32 of the pool
            expanded[:, :row_len] = np.tile(taps, (1, out_w))
            row[fo.F_WEXP] = pools.add("i32", expanded.reshape(-1).view(np.int32))
            tap_offsets = [(((fx * dw) % sw * plane_h + fy * dh) * q_cols + (fx * dw) // sw) * cout
                           for fy in range(kh) for fx in range(kw)]  # fmt: skip
            row[fo.F_TAPS] = pools.add("i64", np.asarray(tap_offsets, np.int64))
            b = np.zeros(cout, np.int32) if np.asarray(bias).size == 0 else np.asarray(bias, np.int32)
            row[fc.F_BIAS] = pools.add("i32", np.tile(b, out_w))
            row[fc.F_RQ] = pools.add("i64", requant_vectors(np.tile(p.output_multiplier, out_w),
                                                            np.tile(p.output_shift, out_w)))  # fmt: skip
            scratch["c"] = max(scratch["c"], (sw * plane_h * q_cols * cout + 32) // 2 + row_stride + 32)
            if dw == 1 and sw == 1:  # the VNNI path's pair plane (fast_ops.depthwise_pairs; at stride 2 its fill
                # measured slower than the taps it saves: MobileNetV1 48x48x16 s2 15.8 vs 13.7 us)
                pairs = -(-kw // 2)
                pair_cols = out_w + (2 * (pairs - 1)) // sw
                w_pairs = np.zeros((kh, pairs, 2, row_stride), np.int16)
                for fx in range(kw):
                    w_pairs[:, fx // 2, fx % 2, :row_len] = np.tile(w.reshape(kh, kw, cout)[:, fx, :], (1, out_w))
                # int32 word j of tap t: (w first, w second) as two int16s, the first in the low half
                words = w_pairs.transpose(0, 1, 3, 2).reshape(-1).view(np.int32)
                row[fo.F_PAIR_W] = pools.add("i32", words)
                row[fo.F_PAIR_TAPS] = pools.add("i64", np.asarray(
                    [(fy * dh * pair_cols + (2 * m) // sw) * cout for fy in range(kh) for m in range(pairs)], np.int64))
                row[fo.F_PAIR_COLS], row[fo.F_PAIR_COUNT] = pair_cols, kh * pairs
                scratch["c"] = max(scratch["c"], plane_h * pair_cols * cout + 64)
    elif kind == "FULLY_CONNECTED":
        (f_shape, f_data), (_, bias) = op.constants
        if p.weights_offset != 0:
            raise Unsupported("FULLY_CONNECTED with a nonzero per-tensor weights zero point")
        units, depth = f_shape
        rows = size(inputs[0]) // depth
        row[0] = ex.OP_GEMM
        row[fc.F_IN_H] = row[fc.F_OUT_H] = 1
        row[fc.F_IN_W] = row[fc.F_OUT_W] = rows
        row[fc.F_CIN], row[fc.F_COUT] = depth, units
        row[fc.F_KH] = row[fc.F_KW] = row[fc.F_SH] = row[fc.F_SW] = row[fc.F_DH] = row[fc.F_DW] = 1
        row[fc.F_ACT_MIN], row[fc.F_ACT_MAX], row[fc.F_OUT_ZP] = p.activation_min, p.activation_max, p.output_offset
        w = np.asarray(f_data, np.int8).reshape(units, depth)
        rescale = ("float", p.effective_scale) if p.rescale == RESCALE_FLOAT else (
            "integer", (p.output_multiplier, p.output_shift))
        _gemm_row(pools, row, w.T, np.asarray(bias), -p.input_offset, rescale)
        scratch["a"] = max(scratch["a"], 2 * row[fc.F_BLOCK] * row[fc.F_KP])
        scratch["c"] = max(scratch["c"], row[fc.F_BLOCK] * row[fc.F_CP])
    elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        in_shape, out_shape = shape(inputs[0]), shape(out)
        if len(in_shape) != 4 or in_shape[0] != 1:
            raise Unsupported(f"{kind} input shape {in_shape}")
        row[0] = ex.OP_MAX_POOL if kind == "MAX_POOL_2D" else ex.OP_AVERAGE_POOL
        _window(row, in_shape, out_shape, p.filter_height, p.filter_width, p, pool=True)
        if kind == "AVERAGE_POOL_2D" and (
                p.padding_top >= p.filter_height or (out_shape[1] - 1) * p.stride_height - p.padding_top >= in_shape[1]
                or p.padding_left >= p.filter_width
                or (out_shape[2] - 1) * p.stride_width - p.padding_left >= in_shape[2]):  # fmt: skip
            raise Unsupported("AVERAGE_POOL_2D with a window entirely in the padding")
        scratch["c"] = max(scratch["c"], in_shape[3])
    elif kind == "RESHAPE":
        row[0], row[fo.F_SIZE] = ex.OP_COPY, size(out)
        inputs = inputs[:1]
    elif kind == "SOFTMAX":
        depth = shape(inputs[0])[-1]
        row[0] = ex.OP_SOFTMAX
        row[fo.F_SM_ROWS], row[fo.F_SM_DEPTH] = size(inputs[0]) // depth, depth
        row[fo.F_SM_MULT], row[fo.F_SM_LEFT], row[fo.F_SM_DIFF_MIN] = (
            p.input_multiplier, p.input_left_shift, p.diff_min)
    elif kind in ("ADD", "SUB"):
        if len(inputs) != 2 or any(graph.tensors[t].is_constant for t in inputs):
            raise Unsupported(f"{kind} with a constant operand")
        if shape(inputs[0]) != shape(out) or shape(inputs[1]) != shape(out):
            raise Unsupported(f"{kind} with broadcasting")
        row[0], row[fo.F_SIZE] = ex.OP_ADD_SUB, size(out)
        row[fo.F_AB_IN1_OFF], row[fo.F_AB_IN2_OFF], row[fo.F_AB_OUT_OFF] = (
            p.input1_offset, p.input2_offset, p.output_offset)
        row[fo.F_AB_LEFT] = p.left_shift
        row[fo.F_AB_RQ1:fo.F_AB_RQ1 + 5] = fc.requant_constants(p.input1_multiplier, p.input1_shift)
        row[fo.F_AB_RQ2:fo.F_AB_RQ2 + 5] = fc.requant_constants(p.input2_multiplier, p.input2_shift)
        row[fo.F_AB_RQO:fo.F_AB_RQO + 5] = fc.requant_constants(p.output_multiplier, p.output_shift)
        row[fo.F_AB_SUB] = 1 if kind == "SUB" else 0
        row[fo.F_AB_VEC:fo.F_AB_VEC + 5] = (p.input1_offset, p.input2_offset, p.output_offset, p.left_shift,
                                            row[fo.F_AB_SUB])  # fmt: skip
        row[fo.F_AB_RQV] = pools.add("i64", np.concatenate([
            requant_vectors([m] * 16, [sh] * 16) for m, sh in ((p.input1_multiplier, p.input1_shift),
                                                               (p.input2_multiplier, p.input2_shift),
                                                               (p.output_multiplier, p.output_shift))]))  # fmt: skip
        row[fc.F_ACT_MIN], row[fc.F_ACT_MAX] = p.activation_min, p.activation_max
    elif kind == "MEAN":
        in_shape = shape(inputs[0])
        if len(in_shape) != 4 or list(np.asarray(p.reduced)) != [0, 1, 1, 0] or in_shape[0] != 1:
            raise Unsupported("MEAN other than over height and width of NHWC")
        row[0] = ex.OP_MEAN_HW
        row[fo.F_MEAN_PIXELS], row[fo.F_MEAN_DEPTH] = in_shape[1] * in_shape[2], in_shape[3]
        if p.count != in_shape[1] * in_shape[2]:
            raise Unsupported("MEAN count")
        row[fo.F_MEAN_IN_ZP], row[fo.F_MEAN_OUT_ZP] = p.input_zero_point, p.output_zero_point
        row[fo.F_MEAN_RQ:fo.F_MEAN_RQ + 5] = fc.requant_constants(p.multiplier, p.shift)
        scratch["c"] = max(scratch["c"], in_shape[3])
    elif kind in ("LOGISTIC", "TANH"):
        row[0], row[fo.F_SIZE] = ex.OP_LOOKUP, size(out)
        row[fo.F_LUT_TABLE] = pools.add("i8", np.asarray(p.table, np.int8))
    else:
        raise Unsupported(f"no fast kernel for {kind}")
    return row, inputs, out


class _Arena:
    """First-fit placement of tensors whose lifetimes are intervals of the op order."""

    def __init__(self):
        self.live: dict[int, tuple[int, int]] = {}  # tensor -> (offset, size)
        self.offsets: dict[int, int] = {}
        self.peak = 0

    def place(self, tensor: int, nbytes: int) -> int:
        nbytes = -(-nbytes // ALIGN) * ALIGN
        offset = 0
        for start, length in sorted(self.live.values()):
            if start - offset >= nbytes:
                break
            offset = max(offset, start + length)
        self.live[tensor] = (offset, nbytes)
        self.offsets[tensor] = offset
        self.peak = max(self.peak, offset + nbytes)
        return offset

    def free(self, tensor: int) -> None:
        self.live.pop(tensor, None)


def _layout(graph, rows, group):
    """Arena offsets for `group` images, and the arena's size."""
    size = lambda t: int(np.prod(graph.tensors[t].shape))  # noqa: E731
    last = {}
    for i, (_, inputs, _) in enumerate(rows):
        for t in inputs:
            last[t] = i
    for t in graph.outputs:
        last[t] = len(rows)
    arena = _Arena()
    arena.place(graph.inputs[0], group * size(graph.inputs[0]))
    for i, (_, inputs, out) in enumerate(rows):
        if out not in arena.offsets:
            arena.place(out, group * size(out))
        for t in set(inputs):
            if last.get(t, -1) == i:
                arena.free(t)
    return arena.offsets, arena.peak


def build_plan(graph, prepared_ops) -> Plan:
    """The plan for a prepared graph; raises Unsupported when the executor does not cover it."""
    if len(graph.inputs) != 1:
        raise Unsupported(f"{len(graph.inputs)} graph inputs")
    for t in list(graph.inputs) + list(graph.outputs):
        if graph.tensors[t].dtype != "int8":
            raise Unsupported(f"graph input/output {graph.tensors[t].name} is {graph.tensors[t].dtype}")
    pools = _Pools()
    scratch = {"a": 16, "c": 256}
    rows = []
    for op in prepared_ops:
        row, inputs, out = _op_row(graph, op, pools, scratch)
        for t in inputs + (out,):
            if graph.tensors[t].dtype != "int8" or graph.tensors[t].is_constant:
                raise Unsupported(f"{op.kind} reads or writes {graph.tensors[t].name} ({graph.tensors[t].dtype})")
        rows.append((row, inputs, out))
    _, per_image = _layout(graph, rows, 1)
    group = int(max(1, min(MAX_GROUP, ARENA_TARGET // max(1, per_image))))
    offsets, arena_bytes = _layout(graph, rows, group)
    table = np.zeros((max(1, len(rows)), fc.FIELDS), np.int64)
    for i, (row, inputs, out) in enumerate(rows):
        row[fc.F_IN] = offsets[inputs[0]]
        if len(inputs) > 1:
            row[fo.F_IN2] = offsets[inputs[1]]
        row[fc.F_OUT] = offsets[out]
        table[i] = row
    if not rows:
        raise Unsupported("a graph without ops")
    size = lambda t: int(np.prod(graph.tensors[t].shape))  # noqa: E731
    io = [[offsets[graph.inputs[0]], size(graph.inputs[0]), 0]]
    position = 0
    for t in graph.outputs:
        io.append([offsets[t], size(t), position])
        position += size(t)
    macs = 0
    for row in table:
        if row[0] == ex.OP_GEMM:
            macs += int(row[fc.F_OUT_H] * row[fc.F_OUT_W] * row[fc.F_COUT] * row[fc.F_K])
        elif row[0] == ex.OP_DEPTHWISE:
            macs += int(row[fc.F_OUT_H] * row[fc.F_OUT_W] * row[fc.F_COUT] * row[fc.F_KH] * row[fc.F_KW])
    # GEMM blocks are computed in rows of 4 (padding rows included): room for 3 more rows (int16).
    a_bytes = int(scratch["a"]) + 8 * 4096
    return Plan(table, pools.array("i8"), pools.array("w8"), pools.array("i32"), pools.array("i64"),
                pools.array("f64"), np.asarray(io, np.int64), group, int(arena_bytes), a_bytes,
                int(scratch["c"]) + 4096, position, tuple(size(t) for t in graph.outputs), macs)  # fmt: skip
