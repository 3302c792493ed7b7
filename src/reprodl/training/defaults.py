"""The names and defaults a run can ask for: models, optimizers, schedules, batch orders.

Plain constants, importable without pinning the process (nothing here imports NumPy, TensorFlow
or :mod:`reprodl.runtime`), so that the command line can offer them as choices and help texts.
:mod:`reprodl.models`, :mod:`reprodl.batches` and :mod:`reprodl.training.spec` re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULTS", "MODELS", "OPTIMIZERS", "ORDERS", "SCHEDULES", "ModelDefaults"]

#: The book's models, by name.
MODELS = ("softmax", "mlp", "cnn")

#: Optimizers a run can name.
OPTIMIZERS = ("sgd", "adam")

#: Learning-rate schedules: constant, or a cosine decay from the learning rate to zero.
SCHEDULES = ("constant", "cosine")

#: Batch orders :func:`reprodl.batches.make_stream` (and so a ``RunSpec``) can ask for.
ORDERS = ("seeded", "global", "global-after-first")


@dataclass(frozen=True)
class ModelDefaults:
    """How the book trains a model unless told otherwise."""

    optimizer: str
    learning_rate: float
    batch_size: int
    schedule: str  # "constant", or "cosine": decay from the rate to zero over the run


#: The one registry of per-model defaults; ``RunSpec``, the CLI help and the builders read it.
#: The deep CNN decays its rate along a cosine: 99.2% in two epochs (chapter 6).
DEFAULTS: dict[str, ModelDefaults] = {
    "softmax": ModelDefaults("sgd", 0.5, 100, "constant"),
    "mlp": ModelDefaults("adam", 1e-3, 100, "constant"),
    "cnn": ModelDefaults("adam", 2e-3, 100, "cosine"),
}
