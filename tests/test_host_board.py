"""Host vs board: `eval --save-outputs host.npz` then `eval --expect-outputs host.npz [--max-diff N]`.

The saved file binds outputs to the model's SHA-256 and the images; a run on
another back end (the board's) reports identical images/elements and the largest
difference, fails past the tolerance naming the first op where the two part, and
refuses files made from another model (a flipped weight) or other images.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from regression_models import flip_weight, gate_models, untrained_models
from zip_flags import with_zip_flags


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return untrained_models(tmp_path_factory.mktemp("untrained-hb"))


@pytest.fixture(scope="module")
def trained(lenet5_path, mnist_root, tmp_path_factory):
    from edgecnn.data.datasets import load_split

    return gate_models(lenet5_path, load_split("mnist", "train", mnist_root)[0], tmp_path_factory.mktemp("hb"))


def eval_cli(mnist_root, *args):
    return run_cli("eval", *map(str, args), "--data", mnist_root, "--quiet")


def save_host(mnist_root, model, path, limit="300", backend="numba"):
    rc, _, err = eval_cli(mnist_root, model, "--limit", limit, "--backend", backend, "--save-outputs", path)
    assert rc == 0, err
    return path


# ------------------------------------------------------------------ trained LeNet-5 (slow: conftest)

def test_reference_board_matches_the_host_bit_for_bit(trained, mnist_root, tmp_path):
    host = save_host(mnist_root, trained["good"], tmp_path / "host.npz", limit="10000")
    rc, out, err = eval_cli(mnist_root, trained["good"], "--backend", "litert-ref", "--expect-outputs", host, "--json")
    assert rc == 0, err
    report = json.loads(out)[0]["expect_outputs"]
    assert report["rows"] == report["identical_rows"] == 10_000
    assert report["elements"] == report["identical_elements"] == 100_000 and report["max_diff"] == 0
    assert report["saved_backend"] == "numba"


def test_xnnpack_board_fails_at_zero_tolerance_naming_the_first_op(trained, mnist_root, tmp_path):
    host = save_host(mnist_root, trained["good"], tmp_path / "host.npz", limit="2000")
    rc, out, err = eval_cli(mnist_root, trained["good"], "--backend", "litert", "--expect-outputs", host, "--json")
    # (no --limit: the board runs on the 2000 images the host saved)
    assert_clean_error(rc, err, "outputs differ from host.npz", "of 2000 images", "of 20000 elements",
                       "> --max-diff 0", "litert-ref and litert first differ at op")
    assert rc == 1
    report = json.loads(out)[0]["expect_outputs"]
    assert report["identical_rows"] < 2000 and report["max_diff"] >= 1
    assert f"{report['elements'] - report['identical_elements']} of 20000 elements" in err
    assert report["first_differing_op"] in err
    # the first differing image is named in the dataset's numbering, and the op's counts are on it
    image = report["first_differing_image"]
    assert f"image {image}:" in report["first_differing_op"]
    rc, _, err = eval_cli(mnist_root, trained["good"], "--backend", "litert", "--expect-outputs", host,
                          "--max-diff", str(report["max_diff"]))
    assert rc == 0, err


def test_a_board_model_with_a_flipped_weight_is_refused(trained, mnist_root, tmp_path):
    host = save_host(mnist_root, trained["good"], tmp_path / "host.npz")
    rc, _, err = eval_cli(mnist_root, trained["flipped"], "--limit", "300", "--backend", "litert-ref",
                          "--expect-outputs", host)
    assert_clean_error(rc, err, "host.npz was saved from another model", "good.tflite")


# ------------------------------------------------------------------ fast: the file, its record, hostile files

def test_saved_npz_keeps_its_arrays_and_adds_a_record(untrained, mnist_root, tmp_path):
    host = save_host(mnist_root, untrained["int8"], tmp_path / "host.npz", limit="20")
    with np.load(host, allow_pickle=False) as z:
        assert z.files == ["output0"] and z["output0"].shape == (20, 10) and z["output0"].dtype == np.int8
    from edgecnn.deploy.host_outputs import read_outputs
    from edgecnn.deploy.regression import file_sha256

    arrays, record = read_outputs(host)
    assert record["model"] == {"name": "u.tflite", "sha256": file_sha256(untrained["int8"])}
    assert record["images"]["count"] == 20 and record["images"]["dataset"] == "mnist"
    assert record["backend"] == "numba" and np.array_equal(arrays[0], np.load(host)["output0"])
    save_host(mnist_root, untrained["int8"], tmp_path / "raw.npy", limit="20")  # the raw array, as before
    assert np.array_equal(np.load(tmp_path / "raw.npy", allow_pickle=False), arrays[0])


def test_same_backend_passes_and_reports_every_row_identical(untrained, mnist_root, tmp_path):
    host = save_host(mnist_root, untrained["int8"], tmp_path / "host.npz", limit="50")
    rc, out, err = eval_cli(mnist_root, untrained["int8"], "--limit", "50", "--expect-outputs", host)
    assert rc == 0, err
    assert "50/50 images, 500/500 elements identical, largest difference 0" in out


def test_other_images_and_other_models_are_refused(untrained, mnist_root, tmp_path):
    host = save_host(mnist_root, untrained["int8"], tmp_path / "host.npz", limit="50")
    rc, _, err = eval_cli(mnist_root, untrained["int8"], "--limit", "40", "--expect-outputs", host)
    assert_clean_error(rc, err, "saved on 50 mnist test images", "this run uses 40")
    flipped = flip_weight(untrained["int8"], tmp_path / "flipped.tflite")
    rc, _, err = eval_cli(mnist_root, flipped, "--limit", "50", "--expect-outputs", host)
    assert_clean_error(rc, err, "saved from another model (u.tflite")
    np.save(tmp_path / "host.npy", np.zeros((50, 10), np.int8))
    rc, _, err = eval_cli(mnist_root, untrained["int8"], "--limit", "50", "--expect-outputs", tmp_path / "host.npy")
    assert_clean_error(rc, err, "needs the .npz")
    rc, _, err = eval_cli(mnist_root, untrained["int8"], untrained["int8"], "--expect-outputs", host)
    assert_clean_error(rc, err, "one model at a time")


def with_comment(arrays: dict, comment: bytes | None) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    if comment is not None:
        with zipfile.ZipFile(buf, "a") as z:
            z.comment = comment
    return buf.getvalue()


def record_for(a: np.ndarray, **changes) -> bytes:
    from edgecnn.deploy.host_outputs import outputs_record

    record = outputs_record([a], "ab" * 32, "m.tflite", {"dataset": "mnist", "split": "test", "count": len(a),
                                                          "sha256": "cd" * 32}, "numba")
    record.update(changes)
    return json.dumps(record).encode()


A = np.arange(20, dtype=np.int8).reshape(2, 10)
HOSTILE = {
    "not a zip": (b"\x93NUMPY garbage", "not an .npz archive"),
    "empty": (b"", "not an .npz archive"),
    "no record": (with_comment({"output0": A}, None), "no edgecnn record"),
    "record not JSON": (with_comment({"output0": A}, b"\xff{"), "not a JSON outputs file"),
    "other format": (with_comment({"output0": A}, b'{"format": "x"}'), "not an edgecnn outputs file"),
    "newer": (with_comment({"output0": A}, record_for(A, version=9)), "newer edgecnn"),
    "no model": (with_comment({"output0": A}, record_for(A, model=[])), "no model name"),
    "no images": (with_comment({"output0": A}, record_for(A, images={"count": "x"})), "identify the images"),
    "bad arrays": (with_comment({"output0": A}, record_for(A, arrays=[{"shape": "x"}])), "\"arrays\""),
    "edited array": (with_comment({"output0": A + 1}, record_for(A)), "edited after it was saved"),
    "missing array": (with_comment({"other": A}, record_for(A)), "does not hold it"),
    "pickled object": (with_comment({"output0": np.array([{"x": 1}], dtype=object)}, record_for(A)),
                       "unreadable array"),
}


def zip_bomb() -> bytes:
    """An .npz whose one member inflates to 2 GiB of zeros (a few MB on disk)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("output0.npy", "w", force_zip64=True) as f:
            block = bytes(1 << 24)
            for _ in range(128):
                f.write(block)
        z.comment = record_for(A)
    return buf.getvalue()


