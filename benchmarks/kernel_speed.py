"""Per-layer forward/backward time of edgecnn's float kernels on LeNet-5 at batch 64.

Runs whole training steps (forward then backward through every layer, in order,
as the trainer does) and times each call, so thread hand-offs between kernels are
included. Prints median and best ms per call, and the epoch time the median step
implies for 60,000 images (optimizer and data loading not included).

    python benchmarks/kernel_speed.py [--batch 64] [--steps 200] [--dtype float32] [--no-tune]
                                      [--threads N] [--clock wall|cpu]

By default it first applies edgecnn.tuning.tune_for_training(), as the
trainer should; --no-tune measures the process as Python leaves it. On a machine
shared with other jobs wall time swings widely; `--threads 1 --clock cpu` counts
only this process's CPU time, a steadier measure of the kernels themselves.
"""

import argparse
import time
from collections import defaultdict

import numba
import numpy as np

from edgecnn.reference import (
    conv2d_backward,
    conv2d_forward,
    dense_backward,
    dense_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    relu_backward,
    relu_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from edgecnn.tuning import tune_for_training


def lenet5_params(rng, dtype):
    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

    return {
        "conv1": (he((6, 5, 5, 1), 25), np.zeros(6, dtype)),
        "conv2": (he((16, 5, 5, 6), 150), np.zeros(16, dtype)),
        "fc1": (he((120, 400), 400), np.zeros(120, dtype)),
        "fc2": (he((84, 120), 120), np.zeros(84, dtype)),
        "fc3": (he((10, 84), 84), np.zeros(10, dtype)),
    }


CLOCK = time.perf_counter


def train_step(x, labels, params, timings):
    """One forward + backward pass; adds each call's seconds to timings[(layer, 'fwd'|'bwd')]."""

    def timed(key, fn, *args, **kwargs):
        t0 = CLOCK()
        out = fn(*args, **kwargs)
        timings[key].append(CLOCK() - t0)
        return out

    p = params
    h, c_conv1 = timed(("conv1", "fwd"), conv2d_forward, x, *p["conv1"])
    h, c_relu1 = timed(("relu1", "fwd"), relu_forward, h)
    h, c_pool1 = timed(("pool1", "fwd"), max_pool2d_forward, h)
    h, c_conv2 = timed(("conv2", "fwd"), conv2d_forward, h, *p["conv2"])
    h, c_relu2 = timed(("relu2", "fwd"), relu_forward, h)
    h, c_pool2 = timed(("pool2", "fwd"), max_pool2d_forward, h)
    flat = h.reshape(h.shape[0], -1)
    h, c_fc1 = timed(("fc1", "fwd"), dense_forward, flat, *p["fc1"])
    h, c_relu3 = timed(("relu3", "fwd"), relu_forward, h)
    h, c_fc2 = timed(("fc2", "fwd"), dense_forward, h, *p["fc2"])
    h, c_relu4 = timed(("relu4", "fwd"), relu_forward, h)
    logits, c_fc3 = timed(("fc3", "fwd"), dense_forward, h, *p["fc3"])
    loss, c_loss = timed(("loss", "fwd"), softmax_cross_entropy_forward, logits, labels)

    d = timed(("loss", "bwd"), softmax_cross_entropy_backward, c_loss)
    d, _, _ = timed(("fc3", "bwd"), dense_backward, d, c_fc3)
    d = timed(("relu4", "bwd"), relu_backward, d, c_relu4)
    d, _, _ = timed(("fc2", "bwd"), dense_backward, d, c_fc2)
    d = timed(("relu3", "bwd"), relu_backward, d, c_relu3)
    d, _, _ = timed(("fc1", "bwd"), dense_backward, d, c_fc1)
    d = d.reshape(c_pool2.argmax.shape)
    d = timed(("pool2", "bwd"), max_pool2d_backward, d, c_pool2)
    d = timed(("relu2", "bwd"), relu_backward, d, c_relu2)
    d, _, _ = timed(("conv2", "bwd"), conv2d_backward, d, c_conv2)
    d = timed(("pool1", "bwd"), max_pool2d_backward, d, c_pool1)
    d = timed(("relu1", "bwd"), relu_backward, d, c_relu1)
    timed(("conv1", "bwd"), conv2d_backward, d, c_conv1, need_dx=False)
    return loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--no-tune", action="store_true", help="skip tune_for_training()")
    parser.add_argument("--threads", type=int, default=None, help="Numba threads (default: all cores)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu = this process's CPU time (all threads; spinning counts too)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    if not args.no_tune:
        print("tuning:", tune_for_training())
    if args.threads:
        numba.set_num_threads(args.threads)
    print(f"numba threads: {numba.get_num_threads()}, clock: {args.clock}")

    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    params = lenet5_params(rng, dtype)
    x = rng.random((args.batch, 32, 32, 1)).astype(dtype)
    labels = rng.integers(0, 10, args.batch)

    t0 = time.perf_counter()
    train_step(x, labels, params, defaultdict(list))  # compiles, or loads Numba's cache
    print(f"first step (compile or cache load): {time.perf_counter() - t0:.2f} s")

    timings = defaultdict(list)
    step_times = []
    for _ in range(args.steps):
        t0 = CLOCK()
        train_step(x, labels, params, timings)
        step_times.append(CLOCK() - t0)

    print(f"\nbatch {args.batch}, {args.dtype}, {args.steps} steps; ms per call (median / best)")
    print(f"{'layer':8s} {'fwd':>15s} {'bwd':>15s}")
    layers = list(dict.fromkeys(layer for layer, _ in timings))
    for layer in layers:
        cells = []
        for phase in ("fwd", "bwd"):
            ms = np.array(timings[(layer, phase)]) * 1e3
            cells.append(f"{np.median(ms):6.3f} / {ms.min():6.3f}")
        print(f"{layer:8s} {cells[0]:>15s} {cells[1]:>15s}")
    step_ms = np.array(step_times) * 1e3
    batches = -(-60000 // args.batch)
    print(f"\nwhole step: median {np.median(step_ms):.3f} ms, best {step_ms.min():.3f} ms")
    print(f"implied epoch (60,000 images, {batches} batches, kernels only): "
          f"{np.median(step_ms) * batches / 1e3:.2f} s (median), {step_ms.min() * batches / 1e3:.2f} s (best)")


if __name__ == "__main__":
    main()
