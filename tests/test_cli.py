"""The command line: deterministic output, usage errors with exit code 2, bad data exit 1."""

from __future__ import annotations

import re

import pytest
from support import run_python, synthetic_record

from reprodl import records
from reprodl.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["fly"],
        ["train", "--model", "resnet", "--steps", "1"],
        ["train", "--model", "softmax"],
        ["train", "--model", "softmax", "--steps", "1", "--epochs", "1"],
        ["train", "--model", "softmax", "--steps", "0"],
        ["train", "--model", "softmax", "--steps", "x"],
        ["train", "--model", "softmax", "--steps", "5", "--seed", "-3"],
        ["train", "--model", "softmax", "--steps", "5", "--lr", "0"],
        ["train", "--model", "softmax", "--steps", "5", "--record", "r.json", "--resume", "c"],
        ["train", "--model", "softmax", "--steps", "5", "--digest-every", "2"],
        ["train", "--model", "softmax", "--steps", "5", "--checkpoint-every", "2"],
        ["train", "--model", "softmax", "--steps", "5", "--dropout", "0.2"],
        ["train", "--model", "mlp", "--steps", "5", "--dropout", "1.5"],
        ["train", "--model", "mlp", "--steps", "5", "--dropout-seed", "often"],
        ["train", "--model", "mlp", "--steps", "5", "--order", "random"],
        ["train", "--model", "mlp", "--steps", "5", "--intra-op-threads", "0"],
        ["compare", "a.json"],
        ["bisect"],
    ],
)
def test_wrong_arguments_exit_2_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_train_prints_deterministic_lines():
    result = run_python(
        "-m", "reprodl", "train", "--model", "softmax", "--steps", "50", "--seed", "3"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "model softmax, seed 3, 50 steps of batch 100, sgd lr 0.5"
    assert lines[1] == "op determinism on"
    assert re.fullmatch(r"final loss \d\.\d+", lines[2])
    assert re.fullmatch(r"test accuracy \d+\.\d\d% \(\d+/10000\)", lines[3])
    assert re.fullmatch(r"fingerprint [0-9a-f]{64}", lines[4])
    assert "steps/s" in result.stderr and "steps/s" not in result.stdout


def test_train_with_missing_data_exits_1_with_message(tmp_path):
    result = run_python(
        "-m",
        "reprodl",
        "train",
        "--model",
        "softmax",
        "--steps",
        "5",
        "--data",
        str(tmp_path / "nowhere"),
    )
    assert result.returncode == 1
    assert "error: MNIST folder" in result.stderr and "nowhere" in result.stderr


def test_env_prints_report():
    result = run_python("-m", "reprodl", "env")
    assert result.returncode == 0, result.stderr
    assert "tensorflow: 2." in result.stdout
    assert "settings.ONEDNN_MAX_CPU_ISA: AVX2" in result.stdout
    assert "settings.tf_intra_op_threads: 1" in result.stdout
    assert "settings.TF_ENABLE_ONEDNN_OPTS: 1" in result.stdout


def test_compare_exit_codes(tmp_path, capsys):
    a = records.save(synthetic_record(), tmp_path / "a.json")
    same = records.save(synthetic_record(), tmp_path / "same.json")
    other = records.save(synthetic_record(changed={"net/dense/bias": 8}), tmp_path / "b.json")
    short = records.save(synthetic_record(steps=8), tmp_path / "short.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(a.read_text()[:200])

    assert main(["compare", str(a), str(same)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("verdict: identical")

    assert main(["compare", str(a), str(other)]) == 1
    out = capsys.readouterr().out
    assert "first differing variable: net/dense/bias" in out
    assert out.splitlines()[-1] == "verdict: the runs diverge; first difference at step 8"

    assert main(["compare", str(a), str(corrupt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {corrupt}: not valid JSON")

    assert main(["compare", str(a), str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err

    assert main(["compare", str(a), str(short)]) == 2
    assert "cannot be compared: different numbers of steps" in capsys.readouterr().err


@pytest.mark.slow
def test_bisect_finds_the_step_where_op_determinism_changes_the_weights(tmp_path):
    """Op determinism is process-wide: each run and each replay gets its own process."""
    common = ["-m", "reprodl", "train", "--model", "softmax", "--steps", "30"]
    common += ["--checkpoint-every", "10"]
    for name, extra in (("a", []), ("b", ["--no-op-determinism"])):
        result = run_python(*common, "--record", str(tmp_path / f"{name}.json"), *extra)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == f"record {tmp_path / name}.json"
    assert "op determinism off" in result.stdout.splitlines()
    result = run_python(
        "-m", "reprodl", "bisect", str(tmp_path / "a.json"), str(tmp_path / "b.json")
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "  run.op_determinism: True | False" in lines
    assert "  settings.op_determinism: True | False" in lines
    assert "bisect: replayed steps 1..10 of both runs from their checkpoints at step 0" in lines
    assert lines.count("  A: in a process of its own; reproduces its record") == 1
    assert lines.count("  B: in a process of its own; reproduces its record") == 1
    assert "checkpoints at step 0: identical" in lines
    # Measured (oneDNN ops, 1 thread): the loss formula differs, the weights from step 2 on.
    assert "first differing step: 2" in lines
    assert "first differing variable: softmax_regression/logits/kernel" in lines
