"""Output size and padding of a windowed op (conv, pool), by TFLite's rules.

TFLite's SAME puts the odd padding pixel at the bottom/right (INT8.md §4);
the float model must use the same rule or the int8 model sees shifted windows.
"""

from edgecnn.errors import ShapeError


def as_pair(value, what="value"):
    """(a, b) from an int or a 2-sequence of positive ints."""
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ShapeError(f"{what} must be a positive int or a pair of them, got {value!r}")
    return value


def normalize_pad(pad):
    """(top, bottom, left, right) from an int, (ph, pw) or a 4-tuple of ints >= 0."""
    if isinstance(pad, int):
        pad = (pad,) * 4
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        pad = (pad[0], pad[0], pad[1], pad[1])
    if len(pad) != 4 or min(pad) < 0:
        raise ShapeError(f"padding must be an int >= 0, (ph, pw) or (top, bottom, left, right), got {pad!r}")
    return pad


def resolve_padding(padding, in_hw, kernel_hw, stride_hw, dilation_hw):
    """Return ((out_h, out_w), (top, bottom, left, right)) for a window op.

    padding: "valid", "same" (TFLite: out = ceil(in/s), total = max(0, (out-1)*s + eff - in),
    before = total // 2), or explicit: an int, (ph, pw) or (top, bottom, left, right).
    eff = (k - 1) * dilation + 1 is the dilated kernel extent.
    """
    in_h, in_w = as_pair(in_hw, "input size")
    k_h, k_w = as_pair(kernel_hw, "kernel size")
    s_h, s_w = as_pair(stride_hw, "stride")
    d_h, d_w = as_pair(dilation_hw, "dilation")
    eff_h, eff_w = (k_h - 1) * d_h + 1, (k_w - 1) * d_w + 1

    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            pads = (0, 0, 0, 0)
        elif mode == "same":
            pads = []
            for size, stride, eff in ((in_h, s_h, eff_h), (in_w, s_w, eff_w)):
                out = -(-size // stride)
                total = max(0, (out - 1) * stride + eff - size)
                pads += [total // 2, total - total // 2]
            pads = tuple(pads)
        else:
            raise ShapeError(f"padding must be 'valid', 'same' or explicit ints, got {padding!r}")
    else:
        pads = normalize_pad(padding)

    top, bottom, left, right = pads
    out_h = (in_h + top + bottom - eff_h) // s_h + 1
    out_w = (in_w + left + right - eff_w) // s_w + 1
    if out_h < 1 or out_w < 1:
        raise ShapeError(
            f"window {k_h}x{k_w} (dilation {d_h}x{d_w}) does not fit input {in_h}x{in_w} "
            f"with padding {pads}: output would be {out_h}x{out_w}"
        )
    return (out_h, out_w), pads
