"""C export of graphs whose outputs are every intermediate tensor (what `edgecnn compare` exports).

Such outputs are also inputs of later ops: they live in the caller's buffers, so the in-place
kernels (offset convs, depthwise row rings, 1x1 convs in place) must not be chosen for them, and
every one must still hold the runtime's bytes. Host gcc, portable path.
"""

from __future__ import annotations

import dataclasses
import subprocess

import numpy as np
import pytest

from edgecnn.deploy.export.c import export_c
from edgecnn.deploy.runtime import Runtime
from test_export_c_in_place import CFLAGS, chain
from tflite_models import lenet5, random_input


def every_tensor_out(graph):
    produced = [t for op in graph.ops for t in op.outputs]
    return dataclasses.replace(graph, outputs=produced)


@pytest.mark.parametrize("make", [lambda: lenet5(seed=0), lambda: chain(5, (1, 6, 7, 4))], ids=["lenet5", "in_place_chain"])
def test_every_intermediate_as_an_output_equals_the_runtime(make, tmp_path):
    graph = every_tensor_out(make())
    x = random_input(graph, 6, seed=2)
    x[0] = -128
    export = export_c(graph, "m")
    (tmp_path / "m.c").write_text(export.source)
    subprocess.run(["gcc", *CFLAGS, "-DEDGECNN_MAIN", "m.c", "-o", "m"], cwd=tmp_path, check=True)
    got = subprocess.run([str(tmp_path / "m")], input=x.tobytes(), capture_output=True, check=True).stdout
    want = [np.asarray(o).reshape(len(x), -1) for o in Runtime(graph).run(x)]
    record = sum(w.shape[1] * w.itemsize for w in want)
    assert len(got) == record * len(x)
    rows = np.frombuffer(got, dtype=np.uint8).reshape(len(x), record)
    start = 0
    for t, w in zip(graph.outputs, want):  # every output of every record, whole tensors
        n = w.shape[1] * w.itemsize
        np.testing.assert_array_equal(rows[:, start:start + n].copy().view(w.dtype), w, err_msg=graph.tensors[t].name)
        start += n
