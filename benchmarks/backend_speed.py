"""Benchmark: each Keras backend with its exact pins against its stock defaults (chapter 13).

Deep-CNN training steps per second (Keras ``fit``, batch 100, Adam 2e-3, the same batches):

- ``tensorflow-stock``: TensorFlow's defaults (no pins, no op determinism);
- ``tensorflow-pinned``: a process pinned by ``reprodl.setup`` (op determinism on);
- ``jax-stock``: JAX as installed (XLA's thread pool one thread per core, the CPU's best ISA);
- ``jax-pinned``: JAX under :data:`reprodl.env.contract.JAX_PINNED_ENV`.

Usage: python benchmarks/backend_speed.py [--steps 100] [--warmup 10] [--repeats 3] [--out F]

Each measurement runs in a fresh process (the backend and the pins are process-wide), and the
variants alternate (tensorflow-stock, tensorflow-pinned, jax-stock, jax-pinned, ...) so that a
busy machine hurts all of them alike. A measurement times ``--steps`` steps after ``--warmup``
untimed ones (tracing or compiling, first allocations). The two pinned variants also report
their fingerprints. Prints one line per measurement and the medians; writes a JSON record.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import _alternating

VARIANTS = ("tensorflow-stock", "tensorflow-pinned", "jax-stock", "jax-pinned")

_CHILD = r"""
import json, os, sys, time
variant, steps, warmup, data_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
backend, how = variant.split("-")
n = 100 * (steps + warmup)
if how == "stock":
    saved = dict(os.environ)
    import keras  # the backend's own defaults: nothing set before it loads
    from reprodl import data, models  # importing reprodl pins os.environ: undo before any op
    os.environ.clear()
    os.environ.update(saved)
else:
    import reprodl
    reprodl.setup(0)
    import keras
    from reprodl import data, models
from reprodl import training
from reprodl.record import fingerprint

assert keras.backend.backend() == backend, keras.backend.backend()
mnist = data.load_mnist(data_dir)
model = models.build("cnn", 0)
times = []  # when each step ended


class Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        times.append(time.perf_counter())


model.compile(optimizer=training.make_optimizer("adam", 2e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(data.to_float(mnist.train.images[:n]), mnist.train.labels[:n], batch_size=100,
          epochs=1, shuffle=False, verbose=0, callbacks=[Clock()])
rate = steps / (times[-1] - times[warmup - 1])
print(json.dumps({"variant": variant, "steps_per_second": rate,
                  "fingerprint": None if how == "stock" else fingerprint.weights_digest(model)}))
"""

# Variables through which reprodl pins a process; the stock children start without them.
_PIN_PREFIXES = ("TF_", "ONEDNN", "OMP_", "OPENBLAS", "MKL_", "NPY_", "PYTHONHASHSEED", "XLA_")
_PIN_NAMES = ("PJRT_NPROC", "NPROC", "KERAS_BACKEND")


def child_env(variant: str) -> dict[str, str]:
    """The environment of one measurement's process."""
    from reprodl.env import contract

    backend, how = variant.split("-")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_PIN_PREFIXES) and k not in _PIN_NAMES
    }
    env["KERAS_BACKEND"] = backend
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet, changes nothing else
    if how == "pinned" and backend == "jax":
        env.update(contract.JAX_PINNED_ENV)
    return env


def _line(repeat: int, result: dict) -> str:
    return f"repeat {repeat} {result['variant']:<18} {result['steps_per_second']:6.2f} steps/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _alternating.add_options(parser, steps=100, warmup=10)
    args = parser.parse_args(argv)

    from reprodl import _io
    from reprodl.env import contract, cpu, report

    runs, median = _alternating.run(_CHILD, VARIANTS, args, child_env, _line)
    ratios = {
        "tensorflow pinned / stock": median["tensorflow-pinned"] / median["tensorflow-stock"],
        "jax pinned / stock": median["jax-pinned"] / median["jax-stock"],
        "jax pinned / tensorflow pinned": median["jax-pinned"] / median["tensorflow-pinned"],
    }
    for variant in VARIANTS:
        print(f"median {variant:<18} {median[variant]:6.2f} steps/s")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if args.out:
        versions = report.installed_versions(report.JAX_PACKAGES)
        record = {
            "benchmark": "backend_speed",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "model": "cnn",
            "batch_size": 100,
            "optimizer": "adam 2e-3",
            "trainer": "keras fit",
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "machine": cpu.machine(),
            "versions": versions,
            "jax_pins": contract.JAX_PINNED_ENV,
            "runs": runs,
            "median_steps_per_second": median,
            "ratios": ratios,
        }
        print(f"record: {_io.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
