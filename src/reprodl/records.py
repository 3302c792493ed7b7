"""Run records: one JSON file per training run, enough to find where two runs diverge.

A run record is written by ``python -m reprodl train ... --record FILE`` or
:func:`reprodl.divergence.record` and read by :func:`load`, which checks every field and raises
:class:`RecordError` (naming the file and the problem) for anything that is not a valid record.
Files are written atomically (a temp file in the same folder, then a rename). This module needs
NumPy only, not TensorFlow.

Format ``reprodl.run-record``, version 1 (a JSON object)::

    {
      "format": "reprodl.run-record",
      "version": 1,
      "meta": {
        "model": "mlp", "seed": 0, "batch_size": 100, "steps": 200,
        "run": {...},              # the RunSpec: everything needed to replay the run
        "command": [...] | null,   # the command line, for runs started from the shell
        "settings": {...},         # reprodl.runtime.pinned_settings() during the run
        "versions": {...},         # python, numpy, tensorflow, keras, reprodl
        "digest_every": 50,        # 0: digests before the first and after the last step only
        "checkpoints": {"dir": "a.ckpt", "every": 50} | null   # dir relative to this file
      },
      "variables": [{"name": "mlp/hidden_1/kernel", "shape": [784, 128],
                     "dtype": "float32", "kind": "weight"}, ...],
      "losses": [2.3025851249694824, ...],
      "digests": {"0": {"mlp/hidden_1/kernel": "<64 hex digits>", ...}, "50": {...}, ...},
      "final_digest": "<64 hex digits>"
    }

- ``variables`` lists the model's state in order: weights (``kind`` ``"weight"``) and random
  generator states such as a Dropout layer's ``seed_generator_state`` (``kind`` ``"rng"``).
- ``losses[i]`` is the loss of step ``i + 1``: the exact float32 value written as a JSON number
  (its float64 value, which reads back exactly); ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` for
  non-finite losses. There are ``meta.steps`` of them.
- ``digests`` maps a step (as a string; ``"0"`` is the state before training) to the SHA-256 of
  each variable after that step (:func:`reprodl.fingerprint.array_digest`). Steps ``0`` and
  ``meta.steps`` are always present.
- ``final_digest`` is the fingerprint of the final weights (:func:`reprodl.fingerprint.
  weights_digest`): it must equal the combination of the weight digests of the last step.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reprodl import fingerprint
from reprodl.errors import RecordError

FORMAT = "reprodl.run-record"
VERSION = 1
#: The meta fields every record must have, with the JSON types they must be.
REQUIRED_META: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "seed": int,
    "batch_size": int,
    "steps": int,
    "run": dict,
    "command": (list, type(None)),
    "settings": dict,
    "versions": dict,
    "digest_every": int,
    "checkpoints": (dict, type(None)),
}
_HEX64 = re.compile(r"[0-9a-f]{64}")
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

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def variable_names(self) -> list[str]:
        return [v["name"] for v in self.variables]

    @property
    def name(self) -> str:
        """How reports call this record: its file, or ``<memory>``."""
        return self.source or "<memory>"

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


def versions() -> dict[str, str]:
    """Versions of what the bits depend on (TensorFlow and Keras only if loaded)."""
    import reprodl

    found = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "reprodl": reprodl.__version__,
    }
    if "tensorflow" in sys.modules:
        import keras
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
        found["keras"] = keras.__version__
    return found


def from_training(
    spec: Mapping[str, Any],
    record,
    *,
    command: Sequence[str] | None = None,
    digest_every: int = 0,
    checkpoints: Mapping[str, Any] | None = None,
) -> RunRecord:
    """A :class:`RunRecord` from a resolved run spec (``RunSpec.to_dict()``) and the
    :class:`~reprodl.training.TrainingRecord` of a run that started at step 0."""
    from reprodl import runtime

    if record.start_step != 0:
        raise ValueError("a run record covers a whole run: this one was resumed")
    meta = {
        "model": spec["model"],
        "seed": spec["seed"],
        "batch_size": spec["batch_size"],
        "steps": record.steps,
        "run": dict(spec),
        "command": list(command) if command is not None else None,
        "settings": runtime.pinned_settings(),
        "versions": versions(),
        "digest_every": digest_every,
        "checkpoints": dict(checkpoints) if checkpoints else None,
    }
    digests = {0: dict(record.initial_digests)}
    digests.update({k: dict(v) for k, v in record.digests.items()})
    digests[record.steps] = dict(record.final_digests)
    variables = [
        {"name": v.name, "shape": list(v.shape), "dtype": v.dtype, "kind": v.kind}
        for v in record.variables
    ]
    return RunRecord(
        meta=meta,
        variables=variables,
        losses=np.asarray(record.losses, dtype=np.float32),
        digests=dict(sorted(digests.items())),
        final_digest=record.final_digest,
    )


def _loss_to_json(x: np.float32) -> float | str:
    v = float(x)
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def to_json(record: RunRecord) -> dict[str, Any]:
    """The JSON object of ``record`` (the file format)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "meta": record.meta,
        "variables": record.variables,
        "losses": [_loss_to_json(x) for x in np.asarray(record.losses, dtype=np.float32)],
        "digests": {str(step): d for step, d in sorted(record.digests.items())},
        "final_digest": record.final_digest,
    }


