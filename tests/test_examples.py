"""The standalone Keras recipe (``examples/train_keras.py``, no reprodl import) reproduces itself
in fresh processes that inherit none of reprodl's pins; chapter 1's script
(``examples/first_runs.py``) seeds and pins nothing, and its functions repeat once seeded."""

from __future__ import annotations

import ast
import json
import os
import re
import runpy
import subprocess
import sys

import pytest
from support import ROOT

from reprodl import fresh_process, runtime

SCRIPT = ROOT / "examples" / "train_keras.py"
FIRST_RUNS = ROOT / "src" / "reprodl" / "examples" / "first_runs.py"


def _run(mnist_dir, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in runtime.PINNED_ENV}
    env["PYTHONHASHSEED"] = "0"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(mnist_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_the_recipe_gives_the_same_bits_in_two_fresh_processes(mnist_dir, tmp_path):
    out = tmp_path / "run.txt"
    first = _run(mnist_dir, "--output", str(out))
    second = _run(mnist_dir)
    assert first == second
    assert re.fullmatch(r"loss \S+, test accuracy 0\.9\d+, fingerprint [0-9a-f]{64}\n", first)
    assert out.read_text() == first


def test_the_first_runs_script_seeds_and_pins_nothing():
    """Chapter 1 calls its runs unseeded: no seed call, no environment variable, no reprodl."""
    tree = ast.parse(FIRST_RUNS.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.update(node.name.split("."))
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
    assert not [n for n in names if "seed" in n.lower()]  # set_random_seed, seed=, np.random.seed
    assert not names & {"reprodl", "os", "environ", "enable_op_determinism", "threading"}
    assert (ROOT / "examples" / "first_runs.py").resolve() == FIRST_RUNS.resolve()


def test_the_first_runs_functions_repeat_once_seeded():
    import keras

    namespace = runpy.run_path(str(FIRST_RUNS))  # the functions, without running main()
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        results.append(namespace["train_sequence_model"](length=30, epochs=1, batch_size=16))
    assert results[0] == results[1]
    assert re.fullmatch(r"[0-9a-f]{64}", results[0]["fingerprint"])


@pytest.mark.slow
def test_the_first_runs_script_differs_in_fresh_unpinned_processes(mnist_dir):
    runs = fresh_process.run_many(
        FIRST_RUNS.read_text(encoding="utf-8"),
        2,
        args=["--data", str(mnist_dir)],
        unset=fresh_process.PINNED_VARIABLES,
    )
    lines = [[json.loads(line) for line in run.lines] for run in runs]
    assert [[r["model"] for r in run] for run in lines] == [["sequence", "mnist"]] * 2
    for first, second in zip(*lines, strict=True):
        assert first["fingerprint"] != second["fingerprint"]
    assert 0.8 < lines[0][1]["accuracy"] < 1
