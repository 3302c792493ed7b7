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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reprodl.errors import RecordError, SubprocessError, UsageError

if TYPE_CHECKING:
    from reprodl.divergence import Comparison
    from reprodl.records import RunRecord

__all__ = [
    "PERTURBATIONS",
    "STARTUP_ENV",
    "CheckResult",
    "Outcome",
    "OutputDiff",
    "Run",
    "Variation",
    "caller_environment",
    "record_once",
    "run",
    "variation",
]

#: The environment when this module was first imported. :mod:`reprodl.cli` imports it before
#: :mod:`reprodl.runtime` pins the process, so there it is the caller's (see
#: :func:`caller_environment`). This module imports nothing that pins at import time.
#:
#: :meta hide-value:
STARTUP_ENV: dict[str, str] = dict(os.environ)

#: What ``--vary`` can change, one extra run each.
PERTURBATIONS = ("threads", "hash-seed", "isa", "order")
#: Where a run's :class:`reprodl.keras.RecordRun` writes its record, and its digest interval.
RECORD_VARIABLE = "REPRODL_RECORD"
EVERY_VARIABLE = "REPRODL_RECORD_EVERY"
DEFAULT_RUNS = 2
DEFAULT_TIMEOUT = 1800.0
#: Seconds a stopped run's process group gets between SIGTERM and SIGKILL.
KILL_GRACE = 5.0
#: How many of a failed run's last stderr lines an error quotes.
STDERR_LINES = 12
#: How many characters of a differing output line the report shows.
LINE_LIMIT = 200

_THREADS = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")
_INTEROP = ("TF_NUM_INTEROP_THREADS",)
_HASH_SEED = "PYTHONHASHSEED"
_ISA = "ONEDNN_MAX_CPU_ISA"

#: Per perturbation: what the result then depends on, and how to pin it (``{pin}``: the value).
_ADVICE = {
    "threads": (
        "the intra-op thread count",
        "pin TF_NUM_INTRAOP_THREADS in your script before TensorFlow loads "
        '(os.environ["TF_NUM_INTRAOP_THREADS"] = "{pin}"); the run also changed OMP_NUM_THREADS, '
        "which TensorFlow's pip package ignores: pin it too if your script uses an OpenMP library",
    ),
    "order": (
        "the inter-op thread count (the order independent ops run in)",
        "pin TF_NUM_INTEROP_THREADS in your script before TensorFlow loads "
        '(os.environ["TF_NUM_INTEROP_THREADS"] = "{pin}")',
    ),
    "isa": (
        "the instruction set oneDNN computes with",
        "pin ONEDNN_MAX_CPU_ISA in your script before TensorFlow loads "
        '(os.environ["ONEDNN_MAX_CPU_ISA"] = "{pin}")',
    ),
    "hash-seed": (
        "the hash seed (the iteration order of sets and dicts of strings)",
        "sort what you iterate over, or set PYTHONHASHSEED before Python starts (e.g. "
        "PYTHONHASHSEED={pin} python ...; a script cannot set it for itself)",
    ),
}


def caller_environment(
    startup: Mapping[str, str], current: Mapping[str, str], pins: Mapping[str, str]
) -> dict[str, str]:
    """The caller's environment: ``current`` with the values :mod:`reprodl.runtime` pinned when it
    was imported (``pins``, where ``startup`` had another value or none) put back as they were."""
    env = dict(current)
    for name, pinned in pins.items():
        if env.get(name) == pinned and startup.get(name) != pinned:
            if name in startup:
                env[name] = startup[name]
            else:
                del env[name]
    return env


# --- what each run changes -------------------------------------------------------------------


@dataclass(frozen=True)
class Variation:
    """What one run changes in the caller's environment: nothing (a plain run) or one thing."""

    name: str = "plain"
    changes: tuple[tuple[str, str], ...] = ()  # (variable, value) for this run
    before: tuple[str | None, ...] = ()  # the plain runs' values of those variables
    pin: str = ""  # the value to suggest pinning when the result depends on it

    @property
    def plain(self) -> bool:
        """Whether this is a plain run (the caller's environment unchanged)."""
        return not self.changes

    @property
    def label(self) -> str:
        """``plain``, or the change: ``threads: TF_NUM_INTRAOP_THREADS=2 OMP_NUM_THREADS=2``."""
        if self.plain:
            return "plain"
        return f"{self.name}: " + " ".join(f"{k}={v}" for k, v in self.changes)

    @property
    def description(self) -> str:
        """The label and what the plain runs had instead."""
        if self.plain:
            return "plain"
        was = ", ".join("unset" if v is None else v for v in self.before)
        return f"{self.label}; plain runs: {was}"

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this run's change applied."""
        return {**base, **dict(self.changes)}

    def advice(self) -> str:
        """What the result depends on, and how to pin it (for a perturbed run that differs)."""
        what, how = _ADVICE[self.name]
        return f"the result depends on {what}: {how.format(pin=self.pin)}"


