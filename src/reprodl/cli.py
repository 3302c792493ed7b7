"""Command line: ``python -m reprodl COMMAND``: train, compare, bisect, decompose, crosscheck,
check, env (and replay).

``train`` prints only deterministic lines on stdout (loss, accuracy, fingerprint), so two runs can
be compared with ``diff``; the wall-clock time goes to stderr. With ``--record FILE`` it also saves
a run record (:mod:`reprodl.records`), with ``--checkpoint-every K`` checkpoints for ``bisect``.
``--replicas K`` trains the MLP data-parallel under ``MirroredStrategy`` over K logical CPUs,
``--workers K`` under ``MultiWorkerMirroredStrategy`` with K local processes
(:mod:`reprodl.distributed`); the global batch is split evenly, and the record's ``meta.run``
says how (such records can be compared, not replayed).

``compare A B`` and ``bisect A B`` print a divergence report (:mod:`reprodl.divergence`);
``compare A B --plot FILE.png`` also writes a map of where the runs differ
(:func:`reprodl.divergence.plot_map`).

``crosscheck`` runs a battery of short trainings natively and on emulated CPUs and says, per
setting of the pins, which CPUs give the same bits (:mod:`reprodl.crosscheck`); exit status 1 when
the pinned setting differs between CPUs, 2 when a run failed (the other CPUs' records are still
written) or a record is unusable.

``check [options] -- COMMAND ...`` runs a user's training command several times in fresh
processes, plain and with one perturbation per extra run (``--vary threads|hash-seed|isa|order``),
compares the run records (:class:`reprodl.keras.RecordRun` writes them to ``$REPRODL_RECORD``) or
the files named by ``--output``, and prints ``identical`` or where and why the runs diverge
(:mod:`reprodl.check`); exit status 1 when they diverge, 2 when a run fails, hangs past
``--timeout`` or writes nothing usable. The command runs in the caller's environment: the pins
that importing :mod:`reprodl.runtime` writes into this process are undone for it.

``decompose`` trains a model once per seed and condition (vary only the initialisation, only the
batch order, only the dropout masks, or all), saving a record after every run
(:mod:`reprodl.decomposition`), and prints the spread each source causes.

Exit status: 0 success (compare/bisect/check: the runs are identical); 1 compare/bisect/check:
the runs diverge, train/decompose: bad or missing data or checkpoint; 2 usage error, or (compare/
bisect/replay/decompose/check) a record that is corrupt, missing or cannot be compared or resumed,
a replay that failed, or a checked run that failed, hung or wrote nothing; decompose also refuses
to overwrite an existing record without --resume.

Only the package's own errors (:class:`reprodl.errors.ReprodlError`) are reported as
``error: message`` with these statuses; ``--debug`` adds their traceback. Any other exception is
a bug and propagates with its traceback.
"""

from __future__ import annotations

# First: reprodl.check keeps the environment this process started with (the user's), which the
# next import changes; check runs the user's command in the user's environment.
from reprodl import check

# isort: split
from reprodl import runtime as _runtime  # (pins the process before NumPy loads)

# isort: split
import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import reprodl
from reprodl.batches import ORDERS
from reprodl.errors import (
    CheckpointError,
    DownloadError,
    MnistError,
    ReprodlError,
    UsageError,
)
from reprodl.models import DEFAULTS, MODELS
from reprodl.training.spec import SCHEDULES

if TYPE_CHECKING:
    from reprodl.data import Mnist
    from reprodl.decomposition import Decomposition, RecordedRun
    from reprodl.training import Evaluation, RunSpec, SeedRunner, TrainingRecord

__all__ = ["DEFAULTS", "build_parser", "main"]

#: The object ``ArgumentParser.add_subparsers`` returns (argparse does not export its type).
_Subparsers = argparse._SubParsersAction

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

#: Subcommands that work but are not listed in the help (``replay`` is run by ``bisect``).
HIDDEN = frozenset({"replay"})

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


class _Commands(dict):
    """The subcommands argparse accepts; iterating it (as argparse's "invalid choice: ... (choose
    from ...)" message does) leaves out the hidden ones."""

    def __iter__(self):
        return (name for name in super().__iter__() if name not in HIDDEN)


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


def _step(text: str) -> int:
    return _seed(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}")
    return value


def _dropout_seed(text: str) -> int | str:
    return "entropy" if text == "entropy" else _seed(text)


def _seed_list(text: str) -> list[int]:
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


