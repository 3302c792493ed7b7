"""The command line: deterministic output, usage errors with exit code 2, bad data exit 1."""

from __future__ import annotations

import re

import pytest
from conftest import run_python

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
    assert "settings.tf_intra_op_threads: 2" in result.stdout
