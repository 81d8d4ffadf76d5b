"""Start-up and memory of the int8 runtime: `edgecnn predict` on one image, warm and cold, and batch-1,000 peak RSS.

    python benchmarks/startup.py [--runs 7] [--cold] [--models lenet5 mobilenet_v1_025]

Warm: the Numba cache already holds every kernel `predict` needs (one untimed run
fills it); each timed run is a new `edgecnn predict --backend numba MODEL image.png`
process, so the figure includes Python, numpy, Numba and edgecnn imports, reading the
model, decoding the image and the first call into the cached kernels. Cold (`--cold`):
one run with an empty NUMBA_CACHE_DIR, i.e. what the first prediction after an install
costs. Wall time and the child's own CPU time (user + system, from wait4) are printed
per run with the median; the machine's load average is printed before and after, since
wall time on a shared machine is the load's as much as the code's.

Peak memory: a child process builds the Runtime for each model and runs one batch of
1,000 random int8 images with 2 threads; its peak RSS (ru_maxrss) is printed with the
RSS it had before the Runtime was made (interpreter + numpy + Numba + the model).

Models: LeNet-5 is the graph of benchmarks/runtime_speed.py (random weights); the
converter-made ones come from the same cache as that script's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_speed import converter_models, cpu_description, lenet5_int8_graph  # noqa: E402

MEMORY_CHILD = r"""
import resource, sys, time
import numpy as np
from edgecnn.deploy.tflite import read_tflite
from edgecnn.deploy.runtime import Runtime
graph = read_tflite(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rt = Runtime(graph, num_threads=2)
shape = (1000,) + tuple(graph.tensors[graph.inputs[0]].shape[1:])
x = np.random.default_rng(0).integers(-128, 128, size=shape, dtype=np.int8)
rt.run(x)  # untimed: loads the kernels
start = time.perf_counter()
rt.run(x)
elapsed = time.perf_counter() - start
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, x.nbytes, elapsed)
"""


def timed_child(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall s, child CPU s, peak RSS KiB) of one process; raises if it fails."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a child that writes a lot cannot block wait4
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            log.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {log.read().decode().strip()[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def write_image(path: Path) -> None:
    """A 28x28 grey digit-like stroke (the model fits it to its input)."""
    from PIL import Image

    img = np.zeros((28, 28), np.uint8)
    img[5:23, 13:16] = 255
    img[5:8, 10:16] = 255
    Image.fromarray(img).save(path)


def load_line() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--cold", action="store_true", help="also one run with an empty Numba cache (minutes)")
    p.add_argument("--models", nargs="+", default=["lenet5", "mobilenet_v1_025"],
                   choices=["lenet5", "ds_cnn", "mobilenet_v1_025", "resnet8"], help="for the memory figures")
    p.add_argument("--models-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgecnn-bench-models")
    args = p.parse_args(argv)

    import numba

    from edgecnn.deploy.tflite.writer import to_bytes

    model, flags, mhz = cpu_description()
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {platform.machine()} {model}, "
          f"{os.cpu_count()} logical CPUs, {mhz:.0f} MHz; python {platform.python_version()}, "
          f"numba {numba.__version__}, numpy {np.__version__}")  # fmt: skip
    print(f"load average before: {load_line()}")
    edgecnn = str(Path(sys.executable).with_name("edgecnn"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lenet = tmp / "lenet5.tflite"
        lenet.write_bytes(to_bytes(lenet5_int8_graph()))
        image = tmp / "digit.png"
        write_image(image)
        cmd = [edgecnn, "predict", "--backend", "numba", str(lenet), str(image)]
        env = dict(os.environ)
        timed_child(cmd, env)  # fills the cache if needed: not timed
        runs = [timed_child(cmd, env) for _ in range(args.runs)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        print(f"\nwarm `edgecnn predict --backend numba lenet5.tflite digit.png`, {args.runs} runs:")
        print("  wall s: " + " ".join(f"{w:.2f}" for w in walls) + f"  median {statistics.median(walls):.2f}")
        print("  CPU s:  " + " ".join(f"{c:.2f}" for c in cpus) + f"  median {statistics.median(cpus):.2f}")
        print(f"  peak RSS {max(r[2] for r in runs) / 1024:.0f} MiB; target < 1 s wall: "
              f"{'met' if statistics.median(walls) < 1.0 else 'NOT met'} (median)")  # fmt: skip
        if args.cold:
            cold_env = dict(env, NUMBA_CACHE_DIR=str(tmp / "empty-numba-cache"))
            wall, cpu, rss = timed_child(cmd, cold_env)
            print(f"cold (empty NUMBA_CACHE_DIR): {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss / 1024:.0f} MiB")

        paths = {"lenet5": lenet}
        paths.update(converter_models(args.models_dir, [m for m in args.models if m != "lenet5"]))
        print("\npeak RSS of one batch of 1,000 images, 2 threads (before = after imports and reading the model):")
        for name in args.models:
            out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(paths[name])], env=env,
                                 capture_output=True, text=True)  # fmt: skip
            if out.returncode:
                raise SystemExit(f"memory run of {name} failed: {out.stderr.strip()[-300:]}")
            before, peak, input_bytes, elapsed = out.stdout.split()
            print(f"  {name:18s} before {int(before) / 1024:6.0f} MiB, peak {int(peak) / 1024:6.0f} MiB "
                  f"(input {int(input_bytes) / 2**20:.1f} MiB; run {float(elapsed):.2f} s)")  # fmt: skip
    print(f"\nload average after: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
