"""Data-parallel training with ``tf.distribute``, bit for bit: many replicas, one process or many.

:func:`set_logical_cpus` splits the CPU into logical devices (before TensorFlow starts);
:func:`train_replicated` trains the book's MLP under ``MirroredStrategy``: one global batch per
step in the seeded order of :class:`~reprodl.batches.IndexStream`, split evenly between the
replicas, trained with the pieces of :mod:`reprodl.training.loop` (the step's loss, gradient and
update, the loop, the state digests, the evaluation). :func:`run_workers` trains it under
``MultiWorkerMirroredStrategy`` in K local processes (:func:`launch_workers`: ``TF_CONFIG`` on
127.0.0.1, every worker stopped when one fails or hangs); each writes a JSON result (schema
``distributed_worker``, read back by :func:`read_worker_results`).

Measured here (TensorFlow 2.21.0, Keras 3.15.1, 2-core CPU, the package's pins), shown in
chapter 12 and tested in ``tests/test_distributed.py`` and ``tests/test_cli_replicas.py``:

- 1 and 2 replicas with the same global batch train different bits (the gradient is summed from
  two halves), each identical run to run; 1 replica gives the bits of the single-device ``train``;
  2 replicas fed explicitly or through ``experimental_distribute_dataset``
  (``AutoShardPolicy.DATA``), and 2 workers, give the same bits.
- Keras gives every replica the same dropout masks; :func:`seed_replicas` gives each its own.
- With op determinism on, an unseeded random op fails loudly in a replica's step
  (:func:`require_op_determinism`); the ops TensorFlow lists as nondeterministic on GPU have
  deterministic CPU kernels.
- Keras ``fit`` fails under ``MultiWorkerMirroredStrategy`` (``trainer="fit"``: chapter 12's
  experiment, :mod:`reprodl.book.fit_multiworker`; the cause: ``tools/probes/fit_multiworker.py``);
  the custom loop works.
- Speed (MLP, 200 steps, 2 shared cores): about 1.4 ms per step with 1 replica, 2.7-2.8 ms with
  2 (3.9-4.1 ms through the dataset), 8-9 ms with 2 worker processes.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reprodl import _io, _proc, schemas
from reprodl import _tf as _private
from reprodl.batches import IndexStream
from reprodl.data import Split, to_float
from reprodl.errors import SettingsError, SubprocessError, UsageError
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
#: Seconds a stopped worker gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 3.0
#: The schema of a worker's JSON result (:mod:`reprodl.schemas`).
WORKER_SCHEMA = "distributed_worker"


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


def _record(
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
    return _record(run.losses, run.fingerprint, run.variables, run.digests)


def workers_record(results: Sequence[Mapping[str, Any]]) -> tuple[TrainingRecord, Evaluation]:
    """Worker 0's run (its :class:`~reprodl.training.TrainingRecord` and test count) from the
    results :func:`run_workers` returns; :class:`SubprocessError` for a result that does not have
    the schema's structure, or unless every worker reached the same fingerprint, losses and
    weight digests (each worker's random generator states are its own replica's: only the
    weights must agree)."""
    for i, r in enumerate(results):
        check_worker_result(r, f"worker {i}")
    first = results[0]
    if first["trainer"] != "loop" or "test" not in first:
        raise SubprocessError(
            "worker 0's result has no digests or no test count: only trainer 'loop' with a test "
            "split in its data makes a record"
        )
    weights = [v["name"] for v in first["variables"] if v["kind"] == "weight"]

    def agreed(r: Mapping[str, Any]) -> tuple[Any, ...]:
        digests = {k: [d[n] for n in weights] for k, d in r["digests"].items()}
        return r["fingerprint"], r["losses"], digests

    for r in results[1:]:
        if agreed(r) != agreed(first):
            raise SubprocessError(
                f"the workers disagree: worker 0 ended with fingerprint {first['fingerprint']}, "
                f"worker {r['worker']} with {r['fingerprint']} (or their losses or weight "
                "digests differ): the run is not data-parallel bit for bit"
            )
    variables = [
        VariableInfo(v["name"], tuple(v["shape"]), v["dtype"], v["kind"])
        for v in first["variables"]
    ]
    digests = {int(k): v for k, v in first["digests"].items()}
    test = Evaluation(first["test"]["correct"], first["test"]["total"])
    return _record(first["losses"], first["fingerprint"], variables, digests), test


def check_worker_result(result: Any, where: str) -> None:
    """:class:`SubprocessError` ``"WHERE's result: problem"`` unless ``result`` has the structure
    of a worker's result (schema :data:`WORKER_SCHEMA`)."""
    schemas.check(result, WORKER_SCHEMA, f"{where}'s result", error=SubprocessError)


