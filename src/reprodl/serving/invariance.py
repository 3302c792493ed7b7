"""Is a model batch-invariant? Each example's outputs alone against the same rows in batches.

A kernel may choose its blocking, its vector path or its order of additions by the number of rows
it is given (a matrix product of one row is often another code path than one of a hundred), so
the same example can get other bits alone than among others. :func:`measure` calls the model on
the first rows of ``x`` one at a time (the reference), then on ``x[:n]`` for each size ``n``, and
compares the rows they share bit for bit; for a ``keras.Sequential`` model it also names the first
layer whose output for row 0 parts. Works on any Keras backend; changes nothing in the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: The batch sizes compared with one example alone (the issue's, and Keras ``predict``'s 32).
SIZES = (2, 7, 32, 100, 1000)
#: How many leading rows are compared with the same rows computed one at a time.
REFERENCE_ROWS = 7


@dataclass(frozen=True)
class SizeCheck:
    """One batch size: the rows it shares with the one-at-a-time reference, how many differ and
    by how much at most, whether ``predict`` (batches of 32) gives the direct call's bits, and
    the first layer whose row 0 parts from the one-row call's (``None``: none, or not known)."""

    size: int
    rows: int
    rows_differ: int
    largest: float
    predict_matches: bool
    first_layer: str | None

    @property
    def same(self) -> bool:
        return self.rows_differ == 0


@dataclass(frozen=True)
class Invariance:
    """The checks per size, and the sizes (1 included) grouped by the bits of row 0."""

    sizes: tuple[SizeCheck, ...]
    groups: tuple[tuple[int, ...], ...]

    @property
    def invariant(self) -> bool:
        """Every size gives every shared row the bits it gets alone, and ``predict`` agrees."""
        return all(s.same and s.predict_matches for s in self.sizes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "sizes": [asdict(s) for s in self.sizes],
            "groups": [list(g) for g in self.groups],
        }

    def lines(self) -> list[str]:
        """The report, one line per size, then the groups (deterministic text)."""
        out = []
        for s in self.sizes:
            verdict = "same" if s.same else f"{s.rows_differ} of {s.rows} rows differ"
            where = f", first at layer {s.first_layer}" if s.first_layer else ""
            largest = f" (largest {s.largest:.2g})" if not s.same else ""
            out.append(
                f"batch {s.size:>5}: {verdict} as alone{largest}{where}; "
                f"predict {'=' if s.predict_matches else '!='} call"
            )
        groups = " ".join("[" + ", ".join(map(str, g)) + "]" for g in self.groups)
        out.append(f"sizes giving row 0 the same bits: {groups}")
        out.append(f"batch-invariant: {'yes' if self.invariant else 'no'}")
        return out


def call(model: Any, x: np.ndarray) -> np.ndarray:
    """``model(x)`` in inference mode, as a NumPy array (any backend)."""
    out = model(x, training=False)
    if isinstance(out, np.ndarray):
        return out
    import keras

    return keras.ops.convert_to_numpy(out)


def first_parting_layer(model: Any, x: np.ndarray, size: int) -> str | None:
    """The first layer of a ``keras.Sequential`` ``model`` whose output for row 0 differs
    between ``x[:1]`` and ``x[:size]``; ``None`` if none does or the model is not Sequential."""
    import keras

    if not isinstance(model, keras.Sequential):
        return None
    alone, batch = x[:1], x[:size]
    for layer in model.layers:
        alone, batch = layer(alone, training=False), layer(batch, training=False)
        a, b = keras.ops.convert_to_numpy(alone), keras.ops.convert_to_numpy(batch)
        if not np.array_equal(a[0], b[0]):
            return layer.name
    return None


def _groups(rows: dict[int, np.ndarray]) -> tuple[tuple[int, ...], ...]:
    groups: list[list[int]] = []
    for size, row in rows.items():
        for group in groups:
            if np.array_equal(rows[group[0]], row):
                group.append(size)
                break
        else:
            groups.append([size])
    return tuple(tuple(g) for g in groups)


def measure(model: Any, x: np.ndarray, sizes: Sequence[int] = SIZES) -> Invariance:
    """Compare ``model``'s outputs for the first rows of ``x`` alone and in batches of each size.

    ``x`` holds at least ``max(sizes)`` examples in the model's input shape. ``predict`` runs
    with Keras' default batch size (32) and ``verbose=0``.
    """
    from reprodl.errors import UsageError

    sizes = tuple(sorted(set(int(n) for n in sizes)))
    if not sizes or sizes[0] < 1:
        raise UsageError("batch sizes must be positive integers")
    if len(x) < sizes[-1]:
        raise UsageError(f"{len(x)} examples given, the largest batch size is {sizes[-1]}")
    reference = np.concatenate([call(model, x[i : i + 1]) for i in range(REFERENCE_ROWS)])
    checks, first_rows = [], {1: reference[0]}
    for n in sizes:
        out = call(model, x[:n])
        k = min(REFERENCE_ROWS, n)
        differ = np.any(out[:k] != reference[:k], axis=tuple(range(1, out.ndim)))
        predicted = np.asarray(model.predict(x[:n], verbose=0))
        checks.append(
            SizeCheck(
                size=n,
                rows=k,
                rows_differ=int(differ.sum()),
                largest=float(np.max(np.abs(out[:k] - reference[:k]))),
                predict_matches=bool(np.array_equal(predicted, out)),
                first_layer=first_parting_layer(model, x, n) if differ[0] else None,
            )
        )
        first_rows.setdefault(n, out[0])
    return Invariance(sizes=tuple(checks), groups=_groups(first_rows))
