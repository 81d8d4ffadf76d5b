"""A sequential float model: a list of layers with shapes inferred end to end."""

from __future__ import annotations

import numpy as np

from edgecnn.errors import ShapeError
from edgecnn.model.layers import Layer, layer_from_config


class Sequential:
    """Layers applied in order to an NHWC batch; `forward` returns logits."""

    def __init__(self, layers: list[Layer], input_shape, arch: str = "custom", labels=None):
        self.layers = list(layers)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.arch = arch
        self.labels = list(labels) if labels is not None else [str(i) for i in range(10)]
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            if layer.name is None:
                layer.name = f"{layer.kind}{i}"
            shape = layer.build(shape)
        self.output_shape = shape

    # -- parameters -----------------------------------------------------------
    def init_params(self, seed: int = 0, dtype=np.float32) -> "Sequential":
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, rng, dtype)
        return self

    def named_params(self):
        """Yield (key, array) with keys like 'conv1/w', in a fixed order."""
        for layer in self.layers:
            for k in sorted(layer.params):
                yield f"{layer.name}/{k}", layer.params[k]

    def named_grads(self):
        for layer in self.layers:
            for k in sorted(layer.params):
                yield f"{layer.name}/{k}", layer.grads[k]

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.named_params())

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for layer in self.layers:
            for k, v in layer.params.items():
                key = f"{layer.name}/{k}"
                if key not in state:
                    raise ShapeError(f"checkpoint has no array {key}")
                if state[key].shape != v.shape:
                    raise ShapeError(f"{key}: checkpoint shape {state[key].shape} != model shape {v.shape}")
                layer.params[k] = np.array(state[key], dtype=v.dtype)

    def astype(self, dtype) -> "Sequential":
        for layer in self.layers:
            layer.params = {k: v.astype(dtype) for k, v in layer.params.items()}
        return self

    @property
    def total_params(self) -> int:
        return sum(layer.param_count() for layer in self.layers)

    # -- math -------------------------------------------------------------------
    def check_input(self, x: np.ndarray) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(f"input shape {tuple(x.shape)} does not match the model's (N, {', '.join(map(str, self.input_shape))})")

    def forward(self, x, train: bool = False):
        self.check_input(x)
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dlogits):
        """Fill every layer's grads. The first layer skips dL/dx, which nothing reads."""
        d = dlogits
        for i in range(len(self.layers) - 1, -1, -1):
            d = self.layers[i].backward(d, need_dx=i > 0)
        return d

    def forward_trace(self, x):
        """Forward, returning every layer's output (for calibration and SQNR)."""
        self.check_input(x)
        outs = []
        for layer in self.layers:
            x = layer.forward(x, False)
            outs.append(x)
        return outs

    def predict(self, x, batch_size: int = 1000) -> np.ndarray:
        """Logits for any number of inputs, in batches to bound memory."""
        dtype = next(iter(self.layers[0].params.values())).dtype if self.layers[0].params else np.float32
        out = [self.forward(np.asarray(x[i:i + batch_size], dtype=dtype)) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, *self.output_shape), dtype=dtype)

    # -- serialisation ------------------------------------------------------------
    def spec(self) -> dict:
        return {
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "labels": self.labels,
            "layers": [layer.config() for layer in self.layers],
        }

    @classmethod
    def from_spec(cls, spec: dict) -> "Sequential":
        return cls([layer_from_config(c) for c in spec["layers"]], spec["input_shape"],
                   arch=spec.get("arch", "custom"), labels=spec.get("labels"))
