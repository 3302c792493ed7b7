"""reprodl.hardware: simulated atomic sums, training in a child process with other pins, and the
GPU-variation measurement's CPU path (benchmarks/gpu_variation.py with tiny settings)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from support import ROOT, run_python

from reprodl import hardware


def test_atomic_sum_natural_order_is_the_sequential_float32_sum():
    terms = np.array([1e8, 1.0, -1e8, 1.0], dtype=np.float32)
    # ((1e8 + 1) - 1e8) + 1 in float32: the first 1 is lost to rounding
    assert hardware.atomic_sum(terms) == np.float32(1.0)
    assert hardware.atomic_sum(terms[[0, 2, 1, 3]]) == np.float32(2.0)


def test_atomic_sum_order_changes_bits_but_seed_replays_them():
    terms = np.random.default_rng(0).standard_normal((1000, 5)).astype(np.float32)
    a = hardware.atomic_sum(terms, np.random.default_rng(1))
    b = hardware.atomic_sum(terms, np.random.default_rng(1))
    c = hardware.atomic_sum(terms, np.random.default_rng(2))
    assert a.dtype == np.float32 and a.shape == (5,)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    np.testing.assert_allclose(a, terms.astype(np.float64).sum(axis=0), atol=1e-3)


def test_atomic_sum_of_small_integers_is_exact_in_any_order():
    terms = np.arange(100, dtype=np.float32)[:, None]
    for seed in range(3):
        assert hardware.atomic_sum(terms, np.random.default_rng(seed))[0] == 4950.0


def _toy_data(n: int = 400):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n)


def test_softmax_regression_atomic_is_replayable_and_order_sensitive():
    images, labels = _toy_data()
    ref = hardware.softmax_regression_atomic(images, labels, steps=4, order_seed=None)
    again = hardware.softmax_regression_atomic(images, labels, steps=4, order_seed=None)
    one = hardware.softmax_regression_atomic(images, labels, steps=4, order_seed=1)
    one_again = hardware.softmax_regression_atomic(images, labels, steps=4, order_seed=1)
    assert len(ref) == 4 and ref[-1].shape == (785, 10) and ref[-1].dtype == np.float32
    assert ref[-1].tobytes() == again[-1].tobytes()
    assert one[-1].tobytes() == one_again[-1].tobytes()
    assert one[-1].tobytes() != ref[-1].tobytes()
    np.testing.assert_allclose(one[-1], ref[-1], atol=1e-5)  # different bits, same model


def test_softmax_regression_first_step_matches_the_matrix_gradient():
    images, labels = _toy_data()
    w1 = hardware.softmax_regression_atomic(images, labels, steps=1, learning_rate=0.5)[0]
    x = np.hstack([images[:100].reshape(100, -1) / 255.0, np.ones((100, 1))])
    d = np.full((100, 10), 0.1)  # softmax of zero logits
    d[np.arange(100), labels[:100]] -= 1
    np.testing.assert_allclose(w1, -0.5 / 100 * x.T @ d, atol=1e-6)


def test_softmax_regression_rejects_too_many_steps():
    images, labels = _toy_data(150)
    with pytest.raises(ValueError, match="need more"):
        hardware.softmax_regression_atomic(images, labels, steps=2, batch_size=100)


def test_first_line_strips_function_node_prefix():
    exc = RuntimeError("{{function_node __wrapped__X}} Timestamp cannot be called\nmore")
    assert hardware.first_line(exc) == "Timestamp cannot be called"
    eager = RuntimeError("Timestamp cannot be called [Op:Timestamp] name: ")
    assert hardware.first_line(eager) == "Timestamp cannot be called [Op:Timestamp]"


def test_train_in_subprocess_applies_the_overrides(mnist_dir):
    run = hardware.train_in_subprocess(
        steps=5, intra_op_threads=1, onednn_isa="SSE41", op_determinism=(True, False)
    )
    assert run.settings == {"threads": "1", "isa": "SSE41"}
    assert set(run.fingerprints) == {True, False}
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in run.fingerprints.values())
    assert set(run.losses) == {True, False}


def test_gpu_variation_script_cpu_path(tmp_path, mnist_dir):
    out = tmp_path / "gpu_variation_test.json"
    result = run_python(
        str(ROOT / "benchmarks" / "gpu_variation.py"),
        *("--runs", "2", "--steps", "3", "--batch-size", "10", "--model", "mlp"),
        *("--out", str(out)),
    )
    assert result.returncode == 0, result.stderr
    assert "record written to" in result.stdout
    record = json.loads(out.read_text())
    assert record["device"]["device"] in ("CPU", "GPU")
    assert record["device"]["tensorflow"].startswith("2.")
    assert record["runs"] == 2 and record["steps"] == 3
    for key in ("determinism_on", "determinism_off"):
        res = record["results"][key]
        assert len(res["fingerprints"]) == 2
        assert res["distinct_fingerprints"] == len(set(res["fingerprints"]))
    if record["device"]["device"] == "CPU":  # CPU runs repeat exactly, with and without
        assert record["results"]["determinism_on"]["distinct_fingerprints"] == 1
        assert record["results"]["determinism_off"]["distinct_fingerprints"] == 1
        assert record["results"]["determinism_off"]["max_abs_weight_difference"] == 0.0
    assert hardware.load_records(tmp_path) == [record]
    lines = hardware.record_lines(record)
    assert lines[1] == "2 runs of 3 steps of the mlp model, batch 10, seed 0"
    assert any("determinism on: distinct fingerprints" in line for line in lines)


def test_gpu_variation_script_writes_nothing_on_cpu_without_out(tmp_path):
    import shutil

    script = tmp_path / "benchmarks" / "gpu_variation.py"
    script.parent.mkdir()
    shutil.copy(ROOT / "benchmarks" / "gpu_variation.py", script)
    result = run_python(str(script), "--runs", "2", "--steps", "1", "--batch-size", "5")
    assert result.returncode == 0, result.stderr
    if "no GPU" in result.stdout:
        assert not (tmp_path / "benchmarks" / "results").exists()


def test_load_records_missing_folder(tmp_path):
    assert hardware.load_records(tmp_path / "nope") == []
