"""The command line pins nothing on import: ``import reprodl.cli`` leaves the environment as it
was, and ``check`` hands the caller's environment to the checked command unchanged (fresh
interpreters: this pytest process is pinned already)."""

from __future__ import annotations

import sys
from pathlib import Path

from support import run_python

from reprodl import records

FAKE = [sys.executable, str(Path(__file__).parent / "check_scripts" / "fake_train.py")]

IMPORT_ONLY = """
import os, sys
before = dict(os.environ)
import reprodl.cli
from reprodl.cli import DEFAULTS, build_parser, main
build_parser().parse_args(["train", "--model", "mlp", "--steps", "5", "--lr", "0.1"])
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
loaded = sorted({"tensorflow", "keras", "numpy", "reprodl.runtime"} & set(sys.modules))
assert not loaded, loaded
print("ok")
"""


def test_importing_the_cli_and_parsing_pin_nothing():
    result = run_python("-c", IMPORT_ONLY, unset=("ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_replay_runs_as_a_module_of_its_own():
    """``bisect``'s child command can also be ``python -m reprodl.cli.replay`` (no warning)."""
    result = run_python("-m", "reprodl.cli.replay", "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: python -m reprodl replay [-h] --start START ")


def test_check_hands_the_callers_environment_to_the_command(tmp_path):
    """Set or unset by the caller, pinned values or not: the command sees them as they were."""
    keep = tmp_path / "runs"
    names = ("TF_NUM_INTRAOP_THREADS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")
    result = run_python(
        "-m", "reprodl", "check", "--keep", str(keep), "--output", "o.txt", "--",
        *FAKE, *(f"env={name}" for name in names), "--output", "o.txt",
        env={"TF_NUM_INTRAOP_THREADS": "7", "ONEDNN_MAX_CPU_ISA": "AVX2"},
        unset=("OPENBLAS_CORETYPE",),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("identical: 2 runs (2 plain), 12 steps, fingerprint ")
    for run in (1, 2):
        lines = (keep / f"run-{run}-o.txt").read_text().splitlines()
        assert lines[3:] == [
            "env TF_NUM_INTRAOP_THREADS=7",
            "env ONEDNN_MAX_CPU_ISA=AVX2",  # the pinned value, set by the caller: kept
            "env OPENBLAS_CORETYPE=None",  # unset by the caller, pinned on import: still unset
        ]
        assert records.load(keep / f"run-{run}.json").steps == 12
