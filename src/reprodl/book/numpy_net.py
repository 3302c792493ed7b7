"""The two-layer network of the classic from-scratch notebooks, forward and backward by hand.

``x W1 + b1 -> ReLU -> h W2 + b2 -> softmax -> cross-entropy``, plus L2 regularisation
``reg/2 * (|W1|^2 + |W2|^2)``. Everything is NumPy: the gradients are written out (see
:func:`backward`), checked against central finite differences (:func:`gradient_check`) and against
TensorFlow's ``GradientTape`` (:func:`tf_gradients`). No function modifies its inputs, and the
backward pass divides by the size of the batch it is given, never by a global batch size.

The bits of a float32 run depend on the BLAS kernel and thread count behind ``@``:
importing this module pins both (OpenBLAS Haswell kernels, 1 thread), so training here is
bit-reproducible run to run and across AVX2 machines.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

import numpy as np

from reprodl.batches import IndexStream
from reprodl.errors import UsageError
from reprodl.record import fingerprint
from reprodl.training.results import Evaluation, TrainingRecord

#: Names of the parameters, in the order they are stored, fingerprinted and returned.
NAMES = ("W1", "b1", "W2", "b2")


@dataclass
class Params:
    """The four parameter arrays (also used for their gradients, which have the same shapes)."""

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    def arrays(self) -> list[np.ndarray]:
        """The arrays in the order ``W1, b1, W2, b2`` (what the fingerprint hashes)."""
        return [getattr(self, f.name) for f in fields(self)]

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` pairs in the order ``W1, b1, W2, b2``."""
        return ((f.name, getattr(self, f.name)) for f in fields(self))

    def astype(self, dtype) -> Params:
        """A copy with every array converted to ``dtype``."""
        return Params(*(np.array(a, dtype=dtype) for a in self.arrays()))

    def copy(self) -> Params:
        """An independent copy."""
        return Params(*(a.copy() for a in self.arrays()))

    @property
    def dtype(self) -> np.dtype:
        return self.W1.dtype

    @property
    def size(self) -> int:
        """Total number of parameters."""
        return sum(a.size for a in self.arrays())


@dataclass
class Cache:
    """What the forward pass computed and the backward pass needs (never modified afterwards)."""

    x: np.ndarray  # (n, inputs)
    z1: np.ndarray  # (n, hidden) pre-activations
    h: np.ndarray  # (n, hidden) ReLU(z1)
    logits: np.ndarray  # (n, classes)
    probs: np.ndarray  # (n, classes) softmax(logits)


def init_params(
    rng: np.random.Generator,
    inputs: int = 784,
    hidden: int = 256,
    classes: int = 10,
    dtype=np.float32,
) -> Params:
    """He-normal weights (std ``sqrt(2 / fan_in)``, suited to ReLU) drawn from ``rng``; zero biases.

    The draws depend only on the generator's state, so a seeded ``np.random.default_rng(seed)``
    gives the same weights on every machine.
    """
    dtype = np.dtype(dtype)
    w1 = rng.standard_normal((inputs, hidden), dtype=np.float64) * np.sqrt(2.0 / inputs)
    w2 = rng.standard_normal((hidden, classes), dtype=np.float64) * np.sqrt(2.0 / hidden)
    return Params(
        W1=w1.astype(dtype),
        b1=np.zeros(hidden, dtype=dtype),
        W2=w2.astype(dtype),
        b2=np.zeros(classes, dtype=dtype),
    )


