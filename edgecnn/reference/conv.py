"""2-D convolution (NHWC, OHWI filters, groups, dilation), forward and backward.

The fast paths: im2col + BLAS GEMM (conv_gemm.py) for ungrouped convs that are strided
or have small maps, the Numba kernels in conv_kernels.py for the rest (chosen per
shape by measurement, see GEMM_MAX_PIXELS). The naive path is plain loops written as
textbook convolutions of the upstream gradient; tests hold them together.
"""

import functools
from typing import NamedTuple

import numpy as np

from edgecnn.errors import ShapeError
from edgecnn.reference.conv_gemm import conv_gemm_backward, conv_gemm_forward
from edgecnn.reference.conv_tiled import conv_bwd_tiled, conv_fwd_tiled, dx_mode, tiled_ok
from edgecnn.reference.conv_kernels import (
    VECTOR,
    conv_bwd_w_direct,
    conv_bwd_wide,
    conv_bwd_x_direct,
    conv_fwd_direct,
    conv_fwd_wide,
)
from edgecnn.reference.dense import DenseCache, dense_backward, dense_forward
from edgecnn.reference.padding import as_pair, normalize_pad
from edgecnn.reference.workers import run_chunks


class Conv2dCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    stride: tuple
    pad: tuple
    dilation: tuple
    groups: int
    path: str  # "dense" (kernel covers the input), "tiled", "gemm", "wide" (stride 1), "subsampled", "phases", "direct"
    phase_cache: object = None  # "subsampled", "phases": the cache of the stride-1 conv they run
    taps: object = None         # "wide": indices of the only (ky, kx, c) taps that run (None: all)


def _check_conv(x, w, b, groups):
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(f"conv2d wants x (N,H,W,Cin) and w (O,KH,KW,Cin/groups), got {x.shape} and {w.shape}")
    c_in, c_out = x.shape[3], w.shape[0]
    if groups < 1 or c_in % groups or c_out % groups:
        raise ShapeError(f"conv2d: groups={groups} must divide Cin={c_in} and O={c_out}")
    if w.shape[3] != c_in // groups:
        raise ShapeError(f"conv2d: w {w.shape} has {w.shape[3]} input channels, x has {c_in}/{groups} per group")
    if b is not None and b.shape != (c_out,):
        raise ShapeError(f"conv2d: bias shape {b.shape} != ({c_out},)")


def _out_hw(in_hw, k_hw, stride, pad, dilation):
    top, bottom, left, right = pad
    out_h = (in_hw[0] + top + bottom - (k_hw[0] - 1) * dilation[0] - 1) // stride[0] + 1
    out_w = (in_hw[1] + left + right - (k_hw[1] - 1) * dilation[1] - 1) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ShapeError(f"conv2d: kernel {k_hw} does not fit input {in_hw} with pad {pad}, dilation {dilation}")
    return out_h, out_w


WIDE_BACKWARD_PARTS = 8  # fixed image chunks of the stride-1 kernels, run on workers.py's threads: the
                         # backward's weight gradient sums one partial per chunk, so the chunks must not
                         # follow the thread count


WIDE_FORWARD_PARTS = 16  # finer: no sums across parts, and two threads end closer together
WIDE_PART_MIN_MACS = 4_000_000  # ~0.1 ms of forward work per part at least


def _parts(n_img):
    return max(1, min(WIDE_BACKWARD_PARTS, n_img))


def _images(t, parts, n_img):
    """Images [n0, n1) of chunk t of `parts`."""
    return t * n_img // parts, (t + 1) * n_img // parts


