"""What several commands share: the argument types and the option groups of a training run.

Nothing here pins the process: choices and defaults come from :mod:`reprodl.training.defaults`,
and the engine is imported only where a spec is built (:func:`run_spec`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reprodl.training.defaults import DEFAULTS, MODELS, ORDERS, SCHEDULES

if TYPE_CHECKING:
    from reprodl.training import RunSpec

#: The subparsers object ``ArgumentParser.add_subparsers`` returns (its class is private).
Subparsers = Any


def bounded(
    kind: type[int] | type[float],
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    what: str,
) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` within the bounds, else "expected {what}, got 'text'"."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        above = low is None or (value > low if low_open else value >= low)
        below = high is None or (value < high if high_open else value <= high)
        if not (above and below):  # NaN fails both
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


positive_int = bounded(int, low=1, what="a positive integer")
seed = bounded(int, low=0, what="a non-negative integer")
positive_float = bounded(float, low=0, low_open=True, what="a positive number")
rate = bounded(float, low=0, high=1, high_open=True, what="a rate in [0, 1)")


def dropout_seed(text: str) -> int | str:
    """A seed, or ``entropy`` (the masks seeded from ``os.urandom``)."""
    return "entropy" if text == "entropy" else seed(text)


def seed_list(text: str) -> list[int]:
    """``"1-10"``, ``"3"`` or ``"1,4,7-9"``: distinct non-negative seeds, in the order given."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first:
                raise ValueError
            seeds += range(first, last + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seeds like 1-10 or 1,4,7-9, got {text!r}"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"a seed is named twice in {text!r}")
    return seeds


def names(text: str) -> list[str]:
    """A comma list of names (checked by the library that reads them)."""
    return [name.strip() for name in text.split(",")]


def _per_model(field: str, fmt: str = "{}") -> str:
    """``softmax 0.5, mlp 1e-3, cnn 2e-3``: a default of every model, from the registry."""
    return ", ".join(f"{m} {fmt.format(getattr(DEFAULTS[m], field))}" for m in MODELS)


def _shared(field: str) -> str:
    """The default every model shares (``100``), or each model's."""
    values = {getattr(d, field) for d in DEFAULTS.values()}
    return str(values.pop()) if len(values) == 1 else _per_model(field)


def _only(field: str, value: str) -> str:
    """The models whose default ``field`` is ``value`` (``cnn cosine``)."""
    return ", ".join(f"{m} {value}" for m in MODELS if getattr(DEFAULTS[m], field) == value)


def add_run_options(p: argparse.ArgumentParser, *, detailed: bool = True) -> None:
    """The options that define a training run, shared by ``train`` and ``decompose``.

    ``detailed``: ``train``'s help texts, which name each model's defaults.
    """
    p.add_argument("--model", choices=MODELS, required=True)
    length = p.add_mutually_exclusive_group(required=True)
    epochs = "passes over the 55,000 examples" if detailed else "passes over the training set"
    length.add_argument("--epochs", type=positive_int, help=epochs)
    length.add_argument(
        "--steps", type=positive_int, help="training steps" + ("" if detailed else " per run")
    )
    p.add_argument("--batch-size", type=positive_int, help=f"default: {_shared('batch_size')}")
    lr = f"default: {_per_model('learning_rate', '{:g}')}" if detailed else "default: the model's"
    p.add_argument("--lr", type=positive_float, help=f"learning rate ({lr})")
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="learning rate: constant, or cosine decay to zero over the run "
        f"(default: {_only('schedule', 'cosine')})"
        if detailed
        else "default: the model's",
    )
    p.add_argument("--dropout", type=rate, help="dropout rate (mlp, cnn)")
    p.add_argument("--data", help="folder with the MNIST files (default: $REPRODL_DATA or cache)")


def add_train_only_options(p: argparse.ArgumentParser) -> None:
    """The run options only ``train`` has: one seed, op determinism, order, thread count."""
    p.add_argument("--seed", type=seed, default=0, help="seeds initialisation, order, dropout")
    p.add_argument(
        "--no-op-determinism", action="store_true", help="leave TensorFlow's op determinism off"
    )
    p.add_argument(
        "--dropout-seed",
        type=dropout_seed,
        metavar="N|entropy",
        help="seed of the dropout masks (default: from --seed); 'entropy': from os.urandom",
    )
    p.add_argument(
        "--order",
        choices=ORDERS,
        default=ORDERS[0],
        help=f"batch order: {ORDERS[0]} (default), global (NumPy's global state, the classic "
        "next_batch), global-after-first (seeded first epoch, then the global state)",
    )
    p.add_argument(
        "--intra-op-threads",
        type=positive_int,
        metavar="N",
        help="TensorFlow intra-op threads instead of the pinned count (changes the bits)",
    )


def run_spec(args: argparse.Namespace, **fixed: Any) -> RunSpec:
    """The :class:`~reprodl.training.RunSpec` the run options describe, validated (a bad value or
    combination raises :class:`~reprodl.errors.UsageError`); with ``--epochs`` its steps are a
    placeholder until :func:`reprodl.training.spec.with_epochs` knows the size of the data.
    Pins the process."""
    from reprodl import training

    options = {
        "model": args.model,
        "steps": args.steps or 1,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "dropout": args.dropout,
        "schedule": args.schedule,
    }
    return training.RunSpec(**{**options, **fixed})
