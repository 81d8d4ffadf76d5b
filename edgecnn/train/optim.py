"""Optimizers and learning-rate schedules, over a model's named parameters.

State is plain named arrays so it round-trips through the checkpoint for
`--resume`. Updates are in place and elementwise, so a run is bit-for-bit
repeatable for a given seed.
"""

from __future__ import annotations

import math

import numpy as np

from edgecnn.errors import EdgecnnError


class Adam:
    """Adam with decoupled weight decay (AdamW, Loshchilov & Hutter) when weight_decay > 0."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1 = 1.0 - b1 ** self.t
        c2 = 1.0 - b2 ** self.t
        for k, p in params.items():
            g = grads[k]
            if k not in self.m:
                self.m[k] = np.zeros_like(p)
                self.v[k] = np.zeros_like(p)
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            if self.weight_decay and p.ndim > 1:  # no decay on biases or per-map coefficients
                p *= 1.0 - lr * self.weight_decay
            p -= (lr / c1) * m / (np.sqrt(v / c2) + self.eps)

    def state(self) -> dict[str, np.ndarray]:
        out = {"t": np.array(self.t)}
        out.update({f"m/{k}": v for k, v in self.m.items()})
        out.update({f"v/{k}": v for k, v in self.v.items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state.get("t", 0))
        self.m = {k[2:]: v.copy() for k, v in state.items() if k.startswith("m/")}
        self.v = {k[2:]: v.copy() for k, v in state.items() if k.startswith("v/")}


class SGD:
    """SGD with (Nesterov-free) momentum and L2 weight decay folded into the gradient."""

    def __init__(self, lr=0.05, momentum=0.9, weight_decay=0.0):
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buf: dict[str, np.ndarray] = {}

    def step(self, params, grads, lr: float) -> None:
        for k, p in params.items():
            g = grads[k]
            if self.weight_decay and p.ndim > 1:
                g = g + self.weight_decay * p
            if k not in self.buf:
                self.buf[k] = np.array(g, copy=True)
            else:
                b = self.buf[k]
                b *= self.momentum
                b += g
            p -= lr * self.buf[k]

    def state(self):
        return {f"buf/{k}": v for k, v in self.buf.items()}

    def load_state(self, state):
        self.buf = {k[4:]: v.copy() for k, v in state.items() if k.startswith("buf/")}


OPTIMIZERS = {"adam": Adam, "sgd": SGD}
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05}


def make_optimizer(name: str, lr: float | None = None, weight_decay: float = 0.0):
    if name not in OPTIMIZERS:
        raise EdgecnnError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](lr=DEFAULT_LR[name] if lr is None else lr, weight_decay=weight_decay)


def lr_at(schedule: str, base_lr: float, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Learning rate at `step` (0-based): linear warmup, then constant, cosine or step decay."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return base_lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))
    if schedule == "step":
        return base_lr * (0.1 ** int(frac * 3))
    raise EdgecnnError(f"unknown learning-rate schedule {schedule!r}; choose constant, cosine or step")
