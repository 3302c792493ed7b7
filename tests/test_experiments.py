"""Repeated runs: seeded runs repeat exactly, unseeded ones do not, and the statistics are right."""

import math
import random

import numpy as np
import pytest
from support import synthetic_digits

import reprodl
from reprodl import experiments, fingerprint, models, training
from reprodl.data import Split


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


def test_summary_statistics():
    s = experiments.summarise([1.0, 2.0, 3.0, 4.0])
    assert (s.n, s.mean, s.median, s.min, s.max, s.spread) == (4, 2.5, 2.5, 1.0, 4.0, 3.0)
    assert s.std == pytest.approx(math.sqrt(5 / 3))
    assert s.sem == pytest.approx(math.sqrt(5 / 3) / 2)
    low, high = s.ci95
    assert high - 2.5 == pytest.approx(2.5 - low)
    assert high - 2.5 == pytest.approx(3.1824 * math.sqrt(5 / 3) / 2)
    assert s.describe("{:.2f}") == (
        "n=4: mean 2.50 ± 1.29 (std), 95% CI of the mean [0.45, 4.55], min 1.00, max 4.00"
    )


def test_summary_of_one_run_has_no_spread_estimate():
    s = experiments.summarise(np.array([0.9]))
    assert s.n == 1 and math.isnan(s.std) and math.isnan(s.sem)
    assert all(math.isnan(b) for b in s.ci95)
    assert s.describe("{:.1f}") == "n=1: mean 0.9, min 0.9, max 0.9"


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], [1.0, float("nan")], [float("inf")]])
def test_summarise_rejects_bad_scores(bad):
    with pytest.raises(ValueError):
        experiments.summarise(bad)


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.7062), (9, 2.2622), (30, 2.0423), (40, 2.0211), (60, 2.0003), (120, 1.9799)],
)
def test_t_quantiles(df, expected):
    assert experiments.t_quantile_975(df) == pytest.approx(expected, abs=2e-4)


def test_t_quantiles_decrease_towards_the_normal():
    values = [experiments.t_quantile_975(df) for df in range(1, 500)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] > 1.96 > values[-1] - 0.01
    with pytest.raises(ValueError):
        experiments.t_quantile_975(0)


def test_seeded_runs_repeat_and_do_not_depend_on_what_ran_before():
    a = experiments.repeat(draw, [3, 3, 4])
    assert a.seeds == [3, 3, 4] and len(a) == 3
    assert a.scores[0] == a.scores[1] != a.scores[2]
    alone = experiments.repeat(draw, [4])
    assert alone.scores[0] == a.scores[2]
    assert a.distinct() == 2


def test_unseeded_runs_differ_even_after_the_globals_were_seeded():
    experiments.seed_globals(0)
    first = experiments.repeat(draw, runs=5)
    experiments.seed_globals(0)
    second = experiments.repeat(draw, runs=5)
    assert first.seeds == [None] * 5
    assert first.distinct() == 5
    assert not set(first.scores.tolist()) & set(second.scores.tolist())


def test_without_reseeding_runs_continue_the_global_state():
    experiments.seed_globals(0)
    plain = experiments.repeat(draw, [0, 0], reseed=False)
    assert plain.distinct() == 2  # the second run saw the state the first left behind
    reseeded = experiments.repeat(draw, [0, 0])
    assert reseeded.distinct() == 1
    assert plain.scores[0] == reseeded.scores[0]  # the first run started right after seeding


def test_results_scores_callbacks_and_lines():
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
    assert len(runs.seconds) == 3 and all(t >= 0 for t in runs.seconds)
    assert runs.lines("{:.2f}".format) == [
        "run 1  seed 1  score 0.51",
        "run 2  seed 2  score 0.52",
        "run 3  seed 2  score 0.52",
    ]
    assert experiments.repeat(lambda s: 1, runs=1).lines()[0] == "run 1  seed none  score 1.0000"
    assert runs.summary().mean == pytest.approx(0.5166666666666667)


def test_a_result_that_is_not_a_number_needs_a_score_function():
    with pytest.raises(TypeError, match="score="):
        experiments.repeat(lambda s: "text", [0])


@pytest.mark.parametrize(
    ("seeds", "runs"),
    [(None, None), (None, 0), ([], None), ([1, 2], 3), ([-1], None), ([True], None), ([1.5], None)],
)
def test_bad_plans_are_rejected(seeds, runs):
    with pytest.raises(ValueError):
        experiments.repeat(lambda s: 0.0, seeds, runs=runs)


def synthetic(n=120) -> Split:
    return synthetic_digits(n)


def test_training_runs_seeded_are_identical_unseeded_differ():
    import keras

    split = synthetic()

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
