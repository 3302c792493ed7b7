"""Benchmark: what recording costs. Deep-CNN training steps per second (Keras ``fit``, batch 100,
Adam 1e-3) with

- ``none``: no callback;
- ``every-1``: :class:`reprodl.keras.RecordRun` digesting the whole state after every step;
- ``default``: ``RecordRun`` with its default ``every`` (:data:`reprodl.keras.DEFAULT_EVERY`).

Usage: python benchmarks/recorder_overhead.py [--steps 300] [--warmup 20] [--repeats 3] [--out F]

All in one process (the variants share its pinned settings, ``reprodl.setup``), alternating
(none, every-1, default, none, ...) so that a busy machine hurts all of them alike; each
measurement builds a fresh model and times ``--steps`` steps after ``--warmup`` untimed ones
(tracing, first allocations), the recorder's own work after each step included. Prints one line
per measurement, the medians, the overheads and the time one digest of the whole state adds to a
step (every-1 against none); writes a JSON record with the machine (default: print only).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("none", "every-1", "default")


def measure(variant: str, steps: int, warmup: int, x, y, folder: Path) -> dict:
    """Train a fresh deep CNN for ``warmup + steps`` steps under ``variant``; its steps/s."""
    import keras
    import numpy as np

    from reprodl import models
    from reprodl.keras import DEFAULT_EVERY, RecordRun

    model = models.build("cnn", 0)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    every = {"none": None, "every-1": 1, "default": DEFAULT_EVERY}[variant]
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    callbacks: list = [Clock()]
    recorder = None
    if every is not None:
        recorder = RecordRun(folder / f"{variant}.json", every=every)
        callbacks.insert(0, recorder)  # called back first: its work is inside the timed step
    start = time.perf_counter()
    model.fit(x, y, batch_size=100, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
    total = time.perf_counter() - start
    result = {
        "variant": variant,
        "every": every,
        "steps_per_second": steps / (times[-1] - times[warmup - 1]),
        "fit_seconds": total,
        # after the last step: the record written at the end, and whatever fit does last (without
        # a recorder, fit took 18 to 19 s more here: its end-of-fit stall, see DESIGN.md)
        "after_last_step_seconds": total - (times[-1] - start),
    }
    if recorder is not None:
        result["digests"] = len(recorder.record.digests)
        result["state_bytes"] = sum(
            int(np.prod(v["shape"], dtype=np.int64)) * np.dtype(v["dtype"]).itemsize
            for v in recorder.record.variables
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=os.environ.get("REPRODL_DATA", ""))
    parser.add_argument("--out", type=Path, help="JSON record (default: print only)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.repeats < 1:
        parser.error("--steps, --warmup and --repeats must be at least 1")

    import reprodl

    reprodl.setup(0)
    from reprodl import _io, cpu, data, runtime
    from reprodl.keras import DEFAULT_EVERY

    mnist = data.load_mnist(args.data or None)
    n = 100 * (args.steps + args.warmup)
    if n > len(mnist.train):
        parser.error(f"--steps + --warmup: at most {len(mnist.train) // 100} steps in one epoch")
    x, y = data.to_float(mnist.train.images[:n]), mnist.train.labels[:n]

    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="reprodl-recorder-") as tmp:
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                result = measure(variant, args.steps, args.warmup, x, y, Path(tmp))
                result["repeat"] = repeat
                runs.append(result)
                print(f"repeat {repeat} {variant:<8} {result['steps_per_second']:6.2f} steps/s",
                      flush=True)  # fmt: skip
    median = {
        v: statistics.median(r["steps_per_second"] for r in runs if r["variant"] == v)
        for v in VARIANTS
    }
    # Overhead: how much longer a step takes than without the callback, in percent.
    overhead = {v: 100 * (median["none"] / median[v] - 1) for v in VARIANTS if v != "none"}
    digest_seconds = 1 / median["every-1"] - 1 / median["none"]  # what a digest adds to a step
    for variant in VARIANTS:
        print(f"median {variant:<8} {median[variant]:6.2f} steps/s")
    for variant, value in overhead.items():
        print(f"{variant} / none: {median[variant] / median['none']:.3f}x "
              f"(overhead {value:+.1f}% per step)")  # fmt: skip
    print(f"a digest of the whole state adds {1000 * digest_seconds:.1f} ms to a step")
    if args.out:
        record = {
            "benchmark": "recorder_overhead",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "model": "cnn",
            "batch_size": 100,
            "optimizer": "adam 1e-3",
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "default_every": DEFAULT_EVERY,
            "state_bytes": next(r["state_bytes"] for r in runs if "state_bytes" in r),
            "machine": cpu.machine(),
            "versions": runtime.versions(),
            "settings": runtime.pinned_settings(),
            "runs": runs,
            "median_steps_per_second": median,
            "digest_seconds": digest_seconds,
            "overhead_percent": overhead,
        }
        print(f"record: {_io.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
