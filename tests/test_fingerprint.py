"""Weight digests: equal bits give equal digests; one flipped bit or a reshape changes them."""

import hashlib
import tracemalloc

import numpy as np
import pytest

from reprodl import fingerprint


def test_digest_depends_on_every_bit_and_the_shape():
    a = np.arange(12, dtype=np.float32)
    base = fingerprint.array_digest(a)
    assert fingerprint.array_digest(a.copy()) == base
    flipped = a.copy()
    flipped.view(np.uint32)[5] ^= 1  # one bit of the last mantissa place
    assert fingerprint.array_digest(flipped) != base
    assert fingerprint.array_digest(a.reshape(3, 4)) != base
    assert fingerprint.array_digest(a.astype(np.float64)) != base


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(12, dtype=np.float32).reshape(3, 4).T,  # not contiguous
        np.float32(3.5),  # 0-d
        np.array(7, dtype=np.int64),
        np.zeros((0, 3), dtype=np.float32),
        np.array([True, False]),
        np.array([1, 2], dtype=">i4"),  # not native byte order
        [[1.5, 2.5]],  # not an array yet
    ],
)
def test_array_digest_is_sha256_of_dtype_shape_and_c_order_bytes(array):
    """The one definition every record's digests rest on (a changed format breaks old records)."""
    a = np.ascontiguousarray(np.asarray(array))
    expected = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode() + a.tobytes()).hexdigest()
    assert fingerprint.array_digest(array) == expected


def test_array_digest_hashes_a_contiguous_array_without_copying_it():
    big = np.ones(2_000_000, dtype=np.float32)  # 8 MB
    tracemalloc.start()
    try:
        fingerprint.array_digest(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < big.nbytes // 10


def test_whole_and_per_variable_digests():
    w = {"dense/kernel": np.ones((2, 2), np.float32), "dense/bias": np.zeros(2, np.float32)}
    per = fingerprint.variable_digests(w)
    assert list(per) == ["dense/kernel", "dense/bias"]
    assert fingerprint.weights_digest(w) == fingerprint.weights_digest(list(w.values()))
    assert len(fingerprint.short(fingerprint.weights_digest(w))) == fingerprint.SHORT


def test_keras_model_digest_uses_variable_paths():
    import reprodl
    from reprodl import models

    reprodl.setup(0)
    model = models.build("mlp", seed=0)
    per = fingerprint.variable_digests(model)
    assert any(k.endswith("kernel") for k in per)
    assert fingerprint.weights_digest(model) == fingerprint.weights_digest(model.get_weights())
