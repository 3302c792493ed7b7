"""Lanes: a training step's big ops cut into pieces that give the bits of the whole op.

Under the pins every op runs on one thread (a thread count above one lets oneDNN split sums in a
CPU-dependent way; see :mod:`reprodl.runtime`), and the two inter-op threads can only run ops
that do not depend on each other. A Sequential model is one chain of ops, so for much of a step
one core idles. :func:`lane_forward` cuts the largest ops into independent pieces, which the two
inter-op threads run side by side, along dimensions whose elements the op computes separately:

- ``Conv2D``: the forward pass and the gradient of its input by images (the batch), the kernel's
  gradient by output channels;
- ``Dense`` (wide ones): the forward pass by output units (the kernel's columns). Its two
  gradient products are independent of each other already, and run side by side whole.

From a ``Conv2D`` on, the layers that compute each image by itself (``MaxPooling2D``,
``Reshape``, ``Flatten``) run on each piece of the batch, so the pieces meet only where a layer
needs the whole batch.

No cut splits a sum over its own dimension, and the sums over the batch (the bias gradients, the
kernel gradient's sum over images) stay whole. That is not enough for the bits: oneDNN chooses
its implementation and its blocking by the shape it is given, so a piece may be computed with
another order of additions than the whole op. Whether a cut is exact is therefore measured, not
assumed: :func:`cuts_are_exact` runs each cut layer both ways once, on this CPU, for the shapes
of the step, and a layer whose cut changes a bit runs whole. ``tests/test_lanes.py`` checks
whole trainings of the book's models bit for bit; that is a guarantee for those models on the
CPUs tested, not for every model. Layers that are small, not plain ReLU/linear, or of another
kind run as Keras runs them.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import warnings
from collections.abc import Callable
from typing import Any

from reprodl import _tf

#: Smallest ``Dense`` width (units) and ``Conv2D`` filter count whose kernel-side cuts pay for
#: their slicing and concatenation; smaller layers stay whole.
MIN_DENSE_UNITS = 256
MIN_CONV_FILTERS = 32
#: How many pieces each cut makes: by images for a ``Conv2D`` (forward pass and input gradient),
#: by output channels for its kernel gradient, by output units for a wide ``Dense``'s forward
#: pass. More pieces than threads keep both threads busy when one piece waits; four measured
#: faster than two on the book's CNN (``benchmarks/price_of_exactness.py``).
BATCH_PIECES = 4
KERNEL_PIECES = 4
DENSE_PIECES = 4


def lane_forward(model: Any) -> Callable[[Any], Any]:
    """The training-mode forward pass of ``model`` with its big layers cut into pieces.

    For a ``keras.Sequential`` model, returns a function of the input batch that computes the
    same outputs and, under a ``GradientTape``, the same gradients bit for bit as
    ``model(x, training=True)``, with the cuts described in the module's docstring. The
    pieces of the batch stay apart from a ``Conv2D`` on through the layers that compute each
    image by itself, so that they run without waiting for each other. Any other model is called
    as it is.
    """
    import keras
    import tensorflow as tf

    if not isinstance(model, keras.Sequential) or not model.built:
        return lambda x: model(x, training=True)
    plan = [(layer, _kind(layer)) for layer in model.layers]

    def forward(x):
        state = x  # one tensor, or a tuple of the batch's pieces
        for layer, kind in plan:
            if kind in ("conv", "dense") and not cuts_are_exact(layer, kind, _whole_shape(state)):
                kind = "whole"
            if kind == "conv":
                parts = state if isinstance(state, tuple) else tuple(_split(state, 0, BATCH_PIECES))
                state = _conv2d(layer)(*parts, layer.kernel, layer.bias)
            elif kind == "per-image" and isinstance(state, tuple):
                state = tuple(layer(piece, training=True) for piece in state)
            else:
                whole = tf.concat(state, 0) if isinstance(state, tuple) else state
                if kind == "dense":
                    state = _dense(_activation(layer))(whole, layer.kernel, layer.bias)
                else:
                    state = layer(whole, training=True)
        return tf.concat(state, 0) if isinstance(state, tuple) else state

    return forward


#: The verdicts of :func:`cuts_are_exact`, by layer configuration and input shape.
_VERDICTS: dict[tuple, bool] = {}


def cuts_are_exact(layer: Any, kind: str, shape: tuple[int, ...] | None) -> bool:
    """Whether ``layer``'s cuts give the whole layer's bits, forward and backward, on this CPU for
    inputs of ``shape``: measured once per configuration and shape, and remembered.

    Which kernel oneDNN runs depends on the shapes, and a smaller shape can take a path with
    another order of additions (the book's CNN is exact; a ``Dense`` of 12,544 inputs and 300
    units is not). The kernel's choice does not depend on the values, so one run of both forms
    on random values of the real shapes, compiled as the step is, settles it for every batch.
    """
    import numpy as np
    import tensorflow as tf

    if shape is None or None in shape:
        return False
    # the layer's configuration, and the process settings that pick kernels and may change
    settings = (
        _tf.is_op_determinism_enabled(),
        tf.config.threading.get_intra_op_parallelism_threads(),
    )
    key = (kind, shape, tuple(layer.kernel.shape), getattr(layer, "strides", None),
           getattr(layer, "padding", None), _activation(layer), settings)  # fmt: skip
    if key not in _VERDICTS:
        if kind == "conv":
            conv = _conv2d(layer)

            def cut(x):
                return tf.concat(conv(*_split(x, 0, BATCH_PIECES), layer.kernel, layer.bias), 0)
        else:
            dense = _dense(_activation(layer))

            def cut(x):
                return dense(x, layer.kernel, layer.bias)

        @tf.function(autograph=False)
        def both(x):
            # tf.gradients, not a GradientTape: tapes are paused under tf.init_scope
            sources = [x, layer.kernel.value, layer.bias.value]
            whole, parts = layer(x, training=True), cut(x)
            upstream = tf.cos(7 * whole)  # any values: what matters is the kernels' paths
            return (
                [whole, *tf.gradients(whole, sources, grad_ys=upstream)],
                [parts, *tf.gradients(parts, sources, grad_ys=upstream)],
            )

        with tf.init_scope():  # run now, eagerly, even while a step is being traced
            x = tf.constant(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
            try:
                whole, parts = both(x)
                _VERDICTS[key] = all(
                    np.array_equal(a.numpy(), b.numpy()) for a, b in zip(whole, parts, strict=True)
                )
            except Exception as error:  # noqa: BLE001  (any failure: the layer runs whole)
                warnings.warn(
                    f"lanes: {layer.name} runs whole, its cut could not be probed: {error}",
                    stacklevel=2,
                )
                _VERDICTS[key] = False
    return _VERDICTS[key]


def _whole_shape(state: Any) -> tuple[int, ...] | None:
    """The static shape of the whole batch that ``state`` (a tensor or the batch's pieces) holds."""
    if not isinstance(state, tuple):
        return tuple(state.shape) if state.shape.rank is not None else None
    shapes = [tuple(piece.shape) for piece in state]
    if any(shape[0] is None for shape in shapes):
        return None
    return (sum(shape[0] for shape in shapes), *shapes[0][1:])


def _kind(layer: Any) -> str:
    """How :func:`lane_forward` runs ``layer``: "conv" or "dense" (cut into pieces),
    "per-image" (on each piece of the batch), or "whole"."""
    import keras

    kind = type(layer)  # exactly these classes: a subclass may compute something else
    if kind in (keras.layers.MaxPooling2D, keras.layers.Reshape, keras.layers.Flatten):
        return "per-image"  # moves and maxima only: the pieces give the whole call's bits
    if kind not in (keras.layers.Conv2D, keras.layers.Dense) or not layer.use_bias:
        return "whole"
    if _activation(layer) is None or layer.dtype_policy.name != "float32":
        return "whole"  # other activations, mixed precision and quantized layers run whole
    if kind is keras.layers.Conv2D and _plain_conv(layer):
        return "conv"
    if kind is keras.layers.Dense and layer.units >= MIN_DENSE_UNITS:
        return "dense"
    return "whole"


def _activation(layer: Any) -> bool | None:
    """True for ReLU, False for linear, None for any other activation."""
    import keras

    activation = getattr(layer, "activation", None)
    if activation is keras.activations.relu:
        return True
    if activation is keras.activations.linear:
        return False
    return None


def _plain_conv(layer: Any) -> bool:
    """A channels-last, ungrouped, undilated convolution."""
    return (
        layer.data_format == "channels_last"
        and layer.groups == 1
        and all(d == 1 for d in layer.dilation_rate)
    )


def _split(x: Any, axis: int, pieces: int) -> list[Any]:
    """``x`` cut in ``pieces`` near-equal parts along ``axis`` (its size is static: a layer is
    only cut after :func:`cuts_are_exact` probed its static shape), by one op: when it is done,
    all the pieces' next ops are ready at once and the executor spreads them over its threads
    (slices, run one after the other, can leave the next ops on one thread)."""
    import tensorflow as tf

    n = x.shape[axis]
    sizes = [(n * (i + 1)) // pieces - (n * i) // pieces for i in range(pieces)]
    return tf.split(x, sizes, axis=axis, num=pieces)


def _conv2d(layer: Any) -> Callable[..., Any]:
    """``relu?(conv2d(x, k) + b)`` on the batch's pieces: the forward pass and the input's
    gradient for each piece apart, the bias and kernel gradients over the whole batch, the
    kernel's in :data:`KERNEL_PIECES` pieces by output channels (wide layers only)."""
    import tensorflow as tf
    from tensorflow.python.ops import gen_nn_ops

    relu = _activation(layer)
    strides = [1, *layer.strides, 1]
    padding = layer.padding.upper()
    backprop_filter = tf.compat.v1.nn.conv2d_backprop_filter
    backprop_input = tf.compat.v1.nn.conv2d_backprop_input

    @tf.custom_gradient
    def conv(*args):
        *xs, kernel, bias = args

        def one(x):
            out = tf.nn.bias_add(tf.nn.convolution(x, kernel, layer.strides, padding), bias)
            return tf.nn.relu(out) if relu else out

        ys = tuple(one(x) for x in xs)

        def grad(*dys):
            gs = [gen_nn_ops.relu_grad(d, y) if relu else d for d, y in zip(dys, ys, strict=True)]
            g, x = tf.concat(gs, 0), tf.concat(xs, 0)
            d_bias = gen_nn_ops.bias_add_grad(g)
            if kernel.shape[-1] >= MIN_CONV_FILTERS:
                parts = _split(g, 3, KERNEL_PIECES)
                sizes = [[*kernel.shape[:3], part.shape[-1]] for part in parts]
                d_kernel = tf.concat(
                    [
                        backprop_filter(x, size, part, strides, padding)
                        for size, part in zip(sizes, parts, strict=True)
                    ],
                    3,
                )
            else:
                d_kernel = backprop_filter(x, tf.shape(kernel), g, strides, padding)
            d_xs = [
                backprop_input(tf.shape(x), kernel, g, strides, padding)
                for x, g in zip(xs, gs, strict=True)
            ]
            return (*d_xs, d_kernel, d_bias)

        return ys, grad

    return conv


def _dense(relu: bool) -> Callable[..., Any]:
    """``relu?(x @ w + b)`` with the forward pass in :data:`DENSE_PIECES` pieces by output units;
    the kernel's and the input's gradients are two independent products already, which the two
    inter-op threads run side by side."""
    import tensorflow as tf
    from tensorflow.python.ops import gen_math_ops, gen_nn_ops

    @tf.custom_gradient
    def dense(x, kernel, bias):
        def one(w, b):
            out = tf.nn.bias_add(tf.matmul(x, w), b)
            return tf.nn.relu(out) if relu else out

        parts = zip(_split(kernel, 1, DENSE_PIECES), _split(bias, 0, DENSE_PIECES), strict=True)
        y = tf.concat([one(w, b) for w, b in parts], 1)

        def grad(dy):
            g = gen_nn_ops.relu_grad(dy, y) if relu else dy
            d_bias = gen_nn_ops.bias_add_grad(g)
            d_kernel = gen_math_ops.mat_mul(x, g, transpose_a=True)
            d_x = gen_math_ops.mat_mul(g, kernel, transpose_b=True)
            return d_x, d_kernel, d_bias

        return y, grad

    return dense
