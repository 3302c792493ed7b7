"""Benchmark: what a fresh process pays before its first training step, two costs the suite pays
in each of its ~150 processes: tracing the package's step with autograph or without it (the
package uses ``autograph=False``), and loading MNIST from its ``.gz`` files or from uncompressed
copies (the test suite's ``.pytest_cache/mnist``).

Usage: python benchmarks/startup_cost.py [--repeats 5] [--out FILE]

Tracing: each repeat starts two fresh processes, one per variant, alternating which goes first;
each runs the crosscheck battery's smallest CNN run (``cnn-small``: 2 steps of batch 8, the lanes'
probes included), with ``tf.function``'s default autograph restored for the "autograph" variant,
and prints the seconds of the run and its fingerprint (which must agree: the same graph).
Loading: both ways alternate in this process, the loader's in-memory cache cleared each time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import reprodl

reprodl.setup(0)

from reprodl import _io, cpu, data  # noqa: E402

CHILD = r"""
import json, sys, time
import reprodl
reprodl.setup(0)
import tensorflow as tf
if sys.argv[1] == "autograph":  # the package asks for autograph=False: drop that request
    original = tf.function
    def with_autograph(*args, **kwargs):
        kwargs.pop("autograph", None)
        return original(*args, **kwargs)
    tf.function = with_autograph
import keras
from reprodl import crosscheck, data, training
mnist = data.load_mnist()
train = data.Split(mnist.train.images[:10000], mnist.train.labels[:10000])
case = crosscheck.CNN_SMALL
keras.utils.set_random_seed(0)
start = time.perf_counter()
model, record = training.run(
    training.RunSpec(case.model, steps=case.steps, intra_op_threads=1, batch_size=case.batch_size),
    train,
)
print(json.dumps({"seconds": time.perf_counter() - start, "fingerprint": record.final_digest}))
"""

VARIANTS = ("autograph", "no-autograph")


def trace_once(variant: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, variant], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def uncompressed_copy(source: Path, folder: Path) -> Path:
    for name in data.FILES:
        (folder / name).write_bytes(gzip.decompress((source / f"{name}.gz").read_bytes()))
    return folder


def load_once(folder: Path) -> float:
    data._LOADED.clear()
    start = time.perf_counter()
    data.load_mnist(folder)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    source = Path(os.environ[data.DATA_ENV])
    trace: dict[str, list[float]] = {v: [] for v in VARIANTS}
    fingerprints = set()
    for r in range(args.repeats):
        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            result = trace_once(variant)
            trace[variant].append(round(result["seconds"], 3))
            fingerprints.add(result["fingerprint"])
            print(f"repeat {r + 1} {variant}: {result['seconds']:.2f} s", flush=True)
    load: dict[str, list[float]] = {"gz": [], "uncompressed": []}
    with tempfile.TemporaryDirectory() as tmp:
        raw = uncompressed_copy(source, Path(tmp))
        for r in range(args.repeats):
            for name, folder in (("gz", source), ("uncompressed", raw))[:: 1 if r % 2 else -1]:
                load[name].append(round(load_once(folder), 3))
    record = {
        "what": "a fresh process's tracing of the smallest CNN run, and MNIST's load",
        "machine": cpu.machine(),
        "repeats": args.repeats,
        "trace_seconds": trace,
        "trace_median": {v: round(statistics.median(s), 3) for v, s in trace.items()},
        "fingerprints": sorted(fingerprints),
        "load_seconds": load,
        "load_median": {v: round(statistics.median(s), 3) for v, s in load.items()},
    }
    print(json.dumps({k: record[k] for k in ("trace_median", "fingerprints", "load_median")}))
    if len(fingerprints) != 1:
        print("the variants' fingerprints differ", file=sys.stderr)
        return 1
    if args.out:
        print(f"record: {_io.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
