"""Initializers whose values do not depend on the CPU's caches.

:class:`Orthogonal` is Keras 3's ``Orthogonal`` initializer (the default ``recurrent_initializer``
of ``LSTM``, ``GRU`` and ``SimpleRNN``) with one change: the QR factorisation runs in NumPy
(LAPACK, through NumPy's OpenBLAS) instead of ``keras.ops.qr``. On the TensorFlow backend
``keras.ops.qr`` is ``tf.linalg.qr``, whose CPU kernel in TensorFlow 2.21 is Eigen's blocked
Householder QR (``tensorflow/core/kernels/linalg/qr_op_impl.h``); Eigen sizes the blocks of its
matrix products from the L1 data cache that CPUID reports (``computeProductBlockingSizes`` in
``Eigen/src/Core/products/GeneralBlockPanelKernel.h``), so the same seed gives other initial
weights on a CPU with 48 KiB of L1d than on one with 32 KiB (measured with the cache-geometry
emulator, ``tools/cache_qemu``; ``results/cross_cpu/`` has the records). NumPy's QR, under the
pins of :func:`reprodl.setup` (OpenBLAS's Haswell kernels, one thread), gave the same bits at
every geometry measured. Without those pins, OpenBLAS picks its kernels by CPU, so pin it as
``reprodl.setup`` does (``OPENBLAS_CORETYPE=Haswell``, ``OPENBLAS_NUM_THREADS=1``) before NumPy
is imported.

It draws the same normal matrix as Keras' ``Orthogonal`` for the same seed, so only the
factorisation differs. Use it where Keras takes an initializer::

    from reprodl.initializers import Orthogonal

    keras.layers.LSTM(64, recurrent_initializer=Orthogonal(seed=1))

``Orthogonal(gain=1.0, seed=None)`` takes Keras' arguments (an integer seed, or none for Keras'
global generator) and is registered for saving as ``reprodl>Orthogonal``. Importing this module
pins nothing and loads no TensorFlow; Keras is imported when ``Orthogonal`` is first used.
"""

from __future__ import annotations

import math
from typing import Any


def __getattr__(name: str) -> Any:
    # Keras is imported on first use of the class, not with the module: importing this module
    # loads no TensorFlow (the API page imports every module).
    if name == "Orthogonal":
        globals()["Orthogonal"] = cls = _orthogonal_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _orthogonal_class() -> type:
    import keras
    import numpy as np

    @keras.saving.register_keras_serializable(package="reprodl")
    class Orthogonal(keras.initializers.Initializer):
        """Keras' ``Orthogonal(gain, seed)`` with NumPy's QR: the same values on every cache
        size (the module's docstring says why)."""

        def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
            if seed is not None and not isinstance(seed, int):
                raise ValueError(f"seed must be an int or None (got {seed!r})")
            self.gain = gain
            self.seed = seed

        def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
            if len(shape) < 2:
                raise ValueError(f"Orthogonal needs a shape of rank 2 or more (got {shape})")
            dtype = keras.backend.standardize_dtype(dtype or keras.backend.floatx())
            rows, cols = math.prod(shape[:-1]), shape[-1]
            flat = (max(rows, cols), min(rows, cols))
            normal = keras.random.normal(flat, seed=self.seed, dtype=dtype)
            q, r = np.linalg.qr(keras.ops.convert_to_numpy(normal))
            q = q * np.sign(np.diag(r))  # as Keras does: the Q whose R has a positive diagonal
            if rows < cols:
                q = q.T
            values = (self.gain * q).reshape(shape).astype(dtype)
            return keras.ops.convert_to_tensor(values, dtype=dtype)

        def get_config(self) -> dict[str, Any]:
            return {"gain": self.gain, "seed": self.seed}

    Orthogonal.__module__ = __name__
    return Orthogonal
