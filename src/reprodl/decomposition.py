"""A recorded variance decomposition: many runs, one source of randomness varied at a time.

``python -m reprodl decompose`` trains one model many times under the conditions of
:func:`reprodl.seeds.seeds_for` (vary only ``init``, only ``order``, only ``dropout``, or
``all``) and writes every run to a JSON record after each run, so a run of an hour loses nothing
when it is interrupted and ``--resume`` continues it. Runs go seed by seed (all conditions of
seed 1, then of seed 2 ...), so a record cut short still has the same seeds in every condition.
Chapter 10 quotes such a record for the deep CNN, which does not fit its time budget.

Format ``reprodl.decomposition``, version 1 (a JSON object)::

    {
      "format": "reprodl.decomposition",
      "version": 1,
      "meta": {
        "spec": {"model": "cnn", "steps": 550, "batch_size": 100, "optimizer": "adam",
                 "learning_rate": 0.002, "schedule": "cosine", "dropout": null, "base": 0},
        "conditions": ["init", "order", "dropout", "all"],
        "seeds": [1, 2, ...],          # the planned seeds (runs may still be missing)
        "command": [...] | null,       # the command line of the first start
        "settings": {...},             # reprodl.runtime.pinned_settings()
        "versions": {...},             # reprodl.runtime.versions()
        "cpu": {"model": "...", "flags": [...], "logical_cpus": 2}
      },
      "runs": [{"condition": "init", "seed": 1,
                "seeds": {"init": 1, "order": 0, "dropout": 209652396},
                "correct": 9903, "total": 10000,     # on the 10,000 test images
                "final_loss": 0.0123,                # the last step's loss; null if not finite
                "initial_digest": "<64 hex>",        # every state variable before training
                "final_digest": "<64 hex>",          # the final weights' fingerprint
                "seconds": 98.7}, ...]
    }

:func:`load` checks the structure against the JSON Schema shipped with the package
(``reprodl/schemas/decomposition.schema.json``) and the meaning in code (known conditions, planned
runs, each run's seeds those of its condition and seed, ``correct <= total``, no run twice), and
raises :class:`reprodl.errors.RecordError` naming the file and the field. Needs NumPy only, except
:func:`run`.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from reprodl import _formats
from reprodl.env import report
from reprodl.errors import RecordError, UsageError
from reprodl.experiments import run_in_condition
from reprodl.seeds import CONDITIONS, Seeds, seeds_for

if TYPE_CHECKING:
    from reprodl.data import Mnist
    from reprodl.training import RunSpec, SeedRunner

FORMAT = "reprodl.decomposition"
VERSION = 1
#: What a resumed record must share with the process that continues it.
_MUST_MATCH = ("spec", "settings", "versions", "cpu")
#: The name of the record's JSON Schema in :mod:`reprodl.schemas`.
SCHEMA = "decomposition"
#: The file format (header, versions read, schema): :mod:`reprodl._formats`.
FILE_FORMAT = _formats.Format(FORMAT, "decomposition record", VERSION, (VERSION,), SCHEMA)


@dataclass(frozen=True)
class RecordedRun:
    """One run of a decomposition: its condition, seeds, test result and fingerprints."""

    condition: str
    seed: int
    seeds: Seeds
    correct: int
    total: int
    final_loss: float | None  # None if the run diverged (NaN or infinite loss)
    initial_digest: str
    final_digest: str
    seconds: float

    @property
    def accuracy(self) -> float:
        """Test accuracy (a fraction)."""
        return self.correct / self.total

    def to_json(self) -> dict[str, Any]:
        """The run as a JSON object (its seeds as a nested object), as the record stores it."""
        return asdict(self)  # the Seeds too, as a nested dict


@dataclass
class Decomposition:
    """A decomposition record: what was run (``meta``) and the runs done so far."""

    meta: dict[str, Any]
    runs: list[RecordedRun] = field(default_factory=list)

    @property
    def conditions(self) -> list[str]:
        return list(self.meta["conditions"])

    @property
    def seeds(self) -> list[int]:
        """The planned seeds."""
        return list(self.meta["seeds"])

    def find(self, condition: str, seed: int) -> RecordedRun | None:
        """The run of ``condition`` and ``seed``, or ``None`` if it has not run yet."""
        return next((r for r in self.runs if (r.condition, r.seed) == (condition, seed)), None)

    def complete_seeds(self) -> list[int]:
        """The planned seeds that have a run in every condition, in planned order."""
        return [s for s in self.seeds if all(self.find(c, s) for c in self.conditions)]

    @property
    def complete(self) -> bool:
        return self.complete_seeds() == self.seeds

    def by_condition(self) -> dict[str, list[RecordedRun]]:
        """Each condition's runs over :meth:`complete_seeds` (the same seeds in every row)."""
        seeds = self.complete_seeds()
        return {c: [self.find(c, s) for s in seeds] for c in self.conditions}  # type: ignore[misc]

    def scores(self) -> dict[str, np.ndarray]:
        """Test accuracy (fractions, float64) per condition over :meth:`complete_seeds`."""
        return {
            c: np.array([r.accuracy for r in runs], dtype=np.float64)
            for c, runs in self.by_condition().items()
        }

    def distinct(self, key: Callable[[RecordedRun], Any]) -> dict[str, int]:
        """How many different ``key(run)`` each condition has (over :meth:`complete_seeds`)."""
        return {c: len({key(r) for r in runs}) for c, runs in self.by_condition().items()}

    def seconds(self) -> float:
        """Training and evaluation time of all recorded runs together."""
        return float(sum(r.seconds for r in self.runs))


