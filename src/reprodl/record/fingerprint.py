"""SHA-256 digests of weights: one number that says whether two runs ended bit-identical."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: How many hex digits :func:`short` keeps when printing a digest.
SHORT = 16


def array_digest(array: Any) -> str:
    """SHA-256 of one array: its dtype, shape and raw bytes (C order).

    A C-contiguous array is hashed in place, without a copy of its bytes (a run recorder digests
    tens of megabytes of state at a time); any other is made contiguous first.
    """
    a = np.ascontiguousarray(np.asarray(array))
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes() if a.dtype.hasobject else a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def _named_arrays(weights: Any) -> list[tuple[str, np.ndarray]]:
    """(name, array) pairs from a Keras model, a mapping, or a sequence of arrays."""
    if hasattr(weights, "weights") and not isinstance(weights, Mapping):
        return [(v.path, np.asarray(v.numpy())) for v in weights.weights]
    if isinstance(weights, Mapping):
        return [(str(k), np.asarray(v)) for k, v in weights.items()]
    return [(f"array_{i}", np.asarray(a)) for i, a in enumerate(weights)]


def variable_digests(weights: Any) -> dict[str, str]:
    """Per-variable digests of a Keras model (by variable path), a dict, or a list of arrays."""
    return {name: array_digest(a) for name, a in _named_arrays(weights)}


def combine(digests: Iterable[str]) -> str:
    """One digest for an ordered collection of digests."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d.encode())
    return h.hexdigest()


def weights_digest(weights: Any) -> str:
    """SHA-256 of all weights in order. Names are not hashed: only the numbers and shapes count."""
    return combine(variable_digests(weights).values())


def short(digest: str) -> str:
    """The first :data:`SHORT` hex digits, enough to tell runs apart when printing."""
    return digest[:SHORT]


def format_float(x: float) -> str:
    """Shortest text that round-trips a float32 exactly: equal text means equal bits."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-")
