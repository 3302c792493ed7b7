"""``python -m reprodl train --replicas K`` and ``--workers K``: data-parallel runs on the command
line, their records, and ``compare``/``bisect`` on them (TensorFlow in fresh processes: logical
devices can only be made before TensorFlow starts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_python

from reprodl import records
from reprodl.cli import main

STEPS = 4
#: The options every run here shares: dropout, so that per-replica masks matter too.
RUN = ["--model", "mlp", "--steps", str(STEPS), "--dropout", "0.5", "--digest-every", "1"]
#: The top-level meta keys of every package-loop record (chapter 9 prints them).
META_KEYS = [
    "model",
    "seed",
    "batch_size",
    "steps",
    "run",
    "command",
    "settings",
    "versions",
    "digest_every",
    "checkpoints",
    "source",
    "loss",
    "interrupted",
]


def _train(folder: Path, name: str, *options: str, data: Path) -> tuple[Path, list[str]]:
    """Train in a fresh process; the record's path and the deterministic stdout lines."""
    path = folder / f"{name}.json"
    proc = run_python(
        "-m",
        "reprodl",
        "train",
        *RUN,
        *options,
        "--data",
        str(data),
        "--record",
        str(path),
        env={"PYTHONHASHSEED": "0"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"record {path}"
    return path, lines[:-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir) -> dict[str, tuple[Path, list[str]]]:
    """Two 2-replica runs, a 1-replica run and a 2-worker run (the same global batch of 100)."""
    folder = tmp_path_factory.mktemp("replicas")
    return {
        "r2a": _train(folder, "r2a", "--replicas", "2", data=mnist_dir),
        "r2b": _train(folder, "r2b", "--replicas", "2", data=mnist_dir),
        "r1": _train(folder, "r1", "--replicas", "1", data=mnist_dir),
        "w2": _train(folder, "w2", "--workers", "2", data=mnist_dir),
    }


def _compare(a: Path, b: Path, capsys) -> tuple[int, list[str]]:
    status = main(["compare", str(a), str(b)])
    return status, capsys.readouterr().out.splitlines()


# --- fast: options -----------------------------------------------------------------------------


def test_train_help_lists_replicas_and_workers(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--replicas K" in out and "MirroredStrategy" in out
    assert "--workers K" in out and "MultiWorkerMirroredStrategy" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "cnn", "--replicas", "2"], "--replicas 2 trains the mlp only, not cnn"),
        (["--model", "softmax", "--workers", "2"], "--workers 2 trains the mlp only, not softmax"),
        (
            ["--model", "mlp", "--replicas", "2", "--record", "r.json", "--checkpoint-every", "2"],
            "--replicas 2 does not support --checkpoint-every",
        ),
        (
            ["--model", "mlp", "--workers", "2", "--resume", "c.npz"],
            "--workers 2 does not support --resume",
        ),
        (
            ["--model", "mlp", "--replicas", "2", "--order", "global", "--no-op-determinism"],
            "--replicas 2 does not support --order global, --no-op-determinism",
        ),
        (
            ["--model", "mlp", "--replicas", "2", "--schedule", "cosine", "--dropout-seed", "3"],
            "--replicas 2 does not support --dropout-seed, --schedule cosine",
        ),
        (
            ["--model", "mlp", "--replicas", "3"],
            "--replicas 3: the global batch of 100 cannot be split evenly in 3",
        ),
        (
            ["--model", "mlp", "--workers", "2", "--batch-size", "25"],
            "--workers 2: the global batch of 25 cannot be split evenly in 2",
        ),
    ],
)
def test_unsupported_combinations_are_usage_errors(options, message, capsys):
    with pytest.raises(SystemExit, match="^2$"):
        main(["train", "--steps", "2", *options])
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert err[0].startswith("usage: python -m reprodl train ")
    assert err[-1] == f"python -m reprodl train: error: {message}"
    assert captured.out == ""


