"""``env``: the environment report (versions, CPU, the pinned settings), as lines or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from reprodl.cli import _args


def add_parser(sub: _args.Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``env``."""
    p = sub.add_parser("env", parents=[common], help="print the environment report")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(run=run, parser=p)


def report_lines(report: dict[str, Any]) -> list[str]:
    """``key: value`` per entry; a dict's entries as ``key.name: value``; a list comma-joined."""
    lines = []
    for key, value in report.items():
        if isinstance(value, dict):
            lines += [f"{key}.{k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Pin this process (the report shows the settings in effect) and print its report."""
    from reprodl import runtime

    runtime.setup(0)
    report = runtime.environment_report()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(report_lines(report)))
    return 0
