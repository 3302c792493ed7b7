"""reprodl.simulate: atomic sums whose order a seeded generator draws, and softmax regression
trained with them (chapter 8's simulated GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from reprodl import simulate
from reprodl.errors import UsageError


def test_atomic_sum_natural_order_is_the_sequential_float32_sum():
    terms = np.array([1e8, 1.0, -1e8, 1.0], dtype=np.float32)
    # ((1e8 + 1) - 1e8) + 1 in float32: the first 1 is lost to rounding
    assert simulate.atomic_sum(terms) == np.float32(1.0)
    assert simulate.atomic_sum(terms[[0, 2, 1, 3]]) == np.float32(2.0)


def test_atomic_sum_order_changes_bits_but_seed_replays_them():
    terms = np.random.default_rng(0).standard_normal((1000, 5)).astype(np.float32)
    a = simulate.atomic_sum(terms, np.random.default_rng(1))
    b = simulate.atomic_sum(terms, np.random.default_rng(1))
    c = simulate.atomic_sum(terms, np.random.default_rng(2))
    assert a.dtype == np.float32 and a.shape == (5,)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    np.testing.assert_allclose(a, terms.astype(np.float64).sum(axis=0), atol=1e-3)


def test_atomic_sum_of_small_integers_is_exact_in_any_order():
    terms = np.arange(100, dtype=np.float32)[:, None]
    for seed in range(3):
        assert simulate.atomic_sum(terms, np.random.default_rng(seed))[0] == 4950.0


def _toy_data(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n)


def test_softmax_regression_atomic_is_replayable_and_order_sensitive():
    images, labels = _toy_data()
    ref = simulate.softmax_regression_atomic(images, labels, steps=4, order_seed=None)
    again = simulate.softmax_regression_atomic(images, labels, steps=4, order_seed=None)
    one = simulate.softmax_regression_atomic(images, labels, steps=4, order_seed=1)
    one_again = simulate.softmax_regression_atomic(images, labels, steps=4, order_seed=1)
    assert len(ref) == 4 and ref[-1].shape == (785, 10) and ref[-1].dtype == np.float32
    assert ref[-1].tobytes() == again[-1].tobytes()
    assert one[-1].tobytes() == one_again[-1].tobytes()
    assert one[-1].tobytes() != ref[-1].tobytes()
    np.testing.assert_allclose(one[-1], ref[-1], atol=1e-5)  # different bits, same model


def test_softmax_regression_first_step_matches_the_matrix_gradient():
    images, labels = _toy_data()
    w1 = simulate.softmax_regression_atomic(images, labels, steps=1, learning_rate=0.5)[0]
    x = np.hstack([images[:100].reshape(100, -1) / 255.0, np.ones((100, 1))])
    d = np.full((100, 10), 0.1)  # softmax of zero logits
    d[np.arange(100), labels[:100]] -= 1
    np.testing.assert_allclose(w1, -0.5 / 100 * x.T @ d, atol=1e-6)


def test_softmax_regression_rejects_too_many_steps():
    images, labels = _toy_data(150)
    with pytest.raises(UsageError, match="2 steps of 100 need more than 150 examples"):
        simulate.softmax_regression_atomic(images, labels, steps=2, batch_size=100)
