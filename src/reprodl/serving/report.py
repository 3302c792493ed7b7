"""Check a saved Keras model for batch invariance (``python -m reprodl invariance``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprodl.errors import ReprodlError, UsageError
from reprodl.serving.fixed_batch import FixedBatch, position_results
from reprodl.serving.invariance import SIZES, Invariance, measure


@dataclass(frozen=True)
class SavedModelCheck:
    """The plain calls' :class:`Invariance`, the remedy's (with a fixed batch), the report."""

    plain: Invariance
    fixed: Invariance | None
    positions: int | None
    lines: tuple[str, ...]

    @property
    def invariant(self) -> bool:
        """The checked calls (the remedy's where one was asked for) are batch-invariant."""
        if self.fixed is not None:
            return self.fixed.invariant and self.positions == 1
        return self.plain.invariant


def load_model(path: Path) -> Any:
    """A model saved by Keras, or a clear error."""
    import keras

    if not Path(path).is_file():
        raise UsageError(f"no such model file: {path}")
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001  (any unreadable file: one clear line)
        raise ReprodlError(f"cannot load {path} as a Keras model: {error}") from None


def load_examples(path: Path | None, model: Any) -> tuple[np.ndarray, str]:
    """The examples from ``path`` (NumPy, no pickles) or MNIST's test images shaped for
    ``model``, with a description for the report."""
    if path is None:
        from reprodl import data

        images = data.to_float(data.load_mnist().test.images)
        shape = tuple(model.input_shape[1:])
        if None in shape or int(np.prod(shape)) != images[0].size:
            raise UsageError(f"the model's input shape {shape} does not hold an MNIST image")
        return images.reshape(-1, *shape), "MNIST test images"
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ReprodlError(f"cannot read {path} as a NumPy array: {error}") from None
    return x, str(path)


def check_saved_model(
    path: Path,
    *,
    data: Path | None = None,
    sizes: Sequence[int] | None = None,
    fixed_batch: int | None = None,
) -> SavedModelCheck:
    """Measure the saved model at ``path`` on ``data`` (see :func:`load_examples`): plain calls
    and, with ``fixed_batch``, calls on batches of that many rows and the position probe."""
    model = load_model(path)
    x, source = load_examples(data, model)
    sizes = tuple(sizes or SIZES)
    needed = max(*sizes, (fixed_batch or 0) + 1)
    if len(x) < needed:
        raise UsageError(f"{len(x)} examples in {source}, {needed} needed")
    plain = measure(model, x, sizes)
    lines = [f"model {path}: {len(x)} examples from {source}", *plain.lines()]
    fixed = positions = None
    if fixed_batch:
        fixed = measure(FixedBatch(model, fixed_batch), x, sizes)
        positions = 1 if fixed_batch == 1 else position_results(model, x, fixed_batch)
        lines += [f"with every call on a batch of {fixed_batch} rows:", *fixed.lines()]
        lines.append(
            f"one example at each of the {fixed_batch} positions of a batch: "
            f"{positions} result{'s' if positions != 1 else ''}"
        )
    return SavedModelCheck(plain, fixed, positions, tuple(lines))
