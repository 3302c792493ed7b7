"""Training with a deterministic batch order, recording what a divergence hunt needs.

:func:`train` runs a compiled training step over batches drawn from an explicitly seeded
:class:`~reprodl.batches.IndexStream`; the data stays on the device and each step only gathers its
batch. It records every step's loss and, every ``digest_every`` steps, the per-variable digests of
the model's state; it can write checkpoints every ``checkpoint_every`` steps and resume from one
bit-exactly. :class:`RunSpec` names everything that defines a run (so a run record can say how to
replay it) and :func:`run` builds and trains one. :func:`fit_quietly` is the Keras ``fit`` path
with deterministic log lines instead of progress bars.

Checkpoint files (``step_00000050.npz``, NumPy's ``.npz``, no pickles) hold the complete state a
bit-exact resume needs: every model variable (weights and the dropout layers'
``seed_generator_state``), every optimizer variable (step counter, learning rate, Adam's slots),
the batch stream's position (epoch, offset, the epoch's order) and NumPy's global random state
(the classic ``next_batch`` shuffles with it). Python's ``random`` state is not saved: nothing in
the loop draws from it after the model is built.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reprodl import fingerprint
from reprodl.batches import IndexStream, epoch_permutation
from reprodl.data import Split, to_float

#: Per-model defaults: optimizer, learning rate, batch size.
DEFAULTS: dict[str, tuple[str, float, int]] = {
    "softmax": ("sgd", 0.5, 100),
    "mlp": ("adam", 1e-3, 100),
    "cnn": ("adam", 2e-3, 100),
}

#: Learning-rate schedules: constant, or a cosine decay from the learning rate to zero over the
#: run (the deep CNN's default: 99.2% in two epochs, see chapter 6).
SCHEDULES = ("constant", "cosine")
DEFAULT_SCHEDULES: dict[str, str] = {"softmax": "constant", "mlp": "constant", "cnn": "cosine"}

#: Batch orders a :class:`RunSpec` can ask for (see :func:`make_stream`).
ORDERS = ("seeded", "global", "global-after-first")

#: Name of the checkpoint file of a step inside a checkpoint folder.
CHECKPOINT_NAME = "step_{:08d}.npz"
CHECKPOINT_FORMAT = "reprodl.checkpoint"
CHECKPOINT_VERSION = 1


def format_float(x: float) -> str:
    """Shortest text that round-trips a float32 exactly: equal text means equal bits."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


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


@dataclass
class TrainingRecord:
    """What one training run did: per-step losses (float32) and weight digests at chosen steps.

    ``digests`` maps a step to the per-variable digests of the model's state after it (every
    ``digest_every`` steps, at checkpoints and at the last step); ``initial_digests`` and
    ``final_digests`` are the state before the first and after the last step. With ``resume`` the
    run starts at ``start_step`` and ``losses`` covers steps ``start_step + 1 ..``.
    """

    losses: np.ndarray
    digests: dict[int, dict[str, str]] = field(default_factory=dict)
    final_digest: str = ""
    seconds: float = 0.0
    first_step_seconds: float = 0.0  # includes tracing the compiled step
    start_step: int = 0
    initial_digests: dict[str, str] = field(default_factory=dict)
    final_digests: dict[str, str] = field(default_factory=dict)
    variables: list[VariableInfo] = field(default_factory=list)

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


def make_optimizer(name: str, learning_rate: float, *, cosine_steps: int | None = None):
    """A Keras optimizer by name (``sgd`` or ``adam``).

    With ``cosine_steps`` the rate decays from ``learning_rate`` to zero over that many steps,
    ``lr_t = lr * (1 + cos(pi * t / T)) / 2``; the step count lives in the optimizer's
    ``iteration`` variable, so a resumed run continues the same schedule.
    """
    import keras

    rate = learning_rate
    if cosine_steps is not None:
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=cosine_steps)
    if name == "sgd":
        return keras.optimizers.SGD(rate)
    if name == "adam":
        return keras.optimizers.Adam(rate)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adam")


def _loss_fn():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# --- the model's state, by stable names ------------------------------------------------------


def state_variables(model) -> list[tuple[VariableInfo, Any]]:
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
        base, k = name, 1
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        info = VariableInfo(
            name=name,
            shape=tuple(int(d) for d in v.shape),
            dtype=str(np.dtype(v.dtype)),
            kind="weight" if id(v) in weights else "rng",
        )
        result.append((info, v))
    return result


def state_arrays(model) -> dict[str, np.ndarray]:
    """The model's state now, as NumPy arrays by variable name (in ``model.variables`` order)."""
    return {info.name: np.array(v.numpy()) for info, v in state_variables(model)}


def state_digests(model) -> dict[str, str]:
    """Per-variable SHA-256 digests of the model's state (weights and random generator states)."""
    return {name: fingerprint.array_digest(a) for name, a in state_arrays(model).items()}


# --- batch streams ---------------------------------------------------------------------------


