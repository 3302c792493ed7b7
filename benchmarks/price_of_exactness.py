"""Benchmark: the price of exactness. Deep-CNN training steps per second (batch 100) under

- ``stock``: Keras ``fit`` with TensorFlow's defaults (no pins, no op determinism, no seeds):
  what a user who does not care about reproducibility runs;
- ``pinned-fit``: Keras ``fit`` in a process pinned by ``reprodl.setup`` (op determinism on);
- ``own-loop-whole``: the book's own compiled loop (``reprodl.training.train``), pinned, every
  layer whole (``lanes=False``);
- ``own-loop``: the same loop with its big layers in two lanes (``reprodl.training.lanes``): the
  same bits, the two cores busier.

Usage: python benchmarks/price_of_exactness.py [--steps 150] [--warmup 20] [--repeats 3] [--out F]

Each measurement runs in a fresh process (the pins are process-wide), and the variants alternate
(stock, pinned-fit, own-loop-whole, own-loop, stock, ...) so that a busy machine hurts all of them
alike; the two own-loop variants also report their fingerprints, which must be equal. A
measurement times ``--steps`` steps after ``--warmup`` untimed ones (tracing, first allocations).
Prints one line per measurement and the median ratios; writes a JSON record with the machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

import _alternating

VARIANTS = ("stock", "pinned-fit", "own-loop-whole", "own-loop")

_CHILD = r"""
import json, os, sys, time
variant, steps, warmup, data_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
n = 100 * (steps + warmup)
if variant == "stock":
    saved = dict(os.environ)
    import tensorflow as tf  # TensorFlow's own defaults: nothing set before it loads
    from reprodl import data, models  # importing reprodl pins os.environ: undo before any op
    os.environ.clear()
    os.environ.update(saved)
else:
    import reprodl
    reprodl.setup(0)
    import tensorflow as tf
    from reprodl import data, models
import keras
from reprodl import _tf, training

mnist = data.load_mnist(data_dir)
split = data.Split(mnist.train.images[:n], mnist.train.labels[:n])
model = models.build("cnn", 0)
optimizer = training.make_optimizer("adam", 2e-3)
times = []  # when each step ended; a CPU step is done when its call returns
if variant.startswith("own-loop"):
    record = training.train(model, split, steps=warmup + steps, batch_size=100,
                            optimizer=optimizer, order_seed=0, lanes=variant == "own-loop",
                            on_step=lambda n, loss: times.append(time.perf_counter()))
    bits = record.final_digest
else:
    bits = None

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.to_float(split.images), split.labels, batch_size=100, epochs=1,
              shuffle=variant == "stock", verbose=0, callbacks=[Clock()])
rate = steps / (times[-1] - times[warmup - 1])  # the same clock for every variant
print(json.dumps({
    "variant": variant, "steps_per_second": rate, "fingerprint": bits,
    "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    "op_determinism": _tf.is_op_determinism_enabled(),
    "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
}))
"""

# Variables through which reprodl pins a process; the stock child must start without them.
_PIN_PREFIXES = ("TF_", "ONEDNN", "OMP_", "OPENBLAS", "MKL_", "NPY_", "PYTHONHASHSEED")


def child_env(variant: str) -> dict[str, str]:
    """The environment of one measurement's process: the stock one starts without the pins."""
    env = dict(os.environ)
    if variant == "stock":
        env = {k: v for k, v in env.items() if not k.startswith(_PIN_PREFIXES)}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet, changes nothing else
    return env


def _line(repeat: int, result: dict) -> str:
    return (
        f"repeat {repeat} {result['variant']:<10} {result['steps_per_second']:6.2f} steps/s  "
        f"(intra {result['intra_op_threads']}, inter {result['inter_op_threads']}, "
        f"determinism {result['op_determinism']}, oneDNN opts {result['onednn_opts']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _alternating.add_options(parser, steps=150, warmup=20)
    args = parser.parse_args(argv)

    import reprodl  # noqa: F401  (after the children's environment is read: only for reports)
    from reprodl import _io, cpu
    from reprodl.env import report

    runs, median = _alternating.run(_CHILD, VARIANTS, args, child_env, _line)
    ratios = {
        "own-loop / stock": median["own-loop"] / median["stock"],
        "pinned-fit / stock": median["pinned-fit"] / median["stock"],
        "own-loop / pinned-fit": median["own-loop"] / median["pinned-fit"],
        "own-loop / own-loop-whole": median["own-loop"] / median["own-loop-whole"],
    }
    for variant in VARIANTS:
        print(f"median {variant:<10} {median[variant]:6.2f} steps/s")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if args.out:
        record = {
            "benchmark": "price_of_exactness",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "model": "cnn",
            "batch_size": 100,
            "optimizer": "adam 2e-3",
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "machine": cpu.machine(),
            "versions": report.installed_versions(),
            "runs": runs,
            "median_steps_per_second": median,
            "ratios": ratios,
        }
        print(f"record: {_io.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
