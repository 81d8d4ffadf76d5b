"""Make the conformance suite's models: Keras topologies with seeded random weights, converted to int8 .tflite.

Run with the TensorFlow venv's python, never edgecnn's (TensorFlow pins numpy
its own way and is no edgecnn dependency), so this file imports no edgecnn
module:

    $EDGECNN_TF_PYTHON tests/tf_conformance_models.py OUTDIR [--only NAME ...]

Each model is built in Keras with seeded random weights (no training; biases
and batch-norm statistics are randomised too, so the converter's folding of
them is exercised), then converted by `tf.lite.TFLiteConverter` with full
integer quantization from a seeded representative dataset of 20 random
samples. The topologies are the ones embedded teams ship (MLPerf Tiny's
ResNet-8, DS-CNN, MobileNetV1 0.25 and FC autoencoder, MobileNetV2 blocks)
plus one small model per converter pattern (float and uint8 edges, two
outputs, branches, dilations, padding, resizing, the Dense-on-4-D shape
chain, ...). The batch stays dynamic, as Keras leaves it, so the converter
writes the shape subgraphs a real file has.

Writes OUTDIR/<name>.tflite for every model, then OUTDIR/manifest.json
(written last: it marks a complete run) with the TensorFlow and Keras
versions and, per model, its bytes, input/output dtypes, and the description
below. Prints the manifest path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TF is imported: silence its C++ logging

import numpy as np  # noqa: E402

SEED = 20261130
CALIBRATION_SAMPLES = 20


# ---------------------------------------------------------------- topologies
# Each builder takes (keras, layers) and returns a keras.Model. The registry
# below names each model, its edge types and what it is there to cover.


def resnet8(keras, layers):
    """MLPerf Tiny image classification (CIFAR-10): three residual stacks, 16/32/64 filters, BN after convs."""
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = layers.Conv2D(filters, 3, strides=stride, padding="same")(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        y = layers.BatchNormalization()(y)
        if stride != 1:  # the projection shortcut of the reference model
            x = layers.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def mobilenet_v1_025(keras, layers):
    """MobileNetV1, width 0.25, 96x96x3 (MLPerf Tiny visual wake words), global average pooling and a dense head."""
    inputs = keras.Input((96, 96, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    plan = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for filters, stride in plan:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v1_025")


def _inverted_residual(layers, x, expansion, filters, stride):
    channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(channels * expansion, 1, use_bias=False)(y)
        y = layers.ReLU(6.0)(layers.BatchNormalization()(y))
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(y)
    y = layers.ReLU(6.0)(layers.BatchNormalization()(y))
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)  # linear bottleneck: no activation
    if stride == 1 and channels == filters:
        y = layers.Add()([x, y])
    return y


def mobilenet_v2_blocks(keras, layers):
    """MobileNetV2 inverted-residual blocks (expand 1x1, depthwise, project, ADD residual, ReLU6) on 32x32x3."""
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    for expansion, filters, stride in ((1, 8, 1), (6, 12, 2), (6, 12, 1), (6, 16, 2), (6, 16, 1), (6, 16, 1)):
        x = _inverted_residual(layers, x, expansion, filters, stride)
    x = layers.Conv2D(64, 1, use_bias=False)(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2_blocks")


def ds_cnn(keras, layers):
    """DS-CNN keyword spotting (MLPerf Tiny KWS): 49x10x1 MFCCs, 64 filters, 4 depthwise-separable blocks, 12 classes."""
    inputs = keras.Input((49, 10, 1))
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.Dropout(0.2)(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D(3, padding="same")(x)
        x = layers.Activation("relu")(layers.BatchNormalization()(x))
        x = layers.Conv2D(64, 1, padding="same")(x)
        x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(12, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def fc_autoencoder(keras, layers):
    """MLPerf Tiny anomaly detection: 640 -> 4x128 -> 8 -> 4x128 -> 640, Dense + BN + ReLU."""
    inputs = keras.Input((640,))
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = layers.Dense(units)(x)
        x = layers.Activation("relu")(layers.BatchNormalization()(x))
    outputs = layers.Dense(640)(x)
    return keras.Model(inputs, outputs, name="fc_autoencoder")


def _small_trunk(layers, inputs, filters=8):
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    return layers.MaxPooling2D(2)(x)


def two_outputs(keras, layers):
    """One trunk, two heads: a softmax classifier and a linear regressor."""
    inputs = keras.Input((16, 16, 3))
    x = _small_trunk(layers, inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    classes = layers.Dense(5, activation="softmax", name="classes")(x)
    box = layers.Dense(4, name="box")(x)
    return keras.Model(inputs, [classes, box], name="two_outputs")


def two_inputs(keras, layers):
    """Two inputs of different shapes: an image and a side vector, joined by a broadcast MUL gate and an ADD."""
    image = keras.Input((10, 10, 3), name="image")
    side = keras.Input((4,), name="side")
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    gate = layers.Dense(8, activation="sigmoid")(side)
    x = layers.Multiply()([x, layers.Reshape((1, 1, 8))(gate)])
    x = layers.Add()([x, layers.Conv2D(8, 1)(image)])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3)(layers.Concatenate()([x, side]))
    return keras.Model([image, side], outputs, name="two_inputs")


def small_cnn(keras, layers):
    """A small conv net; converted with float or uint8 edges (QUANTIZE/DEQUANTIZE)."""
    inputs = keras.Input((16, 16, 3))
    x = _small_trunk(layers, inputs)
    x = layers.Conv2D(16, 3, padding="valid", activation="relu")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(6)(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def concat_branches(keras, layers):
    """Inception-style: 1x1, 3x3 and pooled branches concatenated on channels, then concatenated again."""
    inputs = keras.Input((16, 16, 4))
    a = layers.Conv2D(8, 1, activation="relu")(inputs)
    b = layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    c = layers.MaxPooling2D(3, strides=1, padding="same")(inputs)
    x = layers.Concatenate()([a, b, c])
    d = layers.Conv2D(4, 3, padding="same")(x)
    x = layers.Concatenate()([x, d])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(5)(x)
    return keras.Model(inputs, outputs, name="concat_branches")


def dilated(keras, layers):
    """Keras 3 dilated Conv2D and DepthwiseConv2D (the converter may write SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND)."""
    inputs = keras.Input((20, 20, 3))
    x = layers.Conv2D(8, 3, dilation_rate=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, dilation_rate=(2, 3), padding="valid")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4)(x)
    return keras.Model(inputs, outputs, name="dilated")


def pad_maxreduce_leaky(keras, layers):
    """ZeroPadding2D (PAD), LeakyReLU, GlobalMaxPooling2D (REDUCE_MAX)."""
    inputs = keras.Input((12, 12, 3))
    x = layers.ZeroPadding2D(((1, 2), (2, 1)))(inputs)
    x = layers.Conv2D(8, 3, strides=2)(x)
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(8, 3)(x)
    x = layers.LeakyReLU(negative_slope=0.3)(x)
    x = layers.GlobalMaxPooling2D()(x)
    outputs = layers.Dense(3)(x)
    return keras.Model(inputs, outputs, name="pad_maxreduce_leaky")


def hard_swish(keras, layers):
    """Hard-swish two ways: Keras' hard_swish activation and the MobileNetV3 formula x * relu6(x + 3) / 6."""
    inputs = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = layers.Activation("hard_swish")(x)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Lambda(lambda v: v * keras.ops.relu6(v + 3.0) / 6.0)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3)(x)
    return keras.Model(inputs, outputs, name="hard_swish")


