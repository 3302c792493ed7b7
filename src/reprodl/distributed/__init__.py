"""Data-parallel training with ``tf.distribute``, bit for bit: many replicas, one process or many.

:func:`set_logical_cpus` splits the CPU into logical devices (before TensorFlow starts);
:func:`train_replicated` trains the book's MLP under ``MirroredStrategy``: one global batch per
step in the seeded order of :class:`~reprodl.batches.IndexStream`, split evenly between the
replicas, trained with the pieces of :mod:`reprodl.training.loop` (the step's loss, gradient and
update, the loop, the state digests, the evaluation). :func:`run_workers` trains it under
``MultiWorkerMirroredStrategy`` in K local processes (:func:`launch_workers`: ``TF_CONFIG`` on
127.0.0.1, every worker stopped when one fails or hangs); each writes a JSON result (schema
``distributed_worker``, read back by :func:`read_worker_results`).

The parts: :mod:`~reprodl.distributed.replicated` (one process, many replicas),
:mod:`~reprodl.distributed.workers` (the launcher and the workers' results) and
:mod:`~reprodl.distributed.worker` (one worker: ``python -m reprodl.distributed worker``).

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

from reprodl.distributed.replicated import (
    DROPOUT_MASKS,
    FEEDS,
    REPLICA_KEY,
    ReplicatedRun,
    build_replicated,
    record_of,
    require_op_determinism,
    run_meta,
    save_for_workers,
    seed_replicas,
    set_logical_cpus,
    train_loop,
    train_replicated,
    training_record,
)
from reprodl.distributed.workers import (
    GRACE_SECONDS,
    WORKER_SCHEMA,
    WorkerExit,
    WorkerSpec,
    check_port_free,
    check_worker_result,
    free_ports,
    launch_workers,
    read_worker_results,
    run_workers,
    tf_config,
    worker_command,
    workers_record,
)

__all__ = [
    "DROPOUT_MASKS",
    "FEEDS",
    "GRACE_SECONDS",
    "REPLICA_KEY",
    "WORKER_SCHEMA",
    "ReplicatedRun",
    "WorkerExit",
    "WorkerSpec",
    "build_replicated",
    "check_port_free",
    "check_worker_result",
    "free_ports",
    "launch_workers",
    "read_worker_results",
    "record_of",
    "require_op_determinism",
    "run_meta",
    "run_workers",
    "save_for_workers",
    "seed_replicas",
    "set_logical_cpus",
    "tf_config",
    "train_loop",
    "train_replicated",
    "training_record",
    "worker_command",
    "workers_record",
]
