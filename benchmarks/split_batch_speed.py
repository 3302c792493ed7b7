"""Benchmark: the deep CNN's own-loop step on one batch of 100 vs two halves of 50 side by side.

Usage: python benchmarks/split_batch_speed.py [--steps 120] [--repeats 2] [--out FILE]

The first lead for the price of exactness (target: the own loop as fast as stock Keras), kept
with its record for comparison. Under the pins (1 intra-op thread, 2 inter-op threads) one step
uses one core. Computing the gradients of two fixed halves of the batch in one graph lets the
inter-op threads run them side by side; their mean is added in a fixed order, so the step stays
deterministic, but its bits differ from the whole-batch step (another order of additions):
adopting it would have changed the book's contract. ``reprodl.training.lanes`` took its place: it
cuts only where no sum is split, keeps the whole step's bits, and is faster
(``price_of_exactness.py``). Variants alternate in one process; each prints its steps per
second and the fingerprint after the timed steps, which must repeat.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import reprodl

reprodl.setup(0)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from reprodl import _io, cpu, data, fingerprint, models, runtime, training  # noqa: E402
from reprodl.data import to_float  # noqa: E402

BATCH, WARMUP = 100, 10


def make_step(images, labels, split: bool):
    """A fresh CNN and its step: the whole batch, or two halves whose gradients are averaged."""
    model = models.build("cnn", 0)
    optimizer = training.make_optimizer("adam", 2e-3)
    variables = model.trainable_variables
    loss_fn = training.loss_function()

    def loss_and_gradients(idx):
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.gather(labels, idx), model(tf.gather(images, idx), training=True))
        return loss, tape.gradient(loss, variables)

    @tf.function(input_signature=[tf.TensorSpec([BATCH], tf.int32)])
    def step(idx):
        if split:
            (la, ga), (lb, gb) = (
                loss_and_gradients(idx[: BATCH // 2]),
                loss_and_gradients(idx[BATCH // 2 :]),
            )
            loss, grads = (la + lb) / 2, [(a + b) / 2 for a, b in zip(ga, gb, strict=True)]
        else:
            loss, grads = loss_and_gradients(idx)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return model, step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON record (default: print only)")
    args = parser.parse_args(argv)
    mnist = data.load_mnist()
    images, labels = tf.constant(to_float(mnist.train.images)), tf.constant(mnist.train.labels)
    order = np.random.default_rng(0).permutation(len(mnist.train))
    batches = [order[n * BATCH : (n + 1) * BATCH] for n in range(WARMUP + args.steps)]
    rates: dict[str, list[float]] = {"whole": [], "split": []}
    prints: dict[str, set[str]] = {"whole": set(), "split": set()}
    for repeat in range(args.repeats):
        for variant in rates:
            model, step = make_step(images, labels, split=variant == "split")
            for idx in batches[:WARMUP]:
                step(tf.constant(idx, tf.int32))
            start = time.perf_counter()
            for idx in batches[WARMUP:]:
                step(tf.constant(idx, tf.int32))
            digest = fingerprint.weights_digest(model)  # reads the weights: waits for the steps
            rates[variant].append(args.steps / (time.perf_counter() - start))
            prints[variant].add(digest)
            print(f"repeat {repeat + 1} {variant:<5} {rates[variant][-1]:6.2f} steps/s, "
                  f"fingerprint {fingerprint.short(digest)}", flush=True)  # fmt: skip
    median = {v: float(np.median(r)) for v, r in rates.items()}
    print(f"split / whole: {median['split'] / median['whole']:.2f}x; each variant repeats its "
          f"bits: {all(len(p) == 1 for p in prints.values())}")  # fmt: skip
    if args.out:
        record = {
            "benchmark": "split_batch_speed",
            "model": "cnn",
            "batch_size": BATCH,
            "steps": args.steps,
            "repeats": args.repeats,
            "machine": cpu.machine(),
            "settings": runtime.pinned_settings(),
            "versions": runtime.versions(),
            "steps_per_second": rates,
            "median_steps_per_second": median,
            "fingerprints": {v: sorted(p) for v, p in prints.items()},
        }
        print(f"record: {_io.write_json(args.out, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