def upsampling(keras, layers):
    """Resizing in a small decoder: RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR, half-pixel and align-corners.

    Keras 3's UpSampling2D(interpolation="nearest") is written as EXPAND_DIMS/TILE/RESHAPE (a repeat), not as
    RESIZE_NEAREST_NEIGHBOR, so nearest comes from the Resizing layer (tf.image.resize, half-pixel centers);
    the TF1 resize functions give the align_corners variants.
    """
    import tensorflow as tf

    inputs = keras.Input((6, 5, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.Resizing(12, 10, interpolation="nearest")(x)
    x = layers.Conv2D(6, 3, padding="same")(x)
    x = layers.UpSampling2D((2, 3), interpolation="bilinear")(x)
    x = layers.Conv2D(4, 1)(x)
    x = layers.Lambda(lambda v: tf.compat.v1.image.resize_bilinear(v, (31, 37), align_corners=True))(x)
    x = layers.Lambda(lambda v: tf.compat.v1.image.resize_nearest_neighbor(v, (20, 25), align_corners=True))(x)
    x = layers.Resizing(9, 11, interpolation="nearest")(x)  # shrinking
    outputs = layers.Conv2D(2, 1)(x)
    return keras.Model(inputs, outputs, name="upsampling")


def dense_4d(keras, layers):
    """Dense on a 4-D tensor: the converter's SHAPE/GATHER/REDUCE_PROD/PACK/CONCATENATION/RESHAPE shape chain."""
    inputs = keras.Input((6, 5, 4))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.Dense(6, activation="relu")(x)
    x = layers.Dense(3)(x)
    return keras.Model(inputs, x, name="dense_4d")


def sub_mul(keras, layers):
    """Subtract and Multiply layers, and an Add with broadcast over space (a gating vector)."""
    inputs = keras.Input((10, 10, 3))
    a = layers.Conv2D(6, 3, padding="same")(inputs)
    b = layers.Conv2D(6, 1)(inputs)
    d = layers.Subtract()([a, b])
    m = layers.Multiply()([a, b])
    x = layers.Concatenate()([d, m])
    gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = layers.Dense(12, activation="sigmoid")(gate)
    x = layers.Multiply()([x, gate])
    x = layers.Add()([x, layers.Conv2D(12, 1)(inputs)])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4)(x)
    return keras.Model(inputs, outputs, name="sub_mul")


def standalone_activations(keras, layers):
    """Activations the converter cannot fuse into a producer: RELU, RELU6, TANH, LOGISTIC; PADV2; SOFTMAX."""
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same")(inputs)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.ReLU()(x)  # after a resize: nothing to fuse into
    x = layers.Conv2D(6, 3, strides=2, padding="same")(x)
    x = layers.Resizing(12, 12, interpolation="nearest")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Lambda(lambda v: tf.pad(v, [[0, 0], [1, 2], [2, 1], [0, 0]], constant_values=0.75))(x)
    x = layers.DepthwiseConv2D(3)(x)
    x = layers.Activation("tanh")(x)
    x = layers.Conv2D(4, 1)(x)
    x = layers.Activation("sigmoid")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(5, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="standalone_activations")


# name -> (builder, input type, output type, what it covers). Types: int8, uint8, float32.
MODELS = {
    "resnet8": (resnet8, "int8", "int8", "MLPerf Tiny IC ResNet-8, 32x32x3"),
    "mobilenet_v1_025": (mobilenet_v1_025, "int8", "int8", "MobileNetV1 0.25, 96x96x3, MEAN head"),
    "mobilenet_v2_blocks": (mobilenet_v2_blocks, "int8", "int8", "MobileNetV2 inverted residuals, ReLU6, ADD"),
    "ds_cnn": (ds_cnn, "int8", "int8", "MLPerf Tiny KWS DS-CNN, 49x10x1"),
    "fc_autoencoder": (fc_autoencoder, "int8", "int8", "MLPerf Tiny AD FC autoencoder, 640 inputs"),
    "two_outputs": (two_outputs, "int8", "int8", "two outputs"),
    "two_inputs": (two_inputs, "int8", "int8", "two inputs (image and vector)"),
    "float_io": (small_cnn, "float32", "float32", "converter defaults: float in/out (QUANTIZE/DEQUANTIZE)"),
    "uint8_io": (small_cnn, "uint8", "uint8", "uint8 input and output"),
    "uint8_in_int8_out": (small_cnn, "uint8", "int8", "uint8 input, int8 output"),
    "concat_branches": (concat_branches, "int8", "int8", "CONCATENATION of branches"),
    "dilated": (dilated, "int8", "int8", "Keras 3 dilated convolutions"),
    "pad_maxreduce_leaky": (pad_maxreduce_leaky, "int8", "int8", "PAD, LEAKY_RELU, REDUCE_MAX"),
    "hard_swish": (hard_swish, "int8", "int8", "HARD_SWISH"),
    "upsampling": (upsampling, "int8", "int8", "RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR"),
    "dense_4d": (dense_4d, "int8", "int8", "Dense on a 4-D tensor (shape chain)"),
    "sub_mul": (sub_mul, "int8", "int8", "SUB, MUL, broadcast MUL/ADD"),
    "standalone_activations": (standalone_activations, "int8", "int8", "RELU, RELU6, TANH, LOGISTIC, PADV2"),
}


# ---------------------------------------------------------------- weights, calibration, conversion


def randomize_weights(model, rng: np.random.Generator) -> None:
    """Seeded random weights: Keras' initializers for kernels, plus random biases and batch-norm statistics.

    Zero biases and identity batch norms would leave the converter's bias
    and BN-folding paths untested, so those get random values of a size
    comparable to the activations.
    """
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kind = type(layer).__name__
        new = []
        for w in layer.weights:
            value = np.asarray(w.numpy())
            name = w.path.rsplit("/", 1)[-1] if hasattr(w, "path") else w.name
            if kind == "BatchNormalization":
                if name == "gamma":
                    value = rng.uniform(0.5, 1.5, value.shape)
                elif name == "beta":
                    value = rng.normal(0.0, 0.2, value.shape)
                elif name == "moving_mean":
                    value = rng.normal(0.0, 0.2, value.shape)
                elif name == "moving_variance":
                    value = rng.uniform(0.5, 2.0, value.shape)
            elif name == "bias":
                value = rng.normal(0.0, 0.1, value.shape)
            else:  # kernels: He-normal keeps activations from vanishing over deep stacks of random layers
                fan_in = int(np.prod(value.shape[:-1])) if value.ndim > 1 else value.size
                if kind == "DepthwiseConv2D":
                    fan_in = int(np.prod(value.shape[:2]))
                value = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), value.shape)
            new.append(value.astype(np.float32))
        layer.set_weights(new)


