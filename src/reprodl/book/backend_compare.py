"""TensorFlow against JAX on the same initial weights and the same batches (chapter 13).

Keras 3 chooses its backend once per process, so each backend runs in a fresh interpreter, under
its pins (:mod:`reprodl.runtime`'s for TensorFlow, :data:`reprodl.env.contract.JAX_PINNED_ENV`
for JAX). The TensorFlow child builds each model with the package's seeds and saves its initial
weights; the JAX child loads them, so both start from the same bits (their own initialisers
would not: the backends' random generators differ). Each child then

- runs the model layer by layer, in inference mode, on the same test images and saves every
  layer's output (:func:`layer_differences` finds the first layer where the backends part);
- trains it with Keras ``fit`` on the same batches in the same order (the package's batch
  stream, unshuffled) and reports the final loss, the test accuracy and the final weights
  (:func:`compare` measures how far apart the two trainings end).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprodl import _proc
from reprodl.env import contract
from reprodl.errors import ReprodlError

#: The backends compared, in the order they run (TensorFlow first: it writes the weights).
BACKENDS = ("tensorflow", "jax")


@dataclass(frozen=True)
class Model:
    """One model of the comparison: a package model (``lstm``: chapter 11's), its dropout rate
    (``None``: the model's own), the training steps (batch 100, the package's defaults)."""

    name: str
    model: str
    steps: int
    dropout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The book's four models, trained one epoch each; the CNN also without dropout, so that only
#: the arithmetic separates the backends (with dropout, their masks differ too).
MODELS = (
    Model("softmax", "softmax", 550),
    Model("mlp", "mlp", 550),
    Model("cnn", "cnn", 550),
    Model("cnn-no-dropout", "cnn", 550, dropout=0.0),
    Model("lstm", "lstm", 550),
)
#: The test images every layer is run on.
PROBE_IMAGES = 100


def child_env(backend: str) -> dict[str, str]:
    """A child's variables on top of this environment: the pins, and the backend's."""
    if backend not in BACKENDS:
        raise ReprodlError(f"unknown backend {backend!r}")
    extra = contract.JAX_PINNED_ENV if backend == "jax" else {"KERAS_BACKEND": "tensorflow"}
    return {**contract.REPRODUCIBLE_ENV, **extra}


def run_backend(
    backend: str, models: Sequence[Model], folder: Path, *, timeout: float = 3600
) -> list[dict[str, Any]]:
    """Run ``models`` on ``backend`` in a fresh interpreter; its arrays go into ``folder``.
    Returns one summary per model (final loss, test accuracy, seconds)."""
    env = {**os.environ, **child_env(backend)}
    if backend == "tensorflow":
        for name in ("PJRT_NPROC", "XLA_FLAGS"):
            env.pop(name, None)
    spec = json.dumps([m.to_dict() for m in models])
    proc = _proc.run(
        [sys.executable, "-c", _CHILD, backend, spec, str(folder), str(PROBE_IMAGES)],
        env=env,
        timeout=timeout,
    )
    if proc.timed_out or proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-8:])
        raise ReprodlError(f"the {backend} run failed (exit {proc.returncode}):\n{tail}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def initial_fingerprints(backend: str, names: Sequence[str], *, timeout: float = 600) -> dict:
    """The fingerprint of each model's initial weights when built with seed 0 on ``backend``
    (``softmax``, ``mlp``, ``cnn`` or ``lstm``), from a fresh interpreter."""
    env = {**os.environ, **child_env(backend)}
    proc = _proc.run(
        [sys.executable, "-c", _INIT_CHILD, json.dumps(list(names))], env=env, timeout=timeout
    )
    if proc.timed_out or proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-8:])
        raise ReprodlError(f"the {backend} build failed (exit {proc.returncode}):\n{tail}")
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(line)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The distance between float32 arrays in units in the last place (0 where equal)."""

    def ordered(x: np.ndarray) -> np.ndarray:
        i = np.ascontiguousarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return np.abs(ordered(a) - ordered(b))


def difference(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """How two float32 arrays of one shape differ: the share of elements that do, the largest
    absolute and relative difference and the largest distance in ULPs."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape:
        raise ReprodlError(f"shapes differ: {a.shape} and {b.shape}")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    scale = np.maximum(np.abs(a), np.abs(b)).astype(np.float64)
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    return {
        "shape": list(a.shape),
        "differing": float(np.mean(a != b)),
        "max_abs": float(diff.max(initial=0.0)),
        "max_rel": float(rel.max(initial=0.0)),
        "max_ulps": int(ulps(a, b).max(initial=0)),
    }


def layer_differences(folder: Path, model: str) -> list[dict[str, Any]]:
    """Each layer's output on both backends compared, in the model's order."""
    tf_out = np.load(folder / f"tensorflow-{model}-layers.npz")
    jax_out = np.load(folder / f"jax-{model}-layers.npz")
    if tf_out.files != jax_out.files:
        raise ReprodlError(f"{model}: the backends' layers differ: {tf_out.files}, {jax_out.files}")
    return [{"layer": k, **difference(tf_out[k], jax_out[k])} for k in tf_out.files]


def first_parting(layers: Sequence[Mapping[str, Any]]) -> str | None:
    """The first layer whose outputs differ in any bit, or ``None``."""
    return next((row["layer"] for row in layers if row["differing"] > 0), None)


def weight_distance(folder: Path, model: str) -> dict[str, Any]:
    """How far apart the trained weights end: all variables as one vector (relative L2
    distance, largest absolute difference, share of weights that differ)."""
    a = np.load(folder / f"tensorflow-{model}-trained.npz")
    b = np.load(folder / f"jax-{model}-trained.npz")
    va = np.concatenate([a[k].ravel() for k in a.files]).astype(np.float64)
    vb = np.concatenate([b[k].ravel() for k in b.files]).astype(np.float64)
    return {
        "relative_l2": float(np.linalg.norm(va - vb) / np.linalg.norm(va)),
        "max_abs": float(np.abs(va - vb).max()),
        "differing": float(np.mean(va != vb)),
    }


def compare(models: Sequence[Model] = MODELS, folder: Path | None = None) -> dict[str, Any]:
    """Run both backends on ``models`` (arrays in ``folder``, a temporary one by default) and
    compare them: per model, each layer's forward difference, the first layer that parts them,
    and the two trainings' final loss, test accuracy and weight distance."""
    import tempfile

    from reprodl.env import report

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(folder or tmp)
        runs = {b: {r["model"]: r for r in run_backend(b, models, where)} for b in BACKENDS}
        out = []
        for m in models:
            layers = layer_differences(where, m.name)
            out.append(
                {
                    **m.to_dict(),
                    "first_parting": first_parting(layers),
                    "layers": layers,
                    "training": {b: runs[b][m.name] for b in BACKENDS},
                    "weights": weight_distance(where, m.name),
                }
            )
    versions = report.installed_versions(report.JAX_PACKAGES)
    return {
        "what": "TensorFlow against JAX on the same initial weights and batches",
        "versions": {k: versions.get(k) for k in ("tensorflow", "keras", "jax", "jaxlib")},
        "jax_pins": contract.JAX_PINNED_ENV,
        "probe_images": PROBE_IMAGES,
        "models": out,
    }


_CHILD = r"""
import json, sys, time
from pathlib import Path
import reprodl.runtime as rt
rt.setup(0)

import keras
import numpy as np
from reprodl import data, models, training
from reprodl.batches import make_stream

backend, specs, folder = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
probe = int(sys.argv[4])
assert keras.backend.backend() == backend, keras.backend.backend()
mnist = data.load_mnist()
x_probe = data.to_float(mnist.test.images[:probe])
x_test = data.to_float(mnist.test.images)
for spec in specs:
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    if spec["model"] == "lstm":
        model = models.row_lstm(0)
    else:
        extra = {} if spec["dropout"] is None else {"dropout": spec["dropout"]}
        model = models.build(spec["model"], seed=0, **extra)
    init = folder / f"{spec['name']}-init.npz"
    if backend == "tensorflow":
        np.savez(init, *model.get_weights())
    saved = np.load(init)
    model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    outputs, h = {}, x_probe
    for i, layer in enumerate(model.layers):
        h = layer(h, training=False)
        outputs[f"{i}:{layer.name}"] = keras.ops.convert_to_numpy(h)
    np.savez(folder / f"{backend}-{spec['name']}-layers.npz", **outputs)
    if spec["model"] == "lstm":  # as chapter 11 trains it: Adam 2e-3, batch 100
        optimizer, batch = keras.optimizers.Adam(2e-3), 100
    else:
        run = training.RunSpec(spec["model"], steps=spec["steps"]).resolved()
        optimizer, batch = training.optimizer_for(run), run.batch_size
    stream = make_stream(len(mnist.train), "seeded", 0)
    order = np.concatenate([stream.next(batch) for _ in range(spec["steps"])])
    train = data.Split(mnist.train.images[order], mnist.train.labels[order])
    history = training.fit_quietly(model, train, epochs=1, batch_size=batch, optimizer=optimizer,
                                   shuffle=False, printer=None)
    np.savez(folder / f"{backend}-{spec['name']}-trained.npz", *model.get_weights())
    logits = keras.ops.convert_to_numpy(model.predict(x_test, batch_size=1000, verbose=0))
    correct = int(np.sum(np.argmax(logits, axis=1) == mnist.test.labels))
    print(json.dumps({"model": spec["name"], "final_loss": float(history.history["loss"][-1]),
                      "test_correct": correct, "test_total": len(mnist.test.labels),
                      "seconds": round(time.perf_counter() - start, 1)}), flush=True)
"""

_INIT_CHILD = r"""
import json, sys
import reprodl.runtime as rt
rt.setup(0)

import keras
from reprodl import models
from reprodl.record import fingerprint

built = {}
for name in json.loads(sys.argv[1]):
    keras.utils.set_random_seed(0)
    model = models.row_lstm(0) if name == "lstm" else models.build(name, seed=0)
    built[name] = fingerprint.weights_digest(model)
print(json.dumps(built))
"""