def _conditions(text: str) -> list[str]:
    from reprodl.seeds import CONDITIONS

    names = [c.strip() for c in text.split(",")]
    unknown = [c for c in names if c not in CONDITIONS]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct conditions out of {','.join(CONDITIONS)}, got {text!r}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m reprodl``, with one subparser per command."""
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
    _add_train_parser(sub)
    _add_record_pair_parsers(sub)
    _add_decompose_parser(sub)
    _add_replay_parser(sub)
    _add_crosscheck_parser(sub)
    _add_check_parser(sub)
    _add_env_parser(sub)
    for command in sub.choices.values():  # --debug also after the command
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    sub.choices = _Commands(sub.choices)
    return parser


def _add_train_parser(sub: _Subparsers) -> None:
    """Add the ``train`` command: the run's options, then its record and checkpoint options."""
    tr = sub.add_parser("train", help="train a model deterministically and print its fingerprint")
    _add_train_run_options(tr)
    _add_train_record_options(tr)
    _add_train_parallel_options(tr)


def _add_train_run_options(tr: argparse.ArgumentParser) -> None:
    """Add the options of ``train`` that define the run (model, length, seeds, settings)."""
    tr.add_argument("--model", choices=MODELS, required=True)
    tr.add_argument("--seed", type=_seed, default=0, help="seeds initialisation, order, dropout")
    length = tr.add_mutually_exclusive_group(required=True)
    length.add_argument("--epochs", type=_positive_int, help="passes over the 55,000 examples")
    length.add_argument("--steps", type=_positive_int, help="training steps")
    tr.add_argument("--batch-size", type=_positive_int, help="default: 100")
    tr.add_argument(
        "--lr",
        type=_positive_float,
        help="learning rate (default: softmax 0.5, mlp 1e-3, cnn 2e-3)",
    )
    tr.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="learning rate: constant, or cosine decay to zero over the run (default: cnn cosine)",
    )
    tr.add_argument("--data", help="folder with the MNIST files (default: $REPRODL_DATA or cache)")
    tr.add_argument(
        "--no-op-determinism", action="store_true", help="leave TensorFlow's op determinism off"
    )
    tr.add_argument("--dropout", type=_rate, help="dropout rate (mlp, cnn)")
    tr.add_argument(
        "--dropout-seed",
        type=_dropout_seed,
        metavar="N|entropy",
        help="seed of the dropout masks (default: from --seed); 'entropy': from os.urandom",
    )
    tr.add_argument(
        "--order",
        choices=ORDERS,
        default="seeded",
        help="batch order: seeded (default), global (NumPy's global state, the classic "
        "next_batch), global-after-first (seeded first epoch, then the global state)",
    )
    tr.add_argument(
        "--intra-op-threads",
        type=_positive_int,
        metavar="N",
        help="TensorFlow intra-op threads instead of the pinned count (changes the bits)",
    )


def _add_train_record_options(tr: argparse.ArgumentParser) -> None:
    """Add the options of ``train`` that save a record, digests and checkpoints, or resume."""
    tr.add_argument("--record", metavar="FILE", help="save a run record (JSON) to FILE")
    tr.add_argument(
        "--digest-every",
        type=_positive_int,
        metavar="K",
        help="record per-variable digests every K steps (default: at checkpoints only)",
    )
    tr.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="K",
        help="write a checkpoint every K steps",
    )
    tr.add_argument(
        "--checkpoint-dir", metavar="DIR", help="checkpoint folder (default: the record's .ckpt)"
    )
    tr.add_argument("--resume", metavar="CKPT", help="resume from a checkpoint file (.npz)")


def _add_train_parallel_options(tr: argparse.ArgumentParser) -> None:
    """Add the options of ``train`` that split each batch between replicas (mlp only)."""
    parallel = tr.add_mutually_exclusive_group()
    parallel.add_argument(
        "--replicas",
        type=_positive_int,
        metavar="K",
        help="train the mlp data-parallel under MirroredStrategy over K logical CPUs in this "
        "process (the global batch split evenly; changes the bits for K > 1)",
    )
    parallel.add_argument(
        "--workers",
        type=_positive_int,
        metavar="K",
        help="train the mlp data-parallel under MultiWorkerMirroredStrategy with K local worker "
        "processes, one replica each (the same bits as --replicas K)",
    )