def calibration_samples(model, rng: np.random.Generator) -> list:
    """CALIBRATION_SAMPLES seeded random inputs in [-1, 1] (batch 1 each).

    One list per sample for a single input; a dict by input name for several
    (the converter's signature need not keep Keras' input order).
    """
    shapes = {t.name: tuple(int(d) for d in t.shape[1:]) for t in model.inputs}
    samples = [{n: rng.uniform(-1.0, 1.0, (1,) + s).astype(np.float32) for n, s in shapes.items()}
               for _ in range(CALIBRATION_SAMPLES)]  # fmt: skip
    return [list(x.values()) for x in samples] if len(shapes) == 1 else samples


def convert(tf, model, samples, input_type: str, output_type: str) -> bytes:
    """Full-integer quantization; float32 edges stay the converter's defaults (QUANTIZE/DEQUANTIZE)."""

    def representative():
        yield from samples

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    dtypes = {"int8": tf.int8, "uint8": tf.uint8}
    if input_type in dtypes:
        converter.inference_input_type = dtypes[input_type]
    if output_type in dtypes:
        converter.inference_output_type = dtypes[output_type]
    return converter.convert()


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", help="folder to write <name>.tflite and manifest.json into")
    p.add_argument("--only", nargs="+", choices=sorted(MODELS), help="make only these models")
    args = p.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)

    import tensorflow as tf
    import keras
    from keras import layers

    manifest = {"tensorflow": tf.__version__, "keras": keras.__version__, "seed": SEED, "models": {}}
    for name in sorted(MODELS):
        if args.only and name not in args.only:
            continue
        builder, input_type, output_type, about = MODELS[name]
        start = time.perf_counter()
        model_seed = zlib.crc32(name.encode())  # by name: adding a model changes no other model's file
        rng = np.random.default_rng([SEED, model_seed])
        keras.backend.clear_session()  # layer names restart: a file does not depend on the models made before it
        keras.utils.set_random_seed((SEED + model_seed) % 2**31)
        model = builder(keras, layers)
        randomize_weights(model, rng)
        samples = calibration_samples(model, rng)
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Saved artifact at ..."
            data = convert(tf, model, samples, input_type, output_type)
        path = os.path.join(args.outdir, f"{name}.tflite")
        write_atomic(path, data)
        manifest["models"][name] = {
            "file": f"{name}.tflite", "bytes": len(data), "input_type": input_type, "output_type": output_type,
            "about": about, "seconds": round(time.perf_counter() - start, 2),
        }  # fmt: skip
        print(f"{name}: {len(data)} bytes in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    out = os.path.join(args.outdir, "manifest.json")
    write_atomic(out, json.dumps(manifest, indent=1, sort_keys=True).encode())
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
