"""The errors ``reprodl`` raises on bad input: one base class, so callers (and the CLI) can catch
exactly these and let a bug surface with its traceback.

Each also derives from the built-in error it refines (``ValueError``, ``OSError``,
``RuntimeError``), so code written against the built-ins keeps working.
"""

from __future__ import annotations


class ReprodlError(Exception):
    """Base class: a problem with the input or the environment, explained in the message."""


class UsageError(ReprodlError, ValueError):
    """An argument or setting that is not valid (e.g. a negative step count)."""


class MnistError(ReprodlError, ValueError):
    """An MNIST file is missing, corrupt, truncated or not the expected content."""


class DownloadError(ReprodlError, OSError):
    """No mirror could deliver a verified copy of a file."""


class RecordError(ReprodlError, ValueError):
    """A record is corrupt or invalid, or two records cannot be compared."""


class CheckpointError(ReprodlError, ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model it is restored into."""


class SettingsError(ReprodlError, RuntimeError):
    """This process cannot have the settings a run needs (they are fixed once TensorFlow runs)."""


class CrossCheckError(ReprodlError, RuntimeError):
    """A battery run failed, timed out, or a cross-CPU record is unusable."""


class SubprocessError(ReprodlError, RuntimeError):
    """A child process (a fresh interpreter, a worker) failed, hung or wrote nothing usable."""
