"""The C arena's in-place execution: outputs on their inputs' bytes, still every byte of the runtime.

Chains that exercise each in-place rule (docs/export.md, "Arena plan") on odd shapes and paddings:
stride-1 convs keeping their channels (output one row + one pixel before the input: 3x3, 5x5, even
2x2 filters whose SAME padding is asymmetric), depthwise convs with their row ring, widening and
narrowing 1x1 convs. Built with host gcc and compared with the Numba runtime on random and extreme
images (the Cortex-M4 tests check the RAM the plans save on the MLPerf Tiny models).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgecnn.deploy.export.c import export_c
from edgecnn.deploy.runtime import Runtime
from tflite_models import GraphBuilder, random_input

CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror"]


def chain(seed: int, shape) -> object:
    g = GraphBuilder(np.random.default_rng(seed), shape)
    c = shape[-1]
    g.conv2d(c, 3, 3, padding="SAME", act="RELU")
    g.conv2d(c, 5, 5, padding="SAME")
    g.conv2d(c, 2, 2, padding="SAME", act="RELU6")
    g.depthwise(1, 3, 3, padding="SAME", act="RELU")
    g.depthwise(1, 5, 3, padding="SAME")
    g.conv2d(2 * c + 1, 1, 1, act="RELU")  # widening 1x1: last pixel first
    g.conv2d(c, 1, 1)  # narrowing 1x1
    g.conv2d(c, 3, 3, padding="VALID")  # not in place (the grid shrinks)
    g.flatten().fully_connected(9)
    return g.build()


@pytest.mark.parametrize("seed, shape", [(0, (1, 7, 5, 3)), (1, (1, 6, 9, 4)), (2, (1, 3, 4, 2)), (3, (1, 5, 3, 5))])
def test_in_place_chain_equals_runtime(seed, shape, tmp_path):
    graph = chain(seed, shape)
    x = random_input(graph, 40, seed=seed)
    x[0], x[1] = -128, 127
    (tmp_path / "m.c").write_text(export_c(graph, "m").source)
    subprocess.run(["gcc", *CFLAGS, "-DEDGECNN_MAIN", "m.c", "-o", "m"], cwd=tmp_path, check=True)
    got = subprocess.run([str(tmp_path / "m")], input=x.tobytes(), capture_output=True, check=True).stdout
    want = np.asarray(Runtime(graph).run(x)).reshape(len(x), -1)
    np.testing.assert_array_equal(np.frombuffer(got, dtype=np.int8).reshape(want.shape), want)
    source = export_c(graph, "m").source
    assert "ec_depthwise_conv_2d_in_place(" in source  # the in-place kernels were used


def strided_chain(seed: int, shape) -> object:
    """Layers that shrink their input, in place with the output a computed number of bytes before it."""
    g = GraphBuilder(np.random.default_rng(seed), shape)
    c = shape[-1]
    g.conv2d(c + 2, 3, 3, stride=(2, 2), padding="SAME", act="RELU")  # stride 2, more channels, smaller
    g.depthwise(1, 3, 3, stride=(2, 2), padding="SAME")
    g.depthwise(1, 3, 3, stride=(1, 2), padding="VALID", dilation=(2, 1))
    g.conv2d(c, 2, 3, stride=(1, 2), padding="SAME", act="RELU6")
    g.conv2d(2, 1, 1, stride=(2, 1))  # 1x1 stride 2, narrowing
    g.flatten().fully_connected(7)
    return g.build()


@pytest.mark.parametrize("seed, shape", [(0, (1, 23, 17, 3)), (1, (1, 24, 20, 4)), (2, (1, 19, 31, 5))])
@pytest.mark.parametrize("input_in_arena", [False, True])
def test_strided_layers_in_place_equal_runtime(seed, shape, input_in_arena, tmp_path):
    graph = strided_chain(seed, shape)
    x = random_input(graph, 30, seed=seed)
    x[0], x[1] = -128, 127
    export = export_c(graph, "m", input_in_arena=input_in_arena)
    (tmp_path / "m.c").write_text(export.source)
    subprocess.run(["gcc", *CFLAGS, "-DEDGECNN_MAIN", "m.c", "-o", "m"], cwd=tmp_path, check=True)
    got = subprocess.run([str(tmp_path / "m")], input=x.tobytes(), capture_output=True, check=True).stdout
    want = np.asarray(Runtime(graph).run(x)).reshape(len(x), -1)
    np.testing.assert_array_equal(np.frombuffer(got, dtype=np.int8).reshape(want.shape), want)
    if input_in_arena:  # the input's bytes are reused: less than input + the first conv's output apart
        first_out = -(-shape[1] // 2) * -(-shape[2] // 2) * (shape[3] + 2)
        assert export.ram_bytes < int(np.prod(shape)) + first_out
        assert "m_input_buffer(void)" in export.header
