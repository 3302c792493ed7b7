"""Record TensorFlow against JAX on the same initial weights and batches (chapter 13).

    python tools/backend_comparison.py [--out src/reprodl/results/backend_comparison.json]

Runs :func:`reprodl.book.backend_compare.compare` on the book's four models (one epoch each, the
CNN with and without dropout) in two fresh interpreters, one per backend, and writes the record
atomically (keys sorted). Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

from reprodl import _io
from reprodl.book import backend_compare
from reprodl.env import cpu

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "reprodl" / "results" / "backend_comparison.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    record = backend_compare.compare()
    record["date"] = datetime.date.today().isoformat()
    record["cpu"] = cpu.describe().model_name
    record["seconds"] = round(time.perf_counter() - start, 1)
    _io.write_json(args.out, record, sort_keys=True)
    for m in record["models"]:
        tf, jx = m["training"]["tensorflow"], m["training"]["jax"]
        print(
            f"{m['name']:<15} first parting {m['first_parting']}; after {m['steps']} steps: "
            f"test {tf['test_correct']} / {jx['test_correct']} correct, "
            f"weights {m['weights']['relative_l2']:.2e} apart"
        )
    print(f"record: {args.out}")


if __name__ == "__main__":
    main()
