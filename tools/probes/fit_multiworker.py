#!/usr/bin/env python3
"""Does Keras ``fit`` train under ``MultiWorkerMirroredStrategy``? Two local workers try it.

Starts two workers of ``python -m reprodl.distributed worker --trainer fit`` (each builds and
compiles the book's MLP inside ``strategy.scope()`` and calls ``fit`` on a batched ``tf.data``
pipeline of the seeded global batches, ``AutoShardPolicy.DATA``, ``steps_per_epoch``), then the
same run with the package's custom loop (``--trainer loop``), and prints one line for each:

    .venv/bin/python tools/probes/fit_multiworker.py [STEPS]

What it showed (December 2026; TensorFlow 2.21.0, Keras 3.15.1, 2-core Zen 4, the package's
pins, synthetic digits): ``fit`` fails at its first step, ``ValueError: Attempt to convert a value
(PerReplica:{...}) with an unsupported type (<class
'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.``, while the custom loop's two
workers agree with each other (and, ``tests/test_distributed.py``, with 2 replicas of
``MirroredStrategy`` in one process). The cause
(from the traceback and the sources): before the first step Keras' ``_maybe_symbolic_build``
(``keras/src/backend/tensorflow/trainer.py``) calls ``strategy.reduce("MEAN", batch)`` on the whole
``(x, y)`` tuple of the first distributed batch; ``CollectiveAllReduceExtended._reduce_to``
unwraps a single ``PerReplica`` but not a tuple of them, and with 2 workers hands the tuple to
``convert_to_tensor``. The same ``fit`` under ``MirroredStrategy`` over 2 logical CPUs works (one
worker: the reduce is local). Chapter 12 shows the failure; ``tests/test_distributed.py``
notices when a Keras release fixes it. Rerun this after upgrading TensorFlow or Keras.

Why the ``fit`` worker itself ships with the package, as a chapter aid
(``reprodl.book.fit_multiworker``): chapter 12 runs it live
(``distributed.run_workers(..., trainer="fit")``) from the installed package, which does not
ship ``tools/``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from support import synthetic_digits  # noqa: E402  (tests/support.py: no MNIST needed)

from reprodl import distributed  # noqa: E402
from reprodl.errors import SubprocessError  # noqa: E402


def attempt(trainer: str, steps: int, folder: Path, data: Path) -> str:
    """One line: what two workers with ``trainer`` did."""
    try:
        results = distributed.run_workers(
            2, folder / trainer, steps=steps, data=data, trainer=trainer, timeout=300
        )
    except SubprocessError as exc:
        # the worker's ValueError prints the whole batch: the end of its message is enough
        return f"{trainer}: failed: ...{str(exc).splitlines()[-1]}"
    prints = sorted({r["fingerprint"][:16] for r in results})
    return f"{trainer}: ran {steps} steps; the workers' fingerprints {prints}"


def main(argv: list[str]) -> int:
    steps = int(argv[0]) if argv else 20
    with tempfile.TemporaryDirectory(prefix="fit-multiworker-") as tmp:
        folder = Path(tmp)
        split = synthetic_digits(4000)
        data = folder / "digits.npz"
        np.savez(data, images=split.images, labels=split.labels)
        for trainer in ("fit", "loop"):
            print(attempt(trainer, steps, folder, data), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
