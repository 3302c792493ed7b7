"""``compare A B`` and ``bisect A B``: where two run records diverge
(:mod:`reprodl.record.compare`, :mod:`reprodl.training.replay`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from reprodl.cli import _args


def png_path(text: str) -> Path:
    """A file name ending in ``.png`` (``compare --plot``)."""
    if Path(text).suffix.lower() != ".png" or not Path(text).stem:
        raise argparse.ArgumentTypeError(f"expected a file name ending in .png, got {text!r}")
    return Path(text)


def _add_pair(
    sub: _args.Subparsers, common: argparse.ArgumentParser, name: str, text: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=[common], help=text, description=text)
    p.add_argument("run_a", metavar="RUN_A", help="run record (JSON)")
    p.add_argument("run_b", metavar="RUN_B", help="run record (JSON)")
    return p


def add_parser(sub: _args.Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``compare`` and ``bisect``: both take two run records."""
    cp = _add_pair(
        sub, common, "compare", "compare two run records: first differing step and variable"
    )
    cp.add_argument(
        "--plot",
        metavar="FILE.png",
        type=png_path,
        help="also write a map of where the runs differ (variable x recorded step) as PNG",
    )
    cp.set_defaults(run=compare, parser=cp)
    text = "replay two recorded runs from their last agreeing checkpoint, step by step"
    bp = _add_pair(sub, common, "bisect", text)
    bp.set_defaults(run=bisect, parser=bp)


def compare(args: argparse.Namespace) -> int:
    """Print the comparison (and write the map); 0 identical, 1 diverged."""
    from reprodl.record import compare as comparing
    from reprodl.record import digest_map

    result = comparing.compare(args.run_a, args.run_b)
    if args.plot:
        digest_map.write_map(result.a, result.b, args.plot)
    print(result)
    if args.plot:
        print(f"map {args.plot}")
    return 0 if result.identical else 1


def bisect(args: argparse.Namespace) -> int:
    """Print the comparison and the bisection; 0 identical, 1 diverged."""
    from reprodl.training import replay

    result = replay.bisect(args.run_a, args.run_b, isolate=True)
    if result.diverged:
        print(result.comparison)
    print(result)
    return 1 if result.diverged else 0
