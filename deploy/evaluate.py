"""Running a backend over a labelled image set in chunks: what `edgecnn eval`, `demo` and the regression API share."""

from __future__ import annotations

import sys
import time

EVAL_CHUNK = 1000  # images per call: bounded memory, and a progress bar that moves


def run_in_chunks(backend, images, label: str, show: bool | None = None, chunk: int = EVAL_CHUNK,
                  every_output: bool = False):
    """(outputs (N, K), seconds of run time) over `images` in chunks, with a progress bar on stderr.

    With `every_output`, a list of (N, K_j) arrays, one per model output, in the model's order.
    The first image is run once before timing: JIT compilation and allocation are not timed.
    `show`: None lets tqdm decide (shown on a terminal), False hides the bar.
    """
    import numpy as np

    from edgecnn.progress import progress_bar

    run = backend.run_all if hasattr(backend, "run_all") else (lambda x: [backend.run(x)])
    run(backend.prepare(images[:1]))
    outputs, seconds = [], 0.0
    with progress_bar(len(images), label, show, unit="img", file=sys.stderr, leave=False) as bar:
        for start in range(0, len(images), chunk):
            x = backend.prepare(images[start:start + chunk])
            t0 = time.perf_counter()
            ys = run(x)
            seconds += time.perf_counter() - t0
            n = len(x[0] if isinstance(x, list) else x)
            outputs.append([np.asarray(y).reshape(n, -1) for y in ys])
            bar.update(n)
    every = [np.concatenate([chunk_out[j] for chunk_out in outputs]) for j in range(len(outputs[0]))]
    return (every if every_output else every[0]), seconds
