"""A Keras model's state by stable names: every variable, as arrays and as digests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reprodl.record import fingerprint


@dataclass(frozen=True)
class VariableInfo:
    """One variable of a model's state: its unique name, shape, dtype and kind.

    ``kind`` is ``"weight"`` (in ``model.weights``, part of the fingerprint) or ``"rng"`` (a random
    generator's state, e.g. a Dropout layer's ``seed_generator_state``).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        """The entry a run record's ``variables`` list holds for it (JSON types)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "kind": self.kind,
        }


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_1``, ``name_2``, ... : the first not in ``taken`` (then added to it)."""
    base, k = name, 1
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    taken.add(name)
    return name


def state_variables(model: Any) -> list[tuple[VariableInfo, Any]]:
    """Every variable of ``model`` (``model.variables``: weights and random generator states).

    Names are ``model/layer/variable``: Keras names a Dropout's state ``seed_generator_N/...``
    with a process-wide counter N, which would differ between two runs of the same code.
    """
    owner: dict[int, str] = {}
    for layer in getattr(model, "layers", []):
        for v in layer.variables:
            owner.setdefault(id(v), layer.name)
    weights = {id(v) for v in model.weights}
    result: list[tuple[VariableInfo, Any]] = []
    seen: set[str] = set()
    for v in model.variables:
        layer = owner.get(id(v))
        name = f"{model.name}/{layer}/{v.name}" if layer else v.path
        info = VariableInfo(
            name=unique_name(name, seen),
            shape=tuple(int(d) for d in v.shape),
            dtype=str(np.dtype(v.dtype)),
            kind="weight" if id(v) in weights else "rng",
        )
        result.append((info, v))
    return result


def state_arrays(model: Any) -> dict[str, np.ndarray]:
    """The model's state now, as NumPy arrays by variable name (in ``model.variables`` order)."""
    return {info.name: np.array(v.numpy()) for info, v in state_variables(model)}


def state_digests(model: Any) -> dict[str, str]:
    """Per-variable SHA-256 digests of the model's state (weights and random generator states)."""
    return {name: fingerprint.array_digest(a) for name, a in state_arrays(model).items()}