def _add_record_pair_parsers(sub: _Subparsers) -> None:
    """Add ``compare`` and ``bisect``: both take two run records."""
    for name, text in (
        ("compare", "compare two run records: first differing step and variable"),
        ("bisect", "replay two recorded runs from their last agreeing checkpoint, step by step"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("run_a", metavar="RUN_A", help="run record (JSON)")
        p.add_argument("run_b", metavar="RUN_B", help="run record (JSON)")
        if name == "compare":
            p.add_argument(
                "--plot",
                metavar="FILE.png",
                type=_png_path,
                help="also write a map of where the runs differ (variable x recorded step) as PNG",
            )


def _png_path(text: str) -> Path:
    """A file name ending in ``.png`` (``compare --plot``)."""
    if Path(text).suffix.lower() != ".png" or not Path(text).stem:
        raise argparse.ArgumentTypeError(f"expected a file name ending in .png, got {text!r}")
    return Path(text)


def _add_decompose_parser(sub: _Subparsers) -> None:
    """Add the ``decompose`` command: one training per seed and condition."""
    dc = sub.add_parser(
        "decompose",
        help="spread of test accuracy from each source of randomness, over many seeds",
        description="Train once per seed and condition; vary only the initialisation seed "
        "(init), only the batch-order seed (order), only the dropout seed (dropout), or all; "
        "the sources not varied keep the seeds of --base. The record is saved after every run.",
    )
    dc.add_argument("--model", choices=MODELS, required=True)
    dc_length = dc.add_mutually_exclusive_group(required=True)
    dc_length.add_argument("--epochs", type=_positive_int, help="passes over the training set")
    dc_length.add_argument("--steps", type=_positive_int, help="training steps per run")
    dc.add_argument("--seeds", type=_seed_list, required=True, help="e.g. 1-10 or 1,4,7-9")
    dc.add_argument(
        "--conditions",
        type=_conditions,
        default=None,
        help="comma-separated, out of init,order,dropout,all (default: all four)",
    )
    dc.add_argument("--base", type=_seed, default=0, help="seed of the sources held fixed")
    dc.add_argument("--batch-size", type=_positive_int, help="default: 100")
    dc.add_argument("--lr", type=_positive_float, help="learning rate (default: the model's)")
    dc.add_argument("--schedule", choices=SCHEDULES, help="default: the model's")
    dc.add_argument("--dropout", type=_rate, help="dropout rate (mlp, cnn)")
    dc.add_argument("--data", help="folder with the MNIST files (default: $REPRODL_DATA or cache)")
    dc.add_argument("--record", metavar="FILE", required=True, help="decomposition record (JSON)")
    dc.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing record: run only what it lacks (it must match this run)",
    )


def _add_replay_parser(sub: _Subparsers) -> None:
    """Add the hidden ``replay`` command that ``bisect`` runs in a process of its own."""
    # Hidden: no help= (argparse 3.11 would list help=SUPPRESS as "==SUPPRESS=="), and left out
    # of the choices that an "invalid choice" error lists (_Commands).
    rp = sub.add_parser("replay", description="replay part of a recorded run (used by bisect)")
    rp.add_argument("record", metavar="RECORD")
    rp.add_argument("--start", type=_step, required=True, help="checkpoint step to start from")
    rp.add_argument("--end", type=_positive_int, required=True, help="last step to replay")
    rp.add_argument("--out", required=True, help="where to write the states (.npz)")


def _add_crosscheck_parser(sub: _Subparsers) -> None:
    """Add the ``crosscheck`` command: the cross-CPU battery."""
    cc = sub.add_parser(
        "crosscheck",
        help="run a battery of short trainings on this CPU and emulated ones; compare the bits",
        description=(
            "Run the cross-CPU battery (softmax, MLP, Keras fit, CNN; a few steps each) in fresh "
            "processes under the pinned setting and, with --all-settings, the alternatives, "
            "natively and under qemu-x86_64 -cpu MODEL for each --emulate model. Writes one "
            "record per CPU into --out; --against DIR compares with committed records."
        ),
    )
    cc.add_argument("--emulate", metavar="MODEL,...", default="", help="QEMU CPU models")
    cc.add_argument("--no-native", action="store_true", help="skip the run on this CPU")
    cc.add_argument(
        "--all-settings",
        action="store_true",
        help="also the alternatives: oneDNN opts 0/1 x ISA cap AVX2/AVX x 1/2 intra-op threads",
    )
    cc.add_argument("--settings", metavar="NAME,...", help="settings by name (opts1-AVX2-t1,...)")
    cc.add_argument(
        "--cases",
        metavar="NAME,...",
        help="a subset of the battery's cases, or cnn-small and lstm (not in the battery)",
    )
    cc.add_argument(
        "--caches",
        metavar="L1D/L2,...",
        help="per-core cache sizes in KiB (48/2048,...) that each --emulate model presents, "
        "under the cache-geometry emulator (bash tools/cache_qemu/build.sh builds it); "
        "'sweep' for L1d 32 and 48 KiB x L2 256 KiB, 512 KiB, 1.25 MiB, 2 MiB, 4 MiB, and 48/1024",
    )
    cc.add_argument("--out", metavar="DIR", help="write one record per CPU into DIR")
    cc.add_argument("--against", metavar="DIR", help="compare with the records in DIR")
    cc.add_argument("--jobs", type=_positive_int, default=2, help="emulators at a time")
    cc.add_argument("--timeout", type=_positive_float, default=1800, help="seconds per process")


CHECK_DESCRIPTION = """\
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
CHECK_EPILOG = """\
example:
  python -m reprodl check --vary threads,isa -- python train.py --epochs 1

exit status:
  0  every run is identical to run 1
  1  the runs diverge
  2  usage error (no command, a command not found); a run that
     failed, ran past --timeout (its whole process group is stopped) or wrote no record or
     output, or a record that cannot be read; the error names the run and quotes its stderr"""


def _at_least_two(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected at least 2 runs to compare, got {text!r}")
    return value


def _perturbations(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in check.PERTURBATIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"expected {', '.join(check.PERTURBATIONS)} (or a comma list), got {unknown[0]!r}"
        )
    return names


def _add_check_parser(sub: _Subparsers) -> None:
    """Add the ``check`` command: run a user's command several times, compare the runs."""
    ck = sub.add_parser(
        "check",
        help="run your training command several times (and perturbed); say whether it reproduces",
        description=CHECK_DESCRIPTION,
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [-h] [--runs N] [--vary WHAT[,WHAT]] [--output FILE]\n"
        "       [--timeout SECONDS] [--keep DIR] [--every K] -- COMMAND ...",
    )
    ck.add_argument(
        "--runs", type=_at_least_two, default=2, metavar="N", help="plain runs (default: 2)"
    )
    ck.add_argument(
        "--vary",
        type=_perturbations,
        action="append",
        default=[],
        metavar="WHAT",
        help="threads, hash-seed, isa or order: one extra run with that change (repeatable, "
        "or a comma list)",
    )
    ck.add_argument(
        "--output",
        metavar="FILE",
        help="compare the file the command writes, named FILE in its arguments or under that "
        "fixed name (for a command without reprodl.keras.RecordRun)",
    )
    ck.add_argument(
        "--timeout",
        type=_positive_float,
        default=1800,
        metavar="SECONDS",
        help="stop a run (and every process it started) after this long (default: 1800)",
    )
    ck.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the records, outputs and each run's stdout/stderr in DIR (default: a "
        "temporary folder, removed)",
    )
    ck.add_argument(
        "--every",
        type=_positive_int,
        metavar="K",
        help="record per-variable digests every K steps (REPRODL_RECORD_EVERY)",
    )
    ck.add_argument("check_command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _add_env_parser(sub: _Subparsers) -> None:
    """Add the ``env`` command: the environment report."""
    env = sub.add_parser("env", help="print the environment report")
    env.add_argument("--json", action="store_true", help="as JSON")


def _check_train_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors that argparse cannot express (exit status 2)."""
    if args.record and args.resume:
        parser.error("--record covers a whole run: it cannot be combined with --resume")
    if args.checkpoint_every and not (args.record or args.checkpoint_dir):
        parser.error("--checkpoint-every needs --checkpoint-dir (or --record)")
    if args.checkpoint_dir and not args.checkpoint_every:
        parser.error("--checkpoint-dir needs --checkpoint-every")
    if args.digest_every and not args.record:
        parser.error("--digest-every needs --record")
    if args.model == "softmax" and (args.dropout is not None or args.dropout_seed is not None):
        parser.error("the softmax model has no dropout layer")


def _train(args: argparse.Namespace, command: list[str]) -> int:
    """Run ``train``: train, print the deterministic report, save the record if asked."""
    from reprodl import runtime

    if args.replicas or args.workers:
        return _train_parallel(args, command)
    runtime.setup(args.seed, op_determinism=not args.no_op_determinism)
    from reprodl import records, training

    spec, mnist = _train_spec(args)
    folder = _train_checkpoint_dir(args)
    digest_every = args.digest_every or 0
    model, record = training.run(
        spec,
        mnist.train,
        digest_every=digest_every,
        checkpoint_every=args.checkpoint_every or 0,
        checkpoint_dir=folder,
        resume=args.resume,
    )
    test = training.evaluate(model, mnist.test)
    _print_train_report(args, spec, record, test)
    if args.record:
        records.save_run(
            spec=spec,
            result=record,
            path=args.record,
            digest_every=digest_every,
            checkpoint_every=args.checkpoint_every or 0,
            checkpoint_dir=folder,
            command=command,
        )
        print(f"record {args.record}")
    print(
        f"trained in {record.seconds:.1f} s ({record.steps_per_second:.1f} steps/s after the "
        "first step)",
        file=sys.stderr,
    )
    return 0


def _parallel_problem(args: argparse.Namespace) -> str | None:
    """Why ``train --replicas/--workers`` cannot run with these options, or None."""
    option = f"--replicas {args.replicas}" if args.replicas else f"--workers {args.workers}"
    if args.model != "mlp":
        return f"{option} trains the mlp only, not {args.model}"
    unsupported = [
        ("--checkpoint-every", args.checkpoint_every),
        ("--checkpoint-dir", args.checkpoint_dir),
        ("--resume", args.resume),
        ("--dropout-seed", args.dropout_seed is not None),
        ("--order " + args.order, args.order != "seeded"),
        ("--schedule cosine", args.schedule == "cosine"),
        ("--intra-op-threads", args.intra_op_threads),
        ("--no-op-determinism", args.no_op_determinism),
    ]
    named = [name for name, given in unsupported if given]
    if named:
        return f"{option} does not support {', '.join(named)}"
    count = args.replicas or args.workers
    batch = args.batch_size or DEFAULTS["mlp"].batch_size
    if batch % count:
        return f"{option}: the global batch of {batch} cannot be split evenly in {count}"
    return None


def _train_parallel(args: argparse.Namespace, command: list[str]) -> int:
    """``train --replicas K`` or ``--workers K``: the mlp data-parallel, its report and record."""
    from reprodl import records, runtime

    problem = _parallel_problem(args)
    if problem:
        raise UsageError(problem)
    if args.replicas:  # before any TensorFlow op initialises the devices
        from reprodl import distributed

        distributed.set_logical_cpus(args.replicas)
    runtime.setup(args.seed)
    spec, mnist = _train_spec(args)
    digest_every = args.digest_every or 0
    if args.replicas:
        record, test, seconds = _train_replicas(args, spec, mnist, digest_every)
    else:
        record, test, seconds = _train_workers(args, spec, mnist, digest_every)
    _print_train_report(args, spec, record, test)
    if args.workers:
        print(f"workers {args.workers}, one replica each")
    else:
        print(f"replicas {args.replicas}")
    if args.record:
        run = {
            **spec.to_dict(),
            "replicas": args.replicas or args.workers,
            "workers": args.workers or 1,
            "feed": "values",
            "dropout_masks": "per_replica",
        }
        rec = records.from_training(run, record, command=command, digest_every=digest_every)
        records.save(rec, args.record)
        print(f"record {args.record}")
    print(f"trained in {seconds:.1f} s", file=sys.stderr)
    return 0


def _train_replicas(
    args: argparse.Namespace, spec: RunSpec, mnist: Mnist, digest_every: int
) -> tuple[TrainingRecord, Evaluation, float]:
    """Train under ``MirroredStrategy`` over ``--replicas`` logical CPUs in this process."""
    import time

    from reprodl import distributed

    start = time.perf_counter()
    run = distributed.train_replicated(
        mnist.train,
        replicas=args.replicas,
        steps=spec.steps,
        batch_size=spec.batch_size,
        seed=spec.seed,
        dropout=spec.dropout or 0.0,
        learning_rate=spec.learning_rate,
        digest_every=digest_every,
        test=mnist.test,
    )
    seconds = time.perf_counter() - start
    record = distributed.training_record(run)
    assert run.test is not None
    return record, run.test, seconds


def _train_workers(
    args: argparse.Namespace, spec: RunSpec, mnist: Mnist, digest_every: int
) -> tuple[TrainingRecord, Evaluation, float]:
    """Train under ``MultiWorkerMirroredStrategy`` with ``--workers`` local processes; worker
    0's result is the run's, and every worker must have reached the same weights."""
    import tempfile
    import time

    import numpy as np

    from reprodl import distributed

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reprodl-workers-") as folder:
        data = Path(folder) / "mnist.npz"
        np.savez(
            data,
            images=mnist.train.images,
            labels=mnist.train.labels,
            test_images=mnist.test.images,
            test_labels=mnist.test.labels,
        )
        results = distributed.run_workers(
            args.workers,
            folder,
            steps=spec.steps,
            batch_size=spec.batch_size,
            seed=spec.seed,
            data=data,
            dropout=spec.dropout or 0.0,
            learning_rate=spec.learning_rate,
            digest_every=digest_every,
            timeout=max(300.0, 60.0 + spec.steps),
        )
    seconds = time.perf_counter() - start
    record, test = distributed.workers_record(results)
    return record, test, seconds


def _train_spec(args: argparse.Namespace) -> tuple[RunSpec, Mnist]:
    """The resolved run spec of ``train`` and the MNIST data (process settings applied first)."""
    from reprodl import data, training
    from reprodl.batches import steps_per_epoch

    partial = training.RunSpec(
        model=args.model,
        steps=1,
        seed=args.seed,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        dropout=args.dropout,
        dropout_seed=args.dropout_seed,
        order=args.order,
        intra_op_threads=args.intra_op_threads,
        op_determinism=not args.no_op_determinism,
        schedule=args.schedule,
    ).resolved()
    training.apply_process_settings(partial)  # before any TensorFlow op runs
    mnist = data.load_mnist(args.data)
    steps = args.steps or args.epochs * steps_per_epoch(len(mnist.train), partial.batch_size)
    return training.RunSpec(**{**partial.to_dict(), "steps": steps}), mnist


def _train_checkpoint_dir(args: argparse.Namespace) -> Path | None:
    """Where ``train`` writes checkpoints: ``--checkpoint-dir``, else beside the record."""
    if not args.checkpoint_every:
        return None
    return Path(args.checkpoint_dir or Path(args.record).with_suffix(".ckpt"))


def _print_train_report(
    args: argparse.Namespace, spec: RunSpec, record: TrainingRecord, test: Evaluation
) -> None:
    """Print the deterministic lines of ``train``: settings, loss, accuracy, fingerprint."""
    from reprodl import fingerprint

    print(
        f"model {args.model}, seed {args.seed}, {spec.steps} steps of batch {spec.batch_size}, "
        f"{spec.optimizer} lr {spec.learning_rate:g}"
        + (", cosine decay" if spec.schedule == "cosine" else "")
    )
    print(f"op determinism {'off' if args.no_op_determinism else 'on'}")
    print(f"final loss {fingerprint.format_float(record.final_loss)}")
    print(f"test accuracy {test}")
    print(f"fingerprint {record.final_digest}")
    if args.intra_op_threads:
        print(f"intra-op threads {args.intra_op_threads}")
    if args.resume:
        print(f"resumed from step {record.start_step}")


def _decompose(args: argparse.Namespace, command: list[str]) -> int:
    """Run ``decompose``: one training per seed and condition, then the spread of each source."""
    from reprodl import runtime

    runtime.setup(args.base)
    from reprodl import data, decomposition

    path = Path(args.record)
    if path.exists() and not args.resume:
        raise UsageError(f"{path} exists: add --resume to continue it, or name a new file")
    mnist = data.load_mnist(args.data)
    spec = _decompose_spec(args, len(mnist.train))
    record = _decompose_record(args, spec, path, command)
    runner = _seed_runner(args, spec, mnist)
    print(
        f"model {args.model}, {spec['steps']} steps of batch {spec['batch_size']}, "
        f"{spec['optimizer']} lr {spec['learning_rate']:g}"
        + (", cosine decay" if spec["schedule"] == "cosine" else "")
        + f"; base seed {args.base}"
    )
    for run in record.runs:  # what a resumed record already holds
        _report_run(run)
    decomposition.run(runner, record, path=path, on_run=_report_run)
    _print_spread(record)
    print(f"record {path}")
    print(f"{len(record.runs)} runs took {record.seconds() / 60:.1f} min", file=sys.stderr)
    return 0


def _decompose_spec(args: argparse.Namespace, train_size: int) -> dict[str, Any]:
    """The training settings a decomposition record stores, with the model's defaults filled in."""
    from reprodl import training
    from reprodl.batches import steps_per_epoch

    run_spec = training.RunSpec(
        model=args.model,
        steps=1,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        dropout=args.dropout,
        schedule=args.schedule,
    ).resolved()
    batch = run_spec.batch_size
    return {
        "model": args.model,
        "steps": args.steps or args.epochs * steps_per_epoch(train_size, batch),
        "batch_size": batch,
        "optimizer": run_spec.optimizer,
        "learning_rate": run_spec.learning_rate,
        "schedule": run_spec.schedule,
        "dropout": args.dropout,
        "base": args.base,
    }


def _decompose_record(
    args: argparse.Namespace, spec: dict[str, Any], path: Path, command: list[str]
) -> Decomposition:
    """The record to fill: a new plan, merged into the one at ``path`` when resuming it."""
    from reprodl import decomposition, seeds

    conditions = args.conditions or list(seeds.CONDITIONS)
    record = decomposition.new(spec, args.seeds, conditions, command=command)
    if path.exists():
        record = decomposition.merge_plan(decomposition.load(path), record)
        print(f"resuming {path}: {len(record.runs)} runs recorded")
    return record


def _seed_runner(args: argparse.Namespace, spec: dict[str, Any], mnist: Mnist) -> SeedRunner:
    """The runner that trains ``spec`` once per set of seeds and scores it on the test split."""
    from reprodl import training

    kwargs = {} if args.dropout is None else {"dropout": args.dropout}
    return training.SeedRunner(
        args.model,
        mnist.train,
        {"test": mnist.test},
        steps=spec["steps"],
        batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"],
        schedule=spec["schedule"],
        **kwargs,
    )


def _report_run(run: RecordedRun) -> None:
    """Print one decomposition run on stdout (its time on stderr)."""
    s = run.seeds
    print(
        f"{run.condition:>7} seed {run.seed:>3}: init {s.init} order {s.order} "
        f"dropout {s.dropout}  test {100 * run.accuracy:.2f}% ({run.correct}/{run.total})  "
        f"weights {run.final_digest[:16]}",
        flush=True,
    )
    print(f"  {run.seconds:.1f} s", file=sys.stderr, flush=True)


def _print_spread(record: Decomposition) -> None:
    """Print the spread table of a decomposition and, with several seeds, the std intervals."""
    from reprodl import experiments, stats

    groups = record.scores()
    finals = record.distinct(lambda r: r.final_digest)
    for line in experiments.spread_table(groups, distinct_results=finals):
        print(line)
    if len(record.complete_seeds()) > 1:
        for line in stats.std_interval_lines(groups):
            print(line)


def _compare(args: argparse.Namespace) -> int:
    from reprodl import divergence

    result = divergence.compare(args.run_a, args.run_b)
    if args.plot:
        divergence.write_map(result.a, result.b, args.plot)
    print(result)
    if args.plot:
        print(f"map {args.plot}")
    return 0 if result.identical else 1


def _bisect(args: argparse.Namespace) -> int:
    from reprodl import divergence

    result = divergence.bisect(args.run_a, args.run_b, isolate=True)
    if result.diverged:
        print(result.comparison)
    print(result)
    return 1 if result.diverged else 0


def _replay(args: argparse.Namespace) -> int:
    from reprodl import divergence, records, runtime, training

    rec = records.load(args.record)
    if rec.replay_problem is not None:
        raise records.RecordError(f"{rec.name}: {rec.replay_problem}")
    spec = training.RunSpec.from_dict(rec.meta["run"]).resolved()
    runtime.setup(spec.seed, op_determinism=spec.op_determinism)
    training.apply_process_settings(spec)
    rep = divergence.replay(rec, args.start, args.end)
    divergence.save_replay(rep, args.out)
    return 0


def _crosscheck(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from reprodl import crosscheck as cc
    from reprodl.cpu import short_size

    try:
        if args.settings:
            settings = [cc.Setting.parse(name) for name in args.settings.split(",")]
        else:
            settings = [cc.PINNED, *(cc.ALTERNATIVES if args.all_settings else ())]
        names = args.cases.split(",") if args.cases else list(cc.CASES)
        unknown = [n for n in names if n not in cc.ALL_CASES]
        if unknown:
            raise UsageError(f"unknown case {unknown[0]!r}; choose from {', '.join(cc.ALL_CASES)}")
        if args.caches == "sweep":
            geometries: list = list(cc.SWEEP_GEOMETRIES)
        elif args.caches:
            geometries = [cc.Geometry.parse(g) for g in args.caches.split(",")]
        else:
            geometries = [None]
        if args.caches and not args.emulate:
            raise UsageError("--caches needs --emulate MODEL: the emulated CPU presents them")
    except UsageError as exc:
        parser.error(str(exc))
    cases = [cc.ALL_CASES[n] for n in names]
    models = [m for m in args.emulate.split(",") if m]
    if models and args.caches and cc.cache_qemu_path() is None:
        raise UsageError(
            "--caches needs the cache-geometry emulator: bash tools/cache_qemu/build.sh"
        )
    if models and not args.caches and cc.qemu_path() is None:
        raise UsageError("--emulate needs qemu-x86_64 (Debian: apt-get install qemu-user)")
    if args.no_native and not models and not args.against:
        parser.error("nothing to do: --no-native without --emulate or --against")
    new: list[dict] = []
    if not args.no_native:
        new.append(cc.run_battery(settings, cases, timeout=args.timeout))
    failed: dict = {}
    if models:
        emulated, failed = cc.emulate_many(
            models, settings, cases, jobs=args.jobs, timeout=args.timeout, geometries=geometries
        )
        new += emulated
    for record in new:
        c = record["cpu"]
        sizes = f"L1d {short_size(c.get('l1d'))}, L2 {short_size(c.get('l2'))}"
        print(f"== {cc.label(record)}: CPUID {sizes}")
        for row in record["results"]:
            print(
                f"{row['setting']:<15} {row['case']:<8} loss {row['loss']:<11} "
                f"fingerprint {row['fingerprint'][:16]} logits {row['logits'][:16]}"
            )
        if args.out:
            path = Path(args.out) / f"{cc.slug(record)}.json"
            if path.exists():  # another run on the same CPU: keep what it measured that this lacks
                record = cc.merge(cc.load(path), record)
            cc.save(record, path)
            print(f"record: {path}")
    for model, exc in failed.items():
        print(f"error: {model}: {exc}", file=sys.stderr)
    if not (args.against or len(new) > 1):
        return 2 if failed else 0
    against = cc.load_dir(args.against) if args.against else []
    rows = cc.agreement([*against, *new])
    print()
    for line in cc.format_agreement(rows):
        print(line)
    pinned_ok = all(a.exact for a in rows if a.setting == cc.PINNED.name)
    print(
        f"\npinned setting {cc.PINNED.name}: "
        f"{'exact on every CPU' if pinned_ok else 'DIFFERS between CPUs'}"
    )
    return 2 if failed else 0 if pinned_ok else 1


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run ``check``: the command several times, the verdict on stdout, progress on stderr."""
    command = list(args.check_command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("check: no command to run: put it after --, e.g. check -- python train.py")
    vary = [name for names in args.vary for name in names]
    twice = sorted({name for name in vary if vary.count(name) > 1})
    if twice:
        parser.error(f"check: --vary {twice[0]} is given twice")
    result = check.run(
        command,
        env=check.caller_environment(check.STARTUP_ENV, os.environ, _runtime.PINNED_ENV),
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


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    """Run the command ``args`` names; return its exit status."""
    command = ["python", "-m", "reprodl", *argv]
    if args.command == "train":
        _check_train_args(parser, args)
        return _train(args, command)
    if args.command == "decompose":
        if args.model == "softmax" and args.dropout is not None:
            parser.error("the softmax model has no dropout layer")
        return _decompose(args, command)
    if args.command == "crosscheck":
        return _crosscheck(parser, args)
    if args.command == "check":
        return _check(parser, args)
    runners = {"compare": _compare, "bisect": _bisect, "replay": _replay, "env": _env}
    return runners[args.command](args)


def exit_status(command: str, exc: ReprodlError) -> int:
    """The exit status of ``command`` failing with ``exc``: 1 for bad input data, else 2."""
    return 1 if isinstance(exc, DATA_ERRORS.get(command, ())) else 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (see the module docstring).

    A :class:`~reprodl.errors.ReprodlError` is printed as ``error: message`` (with its traceback
    under ``--debug``); any other exception is a bug and propagates.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        return _run(parser, args, argv)
    except ReprodlError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exit_status(args.command, exc)
