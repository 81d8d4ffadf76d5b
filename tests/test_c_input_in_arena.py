"""`edgecnn export --input-in-arena`: the model owns its input buffer inside its RAM.

The C program fills NAME_input_buffer() and passes it to NAME_invoke (no copy), or passes its own
buffer (copied in); both give the runtime's bytes. The JSON and the header say so, and the RAM
reported includes the input while the caller's buffers do not.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from edgecnn.deploy.runtime import Runtime
from edgecnn.deploy.tflite.writer import write_tflite
from test_export_c_in_place import CFLAGS
from tflite_models import lenet5, random_input

MAIN = r"""#include <stdio.h>
#include <string.h>
#include "net.h"
int main(void)
{
    static int8_t own[NET_INPUT_SIZE], out_a[NET_OUTPUT_SIZE], out_b[NET_OUTPUT_SIZE];
    while (fread(own, 1, sizeof own, stdin) == sizeof own) {
        memcpy(net_input_buffer(), own, sizeof own);
        if (net_invoke(net_input_buffer(), out_a) != 0) return 1; /* in place: no copy */
        if (net_invoke(own, out_b) != 0) return 1;                /* the caller's buffer: copied in */
        fwrite(out_a, 1, sizeof out_a, stdout);
        fwrite(out_b, 1, sizeof out_b, stdout);
    }
    return 0;
}
"""


def test_cli_input_in_arena_equals_runtime(tmp_path):
    graph = lenet5(seed=4)
    model = tmp_path / "lenet.tflite"
    write_tflite(graph, model)
    p = subprocess.run([sys.executable, "-m", "edgecnn", "export", str(model), "--out", str(tmp_path / "net.c"),
                        "--prefix", "net", "--input-in-arena", "--json"], capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)
    assert record["input_in_arena"] and record["inputs"][0]["in_arena"]
    assert record["io_bytes"] == 10  # only the output buffer is the caller's
    assert record["ram_bytes"] >= 1024  # the input's bytes are in the model's RAM
    assert "int8_t *net_input_buffer(void);" in (tmp_path / "net.h").read_text()
    (tmp_path / "main.c").write_text(MAIN)
    subprocess.run(["gcc", *CFLAGS, "main.c", "net.c", "-o", "main"], cwd=tmp_path, check=True)
    x = random_input(graph, 8, seed=5)
    x[0] = -128
    got = subprocess.run([str(tmp_path / "main")], input=x.tobytes(), capture_output=True, check=True).stdout
    want = np.asarray(Runtime(graph).run(x)).reshape(len(x), -1)
    got = np.frombuffer(got, dtype=np.int8).reshape(len(x), 2, -1)
    np.testing.assert_array_equal(got[:, 0], want)
    np.testing.assert_array_equal(got[:, 1], want)
    onnx = subprocess.run([sys.executable, "-m", "edgecnn", "export", str(model), "--out", str(tmp_path / "m.onnx"),
                           "--input-in-arena"], capture_output=True, text=True)  # fmt: skip
    assert onnx.returncode != 0 and "C files only" in onnx.stderr and "Traceback" not in onnx.stderr
