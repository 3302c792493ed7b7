"""Replicated training in one process: ``MirroredStrategy`` over logical CPUs, built on
:mod:`reprodl.training.loop`'s step, loop, digests and evaluation."""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reprodl import _tf as _private
from reprodl.batches import IndexStream
from reprodl.data import Split, to_float
from reprodl.errors import SettingsError, UsageError
from reprodl.record import fingerprint
from reprodl.record.state import VariableInfo, state_digests, state_variables
from reprodl.seeds import derive_seeds
from reprodl.training.loop import apply_step, evaluate, loss_function, run_steps
from reprodl.training.results import Evaluation, TrainingRecord

if TYPE_CHECKING:
    from reprodl.data import Mnist
    from reprodl.training.spec import RunSpec


#: Key under which a replica's dropout seed is derived from the layer's: ``[seed, KEY, replica]``.
REPLICA_KEY = 2
#: How the global batch reaches the replicas: explicit slices, or a distributed ``tf.data``.
FEEDS = ("values", "dataset")
#: ``dropout_masks`` choices: one stream per replica, or Keras' default (all the same masks).
DROPOUT_MASKS = ("per_replica", "shared")


def _tf() -> Any:
    return _runtime.import_tensorflow()


def set_logical_cpus(n: int) -> None:
    """Split the (first) CPU into ``n`` logical devices, one per replica.

    Must run before TensorFlow initialises its devices (before any op); asking again for the
    same ``n`` is harmless. :class:`SettingsError` when it is too late, :class:`UsageError` for
    ``n < 1``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UsageError(f"the number of logical CPUs must be an int >= 1, got {n!r}")
    tf = _tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        raise SettingsError(
            f"TensorFlow has already initialised its devices ({have} logical CPU(s)), so it "
            f"cannot be split into {n}: call set_logical_cpus before any TensorFlow op, or run "
            "in a fresh process"
        ) from None


def _strategy(replicas: int) -> Any:
    """A ``MirroredStrategy`` over the first ``replicas`` logical CPUs (split them if needed)."""
    tf = _tf()
    if len(tf.config.list_logical_devices("CPU")) < replicas:
        set_logical_cpus(replicas)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:replicas]]
    return tf.distribute.MirroredStrategy(devices)


def seed_replicas(model: Any, strategy: Any) -> list[list[int]]:
    """Give each replica's dropout masks a stream of their own; returns the seeds, per layer.

    Every ``SeedGenerator`` state of ``model`` (built under ``strategy.scope()``) is a mirrored
    variable whose copies start equal; replica ``r > 0`` gets ``[derive_seeds([s, REPLICA_KEY,
    r])[0], 0]``, replica 0 keeps ``[s, 0]``. ``r`` is the global replica id: under
    ``MultiWorkerMirroredStrategy`` worker ``w`` holds replicas ``w * local ...`` (so K workers
    draw what K replicas in one process draw); the seeds returned are this process's.

    Measured: without it, ``Dropout(0.5, seed=123)`` under ``strategy.run`` over 2 logical CPUs
    drew the same mask on both replicas at every step (both states went ``[123, 1]``, then
    ``[123, 2]``). Afterwards the states are not mirrored any more: a checkpoint of the model
    saves replica 0's state only.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task = int(getattr(resolver, "task_id", None) or 0)
    seeds: list[list[int]] = []
    for layer in model.layers:
        gen = getattr(layer, "seed_generator", None)  # Dropout's, and other random layers'
        if gen is None:
            continue
        copies = strategy.experimental_local_results(gen.state.value)
        base = int(copies[0].numpy()[0])
        layer_seeds = []
        for local, copy in enumerate(copies):
            r = task * len(copies) + local
            if r == 0:
                layer_seeds.append(base)
                continue
            s = derive_seeds([base, REPLICA_KEY, r], 1)[0]
            copy.assign(np.array([s, 0], dtype=copy.dtype.as_numpy_dtype))
            layer_seeds.append(s)
        seeds.append(layer_seeds)
    return seeds


@dataclass(frozen=True)
class ReplicatedRun:
    """What :func:`train_replicated` measured: per-step losses (float32, the global mean), the
    final weights' digest, how many replicas, the time per step after the first (which traces),
    the indices each replica received at step 1; the state's variables and their digests
    (replica 0's copies) at step 0, every ``digest_every`` steps and at the end; the test count
    when a test split was given; the model's build time."""

    losses: np.ndarray
    fingerprint: str
    replicas: int
    seconds_per_step: float
    first_step_seconds: float
    first_split: tuple[tuple[int, ...], ...]
    variables: tuple[VariableInfo, ...] = ()
    digests: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    test: Evaluation | None = None
    build_seconds: float = 0.0


def record_of(
    losses: Any, fingerprint_: str, variables: Sequence[VariableInfo], digests: Mapping[int, Any]
) -> TrainingRecord:
    steps = len(losses)
    return TrainingRecord(
        losses=np.asarray(losses, dtype=np.float32),
        digests={k: dict(v) for k, v in digests.items() if 0 < k < steps},
        final_digest=fingerprint_,
        initial_digests=dict(digests[0]),
        final_digests=dict(digests[steps]),
        variables=list(variables),
    )


