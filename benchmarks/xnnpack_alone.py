"""XNNPACK in a process of its own: the fairness check of runtime_speed.py's interleaved figures.

    python benchmarks/xnnpack_alone.py [--models ds_cnn mobilenet_v1_025 resnet8] [--rounds 5] [--window 0.2]

runtime_speed.py times edgecnn and LiteRT in one process, in turns. A peer that
keeps a thread pool (XNNPACK's pthreadpool) can lose speed to the turns themselves
(its workers fall asleep during the other engines' turns; caches are cold), and
edgecnn's helper threads live in the same process. This script loads no edgecnn
Runtime at all and times XNNPACK (LiteRT's default resolver) alone, back to back,
on the same .tflite files, so the two can be set side by side: if XNNPACK is faster
here than in runtime_speed.py's run, the ratio against this figure is the honest one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_speed import CONVERTER_MODELS, converter_models, cpu_description, time_round  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(CONVERTER_MODELS), choices=CONVERTER_MODELS)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--window", type=float, default=0.2, help="seconds per timed window")
    p.add_argument("--models-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgecnn-bench-models")
    args = p.parse_args(argv)

    from edgecnn.deploy.litert import LiteRTRunner
    from edgecnn.deploy.tflite import read_tflite

    model, flags, mhz = cpu_description()
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {model}, {os.cpu_count()} logical CPUs, "
          f"{mhz:.0f} MHz; avx512_vnni {'yes' if 'avx512_vnni' in flags else 'no'}")  # fmt: skip
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name, path in converter_models(args.models_dir, args.models).items():
        graph, data = read_tflite(path), path.read_bytes()
        in_shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
        for threads in args.threads:
            runner = LiteRTRunner(data, resolver="default", num_threads=threads)
            for batch in args.batches:
                x = np.random.default_rng(0).integers(-128, 128, size=(batch,) + in_shape, dtype=np.int8)
                runner.run(x)
                rates = [batch / time_round(runner.run, x, args.window) for _ in range(args.rounds)]
                print(f"{name:18s} threads {threads} batch {batch:4d}: xnnpack alone "
                      f"{statistics.median(rates):9.0f} images/s (median of {args.rounds})")  # fmt: skip
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
