"""Inference on batches of one fixed shape: the remedy for kernels that are not batch-invariant.

:class:`FixedBatch` cuts any input into batches of exactly ``batch_size`` rows (the last one
padded with zeros) and keeps each example's rows, so every call runs the kernels with the same
shapes, whatever the number of examples asked for. That removes the dependence on the row count;
whether an example also gets the same bits at every *position* of the batch is a property of the
kernels for that shape on this CPU, measured by :func:`position_results` (value-independent: a
kernel picks its path by shapes, not values). ``batch_size=1`` needs no such probe: each example
is computed alone, always the same call, at a price the book measures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reprodl.errors import UsageError
from reprodl.serving.invariance import call


class FixedBatch:
    """``model`` called on batches of exactly ``batch_size`` rows; ``self(x)`` returns NumPy."""

    def __init__(self, model: Any, batch_size: int = 100) -> None:
        if int(batch_size) < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.batch_size = model, int(batch_size)

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if training:
            raise UsageError("FixedBatch is for inference (training=False)")
        x = np.asarray(x)
        if len(x) == 0:
            raise UsageError("no examples to predict")
        b = self.batch_size
        pieces = []
        for start in range(0, len(x), b):
            piece = x[start : start + b]
            short = b - len(piece)
            if short:
                piece = np.concatenate([piece, np.zeros((short, *x.shape[1:]), x.dtype)])
            pieces.append(call(self.model, piece)[: b - short])
        return np.concatenate(pieces)

    def predict(self, x: np.ndarray, verbose: int = 0) -> np.ndarray:
        """The same as calling it (so :func:`~reprodl.serving.invariance.measure` checks it)."""
        return self(x)


def position_groups(model: Any, x: np.ndarray, batch_size: int) -> list[list[int]]:
    """The positions of a batch of ``batch_size`` rows (filled with ``x[1:]``) grouped by the
    bits ``model`` gives the example ``x[0]`` standing there, largest group first."""
    if len(x) < batch_size + 1:
        raise UsageError(f"{len(x)} examples given, need {batch_size + 1}")
    fill = np.asarray(x[1 : batch_size + 1])
    groups: dict[bytes, list[int]] = {}
    for position in range(batch_size):
        batch = fill.copy()
        batch[position] = x[0]
        groups.setdefault(call(model, batch)[position].tobytes(), []).append(position)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def position_results(model: Any, x: np.ndarray, batch_size: int) -> int:
    """How many different results ``model`` gives the example ``x[0]`` when it stands at each
    position of a batch of ``batch_size`` rows filled with ``x[1:]``: 1 means the position (and
    the other rows) never change its bits for this shape on this CPU."""
    return len(position_groups(model, x, batch_size))
