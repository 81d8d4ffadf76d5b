"""Fuzz every reader edgecnn ships with seeded mutations of valid files.

    python tests/fuzz_long.py --inputs 20000 --cli-every 20 --out fuzz-report.json

Readers: `.tflite` (read_tflite), ONNX (import_onnx), checkpoints (load_checkpoint),
IDX raw and `.gz` (read_idx), CIFAR-10 batches (read_cifar_batch), images
(read_image + fit_image) and `.npy` (read_npy). Each input runs in a
long-lived worker process, so the parent can tell, per input:
- an exception outside edgecnn's error tree (a bug; the input is saved);
- a hang: more than --timeout CPU seconds on one input, or no answer at all before a
  generous wall-clock deadline (the worker is then killed and restarted);
- memory: the worker's peak RSS grows past --max-rss-mb on an input under 1 MB;
- silent acceptance: the reader accepted a file an independent check shows is
  corrupt (gzip CRC, PNG chunk CRCs, zip member CRCs);
- a dead worker (segfault, abort).
Every --cli-every'th input also goes through the real CLI, which must exit 0, or
non-zero with one line on stderr and no traceback.
The test suite runs a short, fixed-seed slice (tests/test_fuzz_readers.py).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from pathlib import Path

READERS = ("tflite", "onnx", "checkpoint", "idx", "idx-gz", "cifar", "image", "npy")
SUFFIX = {"tflite": ".tflite", "onnx": ".onnx", "checkpoint": ".npz", "idx": "-ubyte", "idx-gz": "-ubyte.gz",
          "cifar": ".bin", "image": ".png", "npy": ".npy"}


# ---------------------------------------------------------------------------------- seeds: valid files

def seeds(folder: Path) -> dict[str, list[bytes]]:
    """Small valid files of every kind, made here (no data or trained model needed)."""
    import numpy as np
    from PIL import Image

    from edgecnn.data.idx import encode_idx
    from edgecnn.deploy.tflite import to_bytes
    from edgecnn.model import build
    from edgecnn.model.checkpoint import save_checkpoint
    from edgecnn.quantize.ptq import quantize_model

    rng = np.random.default_rng(0)
    model = build("lenet5").init_params(0)
    save_checkpoint(folder / "seed.npz", model)
    qm = quantize_model(model, rng.uniform(0, 1, (4, 32, 32, 1)).astype(np.float32), progress=False)
    out = {"tflite": [to_bytes(qm.graph)], "checkpoint": [(folder / "seed.npz").read_bytes()]}
    out["onnx"] = [_onnx_seed(rng)]
    arrays = [rng.integers(0, 256, (3, 8, 8), dtype=np.uint8), rng.integers(0, 10, 5, dtype=np.uint8),
              rng.standard_normal((2, 3)).astype(">f4")]
    out["idx"] = [encode_idx(a) for a in arrays]
    out["idx-gz"] = [gzip.compress(encode_idx(a), mtime=0) for a in arrays]
    records = np.concatenate([rng.integers(0, 10, (3, 1)), rng.integers(0, 256, (3, 3072))], axis=1)
    out["cifar"] = [records.astype(np.uint8).tobytes()]
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    images = []
    for mode, fmt in (("L", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG"),
                      ("RGB", "JPEG"), ("L", "PPM"), ("L", "BMP"), ("L", "GIF")):
        im = Image.fromarray(digit.astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(digit).convert(mode)
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        images.append(buf.getvalue())
    images.append(b"P2\n4 2\n255\n0 1 2 3\n4 5 6 255\n")
    out["image"] = images
    npys = []
    for a in (digit, rng.uniform(0, 1, (1, 640)).astype(np.float32), np.arange(6, dtype=">i2").reshape(2, 3)):
        buf = io.BytesIO()
        np.save(buf, a)
        npys.append(buf.getvalue())
    out["npy"] = npys
    return out


def _onnx_seed(rng) -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(2, np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((18, 10)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "seed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.metadata_props.add(key="labels", value=json.dumps([str(i) for i in range(10)]))
    return m.SerializeToString()


# ---------------------------------------------------------------------------------- mutations

INTERESTING32 = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x40000000]


def mutate(data: bytes, rnd: random.Random, others: list[bytes]) -> bytes:
    """One to four stacked mutations: bit flips, interesting integers, truncation, cuts, copies, splices."""
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        kind = rnd.randrange(8)
        n = len(b)
        if n == 0:
            b += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
            continue
        i = rnd.randrange(n)
        if kind == 0:
            b[i] ^= 1 << rnd.randrange(8)
        elif kind == 1:
            b[i] = rnd.choice([0, 1, 0x7F, 0x80, 0xFF, rnd.randrange(256)])
        elif kind == 2 and n >= 4:
            i = rnd.randrange(n - 3)
            b[i:i + 4] = struct.pack(rnd.choice("<>") + "I", rnd.choice(INTERESTING32))
        elif kind == 3:
            del b[rnd.randrange(n):]  # truncate
        elif kind == 4:
            j = min(n, i + rnd.randint(1, 256))
            del b[i:j]
        elif kind == 5:
            j = min(n, i + rnd.randint(1, 256))
            b[i:i] = b[i:j] * rnd.randint(1, 8)  # duplicate a run
        elif kind == 6 and others:
            other = rnd.choice(others)
            j = rnd.randrange(len(other) + 1)
            b = b[:i] + bytearray(other[j:j + rnd.randint(1, 512)]) + b[i:]
        else:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 32)))
    return bytes(b)


# ---------------------------------------------------------------------------------- the readers

def read_with_api(reader: str, path: Path):
    """What a Python user would call on such a file."""
    if reader == "tflite":
        from edgecnn.deploy.tflite import read_tflite

        return read_tflite(path)
    if reader == "onnx":
        from edgecnn.model.onnx_import import import_onnx

        return import_onnx(path)
    if reader == "checkpoint":
        from edgecnn.model.checkpoint import load_checkpoint

        return load_checkpoint(path, with_state=True)
    if reader in ("idx", "idx-gz"):
        from edgecnn.data.idx import read_idx

        return read_idx(path)
    if reader == "cifar":
        from edgecnn.data.cifar import read_cifar_batch

        return read_cifar_batch(path)
    if reader == "image":
        from edgecnn.deploy.images import fit_image, read_image

        return fit_image(read_image(path), 32, 32, content=(28, 28))
    from edgecnn.deploy.npy import read_npy

    return read_npy(path)


def detectably_corrupt(reader: str, data: bytes) -> str | None:
    """Why an independent check says `data` is corrupt, or None if it finds nothing."""
    try:
        if data[:2] == b"\x1f\x8b":
            gzip.decompress(data)
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            pos = 8
            while pos + 12 <= len(data):
                (length,) = struct.unpack(">I", data[pos:pos + 4])
                body = data[pos + 4:pos + 8 + length]
                if len(body) != length + 4 or zlib.crc32(body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length] or b"\0\0\0\0")[0]:
                    return "PNG chunk CRC"
                if body[:4] == b"IEND":
                    return None
                pos += 12 + length
            return "PNG without IEND"
        elif data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                bad = z.testzip()
                if bad:
                    return f"zip member {bad} CRC"
    except Exception as exc:  # noqa: BLE001 - any failure of the independent check means corrupt
        return f"{type(exc).__name__}"
    return None


def _worker(inbox: mp.Queue, outbox: mp.Queue, max_as_mb: int) -> None:
    """Read each (reader, path) it is sent; answer (outcome, detail, peak RSS MB)."""
    try:  # a hard ceiling, so a memory bug cannot take the shared machine down
        resource.setrlimit(resource.RLIMIT_AS, (max_as_mb << 20, max_as_mb << 20))
    except (ValueError, OSError):
        pass
    from edgecnn.errors import EdgecnnError

    while True:
        job = inbox.get()
        if job is None:
            return
        reader, path = job
        _reset_peak_rss()
        cpu0 = _cpu_seconds(resource.RUSAGE_SELF)
        try:
            read_with_api(reader, Path(path))
            outcome, detail = "accepted", ""
        except EdgecnnError as exc:
            outcome, detail = "refused", f"{type(exc).__name__}: {str(exc)[:200]}"
        except MemoryError:
            outcome, detail = "memory", "MemoryError"
        except BaseException as exc:  # noqa: BLE001 - a non-edgecnn exception is the finding
            outcome, detail = "bug", "".join(traceback.format_exception(exc)[-3:])[-1500:]
        peak_mb = _peak_rss_mb()
        outbox.put((outcome, detail, peak_mb, _cpu_seconds(resource.RUSAGE_SELF) - cpu0))


def _reset_peak_rss() -> None:
    """Linux: restart this process's peak-RSS count, so each input's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    """Peak RSS since the last reset: VmHWM (ru_maxrss would include the parent's peak, which
    Linux carries across fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


class Pool:
    """One worker process, restarted after a hang, a death or a memory spike."""

    def __init__(self, max_as_mb: int):
        self.ctx = mp.get_context("spawn")
        self.max_as_mb = max_as_mb
        self.proc = None
        self.baseline_mb = 0.0

    def start(self):
        self.inbox, self.outbox = self.ctx.Queue(), self.ctx.Queue()
        self.proc = self.ctx.Process(target=_worker, args=(self.inbox, self.outbox, self.max_as_mb), daemon=True)
        self.proc.start()
        self.baseline_mb = 0.0

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None

    def run(self, reader: str, path: Path, timeout: float):
        if self.proc is None:
            self.start()
        self.inbox.put((reader, str(path)))
        # A hang is judged on CPU seconds (the machine may be shared and loaded); the wall-clock
        # deadline only catches a worker that blocks without computing.
        deadline = time.monotonic() + max(120.0, 12 * timeout) + (60 if self.baseline_mb == 0 else 0)
        while True:
            try:
                outcome, detail, peak, cpu = self.outbox.get(timeout=0.5)
                first = self.baseline_mb == 0
                self.baseline_mb = max(self.baseline_mb, peak)
                if cpu > timeout and not first:  # the first input also pays for the imports
                    return "hang", f"{cpu:.1f} CPU seconds ({outcome}: {detail[:200]})", peak, 0.0
                return outcome, detail, peak, 0.0
            except Exception:  # noqa: BLE001 - queue.Empty
                if not self.proc.is_alive():
                    code = self.proc.exitcode
                    self.proc = None
                    return "died", f"worker exit code {code}", 0.0, 0.0
                if time.monotonic() > deadline:
                    self.stop()
                    return "hang", "no answer before the wall-clock deadline", 0.0, 0.0


CLI_ARGS = {
    "tflite": lambda p, d: ["summary", p, "--json"],
    "onnx": lambda p, d: ["summary", p, "--json"],
    "checkpoint": lambda p, d: ["summary", p, "--json"],
    "idx": lambda p, d: ["eval", d["model"], "--data", p.parent, "--limit", "5", "--backend", "litert"],
    "idx-gz": lambda p, d: ["eval", d["model"], "--data", p.parent, "--limit", "5", "--backend", "litert"],
    "cifar": None,
    "image": lambda p, d: ["predict", d["model"], p, "--backend", "litert"],
    "npy": lambda p, d: ["predict", d["model"], p, "--backend", "litert"],
}


CLI_START_CPU = 5.0  # starting Python and importing numpy, Pillow, LiteRT: not the input's doing


def run_cli_case(reader: str, path: Path, context: dict, timeout: float) -> tuple[str, str]:
    make = CLI_ARGS.get(reader)
    if make is None:
        return "skipped", ""
    args = [str(a) for a in make(path, context)]
    cpu0 = _cpu_seconds(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run([sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True,
                           timeout=max(120.0, 12 * timeout))
    except subprocess.TimeoutExpired:
        return "hang", "wall-clock deadline: " + " ".join(args)
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    if cpu > timeout + CLI_START_CPU:
        return "hang", f"{cpu:.1f} CPU seconds: " + " ".join(args)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    if "Traceback" in p.stderr:
        return "traceback", p.stderr[-1500:]
    if p.returncode != 0 and len(lines) != 1:
        return "not-one-line", p.stderr[-1500:]
    return ("ok" if p.returncode == 0 else "clean-error"), ""


def idx_case_folder(base: Path, data: bytes, gz: bool, valid_labels: bytes) -> Path:
    """A dataset folder whose test images are the fuzzed file (labels valid), so `eval` reads it."""
    folder = Path(tempfile.mkdtemp(dir=base))
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    (folder / name).write_bytes(data)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(valid_labels)
    return folder / name


# ---------------------------------------------------------------------------------- the campaign

def campaign(inputs: int, seed: int, cli_every: int, timeout: float, max_rss_mb: float, out_dir: Path,
             readers=READERS, max_as_mb: int = 3072, log=print, progress=None) -> dict:
    """Run `inputs` mutated files through the readers; `progress(report)` is called every 500 inputs."""
    import numpy as np

    from edgecnn.data.idx import encode_idx

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="edgecnn-fuzz-"))
    corpus = seeds(work)
    context = {"model": work / "model.tflite"}
    context["model"].write_bytes(corpus["tflite"][0])
    labels = encode_idx(np.zeros(3, np.uint8))
    rnd = random.Random(seed)
    pool = Pool(max_as_mb)
    counts = {r: {} for r in readers}
    findings = []
    cli = {"runs": 0, "ok": 0, "clean-error": 0, "traceback": 0, "not-one-line": 0, "hang": 0, "skipped": 0}
    t0 = time.monotonic()
    try:
        for k in range(inputs):
            reader = readers[k % len(readers)]
            pool_seeds = corpus[reader]
            data = mutate(rnd.choice(pool_seeds), rnd, pool_seeds) if rnd.random() > 0.02 else rnd.choice(pool_seeds)
            if reader in ("idx", "idx-gz"):
                path = idx_case_folder(work, data, reader == "idx-gz", labels)
            else:
                path = work / f"case{k}{SUFFIX[reader]}"
                path.write_bytes(data)
            outcome, detail, peak, grown = pool.run(reader, path, timeout)
            if outcome == "accepted":
                why = detectably_corrupt(reader, data)
                if why:
                    outcome, detail = "silent", why
            if peak > max_rss_mb and len(data) < (1 << 20):
                outcome, detail = "memory", f"peak RSS {peak:.0f} MB ({outcome}: {detail[:200]})"
            if outcome == "memory":
                pool.stop()
            counts[reader][outcome] = counts[reader].get(outcome, 0) + 1
            if outcome in ("bug", "hang", "died", "memory", "silent"):
                saved = out_dir / f"{reader}-{k}{SUFFIX[reader]}"
                saved.write_bytes(data)
                findings.append({"reader": reader, "outcome": outcome, "detail": detail, "input": str(saved)})
                log(f"[{k}] {reader}: {outcome}: {detail.strip().splitlines()[-1] if detail.strip() else ''}")
            if cli_every and k % cli_every == 0:
                result, detail = run_cli_case(reader, path, context, timeout)
                cli[result] += 1
                cli["runs"] += result != "skipped"
                if result in ("traceback", "not-one-line", "hang"):
                    saved = out_dir / f"cli-{reader}-{k}{SUFFIX[reader]}"
                    saved.write_bytes(data)
                    findings.append({"reader": reader, "outcome": f"cli-{result}", "detail": detail,
                                     "input": str(saved)})
                    log(f"[{k}] CLI {reader}: {result}")
            if path.parent != work:
                for f in path.parent.iterdir():
                    f.unlink()
                path.parent.rmdir()
            else:
                path.unlink()
            if k and k % 500 == 0:
                log(f"{k} inputs, {len(findings)} findings, {time.monotonic() - t0:.0f}s")
                if progress:
                    progress(_report(k, seed, t0, counts, cli, findings))
    finally:
        pool.stop()
    return _report(inputs, seed, t0, counts, cli, findings)


def _report(done, seed, t0, counts, cli, findings) -> dict:
    total = {o: sum(c.get(o, 0) for c in counts.values())
             for o in ("accepted", "refused", "bug", "hang", "died", "memory", "silent")}
    return {"inputs": done, "seed": seed, "seconds": round(time.monotonic() - t0, 1), "totals": total,
            "per_reader": counts, "cli": dict(cli), "findings": list(findings)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--inputs", type=int, default=20000, help="mutated inputs in all, spread over the readers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cli-every", type=int, default=20, help="send every Nth input through the CLI too (0: never)")
    p.add_argument("--timeout", type=float, default=10.0, help="CPU seconds on one input that count as a hang")
    p.add_argument("--max-rss-mb", type=float, default=1024.0, help="a worker peak RSS that counts as a memory finding")
    p.add_argument("--readers", default=",".join(READERS), help="comma-separated subset")
    p.add_argument("--out", default="fuzz-report.json", help="the JSON report; failing inputs go beside it")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` still stops the worker (finally: below)
    out = Path(args.out)
    report = campaign(args.inputs, args.seed, args.cli_every, args.timeout, args.max_rss_mb,
                      out.with_suffix("").with_name(out.stem + "-inputs"), tuple(args.readers.split(",")),
                      progress=lambda r: out.write_text(json.dumps(r, indent=1)))
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("inputs", "seconds", "totals", "cli")}))
    return 0 if not report["findings"] else 1


if __name__ == "__main__":
    sys.exit(main())
