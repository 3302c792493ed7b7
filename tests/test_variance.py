"""Repeated runs by source of randomness: the one-trace runner and the decomposition."""

import numpy as np
import pytest
from support import synthetic_digits

import reprodl
from reprodl import experiments, fingerprint, models, training
from reprodl.errors import UsageError
from reprodl.seeds import CONDITIONS, Seeds, seeds_for
from reprodl.training import SeedRunner


@pytest.fixture(autouse=True)
def _setup():
    reprodl.setup(0)


@pytest.fixture(scope="module")
def splits():
    evaluate = {"validation": synthetic_digits(100, 2), "test": synthetic_digits(100, 3)}
    return synthetic_digits(240, 1), evaluate


# --- the runner -------------------------------------------------------------------------------


def plain_train(name, split, seeds, steps, schedule=None, **kwargs):
    """The reference: build a fresh model and optimizer and call training.train."""
    if name != "softmax":
        kwargs["dropout_seed"] = seeds.dropout
    model = models.build(name, seeds.init, **kwargs)
    defaults = models.DEFAULTS[name]
    opt, lr = defaults.optimizer, defaults.learning_rate
    schedule = schedule or defaults.schedule
    cosine = steps if schedule == "cosine" else None
    record = training.train(
        model,
        split,
        steps=steps,
        batch_size=20,
        optimizer=training.make_optimizer(opt, lr, cosine_steps=cosine),
        order_seed=seeds.order,
    )
    return model, record


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("mlp", {"dropout": 0.5, "hidden": (16,)}),
        ("mlp", {"hidden": (16,), "schedule": "cosine"}),  # the schedule restarts every run
        ("softmax", {}),
    ],
)
def test_runner_gives_the_bits_of_training_train(splits, name, kwargs):
    train, evaluate = splits
    runner = SeedRunner(name, train, evaluate, steps=15, batch_size=20, **kwargs)
    # several runs in a row: each must start from its own fresh state, not the previous run's end
    for seeds in (Seeds.from_seed(3), Seeds.from_seed(4), seeds_for("dropout", 5)):
        run = runner(seeds)
        model, record = plain_train(name, train, seeds, 15, **kwargs)
        assert run.final_digest == record.final_digest
        assert run.losses.tobytes() == record.losses.tobytes()
        assert run.initial_digest == fingerprint.combine(record.initial_digests.values())
        for split_name, split in evaluate.items():
            assert run.evaluations[split_name] == training.evaluate(model, split)
        assert run.accuracy() == run.evaluations["test"].accuracy


def test_runner_rejects_no_steps_and_unknown_schedules(splits):
    with pytest.raises(UsageError, match="steps must be positive, got 0"):
        SeedRunner("softmax", splits[0], splits[1], steps=0)
    with pytest.raises(UsageError, match="unknown schedule 'step'; choose constant or cosine"):
        SeedRunner("softmax", splits[0], splits[1], steps=3, schedule="step")


def test_runner_defaults_to_the_models_schedule(splits):
    plain = SeedRunner("mlp", splits[0], splits[1], steps=3, hidden=(4,))
    assert (plain.optimizer_name, plain.schedule) == ("adam", "constant")
    runner = SeedRunner("mlp", splits[0], splits[1], steps=3, schedule="cosine")
    assert runner.schedule == "cosine"


def test_decomposition_varies_only_the_named_source(splits):
    train, evaluate = splits
    runner = SeedRunner("mlp", train, evaluate, steps=8, batch_size=20, dropout=0.5, hidden=(16,))
    seen = []
    parts = experiments.decompose(
        runner,
        [1, 2, 3],
        score=lambda r: r.accuracy(),
        on_run=lambda c, i, seeds, r: seen.append((c, i, seeds)),
    )
    assert list(parts) == list(CONDITIONS)
    assert [(c, i) for c, i, _ in seen] == [(c, i) for c in CONDITIONS for i in (1, 2, 3)]
    weights = {c: r.distinct(lambda run: run.initial_weights_digest) for c, r in parts.items()}
    states = {c: r.distinct(lambda run: run.initial_digest) for c, r in parts.items()}
    finals = {c: r.distinct(lambda run: run.final_digest) for c, r in parts.items()}
    # only the order varied: identical initial weights and dropout state, different final weights
    assert (weights["order"], states["order"], finals["order"]) == (1, 1, 3)
    # only dropout varied: identical weights, different dropout generator state
    assert (weights["dropout"], states["dropout"], finals["dropout"]) == (1, 3, 3)
    assert (weights["init"], finals["init"]) == (3, 3)
    assert (weights["all"], states["all"], finals["all"]) == (3, 3, 3)
    for c, runs in parts.items():
        assert [r.seeds for r in runs.results] == [seeds_for(c, s) for s in (1, 2, 3)]
        assert runs.scores.tolist() == [r.accuracy() for r in runs.results]


def test_softmax_init_seed_changes_nothing(splits):
    train, evaluate = splits
    runner = SeedRunner("softmax", train, evaluate, steps=6, batch_size=20)
    parts = experiments.decompose(
        runner, [1, 2, 3], ("init", "dropout", "order"), score=lambda r: 0
    )
    assert parts["init"].distinct(lambda r: r.final_digest) == 1
    assert parts["dropout"].distinct(lambda r: r.final_digest) == 1
    assert parts["order"].distinct(lambda r: r.final_digest) == 3


def test_decompose_rejects_an_unknown_condition_before_any_run():
    calls = []
    with pytest.raises(UsageError, match="unknown condition 'batch'; choose one of init, order"):
        experiments.decompose(calls.append, [1, 2], ("init", "batch"), score=lambda r: 0.0)
    assert len(calls) == 2  # the "init" runs; "batch" failed before its first run


def test_decompose_resets_the_global_generators_to_the_base_seed():
    draws = experiments.decompose(lambda seeds: float(np.random.random()), [1, 2], ("init", "all"))
    assert draws["init"].scores[0] == draws["init"].scores[1]  # globals at the base seed
    assert draws["all"].scores[0] != draws["all"].scores[1]


# --- the table of spreads ---------------------------------------------------------------------


def test_spread_table_matches_hand_computed_values():
    lines = experiments.spread_table(
        {"a": [0.90, 0.92, 0.94], "all": [0.90, 0.94, 0.98]}, distinct_results={"a": 3}
    )
    assert lines[0].split() == [
        "condition",
        "runs",
        "distinct",
        "mean",
        "std",
        "min",
        "max",
        "var",
        "/",
        "var(all)",
    ]
    # std of a: 2 points; of all: 4 points -> variance share 0.25
    assert lines[1].split() == ["a", "3", "3", "92.00", "2.00", "90.00", "94.00", "0.25"]
    assert lines[2].split() == ["all", "3", "3", "94.00", "4.00", "90.00", "98.00", "1.00"]
    same = experiments.spread_table({"x": [0.5, 0.5]}, reference=None)
    assert same[1].split() == ["x", "2", "1", "50.00", "0.00", "50.00", "50.00"]
