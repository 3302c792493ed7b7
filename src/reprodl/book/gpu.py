"""Run-to-run variation on the device TensorFlow computes on (a GPU where there is one).

:func:`measure_variation` trains the same seeded model several times in this process with op
determinism off and on and reports how many different weights came out; :func:`device_description`
says on what (GPU model, driver, CUDA/cuDNN of the build). :func:`write_record`,
:func:`load_records` and :func:`record_lines` store and print such records:
``benchmarks/gpu_variation.py`` writes them on a GPU machine and chapter 8 shows them.
:func:`steps_per_second` times a training with op determinism on or off.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import datetime
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reprodl import _io, runtime
from reprodl.env import report
from reprodl.errors import UsageError
from reprodl.record import fingerprint

if TYPE_CHECKING:
    from reprodl.data import Split


def device_description() -> dict[str, Any]:
    """What TensorFlow computes on: GPU model and driver, CUDA/cuDNN of the build, versions."""
    tf = runtime.import_tensorflow()
    info = dict(tf.sysconfig.get_build_info())
    gpus = tf.config.list_physical_devices("GPU")
    desc: dict[str, Any] = {
        "device": "GPU" if gpus else "CPU",
        "tensorflow": tf.__version__,
        "cuda_build": bool(info.get("is_cuda_build")),
        "cuda_version": info.get("cuda_version"),
        "cudnn_version": info.get("cudnn_version"),
    }
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        desc["name"] = details.get("device_name", gpus[0].name)
        cc = details.get("compute_capability")
        desc["compute_capability"] = ".".join(map(str, cc)) if cc else None
        desc["gpu_count"] = len(gpus)
        desc["driver"] = _nvidia_driver()
    else:
        desc["name"] = report.cpu_model()
    return desc


def _nvidia_driver() -> str | None:
    """The NVIDIA driver version ``nvidia-smi`` reports, or ``None`` without one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def steps_per_second(
    split: Split,
    *,
    op_determinism: bool,
    model: str = "cnn",
    steps: int = 40,
    batch_size: int = 50,
    seed: int = 0,
) -> float:
    """Training throughput of ``model`` (Adam 1e-3) with op determinism on or off, in this process.

    The first step (tracing) is excluded. Op determinism is switched back on afterwards, as
    :func:`reprodl.runtime.setup` leaves it.
    """
    import keras

    from reprodl import models, training

    runtime.set_op_determinism(op_determinism)
    try:
        keras.utils.set_random_seed(seed)
        record = training.train(
            models.build(model, seed),
            split,
            steps=steps + 1,
            batch_size=batch_size,
            optimizer=training.make_optimizer("adam", 1e-3),
            order_seed=seed,
        )
    finally:
        runtime.set_op_determinism(True)
    return record.steps_per_second


