"""Hardware and op-level nondeterminism: measured in fresh processes, simulated, or on a GPU.

Three jobs, for the chapters on op determinism and on hardware:

- :func:`train_in_subprocess` trains a model in a fresh interpreter with the pins changed (intra-op
  threads, oneDNN's instruction-set cap) and returns its weight fingerprints, with op determinism
  on and off. Those settings act only when TensorFlow starts, so a notebook cannot vary them in
  its own kernel; and ``import reprodl`` overrides ambient variables, so the child patches the pins
  themselves before :func:`reprodl.runtime.setup`.
- :func:`atomic_sum` and :func:`softmax_regression_atomic` simulate a GPU's atomic additions: the
  terms of a sum arrive in an order that changes from run to run. The order comes from a seeded
  generator, so the simulation itself is reproducible.
- :func:`measure_variation` trains the same model several times in one process with op determinism
  on and off and reports how many different weights came out; :func:`device_description` says on
  what. ``benchmarks/gpu_variation.py`` wraps them to write a JSON record on a GPU machine.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprodl import fingerprint, runtime
from reprodl.seeding import run_snippet

# --------------------------------------------------------------------------------------------
# Training in a fresh process with other pins


@dataclass(frozen=True)
class SubprocessRun:
    """What a child training process reported.

    ``fingerprints`` and ``losses`` are keyed by the op-determinism setting (True: on);
    ``settings`` are the thread count and ISA cap the child actually ran with.
    """

    fingerprints: dict[bool, str]
    losses: dict[bool, str]
    settings: dict[str, str]


_CHILD = """
import sys
import reprodl.runtime as rt

rt.repin(intra_op_threads={threads!r}, onednn_isa={isa!r})
rt.setup({seed})

import os
import keras
import tensorflow as tf
from reprodl import data, fingerprint, models, training

tr = data.load_mnist().train
n = {steps} * {batch_size}
subset = data.Split(tr.images[:n], tr.labels[:n])
print("threads", tf.config.threading.get_intra_op_parallelism_threads())
print("isa", os.environ.get("ONEDNN_MAX_CPU_ISA", "native"))
for determinism in {settings!r}:
    rt.set_op_determinism(determinism)
    keras.utils.set_random_seed({seed})
    model = models.build({model!r}, {seed})
    record = training.train(
        model, subset, steps={steps}, batch_size={batch_size},
        optimizer=training.make_optimizer("adam", 1e-3), order_seed={seed},
    )
    flag = "on" if determinism else "off"
    print("loss", flag, fingerprint.format_float(record.final_loss))
    print("fingerprint", flag, record.final_digest)