def _cores() -> int:
    """How many CPUs this process may run on (TensorFlow's default thread counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _best_isa() -> str | None:
    """The best oneDNN instruction set of this CPU (None: not x86-64, or below SSE4.1)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    from reprodl import cpu

    return cpu.describe().best_isa


def _count_variation(name: str, names: tuple[str, ...], env: Mapping[str, str]) -> Variation:
    """A thread count 1 <-> 2; unset (TensorFlow's default: one per core) -> 1, or 2 on one core."""
    current = env.get(names[0])
    try:
        count = int(current) if current is not None else _cores()
    except ValueError:
        count = _cores()
    new = "2" if count == 1 else "1"
    before = tuple(env.get(n) for n in names)
    return Variation(name, tuple((n, new) for n in names), before, current or new)


def _hash_seed_variation(env: Mapping[str, str]) -> Variation | str:
    current = env.get(_HASH_SEED)
    if current is None or current == "random":
        return (
            "hash-seed: PYTHONHASHSEED is unset, so every run, the plain ones too, "
            "already has a hash seed of its own"
        )
    try:
        seed = int(current)
    except ValueError:
        return f"hash-seed: PYTHONHASHSEED={current} is not a number"
    return Variation("hash-seed", ((_HASH_SEED, str((seed + 1) % 2**32)),), (current,), current)


def _isa_variation(env: Mapping[str, str]) -> Variation | str:
    from reprodl.cpu import ISA_ORDER

    best = _best_isa()
    if best is None:
        return (
            f"isa: this CPU ({platform.machine()}) has no x86-64 instruction sets "
            "for ONEDNN_MAX_CPU_ISA to choose from"
        )
    cap = env.get(_ISA)
    top = ISA_ORDER.index(best)
    used = min(ISA_ORDER.index(cap.upper()), top) if cap and cap.upper() in ISA_ORDER else top
    if ISA_ORDER[used] == "AVX2":
        new = "AVX512_CORE" if top > used else "AVX"
    elif used < top:
        new = ISA_ORDER[used + 1]
    elif used > 0:
        new = ISA_ORDER[used - 1]
    else:
        return "isa: this CPU has no other instruction set for oneDNN than SSE41"
    lower = ISA_ORDER[min(used, ISA_ORDER.index(new))]  # the portable one of the two
    return Variation("isa", ((_ISA, new),), (cap,), lower)


def variation(name: str, env: Mapping[str, str]) -> Variation | str:
    """The extra run for perturbation ``name`` given the plain runs' environment ``env``, or a
    note saying why there is none (e.g. ``PYTHONHASHSEED`` unset already varies the hash seed)."""
    if name == "threads":
        return _count_variation(name, _THREADS, env)
    if name == "order":
        return _count_variation(name, _INTEROP, env)
    if name == "hash-seed":
        return _hash_seed_variation(env)
    if name == "isa":
        return _isa_variation(env)
    raise UsageError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")


# --- running the command ---------------------------------------------------------------------


@dataclass
class Run:
    """One finished run: what it changed and what it wrote (a record, an output file, or both)."""

    index: int
    total: int
    variation: Variation
    record: RunRecord | None
    output: bytes | None
    seconds: float

    @property
    def name(self) -> str:
        """How errors and progress lines call it: ``run 2/3 (threads: TF_...=2 ...)``."""
        return f"run {self.index}/{self.total} ({self.variation.label})"

    @property
    def short(self) -> str:
        """How the verdict calls it: ``run 2 (threads)``."""
        return f"run {self.index} ({self.variation.name})"


def _require_program(program: str, env: Mapping[str, str]) -> None:
    """:class:`UsageError` unless ``program`` can be executed (looked up in ``env``'s PATH)."""
    if os.sep in program:
        found = os.path.isfile(program) and os.access(program, os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath)) is not None
    if not found:
        raise UsageError(f"command not found: {program}")


