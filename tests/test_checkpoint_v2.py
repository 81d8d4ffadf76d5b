"""Checkpoint format 2: graphs and BatchNorm buffers round-trip, format-1 files still load."""

from __future__ import annotations

import json

import numpy as np

from edgecnn.model import Sequential, build
from edgecnn.model.checkpoint import FORMAT_VERSION, MAGIC, load_checkpoint, save_checkpoint


def _text(obj):
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def test_graph_round_trip_keeps_nodes_buffers_and_state(tmp_path):
    model = build("resnet8", input_shape=(16, 16, 3)).init_params(5)
    for _, buf in model.named_buffers():
        buf[...] = np.arange(buf.size, dtype=buf.dtype) + 0.5
    p = save_checkpoint(tmp_path / "r.npz", model, {"epoch": 2, "seconds": 1.5, "history": []},
                        {"t": np.array(3), **{f"m/{k}": np.zeros_like(v) for k, v in model.named_params()}})
    with np.load(p) as z:
        assert int(z["__format__"]) == FORMAT_VERSION == 2
        assert "buffer/stem_bn/mean" in z.files
    again, state, opt = load_checkpoint(p, with_state=True)
    assert state["epoch"] == 2 and int(opt["t"]) == 3 and "m/fc/w" in opt
    assert [(n.name, n.inputs) for n in again.nodes] == [(n.name, n.inputs) for n in model.nodes]
    for (k1, a), (k2, b) in zip(list(model.named_params()) + list(model.named_buffers()),
                                list(again.named_params()) + list(again.named_buffers())):
        assert k1 == k2 and np.array_equal(a, b)
    x = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))


def test_sequential_stays_sequential(tmp_path):
    p = save_checkpoint(tmp_path / "l.npz", build("lenet5").init_params(1))
    assert isinstance(load_checkpoint(p), Sequential)


def test_format_1_checkpoint_still_loads(tmp_path):
    """A file in the version-1 layout exactly as edgecnn 1 wrote it (no buffers, chain spec)."""
    model = build("lenet5-classic").init_params(3)
    spec = {"arch": "lenet5-classic", "input_shape": [32, 32, 1], "labels": [str(i) for i in range(10)],
            "layers": [layer.config() for layer in model.layers]}
    arrays = {"__magic__": np.frombuffer(MAGIC, np.uint8), "__format__": np.array(1, np.int64),
              "__spec__": _text(spec), "__train__": _text({"epoch": 1, "seconds": 2.0, "history": []})}
    arrays.update({f"param/{k}": v for k, v in model.named_params()})
    p = tmp_path / "v1.npz"
    np.savez(p, **arrays)
    loaded, state, opt = load_checkpoint(p, with_state=True)
    assert isinstance(loaded, Sequential) and loaded.arch == "lenet5-classic" and state["epoch"] == 1 and opt == {}
    for (k1, a), (k2, b) in zip(model.named_params(), loaded.named_params()):
        assert k1 == k2 and np.array_equal(a, b)
