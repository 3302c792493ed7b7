"""Runs described by a :class:`~reprodl.training.spec.RunSpec`: check the process, build, train."""

from __future__ import annotations

from typing import Any

from reprodl.data import Split
from reprodl.errors import SettingsError
from reprodl.training.loop import train
from reprodl.training.results import TrainingRecord
from reprodl.training.spec import RunSpec, build


def process_settings_differ(spec: RunSpec) -> list[str]:
    """The process-global settings ``spec`` needs that differ from this process's, in words."""
    from reprodl import runtime

    spec = spec.resolved()
    settings = runtime.pinned_settings()
    threads = settings.get("tf_intra_op_threads", runtime.INTRA_OP_THREADS)
    determinism = settings.get("op_determinism", spec.op_determinism)
    found = []
    if threads != spec.intra_op_threads:
        found.append(f"{spec.intra_op_threads} intra-op threads; this process has {threads}")
    if determinism != spec.op_determinism:
        found.append(
            f"op determinism {'on' if spec.op_determinism else 'off'}; "
            f"this process has it {'on' if determinism else 'off'}"
        )
    return found


def apply_process_settings(spec: RunSpec) -> None:
    """Set the intra-op thread count and op determinism ``spec`` asks for in this process.

    Raises :class:`~reprodl.errors.SettingsError` when TensorFlow has already run an op with
    another thread count: that is fixed for the life of the process, so such a run needs a
    process of its own.
    """
    from reprodl import runtime

    spec = spec.resolved()
    runtime.set_intra_op_threads(spec.intra_op_threads)
    runtime.set_op_determinism(spec.op_determinism)


def run(spec: RunSpec, split: Split, **train_kwargs: Any) -> tuple[Any, TrainingRecord]:
    """Build the run ``spec`` describes and :func:`train` it on ``split``; return model and record.

    ``train_kwargs`` go to :func:`train` (``digest_every``, ``checkpoint_every``, ``resume`` ...).
    The process-global settings must already be those of ``spec`` (see
    :func:`apply_process_settings`); NumPy's global random state is used as it is, never reset.
    """
    differ = process_settings_differ(spec)
    if differ:
        raise SettingsError(f"this process does not have the settings of the run: {differ[0]}")
    spec = spec.resolved()
    model, optimizer, stream = build(spec, len(split))
    record = train(
        model,
        split,
        steps=spec.steps,
        batch_size=spec.batch_size,
        optimizer=optimizer,
        order_seed=spec.seed,
        stream=stream,
        **train_kwargs,
    )
    return model, record
