"""Batch order: seeded orders are pure functions of the seed; the classic stream reshuffles."""

import numpy as np
import pytest

from reprodl import batches
from reprodl.errors import UsageError


def test_epoch_permutation_is_a_function_of_seed_and_epoch():
    a = batches.epoch_permutation(100, seed=1, epoch=0)
    assert np.array_equal(a, batches.epoch_permutation(100, seed=1, epoch=0))
    assert not np.array_equal(a, batches.epoch_permutation(100, seed=1, epoch=1))
    assert not np.array_equal(a, batches.epoch_permutation(100, seed=2, epoch=0))
    assert sorted(a.tolist()) == list(range(100))


def test_stream_covers_each_epoch_once_and_crosses_boundaries():
    s = batches.IndexStream(10, seed=0)
    first = [s.next(4) for _ in range(2)]
    crossing = s.next(4)  # 2 from epoch 0, 2 from epoch 1
    epoch0 = np.concatenate([*first, crossing[:2]])
    assert sorted(epoch0.tolist()) == list(range(10))
    assert s.epoch == 1
    assert np.array_equal(crossing[2:], batches.epoch_permutation(10, 0, 1)[:2])


def test_seeded_stream_ignores_global_state_but_classic_one_does_not():
    np.random.seed(0)
    a = batches.IndexStream(50, seed=7).next(50)
    classic_a = batches.IndexStream(50, seed=None).next(50)
    np.random.seed(1)
    b = batches.IndexStream(50, seed=7).next(50)
    classic_b = batches.IndexStream(50, seed=None).next(50)
    assert np.array_equal(a, b)
    assert not np.array_equal(classic_a, classic_b)


def test_unshuffled_stream_is_in_order():
    s = batches.IndexStream(5, shuffle=False)
    assert s.next(5).tolist() == [0, 1, 2, 3, 4]


def test_next_batch_returns_matching_images_and_labels():
    images = np.arange(20).reshape(10, 2)
    labels = np.arange(10)
    nb = batches.NextBatch(images, labels, seed=3)
    x, y = nb(4)
    assert np.array_equal(x[:, 0] // 2, y)
    with pytest.raises(ValueError, match="batch_size"):
        nb(11)


def test_tf_dataset_order_is_seeded():
    import reprodl

    reprodl.setup(0)
    x = np.arange(32, dtype=np.float32)
    y = np.arange(32)

    def first_epoch(seed):
        ds = batches.tf_dataset(x, y, 8, seed=seed)
        return np.concatenate([b[1].numpy() for b in ds])

    assert np.array_equal(first_epoch(5), first_epoch(5))
    assert not np.array_equal(first_epoch(5), first_epoch(6))
    assert np.array_equal(
        np.concatenate([b[1].numpy() for b in batches.tf_dataset(x, y, 8, seed=None)]), y
    )


def test_state_saved_and_restored_continues_the_same_batches():
    stream = batches.make_stream(10, "seeded", seed=4)
    stream.next(7)
    state = stream.get_state()
    ahead = [stream.next(6) for _ in range(3)]  # crosses two epoch boundaries
    other = batches.make_stream(10, "seeded", seed=4)
    other.set_state(state)
    assert all(np.array_equal(a, other.next(6)) for a in ahead)
    assert (state.epoch, state.position) == (0, 7)  # a copy: later batches did not move it
    with pytest.raises(batches.UsageError, match="the state covers 10 examples, this stream 9"):
        batches.IndexStream(9, seed=4).set_state(state)


def test_make_stream_orders():
    first = batches.make_stream(6, "global-after-first", seed=2)
    np.random.seed(1)  # the next epoch's order is drawn when the first one runs out
    assert np.array_equal(first.next(6), batches.epoch_permutation(6, 2, 0))
    np.random.seed(1)
    expected = np.random.permutation(6)
    assert np.array_equal(first.next(6), expected)
    with pytest.raises(batches.UsageError, match="unknown order 'sorted'; choose one of seeded"):
        batches.make_stream(6, "sorted", seed=0)


def test_keras_fit_repeats_one_order_every_epoch_once_a_global_seed_is_set():
    seeded = batches.keras_fit_orders(12, 4, 3, global_seed=0)
    assert all(sorted(order) == list(range(12)) for order in seeded)
    assert seeded[0] == seeded[1] == seeded[2]  # Keras 3.15 / TF 2.21 on NumPy arrays
    assert batches.keras_fit_orders(12, 4, 3, global_seed=0) == seeded
    unseeded = batches.keras_fit_orders(12, 4, 3, global_seed=None)
    assert len({tuple(order) for order in unseeded}) == 3


def test_a_seeded_tf_data_pipeline_reshuffles_each_epoch_and_reproduces():
    orders = batches.keras_fit_orders(12, 4, 3, global_seed=0, data="dataset", shuffle_seed=4)
    assert len({tuple(order) for order in orders}) == 3
    again = batches.keras_fit_orders(12, 4, 3, global_seed=0, data="dataset", shuffle_seed=4)
    assert again == orders
    other = batches.keras_fit_orders(12, 4, 3, global_seed=1, data="dataset", shuffle_seed=4)
    assert other != orders  # TensorFlow combines the global seed and the op's own seed


def test_keras_fit_orders_rejects_unknown_data():
    with pytest.raises(UsageError, match="arrays"):
        batches.keras_fit_orders(12, 4, 1, global_seed=0, data="generator")
