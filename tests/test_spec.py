"""RunSpec validates in the API (not only in the CLI), fills defaults from the one registry, and
round-trips through the dict a run record stores; every error is a ReprodlError."""

from __future__ import annotations

import pytest

from reprodl import errors, models, runtime
from reprodl.training import RunSpec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"model": "resnet", "steps": 1},
            "unknown model 'resnet'; choose one of softmax, mlp, cnn",
        ),
        ({"model": "mlp", "steps": -3}, "steps must be a positive integer, got -3"),
        ({"model": "mlp", "steps": 2.5}, "steps must be a positive integer, got 2.5"),
        ({"model": "mlp", "steps": 1, "seed": -1}, "seed must be a non-negative integer"),
        ({"model": "mlp", "steps": 1, "batch_size": 0}, "batch_size must be a positive integer"),
        ({"model": "mlp", "steps": 1, "intra_op_threads": 0}, "intra_op_threads must be a pos"),
        ({"model": "mlp", "steps": 1, "learning_rate": 0.0}, "learning_rate must be a positive"),
        ({"model": "mlp", "steps": 1, "learning_rate": float("nan")}, "learning_rate must be"),
        ({"model": "mlp", "steps": 1, "optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"model": "softmax", "steps": 1, "dropout": 0.5}, "the softmax model has no dropout"),
        ({"model": "mlp", "steps": 1, "dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"model": "mlp", "steps": 1, "dropout_seed": "random"}, "dropout_seed must be an int"),
        ({"model": "mlp", "steps": 1, "order": "sorted"}, "unknown order 'sorted'"),
        ({"model": "mlp", "steps": 1, "schedule": "step"}, "unknown schedule 'step'"),
        ({"model": "mlp", "steps": 1, "op_determinism": "yes"}, "op_determinism must be True"),
    ],
)
def test_invalid_specs_are_rejected_with_the_reason(kwargs, message):
    with pytest.raises(errors.UsageError, match=message):
        RunSpec(**kwargs)


def test_resolved_fills_defaults_from_the_model_registry_and_keeps_given_values():
    spec = RunSpec("cnn", steps=10).resolved()
    d = models.DEFAULTS["cnn"]
    assert (spec.optimizer, spec.learning_rate, spec.batch_size, spec.schedule) == (
        d.optimizer,
        d.learning_rate,
        d.batch_size,
        d.schedule,
    )
    assert spec.intra_op_threads == runtime.INTRA_OP_THREADS
    given = RunSpec("mlp", steps=10, learning_rate=0.25, batch_size=7, schedule="cosine")
    assert given.resolved().learning_rate == 0.25 and given.resolved().batch_size == 7
    assert given.resolved().schedule == "cosine"


def test_round_trip_through_a_dict_and_unknown_keys():
    spec = RunSpec("mlp", steps=5, dropout=0.25, dropout_seed="entropy")
    assert RunSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(errors.UsageError, match="unknown run settings: colour"):
        RunSpec.from_dict({**spec.to_dict(), "colour": "red"})
    with pytest.raises(errors.UsageError, match="missing 1 required positional argument: 'steps'"):
        RunSpec.from_dict({"model": "mlp"})


def test_every_error_is_a_reprodl_error_and_its_builtin():
    for cls, builtin in [
        (errors.UsageError, ValueError),
        (errors.MnistError, ValueError),
        (errors.DownloadError, OSError),
        (errors.RecordError, ValueError),
        (errors.CheckpointError, ValueError),
        (errors.SettingsError, RuntimeError),
        (errors.CrossCheckError, RuntimeError),
        (errors.SubprocessError, RuntimeError),
    ]:
        assert issubclass(cls, errors.ReprodlError) and issubclass(cls, builtin)
