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
