"""Shared fixtures and helpers for the unit tests (the environment is set in ../conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A folder with the real MNIST files (``$REPRODL_DATA`` or ``../shared/data/mnist``)."""
    folder = os.environ.get("REPRODL_DATA")
    if not folder:
        pytest.skip("no MNIST folder: set REPRODL_DATA")
    return Path(folder)


def run_python(
    *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` in a fresh process: this environment, plus ``env``, minus ``unset``."""
    full_env = {**os.environ, **(env or {})}
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
