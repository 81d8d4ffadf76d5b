"""Hostile checkpoints fail with CheckpointError, one line, without big allocations (issue 11)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from edgecnn.errors import CheckpointError
from edgecnn.model import build
from edgecnn.model.checkpoint import MAGIC, load_checkpoint, save_checkpoint


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _members(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _write(path, arrays, compression=zipfile.ZIP_DEFLATED, raw=None):
    """A zip of .npy members (raw: name -> bytes written as is)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in {**{k: _npy(v) for k, v in arrays.items()}, **(raw or {})}.items():
            info = zipfile.ZipInfo(name + ".npy")
            info.compress_type = compression
            zf.writestr(info, data)
    return path


def _patch_headers(path, local_offset, central_offset, value):
    """Overwrite a 2-byte field in every local and central zip header."""
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        i = data.find(sig)
        while i >= 0:
            field = int.from_bytes(data[i + off:i + off + 2], "little")
            data[i + off:i + off + 2] = value(field).to_bytes(2, "little")
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))
    return path


def _text(obj):
    return np.frombuffer((obj if isinstance(obj, str) else json.dumps(obj)).encode(), np.uint8)


@pytest.fixture()
def good(tmp_path):
    p = save_checkpoint(tmp_path / "good.npz", build("lenet5").init_params(0), {"epoch": 1, "history": []})
    return _members(p)


@pytest.mark.parametrize("value", [np.array("abc"), np.array([1, 2]), np.array(1.5), np.array(b"\x01")])
def test_bad_format_value(tmp_path, good, value):
    with pytest.raises(CheckpointError, match="format|integers"):
        load_checkpoint(_write(tmp_path / "f.npz", {**good, "__format__": value}))


def test_deeply_nested_spec(tmp_path, good):
    with pytest.raises(CheckpointError, match="nests too deeply"):
        load_checkpoint(_write(tmp_path / "n.npz", {**good, "__spec__": _text("[" * 200_000)}))


@pytest.mark.parametrize("train", ['{"epoch": 1', '[1, 2]', '{"epoch": "3"}', '{"history": 5}',
                                   '{"seconds": -1}', '{"history": [{"loss": "x"}]}'])
def test_bad_train_state(tmp_path, good, train):
    p = _write(tmp_path / "t.npz", {**good, "__train__": _text(train)})
    load_checkpoint(p)  # the model itself is fine
    with pytest.raises(CheckpointError, match="training state|JSON"):
        load_checkpoint(p, with_state=True)


def test_resume_with_bad_train_state_is_a_clean_error(tmp_path, good, mnist_root):
    p = _write(tmp_path / "t.npz", {**good, "__train__": _text("[1, 2]")})
    rc, _, err = run_cli("train", "--arch", "lenet5", "--data", str(mnist_root), "--limit", "64", "--epochs", "1",
                         "--resume", "--out", str(p), "--quiet")
    assert_clean_error(rc, err, "training state")


def test_optimizer_state_must_match_the_parameters(tmp_path, good):
    p = _write(tmp_path / "o.npz", {**good, "opt/m/nowhere": np.zeros(3)})
    with pytest.raises(CheckpointError, match="names no parameter"):
        load_checkpoint(p, with_state=True)
    p = _write(tmp_path / "o2.npz", {**good, "opt/m/fc3/b": np.zeros(4)})
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(p, with_state=True)


def test_encrypted_member(tmp_path, good):
    with pytest.raises(CheckpointError, match="encrypted"):
        load_checkpoint(_patch_headers(_write(tmp_path / "e.npz", good), 6, 8, lambda flags: flags | 0x1))


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_unknown_compression_method(tmp_path, good, method):
    with pytest.raises(CheckpointError, match="compression method"):
        load_checkpoint(_write(tmp_path / "c.npz", good, compression=method))


def test_unknown_method_number(tmp_path, good):
    p = _patch_headers(_write(tmp_path / "u.npz", good, compression=zipfile.ZIP_STORED), 8, 10, lambda m: 99)
    with pytest.raises(CheckpointError, match="compression method 99"):
        load_checkpoint(p)


def _spec_with(good, **changes):
    spec = json.loads(good["__spec__"].tobytes())
    for index, key, value in changes.values():
        spec["layers"][index][key] = value
    return spec


@pytest.mark.parametrize("index,key,value,match", [
    (7, "units", 0, "limit 1..65536"),
    (0, "filters", 3e6, "limit 1..65536"),
    (0, "kernel", [5, 1000], "limit 1..255"),
    (0, "filters", "6", "must be an integer"),
    (0, "activation", ["relu"], "unknown activation"),
    (4, "kind", "pickle", "unknown layer kind"),
])
def test_spec_is_validated_before_the_model_is_built(tmp_path, good, index, key, value, match):
    spec = _spec_with(good, c=(index, key, value))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(_write(tmp_path / "s.npz", {**good, "__spec__": _text(spec)}))


def test_too_many_parameters_named(tmp_path, good):
    spec = _spec_with(good, a=(5, "units", 60000), b=(6, "units", 60000))  # 3.6e9 weights in fc2
    tracemalloc.start()
    with pytest.raises(CheckpointError, match="over the limit"):
        load_checkpoint(_write(tmp_path / "big.npz", {**good, "__spec__": _text(spec)}))
    assert tracemalloc.get_traced_memory()[1] < 50e6
    tracemalloc.stop()


def test_declared_shape_is_checked_before_inflating(tmp_path, good):
    """A member that claims 1.2 GB (and would inflate to it) is refused from its header alone."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (300_000_000,)})
    body = header.getvalue() + b"\0" * (1 << 20)  # the first MB of zeros; the rest would follow
    arrays = dict(good)
    del arrays["param/fc3/b"]
    p = _write(tmp_path / "bomb.npz", arrays, raw={"param/fc3/b": body})
    tracemalloc.start()
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(p)
    assert tracemalloc.get_traced_memory()[1] < 50e6
    tracemalloc.stop()
    spec_header = io.BytesIO()
    np.lib.format.write_array_header_1_0(spec_header, {"descr": "|u1", "fortran_order": False,
                                                       "shape": (1 << 30,)})
    big = _write(tmp_path / "spec.npz", {k: v for k, v in good.items() if k != "__spec__"},
                 raw={"__spec__": spec_header.getvalue()})
    with pytest.raises(CheckpointError, match="over the limit"):
        load_checkpoint(big)


def test_not_npy_members_and_object_arrays(tmp_path, good):
    p = tmp_path / "x.npz"
    _write(p, good)
    with zipfile.ZipFile(p, "a") as zf:
        zf.writestr("payload.pkl", b"\x80\x04")
    with pytest.raises(CheckpointError, match="not a .npy"):
        load_checkpoint(p)
    evil = tmp_path / "evil.npz"
    np.savez(evil, __magic__=np.frombuffer(MAGIC, np.uint8), __format__=np.array(2),
             __spec__=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="Python objects"):
        load_checkpoint(evil)
