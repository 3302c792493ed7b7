"""The seed contracts: every derived seed is a pinned number (golden values), so a change of
recipe fails here before it silently changes the bits of every stored run."""

import random

import numpy as np
import pytest

import reprodl
from reprodl import seeds
from reprodl.batches import epoch_permutation
from reprodl.errors import UsageError
from reprodl.seeds import Seeds

# --- golden values, computed with the code before it moved into reprodl.seeds ------------------


@pytest.mark.parametrize(
    ("n", "seed", "epoch", "first"),
    [
        (1000, 7, 0, [816, 923, 151, 900, 213, 100, 851, 503]),
        (1000, 7, 3, [919, 225, 21, 78, 70, 40, 82, 156]),
        (60000, 0, 0, [4013, 23840, 29603, 43011, 58703]),
        (60000, 0, 1, [48620, 20956, 45422, 160, 38118]),
        (55000, 3, 2, [47844, 10396, 25125, 22771, 6726]),
    ],
)
def test_epoch_permutation_golden(n, seed, epoch, first):
    order = epoch_permutation(n, seed, epoch)
    assert order[: len(first)].tolist() == first
    assert sorted(order.tolist()) == list(range(n))


def test_epoch_permutation_of_ten_golden():
    assert epoch_permutation(10, 0, 0).tolist() == [4, 6, 2, 7, 3, 5, 9, 0, 8, 1]


@pytest.mark.parametrize(
    ("seed", "count", "expected"),
    [
        (0, 5, [821328063, 1529665512, 745650761, 737436699, 494636354]),
        (0, 1, [821328063]),
        (1, 5, [1835504127, 1731038949, 1320224556, 182557858, 321059914]),
        (7, 3, [2083679832, 1792079618, 2038301563]),
    ],
)
def test_layer_seeds_golden(seed, count, expected):
    assert seeds.layer_seeds(seed, count) == expected


@pytest.mark.parametrize(
    ("dropout_seed", "count", "expected"),
    [
        (0, 3, [1817441349, 1358922860, 1747420515]),
        (7, 2, [369571992, 1544939151]),
        (1189033389, 1, [580442434]),
    ],
)
def test_dropout_seeds_golden(dropout_seed, count, expected):
    assert seeds.dropout_seeds(dropout_seed, count) == expected


def test_dropout_seed_for_golden():
    got = [seeds.dropout_seed_for(s) for s in (0, 1, 2, 3, 4, 5, 7, 12345)]
    assert got == [
        1817441349,
        1189033389,
        307626447,
        457190280,
        423447357,
        1649007021,
        369571992,
        671067976,
    ]


@pytest.mark.parametrize(
    ("condition", "seed", "base", "expected"),
    [
        ("init", 5, 0, Seeds(init=5, order=0, dropout=1817441349)),
        ("order", 5, 0, Seeds(init=0, order=5, dropout=1817441349)),
        ("dropout", 5, 0, Seeds(init=0, order=0, dropout=1649007021)),
        ("all", 5, 0, Seeds(init=5, order=5, dropout=1649007021)),
        ("init", 3, 2, Seeds(init=3, order=2, dropout=307626447)),
        ("order", 3, 2, Seeds(init=2, order=3, dropout=307626447)),
        ("dropout", 3, 2, Seeds(init=2, order=2, dropout=457190280)),
        ("all", 3, 2, Seeds(init=3, order=3, dropout=457190280)),
    ],
)
def test_seeds_for_golden(condition, seed, base, expected):
    assert seeds.seeds_for(condition, seed, base) == expected


# --- the properties the golden values stand for ------------------------------------------------


def test_one_recipe_behind_every_derived_seed():
    assert seeds.layer_seeds(9, 4) == seeds.derive_seeds(9, 4)
    assert seeds.dropout_seeds(9, 4) == seeds.derive_seeds([9, 1], 4)
    assert all(seeds.dropout_seed_for(s) == seeds.dropout_seeds(s, 1)[0] for s in range(50))
    assert all(0 <= s < 2**31 - 1 for s in seeds.derive_seeds(123, 1000))
    assert all(isinstance(s, int) for s in seeds.derive_seeds(123, 3))


def test_initializer_and_dropout_seeds_never_meet():
    assert not set(seeds.layer_seeds(7, 5)) & set(seeds.dropout_seeds(7, 3))
    derived = [seeds.dropout_seed_for(s) for s in range(200)]
    assert len(set(derived)) == 200
    for s in range(200):  # never the number an init seed of the same run feeds to a layer
        assert derived[s] != s
        assert seeds.layer_seeds(derived[s], 1)[0] not in seeds.layer_seeds(s, 3)


@pytest.mark.parametrize("condition", seeds.SOURCES)
def test_a_condition_varies_exactly_its_own_source(condition):
    base = Seeds.from_seed(0)
    plans = [seeds.seeds_for(condition, s, base=0) for s in range(1, 6)]
    for source in seeds.SOURCES:
        values = {getattr(p, source) for p in plans}
        if source == condition:
            assert len(values) == 5
        else:
            assert values == {getattr(base, source)}


def test_all_varies_every_source_and_unknown_conditions_fail():
    assert seeds.CONDITIONS == ("init", "order", "dropout", "all")
    assert seeds.SOURCES == ("init", "order", "dropout")
    assert seeds.seeds_for("all", 7) == Seeds.from_seed(7)
    assert Seeds.from_seed(7).init == Seeds.from_seed(7).order == 7
    with pytest.raises(UsageError, match="unknown condition 'batch'; choose one of init, order"):
        seeds.seeds_for("batch", 1)


@pytest.mark.parametrize("count", [0, -1])
def test_derive_seeds_needs_a_positive_count(count):
    with pytest.raises(UsageError, match=f"count must be positive, got {count}"):
        seeds.derive_seeds(1, count)


def test_seed_globals_repeats_and_fresh_entropy_does_not():
    reprodl.setup(0)  # the pins, before TensorFlow's first op
    import keras

    def draw():
        kernel = keras.initializers.GlorotUniform()((3, 3))  # unseeded: Keras' global seed
        return (random.random(), float(np.random.random()), float(np.asarray(kernel).sum()))

    seeds.seed_globals(4)
    first = draw()
    seeds.seed_globals(4)
    assert draw() == first
    seeds.fresh_entropy()
    a = draw()
    seeds.fresh_entropy()
    b = draw()
    assert a != first and all(x != y for x, y in zip(a, b, strict=True))
