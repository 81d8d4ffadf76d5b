"""Convert an edgecnn lenet5 checkpoint to int8 .tflite with TensorFlow's own converter.

Run with a separate TensorFlow venv's python, never edgecnn's (TF pins numpy
its own way, and edgecnn must not depend on it), so this file imports no
edgecnn module: it reads the checkpoint `.npz` directly (the format of
edgecnn/model/checkpoint.py) and rebuilds the same LeNet-5 in Keras.

    $TF_PYTHON tests/tf_convert_lenet.py --weights model.npz --calib calib.npy --out model.tflite
        [--float-logits logits.npy]

--calib is float32 (N, 32, 32, 1) images in [0, 1], the representative
dataset. --float-logits saves the Keras float model's outputs on those
images, so the caller can check that the weights landed where they belong.
Prints one JSON line: {"out", "bytes", "tensorflow"}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TF is imported: silence its C++ logging

import numpy as np  # noqa: E402

MAGIC = b"edgecnn-float"
# The lenet5 layers that hold weights, with the OHWI / [out, in] shapes edgecnn stores.
LENET5_PARAMS = {
    "conv1": (6, 5, 5, 1),
    "conv2": (16, 5, 5, 6),
    "fc1": (120, 400),
    "fc2": (84, 120),
    "fc3": (10, 84),
}


def read_lenet5_params(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (w, b)} from an edgecnn checkpoint, refusing anything but lenet5."""
    with np.load(path, allow_pickle=False) as z:
        if "__magic__" not in z.files or z["__magic__"].tobytes() != MAGIC:
            sys.exit(f"{path}: not an edgecnn checkpoint")
        spec = json.loads(z["__spec__"].tobytes())
        if spec.get("arch") != "lenet5":
            sys.exit(f"{path}: arch {spec.get('arch')!r}; this script builds lenet5 only")
        params = {}
        for name, shape in LENET5_PARAMS.items():
            w, b = z[f"param/{name}/w"], z[f"param/{name}/b"]
            if w.shape != shape or b.shape != (shape[0],):
                sys.exit(f"{path}: {name} has w {w.shape}, b {b.shape}; lenet5 needs w {shape}, b ({shape[0]},)")
            params[name] = (w.astype(np.float32), b.astype(np.float32))
    return params


def build_keras_lenet5(params):
    """The Keras twin of edgecnn's lenet5, carrying its weights."""
    import tensorflow as tf

    layers = tf.keras.layers
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(32, 32, 1)),
        layers.Conv2D(6, 5, activation="relu", name="conv1"),
        layers.MaxPool2D(2, name="pool1"),
        layers.Conv2D(16, 5, activation="relu", name="conv2"),
        layers.MaxPool2D(2, name="pool2"),
        layers.Flatten(name="flatten"),  # NHWC order, the same as edgecnn's flatten
        layers.Dense(120, activation="relu", name="fc1"),
        layers.Dense(84, activation="relu", name="fc2"),
        layers.Dense(10, name="fc3"),
    ])
    for name, (w, b) in params.items():
        # edgecnn: conv OHWI, dense [out, in]; Keras: conv HWIO, dense [in, out].
        kernel = w.transpose(1, 2, 3, 0) if w.ndim == 4 else w.T
        model.get_layer(name).set_weights([np.ascontiguousarray(kernel), b])
    return model


def convert_int8(model, calib: np.ndarray) -> bytes:
    """Full-integer conversion: int8 weights, activations, input and output."""
    import tensorflow as tf

    def representative():
        for i in range(len(calib)):
            yield [calib[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="edgecnn lenet5 checkpoint (.npz)")
    p.add_argument("--calib", required=True, help="float32 (N,32,32,1) calibration images in [0,1] (.npy)")
    p.add_argument("--out", required=True, help="the .tflite to write")
    p.add_argument("--float-logits", help="also save the Keras float model's outputs on the calibration images")
    args = p.parse_args(argv)

    calib = np.load(args.calib, allow_pickle=False)
    if calib.dtype != np.float32 or calib.ndim != 4 or calib.shape[1:] != (32, 32, 1) or len(calib) == 0:
        sys.exit(f"{args.calib}: need float32 (N, 32, 32, 1) images, got {calib.dtype} {calib.shape}")
    import tensorflow as tf

    model = build_keras_lenet5(read_lenet5_params(args.weights))
    if args.float_logits:
        np.save(args.float_logits, model.predict(calib, batch_size=256, verbose=0).astype(np.float32))
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Saved artifact at ..."; stdout is for the JSON line
        data = convert_int8(model, calib)
    write_atomic(args.out, data)
    print(json.dumps({"out": args.out, "bytes": len(data), "tensorflow": tf.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
