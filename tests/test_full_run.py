"""The deep CNN's full run, quoted in chapter 6, reproduces to the last bit (about 3-4 minutes)."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, run_python

RECORD = ROOT / "benchmarks" / "results" / "cnn_full_run.json"


@pytest.mark.slow
def test_full_cnn_run_reproduces_the_stored_record():
    record = json.loads(RECORD.read_text())
    assert record["command"][0] == "python"
    result = run_python(*record["command"][1:], timeout=1800)
    assert result.returncode == 0, result.stderr
    assert result.stdout == record["stdout"]
    accuracy = float(result.stdout.split("test accuracy ")[1].split("%")[0])
    assert accuracy >= 99.2
