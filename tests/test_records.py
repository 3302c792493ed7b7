"""Run records: exact round trip, atomic writes, and a clear error for every kind of bad file."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from support import VARIABLES, synthetic_record

from reprodl import records, schemas
from reprodl.errors import RecordError, UsageError
from reprodl.records import RunRecord
from reprodl.training.state import VariableInfo


def test_round_trip_is_exact(tmp_path):
    losses = np.array(
        [2.302585, 0.1, 1e-40, np.float32(1) / 3, np.nan, np.inf, -np.inf, 7.0], dtype=np.float32
    )
    rec = synthetic_record(steps=8, losses=losses)
    path = records.save(rec, tmp_path / "run.json")
    back = records.load(path)
    assert back.meta == rec.meta and back.variables == rec.variables
    assert back.digests == rec.digests and back.final_digest == rec.final_digest
    assert back.losses.dtype == np.float32
    assert np.array_equal(back.losses.view(np.uint32)[:4], losses.view(np.uint32)[:4])
    assert np.isnan(back.losses[4]) and back.losses[5] == np.inf and back.losses[6] == -np.inf
    assert back.source == str(path) and rec.source == str(path)
    payload = json.loads(path.read_text())
    assert payload["format"] == "reprodl.run-record" and payload["version"] == 2
    assert payload["meta"]["source"] == "reprodl" and payload["meta"]["loss"] == "step"
    assert payload["meta"]["interrupted"] is None
    assert payload["losses"][4:7] == ["NaN", "Infinity", "-Infinity"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temp file left


def test_saving_an_invalid_record_leaves_the_old_file(tmp_path):
    path = tmp_path / "run.json"
    records.save(synthetic_record(), path)
    before = path.read_bytes()
    bad = synthetic_record()
    bad.final_digest = "0" * 64
    with pytest.raises(RecordError, match="final_digest does not match"):
        records.save(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def _edit(payload: dict, change) -> dict:
    change(payload)
    return payload


def _set(path: str, value):
    def change(payload):
        *parents, last = path.split(".")
        node = payload
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return change


_DELETE = object()

CORRUPT_JSON = {
    "bad JSON": (lambda text: "{not json", "not valid JSON"),
    "truncated": (lambda text: text[: len(text) // 2], "truncated"),
    "empty": (lambda text: "", "empty"),
    "JSON NaN literal": (
        lambda text: json.dumps({**json.loads(text), "losses": [math.nan] * 12}),
        "NaN is not valid JSON",
    ),
    "a list": (lambda text: "[1, 2]", "not a run record"),
}

CORRUPT_FIELDS = {
    "wrong format": (_set("format", "something-else"), "not a run record (format"),
    "no format": (_set("format", _DELETE), "no 'format' field"),
    "wrong version": (
        _set("version", 3),
        "record format version 3 is not supported (this reprodl reads versions 1 and 2",
    ),
    "missing losses": (_set("losses", _DELETE), "missing field 'losses'"),
    "missing final digest": (_set("final_digest", _DELETE), "missing field 'final_digest'"),
    "missing meta field": (_set("meta.seed", _DELETE), "missing field 'meta.seed'"),
    "wrong meta type": (_set("meta.steps", "12"), "'meta.steps' has the wrong type"),
    "bad checkpoints": (_set("meta.checkpoints", {"dir": 3}), "meta.checkpoints"),
    "too few losses": (lambda p: p["losses"].pop(), "11 losses for 12 steps"),
    "not float32": (lambda p: p["losses"].__setitem__(2, 0.1), "not an exact float32"),
    "not a number": (lambda p: p["losses"].__setitem__(2, "x"), "loss of step 3 is not a number"),
    "bad digest": (
        _set("digests.4.net/dense/bias", "xyz"),
        "bad digest of net/dense/bias at step 4",
    ),
    "short digest": (_set("digests.8.net/dense/kernel", "ab" * 31), "not 64 hex digits"),
    "digest missing": (_set("digests.4.net/dense/bias", _DELETE), "not one per variable"),
    "no initial digests": (_set("digests.0", _DELETE), "no digests for step 0"),
    "digest step": (_set("digests.x", {}), "'x' is not a step number"),
    "final digest": (_set("final_digest", "f" * 64), "final_digest does not match"),
    "bad final": (_set("final_digest", "F" * 64), "bad final_digest"),
    "variables": (_set("variables", []), "'variables' must be a non-empty list"),
    "variable kind": (
        lambda p: p["variables"][0].__setitem__("kind", "x"),
        "field 'variables[0].kind' must be 'weight' or 'rng' or 'optimizer', got 'x'",
    ),
    "variable name": (lambda p: p["variables"][1].pop("name"), "missing field 'variables[1].name'"),
    "same name twice": (
        lambda p: p["variables"][1].__setitem__("name", "net/dense/kernel"),
        "two variables have the same name (net/dense/kernel)",
    ),
    "negative shape": (
        lambda p: p["variables"][1].__setitem__("shape", [-2]),
        "field 'variables[1].shape[0]' must not be negative, got -2",
    ),
    "meta not an object": (_set("meta", []), "field 'meta' has the wrong type (array; expected"),
    "integral float": (
        _set("meta.steps", 12.0),
        "field 'meta.steps' has the wrong type (number 12.0; expected integer)",
    ),
    "no steps": (_set("meta.steps", 0), "field 'meta.steps' must be positive, got 0"),
    "negative digest_every": (
        _set("meta.digest_every", -4),
        "field 'meta.digest_every' must not be negative, got -4",
    ),
    "command of numbers": (
        _set("meta.command", ["python", 3]),
        "field 'meta.command[1]' has the wrong type (integer 3; expected string)",
    ),
    "a boolean loss": (
        lambda p: p["losses"].__setitem__(0, True),
        "the loss of step 1 is not a number (True)",
    ),
    "a boolean version": (_set("version", True), "missing or invalid 'version' (expected 2)"),
    "step with a zero": (_set("digests.04", {}), "digest step '04' is not a step number"),
    "step after the last": (_set("digests.16", {}), "digests for step 16, after the last step 12"),
    "digest with a newline": (
        _set("digests.4.net/dense/bias", "a" * 64 + "\n"),
        "bad digest of net/dense/bias at step 4 (not 64 hex digits)",
    ),
    "missing source": (_set("meta.source", _DELETE), "missing field 'meta.source'"),
    "missing interrupted": (_set("meta.interrupted", _DELETE), "missing field 'meta.interrupted'"),
    "unknown source": (
        _set("meta.source", "pytorch"),
        "field 'meta.source' must be 'reprodl' or 'keras', got 'pytorch'",
    ),
    "unknown loss kind": (_set("meta.loss", "mean"), "field 'meta.loss' must be 'step' or"),
    "empty interruption": (_set("meta.interrupted", ""), "meta.interrupted"),
    "loop record without run": (
        _set("meta.run", None),
        "field 'meta.run' must be the run's RunSpec in a record of the package's loop, got None",
    ),
    "loop record without seed": (
        _set("meta.seed", None),
        "field 'meta.seed' must be an integer in a record of the package's loop, got None",
    ),
    "loop record of running means": (
        _set("meta.loss", "keras logs"),
        "field 'meta.loss' must be 'step' in a record of the package's loop, got 'keras logs'",
    ),
    "checkpoint without digests": (
        _set("meta.checkpoints", {"dir": "run.ckpt", "every": 3}),
        "no digests for checkpoint step 3",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_JSON))
def test_corrupt_file_gives_clear_error(tmp_path, case):
    path = records.save(synthetic_record(), tmp_path / "run.json")
    corrupt, expected = CORRUPT_JSON[case]
    text = path.read_text()
    path.write_text(corrupt(text))
    with pytest.raises(RecordError, match=f"^{re.escape(str(path))}: .*{re.escape(expected)}"):
        records.load(path)


@pytest.mark.parametrize("case", sorted(CORRUPT_FIELDS))
def test_invalid_field_gives_clear_error(tmp_path, case):
    path = records.save(synthetic_record(), tmp_path / "run.json")
    change, expected = CORRUPT_FIELDS[case]
    payload = _edit(json.loads(path.read_text()), change)
    path.write_text(json.dumps(payload))
    with pytest.raises(RecordError, match=f"^{re.escape(str(path))}: .*{re.escape(expected)}"):
        records.load(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(RecordError, match="nowhere.json: no such file"):
        records.load(tmp_path / "nowhere.json")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RecordError, match="bin.json: not a text file"):
        records.load(binary)


def _named(rec: RunRecord, name: str) -> RunRecord:
    rec.source = name
    return rec


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (lambda: synthetic_record(model="cnn"), "different models (mlp and cnn)"),
        (lambda: synthetic_record(variables=VARIABLES[:3]), "net/logits/kernel only in the first"),
        (lambda: synthetic_record(variables=VARIABLES[::-1]), "in another order"),
        (
            lambda: synthetic_record(
                variables=[*VARIABLES[:3], ("net/logits/kernel", [2, 3], "float32", "weight")]
            ),
            "net/logits/kernel is float32[2, 2] in the first and float32[2, 3]",
        ),
        (lambda: synthetic_record(steps=16), "different numbers of steps (12 and 16)"),
        (lambda: synthetic_record(every=6), "digests recorded at different steps"),
    ],
)
def test_mismatched_records_cannot_be_compared(other, expected):
    a = _named(synthetic_record(), "a.json")
    b = _named(other(), "b.json")
    prefix = re.escape("a.json and b.json cannot be compared: ")
    with pytest.raises(RecordError, match=f"^{prefix}.*{re.escape(expected)}"):
        records.check_comparable(a, b)


def test_losses_stored_as_exact_float32_values(tmp_path):
    losses = np.float32([0.1, 1 / 3, 2.5e-8, 123.456])
    path = records.save(synthetic_record(steps=4, losses=losses), tmp_path / "r.json")
    stored = json.loads(Path(path).read_text())["losses"]
    assert all(float(np.float32(x)) == x for x in stored)
    assert [np.float32(x) for x in stored] == list(losses)
    assert not any(isinstance(x, float) and math.isnan(x) for x in stored)


def test_the_schema_ships_with_the_package_and_is_valid():
    schema = schemas.load(records.SCHEMA)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["format"] == {"const": records.FORMAT}
    assert schema["properties"]["version"] == {"const": records.VERSION}
    assert set(schema["required"]) == set(records.to_json(synthetic_record()))
    with pytest.raises(ValueError, match="no schema 'nope'; the package has run_record"):
        schemas.load("nope")


def test_run_meta_builds_the_formats_meta_in_the_schemas_order():
    schema = schemas.load(records.SCHEMA)["properties"]["meta"]
    settings, versions = {"PYTHONHASHSEED": "0"}, {"python": "3.11.7"}
    keras_meta = records.run_meta(
        model="net",
        steps=3,
        settings=settings,
        versions=versions,
        source="keras",
        loss="keras logs",
    )
    assert list(keras_meta) == list(schema["properties"]) == schema["required"]
    assert keras_meta == {
        "model": "net",
        "seed": None,
        "batch_size": None,
        "steps": 3,
        "run": None,
        "command": None,
        "settings": settings,
        "versions": versions,
        "digest_every": 0,
        "checkpoints": None,
        "source": "keras",
        "loss": "keras logs",
        "interrupted": None,
    }
    loop_meta = records.run_meta(
        model="mlp",
        seed=1,
        batch_size=20,
        steps=3,
        run={"model": "mlp"},
        command=("python", "-m", "reprodl"),
        settings=settings,
        versions=versions,
        checkpoints={},
    )
    assert loop_meta["command"] == ["python", "-m", "reprodl"] and loop_meta["checkpoints"] is None
    assert (loop_meta["source"], loop_meta["loss"], loop_meta["interrupted"]) == (
        "reprodl",
        "step",
        None,
    )
    assert loop_meta["settings"] is not settings  # the record holds its own copies
    rec = synthetic_record(steps=3)
    rec.meta = loop_meta
    assert records.from_json(records.to_json(rec)).meta == loop_meta


def test_from_json_checks_a_record_in_memory():
    payload = records.to_json(synthetic_record())
    assert records.from_json(payload).name == "<memory>"
    payload["meta"]["batch_size"] = -1
    with pytest.raises(RecordError, match="^<memory>: field 'meta.batch_size' must be positive"):
        records.from_json(payload)


def _trained(rec: RunRecord, start_step: int = 0) -> SimpleNamespace:
    """What training.run returns as its record, for the run that ``rec`` describes."""
    last = max(rec.digests)
    return SimpleNamespace(
        start_step=start_step,
        steps=rec.steps,
        losses=rec.losses,
        initial_digests=rec.digests[0],
        digests={s: d for s, d in rec.digests.items() if 0 < s < last},
        final_digests=rec.digests[last],
        final_digest=rec.final_digest,
        variables=[VariableInfo(**{**v, "shape": tuple(v["shape"])}) for v in rec.variables],
    )


def _spec(rec: RunRecord) -> SimpleNamespace:
    values = {**rec.meta["run"], "seed": rec.meta["seed"], "batch_size": rec.meta["batch_size"]}
    return SimpleNamespace(to_dict=lambda: dict(values))


def test_save_run_writes_a_record_that_loads(tmp_path):
    rec = synthetic_record()
    path = tmp_path / "runs" / "a.json"
    saved = records.save_run(
        spec=_spec(rec),
        result=_trained(rec),
        path=path,
        digest_every=4,
        checkpoint_every=4,
        command=["python", "-m", "reprodl", "train"],
    )
    back = records.load(path)
    assert back.digests == rec.digests and back.final_digest == rec.final_digest
    assert np.array_equal(back.losses.view(np.uint32), rec.losses.view(np.uint32))
    assert back.meta["checkpoints"] == {"dir": "a.ckpt", "every": 4}
    assert back.checkpoint_dir() == path.parent / "a.ckpt" and back.checkpoint_steps()[-1] == 12
    assert back.meta["command"] == ["python", "-m", "reprodl", "train"] and saved.source == str(
        path
    )
    rec6 = synthetic_record(every=6)
    elsewhere = records.save_run(
        spec=_spec(rec6),
        result=_trained(rec6),
        path=tmp_path / "b.json",
        checkpoint_every=6,
        checkpoint_dir=tmp_path / "ckpts" / "b",
    )
    assert elsewhere.meta["checkpoints"] == {"dir": "ckpts/b", "every": 6}
    assert elsewhere.meta["digest_every"] == 0 and elsewhere.meta["command"] is None


def test_save_run_takes_keywords_only_and_refuses_a_resumed_run(tmp_path):
    rec = synthetic_record()
    with pytest.raises(TypeError, match="takes 0 positional arguments"):
        records.save_run(_spec(rec), _trained(rec), tmp_path / "a.json")  # type: ignore[misc]
    with pytest.raises(UsageError, match="a run record covers a whole run: this one was resumed"):
        records.save_run(spec=_spec(rec), result=_trained(rec, 4), path=tmp_path / "a.json")
    assert not (tmp_path / "a.json").exists()


def test_steps_text_shortens_long_lists():
    assert records.steps_text([0, 4, 8]) == "0, 4, 8"
    assert records.steps_text(list(range(0, 101, 10))) == "0, 10, 20, ..., 100"


# --- format version 2: Keras callback records; version 1 files --------------------------------


def _keras_like(**meta) -> RunRecord:
    """A synthetic record as :class:`reprodl.keras.RecordRun` writes them."""
    rec = synthetic_record()
    rec.meta.update({"source": "keras", "run": None, "seed": None, "batch_size": None, **meta})
    return rec


def test_version_1_files_still_load_as_package_loop_records(tmp_path):
    path = records.save(synthetic_record(), tmp_path / "v2.json")
    payload = json.loads(path.read_text())
    for key in ("source", "loss", "interrupted"):
        del payload["meta"][key]
    payload["version"] = 1
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(payload))
    back = records.load(old)
    assert (back.meta["source"], back.meta["loss"], back.meta["interrupted"]) == (
        "reprodl",
        "step",
        None,
    )
    assert back.replayable and back.interrupted is None
    assert json.loads(old.read_text())["version"] == 1  # the file itself is not rewritten
    new = records.load(path)
    assert back.meta == new.meta and back.digests == new.digests
    payload["meta"]["seed"] = None  # version 1 has no null seeds
    old.write_text(json.dumps(payload))
    with pytest.raises(RecordError, match="'meta.seed' must be an integer in a record of the"):
        records.load(old)


def test_keras_callback_records_round_trip(tmp_path):
    rec = _keras_like(interrupted="SIGTERM")
    rec.variables[2]["kind"] = "optimizer"  # not a weight: the final digest stays
    back = records.load(records.save(rec, tmp_path / "k.json"))
    assert back.meta == rec.meta and back.variables == rec.variables
    assert not back.replayable and back.interrupted == "SIGTERM" and back.meta["seed"] is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"run": {"model": "mlp"}},
            "field 'meta.run' must be null in a Keras callback's record, got {'model': 'mlp'}",
        ),
        (
            {"checkpoints": {"dir": "k.ckpt", "every": 4}},
            "field 'meta.checkpoints' must be null in a Keras callback's record",
        ),
        ({"loss": "mean"}, "field 'meta.loss' must be 'step' or 'keras logs', got 'mean'"),
    ],
)
def test_invalid_keras_callback_records(change, expected):
    payload = records.to_json(_keras_like())
    payload["meta"].update(change)
    with pytest.raises(RecordError, match=f"^<memory>: {re.escape(expected)}"):
        records.from_json(payload)


def test_records_of_other_recorders_or_losses_cannot_be_compared():
    loop, keras_rec = _named(synthetic_record(), "a.json"), _named(_keras_like(), "b.json")
    with pytest.raises(RecordError, match=r"different recorders \(reprodl and keras\)"):
        records.check_comparable(loop, keras_rec)
    logs = _named(_keras_like(loss="keras logs"), "c.json")
    with pytest.raises(RecordError, match=r"different kinds of losses \(step and keras logs\)"):
        records.check_comparable(keras_rec, logs)
    records.check_comparable(keras_rec, _keras_like())  # two callback records compare


def _replicated(replicas: int = 2, workers: int = 1) -> RunRecord:
    rec = synthetic_record()
    replica_settings = {"workers": workers, "feed": "values", "dropout_masks": "per_replica"}
    rec.meta["run"] = {**rec.meta["run"], "replicas": replicas, **replica_settings}
    return rec


def test_replicated_records_round_trip_and_cannot_be_replayed(tmp_path):
    back = records.load(records.save(_replicated(), tmp_path / "r.json"))
    assert back.meta == _replicated().meta and back.replicas == 2
    assert not back.replayable
    assert back.replay_problem == (
        "trained with 2 replicas: replay supports single-device runs only; use compare"
    )
    workers = _replicated(2, workers=2)
    assert workers.replay_problem.startswith("trained with 2 replicas on 2 workers: ")
    assert _replicated(1).replay_problem.startswith("trained with 1 replica: ")
    single = synthetic_record()
    assert single.replicas is None and single.replay_problem is None and single.replayable
    assert _keras_like().replay_problem == (
        "recorded by a Keras callback: it cannot be replayed; use compare"
    )
    records.check_comparable(single, back)  # meta differences only: compare reports them


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"replicas": 0}, "meta.run.replicas"),
        ({"feed": "slices"}, "meta.run.feed"),
        ({"dropout_masks": "mixed"}, "meta.run.dropout_masks"),
        ({"workers": None}, "meta.run.workers"),
    ],
)
def test_invalid_replica_settings_are_refused(change, expected):
    payload = records.to_json(_replicated())
    payload["meta"]["run"].update(change)
    with pytest.raises(RecordError, match=f"^<memory>: .*{re.escape(expected)}"):
        records.from_json(payload)


def test_replica_settings_come_together():
    payload = records.to_json(_replicated())
    del payload["meta"]["run"]["feed"]
    with pytest.raises(RecordError, match="feed"):
        records.from_json(payload)
    payload = records.to_json(synthetic_record())
    payload["meta"]["run"]["workers"] = 2  # workers without replicas
    with pytest.raises(RecordError, match="replicas"):
        records.from_json(payload)
