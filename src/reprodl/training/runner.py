"""Runs described by a :class:`~reprodl.training.spec.RunSpec`: check the process, build, train;
and :class:`SeedRunner`, which trains one architecture many times from one traced step."""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprodl import models
from reprodl.batches import IndexStream
from reprodl.data import Split
from reprodl.errors import SettingsError, UsageError
from reprodl.record import fingerprint
from reprodl.record.state import state_arrays, state_digests, state_variables
from reprodl.seeds import Seeds
from reprodl.training.loop import (
    compiled_step,
    count_correct,
    evaluate,
    predictor,
    run_steps,
    train,
)
from reprodl.training.results import Evaluation, TrainingRecord
from reprodl.training.spec import RunSpec, build, optimizer_for, with_epochs


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


@dataclass(frozen=True)
class TrainedRun:
    """What :func:`train_and_record` did: the run (steps resolved), its record, its test score,
    and the record file it saved (``None``: none asked for)."""

    spec: RunSpec
    record: TrainingRecord
    test: Evaluation
    saved: Path | None


def train_and_record(
    spec: RunSpec,
    *,
    data: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    record: str | os.PathLike[str] | None = None,
    command: list[str] | None = None,
    **saving: Any,
) -> TrainedRun:
    """What ``python -m reprodl train`` does: set this process up for ``spec`` (pins, seeds,
    threads, op determinism), load MNIST (from ``data``), train for ``spec.steps`` or ``epochs``,
    score the test split, and save the run record to ``record`` if given. ``saving`` goes to
    :func:`train` (``digest_every``, ``checkpoint_every``, ``checkpoint_dir``, ``resume``).
    """
    from reprodl import data as mnist_data
    from reprodl import runtime
    from reprodl.record import runrecord

    runtime.setup(spec.seed, op_determinism=spec.op_determinism)
    apply_process_settings(spec)  # before any TensorFlow op runs
    mnist = mnist_data.load_mnist(data)
    spec = with_epochs(spec, epochs, len(mnist.train))
    model, trained = run(spec, mnist.train, **saving)
    test = evaluate(model, mnist.test)
    if record is None:
        return TrainedRun(spec, trained, test, None)
    folder = saving.get("checkpoint_dir")
    every = {k: saving.get(k) or 0 for k in ("digest_every", "checkpoint_every")}
    runrecord.save_run(
        spec=spec, result=trained, path=record, checkpoint_dir=folder, command=command, **every
    )
    return TrainedRun(spec, trained, test, Path(record))


@dataclass
class SeededRun:
    """One run of a :class:`SeedRunner`: its seeds, accuracies and fingerprints."""

    seeds: Seeds
    evaluations: dict[str, Evaluation]  # split name -> accuracy on it
    initial_digest: str  # every state variable (weights and dropout generator state)
    initial_weights_digest: str  # the weights only
    final_digest: str  # the weights after training (as TrainingRecord.final_digest)
    losses: np.ndarray

    def accuracy(self, split: str = "test") -> float:
        """Accuracy on ``split`` (a fraction)."""
        return self.evaluations[split].accuracy


class SeedRunner:
    """Train one model architecture many times, tracing its training step only once.

    :func:`~reprodl.training.loop.train` traces a fresh step function on every call, which costs
    more than a few hundred steps of a small model. A runner builds the model, the optimizer and
    the compiled step once; each call puts the complete initial state of a freshly built model
    (seeded with ``seeds.init`` and ``seeds.dropout``) into that model, resets the optimizer to its
    freshly built state (its step counter too, which drives a cosine ``schedule``) and trains on
    batches in the order of ``seeds.order``. Optimizer, learning rate and schedule default to the
    model's (:data:`reprodl.models.DEFAULTS`). The result is bit-identical to building the model
    and calling :func:`~reprodl.training.loop.train` (tested).
    """

    def __init__(
        self,
        model: str,
        train: Split,
        evaluate: Mapping[str, Split],
        *,
        steps: int,
        batch_size: int | None = None,
        optimizer: str | None = None,
        learning_rate: float | None = None,
        schedule: str | None = None,
        **model_kwargs: Any,
    ) -> None:
        import tensorflow as tf

        if steps <= 0:
            raise UsageError(f"steps must be positive, got {steps}")
        spec = RunSpec(
            model=model,
            steps=steps,
            batch_size=batch_size,
            optimizer=optimizer,
            learning_rate=learning_rate,
            schedule=schedule,
        ).resolved()  # the model's defaults, as training.run fills them in
        self.name = model
        self.steps = steps
        self.batch_size = spec.batch_size
        self.optimizer_name = spec.optimizer
        self.learning_rate = spec.learning_rate
        self.schedule = spec.schedule
        self.model_kwargs = dict(model_kwargs)
        self.num_examples = len(train)
        self.model = models.build(model, 0, **self._kwargs(0))
        self.optimizer = optimizer_for(spec)
        self.optimizer.build(self.model.trainable_variables)
        self._state = state_variables(self.model)
        self._fresh_optimizer = [np.array(v.numpy()) for v in self.optimizer.variables]
        self._step = compiled_step(self.model, self.optimizer, train, self.batch_size)
        image_batch = tf.TensorSpec([None, 28, 28], tf.float32)  # one trace for every split
        self._predict = predictor(self.model, [image_batch])
        self._eval = dict(evaluate)

    def _kwargs(self, dropout_seed: int) -> dict[str, Any]:
        if self.name == "softmax":
            return dict(self.model_kwargs)
        return {**self.model_kwargs, "dropout_seed": dropout_seed}

    def reset(self, seeds: Seeds) -> None:
        """Give the model the initial state of ``seeds`` and the optimizer its fresh state."""
        fresh = models.build(self.name, seeds.init, **self._kwargs(seeds.dropout))
        values = state_arrays(fresh)
        if list(values) != [info.name for info, _ in self._state]:
            raise RuntimeError("the freshly built model does not have this runner's variables")
        for (_, v), a in zip(self._state, values.values(), strict=True):
            v.assign(a)
        for v, a in zip(self.optimizer.variables, self._fresh_optimizer, strict=True):
            v.assign(a)

    def __call__(self, seeds: Seeds) -> SeededRun:
        """Train from the initial state of ``seeds``; evaluate on every split given."""
        import tensorflow as tf

        self.reset(seeds)
        initial = fingerprint.combine(state_digests(self.model).values())
        initial_weights = fingerprint.weights_digest(self.model)
        stream = IndexStream(self.num_examples, seed=seeds.order)
        batches = (
            tf.constant(stream.next(self.batch_size), dtype=tf.int32) for _ in range(self.steps)
        )
        losses, _, _ = run_steps(self._step, batches)
        evaluations = {
            name: count_correct(self._predict, split.images, split.labels)
            for name, split in self._eval.items()
        }
        return SeededRun(
            seeds=seeds,
            evaluations=evaluations,
            initial_digest=initial,
            initial_weights_digest=initial_weights,
            final_digest=fingerprint.weights_digest(self.model),
            losses=losses,
        )
