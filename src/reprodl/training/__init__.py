"""Training with a deterministic batch order, recording what a divergence hunt needs.

The package's parts, one job each: :mod:`~reprodl.training.spec` (``RunSpec``, validated, and
what it builds), :mod:`~reprodl.training.loop` (the compiled step, ``train``, ``evaluate``,
``fit_quietly``), :mod:`~reprodl.training.state` (a model's variables and their digests),
:mod:`~reprodl.training.checkpoints` (the checkpoint format), :mod:`~reprodl.training.results`
(``TrainingRecord``, ``Evaluation``) and :mod:`~reprodl.training.runner` (runs from a spec;
``SeedRunner``, many seeds through one traced step).
"""

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
