"""The package's one child-process runner: every child in a process group of its own, with a
timeout, stopped as a whole (SIGTERM, a grace period, then SIGKILL), and the end of its stderr
for the error message.

- :func:`run` runs one command to its end (or its timeout) and returns a :class:`Result`;
- :func:`start` and :func:`supervise` run several side by side and stop them all at the first
  failure (the local workers of :mod:`reprodl.distributed`);
- :func:`stop_group` / :func:`stop_groups` stop what is left of children's process groups;
- :func:`stderr_tail` quotes the last non-blank lines of a child's stderr.

Output goes to files (a temporary one unless a path is given), never to pipes: a grandchild
that keeps a pipe open cannot block the parent, and a chatty child cannot fill a pipe.

This module imports neither :mod:`reprodl.runtime` (it must never pin the process) nor NumPy or
TensorFlow. The callers keep their own error types and texts; :meth:`Result.check` is the plain
one for callers without.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from reprodl.errors import SubprocessError

__all__ = [
    "KILL_GRACE",
    "TAIL_BYTES",
    "TAIL_LINES",
    "Result",
    "Supervision",
    "read_text",
    "run",
    "start",
    "stderr_tail",
    "stop_group",
    "stop_groups",
    "supervise",
]

#: Seconds a stopped child's process group gets between SIGTERM and SIGKILL.
KILL_GRACE = 5.0
#: How many of a child's last non-blank stderr lines :func:`stderr_tail` quotes by default.
TAIL_LINES = 20
#: How much of the end of an output file :func:`run` reads back (output written to a path).
TAIL_BYTES = 65536


def stderr_tail(
    source: str | bytes | os.PathLike[str] | None, lines: int = TAIL_LINES, prefix: str = ""
) -> str:
    """The last ``lines`` non-blank lines of a child's stderr, each after ``prefix``.

    ``source`` is the text (``str`` or ``bytes``), or the path of a log file (its last
    :data:`TAIL_BYTES` are read). Nothing there gives ``(no stderr)``, indented like ``prefix``.
    """
    if isinstance(source, os.PathLike):
        source = _file_tail(Path(source))
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    kept = [line.rstrip() for line in (source or "").splitlines() if line.strip()][-lines:]
    if not kept:
        return prefix[: len(prefix) - len(prefix.lstrip())] + "(no stderr)"
    return "\n".join(prefix + line for line in kept)


def _file_tail(path: Path, size: int = TAIL_BYTES) -> bytes:
    """The last ``size`` bytes of ``path`` (empty if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - size))
            return fh.read()
    except FileNotFoundError:
        return b""


