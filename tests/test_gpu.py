"""reprodl.gpu: error first lines, variation records (write, load, print), and the measurement's
CPU path (benchmarks/gpu_variation.py with tiny settings)."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from support import ROOT, run_python

from reprodl import gpu
from reprodl.errors import RecordError, UsageError


def _record(device: str = "GPU") -> dict[str, Any]:
    """A variation record as :func:`gpu.measure_variation` writes one, made up."""
    return {
        "benchmark": "gpu_variation",
        "model": "cnn",
        "runs": 3,
        "steps": 50,
        "batch_size": 50,
        "seed": 0,
        "results": {
            "determinism_off": {
                "fingerprints": ["a" * 64, "b" * 64, "a" * 64],
                "final_losses": ["0.5", "0.50000006", "0.5"],
                "distinct_fingerprints": 2,
                "max_abs_weight_difference": 1.1920929e-07,
            },
            "determinism_on": {"error": "UnimplementedError: no deterministic kernel"},
        },
        "device": {
            "device": device,
            "name": "NVIDIA H200",
            "driver": "570.1",
            "cuda_version": "12.5",
            "cudnn_version": "9",
            "tensorflow": "2.21.0",
        },
        "date": "2026-01-02T03:04:05+00:00",
    }


def test_first_line_strips_function_node_prefix():
    exc = RuntimeError("{{function_node __wrapped__X}} Timestamp cannot be called\nmore")
    assert gpu.first_line(exc) == "Timestamp cannot be called"
    eager = RuntimeError("Timestamp cannot be called [Op:Timestamp] name: ")
    assert gpu.first_line(eager) == "Timestamp cannot be called [Op:Timestamp]"
    assert gpu.first_line(RuntimeError("")) == ""


def test_record_lines_print_the_provenance_and_each_setting():
    assert gpu.record_lines(_record()) == [
        "GPU: NVIDIA H200 (driver 570.1, CUDA 12.5, cuDNN 9), TensorFlow 2.21.0, measured "
        "2026-01-02",
        "3 runs of 50 steps of the cnn model, batch 50, seed 0",
        "  determinism off: distinct fingerprints 2 of 3 runs, largest weight difference 1.19e-07",
        "  determinism on: raised UnimplementedError: no deterministic kernel",
    ]
    assert gpu.record_lines(_record("CPU"))[0] == (
        "CPU: NVIDIA H200, TensorFlow 2.21.0, measured 2026-01-02"
    )


def test_short_fingerprints():
    digests = ["0123456789abcdef" * 4, "f" * 64]
    assert gpu.short_fingerprints(digests) == "0123456789abcdef, ffffffffffffffff"


def test_write_record_and_load_records_round_trip(tmp_path):
    written = gpu.write_record(_record(), tmp_path / "results" / "gpu_variation_h200.json")
    assert written == tmp_path / "results" / "gpu_variation_h200.json"
    gpu.write_record(_record("CPU"), tmp_path / "results" / "gpu_variation_a.json")
    (tmp_path / "results" / "other.json").write_text("{}")  # not a variation record: not loaded
    loaded = gpu.load_records(tmp_path / "results")
    assert [r["device"]["device"] for r in loaded] == ["CPU", "GPU"]  # sorted by file name
    assert loaded[1] == _record()
    assert list(tmp_path.joinpath("results").glob("*.tmp")) == []


def test_load_records_missing_folder(tmp_path):
    assert gpu.load_records(tmp_path / "nope") == []


def test_load_records_names_a_corrupt_file(tmp_path):
    (tmp_path / "gpu_variation_cut.json").write_text('{"model": "cnn", "runs"')
    with pytest.raises(RecordError, match=r"gpu_variation_cut\.json: not valid JSON"):
        gpu.load_records(tmp_path)


def test_measure_variation_validates_before_training():
    with pytest.raises(UsageError, match="need runs >= 2 and positive steps and batch_size"):
        gpu.measure_variation(runs=1)


@pytest.mark.slow
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
    assert gpu.load_records(tmp_path) == [record]
    lines = gpu.record_lines(record)
    assert lines[1] == "2 runs of 3 steps of the mlp model, batch 10, seed 0"
    assert any("determinism on: distinct fingerprints" in line for line in lines)


@pytest.mark.slow
def test_gpu_variation_script_writes_nothing_on_cpu_without_out(tmp_path):
    script = tmp_path / "benchmarks" / "gpu_variation.py"
    script.parent.mkdir()
    shutil.copy(ROOT / "benchmarks" / "gpu_variation.py", script)
    result = run_python(str(script), "--runs", "2", "--steps", "1", "--batch-size", "5")
    assert result.returncode == 0, result.stderr
    if "no GPU" in result.stdout:
        assert not (tmp_path / "src" / "reprodl" / "results").exists()
