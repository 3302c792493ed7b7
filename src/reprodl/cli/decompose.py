"""``decompose``: train once per seed and condition; the spread each source of randomness causes
(:mod:`reprodl.decomposition`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reprodl.cli import _args
from reprodl.errors import UsageError

if TYPE_CHECKING:
    from reprodl.decomposition import Decomposition, RecordedRun


def add_parser(sub: _args.Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``decompose``: the run's options, the seeds and conditions, the record."""
    p = sub.add_parser(
        "decompose",
        parents=[common],
        help="spread of test accuracy from each source of randomness, over many seeds",
        description="Train once per seed and condition; vary only the initialisation seed "
        "(init), only the batch-order seed (order), only the dropout seed (dropout), or all; "
        "the sources not varied keep the seeds of --base. The record is saved after every run.",
    )
    _args.add_run_options(p, detailed=False)
    p.add_argument("--seeds", type=_args.seed_list, required=True, help="e.g. 1-10 or 1,4,7-9")
    p.add_argument(
        "--conditions",
        type=conditions,
        default=None,
        help="comma-separated, out of init,order,dropout,all (default: all four)",
    )
    p.add_argument("--base", type=_args.seed, default=0, help="seed of the sources held fixed")
    p.add_argument("--record", metavar="FILE", required=True, help="decomposition record (JSON)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing record: run only what it lacks (it must match this run)",
    )
    p.set_defaults(run=run, parser=p)


def conditions(text: str) -> list[str]:
    """Distinct conditions of :data:`reprodl.seeds.CONDITIONS` (which pins: decompose trains)."""
    from reprodl.seeds import CONDITIONS

    names = _args.names(text)
    if any(c not in CONDITIONS for c in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct conditions out of {','.join(CONDITIONS)}, got {text!r}"
        )
    return names


def run(args: argparse.Namespace) -> int:
    """Train every planned run not yet recorded, print each and then the spread."""
    path = Path(args.record)
    if path.exists() and not args.resume:
        raise UsageError(f"{path} exists: add --resume to continue it, or name a new file")
    spec = _args.run_spec(args)  # the options checked before anything runs
    from reprodl import data, decomposition, runtime, training

    runtime.setup(args.base)
    mnist = data.load_mnist(args.data)
    spec = training.with_epochs(spec, args.epochs, len(mnist.train))
    conditions = args.conditions or list(decomposition.CONDITIONS)
    record, resumed = decomposition.open_plan(
        decomposition.record_spec(spec, args.base), args.seeds, conditions, path, command=args.argv
    )
    if resumed:
        print(f"resuming {path}: {len(record.runs)} runs recorded")
    print(
        f"model {spec.model}, {spec.steps} steps of batch {spec.batch_size}, "
        f"{spec.optimizer} lr {spec.learning_rate:g}"
        + (", cosine decay" if spec.schedule == "cosine" else "")
        + f"; base seed {args.base}"
    )
    for done in record.runs:  # what a resumed record already holds
        report_run(done)
    decomposition.run(decomposition.runner_for(spec, mnist), record, path=path, on_run=report_run)
    print_spread(record)
    print(f"record {path}")
    print(f"{len(record.runs)} runs took {record.seconds() / 60:.1f} min", file=sys.stderr)
    return 0


def report_run(run: RecordedRun) -> None:
    """Print one decomposition run on stdout (its time on stderr)."""
    s = run.seeds
    print(
        f"{run.condition:>7} seed {run.seed:>3}: init {s.init} order {s.order} "
        f"dropout {s.dropout}  test {100 * run.accuracy:.2f}% ({run.correct}/{run.total})  "
        f"weights {run.final_digest[:16]}",
        flush=True,
    )
    print(f"  {run.seconds:.1f} s", file=sys.stderr, flush=True)


def print_spread(record: Decomposition) -> None:
    """Print the spread table of a decomposition and, with several seeds, the std intervals."""
    from reprodl import experiments, stats

    groups = record.scores()
    finals = record.distinct(lambda r: r.final_digest)
    for line in experiments.spread_table(groups, distinct_results=finals):
        print(line)
    if len(record.complete_seeds()) > 1:
        for line in stats.std_interval_lines(groups):
            print(line)
