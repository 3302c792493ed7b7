"""Reproducible Keras training on MNIST without reprodl: a recipe to copy into your own code.

    PYTHONHASHSEED=0 python examples/train_keras.py [--data DIR] [--epochs N] [--output FILE]

Run it twice: every printed digit, the weights' fingerprint included, comes back. ``--data`` is a
folder with MNIST's four IDX ``.gz`` files; without it Keras downloads MNIST.
"""

import argparse
import gzip
import hashlib
import os
from pathlib import Path

# Read once, when TensorFlow loads: set them before it is imported.
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # TensorFlow's oneDNN kernels, chosen as below
os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"  # the same instruction set on every x86-64 CPU
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"  # how an op splits its sums changes their rounding
os.environ["TF_NUM_INTEROP_THREADS"] = "2"  # independent ops side by side: changes no bit
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # no start-up chatter

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SEED = 0


def idx(path: Path) -> np.ndarray:
    """One MNIST IDX file: the dimensions after the magic number, then the uint8 data."""
    raw = gzip.decompress(path.read_bytes())
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def mnist(folder: str | None):
    if folder is None:
        return keras.datasets.mnist.load_data()
    d = Path(folder)
    return [(idx(d / f"{p}-images-idx3-ubyte.gz"), idx(d / f"{p}-labels-idx1-ubyte.gz"))
            for p in ("train", "t10k")]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data"), parser.add_argument("--output")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    keras.utils.set_random_seed(SEED)  # Python's random, NumPy, TensorFlow, Keras
    tf.config.experimental.enable_op_determinism()  # deterministic kernels, or an error
    # GPUs of the Ampere generation and later round float32 matmuls and convolutions to
    # TensorFloat-32 by default, which changes bits; off: full float32. No effect on a CPU.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    (x, y), (x_test, y_test) = mnist(args.data)
    x, x_test = (a.reshape(len(a), 784).astype("float32") / 255 for a in (x, x_test))
    model = keras.Sequential([  # every random layer with a seed of its own
        keras.Input((784,)),
        keras.layers.Dense(128, "relu", kernel_initializer=keras.initializers.GlorotUniform(1)),
        keras.layers.Dropout(0.2, seed=2),
        keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(3)),
    ])  # fmt: skip
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # No XLA: it compiles kernels of its own. Keras' default "auto" is already False on a
    # CPU-only machine and whenever op determinism is on; stated, so no version changes it.
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"], jit_compile=False)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=4).batch(100)
    history = model.fit(batches, epochs=args.epochs, shuffle=False, verbose=0)  # shuffled above
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    digest = hashlib.sha256(b"".join(w.numpy().tobytes() for w in model.weights)).hexdigest()
    line = f"loss {history.history['loss'][-1]!r}, test accuracy {accuracy!r}, fingerprint {digest}"
    print(line)
    if args.output:
        Path(args.output).write_text(line + "\n")


if __name__ == "__main__":
    main()
