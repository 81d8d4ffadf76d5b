"""Seconds per training epoch: edgecnn's reference trainer vs PyTorch, same run, same model, same batch.

    python benchmarks/train_speed.py [--arch resnet8|lenet5] [--dataset fashion-mnist] [--limit N]
                                     [--batch-size 32] [--threads 2] [--rounds 2]
                                     [--torch-python /work/venv-torch/bin/python]

PyTorch runs in its own interpreter (`--torch-python`, a venv with
`pip install torch==2.13.0`); it is never a dependency of edgecnn. The images
reach it as raw float32 bytes, so that venv needs no numpy. Both sides train the
same architecture with Adam (lr 1e-3) on the same images in the same order of
magnitude of work: one pass over `--limit` images. Rounds alternate edgecnn and
PyTorch so that load from other processes on a shared machine hits both alike;
the median and the best (least disturbed) of the rounds are reported, with the CPU
model and the load average before and after. PyTorch runs with its default OpenMP
settings and with OMP_WAIT_POLICY=PASSIVE (edgecnn's setting), and the faster of
the two counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from runtime_speed import cpu_description  # the same CPU line as the runtime benchmark

TORCH_SCRIPT = r"""
import json, sys, time
import torch
from torch import nn

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
n, shape = cfg["n"], cfg["shape"]
x = torch.frombuffer(bytearray(open(cfg["x"], "rb").read()), dtype=torch.float32).reshape(n, *shape)
x = x.permute(0, 3, 1, 2).contiguous()
y = torch.frombuffer(bytearray(open(cfg["y"], "rb").read()), dtype=torch.int64)


class Block(nn.Module):
    # MLPerf Tiny ResNet-8 stack: conv3x3-BN-ReLU-conv3x3-BN + shortcut (1x1 conv when strided), ReLU
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout)
        self.short = nn.Conv2d(cin, cout, 1, stride) if stride != 1 else None

    def forward(self, t):
        u = self.b2(self.c2(torch.relu(self.b1(self.c1(t)))))
        return torch.relu(u + (self.short(t) if self.short is not None else t))


