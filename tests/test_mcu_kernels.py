"""The Cortex-M conv kernels' special paths, byte for byte against the runtime, on odd shapes.

Each graph aims at one path of the C conv kernels (docs/mcu.md): the 3x3 depthwise rows
(ec_depthwise_row3: 3 or 2 taps per row, 3 or 2 rows, stride 1 and 2, the in-place ring) and its
fallbacks (channels not a multiple of 4, rows narrower than 3) and every requantization mode,
the 1x1 conv on 16-bit-lane patches (ec_pointwise: channels not a multiple of 4, an odd number of
pixels, widening in reverse pixel order, an odd number of filters) and small windows as row runs
(ec_conv_runs: padding on every side, stride 2, rows not a multiple of 4 bytes, padded one by one or
packed one after the other). Every graph runs
on QEMU's Cortex-M4 (DSP path and portable, one program each) and through host gcc (portable);
a hypothesis property adds random shapes on the host.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).with_name("mcu")))

from qemu_m4 import ModelBuild, build_and_run  # noqa: E402

from edgecnn.deploy.export.c import export_c  # noqa: E402
from edgecnn.deploy.runtime import Runtime  # noqa: E402
from tflite_models import GraphBuilder, random_input  # noqa: E402

CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror"]


def depthwise_graph(seed: int, shape, stride, padding, act="RELU"):
    g = GraphBuilder(np.random.default_rng(seed), shape)
    g.depthwise(1, 3, 3, stride=stride, padding=padding, act=act)
    g.depthwise(1, 3, 3, padding="SAME", act="NONE")  # stride 1 on the result: the in-place ring
    g.conv2d(5, 1, 1)  # (the depthwise output is not the graph's: the planner may put it in place)
    return g.build()


def pointwise_graph(seed: int, shape, widths):
    g = GraphBuilder(np.random.default_rng(seed), shape)
    for k, width in enumerate(widths):
        g.conv2d(width, 1, 1, act=("RELU", "NONE", "RELU6")[k % 3])
    return g.build()


def runs_graph(seed: int, shape, kernel, stride, padding, out_ch):
    g = GraphBuilder(np.random.default_rng(seed), shape)
    g.conv2d(out_ch, *kernel, stride=stride, padding=padding, act="RELU")
    g.conv2d(out_ch + 1, 1, 1)
    return g.build()


def requantization_modes_graph(seed: int, shape):
    """Convs whose requantization takes each of ec_channel_out's modes (channel_mode): a clamp narrower than
    int8 (2: RELU6 with 6.0 at -28), a bias too large for the SMMLAR's bound (1), and a
    rescale with a left shift (0: the output scale made tiny), each as depthwise, 1x1 and small-window conv."""
    g = GraphBuilder(np.random.default_rng(seed), shape)
    g.depthwise(1, 3, 3, padding="SAME", act="RELU6").conv2d(8, 1, 1, act="RELU6").conv2d(8, 3, 3, padding="SAME",
                                                                                      act="RELU6")  # fmt: skip
    g.depthwise(1, 3, 3, padding="SAME").conv2d(8, 1, 1).conv2d(8, 3, 3, padding="SAME")
    g.depthwise(1, 3, 3, padding="SAME").conv2d(8, 1, 1).conv2d(8, 3, 3, padding="SAME")
    graph = g.build()
    for k, op in enumerate(graph.ops):
        out = graph.tensors[op.outputs[0]]
        if k < 3:  # mode 2: RELU6 clamps at 6.0 = zero point + 100
            out.scale, out.zero_point = np.float32([0.06]), np.int64([-128])
        elif k < 6:  # mode 1: |bias| >= 2^29
            bias = graph.tensors[op.inputs[2]]
            bias.data = (bias.data.astype(np.int64) + (2**29 + 12345) * np.where(np.arange(bias.data.size) % 2, 1, -1)
                         ).astype(np.int32)  # fmt: skip
        else:  # mode 0: effective scale > 1, a left shift
            out.scale = out.scale / np.float32(1000.0 ** (k - 5))  # each 1000x below its input
    return graph


GRAPHS = {
    "modes": lambda: requantization_modes_graph(14, (1, 5, 6, 8)),
    "dw_s1_c8": lambda: depthwise_graph(0, (1, 7, 5, 8), (1, 1), "SAME"),
    "dw_s2_c12": lambda: depthwise_graph(1, (1, 9, 6, 12), (2, 2), "SAME"),
    "dw_s2_valid": lambda: depthwise_graph(2, (1, 8, 9, 4), (2, 2), "VALID"),
    "dw_s12_c16": lambda: depthwise_graph(3, (1, 6, 7, 16), (1, 2), "SAME"),
    "dw_narrow": lambda: depthwise_graph(4, (1, 5, 2, 8), (1, 1), "SAME"),  # 2 pixels wide: generic path
    "dw_c6": lambda: depthwise_graph(5, (1, 5, 4, 6), (1, 1), "SAME"),  # channels not a multiple of 4
    "pw_odd": lambda: pointwise_graph(7, (1, 5, 3, 6), (9, 4, 7)),  # 15 pixels, 6 / 9 / 4 channels in
    "pw_wide": lambda: pointwise_graph(8, (1, 3, 3, 8), (24, 8, 5)),
    "runs_3x3x3": lambda: runs_graph(9, (1, 9, 7, 3), (3, 3), (2, 2), "SAME", 8),
    "runs_3x3_s1": lambda: runs_graph(10, (1, 6, 5, 3), (3, 3), (1, 1), "SAME", 5),  # padding on every side
    "runs_10x4": lambda: runs_graph(11, (1, 13, 6, 1), (10, 4), (2, 2), "SAME", 6),  # DS-CNN's first conv
    "runs_5x5x2": lambda: runs_graph(12, (1, 8, 8, 2), (5, 5), (1, 1), "SAME", 4),  # rows of 10 bytes
    "runs_2x3x5": lambda: runs_graph(13, (1, 7, 6, 5), (2, 3), (1, 2), "VALID", 3),
}


def check_host(graph, x: np.ndarray, tmp_path: Path) -> None:
    (tmp_path / "m.c").write_text(export_c(graph, "m").source)
    subprocess.run(["gcc", *CFLAGS, "-DEDGECNN_MAIN", "m.c", "-o", "m"], cwd=tmp_path, check=True)
    got = subprocess.run([str(tmp_path / "m")], input=x.tobytes(), capture_output=True, check=True).stdout
    want = np.asarray(Runtime(graph).run(x)).reshape(len(x), -1)
    np.testing.assert_array_equal(np.frombuffer(got, dtype=np.int8).reshape(want.shape), want)


def inputs(graph, n: int = 6, seed: int = 0) -> np.ndarray:
    x = random_input(graph, n, seed=seed)
    x[0], x[1] = -128, 127
    return x


def test_kernel_paths_are_taken():
    sources = {name: export_c(make(), "m").source for name, make in GRAPHS.items()}
    assert all(".pointwise = 1," in sources[n] for n in ("pw_odd", "pw_wide"))
    assert all(".run4 = " in sources[n] and ".run4 = 0," not in sources[n].split("_params = {")[1].split("};")[0]
               for n in GRAPHS if n.startswith("runs_"))  # fmt: skip
    assert all(".packed = 1," in sources[n] for n in ("runs_3x3x3", "runs_3x3_s1", "runs_5x5x2"))  # rows packed
    assert all(".packed = 0," in sources[n] for n in ("runs_10x4", "runs_2x3x5"))  # rows padded one by one
    assert ".fast = 3," in sources["dw_s1_c8"]
    assert [int(m) for m in re.findall(r"\.fast = (\d),", sources["modes"])] == [2, 2, 2, 1, 1, 1, 0, 0, 0]
    assert "ec_depthwise_conv_2d_in_place(" in sources["dw_s1_c8"]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_kernel_graph_on_host_equals_runtime(name, tmp_path):
    graph = GRAPHS[name]()
    check_host(graph, inputs(graph, 20), tmp_path)


@pytest.mark.parametrize("opt, flags", [("-O2", []), ("-Os", ["-DEDGECNN_NO_DSP"])])
def test_kernel_graphs_on_cortex_m4_equal_runtime(opt, flags, tmp_path):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install -y gcc-arm-none-eabi qemu-system-arm (.ci/run does)")
    graphs = {name: make() for name, make in GRAPHS.items()}
    xs = {name: inputs(g, 3, seed=5) for name, g in graphs.items()}
    builds = [ModelBuild(export_c(g, f"k_{name}"), xs[name]) for name, g in graphs.items()]
    result = build_and_run(builds, tmp_path, opt, flags)
    for k, (name, g) in enumerate(graphs.items()):
        want = np.asarray(Runtime(g).run(xs[name])).reshape(len(xs[name]), -1)
        np.testing.assert_array_equal(result.outputs[k], want, err_msg=name)


@settings(max_examples=12, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.sampled_from([1, 3, 4, 5, 8]), seed=st.integers(0, 2**16),
       stride=st.sampled_from([(1, 1), (2, 2), (1, 2)]), padding=st.sampled_from(["SAME", "VALID"]),
       kernel=st.sampled_from([(3, 3), (1, 1), (2, 3), (3, 1)]), act=st.sampled_from(["RELU", "NONE", "RELU6"]))
def test_random_conv_chains_on_host_equal_runtime(h, w, c, seed, stride, padding, kernel, act, tmp_path_factory):
    kh, kw = kernel
    if padding == "VALID" and (h < kh or w < kw):
        return
    g = GraphBuilder(np.random.default_rng(seed), (1, h, w, c))
    g.conv2d(c + 3, kh, kw, stride=stride, padding=padding, act=act)
    g.depthwise(1, 3, 3, stride=stride, padding="SAME", act=act)
    g.conv2d(2 * c + 1, 1, 1, act=act)
    graph = g.build()
    check_host(graph, inputs(graph, 4, seed=seed), tmp_path_factory.mktemp("c"))