"""


def train_in_subprocess(
    *,
    model: str = "mlp",
    steps: int = 60,
    batch_size: int = 100,
    seed: int = 0,
    intra_op_threads: int | None = None,
    onednn_isa: str | None = None,
    op_determinism: Sequence[bool] = (True, False),
    timeout: float = 600,
) -> SubprocessRun:
    """Train ``model`` (Adam 1e-3) in a fresh interpreter; one run per op-determinism setting.

    ``intra_op_threads`` and ``onednn_isa`` replace the pinned values in the child (``None``: keep
    the pins). The child trains on the first ``steps * batch_size`` training images in a seeded
    order. Raises :class:`RuntimeError` with the child's stderr if it fails.
    """
    code = _CHILD.format(
        threads=intra_op_threads,
        isa=onednn_isa,
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        model=model,
        settings=tuple(bool(s) for s in op_determinism),
    )
    proc = run_snippet(code, timeout=timeout)  # raises RuntimeError with the child's stderr
    fingerprints: dict[bool, str] = {}
    losses: dict[bool, str] = {}
    settings: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[0] == "fingerprint":
            fingerprints[parts[1] == "on"] = parts[2]
        elif parts[0] == "loss":
            losses[parts[1] == "on"] = parts[2]
        elif parts[0] in ("threads", "isa"):
            settings[parts[0]] = parts[1]
    return SubprocessRun(fingerprints=fingerprints, losses=losses, settings=settings)


# --------------------------------------------------------------------------------------------
# Atomic additions, simulated


def atomic_sum(terms: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sum ``terms`` over axis 0 one term at a time, in float32, like atomic adds on a GPU.

    Each GPU thread adds its term to one accumulator when it gets there, so the order of the
    additions is the order the threads happen to arrive in. Here that order is a permutation
    drawn from ``rng`` (``None``: the natural order 0, 1, 2, ...).
    """
    terms = np.asarray(terms, dtype=np.float32)
    order = np.arange(len(terms)) if rng is None else rng.permutation(len(terms))
    total = np.zeros(terms.shape[1:], dtype=np.float32)
    for i in order:
        total += terms[i]  # float32 + float32, rounded after every addition
    return total


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_regression_atomic(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    steps: int,
    batch_size: int = 100,
    learning_rate: float = 0.5,
    order_seed: int | None = None,
) -> list[np.ndarray]:
    """Softmax regression by SGD in NumPy (float32), the gradient summed with :func:`atomic_sum`.

    Batch ``k`` is examples ``k*batch_size`` to ``(k+1)*batch_size`` (the same in every run), and
    the weights start at zero: the only thing that differs between runs is the order in which
    each batch's per-example gradients are added, drawn from ``order_seed`` (``None``: natural
    order). Returns the weight matrix (785 x 10, the last row the bias) after every step.
    """
    if steps * batch_size > len(images):
        raise ValueError(f"{steps} steps of {batch_size} need more than {len(images)} examples")
    x_all = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    if x_all.max() > 1:
        x_all = x_all / np.float32(255)
    x_all = np.hstack([x_all, np.ones((len(x_all), 1), dtype=np.float32)])  # bias input
    rng = None if order_seed is None else np.random.default_rng(order_seed)
    w = np.zeros((x_all.shape[1], 10), dtype=np.float32)
    lr = np.float32(learning_rate / batch_size)
    history = []
    for k in range(steps):
        x = x_all[k * batch_size : (k + 1) * batch_size]
        y = np.asarray(labels[k * batch_size : (k + 1) * batch_size])
        d = _softmax(x @ w)
        d[np.arange(batch_size), y] -= np.float32(1)  # dLoss/dlogits per example
        per_example = x[:, :, None] * d[:, None, :]  # (batch, 785, 10): exact products
        w = w - lr * atomic_sum(per_example, rng)
        history.append(w.copy())
    return history


# --------------------------------------------------------------------------------------------
# Run-to-run variation on the device TensorFlow uses (a GPU where there is one)


def device_description() -> dict[str, Any]:
    """What TensorFlow computes on: GPU model and driver, CUDA/cuDNN of the build, versions."""
    from reprodl.runtime import import_tensorflow

    tf = import_tensorflow()
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
        from reprodl.runtime import cpu_model

        desc["name"] = cpu_model()
    return desc


def _nvidia_driver() -> str | None:
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
    split,
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
    import keras

    from reprodl import data, fingerprint, models, training

    if runs < 2 or steps < 1 or batch_size < 1:
        raise ValueError("need runs >= 2 and positive steps and batch_size")
    train_split = data.load_mnist().train
    n = steps * batch_size
    subset = data.Split(train_split.images[:n], train_split.labels[:n])
    results: dict[str, Any] = {}
    for on in settings:
        key = "determinism_on" if on else "determinism_off"
        runtime.set_op_determinism(on)
        digests: list[str] = []
        losses: list[str] = []
        first: list[np.ndarray] | None = None
        max_diff = 0.0
        try:
            for _ in range(runs):
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
                digests.append(rec.final_digest)
                losses.append(fingerprint.format_float(rec.final_loss))
                if first is None:
                    first = weights
                else:
                    pairs = zip(first, weights, strict=True)
                    diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
                    max_diff = max(max_diff, diff)
        except Exception as exc:  # an op with no deterministic kernel: record it, go on
            results[key] = {"error": f"{type(exc).__name__}: {first_line(exc)}"}
            continue
        results[key] = {
            "fingerprints": digests,
            "final_losses": losses,
            "distinct_fingerprints": len(set(digests)),
            "max_abs_weight_difference": max_diff,
        }
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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without TensorFlow's ``{{function_node ...}}``."""
    text = getattr(exc, "message", None) or str(exc)
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^\{\{[^}]*\}\}\s*", "", line)  # graph functions: {{function_node ...}}
    return re.sub(r"\s+name:\s*$", "", line)  # eager ops end with "[Op:Name] name: "


def write_record(record: Mapping[str, Any], path: Path) -> Path:
    """Write a variation record as sorted, indented JSON (created folders included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_records(folder: Path, pattern: str = "gpu_variation*.json") -> list[dict[str, Any]]:
    """All variation records in ``folder``, sorted by file name (empty if none or no folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob(pattern))]


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