def relu(z: np.ndarray) -> np.ndarray:
    """``max(z, 0)`` elementwise, as a new array (``z`` is left as it was)."""
    return np.maximum(z, 0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax``, computed stably (the row maximum is subtracted first)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax as a new array; subtracting the row maximum keeps ``exp`` finite."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(params: Params, x: np.ndarray) -> Cache:
    """The forward pass on a batch ``x`` of shape ``(n, inputs)``: every intermediate, kept."""
    x = np.asarray(x, dtype=params.dtype)
    z1 = x @ params.W1 + params.b1
    h = relu(z1)
    logits = h @ params.W2 + params.b2  # no ReLU here: logits must be free to be negative
    return Cache(x=x, z1=z1, h=h, logits=logits, probs=softmax(logits))


def l2_penalty(params: Params, reg: float) -> np.floating:
    """``reg / 2 * (sum(W1**2) + sum(W2**2))`` in the parameters' dtype; biases are free."""
    return 0.5 * reg * (np.sum(params.W1 * params.W1) + np.sum(params.W2 * params.W2))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.floating:
    """Mean cross-entropy of integer ``labels`` under ``softmax(logits)``."""
    rows = np.arange(len(labels))
    return -np.mean(log_softmax(logits)[rows, labels])


def loss(params: Params, x: np.ndarray, labels: np.ndarray, reg: float = 0.0) -> np.floating:
    """The training objective: mean cross-entropy plus the L2 penalty."""
    return cross_entropy(forward(params, x).logits, labels) + l2_penalty(params, reg)


def backward(params: Params, cache: Cache, labels: np.ndarray, reg: float = 0.0) -> Params:
    """Gradients of :func:`loss` with respect to every parameter, from the forward ``cache``.

    With ``n`` the size of *this* batch and ``Y`` the one-hot labels (Python scalars such as
    ``reg`` keep the arrays' dtype, so a float32 network computes in float32)::

        dlogits = (P - Y) / n
        dW2 = h^T dlogits + reg W2        db2 = column sums of dlogits
        dh  = dlogits W2^T
        dz1 = dh * [z1 > 0]
        dW1 = x^T dz1 + reg W1            db1 = column sums of dz1
    """
    n = len(labels)  # the batch's own size
    dlogits = cache.probs.copy()  # a copy: the cache's probabilities stay valid
    dlogits[np.arange(n), labels] -= 1
    dlogits /= n
    dW2 = cache.h.T @ dlogits + reg * params.W2
    db2 = dlogits.sum(axis=0)
    dh = dlogits @ params.W2.T
    dz1 = dh * (cache.z1 > 0)
    dW1 = cache.x.T @ dz1 + reg * params.W1
    db1 = dz1.sum(axis=0)
    return Params(W1=dW1, b1=db1, W2=dW2, b2=db2)


def loss_and_gradients(
    params: Params, x: np.ndarray, labels: np.ndarray, reg: float = 0.0
) -> tuple[np.floating, Params]:
    """The loss of the batch and its gradients, from one forward and one backward pass."""
    cache = forward(params, x)
    value = cross_entropy(cache.logits, labels) + l2_penalty(params, reg)
    return value, backward(params, cache, labels, reg)


def sgd_update(params: Params, grads: Params, learning_rate: float) -> None:
    """One step of gradient descent, in place on the parameters: ``p -= lr * g``."""
    for p, g in zip(params.arrays(), grads.arrays(), strict=True):
        p -= learning_rate * g  # a Python float keeps the array's dtype (NumPy 2 promotion)


def predict(params: Params, x: np.ndarray) -> np.ndarray:
    """The predicted class of each row of ``x`` (the largest logit)."""
    return np.argmax(forward(params, x).logits, axis=1)


def evaluate(
    params: Params, x: np.ndarray, labels: np.ndarray, batch_size: int = 1000
) -> Evaluation:
    """Count correct predictions, in batches (prints like ``97.80% (9780/10000)``)."""
    correct = 0
    for start in range(0, len(labels), batch_size):
        pred = predict(params, x[start : start + batch_size])
        correct += int(np.sum(pred == labels[start : start + batch_size]))
    return Evaluation(correct=correct, total=len(labels))


def flatten(images: np.ndarray) -> np.ndarray:
    """uint8 images ``(n, 28, 28)`` as float32 rows ``(n, 784)`` in [0, 1]."""
    images = np.asarray(images)
    return (images.reshape(len(images), -1).astype(np.float32) / np.float32(255)).astype(np.float32)


def train(
    params: Params,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    reg: float = 0.0,
    order_seed: int | None,
    digest_every: int = 0,
    gradients: Callable[..., tuple[np.floating, Params]] | None = None,
) -> TrainingRecord:
    """Train ``params`` in place by SGD for ``steps`` batches drawn in a seeded order.

    Batches come from :class:`~reprodl.batches.IndexStream` (``order_seed=None``: NumPy's global
    state, the classic trap). Records every step's loss (before its update) and the weight digest
    at the end, and every ``digest_every`` steps when that is positive. ``gradients(params, x,
    labels, reg)`` replaces :func:`loss_and_gradients` (to train a variant, e.g. a buggy one).
    """
    gradients = gradients or loss_and_gradients
    if steps <= 0 or batch_size <= 0:
        raise UsageError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    if len(x) != len(labels):
        raise UsageError(f"{len(x)} inputs but {len(labels)} labels")
    x = np.asarray(x, dtype=params.dtype)
    stream = IndexStream(len(labels), seed=order_seed)
    losses = np.empty(steps, dtype=np.float32)
    record = TrainingRecord(losses=losses)
    start = time.perf_counter()
    for i, idx in enumerate(stream.batches(batch_size, steps)):
        value, grads = gradients(params, x[idx], labels[idx], reg)
        sgd_update(params, grads, learning_rate)
        losses[i] = value
        if i == 0:
            record.first_step_seconds = time.perf_counter() - start
        if digest_every and (i + 1) % digest_every == 0:
            record.digests[i + 1] = fingerprint.variable_digests(dict(params.items()))
    record.seconds = time.perf_counter() - start
    record.final_digest = fingerprint.weights_digest(params.arrays())
    return record


def relative_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Elementwise ``|a - b| / max(|a|, |b|, floor)``: the floor keeps near-zero entries sane."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)


def numerical_gradients(
    params: Params,
    x: np.ndarray,
    labels: np.ndarray,
    reg: float = 0.0,
    *,
    eps: float = 1e-6,
    coordinates: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Central differences ``(L(p + eps) - L(p - eps)) / (2 eps)``, one coordinate at a time.

    ``coordinates`` maps a parameter name to flat indices to check (default: all of them). Use
    float64 parameters: in float32 the difference of two nearly equal losses loses most digits.
    """
    work = params.copy()
    result = {}
    for name, array in work.items():
        flat = array.reshape(-1)  # a view: perturbing it perturbs the parameter
        idx = np.arange(flat.size) if coordinates is None else np.asarray(coordinates[name])
        estimates = np.empty(len(idx), dtype=np.float64)
        for k, i in enumerate(idx):
            saved = flat[i]
            flat[i] = saved + eps
            plus = float(loss(work, x, labels, reg))
            flat[i] = saved - eps
            minus = float(loss(work, x, labels, reg))
            flat[i] = saved
            estimates[k] = (plus - minus) / (2 * eps)
        result[name] = estimates
    return result


@dataclass(frozen=True)
class GradientCheck:
    """Analytic and numerical gradients of the checked coordinates, per parameter (float64)."""

    analytic: dict[str, np.ndarray]
    numeric: dict[str, np.ndarray]

    @property
    def checked(self) -> dict[str, int]:
        """How many coordinates of each parameter were checked."""
        return {name: len(a) for name, a in self.analytic.items()}

    @property
    def relative_error(self) -> dict[str, float]:
        """Per parameter ``|a - n| / max(|a|, |n|)`` over the checked coordinates (2-norms)."""
        return {
            name: float(
                np.linalg.norm(a - self.numeric[name])
                / max(np.linalg.norm(a), np.linalg.norm(self.numeric[name]), 1e-300)
            )
            for name, a in self.analytic.items()
        }

    @property
    def max_elementwise_relative_error(self) -> dict[str, float]:
        """Per parameter, the worst single coordinate by :func:`relative_error`."""
        return {
            name: float(relative_error(a, self.numeric[name]).max())
            for name, a in self.analytic.items()
        }

    @property
    def max_absolute_error(self) -> dict[str, float]:
        """Per parameter, the largest ``|a - n|``."""
        return {
            name: float(np.abs(a - self.numeric[name]).max()) for name, a in self.analytic.items()
        }

    @property
    def worst(self) -> float:
        """The largest of the per-parameter relative errors."""
        return max(self.relative_error.values())

    def passed(self, tolerance: float = 1e-6) -> bool:
        """True when every parameter's relative error is below ``tolerance``."""
        return self.worst < tolerance


def gradient_check(
    params: Params,
    x: np.ndarray,
    labels: np.ndarray,
    reg: float = 0.0,
    *,
    eps: float = 1e-6,
    per_parameter: int | None = None,
    rng: np.random.Generator | None = None,
    backward_fn=None,
) -> GradientCheck:
    """Compare :func:`backward` (or ``backward_fn``) with central differences, in float64.

    ``per_parameter=k`` checks ``k`` coordinates of each parameter drawn from ``rng`` (default:
    every coordinate). ``backward_fn(params, cache, labels, reg)`` lets a chapter check another
    backward pass (a buggy one) the same way.
    """
    p64 = params.astype(np.float64)
    x64 = np.asarray(x, dtype=np.float64)
    analytic = (backward_fn or backward)(p64, forward(p64, x64), labels, reg)
    coords = None
    if per_parameter is not None:
        rng = rng if rng is not None else np.random.default_rng(0)
        coords = {
            name: np.sort(rng.choice(a.size, size=min(per_parameter, a.size), replace=False))
            for name, a in p64.items()
        }
    numeric = numerical_gradients(p64, x64, labels, reg, eps=eps, coordinates=coords)
    chosen = {
        name: a.reshape(-1) if coords is None else a.reshape(-1)[coords[name]]
        for name, a in analytic.items()
    }
    return GradientCheck(analytic=chosen, numeric=numeric)


def tf_gradients(
    params: Params, x: np.ndarray, labels: np.ndarray, reg: float = 0.0
) -> tuple[float, Params]:
    """The same loss differentiated by TensorFlow's ``GradientTape``: ``(loss, gradients)``.

    Built from TensorFlow ops (``matmul``, ``relu``, ``sparse_softmax_cross_entropy_with_logits``)
    on variables holding the same values, in the parameters' dtype.
    """
    from reprodl.runtime import import_tensorflow

    tf = import_tensorflow()
    variables = [tf.Variable(a) for a in params.arrays()]
    w1, b1, w2, b2 = variables
    xt = tf.constant(np.asarray(x, dtype=params.dtype))
    yt = tf.constant(np.asarray(labels, dtype=np.int64))
    dt = params.dtype.type
    with tf.GradientTape() as tape:
        h = tf.nn.relu(tf.matmul(xt, w1) + b1)
        logits = tf.matmul(h, w2) + b2
        ce = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yt, logits=logits)
        )
        penalty = dt(0.5 * reg) * (tf.reduce_sum(tf.square(w1)) + tf.reduce_sum(tf.square(w2)))
        value = ce + penalty
    grads = tape.gradient(value, variables)
    return float(value.numpy()), Params(*(g.numpy() for g in grads))
