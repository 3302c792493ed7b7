"""The deep CNN runs that chapters 6 and 10 quote from stored records reproduce to the last bit.

The full run takes about 3-4 minutes, one run of the decomposition about 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import ROOT, run_python

from reprodl import decomposition, runtime

RECORD = ROOT / "src" / "reprodl" / "results" / "cnn_full_run.json"
NO_DROPOUT = ROOT / "src" / "reprodl" / "results" / "cnn_no_dropout.json"
DECOMPOSITION = ROOT / "src" / "reprodl" / "results" / "cnn_decomposition.json"


class _StoredCnnRun:
    """A stored CNN run reproduces: its command again, the same stdout to the last digit. One
    class per run: under ``make test`` (``--dist loadscope``) each is a unit of work of its own,
    so the two pytest workers can run them side by side."""

    path: Path
    least: float  # the test accuracy (%) the run must reach

    @pytest.mark.slow
    def test_reproduces_its_stored_record(self):
        record = json.loads(self.path.read_text())
        assert record["command"][0] == "python"
        result = run_python(*record["command"][1:], timeout=1800)
        assert result.returncode == 0, result.stderr
        assert result.stdout == record["stdout"]
        accuracy = float(result.stdout.split("test accuracy ")[1].split("%")[0])
        assert accuracy >= self.least


class TestCnnFullRun(_StoredCnnRun):
    path, least = RECORD, 99.2


class TestCnnNoDropoutRun(_StoredCnnRun):
    path, least = NO_DROPOUT, 99.0


def _without(command: list[str], *options: str) -> list[str]:
    """``command`` without the named options and their values."""
    kept: list[str] = []
    skip = False
    for word in command:
        if skip:
            skip = False
        elif word in options:
            skip = True
        else:
            kept.append(word)
    return kept


def test_cnn_decomposition_record_is_complete_and_from_these_versions():
    import tensorflow  # noqa: F401  (records.versions reports TensorFlow only once loaded)

    record = decomposition.load(DECOMPOSITION)
    assert record.complete and len(record.seeds) >= 10
    assert record.meta["spec"]["model"] == "cnn"
    assert record.meta["command"][:4] == ["python", "-m", "reprodl", "decompose"]
    here = runtime.versions()
    for package in ("numpy", "tensorflow", "keras"):
        assert record.meta["versions"][package] == here[package], package


_UNDER_RECORDED_PINS = """
import sys
import reprodl.runtime as rt
settings = {settings!r}
rt.INTRA_OP_THREADS = settings["tf_intra_op_threads"]
rt.INTER_OP_THREADS = settings["tf_inter_op_threads"]
rt.PINNED_ENV.update({{k: v for k, v in settings.items() if k in rt.PINNED_ENV}})
from reprodl.cli import main
sys.exit(main({args!r}))
"""


class TestDecompositionRun:
    """One run of the stored decomposition, in a class of its own (a unit of work of its own)."""

    @pytest.mark.slow
    def test_a_recorded_cnn_decomposition_run_reproduces(self, tmp_path):
        _decomposition_run_reproduces(tmp_path)


def _decomposition_run_reproduces(tmp_path: Path) -> None:
    stored = decomposition.load(DECOMPOSITION)
    condition, seed = "dropout", stored.seeds[-1]
    expected = stored.find(condition, seed)
    out = tmp_path / "one.json"
    command = _without(stored.meta["command"], "--seeds", "--conditions", "--record", "--data")
    # The record was made under the pins before the cross-CPU contract (oneDNN ops off, 2 intra-op
    # threads, 1 inter-op): re-run it under exactly those, in a process of its own.
    settings = stored.meta["settings"]
    args = [*command[3:], "--seeds", str(seed), "--conditions", condition, "--record", str(out)]
    result = run_python(
        "-c", _UNDER_RECORDED_PINS.format(settings=settings, args=args), timeout=1800
    )
    assert result.returncode == 0, result.stderr
    again = decomposition.load(out)
    assert again.meta["spec"] == stored.meta["spec"]
    assert again.meta["settings"] == stored.meta["settings"]
    run = again.find(condition, seed)
    assert (run.seeds, run.correct, run.total) == (expected.seeds, expected.correct, expected.total)
    assert run.initial_digest == expected.initial_digest
    assert run.final_digest == expected.final_digest
    assert run.final_loss == expected.final_loss
