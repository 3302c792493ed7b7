"""Repeated runs by source of randomness, the one-trace runner, and the paired comparison."""

import itertools
import math

import numpy as np
import pytest

import reprodl
from reprodl import experiments, fingerprint, models, training
from reprodl.data import Split
from reprodl.experiments import Seeds


@pytest.fixture(autouse=True)
def _setup():
    reprodl.setup(0)


def synthetic(n: int, seed: int) -> Split:
    """Random 'images' with labels that depend on them, so training has something to learn."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (images[:, :14].mean(axis=(1, 2)) > images[:, 14:].mean(axis=(1, 2))).astype(np.int64)
    labels += 2 * (images[:, :, :14].mean(axis=(1, 2)) > 127.5)
    return Split(images=images, labels=labels)


@pytest.fixture(scope="module")
def splits():
    return synthetic(240, 1), {"validation": synthetic(100, 2), "test": synthetic(100, 3)}


# --- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("condition", experiments.SOURCES)
def test_a_condition_varies_exactly_its_own_source(condition):
    base = Seeds.from_seed(0)
    plans = [experiments.seeds_for(condition, s, base=0) for s in range(1, 6)]
    for source in experiments.SOURCES:
        values = {getattr(p, source) for p in plans}
        if source == condition:
            assert len(values) == 5
        else:
            assert values == {getattr(base, source)}


def test_all_varies_every_source_and_unknown_conditions_fail():
    assert experiments.seeds_for("all", 7) == Seeds.from_seed(7)
    assert Seeds.from_seed(7).init == Seeds.from_seed(7).order == 7
    with pytest.raises(ValueError, match="unknown condition"):
        experiments.seeds_for("batch", 1)


def test_the_dropout_seed_is_its_own_stream():
    seeds = [experiments.dropout_seed_for(s) for s in range(200)]
    assert len(set(seeds)) == 200
    assert seeds == [experiments.dropout_seed_for(s) for s in range(200)]
    for s in range(200):  # never the number an init seed of the same run feeds to a layer
        assert seeds[s] != s
        assert models.layer_seeds(seeds[s], 1)[0] not in models.layer_seeds(s, 3)


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
    runner = experiments.SeedRunner(name, train, evaluate, steps=15, batch_size=20, **kwargs)
    # several runs in a row: each must start from its own fresh state, not the previous run's end
    for seeds in (Seeds.from_seed(3), Seeds.from_seed(4), experiments.seeds_for("dropout", 5)):
        run = runner(seeds)
        model, record = plain_train(name, train, seeds, 15, **kwargs)
        assert run.final_digest == record.final_digest
        assert run.losses.tobytes() == record.losses.tobytes()
        assert run.initial_digest == fingerprint.combine(record.initial_digests.values())
        for split_name, split in evaluate.items():
            assert run.evaluations[split_name] == training.evaluate(model, split)
        assert run.accuracy() == run.evaluations["test"].accuracy


def test_runner_rejects_no_steps_and_unknown_schedules(splits):
    with pytest.raises(ValueError):
        experiments.SeedRunner("softmax", splits[0], splits[1], steps=0)
    with pytest.raises(ValueError, match="unknown schedule"):
        experiments.SeedRunner("softmax", splits[0], splits[1], steps=3, schedule="step")


def test_runner_defaults_to_the_models_schedule(splits):
    plain = experiments.SeedRunner("mlp", splits[0], splits[1], steps=3, hidden=(4,))
    assert (plain.optimizer_name, plain.schedule) == ("adam", "constant")
    runner = experiments.SeedRunner("mlp", splits[0], splits[1], steps=3, schedule="cosine")
    assert runner.schedule == "cosine"


def test_decomposition_varies_only_the_named_source(splits):
    train, evaluate = splits
    runner = experiments.SeedRunner(
        "mlp", train, evaluate, steps=8, batch_size=20, dropout=0.5, hidden=(16,)
    )
    seen = []
    parts = experiments.decompose(
        runner,
        [1, 2, 3],
        score=lambda r: r.accuracy(),
        on_run=lambda c, i, seeds, r: seen.append((c, i, seeds)),
    )
    assert list(parts) == list(experiments.CONDITIONS)
    assert [(c, i) for c, i, _ in seen] == [
        (c, i) for c in experiments.CONDITIONS for i in (1, 2, 3)
    ]
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
        assert [r.seeds for r in runs.results] == [experiments.seeds_for(c, s) for s in (1, 2, 3)]
        assert runs.scores.tolist() == [r.accuracy() for r in runs.results]


def test_softmax_init_seed_changes_nothing(splits):
    train, evaluate = splits
    runner = experiments.SeedRunner("softmax", train, evaluate, steps=6, batch_size=20)
    parts = experiments.decompose(
        runner, [1, 2, 3], ("init", "dropout", "order"), score=lambda r: 0
    )
    assert parts["init"].distinct(lambda r: r.final_digest) == 1
    assert parts["dropout"].distinct(lambda r: r.final_digest) == 1
    assert parts["order"].distinct(lambda r: r.final_digest) == 3


def test_decompose_resets_the_global_generators_to_the_base_seed():
    draws = experiments.decompose(lambda seeds: float(np.random.random()), [1, 2], ("init", "all"))
    assert draws["init"].scores[0] == draws["init"].scores[1]  # globals at the base seed
    assert draws["all"].scores[0] != draws["all"].scores[1]


# --- statistics -------------------------------------------------------------------------------


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


def test_std_confidence_interval():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    s = math.sqrt(2.5)
    low, high = experiments.std_ci95(values)
    # chi-square quantiles for 4 degrees of freedom: 0.484419 (2.5%) and 11.143287 (97.5%)
    assert low == pytest.approx(s * math.sqrt(4 / 11.143287), rel=1e-5)
    assert high == pytest.approx(s * math.sqrt(4 / 0.484419), rel=1e-5)


def test_std_interval_lines_align_names_and_scale():
    lines = experiments.std_interval_lines({"a": [0.01, 0.02, 0.03, 0.04, 0.05], "all": [1, 1]})
    assert lines == ["  a: 95% CI of the std [0.95, 4.54]", "all: 95% CI of the std [0.00, 0.00]"]


def test_paired_test_on_identical_inputs_finds_no_difference():
    a = [0.91, 0.93, 0.92, 0.95, 0.90]
    p = experiments.paired_test(a, list(a))
    assert (p.n, p.wins, p.losses, p.ties) == (5, 0, 0, 5)
    assert (p.mean_difference, p.std_difference, p.ci95, p.t) == (0.0, 0.0, (0.0, 0.0), 0.0)
    assert p.p_t == p.p_sign == p.p_permutation == 1.0


def test_paired_test_constant_shift_is_as_significant_as_it_can_be():
    a = np.array([0.91, 0.93, 0.92, 0.95, 0.90, 0.94])
    p = experiments.paired_test(a + 0.01, a)
    assert (p.wins, p.losses, p.ties) == (6, 0, 0)
    assert p.t == math.inf and p.p_t == 0.0
    assert p.p_permutation == pytest.approx(2 / 2**6)  # only "all +" and "all -" are as extreme
    assert p.p_sign == pytest.approx(2 / 2**6)


def test_paired_test_matches_scipy_and_exact_enumeration():
    from scipy import stats

    rng = np.random.default_rng(5)
    a = rng.normal(0.92, 0.01, 10)
    b = a - 0.004 + rng.normal(0, 0.006, 10)
    p = experiments.paired_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert p.t == pytest.approx(ref.statistic, rel=1e-12)
    assert p.p_t == pytest.approx(ref.pvalue, rel=1e-9)
    d = a - b
    exact = [abs(np.dot(signs, d)) / 10 for signs in itertools.product([1, -1], repeat=10)]
    assert p.p_permutation == pytest.approx(np.mean(np.array(exact) >= abs(d.mean()) - 1e-15))
    assert p.permutations == 1024
    wins = int(np.sum(d > 0))
    tail = sum(math.comb(10, k) for k in range(max(wins, 10 - wins), 11)) / 2**10
    assert p.p_sign == pytest.approx(min(1.0, 2 * tail))
    assert p.ci95[0] < p.mean_difference < p.ci95[1]


def test_sign_test_by_hand():
    d = np.array([1, 1, 1, 1, 1, 1, 1, 1, -1, -1, 0], dtype=float)  # 8 wins, 2 losses, 1 tie
    p = experiments.paired_test(d, np.zeros_like(d))
    assert (p.wins, p.losses, p.ties) == (8, 2, 1)
    assert p.p_sign == pytest.approx(2 * (45 + 10 + 1) / 1024)


def test_permutation_test_with_many_pairs_is_seeded():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(size=30)
    p1 = experiments.paired_test(a, b, permutations=2000, seed=1)
    p2 = experiments.paired_test(a, b, permutations=2000, seed=1)
    assert p1 == p2 and p1.permutations == 2000
    assert 0 < p1.p_permutation <= 1
    assert abs(p1.p_permutation - p1.p_t) < 0.1  # both approximate the same null distribution


def test_paired_test_rejects_unpaired_input():
    with pytest.raises(ValueError):
        experiments.paired_test([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        experiments.paired_test([1.0], [2.0])


def test_paired_test_lines():
    p = experiments.paired_test([0.92, 0.93, 0.94], [0.91, 0.93, 0.92])
    lines = p.lines()
    assert lines[0] == "pairs: 3; a better in 2, b better in 0, ties 1"
    assert lines[1].startswith("mean difference a - b: +1.00 (95% CI [")


def test_welch_and_best_of():
    from scipy import stats

    a, b = [0.90, 0.92, 0.91, 0.95], [0.89, 0.90, 0.93]
    assert experiments.welch_test(a, b) == stats.ttest_ind(a, b, equal_var=False).pvalue
    assert experiments.best_of([0.2, 0.1, 0.5, 0.3]).tolist() == [0.2, 0.2, 0.5, 0.5]
