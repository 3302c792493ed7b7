"""Training with a deterministic batch order, recording what a divergence hunt needs.

:func:`train` runs a compiled training step over batches drawn from an explicitly seeded
:class:`~reprodl.batches.IndexStream`; the data stays on the device and each step only gathers its
batch. It records every step's loss and, every ``digest_every`` steps, the per-variable weight
digests. :func:`fit_quietly` is the Keras ``fit`` path with deterministic log lines instead of
progress bars.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from reprodl import fingerprint
from reprodl.batches import IndexStream
from reprodl.data import Split, to_float


def format_float(x: float) -> str:
    """Shortest text that round-trips a float32 exactly: equal text means equal bits."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


@dataclass
class TrainingRecord:
    """What one training run did: per-step losses (float32) and weight digests at chosen steps."""

    losses: np.ndarray
    digests: dict[int, dict[str, str]] = field(default_factory=dict)
    final_digest: str = ""
    seconds: float = 0.0
    first_step_seconds: float = 0.0  # includes tracing the compiled step

    @property
    def steps_per_second(self) -> float:
        """Throughput after the first step (which traces and compiles the step function)."""
        if self.steps < 2:
            return float("nan")
        return (self.steps - 1) / (self.seconds - self.first_step_seconds)

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])


@dataclass(frozen=True)
class Evaluation:
    """Accuracy as an exact count, so printing it is deterministic."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    def __str__(self) -> str:
        return f"{self.accuracy:.2%} ({self.correct}/{self.total})"


def make_optimizer(name: str, learning_rate: float):
    """A Keras optimizer by name (``sgd`` or ``adam``)."""
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adam")


def _loss_fn():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train(
    model,
    split: Split,
    *,
    steps: int,
    batch_size: int,
    optimizer,
    order_seed: int | None,
    digest_every: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainingRecord:
    """Train ``model`` for ``steps`` steps on batches in a seeded order; record the run.

    ``order_seed=None`` draws each epoch's order from NumPy's global state (the classic trap).
    ``digest_every=k`` stores per-variable digests after every k-th step (0: only the final one).
    """
    import tensorflow as tf

    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    images = tf.constant(to_float(split.images))
    labels = tf.constant(split.labels)
    loss_fn = _loss_fn()
    variables = model.trainable_variables

    @tf.function
    def step(idx):
        x = tf.gather(images, idx)
        y = tf.gather(labels, idx)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    stream = IndexStream(len(split), seed=order_seed)
    loss_tensors = []  # read back at the end: a host sync per step would cost time
    record = TrainingRecord(losses=np.empty(0, dtype=np.float32))
    start = time.perf_counter()
    for i, idx in enumerate(stream.batches(batch_size, steps)):
        loss_tensors.append(step(tf.constant(idx, dtype=tf.int32)))
        if i == 0:
            record.first_step_seconds = time.perf_counter() - start
        if digest_every and (i + 1) % digest_every == 0:
            record.digests[i + 1] = fingerprint.variable_digests(model)
        if on_step:
            on_step(i + 1, float(loss_tensors[-1].numpy()))
    record.losses = tf.stack(loss_tensors).numpy().astype(np.float32)
    record.seconds = time.perf_counter() - start
    record.final_digest = fingerprint.weights_digest(model)
    return record


def evaluate(model, split: Split, batch_size: int = 1000) -> Evaluation:
    """Count correct predictions on ``split`` (inference mode, so dropout is off)."""
    import tensorflow as tf

    @tf.function
    def predict(x):
        return tf.argmax(model(x, training=False), axis=1, output_type=tf.int64)

    correct = 0
    for start in range(0, len(split), batch_size):
        x = tf.constant(to_float(split.images[start : start + batch_size]))
        pred = predict(x).numpy()
        correct += int(np.sum(pred == split.labels[start : start + batch_size]))
    return Evaluation(correct=correct, total=len(split))


def fit_quietly(
    model,
    split: Split,
    *,
    epochs: int,
    batch_size: int,
    optimizer,
    shuffle=True,
    printer: Callable[[str], None] | None = print,
):
    """Keras ``compile`` + ``fit`` with ``verbose=0`` and one deterministic line per epoch."""
    import keras

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if printer:
                printer(
                    f"epoch {epoch + 1}: loss {format_float(logs['loss'])}, "
                    f"accuracy {format_float(logs['accuracy'])}"
                )

    model.compile(optimizer=optimizer, loss=_loss_fn(), metrics=["accuracy"])
    return model.fit(
        to_float(split.images),
        split.labels,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=shuffle,
        verbose=0,
        callbacks=[EpochLines()],
    )
