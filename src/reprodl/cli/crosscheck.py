"""``crosscheck``: the cross-CPU battery, natively and on emulated CPUs
(:mod:`reprodl.book.crosscheck`).

Exit status 1 when the pinned setting differs between CPUs, 2 when a run failed (the other CPUs'
records are still written) or a record is unusable.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from reprodl.cli import _args
from reprodl.errors import UsageError


def add_parser(sub: _args.Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``crosscheck``: which CPUs, settings, cases and cache geometries; where records go."""
    p = sub.add_parser(
        "crosscheck",
        parents=[common],
        help="run a battery of short trainings on this CPU and emulated ones; compare the bits",
        description=(
            "Run the cross-CPU battery (softmax, MLP, Keras fit, CNN; a few steps each) in fresh "
            "processes under the pinned setting and, with --all-settings, the alternatives, "
            "natively and under qemu-x86_64 -cpu MODEL for each --emulate model. Writes one "
            "record per CPU into --out; --against DIR compares with committed records."
        ),
    )
    p.add_argument("--emulate", metavar="MODEL,...", default="", help="QEMU CPU models")
    p.add_argument("--no-native", action="store_true", help="skip the run on this CPU")
    p.add_argument(
        "--all-settings",
        action="store_true",
        help="also the alternatives: oneDNN opts 0/1 x ISA cap AVX2/AVX x 1/2 intra-op threads; "
        "under --backend jax: JAX as installed, 2 and 4 XLA threads, ISA caps AVX and SSE4_2, "
        "fast math",
    )
    p.add_argument(
        "--backend",
        choices=("tensorflow", "jax"),
        default="tensorflow",
        help="Keras' backend for the runs (jax: every case through fit; its own settings)",
    )
    p.add_argument(
        "--settings", metavar="NAME,...", help="settings by name (opts1-AVX2-t1, jax-n1-AVX2,...)"
    )
    p.add_argument(
        "--cases",
        metavar="NAME,...",
        help="a subset of the battery's cases, or cnn-small and lstm (not in the battery)",
    )
    p.add_argument(
        "--caches",
        metavar="L1D/L2,...",
        help="per-core cache sizes in KiB (48/2048,...) that each --emulate model presents, "
        "under the cache-geometry emulator (bash tools/cache_qemu/build.sh builds it); "
        "'sweep' for L1d 32 and 48 KiB x L2 256 KiB, 512 KiB, 1.25 MiB, 2 MiB, 4 MiB, and 48/1024",
    )
    p.add_argument("--out", metavar="DIR", help="write one record per CPU into DIR")
    p.add_argument("--against", metavar="DIR", help="compare with the records in DIR")
    p.add_argument("--jobs", type=_args.positive_int, default=2, help="emulators at a time")
    p.add_argument("--timeout", type=_args.positive_float, default=1800, help="seconds per process")
    p.set_defaults(run=run, parser=p)


@dataclass(frozen=True)
class Plan:
    """What the options ask for: settings, cases, emulated models and cache geometries."""

    settings: list[Any]
    cases: list[Any]
    models: list[str]
    geometries: list[Any]


def plan(args: argparse.Namespace) -> Plan:
    """The battery the options name; :class:`UsageError` for a bad name or combination."""
    from reprodl.book import crosscheck as cc

    if args.settings:
        settings = [cc.parse_setting(name) for name in args.settings.split(",")]
        if any(s.backend != args.backend for s in settings):
            raise UsageError(f"--settings names a setting of another backend than {args.backend}")
    else:
        settings = cc.settings_of(args.backend, alternatives=args.all_settings)
    names = args.cases.split(",") if args.cases else list(cc.CASES)
    unknown = [n for n in names if n not in cc.ALL_CASES]
    if unknown:
        raise UsageError(f"unknown case {unknown[0]!r}; choose from {', '.join(cc.ALL_CASES)}")
    if args.caches == "sweep":
        geometries: list[Any] = list(cc.SWEEP_GEOMETRIES)
    elif args.caches:
        geometries = [cc.Geometry.parse(g) for g in args.caches.split(",")]
    else:
        geometries = [None]
    if args.caches and not args.emulate:
        raise UsageError("--caches needs --emulate MODEL: the emulated CPU presents them")
    models = [m for m in args.emulate.split(",") if m]
    if models and args.caches and cc.cache_qemu_path() is None:
        raise UsageError(
            "--caches needs the cache-geometry emulator: bash tools/cache_qemu/build.sh"
        )
    if models and not args.caches and cc.qemu_path() is None:
        raise UsageError("--emulate needs qemu-x86_64 (Debian: apt-get install qemu-user)")
    if args.no_native and not models and not args.against:
        raise UsageError("nothing to do: --no-native without --emulate or --against")
    return Plan(settings, [cc.ALL_CASES[n] for n in names], models, geometries)


def run(args: argparse.Namespace) -> int:
    """Run the battery, print and save each CPU's record, then the agreement and the verdict."""
    from reprodl.book import crosscheck as cc

    todo = plan(args)
    new: list[dict] = []
    if not args.no_native:
        new.append(cc.run_battery(todo.settings, todo.cases, timeout=args.timeout))
    failed: dict = {}
    if todo.models:
        emulated, failed = cc.emulate_many(
            todo.models,
            todo.settings,
            todo.cases,
            jobs=args.jobs,
            timeout=args.timeout,
            geometries=todo.geometries,
        )
        new += emulated
    for record in new:
        print("\n".join(cc.record_lines(record)))
        if args.out:
            print(f"record: {cc.save_into(record, args.out)}")
    for model, exc in failed.items():
        print(f"error: {model}: {exc}", file=sys.stderr)
    if not (args.against or len(new) > 1):
        return 2 if failed else 0
    against = cc.load_dir(args.against) if args.against else []
    lines, pinned_ok = cc.verdict([*against, *new])
    print("\n".join(lines))
    return 2 if failed else 0 if pinned_ok else 1
