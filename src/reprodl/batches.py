"""Batch order under explicit control.

The TF1 tutorials' ``DataSet.next_batch`` drew its shuffles from NumPy's *global* random state
(when, and whether the first epoch was shuffled, changed between TensorFlow versions; chapter 4
tells the history), so a run seeded with ``tf.set_random_seed`` alone could still see another
batch order each time. Here the order comes from an explicit seed, or, to show that trap, from the
global state (a simplified model of that code, not a copy of any version).
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from reprodl.errors import UsageError
from reprodl.training import defaults as _defaults

#: Batch orders :func:`make_stream` (and so a ``RunSpec``) can ask for
#: (defined in :mod:`reprodl.training.defaults`).
ORDERS = _defaults.ORDERS


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch: a pure function of ``(seed, epoch)``."""
    if num_examples <= 0:
        raise UsageError(f"num_examples must be positive, got {num_examples}")
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


@dataclass(frozen=True)
class StreamState:
    """Where an :class:`IndexStream` stands: the epoch, the position in it, the epoch's order."""

    epoch: int
    position: int
    order: np.ndarray


class IndexStream:
    """Indices of successive batches, ``next_batch``-style: batches run across epoch boundaries.

    With ``seed=None`` each epoch is shuffled with NumPy's global random state (the classic
    behaviour, reproducible only if ``np.random.seed`` was called and nothing else draws from it);
    with an int seed epoch ``e`` uses :func:`epoch_permutation` ``(n, seed, e)``; with
    ``shuffle=False`` the order is 0..n-1 every epoch.
    """

    def __init__(self, num_examples: int, seed: int | None = None, shuffle: bool = True) -> None:
        if num_examples <= 0:
            raise UsageError(f"num_examples must be positive, got {num_examples}")
        self.num_examples = num_examples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._order = self._make_order(0)
        self._pos = 0

    def _make_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_examples)
        if self.seed is None:
            return np.random.permutation(self.num_examples)
        return epoch_permutation(self.num_examples, self.seed, epoch)

    def next(self, batch_size: int) -> np.ndarray:
        """Indices of the next ``batch_size`` examples, starting a new epoch when one runs out."""
        if not 0 < batch_size <= self.num_examples:
            raise UsageError(f"batch_size must be in 1..{self.num_examples}, got {batch_size}")
        parts = []
        need = batch_size
        while need:
            take = min(need, self.num_examples - self._pos)
            parts.append(self._order[self._pos : self._pos + take])
            self._pos += take
            need -= take
            if self._pos == self.num_examples:
                self.epoch += 1
                self._order = self._make_order(self.epoch)
                self._pos = 0
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def batches(self, batch_size: int, steps: int) -> Iterator[np.ndarray]:
        """The next ``steps`` batches of indices."""
        for _ in range(steps):
            yield self.next(batch_size)

    def get_state(self) -> StreamState:
        """Where the stream stands now (a copy: later batches do not change it)."""
        return StreamState(self.epoch, self._pos, np.array(self._order))

    def set_state(self, state: StreamState) -> None:
        """Continue from ``state`` (as :meth:`get_state` returned it), bit for bit."""
        if len(state.order) != self.num_examples:
            raise UsageError(
                f"the state covers {len(state.order)} examples, this stream {self.num_examples}"
            )
        if not 0 <= state.position < self.num_examples:
            raise UsageError(f"position {state.position} is outside 0..{self.num_examples - 1}")
        self.epoch = state.epoch
        self._pos = state.position
        self._order = np.array(state.order)


class _GlobalAfterFirst(IndexStream):
    """First epoch in a seeded order, every later epoch shuffled with NumPy's global state."""

    def __init__(self, num_examples: int, seed: int) -> None:
        self._first_seed = seed
        super().__init__(num_examples, seed=None)

    def _make_order(self, epoch: int) -> np.ndarray:
        if epoch == 0:
            return epoch_permutation(self.num_examples, self._first_seed, 0)
        return np.random.permutation(self.num_examples)


