"""Command line: ``python -m reprodl COMMAND``: train, compare, bisect, decompose, crosscheck,
check, invariance, env (and replay).

``train`` prints only deterministic lines on stdout (loss, accuracy, fingerprint), so two runs can
be compared with ``diff``; the wall-clock time goes to stderr. With ``--record FILE`` it also saves
a run record (:mod:`reprodl.record.runrecord`), with ``--checkpoint-every K`` checkpoints for
``bisect``.
``--replicas K`` trains the MLP data-parallel under ``MirroredStrategy`` over K logical CPUs,
``--workers K`` under ``MultiWorkerMirroredStrategy`` with K local processes
(:mod:`reprodl.distributed`); the global batch is split evenly, and the record's ``meta.run``
says how (such records can be compared, not replayed).

``compare A B`` and ``bisect A B`` print a divergence report (:mod:`reprodl.divergence`);
``compare A B --plot FILE.png`` also writes a map of where the runs differ
(:func:`reprodl.divergence.plot_map`).

``crosscheck`` runs a battery of short trainings natively and on emulated CPUs and says, per
setting of the pins, which CPUs give the same bits (:mod:`reprodl.book.crosscheck`); exit status 1
when the pinned setting differs between CPUs, 2 when a run failed (the other CPUs' records are still
written) or a record is unusable.

``check [options] -- COMMAND ...`` runs a user's training command several times in fresh
processes, plain and with one perturbation per extra run (``--vary threads|hash-seed|isa|order``),
compares the run records (:class:`reprodl.keras.RecordRun` writes them to ``$REPRODL_RECORD``) or
the files named by ``--output``, and prints ``identical`` or where and why the runs diverge
(:mod:`reprodl.check`); exit status 1 when they diverge, 2 when a run fails, hangs past
``--timeout`` or writes nothing usable. The command runs in the caller's environment: importing
this package pins nothing; only the commands that train import :mod:`reprodl.runtime`.

``invariance MODEL.keras`` calls a saved model on one example at a time and on batches of
several sizes and says which sizes give the same bits (:mod:`reprodl.serving`); with
``--fixed-batch B`` it also checks the remedy, every call on batches of exactly B rows. It runs
under the book's pins unless ``--as-is`` (then ``--data FILE.npy`` is needed); exit status 1 when
the checked calls are not batch-invariant.

``decompose`` trains a model once per seed and condition (vary only the initialisation, only the
batch order, only the dropout masks, or all), saving a record after every run
(:mod:`reprodl.decomposition`), and prints the spread each source causes.

Exit status: 0 success (compare/bisect/check: the runs are identical); 1 compare/bisect/check:
the runs diverge, train/decompose: bad or missing data or checkpoint; 2 usage error, or (compare/
bisect/replay/decompose/check) a record that is corrupt, missing or cannot be compared or resumed,
a replay that failed, or a checked run that failed, hung or wrote nothing; decompose also refuses
to overwrite an existing record without --resume.

Usage errors (:class:`reprodl.errors.UsageError`, raised by the library or a command's option
rules) are reported by the command's own parser: its usage, then ``python -m reprodl COMMAND:
error: message``. Other errors of the package (:class:`reprodl.errors.ReprodlError`) are reported
as ``error: message`` with these statuses; ``--debug`` adds their traceback. Any other exception
is a bug and propagates with its traceback.

One module per command (``train``, ``records`` for compare and bisect, ``decompose``,
``crosscheck``, ``check``, ``invariance``, ``env``; ``replay``), each with
``add_parser(sub, common)`` and ``run(args)``; the shared option groups and argument types are
in ``_args``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import reprodl
from reprodl.cli import check, crosscheck, decompose, env, invariance, records, train
from reprodl.errors import (
    CheckpointError,
    DownloadError,
    MnistError,
    ReprodlError,
    UsageError,
)
from reprodl.training.defaults import DEFAULTS

__all__ = ["DEFAULTS", "build_parser", "main"]

#: The commands, in the order the help lists them: modules with ``add_parser(sub, common)``.
COMMANDS = (train, records, decompose, crosscheck, check, invariance, env)

#: Run ``python -m reprodl replay ...`` (by ``bisect``), not listed: :mod:`reprodl.cli.replay`.
HIDDEN = "replay"

#: The top-level help: plain text (the module docstring is reST, for the API reference).
DESCRIPTION = """\
Train MNIST models bit-exactly, and compare, bisect and repeat recorded runs: the command line
of the reprodl book. 'python -m reprodl COMMAND --help' lists the options of a command."""
EPILOG = """\
exit status:
  0  success (compare, bisect, check: the runs are identical)
  1  compare, bisect, check: the runs diverge; crosscheck: the pinned setting differs between
     CPUs; train, decompose: missing or bad MNIST data or checkpoint
  2  usage error; a record that is corrupt, missing or cannot be compared or resumed; a failed
     run or replay; check: a run that failed, hung or wrote no record or output
Errors are printed as one line 'error: ...'; --debug adds the traceback."""

#: The errors that exit with status 1 (bad input data), per command; every other
#: :class:`~reprodl.errors.ReprodlError` exits with status 2.
DATA_ERRORS: dict[str, tuple[type[ReprodlError], ...]] = {
    "train": (MnistError, DownloadError, CheckpointError),
    "decompose": (MnistError, DownloadError),
}


def package_version() -> str:
    """The installed version of ``reprodl`` (its metadata), else the one in the source tree."""
    try:
        return version("reprodl")
    except PackageNotFoundError:
        return reprodl.__version__


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m reprodl``, with one subparser per command."""
    common = argparse.ArgumentParser(add_help=False)  # what every command also accepts
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    parser = argparse.ArgumentParser(
        prog="python -m reprodl",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error, not only its message"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser


def exit_status(command: str, exc: ReprodlError) -> int:
    """The exit status of ``command`` failing with ``exc``: 1 for bad input data, else 2."""
    return 1 if isinstance(exc, DATA_ERRORS.get(command, ())) else 2


def execute(args: argparse.Namespace) -> int:
    """Run the command ``args`` holds (``args.run``); turn the package's errors into statuses.

    A :class:`~reprodl.errors.UsageError` goes to the command's own parser (``args.parser``):
    usage, ``error: ...`` and exit status 2.
    """
    try:
        return args.run(args)
    except UsageError as exc:
        args.parser.error(str(exc))
    except ReprodlError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exit_status(args.command, exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (see the module docstring).

    A :class:`~reprodl.errors.ReprodlError` is printed as ``error: message`` (with its traceback
    under ``--debug``); any other exception is a bug and propagates.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = argv[:1] == ["--debug"]
    if argv[debug : debug + 1] == [HIDDEN]:
        from reprodl.cli import replay

        return replay.main(argv[debug + 1 :] + argv[:debug])
    args = build_parser().parse_args(argv)
    args.argv = ["python", "-m", "reprodl", *argv]  # what a record stores as its command
    return execute(args)