def plan(seeds: Sequence[int], conditions: Sequence[str]) -> list[tuple[str, int]]:
    """The order of the runs: seed by seed, every condition of a seed before the next seed."""
    return [(c, s) for s in seeds for c in conditions]


def new(
    spec: Mapping[str, Any],
    seeds: Sequence[int],
    conditions: Sequence[str] = CONDITIONS,
    *,
    command: Sequence[str] | None = None,
) -> Decomposition:
    """An empty record for the runs of ``spec`` (and this process's settings and machine).

    Raises :class:`UsageError` for an unknown or repeated condition or a bad list of seeds.
    """
    from reprodl import runtime

    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise UsageError(f"unknown condition {unknown[0]!r}; choose from {', '.join(CONDITIONS)}")
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise UsageError("seeds must be distinct non-negative ints, at least one")
    if len(set(conditions)) != len(conditions) or not conditions:
        raise UsageError("conditions must be distinct, at least one")
    meta = {
        "spec": dict(spec),
        "conditions": list(conditions),
        "seeds": [int(s) for s in seeds],
        "command": None if command is None else list(command),
        "settings": runtime.pinned_settings(),
        "versions": runtime.versions(),
        "cpu": {
            "model": report.cpu_model(),
            "flags": report.cpu_flags(),
            "logical_cpus": os.cpu_count() or 0,
        },
    }
    return Decomposition(meta=json.loads(json.dumps(meta)))  # JSON types only, as load gives


def merge_plan(old: Decomposition, fresh: Decomposition) -> Decomposition:
    """Continue ``old`` with the seeds and conditions of ``fresh``, if they ran the same way.

    Raises :class:`RecordError` when the spec, pinned settings, versions or CPU differ: runs made
    differently must not be pooled. The planned seeds and conditions become the union of both.
    """
    for key in _MUST_MATCH:
        if old.meta[key] != fresh.meta[key]:
            raise RecordError(
                f"cannot resume: the record's {key} does not match this run's "
                f"({old.meta[key]!r} != {fresh.meta[key]!r}); write a new record"
            )
    meta = dict(old.meta)
    meta["seeds"] = old.seeds + [s for s in fresh.seeds if s not in old.seeds]
    meta["conditions"] = old.conditions + [c for c in fresh.conditions if c not in old.conditions]
    return Decomposition(meta=meta, runs=list(old.runs))


#: The training settings a decomposition record stores (``meta.spec``), besides the base seed.
SPEC_KEYS = ("model", "steps", "batch_size", "optimizer", "learning_rate", "schedule", "dropout")


def record_spec(spec: RunSpec, base: int) -> dict[str, Any]:
    """The training settings a record stores: the resolved ``spec``'s, less what each run varies
    (its seeds) or the runs cannot change, plus the ``base`` seed."""
    values = spec.to_dict()
    return {**{key: values[key] for key in SPEC_KEYS}, "base": base}


