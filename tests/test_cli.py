"""The command line: the exact lines it prints, usage errors with exit code 2, bad data exit 1,
only the package's own errors turned into ``error: ...`` (a bug keeps its traceback).

The expected texts below were computed once by running the commands, checked by reading them,
and frozen here: a change in what the CLI prints, or in the bits it trains, fails these tests.
"""

from __future__ import annotations

import importlib.metadata
import re

import numpy as np
import pytest
from support import run_python, synthetic_record

from reprodl import cli, records
from reprodl.cli import main
from reprodl.errors import (
    CheckpointError,
    CrossCheckError,
    DownloadError,
    MnistError,
    RecordError,
    SettingsError,
    SubprocessError,
    UsageError,
)
from reprodl.record import compare as comparing

# --- usage errors (argparse and the CLI's own checks): exit 2, usage and one error line --------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "python -m reprodl: error: the following arguments are required: COMMAND"),
        (
            ["fly"],
            "python -m reprodl: error: argument COMMAND: invalid choice: 'fly' (choose from "
            "'train', 'compare', 'bisect', 'decompose', 'crosscheck', 'check', "
            "'invariance', 'env')",
        ),
        (
            ["train", "--model", "resnet", "--steps", "1"],
            "python -m reprodl train: error: argument --model: invalid choice: 'resnet' "
            "(choose from 'softmax', 'mlp', 'cnn')",
        ),
        (
            ["train", "--model", "softmax"],
            "python -m reprodl train: error: one of the arguments --epochs --steps is required",
        ),
        (
            ["train", "--model", "softmax", "--steps", "1", "--epochs", "1"],
            "python -m reprodl train: error: argument --epochs: not allowed with argument --steps",
        ),
        (
            ["train", "--model", "softmax", "--steps", "0"],
            "python -m reprodl train: error: argument --steps: expected a positive integer, "
            "got '0'",
        ),
        (
            ["train", "--model", "softmax", "--steps", "x"],
            "python -m reprodl train: error: argument --steps: expected a positive integer, "
            "got 'x'",
        ),
        (
            ["train", "--model", "softmax", "--steps", "5", "--seed", "-3"],
            "python -m reprodl train: error: argument --seed: expected a non-negative integer, "
            "got '-3'",
        ),
        (
            ["train", "--model", "softmax", "--steps", "5", "--lr", "0"],
            "python -m reprodl train: error: argument --lr: expected a positive number, got '0'",
        ),
        (
            ["train", "--model", "softmax", "--steps", "5", "--record", "r.json", "--resume", "c"],
            "python -m reprodl train: error: --record covers a whole run: it cannot be combined "
            "with --resume",
        ),
        (
            ["train", "--model", "softmax", "--steps", "5", "--digest-every", "2"],
            "python -m reprodl train: error: --digest-every needs --record",
        ),
        (
            ["train", "--model", "softmax", "--steps", "5", "--checkpoint-every", "2"],
            "python -m reprodl train: error: --checkpoint-every needs --checkpoint-dir (or "
            "--record)",
        ),
        (
            ["train", "--model", "softmax", "--steps", "5", "--dropout", "0.2"],
            "python -m reprodl train: error: the softmax model has no dropout layer",
        ),
        (
            ["train", "--model", "softmax", "--steps", "5", "--dropout-seed", "3"],
            "python -m reprodl train: error: the softmax model has no dropout layer",
        ),
        (
            ["train", "--model", "mlp", "--steps", "5", "--checkpoint-dir", "c"],
            "python -m reprodl train: error: --checkpoint-dir needs --checkpoint-every",
        ),
        (
            ["train", "--model", "mlp", "--steps", "5", "--dropout", "1.5"],
            "python -m reprodl train: error: argument --dropout: expected a rate in [0, 1), "
            "got '1.5'",
        ),
        (
            ["train", "--model", "mlp", "--steps", "5", "--dropout-seed", "often"],
            "python -m reprodl train: error: argument --dropout-seed: expected a non-negative "
            "integer, got 'often'",
        ),
        (
            ["train", "--model", "mlp", "--steps", "5", "--order", "random"],
            "python -m reprodl train: error: argument --order: invalid choice: 'random' "
            "(choose from 'seeded', 'global', 'global-after-first')",
        ),
        (
            ["train", "--model", "mlp", "--steps", "5", "--intra-op-threads", "0"],
            "python -m reprodl train: error: argument --intra-op-threads: expected a positive "
            "integer, got '0'",
        ),
        (
            ["compare", "a.json"],
            "python -m reprodl compare: error: the following arguments are required: RUN_B",
        ),
        (
            ["bisect"],
            "python -m reprodl bisect: error: the following arguments are required: RUN_A, RUN_B",
        ),
        (
            ["decompose", "--model", "softmax", "--steps", "5", "--seeds", "1-3"]
            + ["--dropout", "0.1", "--record", "d.json"],
            "python -m reprodl decompose: error: the softmax model has no dropout layer",
        ),
        (
            ["decompose", "--model", "mlp", "--steps", "5", "--seeds", "3-1", "--record", "d"],
            "python -m reprodl decompose: error: argument --seeds: expected seeds like 1-10 or "
            "1,4,7-9, got '3-1'",
        ),
        (
            ["replay", "r.json", "--start", "0"],
            "python -m reprodl replay: error: the following arguments are required: --end, --out",
        ),
    ],
)
def test_wrong_arguments_exit_2_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit, match="^2$"):
        main(argv)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: python -m reprodl")
    assert err[-1] == message


