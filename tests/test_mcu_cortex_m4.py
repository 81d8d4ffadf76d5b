"""C export on an emulated Cortex-M4 (QEMU mps2-an386): every output byte equals the runtime.

Built with Debian's arm-none-eabi-gcc (-mcpu=cortex-m4 -mthumb, -O2 and -Os, -std=c99 -pedantic -Wall
-Wextra -Werror), linked with -nostdlib against the project's startup file and linker script
(deploy/mcu/), so "no libc" is checked by the linker. `.ci/run` installs gcc-arm-none-eabi and
qemu-system-arm; a missing tool fails these tests, it does not skip them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).with_name("mcu")))

from qemu_m4 import ModelBuild, build_and_run  # noqa: E402

from edgecnn.deploy.export.c import export_c  # noqa: E402
from edgecnn.deploy.runtime import Runtime  # noqa: E402
from tflite_models import lenet5, random_input  # noqa: E402
from test_conformance import model_dir  # noqa: E402,F401 (the converter's models, made once per session)

LIBGCC_FLOAT = ("__aeabi_d", "__aeabi_f", "__aeabi_i2d", "__aeabi_l2d", "__aeabi_ui2d", "__aeabi_ul2d")


def setup_module(module):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi "
                        "qemu-system-arm (.ci/run does)")  # fmt: skip


def expected(graph, x: np.ndarray) -> np.ndarray:
    return np.asarray(Runtime(graph).run(x)).reshape(len(x), -1)


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("integer_only", [False, True])
def test_lenet5_on_cortex_m4_equals_runtime(opt, integer_only, tmp_path):
    graph = lenet5(seed=3)
    x = random_input(graph, 3, seed=4)
    result = build_and_run([ModelBuild(export_c(graph, "lenet", integer_only=integer_only), x)], tmp_path, opt)
    np.testing.assert_array_equal(result.outputs[0], expected(graph, x))
    assert abs(result.instructions_per_tick - 40) < 0.01  # 25 MHz SysTick, 1 ns per instruction
    assert all(n > 400_000 for n in result.instructions[0])  # 0.42 M MACs: at least one instruction each
    # Nothing from libc; integer-only needs no floating-point helpers either.
    assert not [s for s in result.undefined if not s.startswith("__aeabi_")], result.undefined
    if integer_only:
        assert not [s for s in result.undefined if s.startswith(LIBGCC_FLOAT)], result.undefined


def test_two_models_with_their_own_prefixes_link_into_one_program(tmp_path):
    a, b = lenet5(seed=5), lenet5(seed=6)
    xa, xb = random_input(a, 2, seed=7), random_input(b, 2, seed=8)
    result = build_and_run([ModelBuild(export_c(a, "digits_a"), xa),
                            ModelBuild(export_c(b, "digits_b", integer_only=True), xb)], tmp_path)  # fmt: skip
    np.testing.assert_array_equal(result.outputs[0], expected(a, xa))
    np.testing.assert_array_equal(result.outputs[1], expected(b, xb))
    assert not np.array_equal(result.outputs[0], result.outputs[1])


# ---------------------------------------------------------------- MLPerf Tiny topologies (TF converter files)

# RAM targets of issue 10, including the input and output buffers; met ones are asserted (MobileNetV1 with
# the input in the model's arena, as X-CUBE-AI's activation pool holds it; the others with the caller's).
RAM_TARGETS = {"ds_cnn": 9728, "fc_autoencoder": 1536, "resnet8": 36864, "mobilenet_v1_025": 47104}
RAM_MET = {"ds_cnn", "fc_autoencoder", "resnet8"}
RAM_MET_INPUT_IN_ARENA = set(RAM_TARGETS)
# Each model once in the default file with the DSP path at -O2, once integer-only, portable, at -Os, once
# with its input in the arena (-O2, DSP).
BUILDS = [("-O2", False, [], False), ("-Os", True, ["-DEDGECNN_NO_DSP"], False), ("-O2", False, [], True)]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RAM_TARGETS))
def test_mlperf_tiny_models_on_cortex_m4_equal_runtime(name, model_dir, tmp_path, record_property):
    from edgecnn.deploy.tflite import read_tflite

    graph = read_tflite((model_dir / f"{name}.tflite").read_bytes())
    x = random_input(graph, 2, seed=11)
    x[0] = 127
    want = expected(graph, x)
    for opt, integer_only, flags, input_in_arena in BUILDS:
        export = export_c(graph, name, integer_only=integer_only, input_in_arena=input_in_arena)
        result = build_and_run([ModelBuild(export, x)], tmp_path / f"{opt}{integer_only}{input_in_arena}", opt, flags)
        np.testing.assert_array_equal(result.outputs[0], want)
        assert result.sizes[0]["ram"] == export.ram_bytes  # the C reserves exactly what the exporter reports
        assert not [s for s in result.undefined if not s.startswith("__aeabi_")], result.undefined
        record_property(f"{opt}{' integer-only' if integer_only else ''}{' input-in-arena' if input_in_arena else ''}"
                        " instructions", max(result.instructions[0]))  # fmt: skip
        record_property(f"ram_with_io{' input-in-arena' if input_in_arena else ''}", export.ram_bytes + export.io_bytes)
        if name in (RAM_MET_INPUT_IN_ARENA if input_in_arena else RAM_MET):
            assert export.ram_bytes + export.io_bytes <= RAM_TARGETS[name]
