"""The NumPy two-layer network: its gradients are right, its functions leave their inputs alone,
the batch size comes from the batch, and training is bit-reproducible per seed."""

from __future__ import annotations

import numpy as np
import pytest
from support import run_python

from reprodl import fingerprint
from reprodl import numpy_net as nn
from reprodl.errors import UsageError

INPUTS, HIDDEN, CLASSES = 20, 16, 5
REG = 1e-3


def batch(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic inputs in [0, 1) and labels covering every class."""
    rng = np.random.default_rng(seed)
    return rng.random((n, INPUTS)), rng.integers(0, CLASSES, size=n)


def small_params(dtype=np.float64, seed: int = 0) -> nn.Params:
    p = nn.init_params(np.random.default_rng(seed), INPUTS, HIDDEN, CLASSES, dtype=dtype)
    # Non-zero biases, so their gradients are exercised from a generic point.
    p.b1[:] = np.random.default_rng(seed + 100).normal(0, 0.1, HIDDEN)
    p.b2[:] = np.random.default_rng(seed + 200).normal(0, 0.1, CLASSES)
    return p


def linearly_separable(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points whose class is the argmax of a fixed random linear map: learnable."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, INPUTS)).astype(np.float32)
    w = np.random.default_rng(99).standard_normal((INPUTS, CLASSES)).astype(np.float32)
    return x, np.argmax(x @ w, axis=1)


def test_init_is_a_function_of_the_generator() -> None:
    a = nn.init_params(np.random.default_rng(3), INPUTS, HIDDEN, CLASSES)
    b = nn.init_params(np.random.default_rng(3), INPUTS, HIDDEN, CLASSES)
    c = nn.init_params(np.random.default_rng(4), INPUTS, HIDDEN, CLASSES)
    assert fingerprint.weights_digest(a.arrays()) == fingerprint.weights_digest(b.arrays())
    assert fingerprint.weights_digest(a.arrays()) != fingerprint.weights_digest(c.arrays())
    assert [x.shape for x in a.arrays()] == [
        (INPUTS, HIDDEN),
        (HIDDEN,),
        (HIDDEN, CLASSES),
        (CLASSES,),
    ]
    assert all(x.dtype == np.float32 for x in a.arrays())
    assert not a.b1.any() and not a.b2.any()
    assert a.W1.std() == pytest.approx(np.sqrt(2 / INPUTS), rel=0.2)


def test_gradient_check_passes_on_every_coordinate() -> None:
    x, y = batch(7)
    check = nn.gradient_check(small_params(), x, y, REG, eps=1e-5)
    assert check.checked == {
        "W1": INPUTS * HIDDEN,
        "b1": HIDDEN,
        "W2": HIDDEN * CLASSES,
        "b2": CLASSES,
    }
    assert check.passed(1e-7), check.relative_error
    assert max(check.max_absolute_error.values()) < 1e-8


def test_gradient_check_catches_a_wrong_gradient() -> None:
    def no_regularisation_in_w1(params, cache, labels, reg):
        grads = nn.backward(params, cache, labels, reg)
        grads.W1 = grads.W1 - reg * params.W1
        return grads

    x, y = batch(7)
    check = nn.gradient_check(small_params(), x, y, REG, backward_fn=no_regularisation_in_w1)
    assert not check.passed(1e-4)
    assert check.relative_error["W1"] > 1e-3
    assert check.relative_error["W2"] < 1e-7  # the other gradients are still right


def test_sampled_gradient_check_is_seeded() -> None:
    x, y = batch(5)
    p = small_params()
    a = nn.gradient_check(p, x, y, REG, per_parameter=10, rng=np.random.default_rng(5))
    b = nn.gradient_check(p, x, y, REG, per_parameter=10, rng=np.random.default_rng(5))
    assert a.checked == {"W1": 10, "b1": 10, "W2": 10, "b2": CLASSES}
    assert a.relative_error == b.relative_error
    assert a.passed(1e-7)


def test_gradients_match_gradient_tape() -> None:
    x, y = batch(32)
    p = small_params(np.float32)
    value, grads = nn.loss_and_gradients(p, x.astype(np.float32), y, REG)
    tf_value, tf_grads = nn.tf_gradients(p, x, y, REG)
    assert abs(float(value) - tf_value) < 1e-6
    for (name, ours), theirs in zip(grads.items(), tf_grads.arrays(), strict=True):
        assert ours.dtype == theirs.dtype == np.float32
        assert np.abs(ours - theirs).max() < 1e-6, name
    # In float64 the two agree to rounding error.
    _, g64 = nn.loss_and_gradients(p.astype(np.float64), x, y, REG)
    _, t64 = nn.tf_gradients(p.astype(np.float64), x, y, REG)
    for ours, theirs in zip(g64.arrays(), t64.arrays(), strict=True):
        assert np.abs(ours - theirs).max() < 1e-14


def test_relu_and_softmax_leave_their_inputs_alone() -> None:
    z = np.array([[-1.5, 0.0, 2.0], [3.0, -0.5, 1.0]], dtype=np.float32)
    before = z.copy()
    h = nn.relu(z)
    p = nn.softmax(z)
    nn.log_softmax(z)
    np.testing.assert_array_equal(z, before)
    assert h is not z and p is not z
    np.testing.assert_array_equal(h, [[0, 0, 2], [3, 0, 1]])
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)


def test_backward_leaves_the_forward_cache_alone() -> None:
    x, y = batch(6)
    p = small_params()
    cache = nn.forward(p, x)
    saved = {k: v.copy() for k, v in vars(cache).items()}
    first = nn.backward(p, cache, y, REG)
    for k, v in vars(cache).items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)
    assert cache.z1.min() < 0  # the pre-activations were not overwritten by the ReLU
    second = nn.backward(p, cache, y, REG)  # a second backward pass gives the same gradients
    for a, b in zip(first.arrays(), second.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_backward_uses_the_batch_size_of_the_batch() -> None:
    p = small_params()
    x, y = batch(13)
    for n in (1, 4, 13):  # one network, batches of different sizes, all exact
        check = nn.gradient_check(p, x[:n], y[:n], REG, eps=1e-5)
        assert check.passed(1e-7), (n, check.relative_error)
    # The mean over the batch: duplicating every example leaves the gradients unchanged.
    _, once = nn.loss_and_gradients(p, x, y, REG)
    _, twice = nn.loss_and_gradients(p, np.concatenate([x, x]), np.concatenate([y, y]), REG)
    for a, b in zip(once.arrays(), twice.arrays(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_predict_and_evaluate() -> None:
    x, y = batch(10)
    p = small_params()
    pred = nn.predict(p, x)
    assert pred.shape == (10,)
    assert np.array_equal(pred, np.argmax(nn.forward(p, x).probs, axis=1))
    evaluation = nn.evaluate(p, x, pred, batch_size=3)
    assert (evaluation.correct, evaluation.total) == (10, 10)


def test_sgd_update_moves_against_the_gradient() -> None:
    p = small_params()
    before = p.copy()
    x, y = batch(8)
    value, grads = nn.loss_and_gradients(p, x, y, REG)
    nn.sgd_update(p, grads, 0.1)
    for a, b, g in zip(p.arrays(), before.arrays(), grads.arrays(), strict=True):
        np.testing.assert_allclose(a, b - 0.1 * g)
    assert nn.loss(p, x, y, REG) < value


def _train(seed: int, steps: int = 60) -> tuple[nn.Params, object]:
    x, y = linearly_separable(500)
    p = nn.init_params(np.random.default_rng(seed), INPUTS, HIDDEN, CLASSES)
    record = nn.train(
        p, x, y, steps=steps, batch_size=50, learning_rate=0.5, reg=1e-4, order_seed=seed
    )
    return p, record


def test_training_is_bit_identical_for_a_seed_and_differs_for_another() -> None:
    p1, r1 = _train(0)
    p2, r2 = _train(0)
    _, r3 = _train(1)
    assert r1.final_digest == r2.final_digest == fingerprint.weights_digest(p1.arrays())
    np.testing.assert_array_equal(r1.losses, r2.losses)
    assert r1.losses.dtype == np.float32 and r1.steps == 60
    assert r3.final_digest != r1.final_digest
    assert not np.array_equal(r3.losses, r1.losses)
    assert all(a.dtype == np.float32 for a in p1.arrays())


def test_training_decreases_the_loss_and_learns() -> None:
    p, record = _train(0, steps=200)
    assert record.losses[-20:].mean() < 0.5 * record.losses[:20].mean()
    x, y = linearly_separable(500)
    assert nn.evaluate(p, x, y).accuracy > 0.8


def test_train_records_digests_and_rejects_bad_arguments() -> None:
    x, y = linearly_separable(100)
    p = nn.init_params(np.random.default_rng(0), INPUTS, HIDDEN, CLASSES)
    record = nn.train(
        p, x, y, steps=6, batch_size=10, learning_rate=0.1, order_seed=0, digest_every=3
    )
    assert sorted(record.digests) == [3, 6]
    assert list(record.digests[6]) == list(nn.NAMES)
    with pytest.raises(UsageError, match="steps and batch_size must be positive, got 0 and 10"):
        nn.train(p, x, y, steps=0, batch_size=10, learning_rate=0.1, order_seed=0)
    with pytest.raises(UsageError, match="100 inputs but 50 labels"):
        nn.train(p, x, y[:50], steps=1, batch_size=10, learning_rate=0.1, order_seed=0)


def test_flatten_scales_to_unit_interval() -> None:
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    flat = nn.flatten(images)
    assert flat.dtype == np.float32 and flat.shape == (1, 4)
    np.testing.assert_array_equal(flat, np.float32([[0, 1, 0.2, 0.4]]))


def test_the_numpy_network_loads_neither_tensorflow_nor_the_training_loop() -> None:
    code = (
        "import sys, reprodl.numpy_net\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'reprodl.training.loop',"
        " 'reprodl.training.spec') if m in sys.modules))"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
