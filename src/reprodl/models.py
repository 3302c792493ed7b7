"""Keras builders for the book's models, every initializer and dropout layer seeded explicitly.

All models take float32 images of shape ``(28, 28)`` in [0, 1] (see :func:`reprodl.data.to_float`)
and return logits; the softmax lives in the loss (``from_logits=True``), which is the numerically
stable form of the classic ``softmax`` + cross-entropy.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
from typing import Any

from reprodl.errors import UsageError
from reprodl.seeds import dropout_seeds, layer_seeds
from reprodl.training import defaults as _defaults
from reprodl.training.defaults import ModelDefaults

#: The book's models, by name (defined in :mod:`reprodl.training.defaults`).
MODELS = _defaults.MODELS

#: The one registry of per-model defaults (:mod:`reprodl.training.defaults`, which the command
#: line reads without pinning the process); ``RunSpec``, the CLI help and the builders read it.
#: The deep CNN decays its rate along a cosine: 99.2% in two epochs (chapter 6).
DEFAULTS: dict[str, ModelDefaults] = _defaults.DEFAULTS


def softmax_regression(seed: int = 0) -> Any:
    """The classic "MNIST for ML beginners" model: ``y = softmax(xW + b)``, W and b start at zero.

    With zero initial weights the seed changes nothing here: only the batch order does.
    """
    import keras

    del seed  # zeros need no randomness; kept for a uniform builder signature
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(
                10, kernel_initializer="zeros", bias_initializer="zeros", name="logits"
            ),
        ],
        name="softmax_regression",
    )


def mlp(
    seed: int = 0,
    hidden: tuple[int, ...] = (128,),
    dropout: float = 0.0,
    dropout_seed: int | None = None,
) -> Any:
    """A fully connected ReLU network; Glorot-uniform weights seeded from ``seed``.

    ``dropout_seed`` seeds the dropout masks separately from the initialisation, so the two
    sources of randomness can be varied one at a time (defaults to one derived from ``seed``).
    """
    import keras

    seeds = layer_seeds(seed, len(hidden) + 2)
    layers: list = [keras.Input((28, 28)), keras.layers.Flatten(name="flatten")]
    for i, width in enumerate(hidden):
        layers.append(
            keras.layers.Dense(
                width,
                activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[i]),
                name=f"hidden_{i + 1}",
            )
        )
        if dropout:
            ds = seeds[-1] + i if dropout_seed is None else dropout_seeds(dropout_seed, i + 1)[i]
            layers.append(keras.layers.Dropout(dropout, seed=ds, name=f"dropout_{i + 1}"))
    layers.append(
        keras.layers.Dense(
            10, kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[-2]), name="logits"
        )
    )
    return keras.Sequential(layers, name="mlp")


def deep_cnn(
    seed: int = 0,
    dropout: float = 0.5,
    dropout_seed: int | None = None,
    init: str = "glorot",
) -> Any:
    """TensorFlow's "Deep MNIST for Experts" network.

    conv 5x5x32 - max-pool 2 - conv 5x5x64 - max-pool 2 - dense 1024 - dropout - dense 10, ReLU
    activations. ``init="classic"`` initialises as the tutorial did (truncated normal with stddev
    0.1, biases 0.1: made for Adam at 1e-4 over 20,000 steps); ``init="glorot"`` (default) uses
    Glorot-uniform weights and zero biases, which train much faster at Adam's usual 1e-3.
    """
    if init not in ("classic", "glorot"):
        raise UsageError(f"init must be 'classic' or 'glorot', got {init!r}")
    import keras

    seeds = layer_seeds(seed, 5)
    bias = keras.initializers.Constant(0.1) if init == "classic" else "zeros"

    def weights(i: int):
        if init == "classic":
            return keras.initializers.TruncatedNormal(stddev=0.1, seed=seeds[i])
        return keras.initializers.GlorotUniform(seed=seeds[i])

    drop_seed = seeds[4] if dropout_seed is None else dropout_seeds(dropout_seed, 1)[0]

    def seeded(i: int) -> dict:
        return {"kernel_initializer": weights(i), "bias_initializer": bias}

    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            layers.Reshape((28, 28, 1), name="image"),
            layers.Conv2D(32, 5, padding="same", activation="relu", name="conv_1", **seeded(0)),
            layers.MaxPooling2D(2, name="pool_1"),
            layers.Conv2D(64, 5, padding="same", activation="relu", name="conv_2", **seeded(1)),
            layers.MaxPooling2D(2, name="pool_2"),
            layers.Flatten(name="flatten"),
            layers.Dense(1024, activation="relu", name="dense_1024", **seeded(2)),
            layers.Dropout(dropout, seed=drop_seed, name="dropout"),
            layers.Dense(10, name="logits", **seeded(3)),
        ],
        name="deep_cnn",
    )


def row_lstm(seed: int = 0, units: int = 64, keras_orthogonal: bool = False) -> Any:
    """An LSTM that reads a digit row by row (28 steps of 28 pixels), then a dense softmax layer.

    Not one of the registry's models: chapter 11 trains it with Keras ``fit``. Every initialiser
    is seeded. The recurrent kernel's orthogonal one is :class:`reprodl.initializers.Orthogonal`,
    not Keras' own: Keras factorises with ``tf.linalg.qr`` (Eigen), whose result depends on the
    CPU's L1 data cache size (``keras_orthogonal=True`` builds it with Keras' own, to show that).
    On a GPU Keras would run this layer as one cuDNN kernel (its defaults: tanh, sigmoid, no
    recurrent dropout, not unrolled); on the CPU it runs TensorFlow's generic loop.
    """
    import keras

    from reprodl.initializers import Orthogonal

    seeds = layer_seeds(seed, 3)
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.LSTM(
                units,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[0]),
                recurrent_initializer=(
                    keras.initializers.Orthogonal(seed=seeds[1])
                    if keras_orthogonal
                    else Orthogonal(seed=seeds[1])
                ),
                name="lstm",
            ),
            keras.layers.Dense(
                10,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[2]),
                name="logits",
            ),
        ],
        name="row_lstm",
    )


def build(name: str, seed: int = 0, **kwargs: Any) -> Any:
    """Build a model by name: ``softmax``, ``mlp`` or ``cnn``."""
    builders = {"softmax": softmax_regression, "mlp": mlp, "cnn": deep_cnn}
    if name not in builders:
        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return builders[name](seed, **kwargs)


def summary_lines(model) -> list[str]:
    """A plain, deterministic layer table (Keras' own summary prints rich boxes and HTML)."""
    rows = [("layer", "output shape", "parameters")]
    for layer in model.layers:
        shape = tuple(layer.output.shape[1:])
        rows.append((layer.name, str(shape), f"{layer.count_params():,}"))
    rows.append(("total", "", f"{model.count_params():,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}" for r in rows]
