"""Record any Keras 3 training: :class:`RecordRun`, a callback that writes a run record during
``model.fit``, so that ``python -m reprodl compare A B`` finds where two runs of your own code part.

::

    from reprodl.keras import RecordRun

    model.fit(x, y, callbacks=[RecordRun("run.json")])     # or RecordRun(): $REPRODL_RECORD

The record (:mod:`reprodl.records`, format version 2, ``meta.source`` ``"keras"``) holds each
step's loss and, before the first step, every ``every`` steps and after the last, the SHA-256 of
every variable of the run's state: the model's weights, its random generators' states (a Dropout
layer's ``seed_generator_state``) and the optimizer's variables (its iteration counter, learning
rate and slots such as Adam's moments). Names are stable across processes: the model's variables
are named as :func:`reprodl.training.state.state_variables` names them (``model/layer/variable``),
an optimizer slot after the variable it belongs to (``optimizer/mlp/hidden_1/kernel/momentum``),
the optimizer's own variables ``optimizer/iteration``, ``optimizer/learning_rate``. Several ``fit``
calls with one callback (a loop of ``fit(epochs=1)``) continue one record: the steps keep counting
and the file is rewritten (atomically) at the end of each.

**Which loss.** In ``on_train_batch_end`` Keras 3.15 passes ``logs["loss"]``, the result of its
loss tracker (a ``Mean``): the running mean of the epoch's step losses so far, weighted by batch
size, not the step's own loss. The step's loss cannot be recovered from it exactly (the tracker's
float32 total rounds). So the callback wraps the model's ``compute_loss`` (an instance attribute,
once per model, left in place): the traced training step also stores its loss, the float32 value
the gradient is taken of (the compiled loss plus regularization losses, before any loss scaling),
in a variable the callback reads after each step (``meta.loss`` ``"step"``). The step is traced
again once for that; it computes the same bits (the tests check it). Where ``compute_loss`` is not
called (a custom ``train_step`` that computes its loss itself) or under a strategy with several
replicas, the record holds what Keras passed in ``logs["loss"]`` and says so (``meta.loss``
``"keras logs"``).

**Interruptions.** Keras 3.15 ``fit`` calls no callback when an exception or ``KeyboardInterrupt``
escapes it (no ``try``/``finally`` around its loop), so the callback takes care of it itself, and
writes a partial record with ``meta.interrupted`` set:

- on SIGINT (Ctrl-C) and SIGTERM, through handlers it installs for the length of each ``fit`` (in
  the main thread only): they write the record, then hand the signal to the previous handler
  (Ctrl-C still raises ``KeyboardInterrupt``; a default SIGTERM still ends the process). Where
  that handler returns (one that asks ``fit`` to stop, say), recording goes on, and the record is
  rewritten at the end of ``fit`` as usual;
- on any exception, with the context-manager form ``with RecordRun(path) as rec:
  model.fit(..., callbacks=[rec])``, and otherwise when the process exits (``atexit``: a script
  that died of an uncaught exception) or when the same callback starts another ``fit``.

A partial record ends at the last step whose state it can vouch for: the optimizer's iteration
counter says how many steps were applied, so the state is digested there when that is the last
recorded step (or the one after it, whose loss the step stored); otherwise the record is cut
back to its last digested step. After an interruption the record is final: the callback refuses
another ``fit``. A process killed outright (SIGKILL) leaves only what was written before.

**Cost.** Inactive (no path, no ``$REPRODL_RECORD``) it records nothing and changes nothing (Keras
even dispatches callbacks asynchronously as without it). Active, the loss costs a variable read
per step; a digest reads every variable once and hashes the array's buffer directly (SHA-256, no
second copy): about 40 MB for the deep CNN with Adam, 20 to 30 ms here, against 70 to 100 ms for
its step, hence :data:`DEFAULT_EVERY` (``benchmarks/recorder_overhead.py`` measures it).

**The process is not changed.** Importing this module imports neither TensorFlow nor Keras nor
:mod:`reprodl.runtime` (which pins the environment): Keras loads when a callback is created, and
what is recorded (``meta.settings``: the environment variables of TensorFlow, oneDNN, OpenMP and
the BLAS, the hash seed, thread counts, op determinism) is read, never set.

**A model that ``fit`` builds.** Much published Keras code builds a ``Sequential`` without
``keras.Input``; Keras 3.15's ``fit`` (TensorFlow backend, no strategy) then builds it from the
first batch while it traces the first step, after every callback's ``on_train_begin``. The
loss hook (below) then digests step 0 when that trace reaches ``compute_loss``: every layer is
built by then and nothing is updated yet, so the record is the one a model built beforehand
gives. (A training step that does not call ``compute_loss`` on a model ``fit`` builds is refused
after its first step: build such a model before ``fit``.)

Limits: TensorFlow backend only; ``steps_per_execution`` must be 1 (Keras calls back once per
execution); changes made to the state between ``fit`` calls are not recorded. A model or layer
left unnamed takes its Keras name from a process-wide counter (``dense_3``): the same script
gives the same names in each fresh process, but to compare two runs made in one process, name
them.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import platform
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reprodl import fingerprint, records
from reprodl.errors import UsageError
from reprodl.records import RunRecord

__all__ = ["DEFAULT_EVERY", "ENV_EVERY", "ENV_PATH", "RecordRun"]

#: The environment variable that gives the record's path when none is passed.
ENV_PATH = "REPRODL_RECORD"
#: The environment variable that gives ``every`` when none is passed.
ENV_EVERY = "REPRODL_RECORD_EVERY"
#: Digest the state every this many steps by default: a digest of the deep CNN with Adam costs
#: about a third of a step here, so 10 keeps the overhead near 3% (benchmarks/recorder_overhead.py).
DEFAULT_EVERY = 10
#: Environment variables recorded in ``meta.settings``: those starting with these prefixes...
SETTINGS_PREFIXES = ("TF_", "ONEDNN_", "OMP_", "OPENBLAS_", "MKL_", "NPY_", "KMP_", "XLA_")
#: ... and these (``PYTHONHASHSEED`` always, null when unset).
SETTINGS_NAMES = ("PYTHONHASHSEED", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES")

_SIGNALS = ("SIGINT", "SIGTERM")
_LOGS = "keras logs"  # records.LOSS_KINDS[1]
_REASON_LIMIT = 200


def _every_from(every: int | None) -> int:
    """``every``, else ``$REPRODL_RECORD_EVERY``, else :data:`DEFAULT_EVERY`; checked."""
    if every is None:
        text = os.environ.get(ENV_EVERY, "").strip()
        if not text:
            return DEFAULT_EVERY
        try:
            every = int(text)
        except ValueError:
            raise UsageError(f"{ENV_EVERY}={text!r} is not a whole number of steps") from None
        where = f"{ENV_EVERY}={text!r}"
    else:
        where = f"every={every!r}"
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise UsageError(f"{where}: digest every how many steps must be 0 or more (0: ends only)")
    return every


def _digest(array: np.ndarray) -> str:
    """:func:`reprodl.fingerprint.array_digest` without copying the array's bytes."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.reshape(-1).view(np.uint8).data if a.size else b"")
    return h.hexdigest()


