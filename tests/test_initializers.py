"""reprodl.initializers: Keras' Orthogonal draw, factorised by NumPy (no training)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reprodl.initializers import Orthogonal


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (3, 3, 8, 16), (5, 5)])
def test_orthogonal_is_orthogonal_and_keras_draw(shape):
    values = np.asarray(Orthogonal(gain=2.0, seed=7)(shape))
    assert values.shape == shape and values.dtype == np.float32
    flat = values.reshape(-1, shape[-1]) / 2.0
    small = flat if flat.shape[0] >= flat.shape[1] else flat.T
    assert np.abs(small.T @ small - np.eye(small.shape[1])).max() < 1e-5
    # the same normal draw as Keras' own initializer: only the factorisation's rounding differs
    theirs = np.asarray(keras.initializers.Orthogonal(gain=2.0, seed=7)(shape))
    assert np.abs(values - theirs).max() < 1e-5


def test_orthogonal_repeats_and_depends_on_its_seed():
    a = np.asarray(Orthogonal(seed=1)((32, 64)))
    assert np.array_equal(a, np.asarray(Orthogonal(seed=1)((32, 64))))
    assert not np.array_equal(a, np.asarray(Orthogonal(seed=2)((32, 64))))


def test_orthogonal_round_trips_through_keras_serialization():
    init = Orthogonal(gain=0.5, seed=3)
    again = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(again, Orthogonal) and again.get_config() == {"gain": 0.5, "seed": 3}
    layer = keras.layers.Dense(4, kernel_initializer=init)
    layer.build((None, 6))
    assert np.array_equal(layer.kernel.numpy(), np.asarray(Orthogonal(gain=0.5, seed=3)((6, 4))))


def test_orthogonal_refuses_bad_input():
    with pytest.raises(ValueError, match="rank 2 or more"):
        Orthogonal(seed=0)((5,))
    with pytest.raises(ValueError, match="seed must be an int"):
        Orthogonal(seed="0")