def read_text(fh: IO[bytes]) -> str:
    """All a child wrote to the binary file ``fh``, decoded as ``subprocess``' text mode does
    (UTF-8, universal newlines; undecodable bytes replaced)."""
    fh.seek(0)
    return io.TextIOWrapper(io.BytesIO(fh.read()), encoding="utf-8", errors="replace").read()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], grace: float = KILL_GRACE) -> None:
    """Stop what is left of the process groups of ``procs`` (each started by :func:`start`):
    SIGTERM to the groups whose leader still runs, up to ``grace`` seconds for them to end, then
    SIGKILL to every group (a finished child's leftover children included), and reap them."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        _signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in live:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.0, deadline - time.monotonic()))
    for p in procs:
        _signal_group(p.pid, signal.SIGKILL)
    for p in procs:
        p.wait()


def stop_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """:func:`stop_groups` for one child."""
    stop_groups([proc], grace)


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a process group of its own (so that it is stopped as a whole), stdin
    from ``/dev/null``, stdout and stderr into the given binary files (None: this process's).
    ``env`` None: this process's environment. A program that cannot be started raises
    :class:`SubprocessError` (``cannot run PROGRAM: why``)."""
    try:
        return subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    except OSError as exc:
        raise SubprocessError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Result:
    """How a child ended and what it wrote.

    ``returncode`` is None when it ran past its timeout (``timed_out``; it was stopped);
    negative: killed by that signal. ``stdout`` and ``stderr`` are the text it wrote, or, for
    output sent to a path, ``""`` (stdout) and the last :data:`TAIL_BYTES` (stderr).
    """

    argv: tuple[str, ...]
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    timeout: float

    @property
    def ok(self) -> bool:
        """It exited with status 0 within its timeout."""
        return self.returncode == 0

    @property
    def status(self) -> str:
        """How it ended, for a message: ``exited with status 3``, ``was killed by SIGSEGV``,
        ``took more than 30 s and was stopped``."""
        if self.timed_out or self.returncode is None:
            return f"took more than {self.timeout:g} s and was stopped"
        if self.returncode >= 0:
            return f"exited with status {self.returncode}"
        try:
            return f"was killed by {signal.Signals(-self.returncode).name}"
        except ValueError:  # a signal without a name (a real-time one)
            return f"was killed by signal {-self.returncode}"

    def tail(self, lines: int = TAIL_LINES, prefix: str = "") -> str:
        """:func:`stderr_tail` of its stderr."""
        return stderr_tail(self.stderr, lines, prefix)

    def check(self, what: str = "the child process") -> Result:
        """Itself if it exited with status 0; else :class:`SubprocessError`: ``WHAT STATUS; the
        end of its stderr:`` and the tail."""
        if not self.ok:
            raise SubprocessError(f"{what} {self.status}; the end of its stderr:\n{self.tail()}")
        return self


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: str | os.PathLike[str] | None = None,
    stderr: str | os.PathLike[str] | None = None,
    grace: float = KILL_GRACE,
) -> Result:
    """Run ``argv`` (see :func:`start`) until it ends or ``timeout`` seconds pass, then stop what
    is left of its process group (:func:`stop_group`: a finished child's children too).

    ``stdout``/``stderr``: a path to write that stream to (kept), or None to capture it. Never
    raises for how the child ended: look at the :class:`Result` (or call :meth:`Result.check`).
    An interrupt (``KeyboardInterrupt``) while waiting stops the group too.
    """
    with contextlib.ExitStack() as files:
        out, err = (
            files.enter_context(tempfile.TemporaryFile())
            if path is None
            else files.enter_context(Path(path).open("wb"))
            for path in (stdout, stderr)
        )
        began = time.monotonic()
        proc = start(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        try:
            returncode: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            stop_group(proc, grace)
        seconds = time.monotonic() - began
        out_text = read_text(out) if stdout is None else ""
        if stderr is None:
            err_text = read_text(err)
        else:
            err_text = _file_tail(Path(stderr)).decode("utf-8", errors="replace")
    return Result(tuple(argv), returncode, returncode is None, out_text, err_text, seconds, timeout)


@dataclass(frozen=True)
class Supervision:
    """How several children supervised together ended.

    ``returncodes[i]``: child ``i``'s exit status (negative: the signal that stopped it);
    ``seconds[i]``: when it ended, from the start of :func:`supervise` (a stopped one: when it
    was stopped); ``failed``: the first child that exited with a status other than 0, if any;
    ``hung``: the children still running when the timeout came.
    """

    returncodes: tuple[int, ...]
    seconds: tuple[float, ...]
    failed: int | None
    hung: tuple[int, ...]

    @property
    def ok(self) -> bool:
        """Every child exited with status 0 within the timeout."""
        return self.failed is None and not self.hung


def _wait_in_thread(index: int, proc: subprocess.Popen[bytes], ended: queue.Queue[int]) -> None:
    proc.wait()
    ended.put(index)


def supervise(
    procs: Sequence[subprocess.Popen[bytes]], timeout: float, *, grace: float = KILL_GRACE
) -> Supervision:
    """Wait for children started by :func:`start` until all end, one fails (exits with a status
    other than 0) or ``timeout`` seconds pass; then stop what is left of every process group
    (:func:`stop_groups`). Waits without polling: a thread per child waits for its end."""
    began = time.monotonic()
    ended: queue.Queue[int] = queue.Queue()
    for i, p in enumerate(procs):
        threading.Thread(target=_wait_in_thread, args=(i, p, ended), daemon=True).start()
    when: dict[int, float] = {}
    failed: int | None = None
    try:
        while len(when) < len(procs) and failed is None:
            try:
                i = ended.get(timeout=max(0.0, began + timeout - time.monotonic()))
            except queue.Empty:
                break
            when[i] = time.monotonic() - began
            if procs[i].returncode != 0:
                failed = i
    finally:
        stopped = time.monotonic() - began
        stop_groups(procs, grace)
    hung = () if failed is not None else tuple(i for i in range(len(procs)) if i not in when)
    return Supervision(
        returncodes=tuple(int(p.returncode) for p in procs),
        seconds=tuple(when.get(i, stopped) for i in range(len(procs))),
        failed=failed,
        hung=hung,
    )
