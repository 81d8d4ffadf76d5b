"""Train small PyTorch CNNs on an MNIST subset and export them with torch.onnx.export.

Run in the separate PyTorch venv ($EDGECNN_TORCH_PYTHON; PyTorch is never an
edgecnn dependency), by tests/test_pytorch_models.py:

    $EDGECNN_TORCH_PYTHON tests/torch_models.py MNIST_DIR OUTDIR [--only NAME ...]

For each model it writes OUTDIR/NAME.onnx, OUTDIR/NAME.npy (the float logits
of the first --test test images, as PyTorch computes them) and one line of
OUTDIR/results.json: {"NAME": {"float_accuracy", "mean", "std", "test",
"seconds"}}. Models:
- resnet: a 3x3 stem, two residual blocks with BN (the second with stride 2
  and a 1x1 conv + BN shortcut), global average pooling, a dense head;
- mobilenetv2: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1
  project, BN and ReLU6; a skip where shapes allow), mean over H and W;
- concat: two branches (3x3 and 5x5 convs) concatenated on channels;
- lenet: the usual PyTorch MNIST LeNet, 28x28 input, padding=2, trained on
  (pixel/255 - 0.1307) / 0.3081 computed outside the model.
MNIST is read from its IDX files with numpy, so no torchvision is needed.
Training is seeded and single-threaded, so the same run gives the same models.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def read_idx(path: Path) -> np.ndarray:
    data = path.read_bytes()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(root: Path):
    return (read_idx(root / "train-images-idx3-ubyte"), read_idx(root / "train-labels-idx1-ubyte"),
            read_idx(root / "t10k-images-idx3-ubyte"), read_idx(root / "t10k-labels-idx1-ubyte"))


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


class Residual(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3)
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.b(F.relu(self.a(x))) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 8)
        self.blocks = nn.Sequential(Residual(8, 8, 1), Residual(8, 16, 2))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(conv_bn(cin, mid, 1), nn.ReLU6(), conv_bn(mid, mid, 3, stride, groups=mid),
                                  nn.ReLU6(), conv_bn(mid, cout, 1))
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, 16, 3, 2), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(16, 16, 1, 2), InvertedResidual(16, 24, 2, 4),
                                    InvertedResidual(24, 24, 1, 4))
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class ConcatNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 8, 3, padding=1)
        self.right = nn.Conv2d(8, 8, 5, padding=2)
        self.mix = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 2)
        x = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], dim=1)
        x = F.relu(self.mix(x))
        return self.fc(x.view(x.size(0), -1))


class LeNet(nn.Module):
    """The common PyTorch MNIST LeNet: 28x28 input, padding=2 on the first conv."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


MODELS = {"resnet": (ResNet, False), "mobilenetv2": (MobileNetV2, False), "concat": (ConcatNet, False),
          "lenet": (LeNet, True)}


def to_input(images: np.ndarray, normalise: bool) -> torch.Tensor:
    """NCHW float32 pixel/255, then (x - mean) / std for models trained that way (as edgecnn computes it)."""
    x = images.astype(np.float32)[:, None] / np.float32(255)
    if normalise:
        x = (x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def train_and_export(name, data, out: Path, steps: int, train_n: int, test_n: int, seed: int) -> dict:
    cls, normalise = MODELS[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = data
    xs, ys = to_input(x_train[:train_n], normalise), torch.from_numpy(y_train[:train_n].astype(np.int64))
    model = cls()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = time.time()
    model.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, train_n, 64))
        loss = F.cross_entropy(model(xs[idx]), ys[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(to_input(x_test[i:i + 500], normalise)) for i in range(0, test_n, 500)]).numpy()
    acc = float(np.mean(logits.argmax(1) == y_test[:test_n]))
    np.save(out / f"{name}.npy", logits)
    torch.onnx.export(model, to_input(x_test[:1], normalise), str(out / f"{name}.onnx"), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=17,
                      dynamo=False)
    return {"float_accuracy": acc, "mean": [MNIST_MEAN] if normalise else None,
            "std": [MNIST_STD] if normalise else None, "test": test_n, "seconds": round(time.time() - start, 2),
            "torch": torch.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mnist", type=Path, help="folder with MNIST's four IDX files")
    p.add_argument("out", type=Path)
    p.add_argument("--only", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--train", type=int, default=6000, help="training images (the first N)")
    p.add_argument("--test", type=int, default=10000, help="test images (the first N)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(args.mnist)
    results = {name: train_and_export(name, data, args.out, args.steps, args.train, args.test, args.seed)
               for name in args.only}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