HOSTILE["zip bomb"] = (None, "inflates to 2,147,483,648 bytes")


# zipfile raises RuntimeError (encrypted, bit 0) and NotImplementedError (strong encryption, bit 6) for these
HOSTILE["encrypted member"] = (with_zip_flags(with_comment({"output0": A}, record_for(A)), 0x01), "unreadable array")
HOSTILE["strongly encrypted member"] = (with_zip_flags(with_comment({"output0": A}, record_for(A)), 0x40),
                                        "unreadable array")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_outputs_files_give_one_clear_error(tmp_path, case):
    from edgecnn.deploy.host_outputs import OutputsFileError, read_outputs

    raw, needle = HOSTILE[case]
    path = tmp_path / "h.npz"
    path.write_bytes(zip_bomb() if raw is None else raw)
    with pytest.raises(OutputsFileError, match=needle):
        read_outputs(path)


def test_a_hostile_outputs_file_fails_the_cli_in_one_line(untrained, mnist_root, tmp_path):
    (tmp_path / "h.npz").write_bytes(HOSTILE["pickled object"][0])
    rc, _, err = eval_cli(mnist_root, untrained["int8"], "--expect-outputs", tmp_path / "h.npz")
    assert_clean_error(rc, err, "h.npz", "unreadable array")


