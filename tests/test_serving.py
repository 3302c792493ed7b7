"""Batch invariance (:mod:`reprodl.serving`): the measurement and the fixed-batch remedy on
stand-in models whose rows do or do not depend on the batch, then the ``invariance`` command's
usage errors; the book's four models under the pins, in a fresh process (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import run_python

from reprodl.cli import main
from reprodl.errors import UsageError
from reprodl.serving import FixedBatch, measure, position_groups, position_results

RNG = np.random.default_rng(0)
X = RNG.standard_normal((1001, 5)).astype(np.float32)
W = RNG.standard_normal((5, 3)).astype(np.float32)


class RowWise:
    """Each row by itself: batch-invariant by construction. Records the shapes it is given."""

    def __init__(self):
        self.shapes = []

    def __call__(self, x, training=False):
        self.shapes.append(x.shape)
        return np.stack([row @ W for row in x])

    def predict(self, x, verbose=0):
        return self(x)


class SumsByBatch(RowWise):
    """A product whose last bit depends on the row count (one row: the next float up, as another
    order of additions may give), as a kernel that picks its path by shape; ``predict`` runs
    batches of 32, as Keras does."""

    def __call__(self, x, training=False):
        self.shapes.append(x.shape)
        out = x @ W
        return np.nextafter(out, np.float32(np.inf)) if len(x) == 1 else out

    def predict(self, x, verbose=0):
        return np.concatenate([self(x[i : i + 32]) for i in range(0, len(x), 32)])


class ByPosition(RowWise):
    """A row's result depends on where it stands in the batch (as a kernel's tail rows may)."""

    def __call__(self, x, training=False):
        out = x @ W
        out[-1] = np.nextafter(out[-1], np.float32(np.inf))  # the last row: another path
        return out


def test_a_row_wise_model_is_batch_invariant():
    result = measure(RowWise(), X)
    assert result.invariant
    assert result.groups == ((1, 2, 7, 32, 100, 1000),)
    assert result.lines()[-1] == "batch-invariant: yes"
    assert json.loads(json.dumps(result.to_dict()))["invariant"] is True


def test_a_model_whose_sums_follow_the_row_count_is_not_and_the_report_says_where():
    result = measure(SumsByBatch(), X, sizes=(2, 7, 100))
    assert not result.invariant
    assert result.groups[0] == (1,)
    assert all(s.rows_differ == s.rows for s in result.sizes), "every row parts from alone"
    assert [s.predict_matches for s in result.sizes] == [True, True, True]
    assert result.sizes[0].largest > 0 and result.sizes[0].first_layer is None
    assert result.lines()[0].startswith("batch     2: 2 of 2 rows differ as alone (largest ")


def test_predict_in_batches_of_32_parts_from_a_call_on_a_larger_batch():
    class LastBatch(SumsByBatch):  # a batch's result depends on its size beyond 32 rows
        def __call__(self, x, training=False):
            return x @ W + (np.float32(1e-6) if len(x) > 32 else 0)

    result = measure(LastBatch(), X, sizes=(32, 100))
    assert [s.predict_matches for s in result.sizes] == [True, False]


def test_the_fixed_batch_makes_every_call_one_shape_and_keeps_the_rows():
    model = SumsByBatch()
    fixed = FixedBatch(model, batch_size=8)
    got = fixed(X[:19])
    assert {s for s in model.shapes} == {(8, 5)}
    assert len(model.shapes) == 3
    np.testing.assert_array_equal(got, model(X[:19]))
    assert measure(fixed, X, sizes=(2, 7, 32)).invariant


def test_the_fixed_batch_is_not_enough_when_the_position_matters():
    assert position_results(ByPosition(), X, 8) == 2
    assert position_groups(ByPosition(), X, 8) == [[0, 1, 2, 3, 4, 5, 6], [7]]
    assert position_results(RowWise(), X, 8) == 1
    # the rows measure() compares (the first seven) never stand last: only the probe sees it
    assert measure(FixedBatch(ByPosition(), 8), X, sizes=(2, 8)).invariant


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: FixedBatch(RowWise(), 0), "batch_size must be at least 1, got 0"),
        (lambda: FixedBatch(RowWise(), 4)(X[:0]), "no examples to predict"),
        (lambda: FixedBatch(RowWise(), 4)(X, training=True), "for inference"),
        (lambda: measure(RowWise(), X[:10], sizes=(2, 100)), "10 examples given"),
        (lambda: measure(RowWise(), X, sizes=(0, 2)), "positive integers"),
        (lambda: position_results(RowWise(), X[:5], 8), "5 examples given, need 9"),
    ],
)
def test_bad_input_is_a_usage_error(call, message):
    with pytest.raises(UsageError, match=message):
        call()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invariance", "m.keras", "--as-is"], "--as-is needs --data FILE.npy"),
        (["invariance", "no-such.keras"], "no such file: no-such.keras"),
        (["invariance", "m.keras", "--sizes", "2,x"], "expected sizes like 2,7,32, got '2,x'"),
        (["invariance", "m.keras", "--fixed-batch", "0"], "expected a positive integer, got '0'"),
    ],
)
def test_the_command_refuses_bad_arguments_before_pinning(argv, message, capsys, tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        with pytest.raises(SystemExit, match="^2$"):
            main(argv)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: python -m reprodl invariance")
    assert message in err[-1]


_BOOK_MODELS = """
import json, sys
from pathlib import Path
from reprodl.book import batch_invariance as bi
folder = Path(sys.argv[1])
bi.build_models(folder)
print(json.dumps(bi.run_setting(bi.SETTINGS[0], folder)))
"""


@pytest.mark.slow
def test_the_book_models_under_the_pins_give_the_committed_verdicts_and_the_remedy_holds(
    tmp_path,
):
    """A fresh build and measurement under the pins gives each committed native pinned run (one
    per real CPU measured) exactly, and a batch of 100 rows makes all four models batch-invariant;
    the command says the same of the saved MLP and exits 0 for its remedy."""
    from reprodl import results

    result = run_python("-c", _BOOK_MODELS, str(tmp_path), timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads(result.stdout.splitlines()[-1])
    record = results.load("batch_invariance.json")
    stored = [r for r in record["runs"] if r["emulated"] is None and r["setting"] == got["setting"]]
    assert stored and all(got["models"] == run["models"] for run in stored)  # one per real CPU
    for name, measured in got["models"].items():
        assert measured["fixed"] == {"100": True}, name
        assert measured["positions"]["100"] == 1, name
        assert not measured["plain"]["invariant"], name

    mlp = tmp_path / "mlp.keras"
    command = ["-m", "reprodl", "invariance", str(mlp), "--data", str(tmp_path / "test.npy")]
    checked = run_python(*command, "--fixed-batch", "100", timeout=600)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]
    lines = checked.stdout.splitlines()
    by_size = {s["size"]: s for s in got["models"]["mlp"]["plain"]["sizes"]}
    for line, size in zip(lines[1:6], (2, 7, 32, 100, 1000), strict=True):
        assert line.startswith(f"batch {size:>5}: ")
        assert ("same as alone" in line) == (by_size[size]["rows_differ"] == 0), line
    assert lines[7] == "batch-invariant: no"
    assert lines[-2:] == [
        "batch-invariant: yes",
        "one example at each of the 100 positions of a batch: 1 result",
    ]
