"""Record any Keras 3 training: :class:`RecordRun`, a callback that writes a run record during
``model.fit``, so that ``python -m reprodl compare A B`` finds where two runs of your own code part.

::

    from reprodl.keras import RecordRun

    model.fit(x, y, callbacks=[RecordRun("run.json")])     # or RecordRun(): $REPRODL_RECORD

The record (:mod:`reprodl.record.runrecord`, format version 2, ``meta.source`` ``"keras"``) holds
each step's loss and, before the first step, every ``every`` steps and after the last, the SHA-256
of every variable of the run's state: the model's weights, its random generators' states (a Dropout
layer's ``seed_generator_state``) and the optimizer's variables (its iteration counter, learning
rate and slots such as Adam's moments). Names are stable across processes: the model's variables are
named as :func:`reprodl.record.state.state_variables` names them (``model/layer/variable``), an
optimizer slot after the variable it belongs to (``optimizer/mlp/hidden_1/kernel/momentum``), the
optimizer's own variables ``optimizer/iteration``, ``optimizer/learning_rate``. Several ``fit``
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
loss hook then digests step 0 when that trace reaches ``compute_loss``: every layer is
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

import os
import sys
from pathlib import Path
from typing import Any

from reprodl.errors import UsageError
from reprodl.keras._interrupts import Interrupts, reason_of
from reprodl.keras._recording import Recording
from reprodl.record.runrecord import RunRecord

__all__ = ["DEFAULT_EVERY", "ENV_EVERY", "ENV_PATH", "RecordRun"]

#: The environment variable that gives the record's path when none is passed.
ENV_PATH = "REPRODL_RECORD"
#: The environment variable that gives ``every`` when none is passed.
ENV_EVERY = "REPRODL_RECORD_EVERY"
#: Digest the state every this many steps by default: a digest of the deep CNN with Adam costs
#: about a third of a step here, so 10 keeps the overhead near 3% (benchmarks/recorder_overhead.py).
DEFAULT_EVERY = 10


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


class _CallbackBase:
    """RecordRun's base until Keras is loaded, then ``keras.callbacks.Callback`` in its place
    (:func:`_adopt_keras_base`): importing this module must not import Keras (nor TensorFlow),
    which would fix the process's TensorFlow settings before the user's own code sets them."""


def _adopt_keras_base() -> None:
    """Make ``keras.callbacks.Callback`` the base of :class:`RecordRun`, once (Keras is loaded
    by then, or loaded now: a callback is being made). Subclasses follow."""
    if RecordRun.__bases__ == (_CallbackBase,):
        import keras

        RecordRun.__bases__ = (keras.callbacks.Callback,)


class RecordRun(_CallbackBase):
    """A ``keras.callbacks.Callback`` that writes a run record of ``fit`` to ``path``.

    ``path`` defaults to ``$REPRODL_RECORD``; with neither the callback is inactive (it records
    nothing). ``every`` (default ``$REPRODL_RECORD_EVERY``, else :data:`DEFAULT_EVERY`) is how
    often the state is digested; 0 digests it before the first and after the last step only.
    Use it as a context manager to have a partial record written on any exception.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, every: int | None = None):
        _adopt_keras_base()
        super().__init__()
        if path is None:
            path = os.environ.get(ENV_PATH) or None
        self._recording = Recording(Path(path) if path is not None else None, _every_from(every))
        self._interrupts = Interrupts(self._recording.interrupt, self._recording.resume)
        # Keras dispatches callbacks on a thread when all of them allow it; an inactive recorder
        # must not take that away. An active one needs to run between steps.
        self.async_safe = not self.active

    @property
    def path(self) -> Path | None:
        """Where the record is written (None: the callback is inactive)."""
        return self._recording.path

    @property
    def every(self) -> int:
        """How often the state is digested, in steps (0: before the first and after the last)."""
        return self._recording.every

    @property
    def active(self) -> bool:
        """Whether this callback records (it has a path)."""
        return self.path is not None

    @property
    def steps(self) -> int:
        """The steps recorded so far (over every ``fit``)."""
        return self._recording.steps

    @property
    def record(self) -> RunRecord | None:
        """The record last written (None before the end of the first ``fit``)."""
        return self._recording.record

    def __repr__(self) -> str:
        where = str(self.path) if self.active else "inactive"
        return f"RecordRun({where}, every={self.every}, steps={self.steps})"

    def __enter__(self) -> RecordRun:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(reason_of(exc) if exc is not None else "the with block ended during fit")

    def close(self, reason: str = "closed during fit") -> None:
        """End recording. During a ``fit`` (it was interrupted) write the partial record now,
        with ``meta.interrupted`` ``reason``; otherwise there is nothing to do."""
        self._interrupts.interrupt(reason)

    # --- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.active:
            return
        with self._interrupts.guard():
            if self._interrupts.in_fit:  # an exception ended the previous fit and nobody told us
                self._interrupts.interrupt("an earlier fit did not end (an exception?)")
            model = self.model
            if not self._recording.begin_fit(model):  # fit builds it, tracing its first step
                self._recording.loss.at_first_step(model, self._start_when_built)
            self._interrupts.begin()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.active or not self._interrupts.in_fit:
            return
        with self._interrupts.guard():
            if not self._recording.started:
                self._interrupts.end()
                raise UsageError(
                    f"model {self.model.name!r} was built by fit's first step, whose training "
                    "step does not call compute_loss, so RecordRun could not digest the state "
                    "before the first update: build the model before fit (keras.Input, or "
                    "model.build(input_shape))"
                )
            self._recording.add_step(logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self.active or not self._interrupts.in_fit:
            return
        with self._interrupts.guard():
            self._recording.end_fit(self.model)
            self._interrupts.end()
            self._recording.write()

    def _start_when_built(self, model: Any) -> None:
        """Step 0 of a model that fit built while tracing its first step (the loss hook)."""
        if self._interrupts.in_fit and not self._recording.started:
            self._recording.start(model)


if "keras" in sys.modules:  # Keras came first: RecordRun is its Callback already
    _adopt_keras_base()