def measure_variation(
    *,
    runs: int = 5,
    steps: int = 50,
    batch_size: int = 50,
    model: str = "cnn",
    seed: int = 0,
    settings: Sequence[bool] = (False, True),
) -> dict[str, Any]:
    """Train the same seeded model ``runs`` times per op-determinism setting; compare the weights.

    For each setting: the fingerprint of every run, how many distinct ones, and the largest
    absolute difference of any weight from the first run's. An op without a deterministic
    implementation makes TensorFlow raise; that is recorded as the setting's ``error``.
    """
    from reprodl import data

    if runs < 2 or steps < 1 or batch_size < 1:
        raise UsageError("need runs >= 2 and positive steps and batch_size")
    train_split = data.load_mnist().train
    n = steps * batch_size
    subset = data.Split(train_split.images[:n], train_split.labels[:n])
    results: dict[str, Any] = {}
    for on in settings:
        key = "determinism_on" if on else "determinism_off"
        runtime.set_op_determinism(on)
        results[key] = _measure_setting(
            subset, runs=runs, steps=steps, batch_size=batch_size, model=model, seed=seed
        )
    runtime.set_op_determinism(True)  # leave the process as reprodl.setup does
    return {
        "benchmark": "gpu_variation",
        "model": model,
        "runs": runs,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "results": results,
        "device": device_description(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _measure_setting(
    subset: Split, *, runs: int, steps: int, batch_size: int, model: str, seed: int
) -> dict[str, Any]:
    """Train ``runs`` times under the current op-determinism setting: the fingerprints, final
    losses, how many distinct, the largest weight difference; or the ``error`` an op raised."""
    digests: list[str] = []
    losses: list[str] = []
    first: list[np.ndarray] | None = None
    max_diff = 0.0
    try:
        for _ in range(runs):
            digest, loss, weights = _train_once(
                subset, steps=steps, batch_size=batch_size, model=model, seed=seed
            )
            digests.append(digest)
            losses.append(loss)
            if first is None:
                first = weights
            else:
                pairs = zip(first, weights, strict=True)
                diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
                max_diff = max(max_diff, diff)
    except Exception as exc:  # an op with no deterministic kernel: record it, go on
        return {"error": f"{type(exc).__name__}: {first_line(exc)}"}
    return {
        "fingerprints": digests,
        "final_losses": losses,
        "distinct_fingerprints": len(set(digests)),
        "max_abs_weight_difference": max_diff,
    }


def _train_once(
    subset: Split, *, steps: int, batch_size: int, model: str, seed: int
) -> tuple[str, str, list[np.ndarray]]:
    """Train a freshly seeded ``model`` (Adam 1e-3) on ``subset``: its final digest, its final
    loss as text, and its weights."""
    import keras

    from reprodl import models, training

    keras.utils.set_random_seed(seed)
    net = models.build(model, seed)
    rec = training.train(
        net,
        subset,
        steps=steps,
        batch_size=batch_size,
        optimizer=training.make_optimizer("adam", 1e-3),
        order_seed=seed,
    )
    weights = [np.asarray(v.numpy()) for v in net.weights]
    return rec.final_digest, fingerprint.format_float(rec.final_loss), weights


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without TensorFlow's ``{{function_node ...}}``."""
    text = getattr(exc, "message", None) or str(exc)
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^\{\{[^}]*\}\}\s*", "", line)  # graph functions: {{function_node ...}}
    return re.sub(r"\s+name:\s*$", "", line)  # eager ops end with "[Op:Name] name: "


def write_record(record: Mapping[str, Any], path: str | Path) -> Path:
    """Write a variation record as sorted, indented JSON, atomically (created folders included)."""
    return _io.write_json(path, dict(record), sort_keys=True)


def load_records(folder: str | Path, pattern: str = "gpu_variation*.json") -> list[dict[str, Any]]:
    """All variation records in ``folder``, sorted by file name (empty if none or no folder).

    A file that is not valid JSON raises :class:`~reprodl.errors.RecordError` naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [_io.read_json(p) for p in sorted(folder.glob(pattern))]


def record_lines(record: Mapping[str, Any]) -> list[str]:
    """A short, deterministic description of a variation record, for printing."""
    dev = record["device"]
    where = f"{dev['device']}: {dev.get('name')}"
    if dev["device"] == "GPU":
        where += (
            f" (driver {dev.get('driver')}, CUDA {dev.get('cuda_version')}, "
            f"cuDNN {dev.get('cudnn_version')})"
        )
    lines = [
        f"{where}, TensorFlow {dev.get('tensorflow')}, measured {record['date'][:10]}",
        f"{record['runs']} runs of {record['steps']} steps of the {record['model']} model, "
        f"batch {record['batch_size']}, seed {record['seed']}",
    ]
    for key in ("determinism_off", "determinism_on"):
        res = record["results"].get(key)
        if res is None:
            continue
        label = key.replace("_", " ")
        if "error" in res:
            lines.append(f"  {label}: raised {res['error']}")
        else:
            lines.append(
                f"  {label}: distinct fingerprints {res['distinct_fingerprints']} of "
                f"{len(res['fingerprints'])} runs, largest weight difference "
                f"{res['max_abs_weight_difference']:.3g}"
            )
    return lines


def short_fingerprints(digests: Sequence[str]) -> str:
    """Fingerprints shortened for printing, separated by commas."""
    return ", ".join(fingerprint.short(d) for d in digests)