# Measured per layer of resnet8 on 28x28x1 at batch 64, one thread (ms fwd/bwd, wide or phases -> gemm):
# 28x28 3x3 16->16 4.1/8.8 -> 6.3/13.2, stem 1->16 0.8/0.8 -> 1.7/1.4, 14x14 3x3 32->32 4.0/8.3 -> 3.8/8.0,
# 3x3 s2 16->32 4.4/9.9 -> 2.2/5.5, 32->64 3.9/11.6 -> 1.4/3.1, 7x7 3x3 64->64 5.8/13.6 -> 2.6/6.2.
# The wide kernels keep long rows busy; GEMM wins on strided convs and small maps. 14x14 was even on
# one thread but 1-3 ms per step better wide on two (whole-step A/B on a quiet machine), so it stays wide.
GEMM_MAX_PIXELS = 100   # stride-1 convs with at most this many output pixels per image
GEMM_MIN_CHANNELS = 8   # narrower inputs (LeNet, the stem) give GEMMs too short a K


def _use_gemm(x_shape, w_shape, stride, groups, out_hw):
    return (groups == 1 and x_shape[3] >= GEMM_MIN_CHANNELS
            and (stride != (1, 1) or out_hw[0] * out_hw[1] <= GEMM_MAX_PIXELS))


def _round_up(n, multiple):
    return -(-n // multiple) * multiple


class _WideGeometry(NamedTuple):
    """Buffer sizes and tap offsets of the stride-1 kernels (see conv_kernels)."""
    hp: int
    wp: int
    out_len: int        # OH*Wp rounded up to VECTOR
    xp_len: int         # planar image + the slack the last taps read past its end
    x_offs: np.ndarray  # (KH*KW*Cg,) offset of tap (ky, kx, c) into a group's planes
    lead: int           # zeros before each dy row, so transposed-conv offsets stay >= 0
    row_len: int        # lead + padded plane
    plane_len: int      # Hp*Wp rounded up to VECTOR
    dy_offs: np.ndarray  # (Og*KH*KW,) offset of tap (o, ky, kx) into a group's dy rows


@functools.lru_cache(maxsize=256)
def _wide_geometry(x_shape, w_shape, pad, dilation, groups):
    """Cached per shape (a training step asks for the same few again and again); callers only read it."""
    _, h, wd, c_in = x_shape
    c_out, kh, kw, cg = w_shape
    (top, bottom, left, right), (dh, dw) = pad, dilation
    hp, wp = h + top + bottom, wd + left + right
    oh = hp - (kh - 1) * dh
    out_len = _round_up(oh * wp, VECTOR)
    ky, kx, c = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(cg), indexing="ij")
    x_offs = (c * hp * wp + ky * dh * wp + kx * dw).ravel().astype(np.int64)
    xp_len = (c_in - 1) * hp * wp + (kh - 1) * dh * wp + (kw - 1) * dw + out_len
    lead = (kh - 1) * dh * wp + (kw - 1) * dw
    plane_len = _round_up(hp * wp, VECTOR)
    row_len = lead + plane_len
    o, ky, kx = np.meshgrid(np.arange(c_out // groups), np.arange(kh), np.arange(kw), indexing="ij")
    dy_offs = (o * row_len + lead - ky * dh * wp - kx * dw).ravel().astype(np.int64)
    return _WideGeometry(hp, wp, out_len, xp_len, x_offs, lead, row_len, plane_len, dy_offs)


class _TiledGeometry(NamedTuple):
    """Offsets of conv_tiled's kernels (see its docstring)."""
    hp: int
    wp: int
    koff: np.ndarray     # (KH*KW*C,) tap (ky, kx, c) in the padded image
    roff: np.ndarray     # (OW,) output column ox's first tap
    poff: np.ndarray     # (OH*OW,) output pixel (oy, ox)'s first tap
    dx_mode: int         # conv_tiled.dx_mode
    dx_pad: tuple        # mode 1: dy's (top, left, Hq, Wq) in its padded buffer
    dx_koff: np.ndarray  # mode 1: flipped tap (ky, kx, o) in dy's buffer; mode 2: arange(O)
    dx_roff: np.ndarray  # mode 1: dx column ix; mode 2: dy pixel p


@functools.lru_cache(maxsize=256)
def _tiled_geometry(x_shape, w_shape, stride, pad, dilation):
    _, h, wd, c_in = x_shape
    c_out, kh, kw, _ = w_shape
    (sh, sw), (dh, dw), (top, bottom, left, right) = stride, dilation, pad
    hp, wp = h + top + bottom, wd + left + right
    oh, ow = _out_hw((h, wd), (kh, kw), stride, pad, dilation)
    ky, kx, c = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c_in), indexing="ij")
    koff = ((ky * dh * wp + kx * dw) * c_in + c).ravel().astype(np.intp)
    roff = (np.arange(ow) * sw * c_in).astype(np.intp)
    oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    poff = ((oy * sh * wp + ox * sw) * c_in).ravel().astype(np.intp)
    mode = dx_mode(c_in, stride, dilation, pad, (kh, kw))
    dx_pad, dx_koff, dx_roff = (0, 0, 0, 0), np.zeros(0, np.intp), np.zeros(0, np.intp)
    if mode == 1:
        hq, wq = h + (kh - 1) * dh, wd + (kw - 1) * dw
        dx_pad = ((kh - 1) * dh - top, (kw - 1) * dw - left, hq, wq)
        ky, kx, o = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c_out), indexing="ij")
        dx_koff = ((ky * dh * wq + kx * dw) * c_out + o).ravel().astype(np.intp)
        dx_roff = (np.arange(wd) * c_out).astype(np.intp)
    elif mode == 2:
        dx_koff, dx_roff = np.arange(c_out, dtype=np.intp), (np.arange(oh * ow) * c_out).astype(np.intp)
    return _TiledGeometry(hp, wp, koff, roff, poff, mode, dx_pad, dx_koff, dx_roff)