def training_record(run: ReplicatedRun) -> TrainingRecord:
    """The :class:`~reprodl.training.TrainingRecord` of a :func:`train_replicated` run (digests
    at step 0, every ``digest_every`` steps and at the end), as records are made from."""
    return record_of(run.losses, run.fingerprint, run.variables, run.digests)


def _slices(idx: np.ndarray, replicas: int) -> list[np.ndarray]:
    per = len(idx) // replicas
    return [idx[r * per : (r + 1) * per] for r in range(replicas)]


def check_batch(batch_size: int, replicas: int, steps: int) -> None:
    if steps < 1 or batch_size < 1 or replicas < 1:
        raise UsageError(
            f"steps, batch_size and replicas must be positive, got {steps}, {batch_size}, "
            f"{replicas}"
        )
    if batch_size % replicas:
        raise UsageError(f"a global batch of {batch_size} cannot be split evenly in {replicas}")


def _step_function(strategy: Any, model: Any, optimizer: Any, global_batch: int) -> Any:
    """A compiled step over one distributed ``(x, y)`` global batch; returns the global mean loss.

    Each replica runs :func:`~reprodl.training.loop.apply_step` on its slice. What differs from
    the single-device step, and why: each replica's loss is the *sum* over its slice divided by
    the global batch (``compute_average_loss``), so that the replicas' gradients, summed by the
    optimizer's cross-replica all-reduce, are the gradient of the global mean; ``strategy.run``
    runs the replicas; ``strategy.reduce(SUM)`` adds their losses into the global mean. The
    model runs whole: the lanes of :func:`~reprodl.training.loop.compiled_step` are a speed-up
    of the single-device loop, not measured under ``strategy.run``.
    """
    tf = _tf()
    per_example = loss_function(reduction=None)
    variables = model.trainable_variables

    def scaled_loss(y: Any, logits: Any) -> Any:
        return tf.nn.compute_average_loss(per_example(y, logits), global_batch_size=global_batch)

    def forward(x: Any) -> Any:
        return model(x, training=True)

    def replica_step(x: Any, y: Any) -> Any:
        return apply_step(optimizer, variables, forward, scaled_loss, x, y)

    @tf.function(autograph=False)
    def step(batch: Any) -> Any:
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def build_replicated(
    strategy: Any,
    seed: int,
    hidden: Sequence[int],
    dropout: float,
    masks: str,
    learning_rate: float = 1e-3,
) -> Any:
    """The book's MLP and its Adam optimizer, built in ``strategy``'s scope from ``seed``; with
    ``masks="per_replica"``, every replica's dropout generator seeded on its own."""
    import keras

    from reprodl import models

    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = models.build("mlp", seed, hidden=tuple(hidden), dropout=dropout)
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(model.trainable_variables)
    if masks == "per_replica" and strategy.num_replicas_in_sync > 1:
        seed_replicas(model, strategy)
    return model, optimizer


def _batches(
    strategy: Any, split: Split, order: list[np.ndarray], feed: str, shard_policy: str
) -> tuple[Any, tuple[tuple[int, ...], ...]]:
    """An iterator of distributed ``(x, y)`` global batches, and replica slices of step 1."""
    tf = _tf()
    images = to_float(split.images)
    labels = split.labels.astype(np.int64)
    n = strategy.num_replicas_in_sync
    if feed == "values":
        first = tuple(tuple(int(i) for i in s) for s in _slices(order[0], n))

        def values():
            for idx in order:
                parts = _slices(idx, n)

                def value_fn(ctx, parts=parts):
                    mine = parts[ctx.replica_id_in_sync_group]
                    return tf.constant(images[mine]), tf.constant(labels[mine])

                yield strategy.experimental_distribute_values_from_function(value_fn)

        return values(), first
    # the dataset path: the global batches in the same order, split by tf.distribute
    flat = np.concatenate(order)
    ds = tf.data.Dataset.from_tensor_slices((images[flat], labels[flat], flat.astype(np.int64)))
    ds = ds.batch(len(order[0]), drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, shard_policy
    )
    options.deterministic = True
    ds = ds.with_options(options)
    dist = iter(strategy.experimental_distribute_dataset(ds))
    first_batch = next(dist)
    first = tuple(
        tuple(int(i) for i in t.numpy())
        for t in strategy.experimental_local_results(first_batch[2])
    )

    def drop_index():
        yield first_batch[:2]
        for batch in dist:
            yield batch[:2]

    return drop_index(), first


