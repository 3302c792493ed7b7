"""Run a snippet in a fresh Python process: the only way to show settings that act at start-up.

``PYTHONHASHSEED``, ``OPENBLAS_CORETYPE`` and TensorFlow's thread counts take effect only when the
interpreter, NumPy or TensorFlow starts, so a notebook cannot demonstrate them in its own kernel.
:func:`run_snippet` runs code in a new interpreter with a chosen environment and returns what it
printed; :func:`outputs_agree` says whether several runs printed the same, so a chapter can print
that verdict instead of values that change from run to run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The category name :func:`reprodl.runtime.setup` warns with; :func:`warning_lines` looks for it.
WARNING_CATEGORY = "ReproducibilityWarning"


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


def snippet_env(env: Mapping[str, str] | None = None, unset: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment, plus ``env``, minus the variables named in ``unset``."""
    full = {**os.environ, **(env or {})}
    for name in unset:
        full.pop(name, None)
    return full


def run_snippet(
    code: str,
    *,
    env: Mapping[str, str] | None = None,
    unset: Sequence[str] = (),
    check: bool = True,
    timeout: float = 300,
) -> SnippetResult:
    """Run ``code`` (dedented) with ``python -c`` in a new interpreter and return its output.

    The child inherits this process's environment, changed by ``env`` and ``unset``. With
    ``check=True`` a non-zero exit raises :class:`RuntimeError` carrying the child's stderr.
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=snippet_env(env, unset),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = SnippetResult(proc.stdout, proc.stderr, proc.returncode)
    if check and proc.returncode != 0:
        raise RuntimeError(f"snippet exited with status {proc.returncode}:\n{proc.stderr}")
    return result


def run_many(code: str, times: int, **kwargs) -> list[SnippetResult]:
    """Run the same snippet ``times`` times, each in its own fresh interpreter."""
    if times <= 0:
        raise ValueError(f"times must be positive, got {times}")
    return [run_snippet(code, **kwargs) for _ in range(times)]


def outputs_agree(results: Sequence[SnippetResult]) -> bool:
    """True when every run printed exactly the same standard output."""
    if not results:
        raise ValueError("no results to compare")
    return all(r.stdout == results[0].stdout for r in results)


def warning_lines(stderr: str, category: str = WARNING_CATEGORY) -> list[str]:
    """The messages of the warnings of ``category`` in a child's stderr, without their location.

    ``path:line: Category: message`` becomes ``Category: message``, so the printed text does not
    depend on where the code lives.
    """
    marker = f"{category}: "
    return [line[line.index(marker) :].rstrip() for line in stderr.splitlines() if marker in line]
