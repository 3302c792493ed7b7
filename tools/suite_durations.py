"""Measure the test suite: wall time, time per test file and per chapter, TensorFlow processes.

Runs pytest (the arguments after ``--``, default: the whole suite as ``make test`` runs it) with
a JUnit XML report and ``tools/suite_probe`` on ``PYTHONPATH``, whose ``sitecustomize`` logs
every Python process that imports TensorFlow with the test that started it. Writes one JSON
record (``make durations`` writes ``benchmarks/results/suite_durations.json``)::

    python tools/suite_durations.py --out benchmarks/results/suite_durations.json [-- ARGS]

``--from-junit X --tf-log L --wall S`` summarises a run made by hand instead of running one.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

from reprodl import cpu  # the project's one CPU reader (CPUID)

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tools" / "suite_probe"


def _item_file(classname: str, name: str) -> tuple[str, str]:
    """(file, item) of a JUnit test case: ``tests.test_x`` -> ``tests/test_x.py``; a notebook
    cell's class name is the notebook's path with dots (``chapters.01_x.ipynb``)."""
    if classname.endswith(".ipynb"):
        path = classname[: -len(".ipynb")].replace(".", "/", 1) + ".ipynb"
        return path, f"{path}::{name}"
    parts = classname.split(".")
    # tests.test_x or tests.test_x.TestClass: the module is the last part starting with test_
    cut = max(i for i, p in enumerate(parts) if p.startswith("test_") or i == 0)
    path = "/".join(parts[: cut + 1]) + ".py"
    return path, f"{path}::{'::'.join(parts[cut + 1 :] + [name])}"


def read_junit(path: Path) -> list[dict]:
    """Every test case of a JUnit XML report: file, item, seconds, outcome."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        file, item = _item_file(case.get("classname", ""), case.get("name", ""))
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
        cases.append(
            {"file": file, "item": item, "seconds": float(case.get("time", 0)), "outcome": outcome}
        )
    return cases


def read_tf_log(path: Path) -> collections.Counter:
    """TensorFlow processes per test file (``<collection>`` for the pytest processes)."""
    counts: collections.Counter = collections.Counter()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            _, _, test = line.partition("\t")
            counts[test.split("::")[0] if test else "<collection>"] += 1
    return counts


def summarise(cases: list[dict], tf: collections.Counter, wall: float, command: list[str]) -> dict:
    """The durations record."""
    by_file: dict[str, dict] = {}
    for case in cases:
        entry = by_file.setdefault(case["file"], {"file": case["file"], "tests": 0, "seconds": 0.0})
        entry["tests"] += 1
        entry["seconds"] += case["seconds"]
    for entry in by_file.values():
        entry["seconds"] = round(entry["seconds"], 1)
        entry["tf_processes"] = tf.get(entry["file"], 0)
    files = sorted(by_file.values(), key=lambda e: -e["seconds"])
    by_class: dict[str, dict] = {}  # units of work of their own under --dist loadscope
    for case in cases:
        scope = case["item"].rsplit("::", 1)[0]
        if scope != case["file"]:
            entry = by_class.setdefault(scope, {"scope": scope, "tests": 0, "seconds": 0.0})
            entry["tests"] += 1
            entry["seconds"] += case["seconds"]
    for entry in by_class.values():
        entry["seconds"] = round(entry["seconds"], 1)
    classes = sorted(by_class.values(), key=lambda e: -e["seconds"])
    outcomes = collections.Counter(c["outcome"] for c in cases)
    slowest = sorted(cases, key=lambda c: -c["seconds"])[:10]
    return {
        "what": (
            "pytest durations per test file, chapter and test class, and TensorFlow processes"
        ),
        "date": date.today().isoformat(),
        "cpu": cpu.describe().model_name,
        "cores": os.cpu_count(),
        "command": command,
        "wall_seconds": round(wall, 1),
        "sum_of_test_seconds": round(sum(c["seconds"] for c in cases), 1),
        "tests": len(cases),
        "outcomes": dict(sorted(outcomes.items())),
        "tf_processes": sum(tf.values()),
        "tf_processes_outside_tests": tf.get("<collection>", 0),
        "slowest": [{"item": c["item"], "seconds": round(c["seconds"], 1)} for c in slowest],
        "chapters": [e for e in files if e["file"].endswith(".ipynb")],
        "files": [e for e in files if not e["file"].endswith(".ipynb")],
        "classes": classes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON record to write")
    parser.add_argument("--from-junit", type=Path, help="summarise this JUnit XML, run nothing")
    parser.add_argument("--tf-log", type=Path, help="with --from-junit: the probe's log")
    parser.add_argument("--wall", type=float, help="with --from-junit: the run's wall seconds")
    parser.add_argument("--command", nargs="*", default=None, help="with --from-junit: its command")
    parser.add_argument("--keep", type=Path, help="keep the JUnit XML, probe log, timeline here")
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest's arguments")
    args = parser.parse_args(argv)
    if args.from_junit:
        if args.wall is None:
            parser.error("--from-junit needs --wall")
        cases = read_junit(args.from_junit)
        tf = read_tf_log(args.tf_log) if args.tf_log else collections.Counter()
        record = summarise(cases, tf, args.wall, args.command or [])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            junit, log = Path(tmp) / "junit.xml", Path(tmp) / "tf.log"
            timeline = Path(tmp) / "timeline.jsonl"  # per test: worker, start, end, CPU
            command = [sys.executable, "-m", "pytest", *args.pytest_args, f"--junitxml={junit}"]
            env = dict(os.environ, REPRODL_TF_PROCESS_LOG=str(log))
            env["REPRODL_TEST_TIMELINE"] = str(timeline)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROBE), env.get("PYTHONPATH")]))
            start = time.perf_counter()
            status = subprocess.run(command, cwd=ROOT, env=env).returncode
            wall = time.perf_counter() - start
            shown = ["python", "-m", "pytest", *args.pytest_args]
            record = summarise(read_junit(junit), read_tf_log(log), wall, shown)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for path in (junit, log, timeline):
                    if path.is_file():
                        shutil.copy2(path, args.keep / path.name)
        record["pytest_exit_status"] = status
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp_out.replace(args.out)
    print(f"{record['tests']} tests in {record['wall_seconds']} s; {args.out}")
    for entry in record["slowest"]:
        print(f"{entry['seconds']:8.1f} s  {entry['item']}")
    return 0 if args.from_junit else record["pytest_exit_status"]


if __name__ == "__main__":
    sys.exit(main())
