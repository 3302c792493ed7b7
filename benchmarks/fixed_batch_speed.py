"""Benchmark: the price of batch-invariant inference (chapter 14).

Under the pins, for each of the book's four models (built with seed 0), the time to answer
MNIST test images four ways, alternating within one run (``--repeats`` rounds, each way once per
round, medians reported):

- ``call``: one call on all the images (fastest; not batch-invariant);
- ``predict``: Keras ``predict`` (batches of 32; not batch-invariant);
- ``fixed-100``: :class:`reprodl.serving.FixedBatch` with batches of exactly 100 rows;
- ``fixed-1``: every image alone (invariant by construction), timed on the first 200 images;

and the latency of one request of one image: a plain call against a padded batch of 100.

Usage: python benchmarks/fixed_batch_speed.py [--images 1000] [--repeats 3] [--out F]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time

import reprodl

reprodl.setup(0)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from reprodl import _io, data, models  # noqa: E402
from reprodl.env import cpu, report  # noqa: E402
from reprodl.serving import FixedBatch  # noqa: E402

MODELS = ("softmax", "mlp", "cnn", "lstm")
WAYS = ("call", "predict", "fixed-100", "fixed-1")
ALONE_IMAGES = 200


def _answer(way: str, model, x: np.ndarray) -> None:
    if way == "call":
        keras.ops.convert_to_numpy(model(x, training=False))
    elif way == "predict":
        model.predict(x, verbose=0)
    else:
        FixedBatch(model, int(way.split("-")[1]))(x)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(images: int, repeats: int) -> dict:
    """Images per second per model and way, and one-image latencies, as medians."""
    x = data.to_float(data.load_mnist().test.images[:images])
    rates: dict = {m: {w: [] for w in WAYS} for m in MODELS}
    latency: dict = {m: {"call": [], "fixed-100": []} for m in MODELS}
    built = {}
    for name in MODELS:
        keras.utils.set_random_seed(0)
        built[name] = models.row_lstm(0) if name == "lstm" else models.build(name, seed=0)
    for repeat in range(repeats + 1):  # round 0 warms up (first calls trace and allocate)
        for name, model in built.items():
            xs = x.reshape(-1, *model.input_shape[1:])
            for way in WAYS:
                part = xs[:ALONE_IMAGES] if way == "fixed-1" else xs
                seconds = _timed(lambda w=way, p=part, m=model: _answer(w, m, p))
                if repeat:
                    rates[name][way].append(len(part) / seconds)
            for way in ("call", "fixed-100"):
                seconds = _timed(lambda w=way, m=model, one=xs[:1]: _answer(w, m, one))
                if repeat:
                    latency[name][way].append(1000 * seconds)
        if repeat:
            print(f"round {repeat}: " + ", ".join(
                f"{m} {rates[m]['call'][-1]:.0f}/{rates[m]['fixed-100'][-1]:.0f}/"
                f"{rates[m]['fixed-1'][-1]:.0f} img/s" for m in MODELS), flush=True)  # fmt: skip
    med = statistics.median
    return {
        "images_per_second": {
            m: {w: round(med(v), 1) for w, v in r.items()} for m, r in rates.items()
        },
        "one_image_ms": {
            m: {w: round(med(v), 2) for w, v in r.items()} for m, r in latency.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="JSON record (default: print only)")
    args = parser.parse_args()
    result = measure(args.images, args.repeats)
    record = {
        "what": "the price of batch-invariant inference: images per second and one-image latency",
        "date": datetime.date.today().isoformat(),
        "cpu": cpu.describe().model_name,
        "versions": report.installed_versions(),
        "images": args.images,
        "alone_images": ALONE_IMAGES,
        "repeats": args.repeats,
        **result,
    }
    for name in MODELS:
        print(name, record["images_per_second"][name], record["one_image_ms"][name])
    if args.out:
        _io.write_json(args.out, record, sort_keys=True)
        print(f"record: {args.out}")


if __name__ == "__main__":
    main()
