"""reprodl: bit-exact reproducible training on MNIST with TensorFlow 2 / Keras.

The process is pinned (thread counts, oneDNN ISA cap, BLAS kernel) when :mod:`reprodl.runtime`
is first imported: by ``reprodl.setup(...)``, or by importing any module of the package that
trains or computes. So ``import reprodl`` followed by ``reprodl.setup(seed)`` belongs before
``import numpy`` and ``import tensorflow``. ``import reprodl`` alone changes nothing, and neither
does the recorder for your own Keras training, :mod:`reprodl.keras`, with what it needs
(:mod:`~reprodl.records`, :mod:`~reprodl.fingerprint`, :mod:`~reprodl.training.state`): what it
records is your run as it would have run without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["environment_line", "environment_report", "runtime", "setup", "__version__"]

if TYPE_CHECKING:
    from reprodl import runtime
    from reprodl.runtime import environment_line, environment_report, setup

_RUNTIME_NAMES = frozenset({"environment_line", "environment_report", "setup"})


def __getattr__(name: str) -> Any:
    """``reprodl.setup`` and the other runtime names: imported (the process pinned) on first use."""
    if name == "runtime" or name in _RUNTIME_NAMES:
        import reprodl.runtime as rt

        return rt if name == "runtime" else getattr(rt, name)
    raise AttributeError(f"module 'reprodl' has no attribute {name!r}")
