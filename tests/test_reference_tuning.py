"""tune_for_training: both settings take effect, in a fresh process, and change no result."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, os
import numpy as np
from edgecnn import tuning
from edgecnn.reference.conv import conv2d_forward
before = tuning.openmp_already_loaded()
applied = tuning.tune_for_training()
x = np.arange(2 * 6 * 6, dtype=np.float64).reshape(2, 6, 6, 1)
y, _ = conv2d_forward(x, np.ones((1, 3, 3, 1)), None)
print(json.dumps({"before": before, "applied": applied, "after": tuning.openmp_already_loaded(),
                  "again": tuning.passive_openmp_wait(), "y00": float(y[0, 0, 0, 0])}))
"""


def run(env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_settings_apply_before_openmp_loads():
    r = run({"NUMBA_THREADING_LAYER": "omp"})
    assert r["before"] is False
    assert r["applied"] == {"malloc_keeps_freed_memory": True, "omp_wait_policy": "PASSIVE"}
    assert r["after"] is True          # the conv kernel loaded libgomp...
    assert r["again"] is None          # ...so the policy can no longer change, and we say so
    assert r["y00"] == 0 + 1 + 2 + 6 + 7 + 8 + 12 + 13 + 14


def test_user_choice_is_kept():
    r = run({"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "ACTIVE"})
    assert r["applied"]["omp_wait_policy"] == "ACTIVE"
