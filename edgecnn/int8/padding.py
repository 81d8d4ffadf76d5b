"""Output sizes and padding for SAME/VALID windows (TFLite's padding.h, docs/int8.md section 4).

>>> compute_padding("SAME", 9, 3, 2)   # (output size, pad before, pad after)
(5, 1, 1)
>>> compute_padding("SAME", 8, 3, 1, dilation=2)
(8, 2, 2)
>>> compute_padding("VALID", 32, 5, 1)
(28, 0, 0)
"""

from __future__ import annotations


def compute_padding(padding: str, in_size: int, filter_size: int, stride: int, dilation: int = 1):
    """(out_size, pad_before, pad_after) along one spatial axis; the odd pixel goes after."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        out_size = (in_size + stride - 1) // stride
    elif padding == "VALID":
        out_size = (in_size + stride - effective) // stride
    else:
        raise ValueError(f"unknown padding {padding!r}")
    total = max(0, (out_size - 1) * stride + effective - in_size)
    return out_size, total // 2, total - total // 2
