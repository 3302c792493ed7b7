"""Run code in fresh Python interpreters: the only way to show settings that act at start-up.

``PYTHONHASHSEED``, ``OPENBLAS_CORETYPE``, TensorFlow's thread counts and oneDNN's instruction-set
cap take effect only when the interpreter, NumPy or TensorFlow starts, so a notebook cannot vary
them in its own kernel. Two levels:

- :func:`run_snippet` runs code in a new interpreter with a chosen environment and returns what it
  printed; :func:`run_many` repeats it and :func:`outputs_agree` says whether the runs printed the
  same, so a chapter can print that verdict instead of values that change from run to run.
  ``unset=PINNED_VARIABLES`` starts the child without anything reprodl sets in the environment,
  as a plain program starts on this machine.
- :func:`train_in_subprocess` trains one of the book's models in a fresh interpreter with the pins
  changed (intra-op threads, ISA cap), with op determinism on and/or off, and returns the weight
  fingerprints (:class:`SubprocessRun`). ``import reprodl`` overrides ambient variables, so the
  child changes the pins themselves (:func:`reprodl.runtime.repin`) before
  :func:`reprodl.runtime.setup`.

A child that fails, hangs past its timeout or prints nothing usable raises
:class:`~reprodl.errors.SubprocessError` with the end of its stderr.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprodl import _proc
from reprodl.errors import SubprocessError, UsageError

#: The category name :func:`reprodl.runtime.setup` warns with; :func:`warning_lines` looks for it.
WARNING_CATEGORY = "ReproducibilityWarning"

#: How many of a failed child's last stderr lines an error message quotes.
STDERR_TAIL_LINES = 20

#: Every variable reprodl sets in a process's environment: the pins of :mod:`reprodl.runtime` and
#: the hash seed the book's kernels start with. A child started with ``unset=PINNED_VARIABLES``
#: gets none of them (a variable the caller had set before reprodl is gone too): it starts as a
#: plain program does, with TensorFlow's and NumPy's own defaults.
PINNED_VARIABLES: tuple[str, ...] = tuple(sorted(_runtime.REPRODUCIBLE_ENV))


@dataclass(frozen=True)
class SnippetResult:
    """What a snippet printed: its standard output and error, and its exit status."""

    stdout: str
    stderr: str
    returncode: int

    @property
    def lines(self) -> list[str]:
        """The lines of standard output, without trailing whitespace."""
        return [line.rstrip() for line in self.stdout.splitlines()]


def stderr_tail(stderr: str | bytes | None, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` non-blank lines of a child's stderr (``(no stderr)`` when empty)."""
    return _proc.stderr_tail(stderr, lines)


