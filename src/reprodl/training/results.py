"""What a training run returns: its per-step record and an exact accuracy count.

Plain data, no TensorFlow: the NumPy network of chapter 5 returns the same types.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
from dataclasses import dataclass, field

import numpy as np

from reprodl.record.state import VariableInfo


@dataclass
class TrainingRecord:
    """What one training run did: per-step losses (float32) and weight digests at chosen steps.

    ``digests`` maps a step to the per-variable digests of the model's state after it (every
    ``digest_every`` steps, at checkpoints and at the last step); ``initial_digests`` and
    ``final_digests`` are the state before the first and after the last step. With ``resume`` the
    run starts at ``start_step`` and ``losses`` covers steps ``start_step + 1 ..``.
    """

    losses: np.ndarray
    digests: dict[int, dict[str, str]] = field(default_factory=dict)
    final_digest: str = ""
    seconds: float = 0.0
    first_step_seconds: float = 0.0  # includes tracing the compiled step
    start_step: int = 0
    initial_digests: dict[str, str] = field(default_factory=dict)
    final_digests: dict[str, str] = field(default_factory=dict)
    variables: list[VariableInfo] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        """Throughput after the first step (which traces and compiles the step function)."""
        if self.steps < 2:
            return float("nan")
        return (self.steps - 1) / (self.seconds - self.first_step_seconds)

    @property
    def steps(self) -> int:
        """How many steps this record covers."""
        return len(self.losses)

    @property
    def final_loss(self) -> float:
        """The loss of the last step."""
        return float(self.losses[-1])


@dataclass(frozen=True)
class Evaluation:
    """Accuracy as an exact count, so printing it is deterministic."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """The share of correct predictions."""
        return self.correct / self.total

    def __str__(self) -> str:
        return f"{self.accuracy:.2%} ({self.correct}/{self.total})"
