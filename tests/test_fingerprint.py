"""Weight digests: equal bits give equal digests; one flipped bit or a reshape changes them."""

import numpy as np

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