def snippet_env(env: Mapping[str, str] | None = None, unset: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment, plus ``env``, minus the variables named in ``unset``."""
    full = {**os.environ, **(env or {})}
    for name in unset:
        full.pop(name, None)
    return full


def run_snippet(
    code: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    unset: Sequence[str] = (),
    check: bool = True,
    timeout: float = 300,
) -> SnippetResult:
    """Run ``code`` (dedented) with ``python -c`` in a new interpreter and return its output.

    ``args`` follow the code on the command line (the child's ``sys.argv[1:]``). The child
    inherits this process's environment, changed by ``env`` and ``unset``; it runs in a process
    group of its own (:mod:`reprodl._proc`), stopped as a whole when it ends. A child that runs
    longer than ``timeout`` seconds is stopped and raises :class:`SubprocessError`; so does a
    non-zero exit with ``check=True`` (the message quotes the end of the child's stderr).
    """
    argv = [sys.executable, "-c", textwrap.dedent(code), *args]
    proc = _proc.run(argv, env=snippet_env(env, unset), timeout=timeout)
    if proc.timed_out:
        raise SubprocessError(
            f"the child process took more than {timeout:g} s and was stopped; the end of its "
            f"stderr:\n{stderr_tail(proc.stderr)}"
        )
    result = SnippetResult(proc.stdout, proc.stderr, int(proc.returncode or 0))
    if check and not proc.ok:
        raise SubprocessError(
            f"the child process {proc.status}; the end of its stderr:\n{stderr_tail(proc.stderr)}"
        )
    return result


def run_many(code: str, times: int, **kwargs: Any) -> list[SnippetResult]:
    """Run the same snippet ``times`` times, each in its own fresh interpreter.

    ``kwargs`` go to :func:`run_snippet`.
    """
    if times <= 0:
        raise UsageError(f"times must be positive, got {times}")
    return [run_snippet(code, **kwargs) for _ in range(times)]


def outputs_agree(results: Sequence[SnippetResult]) -> bool:
    """True when every run printed exactly the same standard output.

    A run that printed nothing makes the verdict meaningless (empty outputs always agree), so it
    raises :class:`SubprocessError` rather than answering.
    """
    if not results:
        raise UsageError("no results to compare")
    silent = [i for i, r in enumerate(results) if not r.stdout.strip()]
    if silent:
        raise SubprocessError(
            f"run {silent[0] + 1} of {len(results)} printed nothing, so there is nothing to "
            f"compare; the end of its stderr:\n{stderr_tail(results[silent[0]].stderr)}"
        )
    return all(r.stdout == results[0].stdout for r in results)


def warning_lines(stderr: str, category: str = WARNING_CATEGORY) -> list[str]:
    """The messages of the warnings of ``category`` in a child's stderr, without their location.

    ``path:line: Category: message`` becomes ``Category: message``, so the printed text does not
    depend on where the code lives.
    """
    marker = f"{category}: "
    return [line[line.index(marker) :].rstrip() for line in stderr.splitlines() if marker in line]


# --------------------------------------------------------------------------------------------
# Training in a fresh process with other pins


@dataclass(frozen=True)
class SubprocessRun:
    """What a child training process reported.

    ``fingerprints`` and ``losses`` are keyed by the op-determinism setting (True: on);
    ``settings`` are the thread count and ISA cap the child actually ran with.
    """

    fingerprints: dict[bool, str]
    losses: dict[bool, str]
    settings: dict[str, str]


_CHILD = """
import sys
import reprodl.runtime as rt

rt.repin(intra_op_threads={threads!r}, onednn_isa={isa!r})
rt.setup({seed})

import os
import keras
import tensorflow as tf
from reprodl import data, models, training
from reprodl.record import fingerprint

tr = data.load_mnist().train
n = {steps} * {batch_size}
subset = data.Split(tr.images[:n], tr.labels[:n])
print("threads", tf.config.threading.get_intra_op_parallelism_threads())
print("isa", os.environ.get("ONEDNN_MAX_CPU_ISA", "native"))
for determinism in {settings!r}:
    rt.set_op_determinism(determinism)
    keras.utils.set_random_seed({seed})
    model = models.build({model!r}, {seed})
    record = training.train(
        model, subset, steps={steps}, batch_size={batch_size},
        optimizer=training.make_optimizer("adam", 1e-3), order_seed={seed},
    )
    flag = "on" if determinism else "off"
    print("loss", flag, fingerprint.format_float(record.final_loss))
    print("fingerprint", flag, record.final_digest)
"""


def train_in_subprocess(
    *,
    model: str = "mlp",
    steps: int = 60,
    batch_size: int = 100,
    seed: int = 0,
    intra_op_threads: int | None = None,
    onednn_isa: str | None = None,
    op_determinism: Sequence[bool] = (True, False),
    timeout: float = 600,
) -> SubprocessRun:
    """Train ``model`` (Adam 1e-3) in a fresh interpreter; one run per op-determinism setting.

    ``intra_op_threads`` and ``onednn_isa`` replace the pinned values in the child (``None``: keep
    the pins). The child trains on the first ``steps * batch_size`` training images in a seeded
    order. Raises :class:`SubprocessError` with the end of the child's stderr when it fails,
    runs past ``timeout`` seconds or does not report every setting.
    """
    settings = tuple(bool(s) for s in op_determinism)
    if not settings:
        raise UsageError("op_determinism names no setting to train with")
    code = _CHILD.format(
        threads=intra_op_threads,
        isa=onednn_isa,
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        model=model,
        settings=settings,
    )
    return _parse_run(run_snippet(code, timeout=timeout), settings)


def _parse_run(result: SnippetResult, settings: Sequence[bool]) -> SubprocessRun:
    """The :class:`SubprocessRun` in a training child's output; an error if anything is missing."""
    fingerprints: dict[bool, str] = {}
    losses: dict[bool, str] = {}
    reported: dict[str, str] = {}
    for parts in (line.split() for line in result.lines):
        if len(parts) == 3 and parts[0] in ("fingerprint", "loss") and parts[1] in ("on", "off"):
            (fingerprints if parts[0] == "fingerprint" else losses)[parts[1] == "on"] = parts[2]
        elif len(parts) == 2 and parts[0] in ("threads", "isa"):
            reported[parts[0]] = parts[1]
    missing = [
        f"{what} {'on' if on else 'off'}"
        for on in settings
        for what, found in (("fingerprint", fingerprints), ("loss", losses))
        if on not in found
    ] + [name for name in ("threads", "isa") if name not in reported]
    if missing:
        printed = "\n".join(result.lines[-5:]) or "(nothing)"
        raise SubprocessError(
            f"the training child did not report {', '.join(missing)}; it printed:\n{printed}\n"
            f"the end of its stderr:\n{stderr_tail(result.stderr)}"
        )
    return SubprocessRun(fingerprints=fingerprints, losses=losses, settings=reported)
