"""edgecnn's int8 runtime vs LiteRT (XNNPACK, builtin, reference) and onnxruntime: one process, interleaved.

Models: LeNet-5 (an Int8Graph built here, random weights) and converter-made DS-CNN,
MobileNetV1 0.25 (96x96x3) and ResNet-8 (tests/tf_conformance_models.py, run in the
TensorFlow venv: $EDGECNN_TF_PYTHON or /work/main/.venv-tf/bin/python; the .tflite files
are cached in --models-dir). Every engine loads the same graph (LiteRT: the same bytes).

For each model, thread count and batch: every output of edgecnn is compared with LiteRT
BUILTIN_REF (must be identical), then the engines are timed in rounds; within a round
each engine runs back to back (interleaved), so load changes hit all of them alike, and
the order rotates from round to round, so no engine always follows the same one (a
thread pool still spinning after its engine's call takes a core from the next engine;
onnxruntime's spinning is switched off for the same reason). The figure is the median
over rounds of images/s; the ratio is edgecnn / the engine. The reference and builtin
resolvers and onnxruntime are slow: they run at batch 1 and 64 only. The closing table lists the issue's
targets (2 threads: LeNet-5 >= 1.3x XNNPACK at batch 1 and 1,000; the others >= 1.0x at
batch 1 and 64) with the ratio measured in this run.

Also printed: the CPU model and flags, load average (before and after), library versions,
the kernels edgecnn picked (vnni / portable: EDGECNN_KERNELS=portable forces the latter),
and GMAC/s with its share of the int8 peak: 64 MACs per cycle per core (one vpdpbusd zmm
per cycle) at the clock /proc/cpuinfo reports, times the threads used.

    python benchmarks/runtime_speed.py [--models lenet5 ds_cnn ...] [--threads 1 2] [--batches 1 64 1000]
    python benchmarks/runtime_speed.py --quick   # 2 threads, the target batches, edgecnn vs XNNPACK, 5 rounds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before Numba loads libgomp: shared cores, short regions

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from edgecnn.int8.graph import Int8Graph, Op, Tensor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONVERTER_MODELS = ("ds_cnn", "mobilenet_v1_025", "resnet8")
ALL_MODELS = ("lenet5",) + CONVERTER_MODELS


def lenet5_int8_graph(seed: int = 0) -> Int8Graph:
    """CONV 5x5x6 RELU, MAX_POOL 2, CONV 5x5x16 RELU, MAX_POOL 2, RESHAPE, FC 120 RELU, FC 84 RELU, FC 10."""
    rng = np.random.default_rng(seed)
    tensors: list[Tensor] = []

    def add(t):
        tensors.append(t)
        return len(tensors) - 1

    def activation(name, shape, scale, zero_point=-128):
        return add(Tensor(name, shape, "int8", np.float32(scale), zero_point))

    def layer(x, name, filter_shape, out_shape, taps):
        channels = filter_shape[0]
        w_scales = rng.uniform(0.004, 0.012, channels).astype(np.float32)
        w = add(Tensor(f"{name}/weights", filter_shape, "int8", w_scales, np.zeros(channels, np.int64), 0,
                       rng.integers(-127, 128, filter_shape, dtype=np.int8)))  # fmt: skip
        in_scale = np.float32(tensors[x].scale[0])
        b = add(Tensor(f"{name}/bias", (channels,), "int32", in_scale * w_scales, np.zeros(channels, np.int64), 0,
                       rng.integers(-2000, 2000, channels).astype(np.int32)))  # fmt: skip
        # Output scale ~ the accumulator's spread over ~80 steps (random inputs, random weights).
        y = activation(name, out_shape, float(in_scale) * 0.008 * 64 * 73 * np.sqrt(taps) / 40)
        return w, b, y

    conv = dict(padding="VALID", stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1,
                fused_activation_function="RELU")  # fmt: skip
    pool = dict(padding="VALID", stride_h=2, stride_w=2, filter_height=2, filter_width=2,
                fused_activation_function="NONE")  # fmt: skip
    x = activation("input", (1, 32, 32, 1), 1 / 255)
    w1, b1, c1 = layer(x, "conv1", (6, 5, 5, 1), (1, 28, 28, 6), 25)
    p1 = activation("pool1", (1, 14, 14, 6), float(tensors[c1].scale[0]))
    w2, b2, c2 = layer(p1, "conv2", (16, 5, 5, 6), (1, 10, 10, 16), 150)
    p2 = activation("pool2", (1, 5, 5, 16), float(tensors[c2].scale[0]))
    flat = activation("flatten", (1, 400), float(tensors[c2].scale[0]))
    w3, b3, f1 = layer(flat, "fc1", (120, 400), (1, 120), 400)
    w4, b4, f2 = layer(f1, "fc2", (84, 120), (1, 84), 120)
    w5, b5, f3 = layer(f2, "fc3", (10, 84), (1, 10), 84)
    dense = dict(fused_activation_function="RELU", keep_num_dims=False)
    ops = [
        Op("CONV_2D", [x, w1, b1], [c1], conv),
        Op("MAX_POOL_2D", [c1], [p1], pool),
        Op("CONV_2D", [p1, w2, b2], [c2], conv),
        Op("MAX_POOL_2D", [c2], [p2], pool),
        Op("RESHAPE", [p2], [flat], dict(new_shape=[-1, 400])),  # -1: LiteRT can resize the batch
        Op("FULLY_CONNECTED", [flat, w3, b3], [f1], dense),
        Op("FULLY_CONNECTED", [f1, w4, b4], [f2], dense),
        Op("FULLY_CONNECTED", [f2, w5, b5], [f3], dict(dense, fused_activation_function="NONE")),
    ]
    return Int8Graph(tensors, ops, [x], [f3]).validate()


def macs_per_image(graph: Int8Graph) -> int:
    """Multiply-accumulates of the conv-like ops for one image."""
    total = 0
    for op in graph.ops:
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = graph.tensors[op.outputs[0]].shape
        w = graph.tensors[op.inputs[1]].shape
        if op.kind == "CONV_2D":
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif op.kind == "DEPTHWISE_CONV_2D":
            total += int(np.prod(out)) * w[1] * w[2]
        else:
            total += int(np.prod(out)) * w[1]
    return total


def converter_models(directory: Path, names) -> dict:
    """name -> .tflite path, making the missing ones with the TensorFlow venv (seeded, deterministic)."""
    directory.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not (directory / f"{n}.tflite").exists()]
    if missing:
        python = os.environ.get("EDGECNN_TF_PYTHON", str(ROOT / ".venv-tf" / "bin" / "python"))
        print(f"making {', '.join(missing)} with {python} tests/tf_conformance_models.py ...", flush=True)
        subprocess.run([python, str(ROOT / "tests" / "tf_conformance_models.py"), str(directory), "--only", *missing],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return {n: directory / f"{n}.tflite" for n in names}


def cpu_description() -> tuple[str, list[str], float]:
    model, flags, mhz = platform.processor() or "?", [], 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("?", "", "x86_64"):
                model = value.strip()
            elif key == "flags" and not flags:
                flags = value.split()
            elif key == "cpu MHz" and not mhz:
                mhz = float(value)
    except OSError:
        pass
    return model, flags, mhz


def engines(graph: Int8Graph, tflite_bytes: bytes, threads: int, batch: int, quick: bool = False) -> dict:
    """name -> callable(x) for every engine that can run; reasons printed for the others."""
    from edgecnn.deploy.litert import LiteRTRunner
    from edgecnn.deploy.runtime import Runtime

    out = {"edgecnn": Runtime(graph, num_threads=threads).run}
    for resolver, name in (("default", "xnnpack"), ("builtin", "builtin"), ("ref", "ref")):
        if name in ("builtin", "ref") and (batch > 64 or quick):
            continue
        out[name] = LiteRTRunner(tflite_bytes, resolver=resolver, num_threads=threads).run
    if quick or batch > 64:  # onnxruntime's int8 convs run at 16-500 images/s here: batch 1,000 would take minutes
        return out
    try:
        import onnxruntime as ort

        from edgecnn.deploy.export.onnx import to_bytes as onnx_bytes

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see the module doc
        session = ort.InferenceSession(onnx_bytes(graph), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        out["onnxruntime"] = lambda x: session.run(None, {name: x})[0]
    except Exception as e:  # exporter in progress, onnxruntime missing, ...
        print(f"    onnxruntime skipped: {type(e).__name__}: {str(e)[:100]}")
    return out


def time_round(run, x, budget: float) -> float:
    """Seconds per call: at least one call, more until `budget` seconds have passed."""
    calls, start = 0, time.perf_counter()
    while True:
        run(x)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / calls


TARGETS = {"lenet5": ((1, 1000), 1.3), "ds_cnn": ((1, 64), 1.0), "mobilenet_v1_025": ((1, 64), 1.0),
           "resnet8": ((1, 64), 1.0)}  # issue 9's must-show, 2 threads


def print_targets(results) -> None:
    """The issue's targets (2 threads, ratio edgecnn / XNNPACK) next to this run's medians."""
    rows = [r for r in results if r["threads"] == 2 and r["batch"] in TARGETS[r["model"]][0]
            and "xnnpack" in r["images_per_second"]]  # fmt: skip
    if not rows:
        return
    print("\ntargets (2 threads, edgecnn / XNNPACK, medians of this run):")
    for r in rows:
        rate = r["images_per_second"]
        ratio, goal = rate["edgecnn"] / rate["xnnpack"], TARGETS[r["model"]][1]
        print(f"  {r['model']:17s} batch {r['batch']:5d}: {ratio:5.2f}x (target >= {goal}x) "
              f"{'met' if ratio >= goal else 'NOT met'}; output identical to BUILTIN_REF: "
              f"{'yes' if r['identical'] else 'NO'}")  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(ALL_MODELS), choices=ALL_MODELS)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64, 1000])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--budget", type=float, default=0.3,
                   help="seconds per engine per round (at least one call); shorter turns favour edgecnn: XNNPACK's "
                        "2-thread pool measured ~20%% below its rate in a process of its own at 0.05 s")
    p.add_argument("--models-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "edgecnn-bench-models")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="2 threads; batch 1 and 64 (LeNet-5: 1 and 1000); edgecnn and XNNPACK only; 5 rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.threads, args.rounds = [2], min(args.rounds, 5)

    import ai_edge_litert
    import numba

    from edgecnn.deploy.runtime.cpu import kernel_choice
    from edgecnn.deploy.tflite import read_tflite
    from edgecnn.deploy.tflite.writer import to_bytes

    model, flags, mhz = cpu_description()
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimddp", "i8mm")
    versions = {"numba": numba.__version__, "numpy": np.__version__,
                "ai-edge-litert": getattr(ai_edge_litert, "__version__", "?")}  # fmt: skip
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    print(f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {platform.machine()} {model}, "
          f"{os.cpu_count()} logical CPUs, {mhz:.0f} MHz")  # fmt: skip
    print(f"CPU flags of note: {' '.join(f for f in wanted if f in flags) or 'none'} ({len(flags)} flags in all)")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; python {platform.python_version()}; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"edgecnn kernels: {kernel_choice()}; edgecnn threads: the caller + its own helper threads (one thread "
          f"while the load average >= cores + 1 at batch 1, cores + 4 for batches); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (per-op path only)")  # fmt: skip
    peak_per_core = 64 * mhz / 1e3  # GMAC/s: one 64-MAC vpdpbusd per cycle
    print(f"int8 peak assumed: 64 MAC/cycle/core x {mhz / 1e3:.2f} GHz = {peak_per_core:.0f} GMAC/s per core")

    graphs = {}
    if "lenet5" in args.models:
        g = lenet5_int8_graph()
        graphs["lenet5"] = (g, to_bytes(g))
    paths = converter_models(args.models_dir, [m for m in args.models if m != "lenet5"])
    for name, path in paths.items():
        graphs[name] = (read_tflite(path), path.read_bytes())

    results = []
    for name, (graph, model_bytes) in graphs.items():
        macs = macs_per_image(graph)
        shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
        print(f"\n== {name}: {macs / 1e6:.3f} M MAC per image, input {shape}")
        for threads in args.threads:
            batches = args.batches
            if args.quick:
                batches = [1, 1000] if name == "lenet5" else [1, 64]
            for batch in batches:
                x = np.random.default_rng(batch).integers(-128, 128, (batch,) + shape, dtype=np.int8)
                runs = engines(graph, model_bytes, threads, batch, args.quick)
                from edgecnn.deploy.litert import LiteRTRunner

                reference = LiteRTRunner(model_bytes, resolver="ref", num_threads=threads).run(x)
                ours = runs["edgecnn"](x)
                same = np.array_equal(ours, reference)
                identical = {"edgecnn": f"{int(np.sum(ours == reference))}/{reference.size}"}
                for engine, run in runs.items():
                    if engine != "edgecnn":
                        theirs = np.asarray(run(x)).reshape(reference.shape)
                        identical[engine] = f"{int(np.sum(theirs == reference))}/{reference.size}"
                per_round = {engine: [] for engine in runs}
                order = list(runs)
                for r in range(args.rounds):
                    for engine in order[r % len(order):] + order[:r % len(order)]:
                        per_round[engine].append(time_round(runs[engine], x, args.budget))
                rate = {e: batch / statistics.median(t) for e, t in per_round.items()}
                print(f"  threads {threads} batch {batch:5d}: edgecnn output identical to BUILTIN_REF: "
                      f"{'yes' if same else 'NO'} ({identical['edgecnn']} elements)")  # fmt: skip
                for engine in runs:
                    gmacs = rate[engine] * macs / 1e9
                    share = gmacs / (peak_per_core * threads) if peak_per_core else float("nan")
                    ratio = "" if engine == "edgecnn" else f"  edgecnn/{engine} = {rate['edgecnn'] / rate[engine]:.2f}x"
                    print(f"    {engine:12s} {rate[engine]:11.0f} images/s  {gmacs:7.1f} GMAC/s  "
                          f"{100 * share:5.1f}% of peak  same as REF {identical[engine]:>14s}{ratio}")  # fmt: skip
                results.append({"model": name, "threads": threads, "batch": batch, "identical": bool(same),
                                "images_per_second": rate, "gmacs": {e: r * macs / 1e9 for e, r in rate.items()}})
    print(f"\nload average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print_targets(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
