"""``train --replicas K`` and ``--workers K``: the mlp data-parallel, its report and record.

The global batch is split evenly between the replicas; the record's ``meta.run`` says how (such
records can be compared, not replayed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprodl.cli import train
from reprodl.errors import UsageError
from reprodl.training.defaults import DEFAULTS

if TYPE_CHECKING:
    from reprodl.data import Mnist
    from reprodl.training import Evaluation, RunSpec, TrainingRecord


def check_options(args: argparse.Namespace) -> None:
    """:class:`UsageError` where ``--replicas``/``--workers`` cannot run with these options."""
    option = f"--replicas {args.replicas}" if args.replicas else f"--workers {args.workers}"
    if args.model != "mlp":
        raise UsageError(f"{option} trains the mlp only, not {args.model}")
    unsupported = [
        ("--checkpoint-every", args.checkpoint_every),
        ("--checkpoint-dir", args.checkpoint_dir),
        ("--resume", args.resume),
        ("--dropout-seed", args.dropout_seed is not None),
        ("--order " + args.order, args.order != "seeded"),
        ("--schedule cosine", args.schedule == "cosine"),
        ("--intra-op-threads", args.intra_op_threads),
        ("--no-op-determinism", args.no_op_determinism),
    ]
    named = [name for name, given in unsupported if given]
    if named:
        raise UsageError(f"{option} does not support {', '.join(named)}")
    count = args.replicas or args.workers
    batch = args.batch_size or DEFAULTS["mlp"].batch_size
    if batch % count:
        raise UsageError(f"{option}: the global batch of {batch} cannot be split evenly in {count}")


def run(args: argparse.Namespace) -> int:
    """Train data-parallel; print the report of ``train`` and how the run was split."""
    spec = train.spec_of(args)
    check_options(args)
    from reprodl import distributed, runtime
    from reprodl.record import runrecord as records

    if args.replicas:  # before any TensorFlow op initialises the devices
        distributed.set_logical_cpus(args.replicas)
    runtime.setup(args.seed)
    from reprodl import data, training

    training.apply_process_settings(spec)
    mnist = data.load_mnist(args.data)
    spec = training.with_epochs(spec, args.epochs, len(mnist.train))
    digest_every = args.digest_every or 0
    start = time.perf_counter()
    if args.replicas:
        record, test = _replicas(args.replicas, spec, mnist, digest_every)
    else:
        record, test = _workers(args.workers, spec, mnist, digest_every)
    seconds = time.perf_counter() - start
    train.print_report(args, spec, record, test)
    if args.workers:
        print(f"workers {args.workers}, one replica each")
    else:
        print(f"replicas {args.replicas}")
    if args.record:
        meta = distributed.run_meta(
            spec, replicas=args.replicas or args.workers, workers=args.workers or 1
        )
        rec = records.from_training(meta, record, command=args.argv, digest_every=digest_every)
        records.save(rec, args.record)
        print(f"record {args.record}")
    print(f"trained in {seconds:.1f} s", file=sys.stderr)
    return 0


def _replicas(
    replicas: int, spec: RunSpec, mnist: Mnist, digest_every: int
) -> tuple[TrainingRecord, Evaluation]:
    """Train under ``MirroredStrategy`` over ``replicas`` logical CPUs in this process."""
    from reprodl import distributed

    run = distributed.train_replicated(
        mnist.train,
        replicas=replicas,
        test=mnist.test,
        **_options(spec, digest_every),
    )
    assert run.test is not None
    return distributed.training_record(run), run.test


def _workers(
    workers: int, spec: RunSpec, mnist: Mnist, digest_every: int
) -> tuple[TrainingRecord, Evaluation]:
    """Train under ``MultiWorkerMirroredStrategy`` with ``workers`` local processes; worker 0's
    result is the run's, and every worker must have reached the same weights."""
    import tempfile

    from reprodl import distributed

    with tempfile.TemporaryDirectory(prefix="reprodl-workers-") as folder:
        data = distributed.save_for_workers(mnist, Path(folder) / "mnist.npz")
        results = distributed.run_workers(
            workers,
            folder,
            data=data,
            timeout=max(300.0, 60.0 + spec.steps),
            **_options(spec, digest_every),
        )
    return distributed.workers_record(results)


def _options(spec: RunSpec, digest_every: int) -> dict[str, Any]:
    """The keyword arguments of the data-parallel trainers that come from ``spec``."""
    return {
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "seed": spec.seed,
        "dropout": spec.dropout or 0.0,
        "learning_rate": spec.learning_rate,
        "digest_every": digest_every,
    }