def open_plan(
    spec: Mapping[str, Any],
    seeds: Sequence[int],
    conditions: Sequence[str],
    path: str | os.PathLike[str],
    *,
    command: Sequence[str] | None = None,
) -> tuple[Decomposition, bool]:
    """The record to fill and whether it resumes one: a new plan, merged into the record at
    ``path`` when there is one (:class:`RecordError` if they did not run the same way)."""
    record = new(spec, seeds, conditions, command=command)
    if not Path(path).exists():
        return record, False
    return merge_plan(load(path), record), True


def runner_for(spec: RunSpec, mnist: Mnist) -> SeedRunner:
    """The runner that trains ``spec`` once per set of seeds and scores it on the test split."""
    from reprodl import training

    kwargs = {} if spec.dropout is None else {"dropout": spec.dropout}
    return training.SeedRunner(
        spec.model,
        mnist.train,
        {"test": mnist.test},
        steps=spec.steps,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        schedule=spec.schedule,
        **kwargs,
    )


def run(
    runner: Callable[[Seeds], Any],
    record: Decomposition,
    *,
    path: str | os.PathLike[str] | None = None,
    on_run: Callable[[RecordedRun], None] | None = None,
) -> Decomposition:
    """Do every planned run that ``record`` lacks with ``runner``.

    ``runner`` is typically a :class:`reprodl.training.SeedRunner`.

    Each run goes through :func:`reprodl.experiments.run_in_condition`, as in
    :func:`reprodl.experiments.decompose`. With ``path`` the record is saved (atomically) after
    every run.
    """
    base = int(record.meta["spec"]["base"])
    for condition, seed in plan(record.seeds, record.conditions):
        if record.find(condition, seed):
            continue
        start = time.perf_counter()
        seeds, result = run_in_condition(runner, condition, seed, base)
        test = result.evaluations["test"]
        done = RecordedRun(
            condition=condition,
            seed=seed,
            seeds=seeds,
            correct=int(test.correct),
            total=int(test.total),
            final_loss=_finite_or_none(float(result.losses[-1])),
            initial_digest=result.initial_digest,
            final_digest=result.final_digest,
            seconds=round(time.perf_counter() - start, 3),
        )
        record.runs.append(done)
        if path is not None:
            save(record, path)
        if on_run:
            on_run(done)
    return record


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def to_json(record: Decomposition) -> dict[str, Any]:
    """The JSON object of ``record`` (the file format)."""
    return {
        **FILE_FORMAT.header(),
        "meta": record.meta,
        "runs": [r.to_json() for r in record.runs],
    }


def save(record: Decomposition, path: str | os.PathLike[str]) -> Path:
    """Validate ``record`` and write it to ``path`` atomically; returns the path."""
    return _formats.save(path, to_json(record), from_json)


def load(path: str | os.PathLike[str]) -> Decomposition:
    """Read and check a decomposition record; :class:`RecordError` names what is wrong."""
    return _formats.load(path, FILE_FORMAT, from_json)


def from_json(payload: Any, where: str = "<memory>") -> Decomposition:
    """Check a parsed record (structure against the schema, then meaning) and return it as a
    :class:`Decomposition`; :class:`RecordError` says ``WHERE: what is wrong``."""

    def fail(problem: str) -> NoReturn:
        raise RecordError(f"{where}: {problem}")

    FILE_FORMAT.check_header(payload, where)
    FILE_FORMAT.check_structure(payload, where)
    meta = payload["meta"]
    unknown = [c for c in meta["conditions"] if c not in CONDITIONS]
    if unknown:
        fail(
            f"field 'meta.conditions' names {unknown[0]!r}; the conditions are "
            f"{', '.join(CONDITIONS)}"
        )
    record = Decomposition(meta=meta)
    base = meta["spec"]["base"]
    for i, r in enumerate(payload["runs"]):
        at = f"runs[{i}]"
        run = RecordedRun(**{**r, "seeds": Seeds(**r["seeds"])})
        if run.condition not in record.conditions or run.seed not in record.seeds:
            fail(f"{at}: condition {run.condition!r} / seed {run.seed!r} not planned")
        if run.seeds != seeds_for(run.condition, run.seed, base):
            fail(f"{at}: its seeds are not those of {run.condition} {run.seed}")
        if run.correct > run.total:
            fail(f"{at}: correct ({run.correct}) is more than total ({run.total})")
        if record.find(run.condition, run.seed):
            fail(f"{at}: {run.condition} {run.seed} is recorded twice")
        record.runs.append(run)
    return record
