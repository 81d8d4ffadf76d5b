"""Images per second of the Numba int8 runtime on a LeNet-5-shaped graph, at batch 1 and batch 1000.

The graph is built directly as an Int8Graph with random int8 weights and
plausible qparams (per-channel weight scales, output scales sized to the
accumulators): CONV 5x5x6 RELU, MAX_POOL 2, CONV 5x5x16 RELU, MAX_POOL 2,
RESHAPE (1, 400), FC 120 RELU, FC 84 RELU, FC 10. Timings are warm medians;
the first call (Numba compile, or loading the on-disk cache) is reported on
its own. If LiteRT and edgecnn's .tflite writer are available, the same
graph is timed in LiteRT too (BUILTIN_REF, the resolver edgecnn is
bit-exact with, and the default XNNPACK one), outputs are compared, and the
ratios printed. The machine's load average is printed with the results,
because other processes on a 2-core machine change the numbers a lot.

GNU OpenMP (Numba's default threading layer here) spin-waits at every
barrier; when the cores are shared with other processes that halves the
batch-1000 rate (measured: 12k vs 24k images/s with one of 2 cores busy
elsewhere). Each parallel region here lasts milliseconds, so waiting
passively costs nothing, and this script sets OMP_WAIT_POLICY=PASSIVE unless
the environment already sets it (run with OMP_WAIT_POLICY=ACTIVE to compare).

    python benchmarks/runtime_speed.py [--batch 1000] [--repeats 7] [--threads N]
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before Numba loads libgomp; see the docstring

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from edgecnn.int8.graph import Int8Graph, Op, Tensor  # noqa: E402
from edgecnn.deploy.runtime import Runtime  # noqa: E402


def lenet5_int8_graph(seed: int = 0) -> Int8Graph:
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


def median_seconds(run, x, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cpu_seconds(run, x):
    start = time.process_time()
    run(x)
    return time.process_time() - start


def litert_runner(graph, resolver, threads):
    """A LiteRTRunner for the graph, or None (with the reason printed) when it cannot be built."""
    try:
        from edgecnn.deploy.litert import LiteRTRunner
        from edgecnn.deploy.tflite.writer import to_bytes
    except ImportError as e:
        print(f"LiteRT timing skipped: {e}")
        return None
    try:
        return LiteRTRunner(to_bytes(graph), resolver=resolver, num_threads=threads)
    except Exception as e:  # BackendUnavailableError, a writer still in progress, ...
        print(f"LiteRT ({resolver}) timing skipped: {type(e).__name__}: {e}")
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="Numba/LiteRT threads (default: all cores)")
    args = parser.parse_args()

    graph = lenet5_int8_graph()
    x = np.random.default_rng(1).integers(-128, 128, (args.batch, 32, 32, 1), dtype=np.int8)
    start = time.perf_counter()
    runtime = Runtime(graph, num_threads=args.threads)
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    runtime.run(x[:1])  # serial path
    runtime.run(x[:64])  # parallel path
    first_s = time.perf_counter() - start

    import numba

    threads = args.threads or numba.get_num_threads()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; numba {numba.__version__}, "
          f"threading layer {numba.threading_layer()}, {threads} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")  # fmt: skip
    print(f"prepare {prepare_s * 1e3:.1f} ms; first calls (JIT compile or on-disk cache load) {first_s:.2f} s")
    one = median_seconds(runtime.run, x[:1], max(50, args.repeats * 20))
    many = median_seconds(runtime.run, x, args.repeats)
    print(f"edgecnn numba  batch 1: {1 / one:9.0f} images/s ({one * 1e6:.0f} us per image)")
    print(f"edgecnn numba  batch {args.batch}: {args.batch / many:9.0f} images/s")
    # CPU time on one thread barely depends on what else runs; it bounds what idle cores can do.
    single = Runtime(graph, num_threads=1)
    single.run(x[:64])
    cpu = min(_cpu_seconds(single.run, x) for _ in range(3))
    print(f"one thread: {cpu / args.batch * 1e6:.1f} us CPU per image -> {args.batch / cpu:.0f} images/s per "
          f"core, {threads * args.batch / cpu:.0f} images/s on {threads} idle cores")  # fmt: skip

    ours = runtime.run(x)
    for resolver in ("ref", "default"):
        runner = litert_runner(graph, resolver, threads)
        if runner is None:
            continue
        same = np.array_equal(runner.run(x), ours)
        theirs = median_seconds(runner.run, x, args.repeats)
        print(f"LiteRT {resolver:7s} batch {args.batch}: {args.batch / theirs:9.0f} images/s; "
              f"edgecnn is {theirs / many:.1f}x; outputs {'identical' if same else 'DIFFER'}")  # fmt: skip


if __name__ == "__main__":
    main()
