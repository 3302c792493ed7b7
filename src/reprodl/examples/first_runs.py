"""Chapter 1's two experiments as a reader writes them: plain Keras, no seed anywhere.

    python first_runs.py [--data DIR] [--runs N]

Trains the sequence model of experiment 1 and the MNIST network of experiment 2, ``--runs`` times
(default 1), and prints one JSON line per trained model. Nothing here seeds a random generator,
pins a thread count or an instruction set, or imports reprodl: started as a new process, it is a
program that nobody seeded. ``--data`` is a folder with MNIST's four IDX ``.gz`` files; without it
Keras downloads MNIST. Chapter 1 runs it in fresh processes, and calls its two functions again in
a seeded kernel.
"""

import argparse
import gzip
import hashlib
import json
from pathlib import Path

import keras
import numpy as np


def fingerprint(model) -> str:
    """SHA-256 of all the model's weights, in order."""
    return hashlib.sha256(b"".join(w.numpy().tobytes() for w in model.weights)).hexdigest()


def train_sequence_model(length=300, epochs=10, batch_size=16):
    """Experiment 1: predict the next value of 0, 1/300, 2/300, ... with ten hidden units."""
    sequence = np.arange(length + 1, dtype=np.float32) / length
    x, y = sequence[:-1, None], sequence[1:]  # input: one value; target: the value after it
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(10), keras.layers.Dense(1)])
    model.compile(loss="mean_squared_error", optimizer="adam")
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    mse = np.mean((model(x).numpy()[:, 0] - y) ** 2)
    return {"model": "sequence", "mse": float(mse), "fingerprint": fingerprint(model)}


def train_mnist_mlp(train, test, epochs=1, batch_size=100):
    """Experiment 2: 128 ReLU units and dropout, plain gradient descent, on MNIST (pixels 0..1)."""
    (x, y), (x_test, y_test) = train, test
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    return {"model": "mnist", "accuracy": float(accuracy), "fingerprint": fingerprint(model)}


def idx(path: Path) -> np.ndarray:
    """One MNIST IDX file: the dimensions after the magic number, then the uint8 data."""
    raw = gzip.decompress(path.read_bytes())
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def load_mnist(folder):
    """((train images, labels), (test images, labels)) as ``keras.datasets.mnist.load_data`` gives
    them, the pixels scaled to [0, 1]."""
    if folder is None:
        (x, y), (x_test, y_test) = keras.datasets.mnist.load_data()
    else:
        d = Path(folder)
        x, y = idx(d / "train-images-idx3-ubyte.gz"), idx(d / "train-labels-idx1-ubyte.gz")
        x_test, y_test = idx(d / "t10k-images-idx3-ubyte.gz"), idx(d / "t10k-labels-idx1-ubyte.gz")
    return (x.astype("float32") / 255, y), (x_test.astype("float32") / 255, y_test)


def main() -> None:
    parser = argparse.ArgumentParser(description="Chapter 1's experiments, with no seed anywhere.")
    parser.add_argument("--data")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    train, test = load_mnist(args.data)
    for _ in range(args.runs):
        print(json.dumps(train_sequence_model()), flush=True)
        print(json.dumps(train_mnist_mlp(train, test)), flush=True)


if __name__ == "__main__":
    main()