def train_replicated(
    split: Split,
    *,
    replicas: int,
    steps: int,
    batch_size: int = 100,
    seed: int = 0,
    hidden: Sequence[int] = (128,),
    dropout: float = 0.0,
    dropout_masks: str = "per_replica",
    feed: str = "values",
    shard_policy: str = "DATA",
    learning_rate: float = 1e-3,
    digest_every: int = 0,
    test: Split | None = None,
) -> ReplicatedRun:
    """Train the book's MLP (Adam 1e-3) under ``MirroredStrategy`` over ``replicas`` logical CPUs.

    ``batch_size`` is the *global* batch, in the order of ``IndexStream(len(split), seed)``, split
    evenly: replica ``r`` gets the ``r``-th slice (``feed="values"``), or ``tf.distribute``
    splits it (``feed="dataset"``, auto-sharding pinned to ``shard_policy``, a name of
    ``tf.data.experimental.AutoShardPolicy``). Op determinism is turned on (and checked).
    Creates the logical devices when missing, which only works before TensorFlow has started.
    Digests of the state (replica 0's copies) are taken at step 0, every ``digest_every`` steps
    (0: none between) and at the end; ``test`` is counted with the final weights.
    """
    check_batch(batch_size, replicas, steps)
    if feed not in FEEDS:
        raise UsageError(f"feed must be one of {', '.join(FEEDS)}, not {feed!r}")
    if dropout_masks not in DROPOUT_MASKS:
        raise UsageError(f"dropout_masks must be one of {', '.join(DROPOUT_MASKS)}")
    tf = _tf()
    if not hasattr(tf.data.experimental.AutoShardPolicy, shard_policy):
        raise UsageError(f"unknown AutoShardPolicy {shard_policy!r}")
    if digest_every < 0:
        raise UsageError(f"digest_every must be >= 0, got {digest_every}")
    strategy = _strategy(replicas)
    _runtime.set_op_determinism(True)
    return train_loop(
        strategy,
        split,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        hidden=hidden,
        dropout=dropout,
        dropout_masks=dropout_masks,
        feed=feed,
        shard_policy=shard_policy,
        learning_rate=learning_rate,
        digest_every=digest_every,
        test=test,
    )


def require_op_determinism() -> None:
    """:class:`SettingsError` unless TensorFlow's op determinism is on in this process (the
    replicated loop must fail loudly on an op without a deterministic kernel, as the
    single-device loop does)."""
    if not _private.is_op_determinism_enabled():
        raise SettingsError("op determinism is off: the replicated loop needs it on")


def train_loop(
    strategy: Any,
    split: Split,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    hidden: Sequence[int],
    dropout: float,
    dropout_masks: str,
    feed: str,
    shard_policy: str,
    learning_rate: float,
    digest_every: int,
    test: Split | None,
) -> ReplicatedRun:
    """The custom loop under ``strategy`` (mirrored or multi-worker), op determinism required.

    The state digests are :func:`~reprodl.record.state.state_digests`: read outside
    ``strategy.run``, a mirrored variable gives its primary copy, this process's first replica
    (global replica 0 on worker 0; after :func:`seed_replicas` the dropout states differ between
    replicas, so the record holds replica 0's).
    """
    require_op_determinism()
    replicas = strategy.num_replicas_in_sync
    check_batch(batch_size, replicas, steps)
    start = time.perf_counter()
    model, optimizer = build_replicated(
        strategy, seed, hidden, dropout, dropout_masks, learning_rate
    )
    build_seconds = time.perf_counter() - start
    stream = IndexStream(len(split), seed=seed)
    order = [stream.next(batch_size) for _ in range(steps)]
    batches, first_split = _batches(strategy, split, order, feed, shard_policy)
    step = _step_function(strategy, model, optimizer, batch_size)
    digests = {0: state_digests(model)}

    def after(n: int, _loss: Any) -> None:
        if n == steps or (digest_every and n % digest_every == 0):
            digests[n] = state_digests(model)

    losses, first, seconds = run_steps(step, batches, after)
    return ReplicatedRun(
        losses=losses,
        fingerprint=fingerprint.weights_digest(model),
        replicas=replicas,
        seconds_per_step=(seconds - first) / (steps - 1) if steps > 1 else first,
        first_step_seconds=first,
        first_split=first_split,
        variables=tuple(info for info, _ in state_variables(model)),
        digests=digests,
        test=evaluate(model, test) if test is not None else None,
        build_seconds=build_seconds,
    )


def run_meta(
    spec: RunSpec,
    *,
    replicas: int,
    workers: int = 1,
    feed: str = "values",
    dropout_masks: str = "per_replica",
) -> dict[str, Any]:
    """A data-parallel record's ``meta.run``: the spec, and how the global batch was split
    (``replicas`` in all, on ``workers`` processes, ``feed``, ``dropout_masks``)."""
    split = {"replicas": replicas, "workers": workers, "feed": feed}
    return {**spec.to_dict(), **split, "dropout_masks": dropout_masks}


def save_for_workers(mnist: Mnist, path: str | os.PathLike[str]) -> Path:
    """Write MNIST's training and test splits to ``path`` (``.npz``) in the layout the workers
    read (:func:`run_workers`'s ``data``: ``images``, ``labels``, ``test_images``,
    ``test_labels``); return ``path``."""
    np.savez(
        path,
        images=mnist.train.images,
        labels=mnist.train.labels,
        test_images=mnist.test.images,
        test_labels=mnist.test.labels,
    )
    return Path(path)