def _value(variable: Any) -> np.ndarray:
    """A variable's current value as a NumPy array (one read)."""
    value = getattr(variable, "value", variable)
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _iterations(model: Any) -> int | None:
    """The optimizer's iteration counter (the steps it applied), or None without one."""
    counter = getattr(getattr(model, "optimizer", None), "iterations", None)
    return None if counter is None else int(_value(counter))


def _reason(exc: BaseException) -> str:
    """An exception as a short one-line reason for ``meta.interrupted``."""
    text = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return reason if len(reason) <= _REASON_LIMIT else reason[: _REASON_LIMIT - 3] + "..."


def _settings(model: Any) -> dict[str, Any]:
    """What the bits depend on, read (never set): environment, threads, determinism, Keras."""
    import keras
    import tensorflow as tf

    from reprodl import _tf

    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(SETTINGS_PREFIXES)}
    env.update({k: os.environ.get(k) for k in SETTINGS_NAMES if k in os.environ})
    env.setdefault("PYTHONHASHSEED", None)
    return {
        **dict(sorted(env.items())),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "op_determinism": _tf.is_op_determinism_enabled(),
        "keras_backend": keras.backend.backend(),
        "floatx": keras.backend.floatx(),
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "run_eagerly": bool(getattr(model, "run_eagerly", False)),
    }


def _versions() -> dict[str, str]:
    """python, numpy, tensorflow, keras, reprodl (as ``reprodl.runtime.versions()`` has them)."""
    import keras
    import tensorflow as tf

    import reprodl

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "reprodl": reprodl.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _unique(name: str, taken: set[str]) -> str:
    base, k = name, 1
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    taken.add(name)
    return name