def read_worker_results(out: str | os.PathLike[str], n: int) -> list[dict[str, Any]]:
    """The results of workers ``0 .. n-1``, read from ``out`` (``{index}``: the worker's index)
    and checked: :class:`SubprocessError` naming the worker and its file when one is missing,
    not JSON, or not a worker's result."""
    results = []
    for i in range(n):
        path = str(out).replace("{index}", str(i))
        try:
            result = _io.read_json(path, error=SubprocessError)
        except SubprocessError as exc:
            raise SubprocessError(f"worker {i}'s result {exc}") from None
        check_worker_result(result, f"worker {i}")
        if result["worker"] != i:
            raise SubprocessError(
                f"worker {i}'s result {path} says it is worker {result['worker']}"
            )
        results.append(result)
    return results


def _slices(idx: np.ndarray, replicas: int) -> list[np.ndarray]:
    per = len(idx) // replicas
    return [idx[r * per : (r + 1) * per] for r in range(replicas)]


def _check_batch(batch_size: int, replicas: int, steps: int) -> None:
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
    _check_batch(batch_size, replicas, steps)
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
    return _train_loop(
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


def _train_loop(
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
    _check_batch(batch_size, replicas, steps)
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


# --- many processes ------------------------------------------------------------------------


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports that were free a moment ago (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """:class:`UsageError` when ``host:port`` cannot be bound (another process holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"port {port} on {host} is already in use ({exc.strerror}): choose another port, "
                "or let launch_workers pick free ones (ports=None)"
            ) from None


def tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of local workers on ``ports``."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


@dataclass(frozen=True)
class WorkerExit:
    """How one worker ended: its index, exit status, output and wall time."""

    index: int
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _cluster_ports(n: int, ports: Sequence[int] | None) -> Sequence[int]:
    """``ports`` (checked: one per worker, each free), or ``n`` free ones."""
    if not isinstance(n, int) or n < 1:
        raise UsageError(f"n must be a positive int, got {n!r}")
    if ports is None:
        return free_ports(n)
    if len(ports) != n:
        raise UsageError(f"{n} workers need {n} ports, got {len(ports)}")
    for port in ports:
        check_port_free(port)
    return ports


def _worker_environments(
    ports: Sequence[int], env: Mapping[str, str] | None
) -> list[dict[str, str]]:
    """Each worker's environment: this one with the pins, ``env`` and its ``TF_CONFIG``."""
    base = {**os.environ, **_runtime.REPRODUCIBLE_ENV, **(env or {})}
    # gRPC would send 127.0.0.1 through an HTTP proxy named in the environment
    base["no_grpc_proxy"] = "127.0.0.1,localhost"
    return [{**base, "TF_CONFIG": tf_config(ports, i)} for i in range(len(ports))]


def _start_and_supervise(
    argv: Sequence[str],
    envs: Sequence[Mapping[str, str]],
    logs: Sequence[tuple[Any, Any]],
    timeout: float,
) -> _proc.Supervision:
    """Start one worker per environment (``{index}`` in ``argv`` replaced), stdout and stderr
    into ``logs``, and supervise them (:func:`reprodl._proc.supervise`)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, (env, (out, err)) in enumerate(zip(envs, logs, strict=True)):
            worker_argv = [a.replace("{index}", str(i)) for a in argv]
            procs.append(_proc.start(worker_argv, env=env, stdout=out, stderr=err))
    except BaseException:
        _proc.stop_groups(procs, GRACE_SECONDS)  # a worker could not start: stop the others
        raise
    return _proc.supervise(procs, timeout, grace=GRACE_SECONDS)


def _raise_for_failure(
    exits: Sequence[WorkerExit], ended: _proc.Supervision, timeout: float
) -> None:
    """:class:`SubprocessError` for the worker that failed, or for those that hung."""
    n = len(exits)
    if ended.failed is not None:
        w = exits[ended.failed]
        raise SubprocessError(
            f"worker {w.index} of {n} exited with status {w.returncode}; the others were "
            f"stopped. The end of its stderr:\n{_proc.stderr_tail(w.stderr)}"
        )
    if ended.hung:
        raise SubprocessError(
            f"worker(s) {', '.join(map(str, ended.hung))} of {n} did not finish within "
            f"{timeout:g} s and were stopped. The end of worker {ended.hung[0]}'s stderr:\n"
            f"{_proc.stderr_tail(exits[ended.hung[0]].stderr)}"
        )


def launch_workers(
    n: int,
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    ports: Sequence[int] | None = None,
) -> list[WorkerExit]:
    """Run ``n`` local worker processes ``argv`` (``{index}`` in an item becomes the worker's
    index) with ``TF_CONFIG`` for a cluster on 127.0.0.1, each in its own process group.

    Waits up to ``timeout`` seconds. When a worker fails, or time runs out, every other worker is
    stopped (SIGTERM, then SIGKILL after :data:`GRACE_SECONDS`) and :class:`SubprocessError`
    names the worker, its exit status and the end of its stderr. ``ports`` (default: free ones)
    must be free: :class:`UsageError`.
    """
    envs = _worker_environments(_cluster_ports(n, ports), env)
    with contextlib.ExitStack() as files:
        logs = [
            (
                files.enter_context(tempfile.TemporaryFile()),
                files.enter_context(tempfile.TemporaryFile()),
            )
            for _ in range(n)
        ]
        ended = _start_and_supervise(argv, envs, logs, timeout)
        exits = [
            WorkerExit(i, code, _proc.read_text(out), _proc.read_text(err), seconds)
            for i, (code, seconds, (out, err)) in enumerate(
                zip(ended.returncodes, ended.seconds, logs, strict=True)
            )
        ]
    _raise_for_failure(exits, ended, timeout)
    return exits


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a multi-worker run trains (the options of ``worker``)."""

    steps: int
    batch_size: int = 100
    seed: int = 0
    data: str | os.PathLike[str] | None = None
    dropout: float = 0.0
    trainer: str = "loop"
    learning_rate: float = 1e-3
    digest_every: int = 0


def worker_command(out: str | os.PathLike[str], spec: WorkerSpec) -> list[str]:
    """``python -m reprodl.distributed worker ...``; ``out`` should contain ``{index}``."""
    argv = [sys.executable, "-m", "reprodl.distributed", "worker", "--out", str(out)]
    argv += ["--steps", str(spec.steps), "--batch-size", str(spec.batch_size)]
    argv += ["--seed", str(spec.seed), "--dropout", str(spec.dropout), "--trainer", spec.trainer]
    argv += ["--lr", repr(float(spec.learning_rate)), "--digest-every", str(spec.digest_every)]
    if spec.data is not None:
        argv += ["--data", str(spec.data)]
    return argv


def run_workers(
    n: int, folder: str | os.PathLike[str], *, timeout: float = 300, **options: Any
) -> list[dict[str, Any]]:
    """Train under ``MultiWorkerMirroredStrategy`` with ``n`` local workers; their JSON results.

    ``options`` are the fields of :class:`WorkerSpec` (``steps`` required). ``data`` is an
    ``.npz`` with ``images`` and ``labels`` (default: MNIST's training set), and optionally
    ``test_images`` and ``test_labels`` (then each result has the test count). Each result is
    checked (:func:`read_worker_results`). ``trainer="fit"`` is Keras ``fit``, which fails
    under this strategy (chapter 12 shows it; see the module docstring).
    """
    out = Path(folder) / "worker_{index}.json"
    launch_workers(n, worker_command(out, WorkerSpec(**options)), timeout=timeout)
    return read_worker_results(out, n)


# --- one worker ------------------------------------------------------------------------------


def _load_split(data: str | None) -> tuple[Split, Split | None]:
    """The training split and the test split, if ``data`` has one (MNIST's: none)."""
    if data is None:
        from reprodl.data import load_mnist

        return load_mnist().train, None
    with np.load(data) as arrays:
        train = Split(arrays["images"], arrays["labels"])
        test = None
        if "test_images" in arrays:
            test = Split(arrays["test_images"], arrays["test_labels"])
    return train, test


def _worker(args: argparse.Namespace) -> dict[str, Any]:
    """One worker of a ``MultiWorkerMirroredStrategy`` run (its task comes from ``TF_CONFIG``):
    its result, in the layout of the schema :data:`WORKER_SCHEMA`."""
    _runtime.setup(args.seed)
    tf = _tf()
    split, test = _load_split(args.data)
    t0 = time.perf_counter()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    strategy_seconds = time.perf_counter() - t0
    n = strategy.num_replicas_in_sync
    _check_batch(args.batch_size, n, args.steps)
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    if args.trainer == "fit":  # chapter 12's experiment, a chapter aid
        from reprodl.book.fit_multiworker import fit_worker as train
    else:
        train = _loop_worker
    return {
        "worker": task.get("index", 0),
        "replicas": n,
        "trainer": args.trainer,
        **train(strategy, split, test, args),
        "strategy_seconds": strategy_seconds,
        "versions": _runtime.versions(),
    }


def _loop_worker(
    strategy: Any, split: Split, test: Split | None, args: argparse.Namespace
) -> dict[str, Any]:
    """The custom loop's part of a worker's result."""
    run = _train_loop(
        strategy,
        split,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        hidden=(128,),
        dropout=args.dropout,
        dropout_masks=args.dropout_masks,
        feed="values",
        shard_policy="DATA",
        learning_rate=args.lr,
        digest_every=args.digest_every,
        test=test,
    )
    result: dict[str, Any] = {
        "losses": [float(x) for x in run.losses],
        "fingerprint": run.fingerprint,
        "build_seconds": run.build_seconds,
        "first_step_seconds": run.first_step_seconds,
        "seconds_per_step": run.seconds_per_step,
        "variables": [v.to_dict() for v in run.variables],
        "digests": {str(k): dict(d) for k, d in sorted(run.digests.items())},
    }
    if run.test is not None:
        result["test"] = {"correct": run.test.correct, "total": run.test.total}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reprodl.distributed worker --out FILE --steps N ...``: one worker's run."""
    parser = argparse.ArgumentParser(prog="python -m reprodl.distributed")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="train as one worker of TF_CONFIG's cluster")
    w.add_argument("--out", required=True, help="the JSON result ({index}: the worker's index)")
    w.add_argument("--steps", type=int, required=True)
    w.add_argument("--batch-size", type=int, default=100, help="the global batch")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--data", help=".npz with images and labels (default: MNIST's training set)")
    w.add_argument("--dropout", type=float, default=0.0)
    w.add_argument("--dropout-masks", choices=DROPOUT_MASKS, default="per_replica")
    w.add_argument("--trainer", choices=("loop", "fit"), default="loop")
    w.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    w.add_argument("--digest-every", type=int, default=0, help="state digests every K steps")
    args = parser.parse_args(argv)
    result = _worker(args)
    check_worker_result(result, f"worker {result['worker']}")  # the writer keeps the format too
    out = args.out.replace("{index}", str(result["worker"]))
    _io.write_json(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
