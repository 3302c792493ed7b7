"""The training loop: a compiled step over batches in a seeded order, recording the run.

:func:`train` runs a compiled training step over batches drawn from an explicitly seeded
:class:`~reprodl.batches.IndexStream`; the data stays on the device and each step only gathers its
batch. It records every step's loss and, every ``digest_every`` steps, the per-variable digests of
the model's state; it can write checkpoints every ``checkpoint_every`` steps and resume from one
bit-exactly. :func:`fit_quietly` is the Keras ``fit`` path with deterministic log lines instead of
progress bars.

Its pieces are the package's only ones: :func:`apply_step` (loss, gradients, one update),
:func:`run_steps` (the loop over the batches, losses read back at the end) and :func:`predictor`
serve :class:`~reprodl.training.runner.SeedRunner` and :mod:`reprodl.distributed` too.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from reprodl.batches import IndexStream
from reprodl.data import Split, to_float
from reprodl.errors import UsageError
from reprodl.record import fingerprint
from reprodl.record.fingerprint import format_float
from reprodl.record.state import state_digests, state_variables
from reprodl.training.checkpoints import (
    Checkpoint,
    capture_checkpoint,
    checkpoint_path,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from reprodl.training.lanes import lane_forward
from reprodl.training.results import Evaluation, TrainingRecord


def loss_function(reduction: str | None = "sum_over_batch_size") -> Any:
    """The loss every model of the book trains with: cross-entropy on logits (the batch mean;
    ``reduction=None``: one loss per example)."""
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


def apply_step(
    optimizer: Any,
    variables: Any,
    forward: Callable[[Any], Any],
    loss: Callable[[Any, Any], Any],
    x: Any,
    y: Any,
) -> Any:
    """The heart of a training step: ``loss(y, forward(x))``, its gradients with respect to
    ``variables``, one optimizer update; returns the loss. To be called inside a ``tf.function``
    (:func:`compiled_step`, and each replica's step of :mod:`reprodl.distributed`)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss(y, forward(x))
    optimizer.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
    return value


def compiled_step(
    model: Any, optimizer: Any, split: Split, batch_size: int | None = None, lanes: bool = True
) -> Any:
    """One training step as a ``tf.function`` taking the batch's indices into ``split``.

    The whole split is one tensor on the device; a step gathers its batch, computes the loss and
    applies the gradients. ``batch_size`` fixes the input signature (one trace for all calls).
    ``lanes`` cuts the big layers into pieces that run side by side and give the same bits
    (:mod:`reprodl.training.lanes`); ``False`` calls the model as it is.
    """
    import tensorflow as tf

    images = tf.constant(to_float(split.images))
    labels = tf.constant(split.labels)
    loss_fn = loss_function()
    variables = model.trainable_variables
    signature = None if batch_size is None else [tf.TensorSpec([batch_size], tf.int32)]
    forward = lane_forward(model) if lanes else (lambda x: model(x, training=True))

    # autograph=False: the step has no tensor-dependent Python control flow, and converting the
    # model's and the lanes' code costs about 0.9 s per process (benchmarks/startup_cost.py)
    @tf.function(input_signature=signature, autograph=False)
    def step(idx):
        x = tf.gather(images, idx)
        y = tf.gather(labels, idx)
        return apply_step(optimizer, variables, forward, loss_fn, x, y)

    return step


def _start(
    model: Any,
    optimizer: Any,
    stream: IndexStream,
    *,
    steps: int,
    checkpoint_every: int,
    checkpoint_dir: str | os.PathLike[str] | None,
    resume: str | os.PathLike[str] | Checkpoint | None,
) -> int:
    """Restore ``resume`` or write the step-0 checkpoint; return the step the run starts after."""
    if resume is not None:
        ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        restore_checkpoint(ckpt, model, optimizer, stream)
        if ckpt.step >= steps:
            raise UsageError(f"the checkpoint is at step {ckpt.step}, not before step {steps}")
        return ckpt.step
    if checkpoint_every:
        optimizer.build(model.trainable_variables)
        save_checkpoint(
            capture_checkpoint(0, model, optimizer, stream), checkpoint_path(checkpoint_dir, 0)
        )
    return 0


def train(
    model: Any,
    split: Split,
    *,
    steps: int,
    batch_size: int,
    optimizer: Any,
    order_seed: int | None,
    digest_every: int = 0,
    on_step: Callable[[int, float], None] | None = None,
    stream: IndexStream | None = None,
    checkpoint_every: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | Checkpoint | None = None,
    lanes: bool = True,
) -> TrainingRecord:
    """Train ``model`` for ``steps`` steps on batches in a seeded order; record the run.

    ``order_seed=None`` draws each epoch's order from NumPy's global state (the classic trap);
    ``stream`` replaces the order given by ``order_seed``. ``digest_every=k`` stores per-variable
    digests after every k-th step (0: only before the first and after the last step).
    ``checkpoint_every=k`` writes a checkpoint into ``checkpoint_dir`` before the first step and
    after every k-th; ``resume`` restores one and trains on up to step ``steps`` (counted from the
    start of the original run), bit-identically to the run that wrote it. ``lanes=False`` runs
    the model's big layers whole instead of in pieces (the same bits, slower).
    """
    import tensorflow as tf

    if steps <= 0 or batch_size <= 0:
        raise UsageError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    if checkpoint_every and checkpoint_dir is None:
        raise UsageError("checkpoint_every needs a checkpoint_dir")
    step = compiled_step(model, optimizer, split, lanes=lanes)
    stream = stream or IndexStream(len(split), seed=order_seed)
    where = {"checkpoint_every": checkpoint_every, "checkpoint_dir": checkpoint_dir}
    first = _start(model, optimizer, stream, steps=steps, resume=resume, **where)
    record = TrainingRecord(losses=np.empty(0, dtype=np.float32), start_step=first)
    record.variables = [info for info, _ in state_variables(model)]
    record.initial_digests = state_digests(model)

    def after(k: int, loss: Any) -> None:
        n = first + k
        at_checkpoint = bool(checkpoint_every) and n % checkpoint_every == 0
        if (digest_every and (n % digest_every == 0 or n == steps)) or at_checkpoint:
            record.digests[n] = state_digests(model)
        if at_checkpoint:
            ckpt = capture_checkpoint(n, model, optimizer, stream)
            save_checkpoint(ckpt, checkpoint_path(checkpoint_dir, n))
        if on_step:
            on_step(n, float(loss.numpy()))

    batches = (tf.constant(stream.next(batch_size), dtype=tf.int32) for _ in range(first, steps))
    record.losses, record.first_step_seconds, record.seconds = run_steps(step, batches, after)
    record.final_digest = fingerprint.weights_digest(model)
    record.final_digests = state_digests(model)
    return record


def run_steps(
    step: Callable[[Any], Any],
    batches: Iterable[Any],
    after: Callable[[int, Any], None] | None = None,
) -> tuple[np.ndarray, float, float]:
    """Call ``step`` on each of ``batches`` in turn; ``after(k, loss)`` runs after the ``k``-th
    call (from 1) with its loss tensor. Returns the losses (float32, read back once at the end:
    a host sync per step would cost time), the first step's seconds (it traces the step; its
    loss is waited for) and the seconds of all the steps."""
    import tensorflow as tf

    loss_tensors = []
    start = time.perf_counter()
    first = 0.0
    for k, batch in enumerate(batches, 1):
        loss_tensors.append(step(batch))
        if k == 1:
            loss_tensors[0].numpy()
            first = time.perf_counter() - start
        if after is not None:
            after(k, loss_tensors[-1])
    losses = tf.stack(loss_tensors).numpy() if loss_tensors else np.empty(0)
    return losses.astype(np.float32), first, time.perf_counter() - start


def predictor(model: Any, input_signature: Any = None) -> Any:
    """The class indices ``model`` predicts for a float32 image batch, as a ``tf.function``
    (inference mode, so dropout is off); ``input_signature`` as ``tf.function`` takes it."""
    import tensorflow as tf

    @tf.function(input_signature=input_signature, autograph=False)
    def predict(x):
        return tf.argmax(model(x, training=False), axis=1, output_type=tf.int64)

    return predict


def evaluate(model: Any, split: Split, batch_size: int = 1000) -> Evaluation:
    """Count correct predictions on ``split`` (inference mode, so dropout is off)."""
    return count_correct(predictor(model), split.images, split.labels, batch_size)


def count_correct(
    predict: Callable[[Any], Any], images: np.ndarray, labels: np.ndarray, batch_size: int = 1000
) -> Evaluation:
    """Count the labels ``predict`` (class indices from a float32 image batch) gets right, in
    batches of ``batch_size`` uint8 ``images`` scaled with :func:`~reprodl.data.to_float`."""
    import tensorflow as tf

    correct = 0
    for start in range(0, len(labels), batch_size):
        pred = predict(tf.constant(to_float(images[start : start + batch_size]))).numpy()
        correct += int(np.sum(pred == labels[start : start + batch_size]))
    return Evaluation(correct=correct, total=len(labels))


def fit_quietly(
    model: Any,
    split: Split,
    *,
    epochs: int,
    batch_size: int,
    optimizer: Any,
    shuffle: bool | str = True,
    printer: Callable[[str], None] | None = print,
) -> Any:
    """Keras ``compile`` + ``fit`` with ``verbose=0`` and one deterministic line per epoch;
    returns Keras' ``History``."""
    import keras

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if printer:
                printer(
                    f"epoch {epoch + 1}: loss {format_float(logs['loss'])}, "
                    f"accuracy {format_float(logs['accuracy'])}"
                )

    model.compile(optimizer=optimizer, loss=loss_function(), metrics=["accuracy"])
    return model.fit(
        to_float(split.images),
        split.labels,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=shuffle,
        verbose=0,
        callbacks=[EpochLines()],
    )
