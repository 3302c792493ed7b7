"""Training with a deterministic batch order, recording what a divergence hunt needs.

The package's parts, one job each: :mod:`~reprodl.training.spec` (``RunSpec``, validated, and
what it builds), :mod:`~reprodl.training.loop` (the compiled step, ``train``, ``evaluate``,
``fit_quietly``), :mod:`~reprodl.training.state` (a model's variables and their digests),
:mod:`~reprodl.training.checkpoints` (the checkpoint format), :mod:`~reprodl.training.results`
(``TrainingRecord``, ``Evaluation``) and :mod:`~reprodl.training.runner` (runs from a spec;
``SeedRunner``, many seeds through one traced step).

The names below are loaded from their modules on first use, so that importing one part (the
NumPy network imports ``results``) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and readers: where each name lives
    from reprodl.training.checkpoints import (
        CHECKPOINT_NAME,
        Checkpoint,
        CheckpointError,
        capture_checkpoint,
        checkpoint_path,
        load_checkpoint,
        restore_checkpoint,
        save_checkpoint,
    )
    from reprodl.training.loop import compiled_step, evaluate, fit_quietly, loss_function, train
    from reprodl.training.results import Evaluation, TrainingRecord
    from reprodl.training.runner import (
        SeededRun,
        SeedRunner,
        apply_process_settings,
        process_settings_differ,
        run,
    )
    from reprodl.training.spec import SCHEDULES, RunSpec, build, make_optimizer, optimizer_for
    from reprodl.training.state import VariableInfo, state_arrays, state_digests, state_variables

#: Where each public name lives.
_HOME: dict[str, str] = {
    "CHECKPOINT_NAME": "checkpoints",
    "Checkpoint": "checkpoints",
    "CheckpointError": "checkpoints",
    "Evaluation": "results",
    "RunSpec": "spec",
    "SCHEDULES": "spec",
    "SeedRunner": "runner",
    "SeededRun": "runner",
    "TrainingRecord": "results",
    "VariableInfo": "state",
    "apply_process_settings": "runner",
    "build": "spec",
    "capture_checkpoint": "checkpoints",
    "checkpoint_path": "checkpoints",
    "compiled_step": "loop",
    "evaluate": "loop",
    "fit_quietly": "loop",
    "load_checkpoint": "checkpoints",
    "loss_function": "loop",
    "make_optimizer": "spec",
    "optimizer_for": "spec",
    "process_settings_differ": "runner",
    "restore_checkpoint": "checkpoints",
    "run": "runner",
    "save_checkpoint": "checkpoints",
    "state_arrays": "state",
    "state_digests": "state",
    "state_variables": "state",
    "train": "loop",
}


def __getattr__(name: str) -> Any:
    """Import the module of ``name`` on first use (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module 'reprodl.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"reprodl.training.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CHECKPOINT_NAME",
    "SCHEDULES",
    "Checkpoint",
    "CheckpointError",
    "Evaluation",
    "RunSpec",
    "SeedRunner",
    "SeededRun",
    "TrainingRecord",
    "VariableInfo",
    "apply_process_settings",
    "build",
    "capture_checkpoint",
    "checkpoint_path",
    "compiled_step",
    "evaluate",
    "fit_quietly",
    "load_checkpoint",
    "loss_function",
    "make_optimizer",
    "optimizer_for",
    "process_settings_differ",
    "restore_checkpoint",
    "run",
    "save_checkpoint",
    "state_arrays",
    "state_digests",
    "state_variables",
    "train",
]
