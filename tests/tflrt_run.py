"""Run int8 .tflite models in tflite-runtime (2.14 on Pi images) and save the outputs.

Run with a separate venv's python, never edgecnn's: tflite-runtime 2.14 needs
numpy<2, so this file imports no edgecnn module. Each job is a model, an int8
input batch and an output path; repeat the three flags to run many jobs in one
process (the interpreter import dominates a single job's time).

    $TFLRT_PYTHON tests/tflrt_run.py --model a.tflite --inputs a.npy --out a-out.npy \
        [--model b.tflite --inputs b.npy --out b-out.npy ...] [--resolver ref|builtin|default]

--resolver: "ref" is BUILTIN_REF (the reference kernels, the default), "builtin"
the optimized kernels without XNNPACK, "default" what the interpreter does out
of the box. Prints one JSON line: {"tflite_runtime", "numpy", "resolver",
"errors": {job index: message}}; a model the interpreter cannot load or run
is an error for its job only, so one call reports every failure.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

RESOLVER_NAMES = {"ref": "BUILTIN_REF", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "default": "AUTO"}


def make_interpreter(module, content: bytes, resolver: str):
    resolver_type = getattr(module, "OpResolverType", None)
    if resolver_type is None:  # before 2.5 there is no choice: say so rather than run another kernel set
        raise RuntimeError(f"this tflite-runtime has no OpResolverType; cannot select {resolver!r}")
    return module.Interpreter(model_content=content, num_threads=1,
                              experimental_op_resolver_type=getattr(resolver_type, RESOLVER_NAMES[resolver]))


def run_job(module, model_path: str, inputs_path: str, out_path: str, resolver: str) -> None:
    with open(model_path, "rb") as f:
        content = f.read()
    x = np.load(inputs_path, allow_pickle=False)
    if x.dtype != np.int8:
        raise ValueError(f"{inputs_path}: inputs must be int8, got {x.dtype}")
    interpreter = make_interpreter(module, content, resolver)
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], list(x.shape))  # the whole batch in one invoke
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], np.ascontiguousarray(x))
    interpreter.invoke()
    np.save(out_path, interpreter.get_tensor(out["index"]), allow_pickle=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--inputs", action="append", required=True)
    p.add_argument("--out", action="append", required=True)
    p.add_argument("--resolver", choices=sorted(RESOLVER_NAMES), default="ref")
    args = p.parse_args(argv)
    if not len(args.model) == len(args.inputs) == len(args.out):
        p.error("--model, --inputs and --out must be given the same number of times")

    from tflite_runtime import __version__ as version
    from tflite_runtime import interpreter as module

    errors = {}
    for i, job in enumerate(zip(args.model, args.inputs, args.out)):
        try:
            run_job(module, *job, args.resolver)
        except Exception as e:  # the interpreter raises ValueError/RuntimeError with multi-line messages
            errors[i] = "; ".join(s.strip() for s in str(e).splitlines() if s.strip()) or type(e).__name__
    print(json.dumps({"tflite_runtime": version, "numpy": np.__version__, "resolver": args.resolver,
                      "errors": errors}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
