"""Run the deep CNN's full training command and store its output with the machine it ran on.

Usage: python benchmarks/cnn_full_run.py [--out benchmarks/results/cnn_full_run.json]

Chapter 6 quotes the stored record; tests/test_full_run.py re-runs the same command and demands
the same stdout (accuracy and fingerprint), so the record cannot drift from what the code does.
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

#: The command the book quotes (``python`` is this interpreter when run).
COMMAND = ["python", "-m", "reprodl", "train", "--model", "cnn", "--seed", "0", "--epochs", "2"]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cnn_full_run.json"


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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    stdout, wall, train_seconds = run()
    reprodl.setup(0)
    record = {
        "command": COMMAND,
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
