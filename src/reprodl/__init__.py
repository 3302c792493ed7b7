"""reprodl: bit-exact reproducible training on MNIST with TensorFlow 2 / Keras.

Two kinds of user, two groups of names, all imported on first use:

- **Your own training** (the toolkit; importing it never pins and never changes your process):
  :class:`RecordRun` (a Keras callback that records a ``fit``), :func:`load_record`,
  :func:`compare` (where two records part) and :func:`check` (run a training command several
  times, perturbed, and say whether and why the runs differ).
- **The book's engine**: :func:`setup` pins the process (thread counts, oneDNN ISA cap, BLAS
  kernel) and seeds every generator, so ``import reprodl`` and ``reprodl.setup(seed)`` belong
  before ``import numpy`` and ``import tensorflow``; :func:`environment_report` and
  :func:`environment_line` describe the machine and the settings in force.

``import reprodl`` alone changes nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name and the module it lives in; loaded on first use.
_LAZY: dict[str, tuple[str, str]] = {
    "RecordRun": ("reprodl.keras", "RecordRun"),
    "load_record": ("reprodl.record.runrecord", "load"),
    "compare": ("reprodl.record.compare", "compare"),
    "setup": ("reprodl.runtime", "setup"),
    "environment_line": ("reprodl.runtime", "environment_line"),
    "environment_report": ("reprodl.runtime", "environment_report"),
}

__all__ = [
    "RecordRun",
    "__version__",
    "check",
    "compare",
    "environment_line",
    "environment_report",
    "load_record",
    "runtime",
    "setup",
]

if TYPE_CHECKING:
    from reprodl import check, runtime
    from reprodl.keras import RecordRun
    from reprodl.record.compare import compare
    from reprodl.record.runrecord import load as load_record
    from reprodl.runtime import environment_line, environment_report, setup


def __getattr__(name: str) -> Any:
    """The public names, imported (the engine's pinning the process) on first use.

    ``reprodl.check`` is the module :mod:`reprodl.check`, which can be called as its ``run``.
    """
    if name in ("runtime", "check"):
        return importlib.import_module(f"reprodl.{name}")
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'reprodl' has no attribute {name!r}")
