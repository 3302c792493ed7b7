"""Run a deep-CNN training command that chapter 6 quotes and store its output with the machine.

Usage: python benchmarks/cnn_full_run.py [--variant full|no-dropout] [--out FILE]

``full`` is the two-epoch 99.2% run (``results/cnn_full_run.json``); ``no-dropout`` is one epoch
without dropout, the answer to the chapter's exercise 3 (``results/cnn_no_dropout.json``).
Chapter 6 quotes the stored records; tests/test_full_run.py re-runs each command and demands the
same stdout (accuracy and fingerprint), so a record cannot drift from what the code does.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import reprodl
from reprodl import runtime

#: The commands the book quotes (``python`` is this interpreter when run) and their records.
TRAIN = ["python", "-m", "reprodl", "train", "--model", "cnn", "--seed", "0"]
VARIANTS = {
    "full": (TRAIN + ["--epochs", "2"], "cnn_full_run.json"),
    "no-dropout": (TRAIN + ["--epochs", "1", "--dropout", "0"], "cnn_no_dropout.json"),
}
COMMAND = VARIANTS["full"][0]
RESULTS = Path(__file__).resolve().parents[1] / "src" / "reprodl" / "results"


def run(command: list[str] = COMMAND) -> tuple[str, float, float]:
    """Run ``command`` with this interpreter; return stdout, wall seconds, training seconds."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}):\n{result.stderr}")
    match = re.search(r"trained in ([\d.]+) s", result.stderr)
    return result.stdout, wall, float(match.group(1)) if match else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, default="full")
    parser.add_argument("--out", type=Path, help="default: results/<the variant's record>")
    args = parser.parse_args(argv)
    command, name = VARIANTS[args.variant]
    args.out = args.out or RESULTS / name
    stdout, wall, train_seconds = run(command)
    reprodl.setup(0)
    record = {
        "command": command,
        "stdout": stdout,
        "seconds": train_seconds,
        "wall_seconds": wall,
        "environment": runtime.environment_report(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(stdout, end="")
    print(f"training took {train_seconds:.1f} s (command {wall:.1f} s); record: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
