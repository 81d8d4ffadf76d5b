"""Models for the regression-gate tests: a float LeNet-5, its good int8 file, and deliberately spoiled ones.

Spoiled two ways, as users spoil them: a calibration on a few black images
(every activation range collapses), and one weight flipped in the .tflite's
bytes (the sign of conv1's largest weight, as a bad copy to a board would).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def quantize_to(model, calib_images: np.ndarray, out: Path) -> Path:
    from edgecnn.data.datasets import lenet_input
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.quantize.ptq import quantize_model

    write_tflite(quantize_model(model, lenet_input(calib_images), progress=False).graph, out)
    return out


def flip_weight(src: Path, dst: Path, tensor_name: str = "conv1/weights") -> Path:
    """Copy `src` with the sign of `tensor_name`'s largest weight flipped, in the file's own bytes."""
    from edgecnn.deploy.tflite.reader import read_tflite

    t = next(t for t in read_tflite(src).tensors if t.name == tensor_name)
    raw = bytearray(Path(src).read_bytes())
    at = bytes(raw).find(t.data.tobytes())
    assert at >= 0 and bytes(raw).find(t.data.tobytes(), at + 1) < 0, "the weights' bytes are not unique"
    flat = t.data.reshape(-1).astype(np.int16)
    k = int(np.argmax(np.abs(flat)))
    raw[at + k] = int(np.int8(-max(flat[k], -127))) & 0xFF
    Path(dst).write_bytes(bytes(raw))
    return Path(dst)


def gate_models(checkpoint: Path, train_images: np.ndarray, folder: Path) -> dict[str, Path]:
    """{"float", "good", "black", "flipped"}: the checkpoint and three int8 files made from it."""
    from edgecnn.model.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    good = quantize_to(model, train_images[:500], folder / "good.tflite")
    return {"float": Path(checkpoint), "good": good,
            "black": quantize_to(model, np.zeros((4, 28, 28), np.uint8), folder / "black.tflite"),
            "flipped": flip_weight(good, folder / "flipped.tflite")}


def untrained_models(folder: Path) -> dict[str, Path]:
    """A float LeNet-5 at its initial weights and its int8 file: for the fast tests of formats and flags."""
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint

    model = build("lenet5").init_params(0)
    save_checkpoint(folder / "u.npz", model)
    rng = np.random.default_rng(0)
    return {"float": folder / "u.npz",
            "int8": quantize_to(model, rng.integers(0, 256, (16, 28, 28), dtype=np.uint8), folder / "u.tflite")}
