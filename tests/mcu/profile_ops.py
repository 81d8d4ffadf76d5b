"""Instructions per op of one model on the emulated Cortex-M4 (the whole program, timer reads between ops).

    python tests/mcu/profile_ops.py CONFORMANCE_DIR MODEL [-O2|-Os] [extra cflags...]

The exported invoke body gets a read of APB timer 0 after each op (the op comments `/* op N: ... */`
mark where one ends); after the inference the differences go to the console, 40 instructions per tick
(qemu -icount shift=0, as tests/mcu/qemu_m4.py measures). The program is otherwise the one measure.py
builds, so inlining and layout are those of the real file, which cutting the body after each op would
change. Resolution: 40 instructions per op.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import qemu_m4  # noqa: E402
from measure import load  # noqa: E402

TIMER_DUMP = r"""
void ec_semihost_print(const char *text);
static uint32_t ec_profile_ticks[1024];
static void ec_profile_dump(int n)
{
    char text[16];
    int k, i;
    for (k = 1; k < n; ++k) {
        uint32_t v = (ec_profile_ticks[k - 1] - ec_profile_ticks[k]) * 40u;
        i = 15;
        text[i--] = 0;
        text[i--] = '\n';
        do {
            text[i--] = (char)('0' + v % 10u);
            v /= 10u;
        } while (v);
        ec_semihost_print(text + i + 1);
    }
}
"""


def profiled_source(source: str, name: str) -> tuple[str, list[str]]:
    """The C with a timer read after every op, and the ops' comment lines."""
    head = re.search(rf"^int {name}_invoke\(.*?\)\n\{{\n", source, re.M | re.S)
    body, tail = source[head.end():].split("    return 0;\n}\n", 1)
    chunks = re.split(r"(?=    /\* op \d+:)", body)
    timed = "".join(f"{chunk}    ec_profile_ticks[{k}] = *(volatile uint32_t *)0x40000004u;\n"
                    for k, chunk in enumerate(chunks))  # fmt: skip
    labels = [chunk.strip().split("\n")[0] for chunk in chunks[1:]]
    return (source[: head.start()] + TIMER_DUMP + source[head.start(): head.end()] + timed
            + f"    ec_profile_dump({len(chunks)});\n    return 0;\n}}\n" + tail), labels  # fmt: skip


def main(argv: list[str]) -> None:
    from edgecnn.deploy.export.c import export_c
    from tflite_models import random_input

    folder, name, opt, extra = Path(argv[0]), argv[1], (argv[2] if len(argv) > 2 else "-O2"), argv[3:]
    graph = load(name, folder)
    export = export_c(graph, name)
    source, labels = profiled_source(export.source, name)
    console = []
    run = qemu_m4._run

    def keep(cmd, cwd, timeout=300):
        out = run(cmd, cwd, timeout)
        console.append(out)
        return out

    qemu_m4._run = keep
    with tempfile.TemporaryDirectory() as tmp:
        result = qemu_m4.build_and_run([qemu_m4.ModelBuild(dataclasses.replace(export, source=source),
                                                           random_input(graph, 1, seed=3))],
                                       Path(tmp), opt, ["-Wno-unused-function", *extra])  # fmt: skip
    counts = [int(line) for line in next(c for c in console if "calibration" in c).splitlines() if line.isdigit()]
    for label, n in zip(labels, counts):
        print(f"{n / 1e6:8.3f} M  {label[:100]}")
    print(f"{sum(counts) / 1e6:8.3f} M  in the ops; {max(result.instructions[0]) / 1e6:.3f} M the whole inference")


if __name__ == "__main__":
    main(sys.argv[1:])
