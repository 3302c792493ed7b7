"""Run records: one JSON file per training run, enough to find where two runs diverge.

A run record is written by ``python -m reprodl train ... --record FILE``, :func:`save_run` or
:func:`reprodl.divergence.record` (the package's own loop), or by the Keras callback
:class:`reprodl.keras.RecordRun` during any ``model.fit``; it is read by :func:`load`, which raises
:class:`RecordError` (naming the file and the field) for anything that is not a valid record. The
structure (fields, types, ranges) is the JSON Schema ``reprodl/schemas/run_record.schema.json``,
shipped with the package; what the fields mean (below) is checked here. Files are written
atomically (a temp file in the same folder, then a rename). This module needs NumPy only, not
TensorFlow, and importing it changes nothing in the process (it does not pin).

Format ``reprodl.run-record``, version 2 (a JSON object)::

    {
      "format": "reprodl.run-record",
      "version": 2,
      "meta": {
        "model": "mlp",            # the model's name (a Keras callback: ``model.name``)
        "seed": 0 | null, "batch_size": 100 | null,   # null: a Keras callback cannot know them
        "steps": 200,
        "run": {...} | null,       # the RunSpec, everything needed to replay the run; null for
                                   # a Keras callback's record (it cannot be replayed); a
                                   # replicated run adds replicas, workers, feed, dropout_masks
        "command": [...] | null,   # the command line (a Keras callback: the process's sys.argv)
        "settings": {...},         # the pinned settings during the run (environment, threads)
        "versions": {...},         # python, numpy, tensorflow, keras, reprodl
        "digest_every": 50,        # 0: digests before the first and after the last step only
        "checkpoints": {"dir": "a.ckpt", "every": 50} | null,  # dir relative to this file
        "source": "reprodl" | "keras",          # the package's loop, or a Keras callback
        "loss": "step" | "keras logs",          # what the losses are (below)
        "interrupted": null | "SIGTERM"         # why the run stopped early: the record is partial
      },
      "variables": [{"name": "mlp/hidden_1/kernel", "shape": [784, 128],
                     "dtype": "float32", "kind": "weight"}, ...],
      "losses": [2.3025851249694824, ...],
      "digests": {"0": {"mlp/hidden_1/kernel": "<64 hex digits>", ...}, "50": {...}, ...},
      "final_digest": "<64 hex digits>"
    }

- ``variables`` lists the run's state in order, each name once: weights (``kind`` ``"weight"``),
  random generator states such as a Dropout layer's ``seed_generator_state`` (``"rng"``) and, in a
  Keras callback's records, the optimizer's variables: its iteration counter, learning rate and
  slots such as Adam's moments (``"optimizer"``).
- ``losses[i]`` is the loss of step ``i + 1``: the exact float32 value written as a JSON number
  (its float64 value, which reads back exactly); ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` for
  non-finite losses. There are ``meta.steps`` of them. With ``meta.loss`` ``"step"`` it is that
  step's own loss (the one its gradient was taken of); with ``"keras logs"`` it is what Keras
  passed in ``logs["loss"]`` after the step, which for Keras's own ``train_step`` is the running
  mean of the epoch's step losses so far, weighted by batch size (a Keras callback records this
  only where it cannot see the step's own loss).
- ``digests`` maps a step (as a string; ``"0"`` is the state before training) to the SHA-256 of
  each declared variable, in their order, after that step
  (:func:`reprodl.record.fingerprint.array_digest`). Steps ``0`` and ``meta.steps`` are always
  present, and so is every checkpoint step; no step is after ``meta.steps``.
- ``final_digest`` is the fingerprint of the final weights (:func:`reprodl.record.fingerprint.
  weights_digest`): it must equal the combination of the weight digests of the last step.
- A data-parallel run (``train --replicas K`` or ``--workers K``, :mod:`reprodl.distributed`)
  stores its RunSpec plus ``replicas`` (all of them), ``workers`` (processes), ``feed`` and
  ``dropout_masks`` in ``meta.run`` (the other meta fields are a single-device run's), so
  ``compare`` lists them as meta differences; its digests are replica 0's copies. Such a record
  cannot be replayed (replay trains on one device).
- ``meta.interrupted`` is null for a run that ended normally; otherwise the record was written when
  the run was stopped (a signal, an exception) and covers the steps up to the last state it could
  vouch for.

Version 1 files (written before the Keras callback existed) still load: they are package-loop
records, read as version 2 with ``source`` ``"reprodl"``, ``loss`` ``"step"`` and ``interrupted``
null. A :class:`RunRecord` built in code without those three fields gets the same defaults.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from reprodl import _formats
from reprodl.errors import RecordError, UsageError
from reprodl.record import fingerprint

if TYPE_CHECKING:
    from reprodl.training import RunSpec, TrainingRecord

__all__ = [
    "FORMAT",
    "LOSS_KINDS",
    "READS",
    "SOURCES",
    "VERSION",
    "RecordError",
    "RunRecord",
    "check_comparable",
    "from_json",
    "from_training",
    "load",
    "run_meta",
    "save",
    "save_run",
    "steps_text",
    "to_json",
]

FORMAT = "reprodl.run-record"
VERSION = 2
#: The versions :func:`load` reads (older ones are converted in memory).
READS = (1, 2)
#: The name of the record's JSON Schema in :mod:`reprodl.schemas`.
SCHEMA = "run_record"
#: The file format (header, versions read, schema): :mod:`reprodl._formats`.
FILE_FORMAT = _formats.Format(FORMAT, "run record", VERSION, READS, SCHEMA)
#: Who wrote a record (``meta.source``): the package's loop, or :class:`reprodl.keras.RecordRun`.
SOURCES = ("reprodl", "keras")
#: What ``losses`` are (``meta.loss``): each step's own loss, or what Keras logged after it.
LOSS_KINDS = ("step", "keras logs")
#: The keys a data-parallel run adds to ``meta.run`` (besides the RunSpec's fields).
REPLICA_KEYS = ("replicas", "workers", "feed", "dropout_masks")
#: The meta fields version 2 added, with their values for a version-1 (package-loop) record.
_V1_META = {"source": "reprodl", "loss": "step", "interrupted": None}
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass
class RunRecord:
    """One run, as stored in a record file (see the module docstring for the format)."""

    meta: dict[str, Any]
    variables: list[dict[str, Any]]
    losses: np.ndarray
    digests: dict[int, dict[str, str]]
    final_digest: str
    source: str = field(default="", compare=False)  # the file it was read from or written to

    def __post_init__(self) -> None:
        self.meta = _upgrade_meta(self.meta)

    @property
    def steps(self) -> int:
        """How many steps the run trained (one loss each)."""
        return len(self.losses)

    @property
    def variable_names(self) -> list[str]:
        """The names of the model's state variables, in the model's order."""
        return [v["name"] for v in self.variables]

    @property
    def name(self) -> str:
        """How reports call this record: its file, or ``<memory>``."""
        return self.source or "<memory>"

    @property
    def replayable(self) -> bool:
        """Whether the run can be replayed (the package's single-device loop stored its RunSpec
        in meta.run)."""
        return self.replay_problem is None

    @property
    def replicas(self) -> int | None:
        """How many replicas trained the run (``meta.run.replicas``); None: a single device."""
        run = self.meta.get("run")
        return run.get("replicas") if isinstance(run, dict) else None

    @property
    def replay_problem(self) -> str | None:
        """Why the run cannot be replayed, or None when it can."""
        run = self.meta.get("run")
        if run is None:
            if self.meta.get("source") == "keras":
                return "recorded by a Keras callback: it cannot be replayed; use compare"
            return "the record has no RunSpec (meta.run): it cannot be replayed"
        replicas = self.replicas
        if replicas is not None:
            workers = run.get("workers", 1)
            where = f" on {workers} workers" if workers > 1 else ""
            plural = "s" if replicas != 1 else ""
            return (
                f"trained with {replicas} replica{plural}{where}: replay supports single-device "
                "runs only; use compare"
            )
        return None

    @property
    def interrupted(self) -> str | None:
        """Why the run stopped before its end (the record is partial), or None."""
        return self.meta.get("interrupted")

    def checkpoint_dir(self) -> Path | None:
        """The folder of this run's checkpoints (resolved against the record's folder)."""
        ckpt = self.meta.get("checkpoints")
        if not ckpt:
            return None
        folder = Path(ckpt["dir"])
        if not folder.is_absolute() and self.source:
            folder = Path(self.source).parent / folder
        return folder

    def checkpoint_steps(self) -> list[int]:
        """The steps this run wrote checkpoints at (0, every, 2 * every, ...)."""
        ckpt = self.meta.get("checkpoints")
        if not ckpt:
            return []
        return list(range(0, self.steps + 1, int(ckpt["every"])))


def run_meta(
    *,
    model: str,
    steps: int,
    settings: Mapping[str, Any],
    versions: Mapping[str, str],
    seed: int | None = None,
    batch_size: int | None = None,
    run: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
    digest_every: int = 0,
    checkpoints: Mapping[str, Any] | None = None,
    source: str = "reprodl",
    loss: str = "step",
    interrupted: str | None = None,
) -> dict[str, Any]:
    """A record's ``meta``, every field in the format's order (the one place it is built): the
    package's loop passes its spec's fields, a Keras callback leaves them ``None``."""
    return {
        "model": model,
        "seed": seed,
        "batch_size": batch_size,
        "steps": steps,
        "run": dict(run) if run is not None else None,
        "command": list(command) if command is not None else None,
        "settings": dict(settings),
        "versions": dict(versions),
        "digest_every": digest_every,
        "checkpoints": dict(checkpoints) if checkpoints else None,
        "source": source,
        "loss": loss,
        "interrupted": interrupted,
    }


def from_training(
    spec: Mapping[str, Any],
    record: TrainingRecord,
    *,
    command: Sequence[str] | None = None,
    digest_every: int = 0,
    checkpoints: Mapping[str, Any] | None = None,
) -> RunRecord:
    """A :class:`RunRecord` from a resolved run spec (``RunSpec.to_dict()``) and the
    :class:`~reprodl.training.TrainingRecord` of a run that started at step 0."""
    from reprodl import runtime

    if record.start_step != 0:
        raise UsageError("a run record covers a whole run: this one was resumed")
    meta = run_meta(
        model=spec["model"],
        seed=spec["seed"],
        batch_size=spec["batch_size"],
        steps=record.steps,
        run=dict(spec),
        command=command,
        settings=runtime.pinned_settings(),
        versions=runtime.versions(),
        digest_every=digest_every,
        checkpoints=checkpoints,
    )
    digests = {0: dict(record.initial_digests)}
    digests.update({k: dict(v) for k, v in record.digests.items()})
    digests[record.steps] = dict(record.final_digests)
    return RunRecord(
        meta=meta,
        variables=[v.to_dict() for v in record.variables],
        losses=np.asarray(record.losses, dtype=np.float32),
        digests=dict(sorted(digests.items())),
        final_digest=record.final_digest,
    )


def save_run(
    *,
    spec: RunSpec,
    result: TrainingRecord,
    path: str | os.PathLike[str],
    digest_every: int = 0,
    checkpoint_every: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    command: Sequence[str] | None = None,
) -> RunRecord:
    """Write the record of a finished run (``spec`` resolved, ``result`` from step 0) to ``path``.

    ``digest_every`` and ``checkpoint_every`` are what the run was trained with; its checkpoints
    are in ``checkpoint_dir`` (default: the record's name with ``.ckpt``), stored relative to the
    record's folder. Returns the saved record.
    """
    path = Path(path)
    ckpt = None
    if checkpoint_every:
        folder = Path(checkpoint_dir) if checkpoint_dir else path.with_suffix(".ckpt")
        ckpt = {"dir": os.path.relpath(folder, path.parent), "every": checkpoint_every}
    rec = from_training(
        spec.to_dict(), result, command=command, digest_every=digest_every, checkpoints=ckpt
    )
    save(rec, path)
    return rec


def _loss_to_json(x: np.float32) -> float | str:
    v = float(x)
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def to_json(record: RunRecord) -> dict[str, Any]:
    """The JSON object of ``record`` (the file format)."""
    return {
        **FILE_FORMAT.header(),
        "meta": record.meta,
        "variables": record.variables,
        "losses": [_loss_to_json(x) for x in np.asarray(record.losses, dtype=np.float32)],
        "digests": {str(step): d for step, d in sorted(record.digests.items())},
        "final_digest": record.final_digest,
    }


def save(record: RunRecord, path: str | os.PathLike[str]) -> Path:
    """Validate ``record`` and write it to ``path`` atomically; returns the path."""
    path = _formats.save(path, to_json(record), from_json)
    record.source = str(path)
    return path


def load(path: str | os.PathLike[str]) -> RunRecord:
    """Read and check a record file; :class:`RecordError` names the file and the problem."""
    return _formats.load(path, FILE_FORMAT, from_json)


def from_json(payload: Any, where: str = "<memory>") -> RunRecord:
    """Check a parsed record (its structure against the schema, then its meaning) and return it
    as a :class:`RunRecord`; :class:`RecordError` says ``WHERE: what is wrong``."""

    def fail(problem: str) -> NoReturn:
        raise RecordError(f"{where}: {problem}")

    if FILE_FORMAT.check_header(payload, where) == 1:
        payload = _upgrade_v1(payload)
    FILE_FORMAT.check_structure(payload, where)

    meta, variables = payload["meta"], payload["variables"]
    steps = meta["steps"]
    names = [v["name"] for v in variables]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        fail(f"two variables have the same name ({twice})")
    losses = _losses(payload["losses"], steps, fail)
    digests: dict[int, dict[str, str]] = {}
    for key, per_var in payload["digests"].items():
        step = int(key)
        if str(step) != key:
            fail(f"digest step {key!r} is not a step number")
        if step > steps:
            fail(f"digests for step {step}, after the last step {steps}")
        if list(per_var) != names:
            fail(f"the digests of step {step} are not one per variable, in order")
        digests[step] = per_var
    for step in (0, steps):
        if step not in digests:
            fail(f"no digests for step {step}")
    final = payload["final_digest"]
    weights = [v["name"] for v in variables if v["kind"] == "weight"]
    if fingerprint.combine(digests[steps][n] for n in weights) != final:
        fail(f"final_digest does not match the weight digests of step {steps}")
    ckpt = meta["checkpoints"]
    if ckpt is not None:
        missing = [s for s in range(0, steps + 1, ckpt["every"]) if s not in digests]
        if missing:
            fail(f"no digests for checkpoint step {missing[0]}")
    return RunRecord(
        meta=meta,
        variables=variables,
        losses=losses,
        digests=dict(sorted(digests.items())),
        final_digest=final,
        source=where,
    )


def _upgrade_meta(meta: Any) -> Any:
    """``meta`` with the fields version 2 added, as a package-loop record has them, where absent."""
    if not isinstance(meta, dict) or all(k in meta for k in _V1_META):
        return meta
    return {**meta, **{k: v for k, v in _V1_META.items() if k not in meta}}


def _upgrade_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record as version 2 (in memory; the file is not changed)."""
    payload = {**payload, "version": VERSION}
    if isinstance(payload.get("meta"), dict):
        payload["meta"] = {**payload["meta"], **_V1_META}
    return payload


def _losses(losses: list[Any], steps: int, fail: Callable[[str], NoReturn]) -> np.ndarray:
    """The stored losses as float32, each checked to be the exact value of a float32."""
    if len(losses) != steps:
        fail(f"{len(losses)} losses for {steps} steps (truncated?)")
    values = np.empty(len(losses), dtype=np.float32)
    for i, x in enumerate(losses):
        if isinstance(x, str):
            values[i] = _NONFINITE[x]  # the schema allows only these three strings
        elif math.isfinite(x):
            values[i] = x
            if float(values[i]) != float(x):
                fail(f"the loss of step {i + 1} ({x!r}) is not an exact float32 value")
        else:  # a number too large for a float64 reads as infinity: write "Infinity" instead
            fail(f"the loss of step {i + 1} is not a number ({x!r})")
    return values


def check_comparable(a: RunRecord, b: RunRecord) -> None:
    """Raise :class:`RecordError` unless ``a`` and ``b`` can be compared step by step."""

    def fail(problem: str) -> NoReturn:
        raise RecordError(f"{a.name} and {b.name} cannot be compared: {problem}")

    if a.meta["model"] != b.meta["model"]:
        fail(f"different models ({a.meta['model']} and {b.meta['model']})")
    if a.meta["source"] != b.meta["source"]:
        fail(f"recorded by different recorders ({a.meta['source']} and {b.meta['source']})")
    if a.meta["loss"] != b.meta["loss"]:
        fail(f"different kinds of losses ({a.meta['loss']} and {b.meta['loss']})")
    if a.variable_names != b.variable_names:
        only_a = [n for n in a.variable_names if n not in b.variable_names]
        only_b = [n for n in b.variable_names if n not in a.variable_names]
        if only_a or only_b:
            detail = ", ".join(
                [f"{n} only in the first" for n in only_a]
                + [f"{n} only in the second" for n in only_b]
            )
        else:
            detail = "the same variables in another order"
        fail(f"different variables ({detail})")
    for va, vb in zip(a.variables, b.variables, strict=True):
        if (va["shape"], va["dtype"]) != (vb["shape"], vb["dtype"]):
            fail(
                f"variable {va['name']} is {va['dtype']}{va['shape']} in the first and "
                f"{vb['dtype']}{vb['shape']} in the second"
            )
    if a.steps != b.steps:
        fail(f"different numbers of steps ({a.steps} and {b.steps})")
    if sorted(a.digests) != sorted(b.digests):
        fail(
            "digests recorded at different steps "
            f"({steps_text(sorted(a.digests))} and {steps_text(sorted(b.digests))})"
        )


def steps_text(steps: Sequence[int]) -> str:
    """A list of steps for a report: all of them up to six, else the first three and the last."""
    if len(steps) <= 6:
        return ", ".join(map(str, steps))
    return f"{', '.join(map(str, steps[:3]))}, ..., {steps[-1]}"
