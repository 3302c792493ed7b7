"""Training with a deterministic batch order, recording what a divergence hunt needs.

The package's parts, one job each: :mod:`~reprodl.training.spec` (``RunSpec``, validated, and
what it builds), :mod:`~reprodl.training.loop` (the compiled step, ``train``, ``evaluate``,
``fit_quietly``), :mod:`~reprodl.training.lanes` (the step's big layers cut into pieces that the
two inter-op threads run side by side, with the bits of the whole layers),
:mod:`~reprodl.training.checkpoints` (the checkpoint format), :mod:`~reprodl.training.results`
(``TrainingRecord``, ``Evaluation``) and :mod:`~reprodl.training.runner` (runs from a spec;
``SeedRunner``, many seeds through one traced step). A model's variables and their digests
(``VariableInfo``, ``state_variables``, ...) live in the toolkit, :mod:`reprodl.record.state`;
their names are offered here too.

The names below are loaded from their modules on first use, so that importing one part (the
NumPy network imports ``results``) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The public names, by the module they live in (the one list: ``__all__`` comes from it): a
#: module of this package, or one named by its full path.
_MODULES: dict[str, tuple[str, ...]] = {
    "checkpoints": (
        "CHECKPOINT_NAME",
        "Checkpoint",
        "CheckpointError",
        "capture_checkpoint",
        "checkpoint_path",
        "load_checkpoint",
        "restore_checkpoint",
        "save_checkpoint",
    ),
    "lanes": ("cuts_are_exact", "lane_forward"),
    "loop": (
        "apply_step",
        "compiled_step",
        "count_correct",
        "evaluate",
        "fit_quietly",
        "loss_function",
        "predictor",
        "run_steps",
        "train",
    ),
    "results": ("Evaluation", "TrainingRecord"),
    "runner": (
        "SeededRun",
        "SeedRunner",
        "TrainedRun",
        "apply_process_settings",
        "process_settings_differ",
        "run",
        "train_and_record",
    ),
    "spec": ("SCHEDULES", "RunSpec", "build", "make_optimizer", "optimizer_for", "with_epochs"),
    "reprodl.record.state": ("VariableInfo", "state_arrays", "state_digests", "state_variables"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Import the module of ``name`` on first use (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module 'reprodl.training' has no attribute {name!r}")
    module = _HOME[name] if "." in _HOME[name] else f"reprodl.training.{_HOME[name]}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
