"""`edgecnn eval`: accuracy of one or more models on a test split, on any backend, with regression gates.

Gates (exit 1, one line on stderr naming the metric, the figures and the limit):
`--max-drop` / `--min-agreement` (FLOAT INT8: int8 against its float model),
`--baseline` (against a stored earlier result) and `--expect-outputs` (this
machine's outputs against a file saved on another, e.g. host vs board). The
logic lives in edgecnn.deploy.regression, .baseline and .host_outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgecnn.cli.common import add_command, add_data_args, data_folder, emit_json, load_images, positive_int
from edgecnn.cli.common import nonnegative_float
from edgecnn.deploy.evaluate import EVAL_CHUNK, run_in_chunks  # noqa: F401 - demo and tests import them from here


def fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text}")
    return v


def register(sub) -> None:
    from edgecnn.deploy.backends import BACKENDS

    p = add_command(sub, "eval", help="evaluate models on the test split",
                    description="Run models on the test split and report accuracy and time. With gates "
                                "(--max-drop, --min-agreement, --baseline, --expect-outputs) it exits 1 with "
                                "one line when the model regressed.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help=".npz (float), .tflite (int8) or .onnx (int8, from `edgecnn export`) models")
    add_data_args(p)
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="default: float for .npz, onnxruntime for .onnx, and for .tflite numba when "
                        "installed, else litert (with --max-drop/--min-agreement: the second model's)")
    p.add_argument("--fc-rescale", choices=("float", "integer"), default="float",
                   help="numba FULLY_CONNECTED rescale: float (LiteRT >= 1.3) or integer (older runtimes)")
    p.add_argument("--limit", type=positive_int, default=None, help="first N test images only (default: all)")
    p.add_argument("--save-outputs", metavar="PATH.npy", help="save the raw output tensor of all samples; "
                   "a PATH.npz holds every output (output0, output1, ... in the model's order), as models "
                   "with several outputs require, plus a record of the model's SHA-256 and the images "
                   "for --expect-outputs")
    g = p.add_argument_group("regression gates (exit 1 with one line when one fails)")
    g.add_argument("--max-drop", type=nonnegative_float, metavar="PP",
                   help="FLOAT INT8: fail when the int8 accuracy is more than PP percentage points below "
                        "the float model's on the same images")
    g.add_argument("--min-agreement", type=fraction, metavar="F",
                   help="FLOAT INT8: fail when fewer than F (0..1) of the images get the same top-1 class "
                        "from both models")
    g.add_argument("--baseline", metavar="FILE.json",
                   help="fail when an accuracy (or the agreement) falls more than --baseline-tolerance "
                        "points below this stored result (same models' count, same images)")
    g.add_argument("--baseline-tolerance", type=nonnegative_float, default=0.0, metavar="PP",
                   help="percentage points an accuracy may fall below --baseline (default: 0, any drop fails)")
    g.add_argument("--write-baseline", metavar="FILE.json",
                   help="store this run's accuracies, per-class accuracies and agreement (written only "
                        "when every gate passes)")
    g.add_argument("--expect-outputs", metavar="PATH.npz",
                   help="compare the outputs with a file that --save-outputs PATH.npz wrote (e.g. on the "
                        "host): same model, same images (--limit defaults to the file's count), or an error")
    g.add_argument("--max-diff", type=nonnegative_float, default=0.0, metavar="N",
                   help="largest element difference --expect-outputs accepts (default: 0, bit-exact)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or data line on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from edgecnn.cli.common import labels_for
    from edgecnn.deploy import regression as reg
    from edgecnn.deploy.backends import open_backend
    from edgecnn.errors import EdgecnnError, ShapeError
    from edgecnn.fileio import check_writable

    pair = args.max_drop is not None or args.min_agreement is not None
    _check_combinations(args, pair)
    if pair:  # FLOAT INT8: the reference runs as float (or float ONNX), --backend is the int8 model's
        backends = [reg.open_reference(args.models[0]),
                    open_backend(args.models[1], args.backend, fc_rescale=args.fc_rescale)]
    else:
        backends = [open_backend(path, args.backend, fc_rescale=args.fc_rescale) for path in args.models]
    expected = None
    if args.expect_outputs:
        from edgecnn.deploy.host_outputs import read_outputs

        expected = read_outputs(args.expect_outputs)  # a bad file fails before the model runs
        if args.limit is None:  # the board runs on the images the host saved, unless told otherwise
            args.limit = expected[1]["images"]["count"]
    baseline = None
    if args.baseline:
        from edgecnn.deploy.baseline import load_baseline

        baseline = load_baseline(args.baseline)
    if args.save_outputs:
        several = len(getattr(backends[0], "outputs", [None])) > 1
        if several and not str(args.save_outputs).lower().endswith(".npz"):
            raise EdgecnnError(f"{Path(args.models[0]).name} has {len(backends[0].outputs)} outputs; "
                               "--save-outputs needs a PATH.npz (one array per output: output0, output1, ...)")
        check_writable(args.save_outputs)
    if args.write_baseline:
        check_writable(args.write_baseline)
    images, labels = load_images(args, "test", args.limit)
    identity = reg.images_identity(images, args.dataset, "test")
    shas = [reg.file_sha256(path) for path in args.models]
    if expected is not None:
        from edgecnn.deploy.host_outputs import check_same_run

        check_same_run(expected[1], shas[0], identity, Path(args.expect_outputs).name)
    classes = len(labels_for(args.dataset, int(labels.max()) + 1))
    label_names = labels_for(args.dataset, classes)
    results, all_outputs, preds = [], [], []
    for path, backend, sha in zip(args.models, backends, shas):
        try:  # a model the dataset cannot feed, or with no output of `classes` entries: one line naming it
            k = backend.select_output(classes) if hasattr(backend, "select_output") else 0
            outs, seconds = run_in_chunks(backend, images, f"{Path(path).name} {backend.name}",
                                          show=False if args.quiet else None, every_output=True)
        except ShapeError as exc:
            raise ShapeError(f"{Path(path).name}: {exc}") from None
        pred = np.argmax(outs[k], axis=1)
        acc = float(np.mean(pred == labels))
        row = {"model": str(path), "backend": backend.name, "samples": int(len(labels)),
               "accuracy": acc, "seconds": round(seconds, 4), "data": data_folder(args)}
        if hasattr(backend, "output_name"):
            row["output"] = backend.output_name  # the classification output (the first with `classes` entries)
        row["sha256"] = sha
        row.update(reg.class_metrics(pred, labels, classes))
        if preds:
            row["agreement"] = float(np.mean(pred == preds[0]))  # top-1 agreement with the first model
        results.append(row)
        preds.append(pred)
        all_outputs.append(outs)
        if args.save_outputs:
            _save_outputs(args, backend, outs, sha, identity)
    failures, gates = _gates(args, pair, results, preds, labels, label_names, baseline, identity, backends, images)
    if expected is not None:
        failures += _expect_outputs(args, backends[0], all_outputs[0], expected, images, gates, results[0])
    if args.json:
        emit_json(results)
    else:
        _print_text(results, gates)
    if failures:
        raise reg.GateFailure("; ".join(failures))
    if args.write_baseline:
        from edgecnn.deploy.baseline import make_baseline, write_baseline

        write_baseline(args.write_baseline, make_baseline(results, identity, results[-1].get("agreement")))
    return 0


def _check_combinations(args, pair: bool) -> None:
    from edgecnn.errors import EdgecnnError

    if args.save_outputs and len(args.models) > 1:
        raise EdgecnnError("--save-outputs takes one model at a time")
    if pair and len(args.models) != 2:
        raise EdgecnnError("--max-drop and --min-agreement compare two models: FLOAT.npz|.onnx INT8.tflite "
                           f"(got {len(args.models)})")
    if args.expect_outputs and len(args.models) != 1:
        raise EdgecnnError("--expect-outputs checks one model at a time")


def _save_outputs(args, backend, outs, sha: str, identity: dict) -> None:
    import numpy as np

    from edgecnn.deploy.host_outputs import outputs_record, write_outputs_npz
    from edgecnn.fileio import atomic_path

    with atomic_path(args.save_outputs) as tmp:
        with open(tmp, "w+b") as f:
            if str(args.save_outputs).lower().endswith(".npz"):  # every output, in the model's order, + record
                shapes = [o.shape for o in backend.outputs]
                arrays = [y.reshape((len(y), *s)) for y, s in zip(outs, shapes)]
                write_outputs_npz(f, arrays, outputs_record(arrays, sha, Path(args.models[0]).name, identity,
                                                            backend.name))
            else:
                np.save(f, outs[0])


def _gates(args, pair, results, preds, labels, label_names, baseline, identity, backends, images):
    """(one-line failures, gate records in the JSON rows) of --max-drop, --min-agreement and --baseline."""
    from edgecnn.deploy import regression as reg

    failures, gates = [], []
    if pair:
        test = f"int8 ({results[1]['backend']})" if backends[1].is_int8 else results[1]["backend"]
        c = reg.compare_predictions(preds[0], preds[1], labels, label_names, (results[0]["backend"], test))
        results[1]["accuracy_drop_points"] = round(c.drop_points, 4)
        for name, limit, check in (("max-drop", args.max_drop, reg.max_drop_failure),
                                   ("min-agreement", args.min_agreement, reg.min_agreement_failure)):
            if limit is None:
                continue
            failure = check(c, limit)
            gates.append({"gate": name, "limit": limit, "passed": failure is None,
                          "value": round(c.drop_points, 4) if name == "max-drop" else c.agreement})
            if failure:
                failures.append(failure)
    if baseline is not None:
        from edgecnn.deploy.baseline import baseline_failures

        found = baseline_failures(baseline, results, identity, results[-1].get("agreement"),
                                  args.baseline_tolerance, Path(args.baseline).name)
        gates.append({"gate": "baseline", "limit": args.baseline_tolerance, "passed": not found,
                      "baseline": str(args.baseline)})
        failures += found
    if failures and len(backends) == 2 and not backends[0].is_int8 and backends[1].is_int8 \
            and str(args.models[1]).lower().endswith(".tflite"):  # name the op where int8 leaves float
        departure = reg.find_departure(backends[0], args.models[1], images)
        if departure:
            failures[-1] = reg.with_departure(failures[-1], departure)
            results[1]["departure"] = departure
    if gates:
        results[-1]["gates"] = gates
    return failures, gates


def _expect_outputs(args, backend, outs, expected, images, gates, row) -> list[str]:
    """--expect-outputs: compare, record, and (on failure) name the first op where the two back ends part."""
    from edgecnn.deploy.host_outputs import compare_outputs, describe_difference

    arrays, record = expected
    shapes = [o.shape for o in getattr(backend, "outputs", [])] or [None] * len(outs)
    mine = [y.reshape((len(y), *s)) if s is not None else y for y, s in zip(outs, shapes)]
    c = compare_outputs(arrays, mine)
    passed = c["max_diff"] <= args.max_diff
    row["expect_outputs"] = dict(c, file=str(args.expect_outputs), saved_backend=record["backend"],
                                 max_diff_limit=args.max_diff)
    gates.append({"gate": "expect-outputs", "limit": args.max_diff, "passed": passed, "value": c["max_diff"]})
    row["gates"] = gates
    if passed:
        return []
    message = describe_difference(c, args.max_diff, Path(args.expect_outputs).name)
    if getattr(backend, "is_int8", False) and c["first_differing_image"] is not None:
        from edgecnn.deploy.divergence import first_differing_op

        first = c["first_differing_image"]
        op = first_differing_op(args.models[0], record["backend"], backend.name, images[first:first + 1], first)
        if op:
            message += f"; {op}"
            row["expect_outputs"]["first_differing_op"] = op
    return [message]


def _print_text(results, gates) -> None:
    for r in results:
        extra = f"  agreement {r['agreement']:.2%}" if "agreement" in r else ""
        print(f"{Path(r['model']).name}  {r['backend']:<14} {r['samples']} images  "
              f"accuracy {r['accuracy']:.2%}  {r['seconds']:.2f}s{extra}")
    for g in gates:
        value = f"  ({g['value']:g})" if "value" in g else ""
        print(f"gate {g['gate']} {g['limit']:g}: {'pass' if g['passed'] else 'FAIL'}{value}")
    rows = results[-1].get("expect_outputs")
    if rows:
        print(f"outputs vs {Path(rows['file']).name} ({rows['saved_backend']}): {rows['identical_rows']}/"
              f"{rows['rows']} images, {rows['identical_elements']}/{rows['elements']} elements identical, "
              f"largest difference {rows['max_diff']:g}")

