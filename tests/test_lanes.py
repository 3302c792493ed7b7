"""Lanes give the plain step's bits: same losses and per-variable digests at every step.

These tests are the evidence behind :mod:`reprodl.training.lanes`: a cut that changes one bit
(another kernel path for a smaller shape, a gradient assembled in another order) fails them.
The real-MNIST runs use the book's models and batch size; the synthetic ones cover the other
layer shapes the lanes accept and the layers they must leave alone.
"""

import functools

import numpy as np
import pytest
from support import run_python

import reprodl
from reprodl import data, models, training
from reprodl.training import lanes


@pytest.fixture(autouse=True)
def _setup():
    reprodl.setup(0)


def _record(model, split, steps, lanes_on, batch_size=100):
    optimizer = training.make_optimizer("adam", 2e-3)
    return training.train(
        model, split, steps=steps, batch_size=batch_size, optimizer=optimizer, order_seed=0,
        digest_every=1, lanes=lanes_on,
    )  # fmt: skip


def _same_run(a, b):
    """Same losses, and the same digests of every variable after every step (by position: two
    builds of an unnamed model name their layers apart)."""
    assert a.losses.tobytes() == b.losses.tobytes()
    assert a.digests.keys() == b.digests.keys()
    for step in a.digests:
        assert list(a.digests[step].values()) == list(b.digests[step].values()), step
    assert list(a.final_digests.values()) == list(b.final_digests.values())


@pytest.mark.slow  # real MNIST and the deep CNN: not for the fast lane
@pytest.mark.parametrize(("name", "steps"), [("softmax", 30), ("mlp", 30), ("cnn", 12)])
def test_book_models_train_the_same_bits_in_lanes(mnist_dir, name, steps):
    mnist = data.load_mnist(mnist_dir)
    split = data.Split(mnist.train.images[:5000], mnist.train.labels[:5000])
    plain = _record(models.build(name, 0), split, steps, lanes_on=False)
    two = _record(models.build(name, 0), split, steps, lanes_on=True)
    _same_run(plain, two)


def _small_cnn(seed, padding, strides, activation, filters):
    import keras

    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(
                filters,
                3,
                strides=strides,
                padding=padding,
                activation=activation,
                kernel_initializer=init(seed),
                bias_initializer=init(seed + 1),
            ),  # fmt: skip
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(
                300,
                activation=activation,
                kernel_initializer=init(seed + 2),
                bias_initializer=init(seed + 3),
            ),  # fmt: skip
            keras.layers.Dense(10, kernel_initializer=init(seed + 4)),
        ]
    )


@pytest.mark.parametrize(
    ("padding", "strides", "activation", "filters", "batch"),
    [
        ("same", 1, "relu", 64, 10),
        ("valid", 2, None, 65, 7),  # odd filter count and odd batch: unequal pieces
        ("same", 1, "tanh", 64, 10),  # another activation: the layers run whole
    ],
)
def test_other_shapes_train_the_same_bits(digits, padding, strides, activation, filters, batch):
    def build():
        return _small_cnn(3, padding, strides, activation, filters)

    plain = _record(build(), digits, 6, lanes_on=False, batch_size=batch)
    two = _record(build(), digits, 6, lanes_on=True, batch_size=batch)
    _same_run(plain, two)


def test_the_cnn_is_really_cut():
    """The lanes must not fall back silently: the CNN's step holds each layer's pieces."""
    import tensorflow as tf

    model = models.build("cnn", 0)
    kinds = [lanes._kind(layer) for layer in model.layers]
    assert kinds == ["per-image", "conv", "per-image", "conv", "per-image", "per-image", "dense",
                     "whole", "whole"]  # fmt: skip
    forward = lanes.lane_forward(model)
    x = tf.zeros((100, 28, 28))  # the book's batch: its cuts are measured exact
    graph = tf.function(lambda x: forward(x)).get_concrete_function(x).graph
    ops = [op.type for op in graph.get_operations()]
    assert ops.count("Conv2D") == 2 * lanes.BATCH_PIECES  # two layers, cut by images
    assert ops.count("MatMul") == lanes.DENSE_PIECES + 1  # dense_1024 cut by units, logits whole


def test_a_model_that_is_not_sequential_is_called_as_it_is():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(300, activation="relu")(inputs))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    assert np.array_equal(lanes.lane_forward(model)(x), model(x, training=True))


def test_a_cut_that_changes_the_bits_is_refused(digits, monkeypatch):
    """The probe protects the contract: a Dense 'cut' that splits the sum over the inputs (two
    partial products added) changes the bits, so the layer must run whole."""
    import tensorflow as tf

    def split_sum(relu):
        def dense(x, kernel, bias):
            h = kernel.shape[0] // 2
            out = tf.nn.bias_add(x[:, :h] @ kernel[:h] + x[:, h:] @ kernel[h:], bias)
            return tf.nn.relu(out) if relu else out

        return dense

    monkeypatch.setattr(lanes, "_VERDICTS", {})
    monkeypatch.setattr(lanes, "_dense", split_sum)
    model = models.build("mlp", 0, hidden=(256,))
    assert not lanes.cuts_are_exact(model.layers[1], "dense", (100, 784))
    plain = _record(models.build("mlp", 0, hidden=(256,)), digits, 4, lanes_on=False)
    two = _record(model, digits, 4, lanes_on=True)
    _same_run(plain, two)


def test_mixed_precision_layers_run_whole(digits):
    import keras

    def build():
        return keras.Sequential(
            [
                keras.Input((28, 28)),
                keras.layers.Flatten(),
                keras.layers.Dense(256, activation="relu", dtype="mixed_float16",
                                   kernel_initializer=keras.initializers.GlorotUniform(5)),
                keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(6)),
            ]
        )  # fmt: skip

    assert lanes._kind(build().layers[1]) == "whole"
    if _half_matmul_crashes():
        pytest.skip(
            "a float16 MatMul under the pins (oneDNN on, ISA capped at AVX2) kills TensorFlow "
            "2.21 on this CPU (its CPUID has AVX-512 half-precision extensions): not trained here"
        )
    _same_run(
        _record(build(), digits, 3, lanes_on=False), _record(build(), digits, 3, lanes_on=True)
    )


@functools.cache
def _half_matmul_crashes() -> bool:
    """Does one float16 MatMul under the pins kill a fresh interpreter on this CPU? (Measured on
    an Intel Xeon with AVX512_FP16 and AMX: a segmentation fault, for bfloat16 too; an AMD Zen 4
    runs it.) Probed in a child, so that it cannot kill the test process."""
    code = (
        "import reprodl; reprodl.setup(0)\nimport tensorflow as tf\n"
        "x = tf.ones((4, 8), tf.float16)\n"
        "print(float(tf.reduce_sum(tf.matmul(x, tf.transpose(x)))))"
    )
    result = run_python("-c", code, timeout=300)
    return result.returncode < 0


def test_a_cut_that_cannot_be_probed_runs_whole_with_a_warning(digits, monkeypatch):
    def broken(relu):
        def dense(x, kernel, bias):
            raise TypeError("no such cut")

        return dense

    monkeypatch.setattr(lanes, "_VERDICTS", {})
    monkeypatch.setattr(lanes, "_dense", broken)
    model = models.build("mlp", 0, hidden=(256,))
    with pytest.warns(UserWarning, match="hidden_1 runs whole.*no such cut"):
        two = _record(model, digits, 3, lanes_on=True)
    _same_run(_record(models.build("mlp", 0, hidden=(256,)), digits, 3, lanes_on=False), two)
