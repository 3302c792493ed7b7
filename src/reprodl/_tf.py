"""The private TensorFlow APIs the book needs, imported in this one place.

TensorFlow 2.21 exports ``tf.config.experimental.enable_op_determinism`` but neither a getter nor
an off switch; both live in ``tensorflow.python.framework.config``.
"""

from __future__ import annotations


def _config():
    from tensorflow.python.framework import config  # not exported publicly

    return config


def is_op_determinism_enabled() -> bool:
    """Whether ``enable_op_determinism`` is in force in this process."""
    return bool(_config().is_op_determinism_enabled())


def disable_op_determinism() -> None:
    """Turn op determinism off again (no public API does)."""
    _config().disable_op_determinism()