def conv2d_forward(x, w, b, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1, _taps=None):
    """y = conv(x, w) + b.

    x (N,H,W,Cin), w (O,KH,KW,Cin/G), b (O,) or None -> y (N,OH,OW,O), in x's dtype.
    Output channel o reads input group o // (O/G). pad is (top, bottom, left, right)
    as from padding.resolve_padding (an int or (ph, pw) also work). `_taps` (stride 1 only) lists
    the flat (ky, kx, c) taps to run, the others being known zeros (the phase form's).
    """
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    b = None if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    _check_conv(x, w, b, groups)
    n_img, h, wd, _ = x.shape
    c_out, kh, kw, _ = w.shape
    top, _, left, _ = pad = normalize_pad(pad)
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    oh, ow = _out_hw((h, wd), (kh, kw), stride, pad, dilation)
    bias = b if b is not None else np.zeros(c_out, dtype=x.dtype)
    if groups == 1 and pad == (0, 0, 0, 0) and dilation == (1, 1) and (kh, kw) == (h, wd):
        # One window over the whole image (LeNet's C5): exactly a dense layer on the flat image.
        # The wide kernels would run 1-pixel rows, where per-pass overhead is everything.
        y, _ = dense_forward(x.reshape(n_img, -1), w.reshape(c_out, -1), bias)
        return y.reshape(n_img, 1, 1, c_out), Conv2dCache(x, w, b is not None, stride, pad, dilation, groups, "dense")
    if tiled_ok(x.dtype, x.shape, w.shape, stride, pad, dilation, groups, _taps):
        g = _tiled_geometry(x.shape, w.shape, stride, pad, dilation)
        w_t = np.ascontiguousarray(w.reshape(c_out, -1).T).reshape(-1)
        y = np.empty((n_img, oh, ow, c_out), dtype=x.dtype)
        macs = n_img * oh * ow * c_out * g.koff.shape[0]
        parts = max(1, min(WIDE_FORWARD_PARTS, n_img, macs // WIDE_PART_MIN_MACS))
        run_chunks(lambda t: conv_fwd_tiled(x, w_t, bias, g.koff, g.roff, stride[0], top, left, g.hp, g.wp,
                                            *_images(t, parts, n_img), y), parts)
        return y, Conv2dCache(x, w, b is not None, stride, pad, dilation, groups, "tiled")
    if _use_gemm(x.shape, w.shape, stride, groups, (oh, ow)):
        y = conv_gemm_forward(x, w, b, stride, pad, dilation, oh, ow)
        return y, Conv2dCache(x, w, b is not None, stride, pad, dilation, groups, "gemm")
    if stride != (1, 1) and groups == x.shape[3] and groups > 1:
        # Depthwise: the stride-1 conv, subsampled. s*s times the MACs, but each channel is one long
        # vectorized row; the phase form would split every channel into s*s short ones.
        pad1 = _stride1_pad((h, wd), (kh, kw), stride, pad, dilation, (oh, ow))
        y1, inner = conv2d_forward(x, w, b, pad=pad1, dilation=dilation, groups=groups)
        y = np.ascontiguousarray(y1[:, ::stride[0], ::stride[1]][:, :oh, :ow])
        return y, Conv2dCache(x, w, b is not None, stride, pad, dilation, groups, "subsampled", inner)
    if stride != (1, 1) and dilation == (1, 1):
        geo = _phase_geometry(x.shape, w.shape, stride, pad, groups)
        y, inner = conv2d_forward(_to_phases(x, geo), _phase_weights(w, geo), b, groups=groups,
                                  _taps=_phase_taps(w.shape, geo))
        return y, Conv2dCache(x, w, b is not None, stride, pad, dilation, groups, "phases", inner)
    y = np.empty((n_img, oh, ow, c_out), dtype=x.dtype)
    if stride == (1, 1):
        g = _wide_geometry(x.shape, w.shape, pad, dilation, groups)
        w_flat, x_offs = w.reshape(c_out, -1), g.x_offs
        if _taps is not None:
            w_flat, x_offs = np.ascontiguousarray(w_flat[:, _taps]), x_offs[_taps]
        # each image's output is the same whatever the parts; small convs (LeNet's) take few: a
        # Python-side kernel call costs ~10 us
        macs = n_img * oh * ow * c_out * x_offs.shape[0]
        parts = max(1, min(WIDE_FORWARD_PARTS, n_img, macs // WIDE_PART_MIN_MACS))
        run_chunks(lambda t: conv_fwd_wide(x, w_flat, bias, x_offs, groups, top, left, g.hp, g.wp, g.out_len,
                                           g.xp_len, *_images(t, parts, n_img), y), parts)
        path = "wide"
    else:
        conv_fwd_direct(x, w, bias, groups, *stride, *dilation, top, left, y)
        path = "direct"
    return y, Conv2dCache(x, w, b is not None, stride, pad, dilation, groups, path, None, _taps)


def conv2d_backward(dy, cache, need_dx=True):
    """(dx, dw, db) from dy (N,OH,OW,O); db is None if the forward had no bias.

    need_dx=False skips dx (returns None): the first layer's input needs no gradient.
    """
    x, w, has_bias, stride, pad, dilation, groups, path, inner, taps = cache
    n_img, h, wd, c_in = x.shape
    c_out, kh, kw, cg = w.shape
    og = c_out // groups
    top, _, left, _ = pad
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    oh, ow = _out_hw((h, wd), (kh, kw), stride, pad, dilation)
    if dy.shape != (n_img, oh, ow, c_out):
        raise ShapeError(f"conv2d_backward: dy {dy.shape} != forward output {(n_img, oh, ow, c_out)}")
    if path == "dense":
        flat_dx, dw, db = dense_backward(dy.reshape(n_img, c_out), DenseCache(x.reshape(n_img, -1),
                                                                             w.reshape(c_out, -1), has_bias))
        return (flat_dx.reshape(x.shape) if need_dx else None), dw.reshape(w.shape), db
    if path == "tiled":
        return _tiled_backward(dy, cache, need_dx)
    if path == "gemm":
        return conv_gemm_backward(x, w, dy, stride, pad, dilation, need_dx, has_bias)
    if path == "subsampled":
        oh1, ow1 = _out_hw((h, wd), (kh, kw), (1, 1), inner.pad, dilation)
        dy1 = np.zeros((n_img, oh1, ow1, c_out), dtype=dy.dtype)
        dy1[:, ::stride[0], ::stride[1]][:, :oh, :ow] = dy
        return conv2d_backward(dy1, inner, need_dx)
    if path == "phases":
        geo = _phase_geometry(x.shape, w.shape, stride, pad, groups)
        dxph, dwph, db = conv2d_backward(dy, inner, need_dx)
        return (_from_phases(dxph, x.shape, geo) if need_dx else None), _phase_weights_back(dwph, w.shape, geo), db
    dx = np.empty_like(x) if need_dx else None
    if path == "wide":
        g = _wide_geometry(x.shape, w.shape, pad, dilation, groups)
        # taps (o, ky, kx) of input channel c: w_cols[c] lists w[group*Og + o, ky, kx, c % Cg]
        w_cols = np.ascontiguousarray(
            w.reshape(groups, og, kh, kw, cg).transpose(0, 4, 1, 2, 3).reshape(c_in, og * kh * kw))
        x_offs = g.x_offs if taps is None else g.x_offs[taps]
        n_parts = _parts(n_img)
        dw_part = np.zeros((n_parts, c_out, x_offs.shape[0]), dtype=x.dtype)
        db_part = np.zeros((n_parts, c_out), dtype=x.dtype)
        dx_or_empty = dx if need_dx else x[:0]
        calls = max(1, min(n_parts, n_img * oh * ow * c_out * x_offs.shape[0] // WIDE_PART_MIN_MACS))
        run_chunks(lambda t: conv_bwd_wide(x, dy, x_offs, w_cols, g.dy_offs, groups, top, left, g.hp, g.wp, g.out_len,
                                           g.xp_len, g.lead, g.row_len, g.plane_len, need_dx,
                                           t * n_parts // calls, (t + 1) * n_parts // calls, n_parts, dw_part, db_part,
                                           dx_or_empty), calls)
        if taps is None:
            dw = dw_part.sum(axis=0).reshape(w.shape)
        else:  # the skipped taps' weights are structural zeros: their gradient is never read
            dw = np.zeros((c_out, kh * kw * cg), dtype=x.dtype)
            dw[:, taps] = dw_part.sum(axis=0)
            dw = dw.reshape(w.shape)
        db = db_part.sum(axis=0) if has_bias else None
    else:
        dw = conv_bwd_w_direct(x, dy, groups, *stride, *dilation, top, left, np.empty_like(w))
        db = dy.reshape(-1, c_out).sum(axis=0) if has_bias else None
        if need_dx:
            conv_bwd_x_direct(dy, w, groups, *stride, *dilation, top, left, dx)
    return dx, dw, db


def _tiled_backward(dy, cache, need_dx):
    x, w, has_bias, stride, pad, dilation, groups = cache[:7]
    n_img, _, _, c_in = x.shape
    c_out, kh, kw, _ = w.shape
    top, _, left, _ = pad
    g = _tiled_geometry(x.shape, w.shape, stride, pad, dilation)
    mode = g.dx_mode if need_dx else 0
    if mode == 1:  # w_t[(ky, kx, o), c] = w[o, KH-1-ky, KW-1-kx, c]
        dx_w = np.ascontiguousarray(w[:, ::-1, ::-1, :].transpose(1, 2, 0, 3)).reshape(-1)
    else:
        dx_w = w.reshape(-1)
    n_parts = _parts(n_img)
    k = g.koff.shape[0]
    dw_part = np.zeros((n_parts, k * c_out), dtype=x.dtype)
    db_part = np.zeros((n_parts, c_out), dtype=x.dtype)
    dx = np.empty_like(x) if mode else x[:0]
    calls = max(1, min(n_parts, n_img * dy.shape[1] * dy.shape[2] * c_out * k // WIDE_PART_MIN_MACS))
    run_chunks(lambda t: conv_bwd_tiled(x, dy, g.koff, g.poff, top, left, g.hp, g.wp, dx_w, g.dx_koff, g.dx_roff,
                                        g.dx_pad, mode, stride, dilation, (kh, kw), t * n_parts // calls,
                                        (t + 1) * n_parts // calls, n_parts, dw_part, db_part, dx), calls)
    dw = np.ascontiguousarray(dw_part.sum(axis=0).reshape(kh, kw, c_in, c_out).transpose(3, 0, 1, 2))
    db = db_part.sum(axis=0) if has_bias else None
    if need_dx and not mode:  # no tile form for this dx (a narrow input with a strided or odd kernel)
        dx = conv_bwd_x_direct(dy, w, groups, *stride, *dilation, top, left, np.empty_like(x))
    return (dx if need_dx else None), dw, db


# ----------------------------------------------------------------------------- strided convs as stride 1

def _stride1_pad(in_hw, k_hw, stride, pad, dilation, out_hw):
    """Padding of the stride-1 conv whose every s-th output is the strided conv's: same top/left,
    bottom/right just enough (or cut) so that it has (out - 1) * s + 1 rows and columns."""
    top, _, left, _ = pad
    sizes = []
    for size, k, s, d, o, before in zip(in_hw, k_hw, stride, dilation, out_hw, (top, left)):
        sizes.append(max(0, (o - 1) * s + (k - 1) * d + 1 - size - before))
    return (top, sizes[0], left, sizes[1])


class _PhaseGeometry(NamedTuple):
    """A stride-s conv as a stride-1 conv over the input's polyphase components.

    Output (oy, ox) reads padded input (s*oy + ky, s*ox + kx), which is pixel
    (oy + ky//s, ox + kx//s) of phase (ky % s, kx % s). So the conv equals a stride-1
    conv, kernel ceil(k/s), over an image whose channels are the phases that some tap
    uses (all s*s for 3x3 stride 2, one for 1x1), with zero weights where a
    (phase, tap) pair does not exist. 3x3 stride 2 costs 16/9 the MACs of a direct
    conv, but runs in the vectorized wide kernels, several times faster.
    """
    stride: tuple
    pad: tuple           # (top, bottom, left, right) of the original conv
    phases: tuple        # the (py, px) used, in channel order
    kq: tuple            # kernel of the phase conv, ceil(k / s) per axis
    hq: int              # phase image height: OH + kq_h - 1
    wq: int
    groups: int


def _phase_geometry(x_shape, w_shape, stride, pad, groups):
    _, h, wd, _ = x_shape
    _, kh, kw, _ = w_shape
    (sh, sw), (top, bottom, left, right) = stride, pad
    oh, ow = _out_hw((h, wd), (kh, kw), stride, pad, (1, 1))
    kq = (-(-kh // sh), -(-kw // sw))
    phases = tuple(sorted({(ky % sh, kx % sw) for ky in range(kh) for kx in range(kw)}))
    return _PhaseGeometry(stride, pad, phases, kq, oh + kq[0] - 1, ow + kq[1] - 1, groups)


def _phase_taps(w_shape, geo):
    """Flat indices (ky', kx', phase, c) of the phase conv's taps that hold a real weight."""
    _, kh, kw, cg = w_shape
    (sh, sw), n_phases = geo.stride, len(geo.phases)
    keep = [((qy * geo.kq[1] + qx) * n_phases + p) * cg + c
            for qy in range(geo.kq[0]) for qx in range(geo.kq[1]) for p, (py, px) in enumerate(geo.phases)
            if qy * sh + py < kh and qx * sw + px < kw for c in range(cg)]
    return np.array(keep, dtype=np.int64)


def _to_phases(x, geo):
    """x (N,H,W,C) -> (N, Hq, Wq, G*P*Cg): group-major channels, so each group's phases stay together."""
    n_img, h, wd, c_in = x.shape
    (sh, sw), (top, _, left, _) = geo.stride, geo.pad
    hp, wp = geo.hq * sh, geo.wq * sw  # the padded extent the phases cover; rows past it no window reads
    xp = np.zeros((n_img, hp, wp, c_in), dtype=x.dtype)
    rows, cols = min(h, hp - top), min(wd, wp - left)
    xp[:, top:top + rows, left:left + cols] = x[:, :rows, :cols]
    split = xp.reshape(n_img, geo.hq, sh, geo.wq, sw, geo.groups, c_in // geo.groups)
    parts = [split[:, :, py, :, px] for py, px in geo.phases]           # each (N, Hq, Wq, G, Cg)
    return np.ascontiguousarray(np.stack(parts, axis=4)).reshape(n_img, geo.hq, geo.wq, -1)


def _from_phases(dxph, x_shape, geo):
    """The adjoint of _to_phases: phase gradients scattered back to (N,H,W,C)."""
    n_img, h, wd, c_in = x_shape
    (sh, sw), (top, _, left, _) = geo.stride, geo.pad
    split = np.zeros((n_img, geo.hq, sh, geo.wq, sw, geo.groups, c_in // geo.groups), dtype=dxph.dtype)
    parts = dxph.reshape(n_img, geo.hq, geo.wq, geo.groups, len(geo.phases), c_in // geo.groups)
    for i, (py, px) in enumerate(geo.phases):
        split[:, :, py, :, px] = parts[:, :, :, :, i]
    xp = split.reshape(n_img, geo.hq * sh, geo.wq * sw, c_in)
    dx = np.zeros(x_shape, dtype=dxph.dtype)
    rows, cols = min(h, xp.shape[1] - top), min(wd, xp.shape[2] - left)
    dx[:, :rows, :cols] = xp[:, top:top + rows, left:left + cols]
    return dx


def _phase_weights(w, geo):
    """w (O,KH,KW,Cg) -> (O, kq_h, kq_w, P*Cg), zero where a phase has no tap."""
    c_out, kh, kw, cg = w.shape
    (sh, sw), index = geo.stride, {p: i for i, p in enumerate(geo.phases)}
    wq = np.zeros((c_out, geo.kq[0], geo.kq[1], len(geo.phases), cg), dtype=w.dtype)
    for ky in range(kh):
        for kx in range(kw):
            wq[:, ky // sh, kx // sw, index[ky % sh, kx % sw]] = w[:, ky, kx]
    return wq.reshape(c_out, geo.kq[0], geo.kq[1], -1)


def _phase_weights_back(dwq, w_shape, geo):
    c_out, kh, kw, cg = w_shape
    (sh, sw), index = geo.stride, {p: i for i, p in enumerate(geo.phases)}
    dwq = dwq.reshape(c_out, geo.kq[0], geo.kq[1], len(geo.phases), cg)
    dw = np.empty(w_shape, dtype=dwq.dtype)
    for ky in range(kh):
        for kx in range(kw):
            dw[:, ky, kx] = dwq[:, ky // sh, kx // sw, index[ky % sh, kx % sw]]
    return dw


# ----------------------------------------------------------------------------- naive reference

def _correlate_naive(xp, w, stride, dilation, groups):
    """Valid cross-correlation of an already padded xp (N,Hp,Wp,C) with w (O,KH,KW,C/G)."""
    n_img, hp, wp, c_in = xp.shape
    c_out, kh, kw, cg = w.shape
    og = c_out // groups
    oh = (hp - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (wp - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    y = np.zeros((n_img, oh, ow, c_out), dtype=xp.dtype)
    for out_y in range(oh):
        for out_x in range(ow):
            for filter_y in range(kh):
                for filter_x in range(kw):
                    in_y = out_y * stride[0] + filter_y * dilation[0]
                    in_x = out_x * stride[1] + filter_x * dilation[1]
                    for g in range(groups):
                        outs, ins = slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg)
                        y[:, out_y, out_x, outs] += xp[:, in_y, in_x, ins] @ w[outs, filter_y, filter_x, :].T
    return y


def _pad_naive(x, pad):
    top, bottom, left, right = pad
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv2d_forward_naive(x, w, b, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Direct convolution by loops; same contract as conv2d_forward."""
    x = np.asarray(x)
    w = np.asarray(w, dtype=x.dtype)
    _check_conv(x, w, b, groups)
    pad = normalize_pad(pad)
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    y = _correlate_naive(_pad_naive(x, pad), w, stride, dilation, groups)
    if b is not None:
        y += np.asarray(b, dtype=x.dtype)
    return y, (x, w, b is not None, stride, pad, dilation, groups)


def conv2d_backward_naive(dy, cache):
    """Gradients as convolutions of dy: dW = x ⋆ dy, dX = transposed conv of dy with the flipped kernel."""
    x, w, has_bias, stride, pad, dilation, groups = cache
    n_img, h, wd, c_in = x.shape
    c_out, kh, kw, cg = w.shape
    og = c_out // groups
    _, oh, ow, _ = dy.shape
    xp = _pad_naive(x, pad)
    db = dy.sum(axis=(0, 1, 2)) if has_bias else None

    # dW[o, ky, kx, c] = sum over (n, oy, ox) of xp[n, oy*s + ky*d, ox*s + kx*d, c] * dy[n, oy, ox, o]:
    # a correlation of xp with dy where dy is the "kernel" (dilated by the stride).
    dw = np.zeros_like(w)
    for filter_y in range(kh):
        for filter_x in range(kw):
            for out_y in range(oh):
                for out_x in range(ow):
                    in_y = filter_y * dilation[0] + out_y * stride[0]
                    in_x = filter_x * dilation[1] + out_x * stride[1]
                    for g in range(groups):
                        outs, ins = slice(g * og, (g + 1) * og), slice(g * cg, (g + 1) * cg)
                        dw[outs, filter_y, filter_x, :] += dy[:, out_y, out_x, outs].T @ xp[:, in_y, in_x, ins]

    # dX: insert (stride-1) zeros between dy pixels, pad by the dilated kernel extent - 1, and
    # correlate with the kernel rotated 180 degrees (input/output channels swapped per group).
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    dy_up = np.zeros((n_img, (oh - 1) * stride[0] + 1, (ow - 1) * stride[1] + 1, c_out), dtype=dy.dtype)
    dy_up[:, :: stride[0], :: stride[1], :] = dy
    dy_up = _pad_naive(dy_up, (eff_h - 1, eff_h - 1, eff_w - 1, eff_w - 1))
    w_flip = w[:, ::-1, ::-1, :].reshape(groups, og, kh, kw, cg).transpose(0, 4, 2, 3, 1)
    w_flip = w_flip.reshape(groups * cg, kh, kw, og)               # (Cin, KH, KW, O/G)
    dxp_covered = _correlate_naive(dy_up, w_flip, (1, 1), dilation, groups)
    # Rows/cols of xp past the last window (when (Hp - eff) % s != 0) get no gradient.
    dxp = np.zeros_like(xp)
    dxp[:, : dxp_covered.shape[1], : dxp_covered.shape[2], :] = dxp_covered
    top, _, left, _ = pad
    dx = dxp[:, top : top + h, left : left + wd, :]
    return np.ascontiguousarray(dx), dw, db
