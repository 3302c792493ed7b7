"""Each step's own loss, and the state before the first step of a model that ``fit`` builds.

Keras passes callbacks ``logs["loss"]``, the running mean of the epoch's step losses, not the
step's own. So the model's ``compute_loss`` is wrapped (an instance attribute, once per model,
left in place): the traced training step stores the loss its gradient is taken of in a variable
that is read after each step. Where ``compute_loss`` is not called (a custom ``train_step``) or
under a strategy with several replicas, the record keeps what Keras logged (:data:`LOGS`).

The same hook sees a training step being traced: for a ``Sequential`` without ``keras.Input``,
which ``fit`` builds from the first batch inside that trace, it is where step 0 is digested.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from reprodl.errors import UsageError
from reprodl.record import runrecord

#: ``meta.loss`` of a record whose losses are what Keras logged.
LOGS = runrecord.LOSS_KINDS[1]


class _LossHook:
    """Makes a model's traced training step store its loss (wraps ``compute_loss``, once)."""

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        with tf.init_scope():
            self.loss = tf.Variable(np.float32(np.nan), trainable=False, name="reprodl_step_loss")
            self.calls = tf.Variable(np.int64(0), trainable=False, name="reprodl_step_calls")
        #: Called (eagerly) when a training step is traced, at its loss: the model is built.
        self.at_first_step: list[Callable[[], None]] = []
        model.compute_loss = self._wrap(model.compute_loss)
        model.make_train_function(force=True)  # trace the step again, with the hook in it

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        import tensorflow as tf

        loss_var, calls_var, hook = self.loss, self.calls, self

        @functools.wraps(original)
        def compute_loss(*args: Any, **kwargs: Any) -> Any:
            loss = original(*args, **kwargs)
            training = kwargs.get("training", True) is not False
            if loss is not None and tf.is_tensor(loss) and training:
                waiting, hook.at_first_step = hook.at_first_step, []
                with tf.init_scope():  # the variables' values now, before the first update
                    for call in waiting:
                        call()
                loss_var.assign(tf.cast(loss, tf.float32))
                calls_var.assign_add(1)
            return loss

        return compute_loss

    def read(self) -> tuple[int, np.float32]:
        """How often a training step stored its loss so far, and the last loss stored."""
        return int(self.calls.numpy()), np.float32(self.loss.numpy())


_HOOKS: weakref.WeakKeyDictionary[Any, _LossHook] = weakref.WeakKeyDictionary()


def _loss_hook(model: Any) -> _LossHook | None:
    """The model's loss hook (installed on first use), or None where it cannot work: under
    several replicas, and on JAX, whose training step is a pure function that cannot store a
    value in a variable (its trainer returns the state instead)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and getattr(strategy, "num_replicas_in_sync", 1) != 1:
        return None
    if model not in _HOOKS:
        _HOOKS[model] = _LossHook(model)
    return _HOOKS[model]


def _unbuilt_layers(model: Any) -> list[Any]:
    """``model`` and every layer inside it (nested models too) that is not built yet."""
    found, todo, seen = [], [model], set()
    while todo:
        layer = todo.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if not layer.built:
            found.append(layer)
        todo.extend(getattr(layer, "layers", []))
    return found


def _build_outside_traces(layer: Any) -> None:
    """Make ``layer``'s next ``build`` run eagerly (``tf.init_scope``), once: its variables then
    hold their initial values as soon as they exist, even when a traced step builds it."""
    import tensorflow as tf

    original = layer.build

    @functools.wraps(original)
    def build(*args: Any, **kwargs: Any) -> Any:
        layer.build = original
        with tf.init_scope():
            return original(*args, **kwargs)

    layer.build = build


class StepLoss:
    """The loss of each step of a recording: the step's own through the hook, else Keras's.

    ``kind`` is None until the first step, then ``"step"`` or :data:`LOGS` for good.
    """

    def __init__(self) -> None:
        self._hook: _LossHook | None = None
        self._calls = 0  # the hook's count of stored losses, as last seen
        self.kind: str | None = None

    def install(self, model: Any) -> None:
        """The first fit, before its step is traced: make the step store its own loss."""
        self._hook = _loss_hook(model)
        self.sync()

    def sync(self) -> None:
        """A later fit: steps run meanwhile without this recording are none of its own."""
        if self._hook is not None:
            self._calls = self._hook.read()[0]

    def at_first_step(self, model: Any, start: Callable[[Any], None]) -> None:
        """Call ``start(model)`` once ``fit`` has built ``model``. A ``Sequential`` without
        ``keras.Input`` is built from the first batch while the first step is traced; variables
        made inside that trace would get their values only when the step runs, together with its
        update. So each layer not yet built builds outside the trace (``tf.init_scope``: its
        variables get their initial values at once, as a model built before ``fit`` has them),
        and the hook calls ``start`` when the trace reaches ``compute_loss``: every layer is
        built by then and nothing is updated yet. ``start`` is held weakly (a bound method)."""
        if self._hook is None:
            return  # no hook (several replicas): the first step's callback refuses the record
        for layer in _unbuilt_layers(model):
            _build_outside_traces(layer)
        start_ref, model_ref = weakref.WeakMethod(start), weakref.ref(model)

        def snapshot() -> None:
            call, net = start_ref(), model_ref()
            if call is not None and net is not None:
                call(net)

        self._hook.at_first_step.append(snapshot)

    def take(self, logs: dict[str, Any] | None, path: Any) -> np.float32:
        """The loss of the step just done (``path`` names the record in an error)."""
        stored = self.take_stored()
        if stored is not None:
            return stored
        if self.kind == "step":
            raise UsageError(
                f"{path}: the model's training step no longer calls compute_loss; the "
                "record cannot go on with each step's own loss"
            )
        self.kind = LOGS
        value = (logs or {}).get("loss")
        return np.float32(np.nan if value is None else value)

    def take_stored(self) -> np.float32 | None:
        """The loss a step stored since the last one taken, or None (none, or Keras's kind)."""
        if self._hook is None or self.kind == LOGS:
            return None
        calls, loss = self._hook.read()
        if calls == self._calls:
            return None
        self._calls, self.kind = calls, "step"
        return loss
