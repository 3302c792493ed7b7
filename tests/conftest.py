"""Shared fixtures and helpers for the unit tests (the environment is set in ../conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import synthetic_digits

from reprodl.data import Split


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A folder with the real MNIST files (``$REPRODL_DATA`` or ``../shared/data/mnist``)."""
    folder = os.environ.get("REPRODL_DATA")
    if not folder:
        pytest.skip("no MNIST folder: set REPRODL_DATA")
    return Path(folder)


@pytest.fixture(scope="session")
def digits() -> Split:
    """200 synthetic digit-like images (see :func:`support.synthetic_digits`)."""
    return synthetic_digits()