def _with_output(command: Sequence[str], output: str, path: str) -> list[str] | None:
    """``command`` with ``output`` replaced by ``path`` wherever an argument names it (``FILE``,
    or ``--option=FILE``); None if none does (the command writes it under a fixed name)."""
    new, found = [command[0]], False
    for arg in command[1:]:
        if arg == output:
            new.append(path)
        elif arg.startswith("-") and arg.endswith(f"={output}"):
            new.append(arg[: -len(output)] + path)
        else:
            new.append(arg)
            continue
        found = True
    return new if found else None


#: The suffix of a file that a fixed-name output would overwrite, set aside during a check.
SET_ASIDE = ".reprodl-check-set-aside"


@contextlib.contextmanager
def _fixed_output(output: str | None, command: Sequence[str]) -> Iterator[Path | None]:
    """For an ``output`` the command writes under its fixed name (it does not name it): that
    path, with a file already there set aside next to it for the check and put back at the end
    (a run's file left there by a failed run is removed); None when there is nothing to do."""
    if output is None or _with_output(command, output, output) is not None:
        yield None
        return
    path = Path(output).absolute()
    aside = path.with_name(path.name + SET_ASIDE)
    if aside.exists():
        raise UsageError(
            f"{aside} exists: an earlier check set {output} aside there and was stopped before "
            "it could put it back; move it back (or remove it) first"
        )
    if path.exists():
        path.rename(aside)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        if aside.exists():
            aside.rename(path)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop what is left of ``proc``'s process group: SIGTERM, :data:`KILL_GRACE` seconds, then
    SIGKILL for anything still running (a finished command's leftover children included)."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(KILL_GRACE)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _stderr_tail(path: Path) -> str:
    """The last :data:`STDERR_LINES` non-blank lines of a run's stderr log, indented."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 65536))
        text = fh.read().decode("utf-8", errors="replace")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-STDERR_LINES:]
    return "\n".join(f"  | {line}" for line in kept) if kept else "  (no stderr)"


def _execute(argv: list[str], env: dict[str, str], logs: Path, timeout: float) -> int | None:
    """Run ``argv`` in a process group of its own, stdout and stderr into ``logs``.stdout/.stderr;
    its exit status, or None if it ran past ``timeout`` (the group is stopped either way)."""
    with (
        logs.with_suffix(".stdout").open("wb") as out,
        logs.with_suffix(".stderr").open("wb") as err,
    ):
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # a process group of its own: stopped as a whole
            )
        except OSError as exc:
            raise UsageError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            _stop_group(proc)


def _run_once(
    plan: Sequence[Variation],
    index: int,
    *,
    command: Sequence[str],
    base: Mapping[str, str],
    folder: Path,
    output: str | None,
    timeout: float,
    kept: bool,
    fixed: Path | None = None,
) -> tuple[Run, bool, bool]:
    """Run the command once (run ``index`` of ``plan``, counting from 1); the finished run and
    whether it wrote a record and the output file. Raises on a failure, a timeout, a bad record."""
    variation = plan[index - 1]
    run = Run(index, len(plan), variation, None, None, 0.0)
    record_path = folder / f"run-{index}.json"
    env = variation.environment(base)
    env[RECORD_VARIABLE] = str(record_path)
    argv = list(command)
    out_path = None
    if output is not None:
        out_path = folder / f"run-{index}-{Path(output).name}"
        argv = _with_output(command, output, str(out_path)) or argv
    for stale in (record_path, out_path, fixed):  # a file from before is no evidence
        if stale is not None:
            stale.unlink(missing_ok=True)
    logs = folder / f"run-{index}.log"
    start = time.monotonic()
    status = _execute(argv, env, logs, timeout)
    run.seconds = time.monotonic() - start
    if fixed is not None and out_path is not None and fixed.is_file():
        shutil.move(fixed, out_path)  # the next run writes the fixed name again
    where = f" (all of it: {logs.with_suffix('.stderr')})" if kept else ""
    if status is None:
        raise SubprocessError(
            f"{run.name} did not finish within {timeout:g} s; it was stopped, with every process "
            f"it started. The last lines of its stderr{where}:\n"
            + _stderr_tail(logs.with_suffix(".stderr"))
        )
    if status != 0:
        how = f"failed with exit status {status}"
        if status < 0:
            try:
                how = f"was killed by {signal.Signals(-status).name}"
            except ValueError:  # a signal without a name (a real-time one)
                how = f"was killed by signal {-status}"
        raise SubprocessError(
            f"{run.name} {how}. The last lines of its stderr{where}:\n"
            + _stderr_tail(logs.with_suffix(".stderr"))
        )
    wrote_record = record_path.is_file()
    if wrote_record:
        from reprodl import records

        try:
            run.record = records.load(record_path)
        except RecordError as exc:
            raise RecordError(f"{run.name} wrote a run record that cannot be read: {exc}") from None
        run.record.source = run.short  # the verdict names runs, not temporary files
        why = run.record.meta.get("interrupted")
        if why:
            raise SubprocessError(
                f"{run.name} exited normally, but its record says the training was interrupted "
                f"({why}): the record covers only part of it"
            )
    wrote_output = out_path is not None and out_path.is_file()
    if wrote_output:
        run.output = out_path.read_bytes()
    return run, wrote_record, wrote_output


def _missing(run: Run, output: str | None, record: bool, out: bool, first: Run) -> str | None:
    """Why ``run`` did not write what the first run wrote (or, for the first run, anything)."""
    if run is first:
        if record or out:
            return None
        if output is None:
            return (
                f"{run.name} wrote no run record to ${RECORD_VARIABLE}: add "
                "reprodl.keras.RecordRun() to the callbacks of fit, or name the file your "
                "command writes with --output FILE"
            )
        return (
            f"{run.name} wrote neither a run record nor {output}: add reprodl.keras.RecordRun() "
            f"to the callbacks of fit, or check that the command writes the file it is given"
        )
    if first.record is not None and not record:
        return f"{run.name} wrote no run record (run 1 did)"
    if first.output is not None and not out:
        return f"{run.name} did not write {output} (run 1 did)"
    return None


# --- comparing the runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class OutputDiff:
    """The first line where two output files differ (``None``: that file has ended)."""

    name: str
    line: int
    a: bytes | None
    b: bytes | None

    @staticmethod
    def between(name: str, a: bytes, b: bytes) -> OutputDiff | None:
        """Where ``a`` and ``b`` first differ, line by line; None if they are the same bytes."""
        if a == b:
            return None
        la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
        for i, (x, y) in enumerate(zip(la, lb, strict=False)):
            if x != y:
                return OutputDiff(name, i + 1, x, y)
        n = min(len(la), len(lb))
        return OutputDiff(
            name, n + 1, la[n] if n < len(la) else None, lb[n] if n < len(lb) else None
        )

    def lines(self, a_name: str, b_name: str) -> list[str]:
        """The report: the file, the line number, and that line in each run."""
        return [
            f"{self.name}, line {self.line}:",
            f"  {a_name}: {_shown(self.a)}",
            f"  {b_name}: {_shown(self.b)}",
        ]


def _shown(line: bytes | None) -> str:
    """A line of an output file for the report: decoded, cut at :data:`LINE_LIMIT` characters."""
    if line is None:
        return "(end of file)"
    text = line.decode("utf-8", errors="backslashreplace")
    ending = "" if text.endswith(("\n", "\r")) else " (no newline at the end)"
    text = text.rstrip("\r\n")
    if len(text) > LINE_LIMIT:
        text = text[:LINE_LIMIT] + "..."
    return repr(text)[1:-1] + ending


@dataclass
class Outcome:
    """One run compared with run 1: its records, its output file, or both."""

    run: Run
    comparison: Comparison | None = None
    incomparable: str | None = None  # why the records cannot be compared step by step
    output_diff: OutputDiff | None = None

    @property
    def identical(self) -> bool:
        """Everything compared agrees bit for bit."""
        records_same = self.comparison is None or self.comparison.identical
        return records_same and self.incomparable is None and self.output_diff is None

    def difference(self) -> str:
        """``identical to run 1`` or where this run first differs from it."""
        if self.incomparable is not None:
            return f"recorded another kind of training than run 1 ({self.incomparable})"
        c = self.comparison
        if c is not None and not c.identical:
            return f"differs from run 1 {_position(c)}"
        if self.output_diff is not None:
            return f"differs from run 1 at line {self.output_diff.line} of {self.output_diff.name}"
        return "identical to run 1"

    def report(self, first: Run) -> list[str]:
        """The detailed report of a difference (the records', then the output file's)."""
        out: list[str] = []
        c = self.comparison
        if c is not None and not c.identical:
            out += c.lines()
        if self.output_diff is not None:
            out += self.output_diff.lines(first.short, self.run.short)
        return out


def _position(c: Comparison) -> str:
    """Where a comparison first differs: a step and variable, or the loss of a step."""
    digest, loss = c.first_digest_step, c.first_loss_step
    if digest is not None and (loss is None or digest < loss):
        return f"at step {digest}, variable {c.first_variable}"
    text = f"at step {loss} (the loss)"
    if digest is not None:
        text += f"; the recorded state from step {digest} on, first variable {c.first_variable}"
    return text


def _compare(first: Run, other: Run, output: str | None) -> Outcome:
    """Compare ``other`` with ``first``: the records if they wrote them, the outputs likewise."""
    from reprodl import divergence

    outcome = Outcome(other)
    if first.record is not None and other.record is not None:
        try:
            outcome.comparison = divergence.compare(first.record, other.record)
        except RecordError as exc:
            outcome.incomparable = str(exc).partition("cannot be compared: ")[2] or str(exc)
    if output is not None and first.output is not None and other.output is not None:
        outcome.output_diff = OutputDiff.between(output, first.output, other.output)
    return outcome


# --- the verdict -----------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The runs, each compared with run 1, and the perturbations that got no run (and why)."""

    command: list[str]
    runs: list[Run]
    outcomes: list[Outcome]
    notes: list[str] = field(default_factory=list)
    output: str | None = None
    hash_seed_unset: bool = False

    @property
    def identical(self) -> bool:
        """Every run agrees with run 1, bit for bit."""
        return all(o.identical for o in self.outcomes)

    @property
    def exit_status(self) -> int:
        """0 identical, 1 diverged (the CLI's convention)."""
        return 0 if self.identical else 1

    def _summary(self) -> str:
        plain = sum(r.variation.plain for r in self.runs)
        names = [f"{plain} plain"] + [r.variation.name for r in self.runs if not r.variation.plain]
        return f"{len(self.runs)} runs ({', '.join(names)})"

    def _evidence(self) -> str:
        """What the runs agree on: steps and fingerprint, and the output file's size and hash."""
        from reprodl import fingerprint

        first, parts = self.runs[0], []
        if first.record is not None:
            short = fingerprint.short(first.record.final_digest)
            parts.append(f"{first.record.steps} steps, fingerprint {short}")
        if first.output is not None:
            digest = fingerprint.short(hashlib.sha256(first.output).hexdigest())
            parts.append(f"output {self.output} ({len(first.output)} bytes, sha256 {digest})")
        return ", ".join(parts)

    def _headline(self, culprit: Outcome | None) -> str:
        if culprit is None:
            return f"identical: {self._summary()}, {self._evidence()}"
        return f"diverged: {culprit.run.short} {culprit.difference()}"

    def _run_lines(self) -> list[str]:
        first = self.runs[0]
        out = [f"run 1 ({first.variation.description})"]
        for o in self.outcomes:
            out.append(f"run {o.run.index} ({o.run.variation.description}): {o.difference()}")
        out += [f"not run: {note}" for note in self.notes]
        return out

    def _cause_lines(self, plain: list[Outcome], perturbed: list[Outcome]) -> list[str]:
        if plain:
            out = [
                "cause: the plain runs differ, so the command is not deterministic by itself:",
                *(f"  - {reason}" for reason in _plain_reasons(plain[0])),
            ]
            if self.hash_seed_unset:
                out.append(
                    "  - or the hash seed: PYTHONHASHSEED is unset, so each run had its own "
                    "(set it, e.g. PYTHONHASHSEED=0, to rule that out)"
                )
            if any(not o.run.variation.plain for o in self.outcomes):
                out.append("the perturbed runs tell nothing until the plain runs agree")
            return out
        return [f"cause: {o.run.variation.advice()}" for o in perturbed]

    def lines(self) -> list[str]:
        """The verdict: a headline, one line per run, the likely cause and the first report."""
        differing = [o for o in self.outcomes if not o.identical]
        plain = [o for o in differing if o.run.variation.plain]
        perturbed = [o for o in differing if not o.run.variation.plain]
        culprit = (plain or perturbed or [None])[0]
        out = [self._headline(culprit), *self._run_lines()]
        if culprit is not None:
            out += self._cause_lines(plain, perturbed)
            report = culprit.report(self.runs[0])
            out += ["", *report] if report else []
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _plain_reasons(o: Outcome) -> list[str]:
    """Likely causes of a difference between two plain runs, from what differs where."""
    if o.incomparable is not None:
        return [
            f"the runs recorded different trainings ({o.incomparable}): something the command "
            "decides at run time (e.g. early stopping) varies between runs"
        ]
    c = o.comparison
    if c is None or c.identical:  # only the output files differ
        return [
            "a seed that is not fixed, an unseeded data order or a nondeterministic op; add "
            "reprodl.keras.RecordRun() to the callbacks of fit to see at which step and in "
            "which variable"
        ]
    kinds = {v["name"]: v["kind"] for v in c.a.variables}
    rng = [n for n in c.differing_variables if kinds.get(n) == "rng"]
    weights = [n for n in c.differing_variables if kinds.get(n) == "weight"]
    reasons = []
    at_start = c.first_digest_step == 0
    if at_start and weights:
        reasons.append(
            f"the initial weights differ (step 0, {weights[0]}): an initialiser or the global "
            "seed is not fixed (call keras.utils.set_random_seed(SEED) before building the "
            "model, or give each initialiser a seed)"
        )
    if rng:
        reasons.append(
            f"a random generator's state differs (step {c.first_digest_step}, {rng[0]}): it is "
            "seeded differently in each run (give the layer a seed, e.g. Dropout(rate, "
            "seed=...), or call keras.utils.set_random_seed(SEED))"
        )
    if not reasons:
        reasons.append(
            f"the runs start alike and drift apart {_position(c)}: an unseeded data order "
            "(shuffling without a seed), random draws without a seed (dropout, augmentation), or "
            "a nondeterministic op (call tf.config.experimental.enable_op_determinism())"
        )
    return reasons


# --- the whole check -------------------------------------------------------------------------


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    runs: int = DEFAULT_RUNS,
    vary: Sequence[str] = (),
    output: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    keep: str | os.PathLike[str] | None = None,
    every: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    """Run ``command`` ``runs`` times plus once per perturbation in ``vary``, one after another,
    and compare every run with the first (see the module docstring).

    ``env`` is the plain runs' environment (default: this process's). Records and logs go to
    ``keep`` (kept) or a temporary folder (removed). ``progress`` gets one line per finished run.
    """
    command = list(command)
    if not command:
        raise UsageError("no command to check: give it after --")
    if runs < 2:
        raise UsageError(f"--runs must be at least 2, got {runs}")
    base = dict(os.environ if env is None else env)
    if every is not None:
        base[EVERY_VARIABLE] = str(every)
    _require_program(command[0], base)
    plan, notes = [Variation()] * runs, []
    for name in dict.fromkeys(vary):
        extra = variation(name, base)
        if isinstance(extra, str):
            notes.append(extra)
        else:
            plan.append(extra)
    if keep is not None:
        folder = Path(keep).absolute()  # the command may change its working directory
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="reprodl-check-"))
    try:
        with _fixed_output(output, command) as fixed:
            done = _run_all(plan, command, base, folder, output, timeout, keep, fixed, progress)
        outcomes = [_compare(done[0], r, output) for r in done[1:]]
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return CheckResult(
        command=command,
        runs=done,
        outcomes=outcomes,
        notes=notes,
        output=output,
        hash_seed_unset=base.get(_HASH_SEED) in (None, "random"),
    )


