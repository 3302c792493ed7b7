"""``train``: train a model deterministically; print its fingerprint, save its record.

``--replicas K`` and ``--workers K`` train the mlp data-parallel (:mod:`reprodl.cli._parallel`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reprodl.cli import _args
from reprodl.errors import UsageError

if TYPE_CHECKING:
    from reprodl.training import Evaluation, RunSpec, TrainingRecord


def add_parser(sub: _args.Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``train``: the run's options, then its record, checkpoint and parallel options."""
    p = sub.add_parser(
        "train", parents=[common], help="train a model deterministically and print its fingerprint"
    )
    _args.add_run_options(p)
    _args.add_train_only_options(p)
    _add_record_options(p)
    _add_parallel_options(p)
    p.set_defaults(run=run, parser=p)


def _add_record_options(p: argparse.ArgumentParser) -> None:
    """The options that save a record, digests and checkpoints, or resume."""
    p.add_argument("--record", metavar="FILE", help="save a run record (JSON) to FILE")
    p.add_argument(
        "--digest-every",
        type=_args.positive_int,
        metavar="K",
        help="record per-variable digests every K steps (default: at checkpoints only)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_args.positive_int,
        metavar="K",
        help="write a checkpoint every K steps",
    )
    p.add_argument(
        "--checkpoint-dir", metavar="DIR", help="checkpoint folder (default: the record's .ckpt)"
    )
    p.add_argument("--resume", metavar="CKPT", help="resume from a checkpoint file (.npz)")


def _add_parallel_options(p: argparse.ArgumentParser) -> None:
    """The options that split each batch between replicas (mlp only)."""
    parallel = p.add_mutually_exclusive_group()
    parallel.add_argument(
        "--replicas",
        type=_args.positive_int,
        metavar="K",
        help="train the mlp data-parallel under MirroredStrategy over K logical CPUs in this "
        "process (the global batch split evenly; changes the bits for K > 1)",
    )
    parallel.add_argument(
        "--workers",
        type=_args.positive_int,
        metavar="K",
        help="train the mlp data-parallel under MultiWorkerMirroredStrategy with K local worker "
        "processes, one replica each (the same bits as --replicas K)",
    )


def check_options(args: argparse.Namespace) -> None:
    """The rules between options that argparse cannot express: :class:`UsageError`."""
    if args.record and args.resume:
        raise UsageError("--record covers a whole run: it cannot be combined with --resume")
    if args.checkpoint_every and not (args.record or args.checkpoint_dir):
        raise UsageError("--checkpoint-every needs --checkpoint-dir (or --record)")
    if args.checkpoint_dir and not args.checkpoint_every:
        raise UsageError("--checkpoint-dir needs --checkpoint-every")
    if args.digest_every and not args.record:
        raise UsageError("--digest-every needs --record")
    if args.model == "softmax" and args.dropout_seed is not None:
        raise UsageError("the softmax model has no dropout layer")


def spec_of(args: argparse.Namespace) -> RunSpec:
    """The run the options describe (steps still a placeholder under ``--epochs``)."""
    return _args.run_spec(
        args,
        seed=args.seed,
        dropout_seed=args.dropout_seed,
        order=args.order,
        intra_op_threads=args.intra_op_threads,
        op_determinism=not args.no_op_determinism,
    )


def run(args: argparse.Namespace) -> int:
    """Train, print the deterministic report, save the record if asked."""
    check_options(args)
    if args.replicas or args.workers:
        from reprodl.cli import _parallel

        return _parallel.run(args)
    from reprodl import training

    done = training.train_and_record(
        spec_of(args),
        data=args.data,
        epochs=args.epochs,
        record=args.record,
        command=args.argv,
        digest_every=args.digest_every or 0,
        checkpoint_every=args.checkpoint_every or 0,
        checkpoint_dir=checkpoint_dir(args),
        resume=args.resume,
    )
    print_report(args, done.spec, done.record, done.test)
    if done.saved:
        print(f"record {args.record}")
    print(
        f"trained in {done.record.seconds:.1f} s ({done.record.steps_per_second:.1f} steps/s "
        "after the first step)",
        file=sys.stderr,
    )
    return 0


def checkpoint_dir(args: argparse.Namespace) -> Path | None:
    """Where ``train`` writes checkpoints: ``--checkpoint-dir``, else beside the record."""
    if not args.checkpoint_every:
        return None
    return Path(args.checkpoint_dir or Path(args.record).with_suffix(".ckpt"))


def print_report(
    args: argparse.Namespace, spec: RunSpec, record: TrainingRecord, test: Evaluation
) -> None:
    """Print the deterministic lines of ``train``: settings, loss, accuracy, fingerprint."""
    from reprodl.record import fingerprint

    print(
        f"model {spec.model}, seed {spec.seed}, {spec.steps} steps of batch {spec.batch_size}, "
        f"{spec.optimizer} lr {spec.learning_rate:g}"
        + (", cosine decay" if spec.schedule == "cosine" else "")
    )
    print(f"op determinism {'on' if spec.op_determinism else 'off'}")
    print(f"final loss {fingerprint.format_float(record.final_loss)}")
    print(f"test accuracy {test}")
    print(f"fingerprint {record.final_digest}")
    if args.intra_op_threads:
        print(f"intra-op threads {args.intra_op_threads}")
    if args.resume:
        print(f"resumed from step {record.start_step}")
