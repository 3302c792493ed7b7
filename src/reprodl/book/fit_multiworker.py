"""Chapter 12's experiment: Keras ``fit`` as one worker of a ``MultiWorkerMirroredStrategy`` run.

It fails at its first step under TensorFlow 2.21 / Keras 3.15 ("PerReplica ... to a Tensor"),
which chapter 12 shows by running it (``distributed.run_workers(..., trainer="fit")``); the
package's own loop trains the same run. Why it fails, and how to run the experiment by hand:
``tools/probes/fit_multiworker.py``. Kept as a chapter aid, outside the training engine.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import argparse
import time
from typing import Any

import numpy as np

from reprodl.batches import IndexStream
from reprodl.data import Split, to_float
from reprodl.distributed import build_replicated
from reprodl.record import fingerprint
from reprodl.training.loop import loss_function


def fit_worker(
    strategy: Any, split: Split, test: Split | None, args: argparse.Namespace
) -> dict[str, Any]:
    """Keras ``fit`` in the worker: compiled in the scope, a ``tf.data`` input of the same global
    batches, per-step losses: a worker's result without digests (``trainer`` ``fit``)."""
    import keras
    import tensorflow as tf

    start = time.perf_counter()
    model, optimizer = build_replicated(
        strategy, args.seed, (128,), args.dropout, args.dropout_masks
    )
    build_seconds = time.perf_counter() - start
    stream = IndexStream(len(split), seed=args.seed)
    flat = np.concatenate([stream.next(args.batch_size) for _ in range(args.steps)])
    ds = tf.data.Dataset.from_tensor_slices((to_float(split.images)[flat], split.labels[flat]))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.batch(args.batch_size, drop_remainder=True).with_options(options)
    seen: list[float] = []
    on_batch = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda _, logs: seen.append(float(logs["loss"]))
    )
    with strategy.scope():
        model.compile(optimizer=optimizer, loss=loss_function())
    start = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[on_batch])
    seconds = time.perf_counter() - start
    return {
        "losses": [float(x) for x in np.array(seen, dtype=np.float32)],
        "fingerprint": fingerprint.weights_digest(model),
        "build_seconds": build_seconds,
        "first_step_seconds": seconds,
        "seconds_per_step": seconds / args.steps,
    }
