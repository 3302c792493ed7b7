"""Run-to-run variation of a short training on this machine's device, op determinism off and on.

Usage: python benchmarks/gpu_variation.py [--runs 5] [--steps 50] [--batch-size 50] [--model cnn]
                                          [--out FILE]

Trains the same seeded model ``--runs`` times with TensorFlow's op determinism off, then on, and
records for each setting the weight fingerprints, how many distinct ones there are and the largest
weight difference from the first run, with the device's provenance (GPU model, driver, CUDA and
cuDNN of the TensorFlow build, versions, date). On a GPU machine the record goes to
``src/reprodl/results/gpu_variation_<gpu>.json`` unless ``--out`` says otherwise; chapter 8 loads
every such file. On a CPU-only machine the record is written only where ``--out`` points.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import reprodl
from reprodl import gpu

RESULTS = Path(__file__).resolve().parents[1] / "src" / "reprodl" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--model", default="cnn", choices=["softmax", "mlp", "cnn"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON record (default on a GPU: results folder)")
    args = parser.parse_args(argv)

    reprodl.setup(args.seed)
    record = gpu.measure_variation(
        runs=args.runs,
        steps=args.steps,
        batch_size=args.batch_size,
        model=args.model,
        seed=args.seed,
    )
    record["environment"] = reprodl.environment_report()
    for line in gpu.record_lines(record):
        print(line)
    out = args.out
    if out is None and record["device"]["device"] == "GPU":
        slug = re.sub(r"[^a-z0-9]+", "_", str(record["device"]["name"]).lower()).strip("_")
        out = RESULTS / f"gpu_variation_{slug}.json"
    if out is None:
        print("no GPU: record not written (pass --out FILE to keep it)")
    else:
        print(f"record written to {gpu.write_record(record, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
