"""Run a training command several times and say whether it reproduces: ``python -m reprodl check``.

``python -m reprodl check [options] -- COMMAND ...`` runs COMMAND ``--runs N`` times (default 2),
one run after another, each in a fresh process (a process group of its own) with the caller's
environment unchanged except ``REPRODL_RECORD=<folder>/run-K.json``, where
:class:`reprodl.keras.RecordRun` writes the run's record (and ``REPRODL_RECORD_EVERY`` with
``--every K``). These are the *plain* runs. Each ``--vary`` adds one run with exactly one change:

- ``threads``: ``TF_NUM_INTRAOP_THREADS`` and ``OMP_NUM_THREADS``, 1 <-> 2 (unset, TensorFlow uses
  one thread per core, so the extra run gets 1; on a one-core machine 2). TensorFlow's pip package
  reads only the first (its oneDNN runs on TensorFlow's intra-op thread pool, not on OpenMP); the
  second is for OpenMP libraries the command may use;
- ``hash-seed``: ``PYTHONHASHSEED`` n -> n + 1; unset, every run (the plain ones too) already has
  a hash seed of its own, so no extra run is made and the report says so;
- ``isa``: ``ONEDNN_MAX_CPU_ISA``, the instruction set oneDNN may use: AVX2 -> AVX512_CORE where
  the CPU has it, else AVX; AVX512_CORE -> AVX2; AVX -> AVX2; unset counts as the CPU's best;
- ``order``: ``TF_NUM_INTEROP_THREADS``, 1 <-> 2 (unset: 1): independent ops run one at a time or
  side by side, so in another order.

A command that sets the variable itself (``os.environ[...] = ...`` before TensorFlow loads)
overrides the change, and the extra run then agrees with the plain ones: that is the point, it
shows that the command is robust to it.

Run 1 is compared with every other run: record against record (:func:`reprodl.divergence.
compare`) or, for a command without the callback, the file it writes (``--output FILE``) byte for
byte: where the command names FILE in its arguments, each run gets a path of its own there;
where it writes FILE under a fixed name (as many scripts do), each run's FILE is moved into the
check's folder after the run, and a FILE that was there before is set aside for the check
(``FILE.reprodl-check-set-aside``) and put back at the end. The verdict
(:meth:`CheckResult.lines`, the same text for the same runs) is ``identical`` or ``diverged``
with the first difference and its likely cause: plain runs that differ mean nondeterminism inside
the command (at step 0 the initial weights, or a random generator's seed; later the data order,
unseeded random draws or a nondeterministic op); a perturbed run that alone differs means the
result depends on what was changed.

A run that fails, outlives ``timeout`` (its whole process group is stopped) or writes nothing
usable raises :class:`~reprodl.errors.SubprocessError` (:class:`~reprodl.errors.RecordError` for
an unreadable record) naming the run and quoting the end of its stderr; a command that is not
found, :class:`~reprodl.errors.UsageError`.

The parts: :mod:`reprodl.check.plan` (what each run changes), :mod:`reprodl.check.run` (running
the command, each run through :mod:`reprodl._proc`) and :mod:`reprodl.check.verdict` (the
comparison, the likely cause and the advice). Nothing here pins the process at import time.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import Any

# The names outside ``__all__`` stay importable from here, as before the split.
from reprodl.check.plan import (
    PERTURBATIONS,
    Variation,
    plan_runs,  # noqa: F401
    variation,
)
from reprodl.check.run import (
    DEFAULT_RUNS,  # noqa: F401
    DEFAULT_TIMEOUT,  # noqa: F401
    EVERY_VARIABLE,  # noqa: F401
    RECORD_VARIABLE,  # noqa: F401
    SET_ASIDE,  # noqa: F401
    record_once,
    run,
)
from reprodl.check.verdict import CheckResult, Outcome, OutputDiff, Run


class _CallableModule(types.ModuleType):
    """This module, callable: ``reprodl.check(command, ...)`` is :func:`run`, so the package's
    top-level name works both as the module (``reprodl.check.run``) and as the function."""

    def __call__(self, command: Sequence[str], **options: Any) -> CheckResult:
        return run(command, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "PERTURBATIONS",
    "CheckResult",
    "Outcome",
    "OutputDiff",
    "Run",
    "Variation",
    "record_once",
    "run",
    "variation",
]