class _GlobalAfterFirst(IndexStream):
    """First epoch in a seeded order, every later epoch shuffled with NumPy's global state."""

    def _make_order(self, epoch: int) -> np.ndarray:
        if epoch == 0:
            return epoch_permutation(self.num_examples, self._first_seed, 0)
        return np.random.permutation(self.num_examples)

    def __init__(self, num_examples: int, seed: int) -> None:
        self._first_seed = seed
        super().__init__(num_examples, seed=None)


def make_stream(num_examples: int, order: str, seed: int) -> IndexStream:
    """The batch stream of an ``order``: ``seeded`` (every epoch from ``seed``), ``global`` (the
    classic ``next_batch``: every epoch from NumPy's global state) or ``global-after-first`` (the
    first epoch from ``seed``, later ones from the global state: a run that drifts at epoch 2)."""
    if order == "seeded":
        return IndexStream(num_examples, seed=seed)
    if order == "global":
        return IndexStream(num_examples, seed=None)
    if order == "global-after-first":
        return _GlobalAfterFirst(num_examples, seed)
    raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")


# --- checkpoints -----------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model it is restored into."""


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


def atomic_write(path: str | os.PathLike[str], write: Callable[[Any], None]) -> None:
    """Write a file through ``write(binary_file)`` into a temp file, then rename it into place.

    A crash leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def capture_checkpoint(step: int, model, optimizer, stream: IndexStream) -> Checkpoint:
    """The complete training state now (after ``step`` steps)."""
    return Checkpoint(
        step=step,
        model=state_arrays(model),
        optimizer=[(v.path, np.array(v.numpy())) for v in optimizer.variables],
        stream_epoch=stream.epoch,
        stream_pos=stream._pos,
        stream_order=np.array(stream._order),
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


def restore_checkpoint(ckpt: Checkpoint, model, optimizer, stream: IndexStream) -> None:
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
    stream.epoch = ckpt.stream_epoch
    stream._pos = ckpt.stream_pos
    stream._order = np.array(ckpt.stream_order)
    np.random.set_state(ckpt.numpy_rng)


# --- the training loop -----------------------------------------------------------------------


def compiled_step(model, optimizer, split: Split, batch_size: int | None = None):
    """One training step as a ``tf.function`` taking the batch's indices into ``split``.

    The whole split is one tensor on the device; a step gathers its batch, computes the loss and
    applies the gradients. ``batch_size`` fixes the input signature (one trace for all calls).
    """
    import tensorflow as tf

    images = tf.constant(to_float(split.images))
    labels = tf.constant(split.labels)
    loss_fn = _loss_fn()
    variables = model.trainable_variables
    signature = None if batch_size is None else [tf.TensorSpec([batch_size], tf.int32)]

    @tf.function(input_signature=signature)
    def step(idx):
        x = tf.gather(images, idx)
        y = tf.gather(labels, idx)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return step


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
    stream: IndexStream | None = None,
    checkpoint_every: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | Checkpoint | None = None,
) -> TrainingRecord:
    """Train ``model`` for ``steps`` steps on batches in a seeded order; record the run.

    ``order_seed=None`` draws each epoch's order from NumPy's global state (the classic trap);
    ``stream`` replaces the order given by ``order_seed``. ``digest_every=k`` stores per-variable
    digests after every k-th step (0: only before the first and after the last step).
    ``checkpoint_every=k`` writes a checkpoint into ``checkpoint_dir`` before the first step and
    after every k-th; ``resume`` restores one and trains on up to step ``steps`` (counted from the
    start of the original run), bit-identically to the run that wrote it.
    """
    import tensorflow as tf

    if steps <= 0 or batch_size <= 0:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    if checkpoint_every and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs a checkpoint_dir")
    step = compiled_step(model, optimizer, split)
    if stream is None:
        stream = IndexStream(len(split), seed=order_seed)

    first = 0
    if resume is not None:
        ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
        restore_checkpoint(ckpt, model, optimizer, stream)
        first = ckpt.step
        if first >= steps:
            raise ValueError(f"the checkpoint is at step {first}, not before step {steps}")
    elif checkpoint_every:
        optimizer.build(model.trainable_variables)
        save_checkpoint(
            capture_checkpoint(0, model, optimizer, stream), checkpoint_path(checkpoint_dir, 0)
        )
    record = TrainingRecord(losses=np.empty(0, dtype=np.float32), start_step=first)
    record.variables = [info for info, _ in state_variables(model)]
    record.initial_digests = state_digests(model)
    loss_tensors = []  # read back at the end: a host sync per step would cost time
    start = time.perf_counter()
    for n in range(first + 1, steps + 1):
        idx = stream.next(batch_size)
        loss_tensors.append(step(tf.constant(idx, dtype=tf.int32)))
        if n == first + 1:
            record.first_step_seconds = time.perf_counter() - start
        at_checkpoint = bool(checkpoint_every) and n % checkpoint_every == 0
        if (digest_every and (n % digest_every == 0 or n == steps)) or at_checkpoint:
            record.digests[n] = state_digests(model)
        if at_checkpoint:
            ckpt = capture_checkpoint(n, model, optimizer, stream)
            save_checkpoint(ckpt, checkpoint_path(checkpoint_dir, n))
        if on_step:
            on_step(n, float(loss_tensors[-1].numpy()))
    record.losses = tf.stack(loss_tensors).numpy().astype(np.float32)
    record.seconds = time.perf_counter() - start
    record.final_digest = fingerprint.weights_digest(model)
    record.final_digests = state_digests(model)
    return record


# --- runs described by a spec ----------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one run of :func:`train` on MNIST (stored in a run record).

    ``None`` means the model's default (:data:`DEFAULTS`; for ``intra_op_threads`` the pinned
    count). ``dropout_seed="entropy"`` seeds the dropout masks from ``os.urandom``: a staged
    culprit, unseeded in the only sense that survives ``keras.utils.set_random_seed``.
    ``intra_op_threads`` and ``op_determinism`` are process-global: a run that needs other values
    than the current process has must run in a process of its own.
    """

    model: str
    steps: int
    seed: int = 0
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    dropout: float | None = None
    dropout_seed: int | str | None = None
    order: str = "seeded"
    intra_op_threads: int | None = None
    op_determinism: bool = True
    schedule: str | None = None

    def __post_init__(self) -> None:
        if self.model not in DEFAULTS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(DEFAULTS)}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; choose one of {', '.join(ORDERS)}")
        if self.dropout is not None and self.model == "softmax":
            raise ValueError("the softmax model has no dropout layer")
        if isinstance(self.dropout_seed, str) and self.dropout_seed != "entropy":
            raise ValueError(f"dropout_seed must be an int or 'entropy', got {self.dropout_seed!r}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose {' or '.join(SCHEDULES)}")

    def resolved(self) -> RunSpec:
        """The same spec with every default filled in."""
        opt, lr, batch = DEFAULTS[self.model]
        from reprodl import runtime

        return dataclasses.replace(
            self,
            batch_size=self.batch_size or batch,
            optimizer=self.optimizer or opt,
            learning_rate=self.learning_rate or lr,
            intra_op_threads=self.intra_op_threads or runtime.INTRA_OP_THREADS,
            schedule=self.schedule or DEFAULT_SCHEDULES[self.model],
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunSpec:
        """The spec a :meth:`to_dict` wrote; unknown or missing keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown run settings: {', '.join(sorted(unknown))}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


def build(spec: RunSpec, num_examples: int):
    """The model, optimizer and batch stream of ``spec`` (defaults filled in)."""
    from reprodl import models

    spec = spec.resolved()
    kwargs: dict[str, Any] = {}
    if spec.dropout is not None:
        kwargs["dropout"] = spec.dropout
    if spec.dropout_seed == "entropy":
        kwargs["dropout_seed"] = int.from_bytes(os.urandom(8), "little")
    elif spec.dropout_seed is not None:
        kwargs["dropout_seed"] = spec.dropout_seed
    model = models.build(spec.model, spec.seed, **kwargs)
    return model, optimizer_for(spec), make_stream(num_examples, spec.order, spec.seed)


def optimizer_for(spec: RunSpec):
    """A fresh optimizer of ``spec`` (defaults filled in): its learning rate, with the cosine
    schedule decaying over ``spec.steps``."""
    spec = spec.resolved()
    cosine_steps = spec.steps if spec.schedule == "cosine" else None
    return make_optimizer(spec.optimizer, spec.learning_rate, cosine_steps=cosine_steps)


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

    Raises ``RuntimeError`` when TensorFlow has already run an op with another thread count: that
    setting is fixed for the life of the process, so such a run needs a process of its own.
    """
    from reprodl import runtime

    tf = runtime.import_tensorflow()
    spec = spec.resolved()
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() != spec.intra_op_threads:
        try:
            threading.set_intra_op_parallelism_threads(spec.intra_op_threads)
        except RuntimeError:
            raise RuntimeError(
                f"this run needs {spec.intra_op_threads} intra-op threads, but TensorFlow is "
                f"already running with {threading.get_intra_op_parallelism_threads()}: run it in "
                "a process of its own"
            ) from None
    from tensorflow.python.framework import config as tf_config  # no public getter exists

    if tf_config.is_op_determinism_enabled() != spec.op_determinism:
        if spec.op_determinism:
            tf.config.experimental.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()


def run(spec: RunSpec, split: Split, **train_kwargs) -> tuple[Any, TrainingRecord]:
    """Build the run ``spec`` describes and :func:`train` it on ``split``; return model and record.

    ``train_kwargs`` go to :func:`train` (``digest_every``, ``checkpoint_every``, ``resume`` ...).
    The process-global settings must already be those of ``spec`` (see
    :func:`apply_process_settings`); NumPy's global random state is used as it is, never reset.
    """
    differ = process_settings_differ(spec)
    if differ:
        raise RuntimeError(f"this process does not have the settings of the run: {differ[0]}")
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
