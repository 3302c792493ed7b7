"""A training script written as published Keras examples are (keras.io's "Simple MNIST convnet"
and its reproducibility recipe): a ``Sequential`` without ``keras.Input`` (``fit`` builds it from
the first batch), ``fit`` on NumPy arrays with a validation split, and its history written to a
fixed file name, ``history.json``, in the working directory. Only the data is read differently:
the real MNIST files from ``$REPRODL_DATA`` (the tests have no internet), 2,000 images of it.

usage: keras_example.py [--record]   (--record adds reprodl.keras.RecordRun() to the callbacks)
"""

import gzip
import json
import os
import sys

import keras
import numpy as np
from keras import layers


def load(name: str, offset: int) -> np.ndarray:
    with gzip.open(os.path.join(os.environ["REPRODL_DATA"], f"{name}.gz")) as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


keras.utils.set_random_seed(1337)
x_train = load("train-images-idx3-ubyte", 16).reshape(-1, 28, 28, 1)[:2000].astype("float32") / 255
y_train = keras.utils.to_categorical(load("train-labels-idx1-ubyte", 8)[:2000], 10)

model = keras.Sequential(
    [
        layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ]
)
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
callbacks = []
if "--record" in sys.argv:
    from reprodl.keras import RecordRun

    callbacks.append(RecordRun())
history = model.fit(
    x_train, y_train, batch_size=128, epochs=1, validation_split=0.1, callbacks=callbacks, verbose=0
)
with open("history.json", "w") as fh:
    json.dump(history.history, fh)
