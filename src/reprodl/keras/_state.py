"""What a record holds of a Keras run besides its losses: the state's variables under names that
are stable across processes, their digests, the optimizer's step counter, and the settings and
versions the bits depend on (read, never set)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from reprodl.env import report
from reprodl.record import fingerprint
from reprodl.record.state import state_variables, unique_name

#: The Keras backends whose ``fit`` a record can follow.
BACKENDS = ("tensorflow", "jax")

#: One variable of the state: its record entry (``name``, ``shape``, ``dtype``, ``kind``) and
#: the variable itself.
Entry = tuple[dict[str, Any], Any]


def value(variable: Any) -> np.ndarray:
    """A variable's current value as a NumPy array (one read)."""
    current = getattr(variable, "value", variable)
    return np.asarray(current.numpy() if hasattr(current, "numpy") else current)


def sync(model: Any) -> None:
    """Make ``model``'s variables hold the training's state now. Under JAX, ``fit`` keeps the
    state outside the variables between steps (Keras 3.15's JAX trainer) and writes it back at
    the end of an epoch, or when a callback asks, as this does (``jax_state_sync``)."""
    sync_state = getattr(model, "jax_state_sync", None)
    if sync_state is not None:
        sync_state()


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Run eagerly even inside a TensorFlow trace (``tf.init_scope``); JAX needs nothing."""
    import keras

    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    with tf.init_scope():
        yield


def iterations(model: Any) -> int | None:
    """The optimizer's iteration counter (the steps it applied), or None without one."""
    counter = getattr(getattr(model, "optimizer", None), "iterations", None)
    return None if counter is None else int(value(counter))


def state(model: Any) -> list[Entry]:
    """The run's state: the model's variables (stable names), then the optimizer's."""
    out = [(info.to_dict(), v) for info, v in state_variables(model)]
    taken = {d["name"] for d, _ in out}
    # An optimizer names a slot "<its name>/<the variable's path, '/' -> '_'>_<slot>", and both
    # names may carry a process-wide counter (adam_3, dense_7): rename it after the variable.
    stable = {v.path.replace("/", "_"): d["name"] for d, v in out}
    optimizer = getattr(model, "optimizer", None)
    for v in getattr(optimizer, "variables", []):
        rest = v.path.split("/", 1)[-1]
        owner = max((k for k in stable if rest.startswith(k + "_")), key=len, default=None)
        if owner is not None:
            rest = f"{stable[owner]}/{rest[len(owner) + 1 :]}"
        info = {
            "name": unique_name(f"optimizer/{rest}", taken),
            "shape": [int(d) for d in v.shape],
            "dtype": str(np.dtype(v.dtype)),
            "kind": "optimizer",
        }
        out.append((info, v))
    return out


def same_variables(a: list[Entry], b: list[Entry]) -> bool:
    """Whether two states are the same variables under the same entries."""
    if len(a) != len(b):
        return False
    return all(x[0] == y[0] and x[1] is y[1] for x, y in zip(a, b, strict=True))


def digests(entries: list[Entry]) -> dict[str, str]:
    """The digest of every variable of the state, now."""
    return {info["name"]: fingerprint.array_digest(value(v)) for info, v in entries}


def settings(model: Any) -> dict[str, Any]:
    """What the bits depend on (:func:`reprodl.env.report.settings_of_a_run`: environment,
    threads, op determinism), then Keras's own settings for ``model``."""
    import keras

    return {
        **report.settings_of_a_run(),
        "keras_backend": keras.backend.backend(),
        "floatx": keras.backend.floatx(),
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "run_eagerly": bool(getattr(model, "run_eagerly", False)),
    }


def facts(model: Any) -> dict[str, Any]:
    """What a record's ``meta`` says of the run besides its steps: the model's name, the command
    line, the settings and the versions (:func:`reprodl.env.report.versions`)."""
    return {
        "model": model.name,
        "command": list(sys.argv),
        "settings": settings(model),
        "versions": {**report.versions(), **_jax_versions()},
    }


def _jax_versions() -> dict[str, str]:
    """JAX's and jaxlib's versions where Keras runs on JAX (their bits are then JAX's)."""
    import keras

    if keras.backend.backend() != "jax":
        return {}
    installed = report.installed_versions(report.JAX_PACKAGES)
    return {name: installed[name] for name in report.JAX_PACKAGES}