def test_compare_outputs_counts_rows_elements_and_the_largest_difference():
    from edgecnn.deploy.host_outputs import OutputsFileError, compare_outputs

    a = np.zeros((4, 3), np.int8)
    b = a.copy()
    b[1, 2], b[3, 0], b[3, 1] = 1, -128, 5
    c = compare_outputs([a], [b])
    assert (c["rows"], c["identical_rows"], c["elements"], c["identical_elements"]) == (4, 2, 12, 9)
    assert c["max_diff"] == 128 and c["largest_at"] == {"image": 3, "output": "output0"}
    assert c["first_differing_image"] == 1
    with pytest.raises(OutputsFileError, match="int8"):
        compare_outputs([a], [b.astype(np.float32)])


@pytest.fixture(scope="module")
def board_venv(tmp_path_factory):
    """A board's install: the wheel with the `device` extra only (LiteRT, no Numba, no onnx)."""
    from fresh_venv import install_in_fresh_venv

    return install_in_fresh_venv(tmp_path_factory.mktemp("board"), "device")


def test_a_device_install_checks_the_hosts_file(trained, board_venv, mnist_root, tmp_path):
    import os

    from fresh_venv import sh

    host = save_host(mnist_root, trained["good"], tmp_path / "host.npz", limit="1000")
    env = dict(os.environ, PATH=f"{board_venv / 'bin'}:{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    board = [board_venv / "bin" / "edgecnn", "eval", trained["good"], "--data", mnist_root, "--quiet",
             "--expect-outputs", host]
    p = sh(*board, "--backend", "litert-ref", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert "1000/1000 images, 10000/10000 elements identical, largest difference 0" in p.stdout
    p = sh(*board, "--backend", "litert", cwd=tmp_path, env=env)  # XNNPACK; numba is not there to ask
    assert_clean_error(p.returncode, p.stderr, "outputs differ from host.npz", "> --max-diff 0",
                       "litert-ref and litert first differ at op")