def make_stream(num_examples: int, order: str, seed: int) -> IndexStream:
    """The batch stream of an ``order``: ``seeded`` (every epoch from ``seed``), ``global`` (the
    classic ``next_batch``: every epoch from NumPy's global state) or ``global-after-first`` (the
    first epoch from ``seed``, later ones from the global state: a run that drifts at epoch 2)."""
    if order == "seeded":
        return IndexStream(num_examples, seed=seed)
    if order == "global":
        return IndexStream(num_examples, seed=None)
    if order == "global-after-first":
        return _GlobalAfterFirst(num_examples, seed)
    raise UsageError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")


class NextBatch:
    """The TF1 tutorial's ``mnist.train.next_batch(n)`` over arrays, its order made explicit."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, seed: int | None = None, shuffle: bool = True
    ) -> None:
        if len(images) != len(labels):
            raise UsageError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels
        self.stream = IndexStream(len(labels), seed=seed, shuffle=shuffle)

    @property
    def epochs_completed(self) -> int:
        return self.stream.epoch

    def __call__(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.stream.next(batch_size)
        return self.images[idx], self.labels[idx]


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Steps that cover ``num_examples`` once (the last partial batch runs into the next epoch)."""
    return -(-num_examples // batch_size)


def tf_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    seed: int | None,
    reshuffle_each_iteration: bool = True,
    buffer_size: int | None = None,
) -> Any:
    """A ``tf.data`` pipeline with an explicit shuffle seed (``seed=None`` means no shuffle)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if seed is not None:
        ds = ds.shuffle(
            buffer_size or len(labels), seed=seed, reshuffle_each_iteration=reshuffle_each_iteration
        )
    return ds.batch(batch_size)


def keras_fit_orders(
    num_examples: int,
    batch_size: int,
    epochs: int,
    *,
    global_seed: int | None,
    data: str = "arrays",
    shuffle_seed: int | None = None,
) -> list[list[int]]:
    """The order in which Keras ``fit`` feeds ``num_examples`` examples, epoch by epoch.

    Trains a one-weight model (learning rate 0) on the examples' own indices, eagerly, and notes
    the indices of every batch its ``train_step`` receives. ``data="arrays"``: ``fit(x, y,
    shuffle=True)`` on NumPy arrays; ``data="dataset"``: ``fit`` on a ``tf.data`` pipeline
    shuffled with ``shuffle_seed`` (:func:`tf_dataset`). ``global_seed`` is given to
    ``keras.utils.set_random_seed`` first; ``None`` clears TensorFlow's global seed
    (``tf.random.set_seed(None)``), as in a program that never sets one, and turns op determinism
    off meanwhile (it refuses unseeded random ops); it is restored afterwards.
    """
    if data not in ("arrays", "dataset"):
        raise UsageError(f"data must be 'arrays' or 'dataset', not {data!r}")
    import keras
    import tensorflow as tf

    seen: list[int] = []

    class _Spy(keras.Model):
        def train_step(self, batch: Any) -> Any:
            seen.extend(int(i) for i in np.asarray(batch[0]).ravel())
            return super().train_step(batch)

    from reprodl import _tf

    determinism = _tf.is_op_determinism_enabled()
    if global_seed is None:
        _runtime.set_op_determinism(False)
        tf.random.set_seed(None)
    else:
        keras.utils.set_random_seed(global_seed)
    inputs = keras.Input((1,))
    model = _Spy(inputs, keras.layers.Dense(1, kernel_initializer="zeros")(inputs))
    model.compile(keras.optimizers.SGD(0.0), "mse", run_eagerly=True)
    x = np.arange(num_examples, dtype=np.float32).reshape(-1, 1)
    try:
        if data == "arrays":
            model.fit(x, x, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
        else:
            ds = tf_dataset(x, x, batch_size, seed=shuffle_seed)
            model.fit(ds, epochs=epochs, shuffle=False, verbose=0)
    finally:
        _runtime.set_op_determinism(determinism)
    return [seen[e * num_examples : (e + 1) * num_examples] for e in range(epochs)]
