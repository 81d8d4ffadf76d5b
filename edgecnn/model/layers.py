"""Layers of the float model: parameters in `build`, math in `forward`/`backward`.

Every layer infers its output shape from its input shape (NHWC, batch left
out), counts its parameters and its connections the way LeCun et al. 1998
count them, and serialises to a JSON-able config. The math lives in
`edgecnn.reference`; it is imported lazily so that `edgecnn summary` and a
device install never pay for Numba.

Connections are (weights per output + 1 bias) x outputs, as in the paper;
layers without parameters report the window size x outputs (pooling) or 0.
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.errors import ModelError, ShapeError

ACTIVATIONS = ("none", "relu", "relu6", "tanh", "scaled_tanh", "sigmoid", "hard_swish")


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ModelError(f"expected an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _activation_forward(name, x):
    if name == "none":
        return x, None
    from edgecnn.reference import activations as A

    return getattr(A, f"{name}_forward")(x)


def _activation_backward(name, dy, cache):
    if name == "none":
        return dy
    from edgecnn.reference import activations as A

    return getattr(A, f"{name}_backward")(dy, cache)


class Layer:
    """Base layer. Subclasses set `kind` and implement `_infer`, `_forward`, `_backward`.

    `arity` is how many inputs the layer takes: 1, or None for "two or more" (Add,
    Concatenate), whose `_infer`/`_forward` receive lists and whose `_backward`
    returns one gradient per input. `params` are trained; `buffers` are state the
    optimizer never touches (BatchNorm's running statistics), saved alongside.
    """

    kind = "layer"
    has_activation = False
    arity = 1
    # activations the layer's own kernels apply in the same pass (its _forward/_backward read
    # self.activation); an execution detail: config, checkpoint and quantizer see the same layer
    fused_activations: tuple[str, ...] = ()

    def __init__(self, name: str | None = None, activation: str = "none"):
        if activation not in ACTIVATIONS:
            raise ModelError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        self.name = name
        self.activation = activation
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = False
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self._need_dx = True  # the first layer's backward may skip dL/dx, which nothing reads

    # -- shapes and counts -------------------------------------------------
    def build(self, input_shape, rng: np.random.Generator | None = None, dtype=np.float32):
        """Infer the output shape; create parameters when `rng` is given."""
        if self.arity == 1:
            self.input_shape = tuple(int(d) for d in input_shape)
        else:
            self.input_shape = [tuple(int(d) for d in shape) for shape in input_shape]
        self.output_shape = self._infer(self.input_shape)
        if rng is not None:
            self.params = {k: v.astype(dtype) for k, v in self._init_params(rng).items()}
            self.buffers = {k: v.astype(dtype) for k, v in self._init_buffers().items()}
        return self.output_shape

    def _infer(self, shape):
        return shape

    def _init_params(self, rng) -> dict[str, np.ndarray]:
        return {}

    def _init_buffers(self) -> dict[str, np.ndarray]:
        return {}

    def param_count(self) -> int:
        """Trained parameters plus buffers (BatchNorm's running statistics), as Keras counts them."""
        return 0

    def macs(self) -> int:
        """Multiply-accumulates per image of the conv/dense arithmetic (0 for layers without weights)."""
        return 0

    def connections(self) -> int:
        return 0

    def config(self) -> dict:
        cfg = {"kind": self.kind, "name": self.name}
        if self.activation != "none":
            cfg["activation"] = self.activation
        return cfg

    # -- math ---------------------------------------------------------------
    def forward(self, x, train: bool = False):
        self.training = train
        y, self._cache = self._forward(x)
        if self.activation in self.fused_activations:
            self._act_cache = None
            return y
        y, self._act_cache = _activation_forward(self.activation, y)
        return y

    def backward(self, dy, need_dx: bool = True):
        if self.activation not in self.fused_activations:
            dy = _activation_backward(self.activation, dy, self._act_cache)
        self._need_dx = need_dx
        return self._backward(dy)

    def _forward(self, x):
        return x, None

    def _backward(self, dy):
        return dy

    def _fan_in_init(self, rng, shape, fan_in):
        """He-normal for ReLU family, LeCun's uniform +-2.4/fan_in for tanh (1998, appendix A)."""
        if self.activation in ("tanh", "scaled_tanh", "sigmoid"):
            bound = 2.4 / fan_in
            return rng.uniform(-bound, bound, size=shape)
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


class Conv2D(Layer):
    """2-D convolution, OHWI filters, with groups and an optional C3-style connection table.

    `connection_table[o]` lists the input maps output map `o` reads. It is
    applied as a fixed 0/1 mask on the weights, so unconnected weights stay
    exactly zero through training and quantize to 0.
    """

    kind = "conv2d"

    def __init__(self, filters, kernel, stride=1, padding="valid", dilation=1, groups=1,
                 connection_table=None, use_bias=True, name=None, activation="none"):
        super().__init__(name, activation)
        self.use_bias = bool(use_bias)  # False before a BatchNorm, whose beta makes a bias redundant
        self.filters = int(filters)
        self.kernel = _pair(kernel)
        self.stride = _pair(stride)
        self.dilation = _pair(dilation)
        self.padding = padding if isinstance(padding, (str, int)) else [int(p) for p in padding]
        self.groups = int(groups)
        self.connection_table = [sorted(int(i) for i in row) for row in connection_table] if connection_table else None
        if min(self.filters, *self.kernel, *self.stride, *self.dilation, self.groups) < 1:
            raise ModelError(f"{self.name or 'conv2d'}: sizes must be positive")

    def _infer(self, shape):
        from edgecnn.reference.padding import resolve_padding

        if len(shape) != 3:
            raise ShapeError(f"{self.name}: conv2d needs an HWC input, got shape {shape}")
        h, w, c = shape
        if c % self.groups or self.filters % self.groups:
            raise ShapeError(f"{self.name}: {c} input and {self.filters} output channels do not split into {self.groups} groups")
        if self.connection_table is not None:
            if self.groups != 1 or len(self.connection_table) != self.filters:
                raise ShapeError(f"{self.name}: the connection table needs one row per output map and groups=1")
            if any(not 0 <= i < c for row in self.connection_table for i in row):
                raise ShapeError(f"{self.name}: the connection table names an input map outside 0..{c - 1}")
        (oh, ow), self.pad = resolve_padding(self.padding, (h, w), self.kernel, self.stride, self.dilation)
        return (oh, ow, self.filters)

    @property
    def in_per_group(self) -> int:
        return self.input_shape[2] // self.groups

    def mask(self) -> np.ndarray | None:
        if self.connection_table is None:
            return None
        m = np.zeros((self.filters, 1, 1, self.input_shape[2]), dtype=np.float32)
        for o, row in enumerate(self.connection_table):
            m[o, 0, 0, row] = 1.0
        return m

    def _weights_per_output(self) -> np.ndarray:
        kh, kw = self.kernel
        if self.connection_table is not None:
            return np.array([kh * kw * len(row) for row in self.connection_table])
        return np.full(self.filters, kh * kw * self.in_per_group)

    def _init_params(self, rng):
        kh, kw = self.kernel
        fan_in = int(self._weights_per_output().mean())
        w = self._fan_in_init(rng, (self.filters, kh, kw, self.in_per_group), fan_in)
        m = self.mask()
        if m is not None:
            w = w * m
        return {"w": w, "b": np.zeros(self.filters)} if self.use_bias else {"w": w}

    def param_count(self):
        return int(self._weights_per_output().sum()) + (self.filters if self.use_bias else 0)

    def connections(self):
        oh, ow, _ = self.output_shape
        return int((self._weights_per_output() + 1).sum()) * oh * ow

    def macs(self):
        oh, ow, _ = self.output_shape
        return int(self._weights_per_output().sum()) * oh * ow

    def config(self):
        cfg = super().config()
        cfg.update(filters=self.filters, kernel=list(self.kernel), stride=list(self.stride),
                   padding=self.padding, dilation=list(self.dilation), groups=self.groups)
        if self.connection_table is not None:
            cfg["connection_table"] = self.connection_table
        if not self.use_bias:
            cfg["use_bias"] = False
        return cfg

    def _forward(self, x):
        from edgecnn.reference.conv import conv2d_forward

        w = self.params["w"]
        m = self.mask()
        if m is not None:
            w = w * m.astype(w.dtype)
        return conv2d_forward(x, w, self.params.get("b"), self.stride, self.pad, self.dilation, self.groups)

    def _backward(self, dy):
        from edgecnn.reference.conv import conv2d_backward

        dx, dw, db = conv2d_backward(dy, self._cache, need_dx=self._need_dx)
        m = self.mask()
        if m is not None:
            dw = dw * m.astype(dw.dtype)
        self.grads = {"w": dw, "b": db} if self.use_bias else {"w": dw}
        return dx


class Subsampling(Layer):
    """LeNet-5's trainable subsampling (S2, S4): coef[c] * sum(2x2 window) + bias[c].

    In the int8 graph it becomes a DEPTHWISE_CONV_2D whose 4 taps are tied.
    """

    kind = "subsampling"

    def __init__(self, size=2, name=None, activation="none"):
        super().__init__(name, activation)
        self.size = int(size)

    def _infer(self, shape):
        h, w, c = shape
        if h < self.size or w < self.size:
            raise ShapeError(f"{self.name}: input {h}x{w} is smaller than the {self.size}x{self.size} window")
        return (h // self.size, w // self.size, c)

    def _init_params(self, rng):
        c = self.input_shape[2]
        fan_in = self.size * self.size
        return {"coef": self._fan_in_init(rng, (c,), fan_in) + 1.0 / fan_in, "b": np.zeros(c)}

    def param_count(self):
        return 2 * self.input_shape[2]

    def connections(self):
        oh, ow, c = self.output_shape
        return (self.size * self.size + 1) * oh * ow * c

    def macs(self):
        oh, ow, c = self.output_shape
        return self.size * self.size * oh * ow * c

    def config(self):
        return {**super().config(), "size": self.size}

    def _forward(self, x):
        from edgecnn.reference.subsample import subsample_forward

        return subsample_forward(x, self.params["coef"], self.params["b"], self.size)

    def _backward(self, dy):
        from edgecnn.reference.subsample import subsample_backward

        dx, dcoef, db = subsample_backward(dy, self._cache)
        self.grads = {"coef": dcoef, "b": db}
        return dx


class _Pool2D(Layer):
    def __init__(self, size=2, stride=None, padding="valid", name=None, activation="none"):
        super().__init__(name, activation)
        self.size = _pair(size)
        self.stride = _pair(stride if stride is not None else size)
        self.padding = padding

    def _infer(self, shape):
        from edgecnn.reference.padding import resolve_padding

        if len(shape) != 3:
            raise ShapeError(f"{self.name}: pooling needs an HWC input, got shape {shape}")
        (oh, ow), self.pad = resolve_padding(self.padding, shape[:2], self.size, self.stride, (1, 1))
        return (oh, ow, shape[2])

    def connections(self):
        return self.size[0] * self.size[1] * int(np.prod(self.output_shape))

    def config(self):
        return {**super().config(), "size": list(self.size), "stride": list(self.stride), "padding": self.padding}


class MaxPool2D(_Pool2D):
    kind = "maxpool2d"

    def _forward(self, x):
        from edgecnn.reference.pool import max_pool2d_forward

        return max_pool2d_forward(x, self.size, self.stride, self.pad)

    def _backward(self, dy):
        from edgecnn.reference.pool import max_pool2d_backward

        return max_pool2d_backward(dy, self._cache)


class AvgPool2D(_Pool2D):
    kind = "avgpool2d"

    def _forward(self, x):
        from edgecnn.reference.pool import avg_pool2d_forward

        return avg_pool2d_forward(x, self.size, self.stride, self.pad)

    def _backward(self, dy):
        from edgecnn.reference.pool import avg_pool2d_backward

        return avg_pool2d_backward(dy, self._cache)


class Flatten(Layer):
    """HWC -> H*W*C in NHWC order, which is what TFLite's RESHAPE does."""

    kind = "flatten"

    def _infer(self, shape):
        return (int(np.prod(shape)),)

    def _forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def _backward(self, dy):
        return dy.reshape(self._cache)


class Dense(Layer):
    """Fully connected, weights [units, in] as TFLite stores them."""

    kind = "dense"

    def __init__(self, units, name=None, activation="none"):
        super().__init__(name, activation)
        self.units = int(units)
        if self.units < 1:
            raise ModelError(f"{self.name or 'dense'}: units must be positive, got {self.units}")

    def _infer(self, shape):
        if len(shape) != 1:
            raise ShapeError(f"{self.name}: dense needs a flat input, got shape {shape}; add a flatten layer")
        return (self.units,)

    def _init_params(self, rng):
        d = self.input_shape[0]
        return {"w": self._fan_in_init(rng, (self.units, d), d), "b": np.zeros(self.units)}

    def param_count(self):
        return self.units * (self.input_shape[0] + 1)

    def connections(self):
        return self.param_count()

    def macs(self):
        return self.units * self.input_shape[0]

    def config(self):
        return {**super().config(), "units": self.units}

    def _forward(self, x):
        from edgecnn.reference.dense import dense_forward

        return dense_forward(x, self.params["w"], self.params["b"])

    def _backward(self, dy):
        from edgecnn.reference.dense import dense_backward

        dx, dw, db = dense_backward(dy, self._cache)
        self.grads = {"w": dw, "b": db}
        return dx


class Activation(Layer):
    """A standalone activation (the fused `activation=` argument is the usual form)."""

    kind = "activation"

    def __init__(self, activation, name=None):
        super().__init__(name, activation)


class LeakyReLU(Layer):
    """y = x for x > 0, alpha * x otherwise (TFLite's LEAKY_RELU); a layer since it carries alpha."""

    kind = "leaky_relu"

    def __init__(self, alpha=0.2, name=None, activation="none"):
        super().__init__(name, activation)
        self.alpha = float(alpha)
        if not (math.isfinite(self.alpha) and 0.0 <= self.alpha < 1.0):
            raise ModelError(f"{self.name or 'leaky_relu'}: alpha must lie in [0, 1), got {alpha!r}")

    def config(self):
        return {**super().config(), "alpha": self.alpha}

    def _forward(self, x):
        from edgecnn.reference.activations import leaky_relu_forward

        return leaky_relu_forward(x, self.alpha)

    def _backward(self, dy):
        from edgecnn.reference.activations import leaky_relu_backward

        return leaky_relu_backward(dy, self._cache)


class ZeroPadding2D(Layer):
    """Zeros around the image (TFLite's PAD): what a conv's explicit padding is, as its own layer."""

    kind = "zero_padding2d"

    def __init__(self, padding=1, name=None, activation="none"):
        from edgecnn.reference.padding import normalize_pad

        super().__init__(name, activation)
        try:
            self.padding = list(normalize_pad(padding))
        except (ShapeError, TypeError, ValueError):
            raise ModelError(f"{name or 'zero_padding2d'}: padding must be an int >= 0, (ph, pw) or "
                             f"(top, bottom, left, right), got {padding!r}") from None

    def _infer(self, shape):
        if len(shape) != 3:
            raise ShapeError(f"{self.name}: zero padding needs an HWC input, got shape {shape}")
        top, bottom, left, right = self.padding
        return (shape[0] + top + bottom, shape[1] + left + right, shape[2])

    def config(self):
        return {**super().config(), "padding": self.padding}

    def _forward(self, x):
        from edgecnn.reference.zero_pad import zero_pad2d_forward

        return zero_pad2d_forward(x, self.padding)

    def _backward(self, dy):
        from edgecnn.reference.zero_pad import zero_pad2d_backward

        return zero_pad2d_backward(dy, self._cache)


LAYER_KINDS = {cls.kind: cls for cls in (Conv2D, Subsampling, MaxPool2D, AvgPool2D, Flatten, Dense, Activation,
                                         LeakyReLU, ZeroPadding2D)}


def _register_graph_layers() -> None:
    """Add the layers defined in their own modules (which import this one) to LAYER_KINDS."""
    from edgecnn.model.global_pooling import GlobalAvgPool2D, GlobalMaxPool2D
    from edgecnn.model.merge_layers import Add, Concatenate
    from edgecnn.model.norm_layers import BatchNorm

    for cls in (Add, Concatenate, BatchNorm, GlobalAvgPool2D, GlobalMaxPool2D):
        LAYER_KINDS.setdefault(cls.kind, cls)


def layer_from_config(cfg: dict) -> Layer:
    if not isinstance(cfg, dict):
        raise ModelError(f"a layer config must be a JSON object, got {type(cfg).__name__}")
    _register_graph_layers()
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise ModelError(f"unknown layer kind {kind!r}")
    try:
        return LAYER_KINDS[kind](**cfg)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelError(f"bad {kind} layer config: {exc}") from None
