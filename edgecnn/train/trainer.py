"""Mini-batch training of a float graph (Sequential or Graph) with softmax cross-entropy.

BatchNorm layers run in train mode (batch statistics, running averages updated)
during the training steps and in eval mode for every accuracy figure.

Deterministic by construction: each epoch's shuffle and augmentation draw
from a generator seeded by (seed, epoch), parameters start from `seed`, and
every kernel sums in a fixed order. The same seed gives the same weights bit
for bit, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from edgecnn.errors import ShapeError, TrainingError
from edgecnn.model.graph import Graph
from edgecnn.progress import progress_bar
from edgecnn.train.augment import random_shift
from edgecnn.train.optim import lr_at, make_optimizer


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's default (Adam 1e-3, SGD 0.05)
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    augment_shift: int = 0
    seed: int = 0


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    seconds: float = 0.0
    history: list = field(default_factory=list)  # per epoch: loss, train_acc, test_acc, seconds


def accuracy(model: Graph, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    if len(x) == 0:
        return float("nan")
    logits = model.predict(x, batch_size)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def train(model: Graph, train_xy, test_xy, config: TrainConfig, *, state: TrainState | None = None,
          opt_state: dict | None = None, progress: bool | None = None, on_epoch=None) -> TrainState:
    """Train in place. `on_epoch(model, state, optimizer)` runs after each epoch (checkpointing)."""
    from edgecnn.tuning import tune_process

    tune_process()

    x_train, y_train = train_xy
    x_test, y_test = test_xy
    if x_train.ndim != 4 or x_train.shape[1:] != model.input_shape:
        raise ShapeError(f"training images have shape {x_train.shape[1:]}, the model wants {model.input_shape}")
    if len(x_train) == 0:
        raise ShapeError("there are no training images")
    if len(x_train) != len(y_train):
        raise ShapeError(f"{len(x_train)} training images but {len(y_train)} labels")
    n_classes = model.output_shape[0]
    if len(y_train) and (y_train.min() < 0 or y_train.max() >= n_classes):
        raise ShapeError(f"training labels must lie in 0..{n_classes - 1}, found {y_train.min()}..{y_train.max()}")
    if len(y_test) and (y_test.min() < 0 or y_test.max() >= n_classes):
        raise ShapeError(f"test labels must lie in 0..{n_classes - 1}, found {y_test.min()}..{y_test.max()}")
    state = state or TrainState()
    opt = make_optimizer(config.optimizer, config.lr, config.weight_decay)
    if opt_state:
        opt.load_state(opt_state)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is reported below, once
        return _epochs(model, x_train, y_train, x_test, y_test, config, state, opt, progress, on_epoch)


def _epochs(model, x_train, y_train, x_test, y_test, config, state, opt, progress, on_epoch):
    from edgecnn.reference.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward

    base_lr = opt.lr
    steps_per_epoch = -(-len(x_train) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    params = dict(model.named_params())
    for epoch in range(state.epoch, config.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(x_train))
        bar = progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", progress, unit="batch",
                           leave=True, dynamic_ncols=True)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            xb = random_shift(x_train[idx], config.augment_shift, rng)
            yb = y_train[idx]
            logits = model.forward(xb, train=True)
            loss, cache = softmax_cross_entropy_forward(logits, yb)
            if not np.isfinite(loss):
                raise TrainingError(f"training diverged: the loss is {float(loss)} at epoch {epoch + 1}, "
                                    f"batch {b + 1}; lower the learning rate")
            model.backward(softmax_cross_entropy_backward(cache))
            lr = lr_at(config.schedule, base_lr, epoch * steps_per_epoch + b, total_steps, warmup)
            opt.step(params, dict(model.named_grads()), lr)
            loss_sum += float(loss) * len(idx)
            correct += int(np.sum(np.argmax(logits, axis=1) == yb))
            seen += len(idx)
            if b % 20 == 0 or b == steps_per_epoch - 1:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
                bar.update(b + 1 - bar.n)
        train_seconds = time.perf_counter() - t0
        test_acc = accuracy(model, x_test, y_test)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", test=f"{test_acc:.4f}")
        bar.close()
        state.epoch = epoch + 1
        state.seconds += train_seconds
        state.history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                              "test_accuracy": test_acc, "seconds": train_seconds})
        if on_epoch is not None:
            on_epoch(model, state, opt)
    return state


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)
