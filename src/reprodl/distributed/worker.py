"""One worker of a multi-worker run: ``python -m reprodl.distributed worker ...``."""

from __future__ import annotations

from reprodl import runtime as _runtime  # (pins the process before NumPy loads)

# isort: split
import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from reprodl import _io
from reprodl.data import Split
from reprodl.distributed.replicated import DROPOUT_MASKS, check_batch, train_loop
from reprodl.distributed.workers import check_worker_result

if TYPE_CHECKING:
    pass


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
    tf = _runtime.import_tensorflow()
    split, test = _load_split(args.data)
    t0 = time.perf_counter()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    strategy_seconds = time.perf_counter() - t0
    n = strategy.num_replicas_in_sync
    check_batch(args.batch_size, n, args.steps)
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
    run = train_loop(
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