c = shape[2]
if cfg["arch"] == "resnet8":
    model = nn.Sequential(nn.Conv2d(c, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), Block(16, 16, 1),
                          Block(16, 32, 2), Block(32, 64, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
else:  # lenet5
    model = nn.Sequential(nn.Conv2d(c, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                          nn.ReLU(), nn.Linear(84, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
bs = cfg["batch"]


def epoch(count):
    model.train()
    perm = torch.randperm(count)
    correct = 0
    for i in range(0, count, bs):
        idx = perm[i:i + bs]
        out = model(x[idx])
        loss = loss_fn(out, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        correct += int((out.argmax(1) == y[idx]).sum())
    return correct / count


epoch(min(n, 8 * bs))  # warm-up
t0 = time.perf_counter()
acc = epoch(n)
print(json.dumps({"seconds": time.perf_counter() - t0, "train_accuracy": acc, "torch": torch.__version__}))
"""


def load_data(dataset: str, data: str | None, arch: str, limit: int | None):
    """(x float32 NHWC, y int64, description): the dataset's images, or random ones of CIFAR-10's shape."""
    from edgecnn.train.inputs import model_input

    if dataset == "random":
        rng = np.random.default_rng(0)
        n = limit or 10_000
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        return model_input(arch, images), rng.integers(0, 10, n).astype(np.int64), "random 32x32x3 images"
    from edgecnn.data.datasets import load_split

    images, labels = load_split(dataset, "train", data)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return model_input(arch, images), np.asarray(labels, np.int64), dataset


def edgecnn_epoch(arch, x, y, batch):
    from edgecnn.model import build
    from edgecnn.train.trainer import TrainConfig, train

    warm = build(arch, input_shape=x.shape[1:], classes=10).init_params(0)  # JIT (cached on disk) not timed
    train(warm, (x[:8 * batch], y[:8 * batch]), (x[:0], y[:0]), TrainConfig(epochs=1, batch_size=batch),
          progress=False)
    model = build(arch, input_shape=x.shape[1:], classes=10).init_params(0)
    t0 = time.perf_counter()
    state = train(model, (x, y), (x[:0], y[:0]), TrainConfig(epochs=1, batch_size=batch, schedule="constant"),
                  progress=False)
    return time.perf_counter() - t0, state.history[-1]["train_accuracy"]


def torch_epoch(python, arch, x, y, batch, threads, passive):
    with tempfile.TemporaryDirectory() as tmp:
        xf, yf = Path(tmp) / "x.bin", Path(tmp) / "y.bin"
        xf.write_bytes(np.ascontiguousarray(x, np.float32).tobytes())
        yf.write_bytes(np.ascontiguousarray(y, np.int64).tobytes())
        cfg = {"arch": arch, "n": len(x), "shape": list(x.shape[1:]), "x": str(xf), "y": str(yf),
               "batch": batch, "threads": threads}
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        if passive:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        done = subprocess.run([python, "-c", TORCH_SCRIPT, json.dumps(cfg)], capture_output=True, text=True,
                              env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"PyTorch run failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("resnet8", "lenet5"), default="resnet8")
    ap.add_argument("--dataset", default="fashion-mnist", help="an IDX dataset name, or 'random' (32x32x3)")
    ap.add_argument("--data", default=None, help="data root (default: edgecnn's search order)")
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--torch-python", default="/work/venv-torch/bin/python")
    ap.add_argument("--torch-wait", choices=("both", "passive", "default"), default="both",
                    help="PyTorch's OpenMP wait policy: its default, edgecnn's PASSIVE, or both (the faster counts)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from edgecnn.tuning import tune_process

    tune_process()
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    x, y, what = load_data(args.dataset, args.data, args.arch, args.limit)
    print(f"{args.arch} on {what} {tuple(x.shape[1:])}: {len(x)} images/epoch, batch {args.batch_size}, Adam, "
          f"{args.threads} threads, {args.rounds} round(s)", file=sys.stderr)
    model, flags, _ = cpu_description()
    load_before = os.getloadavg()
    print(f"cpu: {model} ({os.cpu_count()} cpus; {' '.join(f for f in ('fma', 'avx2', 'avx512f') if f in flags)}); "
          f"load average {' '.join(f'{v:.2f}' for v in load_before)}", file=sys.stderr)
    have_torch = Path(args.torch_python).exists()
    ours, theirs, torch_version = [], [], None
    for r in range(args.rounds):
        sec, acc = edgecnn_epoch(args.arch, x, y, args.batch_size)
        ours.append(sec)
        print(f"round {r + 1}: edgecnn {sec:7.2f} s/epoch (train accuracy {acc:.4f})", file=sys.stderr)
        if not have_torch:
            continue
        modes = {"both": (False, True), "passive": (True,), "default": (False,)}[args.torch_wait]
        runs = {passive: torch_epoch(args.torch_python, args.arch, x, y, args.batch_size, args.threads, passive)
                for passive in modes}
        best = min(runs.values(), key=lambda run: run["seconds"])
        theirs.append(best["seconds"])
        torch_version = best["torch"]
        detail = ", ".join(f"{'passive' if p else 'default'} {run['seconds']:.2f}" for p, run in runs.items())
        print(f"round {r + 1}: pytorch {best['seconds']:7.2f} s/epoch ({detail}; "
              f"train accuracy {best['train_accuracy']:.4f})", file=sys.stderr)
    result = {"arch": args.arch, "dataset": what, "images": len(x), "batch": args.batch_size,
              "threads": args.threads, "edgecnn_seconds": statistics.median(ours), "edgecnn_best": min(ours),
              "pytorch_seconds": statistics.median(theirs) if theirs else None,
              "pytorch_best": min(theirs) if theirs else None, "torch": torch_version, "cpu": model,
              "load_average_before": load_before, "load_average_after": os.getloadavg()}
    if theirs:
        result["ratio"] = result["edgecnn_seconds"] / result["pytorch_seconds"]
        result["ratio_best"] = result["edgecnn_best"] / result["pytorch_best"]
    if args.json:
        print(json.dumps(result))
    else:
        print(f"load average after: {' '.join(f'{v:.2f}' for v in result['load_average_after'])}")
        print(f"edgecnn : {result['edgecnn_seconds']:7.2f} s/epoch median, {result['edgecnn_best']:.2f} best")
        if theirs:
            print(f"pytorch : {result['pytorch_seconds']:7.2f} s/epoch median, {result['pytorch_best']:.2f} best "
                  f"(torch {torch_version})")
            print(f"ratio edgecnn / pytorch = {result['ratio']:.2f}x median, {result['ratio_best']:.2f}x best "
                  f"(target <= 1.00x)")
        else:
            print(f"pytorch : not found at {args.torch_python} (python3.11 -m venv /work/venv-torch && "
                  f"/work/venv-torch/bin/pip install torch==2.13.0)")


if __name__ == "__main__":
    main()
