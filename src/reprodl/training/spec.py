"""``RunSpec``: everything that defines one run on MNIST, validated, and what it builds."""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reprodl.batches import IndexStream, make_stream
from reprodl.errors import UsageError
from reprodl.training import defaults as _defaults
from reprodl.training.defaults import DEFAULTS, OPTIMIZERS, ORDERS

#: Learning-rate schedules: constant, or a cosine decay from the learning rate to zero
#: (defined in :mod:`reprodl.training.defaults`).
SCHEDULES = _defaults.SCHEDULES


def make_optimizer(name: str, learning_rate: float, *, cosine_steps: int | None = None) -> Any:
    """A Keras optimizer by name (``sgd`` or ``adam``).

    With ``cosine_steps`` the rate decays from ``learning_rate`` to zero over that many steps,
    ``lr_t = lr * (1 + cos(pi * t / T)) / 2``; the step count lives in the optimizer's
    ``iteration`` variable, so a resumed run continues the same schedule.
    """
    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}; choose sgd or adam")
    import keras

    rate = learning_rate
    if cosine_steps is not None:
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=cosine_steps)
    if name == "sgd":
        return keras.optimizers.SGD(rate)
    return keras.optimizers.Adam(rate)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one run of :func:`~reprodl.training.train` on MNIST.

    ``None`` means the model's default (:data:`reprodl.models.DEFAULTS`; for
    ``intra_op_threads`` the pinned count). ``dropout_seed="entropy"`` seeds the dropout masks
    from ``os.urandom``: a staged culprit, unseeded in the only sense that survives
    ``keras.utils.set_random_seed``. ``intra_op_threads`` and ``op_determinism`` are
    process-global: a run that needs other values than the current process has must run in a
    process of its own. Invalid values raise :class:`~reprodl.errors.UsageError`.
    """

    model: str
    steps: int
    seed: int = 0
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    dropout: float | None = None
    dropout_seed: int | str | None = None
    order: str = "seeded"
    intra_op_threads: int | None = None
    op_determinism: bool = True
    schedule: str | None = None

    def __post_init__(self) -> None:
        for problem in self._problems():
            raise UsageError(problem)

    def _problems(self) -> list[str]:
        found = []
        if self.model not in DEFAULTS:
            found.append(f"unknown model {self.model!r}; choose one of {', '.join(DEFAULTS)}")
        if not _is_int(self.steps) or self.steps <= 0:
            found.append(f"steps must be a positive integer, got {self.steps!r}")
        if not _is_int(self.seed) or self.seed < 0:
            found.append(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("batch_size", "intra_op_threads"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value <= 0):
                found.append(f"{name} must be a positive integer, got {value!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            found.append(f"unknown optimizer {self.optimizer!r}; choose sgd or adam")
        rate = self.learning_rate
        if rate is not None and (
            not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0
        ):
            found.append(f"learning_rate must be a positive number, got {rate!r}")
        if self.dropout is not None and self.model == "softmax":
            found.append("the softmax model has no dropout layer")
        elif self.dropout is not None and not 0 <= self.dropout < 1:
            found.append(f"dropout must be in [0, 1), got {self.dropout!r}")
        seed = self.dropout_seed
        if isinstance(seed, str) and seed != "entropy" or _is_int(seed) and seed < 0:
            found.append(f"dropout_seed must be an int >= 0 or 'entropy', got {seed!r}")
        if self.order not in ORDERS:
            found.append(f"unknown order {self.order!r}; choose one of {', '.join(ORDERS)}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            found.append(f"unknown schedule {self.schedule!r}; choose {' or '.join(SCHEDULES)}")
        if not isinstance(self.op_determinism, bool):
            found.append(f"op_determinism must be True or False, got {self.op_determinism!r}")
        return found

    def resolved(self) -> RunSpec:
        """The same spec with every default filled in (only ``None`` means "default")."""
        from reprodl import runtime

        defaults = DEFAULTS[self.model]

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        return dataclasses.replace(
            self,
            batch_size=pick(self.batch_size, defaults.batch_size),
            optimizer=pick(self.optimizer, defaults.optimizer),
            learning_rate=pick(self.learning_rate, defaults.learning_rate),
            intra_op_threads=pick(self.intra_op_threads, runtime.INTRA_OP_THREADS),
            schedule=pick(self.schedule, defaults.schedule),
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values (what a run record stores)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunSpec:
        """The spec a :meth:`to_dict` wrote; unknown or missing keys raise ``UsageError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise UsageError(f"unknown run settings: {', '.join(sorted(unknown))}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise UsageError(str(exc)) from None


def build(spec: RunSpec, num_examples: int) -> tuple[Any, Any, IndexStream]:
    """The model, optimizer and batch stream of ``spec`` (defaults filled in)."""
    from reprodl import models

    spec = spec.resolved()
    kwargs: dict[str, Any] = {}
    if spec.dropout is not None:
        kwargs["dropout"] = spec.dropout
    if spec.dropout_seed == "entropy":
        kwargs["dropout_seed"] = int.from_bytes(os.urandom(8), "little")
    elif spec.dropout_seed is not None:
        kwargs["dropout_seed"] = spec.dropout_seed
    model = models.build(spec.model, spec.seed, **kwargs)
    return model, optimizer_for(spec), make_stream(num_examples, spec.order, spec.seed)


def optimizer_for(spec: RunSpec) -> Any:
    """A fresh optimizer of ``spec`` (defaults filled in): its learning rate, with the cosine
    schedule decaying over ``spec.steps``."""
    spec = spec.resolved()
    cosine_steps = spec.steps if spec.schedule == "cosine" else None
    return make_optimizer(spec.optimizer, spec.learning_rate, cosine_steps=cosine_steps)


def with_epochs(spec: RunSpec, epochs: int | None, train_size: int) -> RunSpec:
    """``spec`` resolved, with ``epochs`` (if given) turned into steps over ``train_size``
    examples."""
    from reprodl.batches import steps_per_epoch

    spec = spec.resolved()
    if not epochs:
        return spec
    assert spec.batch_size is not None  # resolved
    return dataclasses.replace(spec, steps=epochs * steps_per_epoch(train_size, spec.batch_size))
