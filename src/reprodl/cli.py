"""Command line: ``python -m reprodl train|env``.

``train`` prints only deterministic lines on stdout (loss, accuracy, fingerprint), so two runs can
be compared with ``diff``; the wall-clock time goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import reprodl  # noqa: F401  (pins the environment before NumPy / TensorFlow load)
from reprodl.models import MODELS

#: Per-model defaults: optimizer, learning rate, batch size.
DEFAULTS = {
    "softmax": ("sgd", 0.5, 100),
    "mlp": ("adam", 1e-3, 100),
    "cnn": ("adam", 1e-3, 50),
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reprodl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tr = sub.add_parser("train", help="train a model deterministically and print its fingerprint")
    tr.add_argument("--model", choices=MODELS, required=True)
    tr.add_argument("--seed", type=_seed, default=0, help="seeds initialisation, order, dropout")
    length = tr.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=_positive_int, help="passes over the 55,000 examples")
    length.add_argument("--steps", type=_positive_int, help="training steps")
    tr.add_argument("--batch-size", type=_positive_int, help="default: 100 (cnn: 50)")
    tr.add_argument("--lr", type=_positive_float, help="learning rate (default: per model)")
    tr.add_argument("--data", help="folder with the MNIST files (default: $REPRODL_DATA or cache)")
    tr.add_argument(
        "--no-op-determinism", action="store_true", help="leave TensorFlow's op determinism off"
    )

    env = sub.add_parser("env", help="print the environment report")
    env.add_argument("--json", action="store_true", help="as JSON")
    return parser


def _train(args: argparse.Namespace) -> int:
    from reprodl import runtime

    runtime.setup(args.seed, op_determinism=not args.no_op_determinism)
    from reprodl import data, models, training
    from reprodl.batches import steps_per_epoch

    mnist = data.load_mnist(args.data)
    opt_name, lr, batch = DEFAULTS[args.model]
    lr = args.lr or lr
    batch = args.batch_size or batch
    steps = args.steps or args.epochs * steps_per_epoch(len(mnist.train), batch)
    model = models.build(args.model, args.seed)
    record = training.train(
        model,
        mnist.train,
        steps=steps,
        batch_size=batch,
        optimizer=training.make_optimizer(opt_name, lr),
        order_seed=args.seed,
    )
    test = training.evaluate(model, mnist.test)
    print(
        f"model {args.model}, seed {args.seed}, {steps} steps of batch {batch}, "
        f"{opt_name} lr {lr:g}"
    )
    print(f"op determinism {'off' if args.no_op_determinism else 'on'}")
    print(f"final loss {training.format_float(record.final_loss)}")
    print(f"test accuracy {test}")
    print(f"fingerprint {record.final_digest}")
    print(
        f"trained in {record.seconds:.1f} s ({record.steps_per_second:.1f} steps/s after the "
        "first step)",
        file=sys.stderr,
    )
    return 0


def _env(args: argparse.Namespace) -> int:
    from reprodl import runtime

    runtime.setup(0)
    report = runtime.environment_report()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for key, value in report.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    print(f"{key}.{k}: {v}")
            else:
                print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for usage errors, 1 for bad data)."""
    args = build_parser().parse_args(argv)
    from reprodl.data import DownloadError, MnistError

    try:
        return {"train": _train, "env": _env}[args.command](args)
    except (MnistError, DownloadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
