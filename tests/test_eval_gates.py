"""`edgecnn eval` gates: --max-drop, --min-agreement, --baseline/--write-baseline, and the JSON report they add.

Each gate passes on a well-quantized LeNet-5 and fails, with one line and exit 1,
on a spoiled one (calibrated on black images; a weight flipped in the .tflite).
The fast tests use an untrained model (formats, flags, hostile baselines).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_clean_error, run_cli
from regression_models import gate_models, untrained_models

LIMIT = "2000"


@pytest.fixture(scope="module")
def gates(lenet5_path, mnist_root, tmp_path_factory):
    from edgecnn.data.datasets import load_split

    train_images, _ = load_split("mnist", "train", mnist_root)
    return gate_models(lenet5_path, train_images, tmp_path_factory.mktemp("gates"))


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return untrained_models(tmp_path_factory.mktemp("untrained"))


def eval_cli(mnist_root, *args):
    return run_cli("eval", *map(str, args), "--data", mnist_root, "--quiet")


# ------------------------------------------------------------------ gates on trained models (slow: conftest)

def test_max_drop_passes_on_a_good_model_and_fails_on_black_calibration(gates, mnist_root):
    rc, out, err = eval_cli(mnist_root, gates["float"], gates["good"], "--limit", LIMIT, "--max-drop", "1", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert rows[1]["gates"] == [{"gate": "max-drop", "limit": 1.0, "passed": True,
                                 "value": rows[1]["accuracy_drop_points"]}]
    assert rows[0]["accuracy"] - rows[1]["accuracy"] <= 0.01

    rc, out, err = eval_cli(mnist_root, gates["float"], gates["black"], "--limit", LIMIT, "--max-drop", "1", "--json")
    assert rc == 1
    assert_clean_error(rc, err, "accuracy", "points below float", "more than --max-drop 1",
                       "departs from float at op 0 CONV_2D (conv1)")
    rows = json.loads(out)  # the report is still printed, for the CI log
    float_acc, int8_acc = rows[0]["accuracy"], rows[1]["accuracy"]
    assert f"{float_acc:.2%}" in err and f"{int8_acc:.2%}" in err
    assert rows[1]["gates"][0]["passed"] is False


def test_max_drop_names_conv1_when_its_weight_is_flipped(gates, mnist_root):
    rc, out, err = eval_cli(mnist_root, gates["float"], gates["flipped"], "--limit", LIMIT, "--max-drop", "0",
                            "--json")
    assert_clean_error(rc, err, "accuracy", "--max-drop 0", "CONV_2D (conv1): SQNR")
    assert json.loads(out)[1]["departure"].startswith("int8 departs from float at op 0 CONV_2D (conv1)")


def test_min_agreement_passes_on_a_good_model_and_fails_on_spoiled_ones(gates, mnist_root):
    rc, out, err = eval_cli(mnist_root, gates["float"], gates["good"], "--limit", LIMIT, "--min-agreement", "0.985")
    assert rc == 0, err
    assert "gate min-agreement 0.985: pass" in out
    for spoiled in ("black", "flipped"):
        rc, _, err = eval_cli(mnist_root, gates["float"], gates[spoiled], "--limit", LIMIT,
                              "--min-agreement", "0.985")
        assert_clean_error(rc, err, "agreement", f"of {LIMIT} images", "below --min-agreement 0.985", "CONV_2D")
        assert rc == 1


def test_baseline_round_trip_passes_then_catches_the_spoiled_model(gates, mnist_root, tmp_path):
    base = tmp_path / "baseline.json"
    rc, _, err = eval_cli(mnist_root, gates["float"], gates["good"], "--limit", LIMIT, "--write-baseline", base)
    assert rc == 0, err
    doc = json.loads(base.read_text())
    assert doc["format"] == "edgecnn-eval-baseline" and doc["version"] == 1
    assert doc["images"]["count"] == int(LIMIT) and len(doc["models"]) == 2 and doc["agreement"] > 0.98
    rc, out, err = eval_cli(mnist_root, gates["float"], gates["good"], "--limit", LIMIT, "--baseline", base)
    assert rc == 0, err
    assert "gate baseline 0: pass" in out

    rc, _, err = eval_cli(mnist_root, gates["float"], gates["black"], "--limit", LIMIT, "--baseline", base,
                          "--baseline-tolerance", "1")
    assert_clean_error(rc, err, "baseline", "black.tflite", "below the baseline's", "--baseline-tolerance 1",
                       "CONV_2D (conv1)")
    # a failing run never becomes the baseline
    rc, _, err = eval_cli(mnist_root, gates["float"], gates["black"], "--limit", LIMIT, "--max-drop", "1",
                          "--write-baseline", tmp_path / "bad.json")
    assert rc == 1 and not (tmp_path / "bad.json").exists()


def test_baseline_on_other_images_is_refused(gates, mnist_root, tmp_path):
    base = tmp_path / "b.json"
    assert eval_cli(mnist_root, gates["good"], "--limit", "300", "--write-baseline", base)[0] == 0
    rc, _, err = eval_cli(mnist_root, gates["good"], "--limit", "400", "--baseline", base)
    assert_clean_error(rc, err, "300 mnist test images", "400 mnist test images", "--limit")


# ------------------------------------------------------------------ fast: report, flags, hostile baselines

def test_json_adds_per_class_accuracy_confusion_and_agreement(untrained, mnist_root):
    rc, out, err = eval_cli(mnist_root, untrained["float"], untrained["int8"], "--limit", "200", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [set(r) >= {"model", "backend", "samples", "accuracy", "seconds", "sha256", "per_class_accuracy",
                       "confusion"} for r in rows] == [True, True]
    labels = np.asarray(__import__("edgecnn.deploy.regression", fromlist=["load_dataset"])
                        .load_dataset("mnist", "test", 200, mnist_root)[1])
    for r in rows:
        confusion = np.array(r["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == 200
        assert np.array_equal(confusion.sum(axis=1), np.bincount(labels, minlength=10))
        assert abs(np.trace(confusion) / 200 - r["accuracy"]) < 1e-12
        for c in range(10):
            assert r["per_class_accuracy"][c] == pytest.approx(confusion[c, c] / confusion[c].sum())
    assert "agreement" not in rows[0] and 0 <= rows[1]["agreement"] <= 1


def test_gate_flags_need_the_right_models(untrained, mnist_root, tmp_path):
    rc, _, err = eval_cli(mnist_root, untrained["int8"], "--max-drop", "1")
    assert_clean_error(rc, err, "--max-drop", "two models")
    rc, _, err = eval_cli(mnist_root, untrained["float"], untrained["int8"], "--min-agreement", "1.5")
    assert rc == 2 and "fraction" in err
    rc, _, err = eval_cli(mnist_root, untrained["float"], untrained["int8"], "--max-drop", "-1")
    assert rc == 2
    rc, _, err = eval_cli(mnist_root, untrained["int8"], "--baseline", tmp_path / "missing.json")
    assert_clean_error(rc, err, "missing.json", "does not exist")


def test_the_float_model_runs_as_float_when_backend_names_the_int8_runtime(untrained, mnist_root):
    rc, out, err = eval_cli(mnist_root, untrained["float"], untrained["int8"], "--limit", "50", "--backend",
                            "litert-ref", "--max-drop", "100", "--json")
    assert rc == 0, err
    assert [r["backend"] for r in json.loads(out)] == ["float", "litert-ref"]


def good_baseline() -> dict:
    return {"format": "edgecnn-eval-baseline", "version": 1,
            "images": {"dataset": "mnist", "split": "test", "count": 10, "sha256": "ab" * 32},
            "models": [{"model": "m.tflite", "sha256": "cd" * 32, "backend": "numba", "accuracy": 0.5,
                        "per_class_accuracy": [0.5, None]}], "agreement": None}


HOSTILE = [
    (b"", "not a JSON baseline"),
    (b"\xff\xfe", "not a JSON baseline"),
    (b"[" * 100_000, "not a JSON baseline"),
    (b"[]", "not an edgecnn baseline"),
    (json.dumps(dict(good_baseline(), version=2)).encode(), "newer edgecnn"),
    (json.dumps(dict(good_baseline(), version="1")).encode(), "bad baseline version"),
    (json.dumps(dict(good_baseline(), images=[])).encode(), "\"images\" must be an object"),
    (json.dumps(dict(good_baseline(), models=[])).encode(), "\"models\""),
    (json.dumps(dict(good_baseline(), agreement=2)).encode(), "agreement"),
    (json.dumps(good_baseline()).replace("0.5,", "NaN,").encode(), "not a JSON baseline"),
    (json.dumps(good_baseline()).replace('"accuracy": 0.5', '"accuracy": true').encode(), "accuracy"),
    (json.dumps(good_baseline()).replace('"count": 10', '"count": -1').encode(), "count"),
    (b" " * (5 << 20), "larger than"),
]


@pytest.mark.parametrize("raw, needle", HOSTILE)
def test_hostile_baselines_give_one_clear_error(tmp_path, raw, needle):
    from edgecnn.deploy.baseline import BaselineError, load_baseline

    path = tmp_path / "b.json"
    path.write_bytes(raw)
    with pytest.raises(BaselineError, match=needle.replace("(", r"\(")):
        load_baseline(path)


def test_a_good_baseline_loads(tmp_path):
    from edgecnn.deploy.baseline import load_baseline, write_baseline

    write_baseline(tmp_path / "b.json", good_baseline())
    assert load_baseline(tmp_path / "b.json") == good_baseline()


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20),
       st.sampled_from(["images", "models", "agreement", "version", "format"]))
def test_mutated_baselines_load_or_raise_baseline_error(tmp_path_factory, value, key):
    from edgecnn.deploy.baseline import BaselineError, load_baseline

    doc = good_baseline()
    doc[key] = value
    path = tmp_path_factory.mktemp("h") / "b.json"
    path.write_text(json.dumps(doc))
    try:
        load_baseline(path)
    except BaselineError:
        pass


def test_class_metrics_and_agreement_on_known_predictions():
    from edgecnn.deploy.regression import compare_predictions, max_drop_failure, min_agreement_failure

    labels = np.array([0, 0, 1, 1, 2, 2])
    c = compare_predictions(np.array([0, 0, 1, 1, 2, 1]), np.array([0, 1, 1, 1, 0, 1]), labels, ["a", "b", "c"])
    assert c.reference_accuracy == pytest.approx(5 / 6) and c.accuracy == pytest.approx(3 / 6)
    assert c.agreement == pytest.approx(4 / 6)
    assert c.per_class == [0.5, 1.0, 0.0] and c.reference_per_class == [1.0, 1.0, 0.5]
    assert c.worst_classes(2) == [("a", 1.0, 0.5), ("c", 0.5, 0.0)]  # both lost 0.5, in class order
    assert max_drop_failure(c, 34) is None
    assert "33.33 points below float 83.33%, more than --max-drop 33" in max_drop_failure(c, 33)
    assert min_agreement_failure(c, 0.6) is None and "66.67%" in min_agreement_failure(c, 0.7)


def test_a_float_onnx_reference_gates_like_its_checkpoint(gates, mnist_root, tmp_path):
    from edgecnn.model.checkpoint import load_checkpoint
    from test_onnx_import import edgecnn_to_onnx

    onnx_path = tmp_path / "float.onnx"
    onnx_path.write_bytes(edgecnn_to_onnx(load_checkpoint(gates["float"])).SerializeToString())
    rc, out, err = eval_cli(mnist_root, onnx_path, gates["good"], "--limit", LIMIT, "--max-drop", "1", "--json")
    assert rc == 0, err
    by_npz = json.loads(eval_cli(mnist_root, gates["float"], gates["good"], "--limit", LIMIT, "--json")[1])
    assert [r["accuracy"] for r in json.loads(out)] == [r["accuracy"] for r in by_npz]
    rc, _, err = eval_cli(mnist_root, onnx_path, gates["black"], "--limit", LIMIT, "--max-drop", "1")
    assert_clean_error(rc, err, "accuracy", "below float", "--max-drop 1")
