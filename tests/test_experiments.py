"""Repeated runs: seeded runs repeat exactly, unseeded ones do not, and every result is kept."""

import random

import numpy as np
import pytest
from support import synthetic_digits

import reprodl
from reprodl import experiments, fingerprint, models, seeds, training
from reprodl.errors import UsageError


@pytest.fixture(autouse=True)
def _setup():
    reprodl.setup(0)


def draw(seed):
    """A 'training run' that draws from every global generator the book's runs use."""
    import keras
    import tensorflow as tf

    kernel = keras.initializers.GlorotUniform()((4, 4))  # unseeded: Keras' default seed
    return (
        random.random()
        + float(np.random.random())
        + float(tf.random.uniform(()))
        + float(np.asarray(kernel).sum())
    )


def test_seeded_runs_repeat_and_do_not_depend_on_what_ran_before():
    a = experiments.repeat(draw, [3, 3, 4])
    assert a.seeds == [3, 3, 4] and len(a) == 3
    assert a.scores[0] == a.scores[1] != a.scores[2]
    alone = experiments.repeat(draw, [4])
    assert alone.scores[0] == a.scores[2]
    assert a.distinct() == 2


def test_unseeded_runs_differ_even_after_the_globals_were_seeded():
    seeds.seed_globals(0)
    first = experiments.repeat(draw, runs=5)
    seeds.seed_globals(0)
    second = experiments.repeat(draw, runs=5)
    assert first.seeds == [None] * 5
    assert first.distinct() == 5
    assert not set(first.scores.tolist()) & set(second.scores.tolist())


def test_without_reseeding_runs_continue_the_global_state():
    seeds.seed_globals(0)
    plain = experiments.repeat(draw, [0, 0], reseed=False)
    assert plain.distinct() == 2  # the second run saw the state the first left behind
    reseeded = experiments.repeat(draw, [0, 0])
    assert reseeded.distinct() == 1
    assert plain.scores[0] == reseeded.scores[0]  # the first run started right after seeding


def test_results_scores_callbacks_and_lines(monkeypatch):
    clock = iter([10.0, 10.5, 20.0, 22.0, 30.0, 30.25, 40.0, 41.0])  # each run: start, end
    monkeypatch.setattr(experiments.time, "perf_counter", lambda: next(clock))
    seen = []
    runs = experiments.repeat(
        lambda seed: {"seed": seed, "accuracy": 0.5 + seed / 100},
        [1, 2, 2],
        score=lambda r: r["accuracy"],
        on_run=lambda i, seed, result: seen.append((i, seed, result["seed"])),
    )
    assert seen == [(1, 1, 1), (2, 2, 2), (3, 2, 2)]
    assert runs.scores.dtype == np.float64 and runs.scores.tolist() == [0.51, 0.52, 0.52]
    assert runs.distinct(key=lambda r: r["seed"]) == 2
    assert runs.seconds == [0.5, 2.0, 0.25]
    assert runs.lines("{:.2f}".format) == [
        "run 1  seed 1  score 0.51",
        "run 2  seed 2  score 0.52",
        "run 3  seed 2  score 0.52",
    ]
    assert experiments.repeat(lambda s: 1, runs=1).lines()[0] == "run 1  seed none  score 1.0000"
    assert runs.summary().mean == pytest.approx(0.5166666666666667)


def test_a_result_that_is_not_a_number_needs_a_score_function():
    with pytest.raises(TypeError, match="the run returned a str, not a number: pass score="):
        experiments.repeat(lambda s: "text", [0])


@pytest.mark.parametrize(
    ("plan", "runs", "message"),
    [
        (None, None, "give a list of seeds, or runs >= 1 for unseeded runs"),
        (None, 0, "give a list of seeds, or runs >= 1 for unseeded runs"),
        ([], None, "seeds is empty"),
        ([1, 2], 3, "runs=3 but 2 seeds were given"),
        ([-1], None, "seeds must be non-negative ints, got -1"),
        ([True], None, "seeds must be non-negative ints, got True"),
        ([1.5], None, "seeds must be non-negative ints, got 1.5"),
    ],
)
def test_bad_plans_are_rejected(plan, runs, message):
    with pytest.raises(UsageError, match=message):
        experiments.repeat(lambda s: 0.0, plan, runs=runs)


def test_training_runs_seeded_are_identical_unseeded_differ():
    import keras

    split = synthetic_digits(120)

    def train(seed):
        if seed is None:  # a beginner's model: default (unseeded) initializers
            model = keras.Sequential(
                [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)]
            )
        else:
            model = models.mlp(seed, hidden=(16,))
        record = training.train(
            model,
            split,
            steps=5,
            batch_size=20,
            optimizer=training.make_optimizer("sgd", 0.1),
            order_seed=seed,
        )
        return record

    def fingerprint_of(r):
        return r.final_digest

    seeded = experiments.repeat(train, [7, 7], score=lambda r: r.final_loss)
    assert seeded.distinct(key=fingerprint_of) == 1
    unseeded = experiments.repeat(train, runs=2, score=lambda r: r.final_loss)
    assert unseeded.distinct(key=fingerprint_of) == 2
    assert len(fingerprint.short(seeded.results[0].final_digest)) == fingerprint.SHORT
