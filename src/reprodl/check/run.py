"""Running a check's command: each run in a fresh process through :mod:`reprodl._proc` (a process
group of its own, a timeout, stdout and stderr into log files), with ``--output`` rewritten or
moved aside per run, and what the run wrote read back.

Nothing here pins the process or loads NumPy at import time (records are read lazily).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reprodl import _proc
from reprodl.check.plan import _HASH_SEED, Variation, plan_runs
from reprodl.check.verdict import CheckResult, Run, _compare
from reprodl.errors import RecordError, SubprocessError, UsageError

if TYPE_CHECKING:
    from reprodl.record.runrecord import RunRecord

#: Where a run's :class:`reprodl.keras.RecordRun` writes its record, and its digest interval.
RECORD_VARIABLE = "REPRODL_RECORD"
EVERY_VARIABLE = "REPRODL_RECORD_EVERY"
DEFAULT_RUNS = 2
DEFAULT_TIMEOUT = 1800.0
#: Seconds a stopped run's process group gets between SIGTERM and SIGKILL.
KILL_GRACE = 5.0
#: How many of a failed run's last stderr lines an error quotes.
STDERR_LINES = 12
#: The suffix of a file that a fixed-name output would overwrite, set aside during a check.
SET_ASIDE = ".reprodl-check-set-aside"


@dataclass(frozen=True)
class _Job:
    """What every run of one check shares."""

    command: Sequence[str]
    base: Mapping[str, str]  # the plain runs' environment
    folder: Path  # records, outputs and logs
    output: str | None = None  # the output file to compare (``--output``)
    timeout: float = DEFAULT_TIMEOUT
    kept: bool = False  # the folder is kept (errors then name the full stderr log)
    fixed: Path | None = None  # where the command writes ``output`` under a fixed name


# --- the command line and the output file ----------------------------------------------------


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


@contextlib.contextmanager
def _run_folder(keep: str | os.PathLike[str] | None) -> Iterator[Path]:
    """The folder for the runs' records and logs: ``keep`` (made, and kept), or a temporary one
    (removed at the end)."""
    if keep is not None:
        folder = Path(keep).absolute()  # the command may change its working directory
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="reprodl-check-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- one run ---------------------------------------------------------------------------------


def _execute(
    argv: Sequence[str], env: Mapping[str, str], logs: Path, timeout: float
) -> _proc.Result:
    """Run ``argv`` through :func:`reprodl._proc.run`, stdout and stderr into
    ``logs``.stdout/.stderr; a program that cannot be started is a :class:`UsageError`."""
    try:
        return _proc.run(
            argv,
            env=env,
            timeout=timeout,
            stdout=logs.with_suffix(".stdout"),
            stderr=logs.with_suffix(".stderr"),
            grace=KILL_GRACE,
        )
    except SubprocessError as exc:  # cannot run PROGRAM: why
        raise UsageError(str(exc)) from None


def _raise_for_status(run: Run, result: _proc.Result, log: Path | None) -> None:
    """:class:`SubprocessError` for a run that failed or timed out, quoting its stderr's end
    (``log``: the kept stderr log the message points to)."""
    if result.ok:
        return
    where = f" (all of it: {log})" if log is not None else ""
    tail = f"The last lines of its stderr{where}:\n" + result.tail(STDERR_LINES, prefix="  | ")
    if result.timed_out:
        raise SubprocessError(
            f"{run.name} did not finish within {result.timeout:g} s; it was stopped, with every "
            f"process it started. {tail}"
        )
    how = result.status
    if result.returncode is not None and result.returncode > 0:
        how = f"failed with exit status {result.returncode}"
    raise SubprocessError(f"{run.name} {how}. {tail}")


def _load_record(run: Run, path: Path) -> RunRecord:
    """The record a run wrote; an error if it cannot be read or says it was interrupted."""
    from reprodl.record import runrecord

    try:
        record = runrecord.load(path)
    except RecordError as exc:
        raise RecordError(f"{run.name} wrote a run record that cannot be read: {exc}") from None
    record.source = run.short  # the verdict names runs, not temporary files
    why = record.meta.get("interrupted")
    if why:
        raise SubprocessError(
            f"{run.name} exited normally, but its record says the training was interrupted "
            f"({why}): the record covers only part of it"
        )
    return record


def _run_once(job: _Job, plan: Sequence[Variation], index: int) -> tuple[Run, bool, bool]:
    """Run the command once (run ``index`` of ``plan``, counting from 1); the finished run and
    whether it wrote a record and the output file. Raises on a failure, a timeout, a bad record."""
    variation = plan[index - 1]
    run = Run(index, len(plan), variation, None, None, 0.0)
    record_path = job.folder / f"run-{index}.json"
    env = variation.environment(job.base)
    env[RECORD_VARIABLE] = str(record_path)
    argv, out_path = list(job.command), None
    if job.output is not None:
        out_path = job.folder / f"run-{index}-{Path(job.output).name}"
        argv = _with_output(job.command, job.output, str(out_path)) or argv
    for stale in (record_path, out_path, job.fixed):  # a file from before is no evidence
        if stale is not None:
            stale.unlink(missing_ok=True)
    logs = job.folder / f"run-{index}.log"
    result = _execute(argv, env, logs, job.timeout)
    run.seconds = result.seconds
    if job.fixed is not None and out_path is not None and job.fixed.is_file():
        shutil.move(job.fixed, out_path)  # the next run writes the fixed name again
    _raise_for_status(run, result, logs.with_suffix(".stderr") if job.kept else None)
    wrote_record = record_path.is_file()
    if wrote_record:
        run.record = _load_record(run, record_path)
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


# --- the whole check -------------------------------------------------------------------------


def _base_environment(env: Mapping[str, str] | None, every: int | None = None) -> dict[str, str]:
    """The plain runs' environment: ``env`` (default: this process's), with the record interval."""
    base = dict(os.environ if env is None else env)
    if every is not None:
        base[EVERY_VARIABLE] = str(every)
    return base


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
    and compare every run with the first (see :mod:`reprodl.check`).

    ``env`` is the plain runs' environment (default: this process's). Records and logs go to
    ``keep`` (kept) or a temporary folder (removed). ``progress`` gets one line per finished run.
    """
    command = list(command)
    if not command:
        raise UsageError("no command to check: give it after --")
    if runs < 2:
        raise UsageError(f"--runs must be at least 2, got {runs}")
    base = _base_environment(env, every)
    _require_program(command[0], base)
    plan, notes = plan_runs(runs, vary, base)
    with _run_folder(keep) as folder:
        with _fixed_output(output, command) as fixed:
            job = _Job(command, base, folder, output, timeout, keep is not None, fixed)
            done = _run_all(job, plan, progress)
        outcomes = [_compare(done[0], r, output) for r in done[1:]]
    return CheckResult(
        command=command,
        runs=done,
        outcomes=outcomes,
        notes=notes,
        output=output,
        hash_seed_unset=base.get(_HASH_SEED) in (None, "random"),
    )


def _run_all(
    job: _Job, plan: Sequence[Variation], progress: Callable[[str], None] | None
) -> list[Run]:
    """Every run of ``plan``, one after another; raises for the first that fails."""
    done: list[Run] = []
    for index in range(1, len(plan) + 1):
        run_, record, out = _run_once(job, plan, index)
        if progress is not None:
            progress(f"{run_.name}: {run_.seconds:.1f} s")
        problem = _missing(run_, job.output, record, out, done[0] if done else run_)
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
    base = _base_environment(env)
    _require_program(command[0], base)
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    job = _Job(command, base, folder, timeout=timeout, kept=True)
    run_, wrote_record, _ = _run_once(job, [Variation()], 1)
    if not wrote_record or run_.record is None:
        raise SubprocessError(
            f"{run_.name} wrote no run record: "
            "add reprodl.keras.RecordRun() to the callbacks of fit"
        )
    return run_.record
