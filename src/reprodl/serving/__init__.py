"""Batch-invariant inference: whether a model gives an example the same bits alone and among
other examples, and a way to make it so (the toolkit: importing it pins nothing).

- :func:`~reprodl.serving.invariance.measure`: ``model(x[:1])`` against ``model(x[:n])[:1]``
  and ``predict`` against a direct call, per batch size, with the first layer that parts;
- :class:`~reprodl.serving.fixed_batch.FixedBatch`: every call on batches of one fixed shape,
  and :func:`~reprodl.serving.fixed_batch.position_results`, the probe that says whether that
  shape gives an example the same bits at every position of the batch.
"""

from reprodl.serving.fixed_batch import FixedBatch, position_groups, position_results
from reprodl.serving.invariance import SIZES, Invariance, SizeCheck, measure

__all__ = [
    "SIZES",
    "FixedBatch",
    "Invariance",
    "SizeCheck",
    "measure",
    "position_groups",
    "position_results",
]
