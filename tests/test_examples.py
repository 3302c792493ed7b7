"""The standalone Keras recipe (``examples/train_keras.py``, no reprodl import) reproduces itself
in fresh processes that inherit none of reprodl's pins."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from support import ROOT

from reprodl import runtime

SCRIPT = ROOT / "examples" / "train_keras.py"


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
