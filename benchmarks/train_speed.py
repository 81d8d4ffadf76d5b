"""Seconds per training epoch: edgecnn's reference trainer vs PyTorch, same run, same model.

LeNet-5 (61,706 parameters) on MNIST, batch 64, Adam, 2 threads. PyTorch is
timed only when it is installed (`pip install torch==2.13.0`); it is never a
dependency of edgecnn.

    python benchmarks/train_speed.py [--epochs 1] [--threads 2] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def edgecnn_epoch(x, y, epochs, seed=0):
    from edgecnn.model import build
    from edgecnn.train.trainer import TrainConfig, train

    # Warm-up on a few batches so Numba's JIT (cached after the first run) is not timed.
    warm = build("lenet5").init_params(seed)
    train(warm, (x[:256], y[:256]), (x[:0], y[:0]), TrainConfig(epochs=1, seed=seed), progress=False)
    model = build("lenet5").init_params(seed)
    t0 = time.perf_counter()
    state = train(model, (x, y), (x[:0], y[:0]), TrainConfig(epochs=epochs, seed=seed), progress=False)
    return (time.perf_counter() - t0) / epochs, state.history[-1]["train_accuracy"]


def torch_epoch(x, y, epochs, threads, seed=0):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()

    def one_epoch(n):
        perm = torch.randperm(n)
        correct = 0
        for i in range(0, n, 64):
            idx = perm[i:i + 64]
            out = model(xt[idx])
            loss = loss_fn(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((out.argmax(1) == yt[idx]).sum())
        return correct / n

    one_epoch(256)  # warm-up
    t0 = time.perf_counter()
    for _ in range(epochs):
        acc = one_epoch(len(xt))
    return (time.perf_counter() - t0) / epochs, acc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--data", default=os.environ.get("EDGECNN_DATA"))
    args = ap.parse_args()

    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from edgecnn.data.datasets import lenet_input, load_split

    images, labels = load_split("mnist", "train", args.data)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    x, y = lenet_input(images), labels.astype(np.int64)
    print(f"LeNet-5, {len(x)} images/epoch, batch 64, Adam, {args.threads} threads, {args.epochs} epoch(s)")
    e_sec, e_acc = edgecnn_epoch(x, y, args.epochs)
    print(f"edgecnn : {e_sec:6.2f} s/epoch  (train accuracy {e_acc:.4f})")
    try:
        import torch
    except ImportError:
        print("pytorch : not installed (pip install torch==2.13.0 to compare)")
        return
    t_sec, t_acc = torch_epoch(x, y, args.epochs, args.threads)
    print(f"pytorch : {t_sec:6.2f} s/epoch  (train accuracy {t_acc:.4f}, torch {torch.__version__})")
    print(f"ratio edgecnn / pytorch = {e_sec / t_sec:.2f}x  (target <= 1.00x)")


if __name__ == "__main__":
    main()
