"""The checkpoint format: the complete training state a bit-exact resume restores.

Checkpoint files (``step_00000050.npz``, NumPy's ``.npz``, no pickles) hold every model variable
(weights and the dropout layers' ``seed_generator_state``), every optimizer variable (step counter,
learning rate, Adam's slots), the batch stream's position (epoch, offset, the epoch's order) and
NumPy's global random state (the classic ``next_batch`` shuffles with it). Python's ``random``
state is not saved: nothing in the loop draws from it after the model is built.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprodl._io import atomic_write
from reprodl.batches import IndexStream, StreamState
from reprodl.errors import CheckpointError
from reprodl.record.state import state_arrays, state_variables

#: Name of the checkpoint file of a step inside a checkpoint folder.
CHECKPOINT_NAME = "step_{:08d}.npz"
CHECKPOINT_FORMAT = "reprodl.checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """The complete training state after ``step``: what a bit-exact resume restores."""

    step: int
    model: dict[str, np.ndarray]
    optimizer: list[tuple[str, np.ndarray]]
    stream_epoch: int
    stream_pos: int
    stream_order: np.ndarray
    numpy_rng: tuple
    path: str = ""

    def differences(self, other: Checkpoint) -> list[str]:
        """What differs between two checkpoints, part by part, in plain words."""
        found = [
            f"model variable {name}"
            for name, a in self.model.items()
            if name not in other.model or not _same_bits(a, other.model[name])
        ]
        if len(self.optimizer) != len(other.optimizer) or any(
            not _same_bits(a, b)
            for (_, a), (_, b) in zip(self.optimizer, other.optimizer, strict=False)
        ):
            found.append("optimizer state")
        if (
            self.stream_epoch != other.stream_epoch
            or self.stream_pos != other.stream_pos
            or not np.array_equal(self.stream_order, other.stream_order)
        ):
            found.append("batch stream (position or epoch order)")
        if any(
            not np.array_equal(np.asarray(a), np.asarray(b))
            for a, b in zip(self.numpy_rng[1:], other.numpy_rng[1:], strict=True)
        ):
            found.append("NumPy global random state")
        return found


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def checkpoint_path(folder: str | os.PathLike[str], step: int) -> Path:
    """Where the checkpoint of ``step`` lives inside ``folder``."""
    return Path(folder) / CHECKPOINT_NAME.format(step)


def capture_checkpoint(step: int, model: Any, optimizer: Any, stream: IndexStream) -> Checkpoint:
    """The complete training state now (after ``step`` steps)."""
    where = stream.get_state()
    return Checkpoint(
        step=step,
        model=state_arrays(model),
        optimizer=[(v.path, np.array(v.numpy())) for v in optimizer.variables],
        stream_epoch=where.epoch,
        stream_pos=where.position,
        stream_order=where.order,
        numpy_rng=np.random.get_state(),
    )


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike[str]) -> None:
    """Write ``ckpt`` to ``path`` (``.npz``, atomically)."""
    kind, keys, pos, has_gauss, cached = ckpt.numpy_rng
    arrays: dict[str, np.ndarray] = {
        "format": np.array(CHECKPOINT_FORMAT),
        "version": np.array(CHECKPOINT_VERSION),
        "step": np.array(ckpt.step),
        "model_names": np.array(list(ckpt.model), dtype=str),
        "optimizer_names": np.array([n for n, _ in ckpt.optimizer], dtype=str),
        "stream_epoch": np.array(ckpt.stream_epoch),
        "stream_pos": np.array(ckpt.stream_pos),
        "stream_order": ckpt.stream_order,
        "numpy_rng_kind": np.array(kind),
        "numpy_rng_keys": np.asarray(keys),
        "numpy_rng_pos": np.array(pos),
        "numpy_rng_has_gauss": np.array(has_gauss),
        "numpy_rng_cached_gaussian": np.array(cached),
    }
    for i, a in enumerate(ckpt.model.values()):
        arrays[f"model/{i}"] = a
    for i, (_, a) in enumerate(ckpt.optimizer):
        arrays[f"optimizer/{i}"] = a
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; :class:`CheckpointError` if bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != CHECKPOINT_FORMAT:
                raise CheckpointError(f"{path}: not a reprodl checkpoint")
            if int(z["version"]) != CHECKPOINT_VERSION:
                raise CheckpointError(f"{path}: checkpoint version {int(z['version'])} unknown")
            model = {str(n): z[f"model/{i}"] for i, n in enumerate(z["model_names"])}
            optimizer = [(str(n), z[f"optimizer/{i}"]) for i, n in enumerate(z["optimizer_names"])]
            rng = (
                str(z["numpy_rng_kind"]),
                z["numpy_rng_keys"],
                int(z["numpy_rng_pos"]),
                int(z["numpy_rng_has_gauss"]),
                float(z["numpy_rng_cached_gaussian"]),
            )
            return Checkpoint(
                step=int(z["step"]),
                model=model,
                optimizer=optimizer,
                stream_epoch=int(z["stream_epoch"]),
                stream_pos=int(z["stream_pos"]),
                stream_order=z["stream_order"],
                numpy_rng=rng,
                path=str(path),
            )
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, KeyError, ValueError, EOFError ...
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc})") from None


def restore_checkpoint(ckpt: Checkpoint, model: Any, optimizer: Any, stream: IndexStream) -> None:
    """Put the state of ``ckpt`` into ``model``, ``optimizer``, ``stream`` and NumPy's RNG."""
    where = ckpt.path or f"checkpoint of step {ckpt.step}"
    variables = state_variables(model)
    if [info.name for info, _ in variables] != list(ckpt.model):
        raise CheckpointError(f"{where}: its variables are not those of this model")
    for info, v in variables:
        a = ckpt.model[info.name]
        if tuple(a.shape) != info.shape:
            raise CheckpointError(f"{where}: {info.name} has shape {a.shape}, not {info.shape}")
        v.assign(a)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    if len(optimizer.variables) != len(ckpt.optimizer):
        raise CheckpointError(f"{where}: its optimizer state does not fit this optimizer")
    for v, (name, a) in zip(optimizer.variables, ckpt.optimizer, strict=True):
        if tuple(v.shape) != a.shape:
            raise CheckpointError(f"{where}: optimizer variable {name} has the wrong shape")
        v.assign(a)
    if len(ckpt.stream_order) != stream.num_examples:
        raise CheckpointError(f"{where}: its batch stream covers another number of examples")
    stream.set_state(StreamState(ckpt.stream_epoch, ckpt.stream_pos, ckpt.stream_order))
    np.random.set_state(ckpt.numpy_rng)