def _state(model: Any) -> list[tuple[dict[str, Any], Any]]:
    """The run's state: the model's variables (stable names), then the optimizer's."""
    from reprodl.training.state import state_variables

    out = [
        ({"name": i.name, "shape": list(i.shape), "dtype": i.dtype, "kind": i.kind}, v)
        for i, v in state_variables(model)
    ]
    taken = {d["name"] for d, _ in out}
    # An optimizer names a slot "<its name>/<the variable's path, '/' -> '_'>_<slot>", and both
    # names may carry a process-wide counter (adam_3, dense_7): rename it after the variable.
    stable = {v.path.replace("/", "_"): d["name"] for d, v in out}
    optimizer = getattr(model, "optimizer", None)
    for v in getattr(optimizer, "variables", []):
        rest = v.path.split("/", 1)[-1]
        owner = max((k for k in stable if rest.startswith(k + "_")), key=len, default=None)
        if owner is not None:
            rest = f"{stable[owner]}/{rest[len(owner) + 1 :]}"
        info = {
            "name": _unique(f"optimizer/{rest}", taken),
            "shape": [int(d) for d in v.shape],
            "dtype": str(np.dtype(v.dtype)),
            "kind": "optimizer",
        }
        out.append((info, v))
    return out


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


class _LossHook:
    """Makes a model's traced training step store its loss (wraps ``compute_loss``, once)."""

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        with tf.init_scope():
            self.loss = tf.Variable(np.float32(np.nan), trainable=False, name="reprodl_step_loss")
            self.calls = tf.Variable(np.int64(0), trainable=False, name="reprodl_step_calls")
        #: Called (eagerly) when a training step is traced, at its loss: the model is built.
        self.at_first_step: list[Callable[[], None]] = []
        original = model.compute_loss
        loss_var, calls_var = self.loss, self.calls
        hook = self

        @functools.wraps(original)
        def compute_loss(*args: Any, **kwargs: Any) -> Any:
            loss = original(*args, **kwargs)
            if (
                loss is not None
                and tf.is_tensor(loss)
                and kwargs.get("training", True) is not False
            ):
                waiting, hook.at_first_step = hook.at_first_step, []
                with tf.init_scope():  # the variables' values now, before the first update
                    for call in waiting:
                        call()
                loss_var.assign(tf.cast(loss, tf.float32))
                calls_var.assign_add(1)
            return loss

        model.compute_loss = compute_loss
        model.make_train_function(force=True)  # trace the step again, with the hook in it

    def read(self) -> tuple[int, np.float32]:
        """How often a training step stored its loss so far, and the last loss stored."""
        return int(self.calls.numpy()), np.float32(self.loss.numpy())


_HOOKS: weakref.WeakKeyDictionary[Any, _LossHook] = weakref.WeakKeyDictionary()
#: Recorders inside a ``fit`` now: what the exit handler writes if the process ends first.
_IN_FIT: set[RecordRun] = set()
_EXIT_HANDLER: list[bool] = []


