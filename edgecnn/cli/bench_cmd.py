"""`edgecnn bench`: warm throughput and latency of one model on one backend."""

from __future__ import annotations

from edgecnn.cli.common import add_command, positive_float, positive_int


def register(sub) -> None:
    p = add_command(sub, "bench", help="measure throughput and latency",
                       description="Time a model on a backend with random images, after a warm-up run "
                                   "(JIT compilation is reported apart, never in the figures).")
    p.add_argument("model", metavar="MODEL", help=".tflite, .npz or .onnx model")
    p.add_argument("--backend", default=None, help="numba, litert, litert-ref, litert-builtin, onnxruntime or float "
                   "(default: numba when installed, else litert; float for .npz, onnxruntime for .onnx)")
    p.add_argument("--batch", type=positive_int, default=1, help="images per call")
    p.add_argument("--threads", type=positive_int, default=None, help="threads for the backend (default: all cores)")
    p.add_argument("--seconds", type=positive_float, default=2.0, help="time budget for the measurement")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from edgecnn.cli.common import emit_json
    from edgecnn.deploy.bench import bench

    cores = os.cpu_count() or 1
    threads = min(args.threads or cores, cores)  # more threads than cores only adds contention
    r = bench(args.model, args.backend, batch=args.batch, threads=threads, seconds=args.seconds)
    if args.json:
        emit_json(r)
    else:
        print(f"{r['backend']} batch {r['batch']}: {r['images_per_second']:,.0f} images/s, "
              f"latency p50 {r['latency_ms_p50']:.3f} ms, p99 {r['latency_ms_p99']:.3f} ms "
              f"(warm-up {r['warmup_seconds']:.2f}s, {r['threads']} threads)")
    return 0
