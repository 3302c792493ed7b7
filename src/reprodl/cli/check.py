"""``check [options] -- COMMAND ...``: run a user's training several times in fresh processes and
say whether it reproduces (:mod:`reprodl.check`).

The command gets this process's environment unchanged: the command line imports nothing that
pins the process, so that is the caller's.
"""

from __future__ import annotations

import argparse
import os
import sys

from reprodl.cli import _args
from reprodl.errors import UsageError

DESCRIPTION = """\
Run COMMAND (your training) several times in fresh processes and say whether it gives the same
bits every time. The plain runs (--runs N, default 2) get your environment unchanged, plus
REPRODL_RECORD=<folder>/run-K.json: add reprodl.keras.RecordRun() to the callbacks of fit and it
writes a run record there (--every K sets REPRODL_RECORD_EVERY, its digest interval). Each --vary
adds one run with exactly one change:
  threads    TF_NUM_INTRAOP_THREADS and OMP_NUM_THREADS: 1 <-> 2 (unset: 1, or 2 on one core)
  hash-seed  PYTHONHASHSEED: n -> n+1 (unset: every run already has its own, no extra run)
  isa        ONEDNN_MAX_CPU_ISA: AVX2 -> AVX512_CORE where the CPU has it, else AVX;
             AVX512_CORE -> AVX2; AVX -> AVX2 (unset counts as the CPU's best)
  order      TF_NUM_INTEROP_THREADS: 1 <-> 2 (unset: 1): independent ops run in another order
A command that sets the variable itself (os.environ[...] = ... before importing TensorFlow)
overrides the change, and that run is then reported identical: which is the point, it shows
that the command is robust to it.

Run 1 is compared with every other run, step by step and variable by variable (as 'compare'
does), or, for a command without the callback, the file it writes: --output FILE. Where FILE
appears in the command's arguments (--output FILE, --output=FILE or FILE), each run gets a path
of its own there; where the command writes FILE under a fixed name, each run's FILE is moved
aside after the run (a FILE there before is set aside as FILE.reprodl-check-set-aside and put
back at the end). The files are compared byte for byte. The verdict on stdout: 'identical: ...'
or 'diverged: run K (...) differs from run 1 at step S, variable V', one line per run, the
likely cause (plain runs that differ: a seed not fixed, an unseeded data order, a
nondeterministic op; a perturbed run alone: the result depends on what it changed, pin it) and
the first difference in full. One progress line per run goes to stderr."""
EPILOG = """\
example:
  python -m reprodl check --vary threads,isa -- python train.py --epochs 1

exit status:
  0  every run is identical to run 1
  1  the runs diverge
  2  usage error (no command, a command not found); a run that
     failed, ran past --timeout (its whole process group is stopped) or wrote no record or
     output, or a record that cannot be read; the error names the run and quotes its stderr"""
USAGE = (
    "%(prog)s [-h] [--runs N] [--vary WHAT[,WHAT]] [--output FILE]\n"
    "       [--timeout SECONDS] [--keep DIR] [--every K] -- COMMAND ..."
)

at_least_two = _args.bounded(int, low=2, what="at least 2 runs to compare")


def perturbations(text: str) -> list[str]:
    """A comma list of :data:`reprodl.check.PERTURBATIONS`."""
    from reprodl.check import PERTURBATIONS

    names = _args.names(text)
    unknown = [name for name in names if name not in PERTURBATIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"expected {', '.join(PERTURBATIONS)} (or a comma list), got {unknown[0]!r}"
        )
    return names


def add_parser(sub: _args.Subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``check``: runs, perturbations, output, timeout, where to keep; the command."""
    p = sub.add_parser(
        "check",
        parents=[common],
        help="run your training command several times (and perturbed); say whether it reproduces",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=USAGE,
    )
    p.add_argument(
        "--runs",
        type=at_least_two,
        default=2,
        metavar="N",
        help="plain runs (default: %(default)s)",
    )
    p.add_argument(
        "--vary",
        type=perturbations,
        action="append",
        default=[],
        metavar="WHAT",
        help="threads, hash-seed, isa or order: one extra run with that change (repeatable, "
        "or a comma list)",
    )
    p.add_argument(
        "--output",
        metavar="FILE",
        help="compare the file the command writes, named FILE in its arguments or under that "
        "fixed name (for a command without reprodl.keras.RecordRun)",
    )
    p.add_argument(
        "--timeout",
        type=_args.positive_float,
        default=1800,
        metavar="SECONDS",
        help="stop a run (and every process it started) after this long (default: %(default)s)",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the records, outputs and each run's stdout/stderr in DIR (default: a "
        "temporary folder, removed)",
    )
    p.add_argument(
        "--every",
        type=_args.positive_int,
        metavar="K",
        help="record per-variable digests every K steps (REPRODL_RECORD_EVERY)",
    )
    p.add_argument("check_command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=run, parser=p)


def command_and_vary(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The command after ``--`` and the perturbations, each once; else :class:`UsageError`."""
    command = list(args.check_command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command to run: put it after --, e.g. check -- python train.py")
    vary = [name for names in args.vary for name in names]
    twice = sorted({name for name in vary if vary.count(name) > 1})
    if twice:
        raise UsageError(f"--vary {twice[0]} is given twice")
    return command, vary


def run(args: argparse.Namespace) -> int:
    """Run the command several times; the verdict on stdout, one progress line per run on
    stderr; the verdict's exit status."""
    command, vary = command_and_vary(args)
    env = dict(os.environ)  # the caller's: nothing here has pinned this process
    from reprodl import check

    result = check.run(
        command,
        env=env,
        runs=args.runs,
        vary=vary,
        output=args.output,
        timeout=args.timeout,
        keep=args.keep,
        every=args.every,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(result)
    return result.exit_status
