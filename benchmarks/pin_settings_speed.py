"""Benchmark: training speed under each setting of the pins the cross-CPU check compares.

Usage: python benchmarks/pin_settings_speed.py [--steps 60] [--repeats 2] [--out FILE]

For every setting (``TF_ENABLE_ONEDNN_OPTS`` 0/1 x oneDNN ISA cap AVX2/AVX x 1/2 intra-op threads;
2 inter-op threads throughout, as pinned) a fresh process trains the deep CNN (batch 100) and the
MLP with the book's own loop and reports steps per second (the first, tracing step excluded).
Settings alternate within each repeat, so a busy machine slows all alike. Whether a setting is
exact across CPUs is what ``python -m reprodl crosscheck`` records; this script only times them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, sys
import reprodl.runtime as rt
opts, isa, threads, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rt.repin(onednn_opts=opts, onednn_isa=isa, intra_op_threads=threads)
rt.setup(0)
from reprodl import data, training
mnist = data.load_mnist()
split = data.Split(mnist.train.images[:20000], mnist.train.labels[:20000])
out = {}
for model, n in (("cnn", steps), ("mlp", 5 * steps)):
    spec = training.RunSpec(model, steps=n, intra_op_threads=threads)
    _, record = training.run(spec, split)
    out[model] = record.steps_per_second
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from reprodl import _io, cpu, crosscheck
    from reprodl.env import report

    settings = [crosscheck.PINNED, *crosscheck.ALTERNATIVES]
    runs = []
    for repeat in range(args.repeats):
        for s in settings:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    s.onednn_opts,
                    s.isa,
                    str(s.threads),
                    str(args.steps),
                ],
                capture_output=True,
                text=True,
                timeout=1800,
                env=os.environ,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{s.name} failed:\n{proc.stderr[-2000:]}")
            rates = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append({"setting": s.name, "repeat": repeat, **rates})
            line = f"cnn {rates['cnn']:6.2f}  mlp {rates['mlp']:7.1f} steps/s"
            print(f"repeat {repeat} {s.name:<15} {line}", flush=True)
    median = {
        s.name: {
            m: statistics.median(r[m] for r in runs if r["setting"] == s.name)
            for m in ("cnn", "mlp")
        }
        for s in settings
    }
    for name, rates in median.items():
        print(f"median {name:<15} cnn {rates['cnn']:6.2f}  mlp {rates['mlp']:7.1f} steps/s")
    if args.out:
        record = {
            "benchmark": "pin_settings_speed",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "pinned": crosscheck.PINNED.name,
            "inter_op_threads": 2,
            "steps": {"cnn": args.steps, "mlp": 5 * args.steps},
            "batch_size": 100,
            "machine": cpu.machine(),
            "versions": report.installed_versions(),
            "runs": runs,
            "median_steps_per_second": median,
        }
        print(f"record: {_io.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