def save(record: RunRecord, path: str | os.PathLike[str]) -> Path:
    """Validate ``record`` and write it to ``path`` atomically; returns the path."""
    from reprodl._io import atomic_write

    path = Path(path)
    payload = to_json(record)
    _validate(payload, str(path))  # never write a file that load() would reject
    text = json.dumps(payload, indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    record.source = str(path)
    return path


def load(path: str | os.PathLike[str]) -> RunRecord:
    """Read and check a record file; :class:`RecordError` names the file and the problem."""
    return _validate(read_json(path), str(path))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; :class:`RecordError` says why it cannot be (missing, empty, cut short,
    corrupt), naming the file."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise RecordError(f"{where}: no such file") from None
    except OSError as exc:
        raise RecordError(f"{where}: cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(f"{where}: not a text file (not UTF-8)") from None
    if not text.strip():
        raise RecordError(f"{where}: the file is empty")

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    try:
        payload = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        end = text.rstrip()  # a record ends with "}": a file that does not was cut short
        cut = exc.pos >= len(end) or not end.endswith(("}", "]"))
        hint = "the file ends too early (truncated?)" if cut else f"line {exc.lineno}"
        raise RecordError(f"{where}: not valid JSON, {hint}: {exc.msg}") from None
    except ValueError as exc:
        raise RecordError(f"{where}: not valid JSON: {exc}") from None
    return payload


def _fail(where: str, problem: str) -> None:
    raise RecordError(f"{where}: {problem}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _validate(payload: Any, where: str) -> RunRecord:
    """Check every field of a parsed record; return it as a :class:`RunRecord`."""
    if not isinstance(payload, dict):
        _fail(where, f"not a run record (a JSON {type(payload).__name__}, not an object)")
    if "format" not in payload:
        _fail(where, f"not a run record (no 'format' field; expected {FORMAT!r})")
    if payload["format"] != FORMAT:
        _fail(where, f"not a run record (format {payload['format']!r}, expected {FORMAT!r})")
    version = payload.get("version")
    if not _is_int(version):
        _fail(where, f"missing or invalid 'version' (expected {VERSION})")
    if version != VERSION:
        _fail(where, f"record format version {version} is not supported (this reads {VERSION})")
    for key in ("meta", "variables", "losses", "digests", "final_digest"):
        if key not in payload:
            _fail(where, f"missing field {key!r}")
    meta = payload["meta"]
    if not isinstance(meta, dict):
        _fail(where, "field 'meta' must be an object")
    for key, kind in REQUIRED_META.items():
        if key not in meta:
            _fail(where, f"missing field 'meta.{key}'")
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            _fail(where, f"field 'meta.{key}' has the wrong type ({type(value).__name__})")
    for key in ("steps", "batch_size"):
        if meta[key] <= 0:
            _fail(where, f"field 'meta.{key}' must be positive, got {meta[key]}")
    if meta["digest_every"] < 0:
        _fail(where, "field 'meta.digest_every' must not be negative")
    ckpt = meta["checkpoints"]
    if ckpt is not None and not (
        isinstance(ckpt.get("dir"), str) and _is_int(ckpt.get("every")) and ckpt["every"] > 0
    ):
        _fail(where, "field 'meta.checkpoints' needs a 'dir' (text) and an 'every' (positive int)")

    variables = payload["variables"]
    if not isinstance(variables, list) or not variables:
        _fail(where, "field 'variables' must be a non-empty list")
    names: list[str] = []
    for i, v in enumerate(variables):
        if not (
            isinstance(v, dict)
            and isinstance(v.get("name"), str)
            and isinstance(v.get("shape"), list)
            and all(_is_int(d) and d >= 0 for d in v["shape"])
            and isinstance(v.get("dtype"), str)
            and v.get("kind") in ("weight", "rng")
        ):
            _fail(where, f"variables[{i}] needs a name, shape, dtype and kind (weight or rng)")
        names.append(v["name"])
    if len(set(names)) != len(names):
        _fail(where, "two variables have the same name")

    losses = payload["losses"]
    if not isinstance(losses, list):
        _fail(where, "field 'losses' must be a list")
    if len(losses) != meta["steps"]:
        _fail(where, f"{len(losses)} losses for {meta['steps']} steps (truncated?)")
    values = np.empty(len(losses), dtype=np.float32)
    for i, x in enumerate(losses):
        if isinstance(x, str) and x in _NONFINITE:
            values[i] = _NONFINITE[x]
        elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
            values[i] = x
            if float(values[i]) != float(x):
                _fail(where, f"the loss of step {i + 1} ({x!r}) is not an exact float32 value")
        else:
            _fail(where, f"the loss of step {i + 1} is not a number ({x!r})")

    raw_digests = payload["digests"]
    if not isinstance(raw_digests, dict):
        _fail(where, "field 'digests' must be an object")
    digests: dict[int, dict[str, str]] = {}
    for key, per_var in raw_digests.items():
        if not (isinstance(key, str) and key.isdigit() and str(int(key)) == key):
            _fail(where, f"digest step {key!r} is not a step number")
        step = int(key)
        if step > meta["steps"]:
            _fail(where, f"digests for step {step}, after the last step {meta['steps']}")
        if not isinstance(per_var, dict) or list(per_var) != names:
            _fail(where, f"the digests of step {step} are not one per variable, in order")
        for name, d in per_var.items():
            if not (isinstance(d, str) and _HEX64.fullmatch(d)):
                _fail(where, f"bad digest of {name} at step {step} (not 64 hex digits): {d!r}")
        digests[step] = per_var
    for step in (0, meta["steps"]):
        if step not in digests:
            _fail(where, f"no digests for step {step}")
    final = payload["final_digest"]
    if not (isinstance(final, str) and _HEX64.fullmatch(final)):
        _fail(where, f"bad final_digest (not 64 hex digits): {final!r}")
    last = digests[meta["steps"]]
    weights = [v["name"] for v in variables if v["kind"] == "weight"]
    if fingerprint.combine(last[n] for n in weights) != final:
        _fail(where, f"final_digest does not match the weight digests of step {meta['steps']}")
    if ckpt is not None:
        missing = [s for s in range(0, meta["steps"] + 1, ckpt["every"]) if s not in digests]
        if missing:
            _fail(where, f"no digests for checkpoint step {missing[0]}")
    return RunRecord(
        meta=meta,
        variables=variables,
        losses=values,
        digests=dict(sorted(digests.items())),
        final_digest=final,
        source=where,
    )


def check_comparable(a: RunRecord, b: RunRecord) -> None:
    """Raise :class:`RecordError` unless ``a`` and ``b`` can be compared step by step."""

    def fail(problem: str) -> None:
        raise RecordError(f"{a.name} and {b.name} cannot be compared: {problem}")

    if a.meta["model"] != b.meta["model"]:
        fail(f"different models ({a.meta['model']} and {b.meta['model']})")
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
            f"({_steps_text(sorted(a.digests))} and {_steps_text(sorted(b.digests))})"
        )


def _steps_text(steps: Sequence[int]) -> str:
    if len(steps) <= 6:
        return ", ".join(map(str, steps))
    return f"{', '.join(map(str, steps[:3]))}, ..., {steps[-1]}"
