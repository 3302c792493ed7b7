"""Atomic additions on a GPU, simulated in NumPy: run-to-run variation from the order of a sum.

A GPU often combines partial results with atomic adds, whose order is whatever order the threads
arrive in, so the last bits of a sum (and of everything trained from it) change from run to run.
:func:`atomic_sum` adds terms one at a time in float32 in an order drawn from a generator;
:func:`softmax_regression_atomic` trains softmax regression with such sums. The order comes from a
seeded generator, so the simulation itself is reproducible (chapter 8 shows it).
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import numpy as np

from reprodl.errors import UsageError


def atomic_sum(terms: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sum ``terms`` over axis 0 one term at a time, in float32, like atomic adds on a GPU.

    Each GPU thread adds its term to one accumulator when it gets there, so the order of the
    additions is the order the threads happen to arrive in. Here that order is a permutation
    drawn from ``rng`` (``None``: the natural order 0, 1, 2, ...).
    """
    terms = np.asarray(terms, dtype=np.float32)
    order = np.arange(len(terms)) if rng is None else rng.permutation(len(terms))
    total = np.zeros(terms.shape[1:], dtype=np.float32)
    for i in order:
        total += terms[i]  # float32 + float32, rounded after every addition
    return total


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_regression_atomic(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    steps: int,
    batch_size: int = 100,
    learning_rate: float = 0.5,
    order_seed: int | None = None,
) -> list[np.ndarray]:
    """Softmax regression by SGD in NumPy (float32), the gradient summed with :func:`atomic_sum`.

    Batch ``k`` is examples ``k*batch_size`` to ``(k+1)*batch_size`` (the same in every run), and
    the weights start at zero: the only thing that differs between runs is the order in which
    each batch's per-example gradients are added, drawn from ``order_seed`` (``None``: natural
    order). Returns the weight matrix (785 x 10, the last row the bias) after every step.
    """
    if steps * batch_size > len(images):
        raise UsageError(f"{steps} steps of {batch_size} need more than {len(images)} examples")
    x_all = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    if x_all.max() > 1:
        x_all = x_all / np.float32(255)
    x_all = np.hstack([x_all, np.ones((len(x_all), 1), dtype=np.float32)])  # bias input
    rng = None if order_seed is None else np.random.default_rng(order_seed)
    w = np.zeros((x_all.shape[1], 10), dtype=np.float32)
    lr = np.float32(learning_rate / batch_size)
    history = []
    for k in range(steps):
        x = x_all[k * batch_size : (k + 1) * batch_size]
        y = np.asarray(labels[k * batch_size : (k + 1) * batch_size])
        d = _softmax(x @ w)
        d[np.arange(batch_size), y] -= np.float32(1)  # dLoss/dlogits per example
        per_example = x[:, :, None] * d[:, None, :]  # (batch, 785, 10): exact products
        w = w - lr * atomic_sum(per_example, rng)
        history.append(w.copy())
    return history
