"""Recorded variance decompositions: the record format, resuming, and the ``decompose`` command."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from support import ROOT, run_python

from reprodl import decomposition, schemas
from reprodl.cli import main
from reprodl.errors import RecordError, UsageError
from reprodl.seeds import CONDITIONS, Seeds, seeds_for
from reprodl.training import Evaluation

SPEC = {"model": "mlp", "steps": 5, "batch_size": 10, "base": 0}


def fake_runner(calls: list | None = None, fail_at: int | None = None):
    """A stand-in for training.SeedRunner: its result is a function of the seeds only."""

    def runner(seeds: Seeds):
        if calls is not None:
            calls.append(seeds)
            if fail_at is not None and len(calls) == fail_at:
                raise KeyboardInterrupt(f"interrupted at run {fail_at}")  # a session
        h = hashlib.sha256(repr(seeds).encode()).hexdigest()
        return SimpleNamespace(
            evaluations={"test": Evaluation(correct=int(h[:2], 16), total=300)},
            losses=np.array([2.3, 0.5], dtype=np.float32),
            initial_digest=hashlib.sha256(f"{seeds.init} {seeds.dropout}".encode()).hexdigest(),
            final_digest=h,
        )

    return runner


def test_runs_go_seed_by_seed():
    assert decomposition.plan([1, 2], ["init", "all"]) == [
        ("init", 1),
        ("all", 1),
        ("init", 2),
        ("all", 2),
    ]


def test_run_save_load_round_trip(tmp_path):
    path = tmp_path / "d.json"
    calls: list[Seeds] = []
    record = decomposition.new(SPEC, [1, 2, 3], command=["python", "-m", "reprodl"])
    decomposition.run(fake_runner(calls), record, path=path)
    assert calls == [seeds_for(c, s) for s in (1, 2, 3) for c in CONDITIONS]
    loaded = decomposition.load(path)
    assert loaded.runs == record.runs and loaded.meta == record.meta
    assert loaded.complete and loaded.complete_seeds() == [1, 2, 3]
    scores = loaded.scores()
    assert list(scores) == list(CONDITIONS)
    expected = [fake_runner()(seeds_for("order", s)) for s in (1, 2, 3)]
    assert scores["order"].tolist() == [e.evaluations["test"].accuracy for e in expected]
    orders = loaded.distinct(lambda r: r.seeds.order)
    assert orders == {"init": 1, "order": 3, "dropout": 1, "all": 3}
    assert loaded.meta["cpu"]["model"] and "OPENBLAS_CORETYPE" in loaded.meta["settings"]


def test_an_interrupted_run_loses_nothing_and_resumes_to_the_same_record(tmp_path):
    path = tmp_path / "d.json"
    calls: list[Seeds] = []
    record = decomposition.new(SPEC, [1, 2])
    with pytest.raises(KeyboardInterrupt, match="interrupted at run 6"):
        decomposition.run(fake_runner(calls, fail_at=6), record, path=path)
    partial = decomposition.load(path)
    assert len(partial.runs) == 5  # saved after every run
    assert partial.complete_seeds() == [1] and not partial.complete
    assert {c: len(r) for c, r in partial.by_condition().items()} == dict.fromkeys(CONDITIONS, 1)
    resumed = decomposition.merge_plan(partial, decomposition.new(SPEC, [1, 2]))
    more: list[Seeds] = []
    decomposition.run(fake_runner(more), resumed, path=path)
    assert len(more) == 3  # only what was missing
    whole = decomposition.new(SPEC, [1, 2])
    decomposition.run(fake_runner(), whole)
    assert [r.final_digest for r in decomposition.load(path).runs] == [
        r.final_digest for r in whole.runs
    ]


def test_resuming_a_record_made_differently_is_refused():
    old = decomposition.new(SPEC, [1, 2])
    with pytest.raises(RecordError, match="spec does not match"):
        decomposition.merge_plan(old, decomposition.new({**SPEC, "steps": 6}, [1, 2]))
    other = decomposition.new(SPEC, [3], ["all"])
    other.meta["settings"] = {**other.meta["settings"], "tf_intra_op_threads": 2}
    with pytest.raises(RecordError, match="settings does not match"):
        decomposition.merge_plan(old, other)
    merged = decomposition.merge_plan(old, decomposition.new(SPEC, [2, 3], ["order"]))
    assert merged.seeds == [1, 2, 3] and merged.conditions == list(CONDITIONS)


@pytest.mark.parametrize(
    ("spec", "seeds", "conditions", "message"),
    [
        (SPEC, [], CONDITIONS, "seeds must be distinct non-negative ints, at least one"),
        (SPEC, [1, 1], CONDITIONS, "seeds must be distinct"),
        (SPEC, [-1], CONDITIONS, "seeds must be distinct non-negative"),
        (SPEC, [1], ["batch"], "unknown condition 'batch'; choose from init, order"),
        (SPEC, [1], [], "conditions must be distinct, at least one"),
        (SPEC, [1], ["init", "init"], "conditions must be distinct"),
    ],
)
def test_bad_plans_are_rejected(spec, seeds, conditions, message):
    with pytest.raises(UsageError, match=message):
        decomposition.new(spec, seeds, conditions)


def _corrupt(payload: dict, change) -> dict:
    payload = json.loads(json.dumps(payload))
    change(payload)
    return payload


def _set_run(key, value):
    return lambda p: p["runs"][0].__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: p.__setitem__("format", "reprodl.run-record"),
            "not a decomposition record \\(format 'reprodl.run-record', expected 'reprodl.decomp",
        ),
        (lambda p: p.__setitem__("version", 2), "record format version 2 is not supported"),
        (lambda p: p.__setitem__("version", True), "invalid 'version' \\(expected 1\\)"),
        (lambda p: p.pop("runs"), "missing field 'runs'"),
        (lambda p: p.__setitem__("meta", []), r"field 'meta' has the wrong type \(array;"),
        (lambda p: p["meta"].pop("settings"), "missing field 'meta.settings'"),
        (lambda p: p["meta"]["spec"].pop("base"), "missing field 'meta.spec.base'"),
        (lambda p: p["meta"]["spec"].__setitem__("steps", 5.0), "'meta.spec.steps' has the wrong"),
        (lambda p: p["meta"].__setitem__("seeds", [1, 1]), "'meta.seeds' must be distinct"),
        (lambda p: p["meta"].__setitem__("seeds", []), "'meta.seeds' must be distinct"),
        (lambda p: p["meta"].__setitem__("conditions", ["batch"]), "'meta.conditions' names 'b"),
        (lambda p: p["meta"].__setitem__("conditions", []), "'meta.conditions' must be a list"),
        (lambda p: p["meta"].__setitem__("command", "python"), "'meta.command' has the wrong"),
        (_set_run("seed", 9), r"runs\[0\]: condition 'init' / seed 9 not planned"),
        (_set_run("seeds", {"init": 1, "order": 1, "dropout": 5}), "not those of init 1"),
        (_set_run("seeds", {"init": 1, "order": 0}), r"missing field 'runs\[0\]\.seeds\.dropout'"),
        (_set_run("correct", 400), r"runs\[0\]: correct \(400\) is more than total \(300\)"),
        (_set_run("correct", -1), r"'runs\[0\]\.correct' must not be negative, got -1"),
        (_set_run("total", 0), r"'runs\[0\]\.total' must be positive, got 0"),
        (_set_run("final_digest", "abc"), r"'runs\[0\]\.final_digest' is not 64 hex digits"),
        (_set_run("seconds", "slow"), r"'runs\[0\]\.seconds' has the wrong type \(string"),
        (_set_run("final_loss", "low"), r"'runs\[0\]\.final_loss' has the wrong type"),
        (_set_run("speed", 3), r"unknown field 'runs\[0\]\.speed'"),
        (lambda p: p["runs"][0].pop("final_loss"), r"missing field 'runs\[0\]\.final_loss'"),
        (lambda p: p["runs"].append(p["runs"][0]), r"runs\[4\]: init 1 is recorded twice"),
    ],
)
def test_corrupt_records_are_named(tmp_path, change, message):
    record = decomposition.new(SPEC, [1])
    decomposition.run(fake_runner(), record)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_corrupt(decomposition.to_json(record), change)))
    with pytest.raises(RecordError, match=message) as exc:
        decomposition.load(path)
    assert "bad.json" in str(exc.value)


def test_a_diverged_run_is_recorded_with_a_null_loss(tmp_path):
    def diverging(seeds):
        result = fake_runner()(seeds)
        result.losses = np.array([2.3, np.nan], dtype=np.float32)
        return result

    record = decomposition.run(diverging, decomposition.new(SPEC, [1], ["all"]))
    path = decomposition.save(record, tmp_path / "nan.json")
    assert decomposition.load(path).runs[0].final_loss is None


def test_the_committed_cnn_record_is_valid_and_the_schema_ships_with_the_package():
    record = decomposition.load(ROOT / "src" / "reprodl" / "results" / "cnn_decomposition.json")
    assert record.complete and record.meta["spec"]["model"] == "cnn"
    schema = schemas.load(decomposition.SCHEMA)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["format"] == {"const": decomposition.FORMAT}


def test_an_integral_float_is_not_an_integer(tmp_path):
    record = decomposition.run(fake_runner(), decomposition.new(SPEC, [1], ["all"]))
    payload = decomposition.to_json(record)
    payload["runs"][0]["correct"] = 250.0  # Python reads 250.0 as a float: not a count
    path = tmp_path / "float.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(
        RecordError, match=r"'runs\[0\]\.correct' has the wrong type \(number 250\.0;"
    ):
        decomposition.load(path)


def test_truncated_and_missing_records(tmp_path):
    record = decomposition.new(SPEC, [1])
    decomposition.run(fake_runner(), record)
    path = decomposition.save(record, tmp_path / "d.json")
    path.write_text(path.read_text()[:-40])
    with pytest.raises(RecordError, match="not valid JSON"):
        decomposition.load(path)
    with pytest.raises(RecordError, match="no such"):
        decomposition.load(tmp_path / "missing.json")


# --- the command --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["decompose", "--model", "mlp", "--steps", "5", "--record", "r.json"],  # no --seeds
        ["decompose", "--model", "mlp", "--steps", "5", "--seeds", "3-1", "--record", "r"],
        ["decompose", "--model", "mlp", "--steps", "5", "--seeds", "1,1", "--record", "r"],
        ["decompose", "--model", "mlp", "--steps", "5", "--seeds", "x", "--record", "r"],
        ["decompose", "--model", "mlp", "--seeds", "1", "--record", "r"],  # no length
        ["decompose", "--model", "mlp", "--steps", "5", "--seeds", "1"],  # no record
        ["decompose", "--model", "mlp", "--steps", "5", "--seeds", "1", "--record", "r",
         "--conditions", "init,batch"],
        ["decompose", "--model", "softmax", "--steps", "5", "--seeds", "1", "--record", "r",
         "--dropout", "0.2"],
    ],
)  # fmt: skip
def test_decompose_usage_errors(argv, capsys):
    with pytest.raises(SystemExit, match="^2$") as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def decompose(*args: str):
    return run_python("-m", "reprodl", "decompose", "--model", "mlp", *args)


@pytest.mark.slow
def test_decompose_command_records_runs_that_train_reproduces(tmp_path):
    path = tmp_path / "mlp.json"
    args = ("--steps", "20", "--seeds", "1-2", "--dropout", "0.3", "--record", str(path))
    first = decompose(*args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "model mlp, 20 steps of batch 100, adam lr 0.001; base seed 0"
    assert len([x for x in lines if ": init " in x]) == 8
    assert lines[-10].split() == ["condition", "runs", "distinct", "mean", "std", "min", "max"] + [
        "var",
        "/",
        "var(all)",
    ]
    assert lines[-5].startswith("   init: 95% CI of the std [")
    record = decomposition.load(path)
    assert record.complete and record.meta["command"][3:5] == ["decompose", "--model"]
    assert record.distinct(lambda r: r.final_digest) == dict.fromkeys(CONDITIONS, 2)
    # the same command elsewhere gives the same lines, bit for bit
    again = decompose(*args[:-1], str(tmp_path / "again.json"))
    assert again.stdout.splitlines()[:-1] == lines[:-1]
    # an "all" run is an ordinary training run with the same three seeds
    run = record.find("all", 2)
    train = run_python(
        "-m", "reprodl", "train", "--model", "mlp", "--steps", "20", "--seed", "2",
        "--dropout", "0.3", "--dropout-seed", str(run.seeds.dropout),
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert f"fingerprint {run.final_digest}" in train.stdout
    assert f"({run.correct}/{run.total})" in train.stdout


@pytest.mark.slow
def test_decompose_never_overwrites_and_resumes_only_a_matching_record(tmp_path):
    path = tmp_path / "mlp.json"
    assert decompose("--steps", "5", "--seeds", "1", "--record", str(path)).returncode == 0
    before = path.read_bytes()
    refused = decompose("--steps", "5", "--seeds", "1-2", "--record", str(path))
    assert refused.returncode == 2 and "--resume" in refused.stderr
    mismatch = decompose("--steps", "6", "--seeds", "1-2", "--record", str(path), "--resume")
    assert mismatch.returncode == 2 and "spec does not match" in mismatch.stderr
    assert path.read_bytes() == before
    resumed = decompose("--steps", "5", "--seeds", "1-2", "--record", str(path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "4 runs recorded" in resumed.stdout
    assert decomposition.load(path).complete_seeds() == [1, 2]
    path.write_text(before.decode()[:100])
    corrupt = decompose("--steps", "5", "--seeds", "1-2", "--record", str(path), "--resume")
    assert corrupt.returncode == 2 and "not valid JSON" in corrupt.stderr


@pytest.mark.slow
def test_decompose_with_missing_data_exits_1(tmp_path):
    result = decompose(
        "--steps", "5", "--seeds", "1", "--record", str(tmp_path / "r.json"),
        "--data", str(tmp_path / "nowhere"),
    )  # fmt: skip
    assert result.returncode == 1 and "nowhere" in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_the_record_keeps_the_runs_settings_and_base_seed_not_its_seeds():
    from reprodl.training import RunSpec

    spec = RunSpec(model="mlp", seed=7, steps=5, batch_size=10).resolved()
    stored = decomposition.record_spec(spec, base=3)
    assert list(stored) == [*decomposition.SPEC_KEYS, "base"]
    assert stored["base"] == 3 and stored["steps"] == 5 and stored["model"] == "mlp"
    assert "seed" not in stored


def test_open_plan_resumes_only_a_record_that_exists(tmp_path):
    spec = {
        "model": "mlp",
        "steps": 2,
        "batch_size": 10,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "schedule": "constant",
        "dropout": 0.2,
        "base": 0,
    }
    path = tmp_path / "d.json"
    record, resumed = decomposition.open_plan(spec, [1, 2], ["init"], path)
    assert not resumed and record.runs == []
    decomposition.save(record, path)
    again, resumed = decomposition.open_plan(spec, [1, 2, 3], ["init"], path)
    assert resumed and again.seeds == [1, 2, 3]
