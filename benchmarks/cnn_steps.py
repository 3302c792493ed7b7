"""Benchmark: deep-CNN training steps per second, op determinism on vs off, own loop vs Keras fit.

Usage: python benchmarks/cnn_steps.py [--steps 200] [--batch-size 50] [--repeats 2] [--out FILE]

Runs alternate (on, off, on, off, ...) in one process so that a busy machine hurts both sides
alike; each timing excludes a warm-up (tracing, first allocations). Prints one line per
measurement and a summary, and writes a JSON record with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import reprodl
from reprodl import runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="cnn", choices=["softmax", "mlp", "cnn"])
    parser.add_argument("--out", type=Path, help="JSON record (default: print only)")
    args = parser.parse_args(argv)

    reprodl.setup(0)
    from reprodl import data, models, training
    from reprodl.data import Split

    mnist = data.load_mnist()
    n = args.batch_size * (args.steps + args.warmup)
    subset = Split(mnist.train.images[:n], mnist.train.labels[:n])

    def own_loop(determinism: bool) -> float:
        runtime.set_op_determinism(determinism)
        model = models.build(args.model, seed=0)
        opt = training.make_optimizer("adam", 1e-3)
        rec = training.train(
            model,
            subset,
            steps=args.steps + 1,
            batch_size=args.batch_size,
            optimizer=opt,
            order_seed=0,
        )
        return rec.steps_per_second  # excludes the first step, which traces the function

    def keras_fit() -> float:
        runtime.set_op_determinism(True)
        model = models.build(args.model, seed=0)
        warm = Split(
            subset.images[: args.batch_size * args.warmup],
            subset.labels[: args.batch_size * args.warmup],
        )
        opt = training.make_optimizer("adam", 1e-3)
        training.fit_quietly(
            model,
            warm,
            epochs=1,
            batch_size=args.batch_size,
            optimizer=opt,
            shuffle=False,
            printer=None,
        )
        timed = Split(
            subset.images[: args.batch_size * args.steps],
            subset.labels[: args.batch_size * args.steps],
        )
        start = time.perf_counter()
        model.fit(
            data.to_float(timed.images),
            timed.labels,
            epochs=1,
            batch_size=args.batch_size,
            shuffle=False,
            verbose=0,
        )
        return args.steps / (time.perf_counter() - start)

    results: dict[str, list[float]] = {
        "loop_determinism_on": [],
        "loop_determinism_off": [],
        "keras_fit_determinism_on": [],
    }
    for r in range(args.repeats):
        for key, fn in (
            ("loop_determinism_on", lambda: own_loop(True)),
            ("loop_determinism_off", lambda: own_loop(False)),
            ("keras_fit_determinism_on", keras_fit),
        ):
            rate = fn()
            results[key].append(rate)
            print(f"repeat {r + 1} {key}: {rate:.2f} steps/s", flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    overhead = med["loop_determinism_off"] / med["loop_determinism_on"] - 1
    print("median steps/s: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    print(f"op determinism overhead (own loop): {overhead:+.1%}")
    print(
        f"own loop vs Keras fit (determinism on): "
        f"{med['loop_determinism_on'] / med['keras_fit_determinism_on']:.2f}x"
    )
    if args.out:
        record = {
            "benchmark": "cnn_steps",
            "model": args.model,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "steps_per_second": results,
            "median": med,
            "determinism_overhead": overhead,
            "environment": runtime.environment_report(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
