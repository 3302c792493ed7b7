"""What the alternating benchmarks share: their options, one measurement in a fresh process, the
variants measured in turn (so that a busy machine hurts all of them alike), and the medians."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def add_options(parser: argparse.ArgumentParser, *, steps: int, warmup: int) -> None:
    """``--steps``, ``--warmup``, ``--repeats``, ``--data`` and ``--out``."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=os.environ.get("REPRODL_DATA", ""))
    parser.add_argument("--out", type=Path, help="JSON record (default: print only)")


def measure(child: str, variant: str, args: Sequence[str], env: Mapping[str, str]) -> dict:
    """Run ``child`` (a program's text) with ``variant`` and ``args`` in a fresh interpreter;
    the last JSON line it prints."""
    proc = subprocess.run(
        [sys.executable, "-c", child, variant, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{variant} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def alternate(
    variants: Sequence[str],
    repeats: int,
    measure_one: Callable[[str], dict],
    describe: Callable[[int, dict], str],
) -> list[dict]:
    """Every variant once per repeat, in turn; each result with its ``repeat``, printed."""
    runs = []
    for repeat in range(repeats):
        for variant in variants:
            result = {**measure_one(variant), "repeat": repeat}
            runs.append(result)
            print(describe(repeat, result), flush=True)
    return runs


def medians(runs: Sequence[dict], variants: Sequence[str]) -> dict[str, float]:
    """The median steps per second of each variant."""
    return {
        v: statistics.median(r["steps_per_second"] for r in runs if r["variant"] == v)
        for v in variants
    }


def run(
    child: str,
    variants: Sequence[str],
    args: argparse.Namespace,
    env_of: Callable[[str], Mapping[str, str]],
    describe: Callable[[int, dict], str],
) -> tuple[list[dict], dict[str, float]]:
    """Measure ``variants`` in turn, ``args.repeats`` times, each in a fresh interpreter running
    ``child`` with the steps, warm-up and data of ``args``: the runs and their medians."""
    options = [str(args.steps), str(args.warmup), args.data]
    runs = alternate(
        variants, args.repeats, lambda v: measure(child, v, options, env_of(v)), describe
    )
    return runs, medians(runs, variants)
