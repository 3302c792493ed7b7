"""Recorded measurements the book quotes, shipped with the package.

A chapter opened outside the repository (on Colab, or downloaded) finds them here, through
:func:`path` and :func:`load`, instead of in a folder beside the notebooks. The benchmarks in
``benchmarks/`` write their records into this folder, and the tests re-check each one against
what the code does now (``tests/test_full_run.py``, ``tests/test_crosscheck.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reprodl._io import read_json
from reprodl.errors import RecordError

#: The folder of the records (inside the installed package).
#:
#: :meta hide-value:
FOLDER = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The path of the recorded file or folder ``name`` (e.g. ``"cnn_full_run.json"``)."""
    found = FOLDER / name
    if not found.exists():
        known = ", ".join(sorted(p.name for p in FOLDER.iterdir() if not p.name.startswith("_")))
        raise RecordError(f"no recorded result {name!r}; the package has: {known}")
    return found


def load(name: str) -> Any:
    """The JSON record ``name``, parsed (a :class:`~reprodl.errors.RecordError` says why not)."""
    return read_json(path(name))
