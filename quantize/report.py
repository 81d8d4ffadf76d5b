"""The quantization report: per-layer SQNR between float and dequantized int8 activations."""

from __future__ import annotations

import math

import numpy as np

from edgecnn.int8.rules import quantize_input


def sqnr_db(signal_energy: float, noise_energy: float) -> float:
    """10 log10(signal / noise); +inf when the int8 copy is exact."""
    if noise_energy == 0:
        return math.inf
    if signal_energy == 0:
        return -math.inf
    return 10.0 * math.log10(signal_energy / noise_energy)


def layer_sqnr(model, qm, x: np.ndarray, run_intermediates, batch_size: int = 500) -> list[dict]:
    """SQNR in dB of every float layer's output against its int8 tensor, over the images `x`.

    `run_intermediates(int8 batch) -> {tensor index: values}` executes the int8
    graph (the runtime's method of that name): the quantizer measures with an
    executor it is given, so it never imports the deploy stage.
    """
    g = qm.graph
    inp = g.input
    signal = np.zeros(len(qm.layer_tensors))
    noise = np.zeros(len(qm.layer_tensors))
    float_model = qm.float_model if qm.float_model is not None else model  # BatchNorms folded, as quantized
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        floats = dict(zip((n.name for n in float_model.nodes), float_model.forward_trace(xb.astype(np.float32))))
        ints = run_intermediates(quantize_input(xb, inp.scale[0], inp.zero_point[0]))
        for j, (name, t, factor) in enumerate(qm.layer_tensors):
            tensor = g.tensors[t]
            deq = factor * np.float64(tensor.scale[0]) * (ints[t].astype(np.float64) - tensor.zero_point[0])
            f = floats[name].astype(np.float64).reshape(deq.shape)
            signal[j] += float(np.sum(f * f))
            noise[j] += float(np.sum((f - deq) ** 2))
    return [{"name": name, "sqnr_db": round(sqnr_db(s, n), 2)}
            for (name, _, _), s, n in zip(qm.layer_tensors, signal, noise)]


def format_report(rows: list[dict]) -> str:
    width = max(len(r["name"]) for r in rows)
    return "\n".join(["per-layer SQNR (float vs dequantized int8, calibration set):"] +
                     [f"  {r['name'].ljust(width)}  {r['sqnr_db']:6.1f} dB" for r in rows])
