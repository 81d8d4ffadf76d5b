"""Build edgecnn C models for a Cortex-M4 and run them on QEMU's mps2-an386 board.

Used by tests/test_mcu_cortex_m4.py and tests/mcu/measure.py (the table in docs/mcu.md).
The program is the model(s) + deploy/mcu/{startup,semihost,harness}.c, linked with -nostdlib
(libgcc only: no libc) against deploy/mcu/mps2_an386.ld. Inputs and outputs go through
semihosting files; instructions per inference come from SysTick under `-icount shift=0`
(1 ns of virtual time per instruction), calibrated in every run against a loop of known length.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MCU = REPO / "deploy" / "mcu"
CC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
NM = "arm-none-eabi-nm"
QEMU = "qemu-system-arm"
TARGET = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"]
WARNINGS = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"]
SECTIONS = ["-ffunction-sections", "-fdata-sections"]


@dataclass
class ModelBuild:
    """One model in the program: its exported C (deploy.export.c.CExport) and the int8 records to run."""

    export: object
    inputs: np.ndarray  # (records, *input shape), int8


@dataclass
class McuResult:
    outputs: list  # per model: (records, output size) int8
    instructions: list  # per model: instructions of every inference
    stack: list  # per model: deepest stack use of an inference, bytes
    sizes: list  # per model: {"code", "const", "ram"} bytes of its object file
    undefined: list = field(default_factory=list)  # symbols the model objects need from outside (libgcc)
    instructions_per_tick: float = 0.0


def _run(cmd: list, cwd: Path, timeout: float = 300) -> str:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed (exit {p.returncode}):\n{p.stdout[-3000:]}\n"
                             f"{p.stderr[-3000:]}")  # fmt: skip
    return p.stdout + p.stderr  # QEMU writes the semihosting console to stderr


def object_sizes(obj: Path) -> dict:
    """Code (.text*), constants (.rodata*) and RAM (.bss*, .data*) of one object file, from `size -A`."""
    sizes = {"code": 0, "const": 0, "ram": 0}
    for line in _run([SIZE, "-A", obj.name], obj.parent).splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, n = parts[0], int(parts[1])
        if name.startswith(".text"):
            sizes["code"] += n
        elif name.startswith(".rodata"):
            sizes["const"] += n
        elif name.startswith((".bss", ".data")):
            sizes["ram"] += n
    return sizes


def build_and_run(models: list[ModelBuild], workdir: Path, opt: str = "-O2", extra_cflags=(),
                  timeout: float = 600) -> McuResult:  # fmt: skip
    """Compile, link and run the models in one program; every output and measurement."""
    workdir.mkdir(parents=True, exist_ok=True)
    cflags = TARGET + [opt] + WARNINGS + SECTIONS + list(extra_cflags)
    objects, model_objects, lines = [], [], []
    for k, m in enumerate(models):
        name = m.export.name
        (workdir / f"{name}.c").write_text(m.export.source)
        (workdir / f"{name}.h").write_text(m.export.header)
        _run([CC, *cflags, "-c", f"{name}.c", "-o", f"{name}.o"], workdir)
        model_objects.append(workdir / f"{name}.o")
        np.ascontiguousarray(m.inputs, dtype=np.int8).tofile(workdir / f"in{k}.bin")
        (workdir / f"out{k}.bin").unlink(missing_ok=True)
        upper = name.upper()
        lines.append((f'#include "{name}.h"',
                      f'    {{"in{k}.bin", "out{k}.bin", {name}_invoke, {upper}_INPUT_SIZE, {upper}_OUTPUT_SIZE, '
                      f'{name + "_input_buffer" if m.export.inputs[0].get("in_arena") else "0"}}},',
                      f"{upper}_INPUT_SIZE", f"{upper}_OUTPUT_SIZE"))  # fmt: skip
    max_in = max((m.export.inputs[0]["bytes"] for m in models))
    max_out = max((m.export.outputs[0]["bytes"] for m in models))
    (workdir / "harness_models.h").write_text(
        "\n".join(line[0] for line in lines)
        + f"\n#define EC_MAX_INPUT {max_in}\n#define EC_MAX_OUTPUT {max_out}\n"
        + "static const ec_model ec_models[] = {\n" + "\n".join(line[1] for line in lines) + "\n};\n")
    for src in ("startup.c", "semihost.c", "harness.c"):
        obj = workdir / src.replace(".c", ".o")
        _run([CC, *cflags, f"-I{MCU}", "-I.", "-c", MCU / src, "-o", obj.name], workdir)
        objects.append(obj)
    elf = workdir / "program.elf"
    _run([CC, *TARGET, "-nostdlib", "-T", MCU / "mps2_an386.ld", "-Wl,--gc-sections",
          *[o.name for o in model_objects + objects], "-lgcc", "-o", elf.name], workdir)  # fmt: skip
    undefined = sorted({line.split()[-1] for obj in model_objects
                        for line in _run([NM, "-u", obj], workdir).splitlines() if line.strip()})  # fmt: skip
    console = _run([QEMU, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                    "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", elf.name],
                   workdir, timeout)  # fmt: skip
    cal = re.search(r"calibration (\d+) ticks (\d+)", console)
    if not cal:
        raise AssertionError(f"no calibration line on the console:\n{console[-2000:]}")
    per_tick = int(cal.group(1)) / int(cal.group(2))
    instructions = [[] for _ in models]
    stack = [0 for _ in models]
    for m, _, ticks, used in re.findall(r"run (\d+) (\d+) ticks (\d+) stack (\d+)", console):
        instructions[int(m)].append(round(int(ticks) * per_tick))
        stack[int(m)] = max(stack[int(m)], int(used))
    outputs = []
    for k, m in enumerate(models):
        out = np.fromfile(workdir / f"out{k}.bin", dtype=np.int8)
        outputs.append(out.reshape(len(m.inputs), -1))
        if len(instructions[k]) != len(m.inputs):
            raise AssertionError(f"model {k}: {len(instructions[k])} of {len(m.inputs)} inferences ran:\n{console}")
    return McuResult(outputs, instructions, stack, [object_sizes(o) for o in model_objects], undefined, per_tick)