def _loss_hook(model: Any) -> _LossHook | None:
    """The model's loss hook (installed on first use), or None where it cannot work."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and getattr(strategy, "num_replicas_in_sync", 1) != 1:
        return None
    if model not in _HOOKS:
        _HOOKS[model] = _LossHook(model)
    return _HOOKS[model]


def _last_exception_reason() -> str | None:
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return _reason(exc) if isinstance(exc, BaseException) else None


def _at_exit() -> None:
    """Write the records of fits the process did not finish (an uncaught exception)."""
    reason = _last_exception_reason() or "the process exited during fit"
    for recorder in list(_IN_FIT):
        recorder.close(reason)


@functools.cache
def _with_callback_base(cls: type) -> type:
    """``cls`` with ``keras.callbacks.Callback`` as a base (Keras is imported here, not before)."""
    import keras

    if issubclass(cls, keras.callbacks.Callback):
        return cls
    namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    return type(
        cls.__name__, (cls, keras.callbacks.Callback), {**namespace, "__doc__": cls.__doc__}
    )


class RecordRun:
    """A ``keras.callbacks.Callback`` that writes a run record of ``fit`` to ``path``.

    ``path`` defaults to ``$REPRODL_RECORD``; with neither the callback is inactive (it records
    nothing). ``every`` (default ``$REPRODL_RECORD_EVERY``, else :data:`DEFAULT_EVERY`) is how
    often the state is digested; 0 digests it before the first and after the last step only.
    Use it as a context manager to have a partial record written on any exception.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> RecordRun:
        return super().__new__(_with_callback_base(cls))

    def __init__(self, path: str | os.PathLike[str] | None = None, *, every: int | None = None):
        super().__init__()
        if path is None:
            path = os.environ.get(ENV_PATH) or None
        self.path: Path | None = Path(path) if path is not None else None
        self.every: int = _every_from(every)
        #: The record last written (None before the end of the first ``fit``).
        self.record: RunRecord | None = None
        # Keras dispatches callbacks on a thread when all of them allow it; an inactive recorder
        # must not take that away. An active one needs to run between steps.
        self.async_safe = not self.active
        self._model_ref: weakref.ref[Any] | None = None
        self._vars: list[tuple[dict[str, Any], Any]] = []
        self._losses: list[np.float32] = []
        self._digests: dict[int, dict[str, str]] = {}
        self._meta: dict[str, Any] = {}
        self._loss_kind: str | None = None
        self._hook: _LossHook | None = None
        self._hook_calls = 0
        # (optimizer iterations, recorded steps) when the fit began
        self._applied0: tuple[int | None, int] = (0, 0)
        self._in_fit = False
        self._busy = False
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}
        self._interrupted: str | None = None
        self._ahead = False  # an interruption recorded the step Keras is about to call back for

    @property
    def active(self) -> bool:
        """Whether this callback records (it has a path)."""
        return self.path is not None

    @property
    def steps(self) -> int:
        """The steps recorded so far (over every ``fit``)."""
        return len(self._losses)

    def __repr__(self) -> str:
        where = str(self.path) if self.active else "inactive"
        return f"RecordRun({where}, every={self.every}, steps={self.steps})"

    # --- the context-manager form --------------------------------------------------------------

    def __enter__(self) -> RecordRun:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.close(_reason(exc))
        else:
            self.close("the with block ended during fit")

    def close(self, reason: str = "closed during fit") -> None:
        """End recording. During a ``fit`` (it was interrupted) write the partial record now,
        with ``meta.interrupted`` ``reason``; otherwise there is nothing to do."""
        if self._in_fit:
            self._interrupt(reason)

    # --- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.active:
            return
        with self._guard():
            if self._in_fit:  # an exception ended the previous fit and nobody told us
                self._interrupt("an earlier fit did not end (an exception?)")
            if self._interrupted is not None:
                raise UsageError(
                    f"{self.path}: this recording ended when its run was interrupted "
                    f"({self._interrupted}); record another run with a new RecordRun"
                )
            model = self.model
            self._check_model(model)
            if self._model_ref is None:
                self._install_hook(model)
                if model.built and model.variables:
                    self._snapshot(model)
                else:  # fit builds it from the first batch, while it traces the first step
                    self._snapshot_at_first_step(model)
            else:
                self._continue(model)
            self._applied0 = (_iterations(model), self.steps)
            self._in_fit = True
            _IN_FIT.add(self)
            if not _EXIT_HANDLER:
                atexit.register(_at_exit)
                _EXIT_HANDLER.append(True)
            self._install_signal_handlers()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.active or not self._in_fit:
            return
        with self._guard():
            if self._model_ref is None:
                self._end_fit()
                raise UsageError(
                    f"model {self.model.name!r} was built by fit's first step, whose training "
                    "step does not call compute_loss, so RecordRun could not digest the state "
                    "before the first update: build the model before fit (keras.Input, or "
                    "model.build(input_shape))"
                )
            if self._ahead:  # a signal handler that let fit go on recorded this step already
                self._ahead = False
                return
            self._losses.append(self._step_loss(logs))
            if self.every and self.steps % self.every == 0:
                self._digests[self.steps] = self._digest_state()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self.active or not self._in_fit:
            return
        with self._guard():
            optimizer = getattr(self.model, "optimizer", None)
            # fit has just called finalize_variable_values (an EMA may have replaced the weights)
            if self.steps not in self._digests or getattr(optimizer, "use_ema", False):
                self._digests[self.steps] = self._digest_state()
            self._end_fit()
            self._write(None)

    # --- recording -----------------------------------------------------------------------------

    def _check_model(self, model: Any) -> None:
        """Refuse what the callback cannot record faithfully, with the reason."""
        import keras

        if keras.backend.backend() != "tensorflow":
            raise UsageError(
                f"RecordRun records TensorFlow-backend training; Keras runs on "
                f"{keras.backend.backend()!r} here (KERAS_BACKEND)"
            )
        if self._model_ref is not None and self._model_ref() is not model:
            raise UsageError(
                f"{self.path}: this RecordRun records model {self._meta['model']!r}; "
                "use a new RecordRun for another model"
            )
        spe = getattr(model, "steps_per_execution", 1)
        if spe != 1:
            raise UsageError(
                f"RecordRun needs steps_per_execution=1 (this model was compiled with {spe}): "
                "Keras calls back once per execution, so the steps in between cannot be recorded"
            )

    def _install_hook(self, model: Any) -> None:
        """The first fit, before its step is traced: make the step store its own loss."""
        self._hook = _loss_hook(model)
        self._hook_calls = self._hook.read()[0] if self._hook else 0

    def _snapshot_at_first_step(self, model: Any) -> None:
        """Digest step 0 once ``fit`` has built ``model``. A ``Sequential`` without
        ``keras.Input`` is built from the first batch while the first step is traced; variables
        made inside that trace would get their values only when the step runs, together with its
        update. So each layer not yet built builds outside the trace (``tf.init_scope``: its
        variables get their initial values at once, as a model built before ``fit`` has them),
        and the loss hook runs :meth:`_snapshot` when the trace reaches ``compute_loss``: every
        layer is built by then and nothing is updated yet."""
        if self._hook is None:
            return  # no hook (several replicas): on_train_batch_end refuses the record
        for layer in _unbuilt_layers(model):
            _build_outside_traces(layer)
        recorder, model_ref = weakref.ref(self), weakref.ref(model)

        def snapshot() -> None:
            rec, net = recorder(), model_ref()
            if rec is not None and net is not None and rec._in_fit and rec._model_ref is None:
                rec._snapshot(net)

        self._hook.at_first_step.append(snapshot)

    def _snapshot(self, model: Any) -> None:
        """The first fit: fix the variables and digest step 0."""
        optimizer = model.optimizer
        if not optimizer.built:  # as Keras does under a strategy; else it would in the first step
            optimizer.build(model.trainable_variables)
        self._vars = _state(model)
        self._meta = {
            "model": model.name,
            "command": list(sys.argv),
            "settings": _settings(model),
            "versions": _versions(),
        }
        self._digests[0] = self._digest_state()
        self._model_ref = weakref.ref(model)  # last: a start cut short leaves a fresh recorder

    def _continue(self, model: Any) -> None:
        """A later fit: the state must still be the same variables."""
        now = _state(model)
        same = len(now) == len(self._vars) and all(
            a[0] == b[0] and a[1] is b[1] for a, b in zip(now, self._vars, strict=False)
        )
        if not same:
            raise UsageError(
                f"{self.path}: the model's variables changed since the last fit (recompiled with "
                "another optimizer?); use a new RecordRun"
            )
        if self._hook is not None:
            self._hook_calls = self._hook.read()[0]

    def _step_loss(self, logs: dict[str, Any] | None) -> np.float32:
        """The loss of the step just done: the step's own (through the hook), else Keras's."""
        if self._hook is not None:
            calls, loss = self._hook.read()
            if calls != self._hook_calls:
                self._hook_calls = calls
                if self._loss_kind is None:
                    self._loss_kind = "step"
                if self._loss_kind == "step":
                    return loss
        if self._loss_kind == "step":
            raise UsageError(
                f"{self.path}: the model's training step no longer calls compute_loss; the "
                "record cannot go on with each step's own loss"
            )
        self._loss_kind = _LOGS
        value = (logs or {}).get("loss")
        return np.float32(np.nan if value is None else value)

    def _digest_state(self) -> dict[str, str]:
        """The digest of every variable of the state, now."""
        return {info["name"]: _digest(_value(v)) for info, v in self._vars}

    def _applied_steps(self) -> int | None:
        """How many steps the optimizer has applied in this recording (None if unknown)."""
        now, (start, recorded) = _iterations(self._model_ref()), self._applied0
        return None if now is None or start is None else recorded + now - start

    def _settle(self) -> bool:
        """Make the recorded steps end at a state the record can vouch for (an interruption);
        False if that meant cutting the record back (then it cannot go on)."""
        applied = self._applied_steps()
        if applied == self.steps + 1 and self._hook is not None and self._loss_kind != _LOGS:
            calls, loss = self._hook.read()
            if calls != self._hook_calls:  # the step ran and stored its loss; no call back yet
                self._hook_calls, self._loss_kind = calls, "step"
                self._losses.append(loss)
                self._ahead = True
        if applied == self.steps:
            self._digests[self.steps] = self._digest_state()
            return True
        last = max(s for s in self._digests if s <= self.steps)
        del self._losses[last:]
        for step in [s for s in self._digests if s > last]:
            del self._digests[step]
        return False

    def _record(self, interrupted: str | None) -> RunRecord:
        steps = self.steps
        weights = [d["name"] for d, _ in self._vars if d["kind"] == "weight"]
        digests = {s: d for s, d in sorted(self._digests.items()) if s <= steps}
        meta = {
            "model": self._meta["model"],
            "seed": None,
            "batch_size": None,
            "steps": steps,
            "run": None,
            "command": self._meta["command"],
            "settings": self._meta["settings"],
            "versions": self._meta["versions"],
            "digest_every": self.every,
            "checkpoints": None,
            "source": "keras",
            "loss": self._loss_kind or "step",
            "interrupted": interrupted,
        }
        return RunRecord(
            meta=meta,
            variables=[dict(d) for d, _ in self._vars],
            losses=np.asarray(self._losses, dtype=np.float32),
            digests=digests,
            final_digest=fingerprint.combine(digests[steps][n] for n in weights),
        )

    def _write(self, interrupted: str | None) -> None:
        """Save the record (atomically); a run without a single step has none to save."""
        if self.steps == 0:
            print(f"reprodl: no step recorded, no record written to {self.path}", file=sys.stderr)
            return
        record = self._record(interrupted)
        records.save(record, self.path)
        self.record = record

    # --- interruptions -------------------------------------------------------------------------

    def _interrupt(self, reason: str) -> bool:
        """Write the partial record of the fit in progress; the recording ends here. True if
        the record was not cut back (recording could go on if the process does)."""
        if not self._in_fit:
            return False
        if self._model_ref is None:  # before the model was built: nothing to vouch for
            self._end_fit()
            return False
        import tensorflow as tf

        busy, self._busy = self._busy, True  # a second signal meanwhile waits for the write
        try:
            self._interrupted = reason
            with tf.init_scope():  # eager, even if the signal came while a step was traced
                whole = self._settle()
            self._write(reason)
            return whole
        finally:
            self._end_fit()
            self._busy = busy

    def _resume(self) -> None:
        """Go on recording after a signal whose handler let the process go on (it may have
        asked fit to stop): the record written is rewritten at the end as usual."""
        self._interrupted = None
        self._in_fit = True
        _IN_FIT.add(self)
        self._install_signal_handlers()

    def _end_fit(self) -> None:
        self._in_fit = False
        _IN_FIT.discard(self)
        self._restore_signal_handlers()

    def _guard(self) -> _Busy:
        return _Busy(self)

    def _install_signal_handlers(self) -> None:
        """Handle SIGINT and SIGTERM during fit (main thread only): write, then pass it on."""
        if threading.current_thread() is not threading.main_thread():
            return
        for name in _SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN or previous == self._on_signal:
                continue
            try:
                signal.signal(signum, self._on_signal)
            except (OSError, ValueError):
                continue
            self._previous[signum] = previous

    def _restore_signal_handlers(self) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._busy:  # inside the callback's own code: finish it first (see _Busy)
            self._pending = signum
            return
        previous = self._previous.get(signum, signal.getsignal(signum))
        if previous is None or previous == self._on_signal:  # none known: Python's own
            previous = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        whole = self._interrupt(signal.Signals(signum).name)
        if callable(previous):
            previous(signum, frame)  # Python's SIGINT handler raises KeyboardInterrupt
            if whole:  # the handler returned: the run goes on (or stops as fit does normally)
                self._resume()
        elif previous is not signal.SIG_IGN:  # the default action: end the process as it would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


class _Busy:
    """Marks the callback's own code: a signal that comes meanwhile is handled at its end."""

    def __init__(self, recorder: RecordRun) -> None:
        self.recorder = recorder

    def __enter__(self) -> None:
        self.recorder._busy = True

    def __exit__(self, *exc: Any) -> None:
        rec = self.recorder
        rec._busy = False
        pending, rec._pending = rec._pending, None
        if pending is not None:
            rec._on_signal(pending, None)
