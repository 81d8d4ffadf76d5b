"""Model graph: shapes, the paper's counts, checkpoints and the summary CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from edgecnn.errors import CheckpointError, ModelError, ShapeError, UnknownArchitectureError
from edgecnn.model import build
from edgecnn.model.archs import c3_connection_table
from edgecnn.model.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from edgecnn.model.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from edgecnn.model.sequential import Sequential
from edgecnn.model.summary import summarize

PAPER = {  # LeCun et al. 1998: parameters, connections
    "C1": (156, 122_304), "S2": (12, 5_880), "C3": (1_516, 151_600),
    "S4": (32, 2_000), "C5": (48_120, 48_120), "F6": (10_164, 10_164),
}


def test_lenet5_has_61706_params():
    s = summarize(build("lenet5"))
    assert s["total_params"] == 61_706
    assert [tuple(layer["output_shape"]) for layer in s["layers"]] == [
        (28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,), (120,), (84,), (10,)]


def test_classic_matches_paper_counts():
    s = summarize(build("lenet5-classic"))
    got = {layer["name"]: (layer["params"], layer["connections"]) for layer in s["layers"]}
    for name, counts in PAPER.items():
        assert got[name] == counts, name


def test_c3_table_rows():
    t = c3_connection_table()
    assert t[0] == [0, 1, 2] and t[4] == [0, 4, 5] and t[6] == [0, 1, 2, 3] and t[11] == [0, 1, 2, 5]
    assert t[12] == [0, 1, 3, 4] and t[13] == [1, 2, 4, 5] and t[14] == [0, 2, 3, 5] and t[15] == list(range(6))
    assert sum(map(len, t)) == 60


def test_summary_cli_json_matches_paper():
    rc, out, err = run_cli("summary", "lenet5-classic", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["arch"] == "lenet5-classic"
    got = {layer["name"]: (layer["params"], layer["connections"]) for layer in doc["layers"]}
    assert all(got[k] == v for k, v in PAPER.items())
    for layer in doc["layers"]:
        assert set(layer) >= {"name", "kind", "output_shape", "params", "connections"}


def test_summary_cli_unknown_arch():
    rc, _, err = run_cli("summary", "lenet7")
    assert_clean_error(rc, err, "unknown architecture")


def test_unknown_arch_raises():
    with pytest.raises(UnknownArchitectureError):
        build("resnet50")


@pytest.mark.parametrize("padding,stride,dilation,expect", [
    ("valid", 1, 1, (28, 28, 4)), ("same", 1, 1, (32, 32, 4)), ("same", 2, 1, (16, 16, 4)),
    ("valid", 2, 1, (14, 14, 4)), ("valid", 1, 2, (24, 24, 4)), (1, 1, 1, (30, 30, 4)),
])
def test_conv_shape_inference(padding, stride, dilation, expect):
    m = Sequential([Conv2D(4, 5, stride=stride, padding=padding, dilation=dilation)], (32, 32, 1))
    assert m.output_shape == expect


def test_shape_errors():
    with pytest.raises(ShapeError):
        Sequential([Conv2D(4, 5, groups=3)], (8, 8, 4))
    with pytest.raises(ShapeError):
        Sequential([Dense(4)], (8, 8, 1))
    with pytest.raises(ShapeError):
        Sequential([Conv2D(4, 9)], (8, 8, 1))
    m = build("lenet5").init_params(0)
    with pytest.raises(ShapeError):
        m.forward(np.zeros((2, 28, 28, 1), np.float32))


def test_pool_and_flatten_shapes():
    m = Sequential([MaxPool2D(2), AvgPool2D(3, stride=1, padding="same"), Flatten()], (9, 9, 3))
    assert m.output_shape == (4 * 4 * 3,)


def test_checkpoint_round_trip(tmp_path):
    m = build("lenet5-classic").init_params(7)
    p = save_checkpoint(tmp_path / "m.npz", m, {"epoch": 3})
    m2, state, _ = load_checkpoint(p, with_state=True)
    assert state["epoch"] == 3 and m2.arch == "lenet5-classic"
    for (k1, v1), (k2, v2) in zip(m.named_params(), m2.named_params()):
        assert k1 == k2 and np.array_equal(v1, v2)


def test_checkpoint_rejects_foreign_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="not an edgecnn checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="magic"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.npz")


def test_checkpoint_rejects_newer_format(tmp_path):
    m = build("lenet5").init_params(0)
    p = save_checkpoint(tmp_path / "m.npz", m)
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["__format__"] = np.array(FORMAT_VERSION + 1)
    np.savez(p, **arrays)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(p)
    rc, _, err = run_cli("summary", str(p))
    assert_clean_error(rc, err, "newer")


def test_checkpoint_rejects_pickled_objects(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, __magic__=np.frombuffer(b"edgecnn-float", np.uint8), __format__=np.array(1),
             __spec__=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    m = build("lenet5").init_params(0)
    p = save_checkpoint(tmp_path / "m.npz", m)
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(p, build("lenet5").init_params(1))
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.npz"]


def test_truncated_checkpoint(tmp_path):
    m = build("lenet5").init_params(0)
    p = save_checkpoint(tmp_path / "m.npz", m)
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_layer_config_errors():
    with pytest.raises(ModelError):
        Sequential.from_spec({"input_shape": [8, 8, 1], "layers": [{"kind": "transformer"}]})
    with pytest.raises(ModelError):
        Sequential.from_spec({"input_shape": [8, 8, 1], "layers": [{"kind": "conv2d", "bogus": 1}]})


def test_masked_weights_stay_zero_in_forward():
    m = build("lenet5-classic").init_params(0)
    c3 = m.layers[2]
    mask = c3.mask()[:, 0, 0, :]
    assert np.all(c3.params["w"][mask[:, None, None, :].repeat(5, 1).repeat(5, 2) == 0] == 0)


def test_summary_of_a_tflite_file(tmp_path):
    from edgecnn.deploy.tflite import write_tflite
    from edgecnn.quantize.ptq import quantize_model

    m = build("lenet5").init_params(0)
    qm = quantize_model(m, np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 1)).astype(np.float32), progress=False)
    p = tmp_path / "m.tflite"
    write_tflite(qm.graph, p)
    rc, out, err = run_cli("summary", p, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["total_params"] == 61_706 and doc["arch"] == "lenet5"
    assert [layer["kind"] for layer in doc["layers"]][:2] == ["conv_2d", "max_pool_2d"]
    assert doc["layers"][0]["connections"] == 122_304
