"""``invariance MODEL.keras``: does a saved model give an example the same bits alone and in
batches (:mod:`reprodl.serving`)?"""

from __future__ import annotations

import argparse
from pathlib import Path

from reprodl.cli import _args
from reprodl.errors import UsageError

TEXT = "check a saved Keras model for batch invariance: one example alone against in batches"


def size_list(text: str) -> list[int]:
    """Comma-separated batch sizes, each at least 1 (``--sizes 2,7,32``)."""
    try:
        sizes = [int(word) for word in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 2,7,32, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got {text!r}")
    return sizes


def add_parser(sub: _args.Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``invariance``."""
    p = sub.add_parser("invariance", parents=[common], help=TEXT, description=TEXT)
    p.add_argument("model", metavar="MODEL", type=Path, help="a model saved by Keras (.keras)")
    p.add_argument(
        "--data",
        metavar="FILE.npy",
        type=Path,
        help="the examples, a NumPy array in the model's input shape "
        "(default: MNIST's test images, scaled to [0, 1] and shaped for the model)",
    )
    p.add_argument("--sizes", type=size_list, help="batch sizes (default 2,7,32,100,1000)")
    p.add_argument(
        "--fixed-batch",
        metavar="B",
        type=_args.positive_int,
        help="also check the remedy: every call on batches of exactly B rows",
    )
    p.add_argument(
        "--as-is",
        action="store_true",
        help="run in this environment's settings instead of the book's pins (needs --data)",
    )
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    """Print the report; 0 when the checked calls (the remedy's, with --fixed-batch) are
    batch-invariant, 1 when not."""
    if args.as_is and args.data is None:
        raise UsageError("--as-is needs --data FILE.npy (the MNIST loader pins the process)")
    for path in (args.model, args.data):
        if path is not None and not path.is_file():
            raise UsageError(f"no such file: {path}")
    if not args.as_is:  # before NumPy and TensorFlow load
        from reprodl import runtime

        runtime.setup(0)
    from reprodl.serving import report

    result = report.check_saved_model(
        args.model, data=args.data, sizes=args.sizes, fixed_batch=args.fixed_batch
    )
    print("\n".join(result.lines))
    return 0 if result.invariant else 1