def test_replicas_and_workers_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "mlp", "--steps", "2", "--replicas", "2", "--workers", "2"])
    assert exc.value.code == 2
    assert "not allowed with argument --replicas" in capsys.readouterr().err


# --- slow: trainings in fresh processes ----------------------------------------------------------


@pytest.mark.slow
def test_two_replicated_runs_give_identical_records(runs, capsys):
    (a, lines_a), (b, lines_b) = runs["r2a"], runs["r2b"]
    assert lines_a == lines_b
    assert lines_a[0] == f"model mlp, seed 0, {STEPS} steps of batch 100, adam lr 0.001"
    assert lines_a[1] == "op determinism on"
    assert lines_a[-1] == "replicas 2"
    status, out = _compare(a, b, capsys)
    assert status == 0
    assert out[-1] == "verdict: identical (every loss and every recorded digest agree)"


@pytest.mark.slow
def test_replicated_record_meta(runs):
    rec = records.load(runs["r2a"][0])
    assert list(rec.meta) == META_KEYS  # no new top-level keys
    run = rec.meta["run"]
    assert {k: run[k] for k in records.REPLICA_KEYS} == {
        "replicas": 2,
        "workers": 1,
        "feed": "values",
        "dropout_masks": "per_replica",
    }
    assert run["model"] == "mlp" and run["dropout"] == 0.5 and run["batch_size"] == 100
    assert rec.meta["source"] == "reprodl" and rec.meta["digest_every"] == 1
    assert sorted(rec.digests) == list(range(STEPS + 1))
    kinds = [v["kind"] for v in rec.variables]
    assert kinds.count("weight") == 4 and kinds.count("rng") == 1
    assert not rec.replayable
    worker_run = records.load(runs["w2"][0]).meta["run"]
    assert (worker_run["replicas"], worker_run["workers"]) == (2, 2)


@pytest.mark.slow
def test_one_and_two_replicas_differ_from_step_1(runs, capsys):
    status, out = _compare(runs["r1"][0], runs["r2a"][0], capsys)
    assert status == 1
    assert "  run.replicas: 1 | 2" in out
    assert out[-1] == "verdict: the runs diverge; first difference at step 1"
    assert runs["r1"][1][-1] == "replicas 1"


@pytest.mark.slow
def test_two_workers_give_the_bits_of_two_replicas(runs, capsys):
    (w, lines_w), (r, lines_r) = runs["w2"], runs["r2a"]
    assert lines_w[:-1] == lines_r[:-1]  # loss, accuracy, fingerprint
    assert lines_w[-1] == "workers 2, one replica each"
    status, out = _compare(w, r, capsys)
    assert status == 0
    assert "  run.workers: 2 | 1" in out
    assert out[-1] == "verdict: identical (every loss and every recorded digest agree)"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "what"),
    [("r2a", "2 replicas"), ("w2", "2 replicas on 2 workers"), ("r1", "1 replica")],
)
def test_bisect_refuses_replicated_records(runs, name, what, capsys):
    path = runs[name][0]
    assert main(["bisect", str(path), str(runs["r2b"][0])]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: trained with {what}: replay supports single-device runs only; "
        "use compare\n"
    )


@pytest.mark.slow
def test_replay_refuses_a_replicated_record(runs, tmp_path, capsys):
    path = runs["r2a"][0]
    status = main(["replay", str(path), "--start", "0", "--end", "1", "--out", str(tmp_path / "x")])
    assert status == 2
    assert "trained with 2 replicas: replay supports single-device runs only" in (
        capsys.readouterr().err
    )


@pytest.mark.slow
def test_a_replicated_record_is_json_with_float32_losses(runs):
    payload = json.loads(runs["r2a"][0].read_text())
    assert payload["version"] == records.VERSION
    assert len(payload["losses"]) == STEPS
    assert records.load(runs["r2a"][0]).final_digest == runs["r2a"][1][4].split()[-1]