# --- the top-level options and the help ----------------------------------------------------------


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit, match="^0$"):
        main(["--version"])
    assert capsys.readouterr().out == f"python -m reprodl {importlib.metadata.version('reprodl')}\n"


def test_version_in_a_fresh_process():
    result = run_python("-m", "reprodl", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"python -m reprodl {importlib.metadata.version('reprodl')}\n"


@pytest.mark.parametrize(
    "argv",
    [[], ["train"], ["compare"], ["bisect"], ["decompose"], ["crosscheck"], ["check"], ["env"]],
    ids=lambda argv: " ".join(argv) or "top",
)
def test_help_is_plain_text(argv, capsys):
    """No reST markup (double backticks, roles like :func:) in any help text."""
    with pytest.raises(SystemExit, match="^0$"):
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m reprodl")
    assert "``" not in out and not re.search(r":(func|mod|class|meth|attr):", out), out


def test_top_level_help_lists_the_commands_and_exit_statuses(capsys):
    with pytest.raises(SystemExit, match="^0$"):
        main(["--help"])
    out = capsys.readouterr().out
    listed = re.findall(r"^    (\w+)", out, flags=re.MULTILINE)
    assert listed == [
        "train",
        "compare",
        "bisect",
        "decompose",
        "crosscheck",
        "check",
        "invariance",
        "env",
    ]
    assert "  --version " in out and "  --debug " in out
    assert "\nexit status:\n  0  success" in out


def test_help_reads_the_defaults_registry(monkeypatch, capsys):
    from reprodl.training import defaults

    changed = defaults.ModelDefaults("adam", 0.25, 100, "cosine")
    monkeypatch.setitem(defaults.DEFAULTS, "mlp", changed)
    with pytest.raises(SystemExit, match="^0$"):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "learning rate (default: softmax 0.5, mlp 0.25, cnn 0.002)" in out
    assert "over the run (default: mlp cosine, cnn cosine)" in out
    assert "--batch-size BATCH_SIZE default: 100 " in out


def test_replay_is_hidden_but_works(tmp_path, capsys):
    with pytest.raises(SystemExit, match="^0$"):
        main(["--help"])
    assert not re.search(r"^ +replay ", capsys.readouterr().out, flags=re.MULTILINE)
    with pytest.raises(SystemExit, match="^0$"):
        main(["replay", "--help"])
    assert capsys.readouterr().out.startswith(
        "usage: python -m reprodl replay [-h] --start START --end END --out OUT RECORD"
    )
    # It reads its record before anything else: a record without checkpoints is refused.
    rec = records.save(synthetic_record(), tmp_path / "a.json")
    argv = ["replay", str(rec), "--start", "0", "--end", "4", "--out", str(tmp_path / "r.npz")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {rec}: no checkpoints (record the run with checkpoints)\n"
    )


# --- errors: the package's own exit with a status, a bug keeps its traceback ---------------------


@pytest.fixture
def corrupt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records.save(synthetic_record(), tmp_path / "a.json")
    (tmp_path / "corrupt.json").write_text((tmp_path / "a.json").read_text()[:200])
    return ["compare", "a.json", "corrupt.json"]


CORRUPT = (
    "error: corrupt.json: not valid JSON, the file ends too early (truncated?): Unterminated "
    "string\n"
)


def test_an_error_is_one_line_without_traceback(corrupt, capsys):
    assert main(corrupt) == 2
    assert capsys.readouterr() == ("", CORRUPT)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_adds_the_traceback(corrupt, where, capsys):
    argv = ["--debug", *corrupt] if where == "before" else [*corrupt, "--debug"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert "\nreprodl.errors.RecordError: corrupt.json: not valid JSON" in err
    assert err.endswith("\n" + CORRUPT)


def test_a_bug_is_not_a_usage_error(tmp_path, monkeypatch, capsys):
    """Any exception that is not a ReprodlError propagates with its traceback."""

    def broken(a, b):
        raise KeyError("a bug inside compare")

    monkeypatch.setattr(comparing, "compare", broken)
    a = records.save(synthetic_record(), tmp_path / "a.json")
    with pytest.raises(KeyError, match="a bug inside compare"):
        main(["compare", str(a), str(a)])
    assert capsys.readouterr().err == ""


def test_a_bug_in_a_fresh_process_exits_1_with_its_traceback(tmp_path):
    """``python -m reprodl``: the interpreter prints the traceback (status 1, not 2)."""
    code = (
        "import sys; from reprodl import cli\n"
        "from reprodl.record import compare as comparing\n"
        "def broken(a, b): raise KeyError('a bug inside compare')\n"
        "comparing.compare = broken\n"
        "sys.exit(cli.main(['compare', 'a.json', 'b.json']))\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.endswith("KeyError: 'a bug inside compare'\n")


@pytest.mark.parametrize(
    ("command", "error", "status"),
    [
        ("train", MnistError("m"), 1),
        ("train", DownloadError("d"), 1),
        ("train", CheckpointError("c"), 1),
        ("train", UsageError("u"), 2),
        ("train", SettingsError("s"), 2),
        ("decompose", MnistError("m"), 1),
        ("decompose", RecordError("r"), 2),
        ("compare", RecordError("r"), 2),
        ("bisect", CheckpointError("c"), 2),
        ("bisect", SubprocessError("s"), 2),
        ("replay", RecordError("r"), 2),
        ("crosscheck", CrossCheckError("x"), 2),
        ("check", SubprocessError("s"), 2),
        ("check", RecordError("r"), 2),
    ],
)
def test_exit_status_per_command_and_error(command, error, status):
    assert cli.exit_status(command, error) == status


# --- compare: the exact report -------------------------------------------------------------------


def test_compare_prints_the_exact_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    records.save(synthetic_record(), tmp_path / "a.json")
    records.save(synthetic_record(), tmp_path / "same.json")
    records.save(synthetic_record(changed={"net/dense/bias": 8}), tmp_path / "b.json")
    records.save(synthetic_record(steps=8), tmp_path / "short.json")

    assert main(["compare", "a.json", "same.json"]) == 0
    assert capsys.readouterr() == (
        "A: a.json\n"
        "B: same.json\n"
        "model mlp, 12 steps; state digests at steps 0, 4, 8, 12\n"
        "meta: identical\n"
        "losses: identical at all 12 steps\n"
        "weights: identical at every recorded step\n"
        "final fingerprint: identical\n"
        "verdict: identical (every loss and every recorded digest agree)\n",
        "",
    )

    assert main(["compare", "a.json", "b.json"]) == 1
    assert capsys.readouterr() == (
        "A: a.json\n"
        "B: b.json\n"
        "model mlp, 12 steps; state digests at steps 0, 4, 8, 12\n"
        "meta: identical\n"
        "losses: identical at all 12 steps\n"
        "weights: identical at step 4, differ at step 8 (first changed after one of steps 5..8)\n"
        "  first differing variable: net/dense/bias\n"
        "  differing at step 8: 1 of 4 variables (net/dense/bias)\n"
        "final fingerprint: A 71d06e806b24e518, B cc4630c8f94662f5\n"
        "verdict: the runs diverge; first difference at step 8\n",
        "",
    )

    assert main(["compare", "a.json", "missing.json"]) == 2
    assert capsys.readouterr() == ("", "error: missing.json: no such file\n")

    assert main(["compare", "a.json", "short.json"]) == 2
    assert capsys.readouterr() == (
        "",
        "error: a.json and short.json cannot be compared: different numbers of steps (12 and 8)\n",
    )


def _map_pair(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records.save(synthetic_record(), tmp_path / "a.json")
    records.save(synthetic_record(changed={"net/dense/bias": 8}), tmp_path / "b.json")


def test_compare_plot_writes_the_map_and_still_prints_the_report(tmp_path, monkeypatch, capsys):
    _map_pair(tmp_path, monkeypatch)
    assert main(["compare", "a.json", "b.json"]) == 1
    report = capsys.readouterr().out
    assert main(["compare", "a.json", "b.json", "--plot", "maps/ab.png"]) == 1
    assert capsys.readouterr() == (report + "map maps/ab.png\n", "")
    png = (tmp_path / "maps" / "ab.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    pixels = matplotlib.image.imread(tmp_path / "maps" / "ab.png")
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 300
    # The map's red ("different") is in the picture: net/dense/bias differs from step 8 on.
    red = (np.abs(pixels[..., :3] - np.array([0xC4, 0x4E, 0x52]) / 255) < 0.02).all(axis=-1)
    assert red.sum() > 100
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    # The same records give the same bytes (no date or version in the PNG).
    assert main(["compare", "a.json", "b.json", "--plot", "again.png"]) == 1
    assert (tmp_path / "again.png").read_bytes() == png


@pytest.mark.parametrize("name", ["map.jpg", "map", "map.png.txt"])
def test_compare_plot_needs_a_png_name(tmp_path, monkeypatch, capsys, name):
    _map_pair(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="^2$"):
        main(["compare", "a.json", "b.json", "--plot", name])
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[-1] == (
        "python -m reprodl compare: error: argument --plot: expected a file name ending in "
        f".png, got {name!r}"
    )
    assert not (tmp_path / name).exists()


def test_compare_plot_to_a_path_that_cannot_be_written(tmp_path, monkeypatch, capsys):
    """A --plot path that cannot be written is a usage error of compare (no report printed)."""

    def refused(path: str) -> str:
        with pytest.raises(SystemExit, match="^2$"):
            main(["compare", "a.json", "b.json", "--plot", path])
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("usage: python -m reprodl compare ")
        return err.splitlines()[-1]

    _map_pair(tmp_path, monkeypatch)
    (tmp_path / "folder.png").mkdir()
    cases = {
        "a.json/map.png": "a.json is not a folder",
        "folder.png": "it is a folder",
    }
    prefix = "python -m reprodl compare: error: cannot write the map to"
    for path, why in cases.items():
        assert refused(path) == f"{prefix} {path}: {why}"

    def denied(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("reprodl._io.atomic_write", denied)
    assert refused("map.png") == f"{prefix} map.png: Permission denied"


def test_bisect_without_checkpoints_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    records.save(synthetic_record(), tmp_path / "a.json")
    records.save(synthetic_record(changed={"net/dense/bias": 8}), tmp_path / "b.json")
    assert main(["bisect", "a.json", "b.json"]) == 2
    assert capsys.readouterr() == (
        "",
        "error: a.json: no checkpoints (record the run with checkpoints)\n",
    )


# --- train, env and bisect on the real MNIST (TensorFlow in fresh processes) --------------------


@pytest.mark.slow
def test_train_prints_the_exact_lines(mnist_dir):
    result = run_python(
        "-m", "reprodl", "train", "--model", "softmax", "--steps", "50", "--seed", "3"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "model softmax, seed 3, 50 steps of batch 100, sgd lr 0.5",
        "op determinism on",
        "final loss 0.56620485",
        "test accuracy 87.55% (8755/10000)",
        "fingerprint a5adf6f948228aae45f9ab215d8c4fc23c53aa8cdc7c6906fd8a9818c0ec18bd",
    ]
    assert re.fullmatch(
        r"trained in \d+\.\d s \(\d+\.\d steps/s after the first step\)\n", result.stderr
    )


@pytest.mark.slow
def test_train_with_missing_data_exits_1_with_message(tmp_path):
    nowhere = tmp_path / "nowhere"
    result = run_python(
        "-m", "reprodl", "train", "--model", "softmax", "--steps", "5", "--data", str(nowhere)
    )
    assert result.returncode == 1
    assert result.stderr == f"error: MNIST folder {nowhere} does not exist\n"
    assert result.stdout == ""


@pytest.mark.slow
def test_env_prints_the_pinned_settings():
    """The settings part of the report is the same on every machine (the rest names it)."""
    result = run_python("-m", "reprodl", "env")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("settings.")] == [
        "settings.MKL_NUM_THREADS: 1",
        "settings.NPY_DISABLE_CPU_FEATURES: X86_V4 AVX512_ICL AVX512_SPR",
        "settings.OMP_NUM_THREADS: 1",
        "settings.ONEDNN_MAX_CPU_ISA: AVX2",
        "settings.OPENBLAS_CORETYPE: Haswell",
        "settings.OPENBLAS_NUM_THREADS: 1",
        "settings.TF_CPP_MIN_LOG_LEVEL: 3",
        "settings.TF_ENABLE_ONEDNN_OPTS: 1",
        "settings.TF_NUM_INTEROP_THREADS: 2",
        "settings.TF_NUM_INTRAOP_THREADS: 1",
        "settings.PYTHONHASHSEED: 0",
        "settings.tf_intra_op_threads: 1",
        "settings.tf_inter_op_threads: 2",
        "settings.op_determinism: True",
    ]
    keys = [line.split(":")[0] for line in lines if not line.startswith("settings.")]
    assert keys == ["python", "platform", "cpu", "cpu_flags", "logical_cpus", "numpy"] + [
        "tensorflow",
        "keras",
        "gpus",
    ]
    assert f"tensorflow: {importlib.metadata.version('tensorflow')}" in lines


@pytest.mark.slow
def test_bisect_finds_the_step_where_op_determinism_changes_the_weights(tmp_path):
    """Op determinism is process-wide: each run and each replay gets its own process."""
    common = ["-m", "reprodl", "train", "--model", "softmax", "--steps", "30"]
    common += ["--checkpoint-every", "10"]
    for name, extra in (("a", []), ("b", ["--no-op-determinism"])):
        result = run_python(*common, "--record", str(tmp_path / f"{name}.json"), *extra)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[1:] == [
            f"op determinism {'off' if extra else 'on'}",
            "final loss 0.60757107",
            "test accuracy 85.71% (8571/10000)",
            "fingerprint "
            + (
                "cf3275f19d75edfd50a8785d69bed7814b912361e75b15724332489be1db3695"
                if extra
                else "35aa6723d98a7efda00ee3b4dc016623c6a79d35857f2eca08bb88e8aa1221e2"
            ),
            f"record {tmp_path / name}.json",
        ]
    result = run_python(
        "-m", "reprodl", "bisect", str(tmp_path / "a.json"), str(tmp_path / "b.json")
    )
    assert result.returncode == 1, result.stderr
    train = "python -m reprodl train --model softmax --steps 30 --checkpoint-every 10 --record"
    # Measured (oneDNN ops, 1 thread): the loss formula differs, the weights from step 2 on.
    assert result.stdout.replace(f"{tmp_path}/", "").splitlines() == [
        "A: a.json",
        "B: b.json",
        "model softmax, 30 steps; state digests at steps 0, 10, 20, 30",
        "meta differences (A | B):",
        "  run.op_determinism: True | False",
        f"  command: {train} a.json | {train} b.json --no-op-determinism",
        "  settings.op_determinism: True | False",
        "  checkpoints.dir: a.ckpt | b.ckpt",
        "losses: first differ at step 4: A 1.6034905, B 1.6034907, |A-B| 2.3841858e-07",
        "losses: differ at 10 of 30 steps; largest |A-B| 2.3841858e-07 at step 4; at step 30: 0",
        "weights: identical at step 0, differ at step 10 (first changed after one of steps 1..10)",
        "  first differing variable: softmax_regression/logits/kernel",
        "  differing at step 10: 2 of 2 variables (softmax_regression/logits/kernel, "
        "softmax_regression/logits/bias)",
        "final fingerprint: A 35aa6723d98a7efd, B cf3275f19d75edfd",
        "verdict: the runs diverge; first difference at step 4",
        "bisect: replayed steps 1..10 of both runs from their checkpoints at step 0",
        "  A: in a process of its own; reproduces its record",
        "  B: in a process of its own; reproduces its record",
        "checkpoints at step 0: identical",
        "first differing step: 2",
        "first differing variable: softmax_regression/logits/kernel",
        "losses in the replay: first differ at step 4",
        "variable                          first differs  max |A-B| there  max |A-B| at step 10",
        "softmax_regression/logits/kernel  step 2         7.450581e-09     2.9802322e-08",
        "softmax_regression/logits/bias    step 2         7.450581e-09     1.4901161e-08",
    ]
