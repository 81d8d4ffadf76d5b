"""tflite-runtime worker for `edgecnn compare`: every tensor of a model, batch after batch, through .npz files.

Run by path with the python that has tflite-runtime (often its own venv with
numpy < 2), so it imports no edgecnn module:

    python tflrt_intermediates.py MODEL.tflite ref|builtin|default

First line on stdout: {"tflite_runtime": version, "tensors": [[index, name,
shape, dtype], ...]} or {"error": message}. Then one JSON request per stdin
line, {"inputs": IN.npz (input0, input1, ...), "out": OUT.npz, "tensors":
[index, ...]}, answered by {"ok": true, "addresses": {index: buffer address}}
once OUT.npz holds t<index> for each tensor the interpreter kept, or
{"error": message}. EOF ends it. The addresses show tensors an in-place op
overwrote (tflite-runtime 2.14's ADD writes into its input's buffer even
with preserve_all_tensors).
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np

RESOLVER_NAMES = {"ref": "BUILTIN_REF", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "default": "AUTO"}


def one_line(e: Exception) -> str:
    return "; ".join(s.strip() for s in str(e).splitlines() if s.strip()) or type(e).__name__


def say(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(interpreter, request: dict) -> dict:
    """Run one batch; save the tensors asked for; return their buffers' addresses (in-place ops share one)."""
    details = interpreter.get_input_details()
    with np.load(request["inputs"], allow_pickle=False) as z:
        arrays = [z[f"input{k}"] for k in range(len(details))]
    for d, x in zip(details, arrays):
        if list(d["shape"]) != list(x.shape):
            interpreter.resize_tensor_input(d["index"], list(x.shape))
    interpreter.allocate_tensors()
    for d, x in zip(details, arrays):
        interpreter.set_tensor(d["index"], np.ascontiguousarray(x))
    interpreter.invoke()
    kept, addresses = {}, {}
    for index in request["tensors"]:
        try:
            kept[f"t{int(index)}"] = interpreter.get_tensor(int(index))
            addresses[int(index)] = int(interpreter.tensor(int(index))().__array_interface__["data"][0])
        except ValueError:  # freed, or inside a delegate
            continue
    np.savez(request["out"], **kept)
    return addresses


def main(argv: list[str]) -> int:
    model, resolver = argv
    try:
        from tflite_runtime import __version__ as version
        from tflite_runtime import interpreter as module

        with open(model, "rb") as f:
            content = f.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = module.Interpreter(
                model_content=content, num_threads=1, experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=getattr(module.OpResolverType, RESOLVER_NAMES[resolver]))
        interpreter.allocate_tensors()
    except Exception as e:  # ImportError, the interpreter's ValueError/RuntimeError
        say({"error": f"cannot load the model: {one_line(e)}"})
        return 1
    tensors = [[int(d["index"]), d["name"], [int(v) for v in d["shape"]], np.dtype(d["dtype"]).name]
               for d in interpreter.get_tensor_details()]
    say({"tflite_runtime": version, "numpy": np.__version__, "tensors": tensors})
    for line in sys.stdin:
        try:
            say({"ok": True, "addresses": run(interpreter, json.loads(line))})
        except Exception as e:
            say({"error": one_line(e)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