def _run_all(
    plan: Sequence[Variation],
    command: Sequence[str],
    base: Mapping[str, str],
    folder: Path,
    output: str | None,
    timeout: float,
    keep: str | os.PathLike[str] | None,
    fixed: Path | None,
    progress: Callable[[str], None] | None,
) -> list[Run]:
    """Every run of ``plan``, one after another; raises for the first that fails."""
    done: list[Run] = []
    for index in range(1, len(plan) + 1):
        run_, record, out = _run_once(
            plan,
            index,
            command=command,
            base=base,
            folder=folder,
            output=output,
            timeout=timeout,
            kept=keep is not None,
            fixed=fixed,
        )
        if progress is not None:
            progress(f"{run_.name}: {run_.seconds:.1f} s")
        problem = _missing(run_, output, record, out, done[0] if done else run_)
        if problem:
            raise SubprocessError(problem)
        done.append(run_)
    return done


def record_once(
    command: Sequence[str],
    folder: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> RunRecord:
    """Run ``command`` once, as a plain run of :func:`run` would, and return the record it wrote
    (``FOLDER/run-1.json``, kept with its logs); errors as in :func:`run`."""
    command = list(command)
    if not command:
        raise UsageError("no command to run")
    base = dict(os.environ if env is None else env)
    _require_program(command[0], base)
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    plan = [Variation()]
    run_, wrote_record, _ = _run_once(
        plan, 1, command=command, base=base, folder=folder, output=None, timeout=timeout, kept=True
    )
    if not wrote_record or run_.record is None:
        raise SubprocessError(
            f"{run_.name} wrote no run record: "
            "add reprodl.keras.RecordRun() to the callbacks of fit"
        )
    return run_.record
