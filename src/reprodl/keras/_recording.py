"""One run's record while ``fit`` runs: each step's loss, the state's digests every ``every`` steps,
a partial record settled at a state it can vouch for, and the
:class:`~reprodl.record.runrecord.RunRecord` built and written from them."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from reprodl.errors import UsageError
from reprodl.keras import _state
from reprodl.keras._loss_hook import StepLoss
from reprodl.record import fingerprint, runrecord
from reprodl.record.runrecord import RunRecord

_log = logging.getLogger("reprodl")


def _refuse_unrecordable(model: Any) -> None:
    """Refuse a model whose training cannot be recorded faithfully, with the reason."""
    import keras

    if keras.backend.backend() not in _state.BACKENDS:
        raise UsageError(
            f"RecordRun records training on the TensorFlow and JAX backends; Keras runs on "
            f"{keras.backend.backend()!r} here (KERAS_BACKEND)"
        )
    spe = getattr(model, "steps_per_execution", 1)
    if spe != 1:
        raise UsageError(
            f"RecordRun needs steps_per_execution=1 (this model was compiled with {spe}): "
            "Keras calls back once per execution, so the steps in between cannot be recorded"
        )


class Recording:
    """The record of one model's run, over every ``fit`` that continues it, written to ``path``.

    It starts (:meth:`start`) once the model is built: its variables are fixed then and step 0
    is digested. After an interruption (:meth:`interrupt`) it is final.
    """

    def __init__(self, path: Path | None, every: int) -> None:
        self.path = path
        self.every = every
        #: The record last written (None before the end of the first ``fit``).
        self.record: RunRecord | None = None
        #: Why the run was interrupted, once it was (then the recording is over).
        self.interrupted: str | None = None
        self.loss = StepLoss()
        self._model_ref: weakref.ref[Any] | None = None
        self._vars: list[_state.Entry] = []
        self._losses: list[np.float32] = []
        self._digests: dict[int, dict[str, str]] = {}
        self._meta: dict[str, Any] = {}
        # (optimizer iterations, recorded steps) when the fit began
        self._applied0: tuple[int | None, int] = (0, 0)
        self._ahead = False  # an interruption recorded the step Keras is about to call back for

    @property
    def started(self) -> bool:
        """Whether step 0 is recorded (the model was built)."""
        return self._model_ref is not None

    @property
    def steps(self) -> int:
        """The steps recorded so far (over every ``fit``)."""
        return len(self._losses)

    def begin_fit(self, model: Any) -> bool:
        """A fit of ``model`` begins; True if the recording has started (the model is built)."""
        if self.interrupted is not None:
            raise UsageError(
                f"{self.path}: this recording ended when its run was interrupted "
                f"({self.interrupted}); record another run with a new RecordRun"
            )
        _refuse_unrecordable(model)
        if not self.started:
            self.loss.install(model)
            if model.built and model.variables:
                self.start(model)
        else:
            self._continue(model)
        self._applied0 = (_state.iterations(model), self.steps)
        return self.started

    def start(self, model: Any) -> None:
        """The first fit, the model built: fix the variables and digest step 0."""
        _state.sync(model)
        optimizer = model.optimizer
        if not optimizer.built:  # as Keras does under a strategy; else it would in the first step
            optimizer.build(model.trainable_variables)
        self._vars = _state.state(model)
        self._meta = _state.facts(model)
        self._digests[0] = self.digest_state()
        self._model_ref = weakref.ref(model)  # last: a start cut short leaves a fresh recording

    def _continue(self, model: Any) -> None:
        """A later fit: it must be the same model, with the same variables."""
        if self._model_ref is not None and self._model_ref() is not model:
            raise UsageError(
                f"{self.path}: this RecordRun records model {self._meta['model']!r}; "
                "use a new RecordRun for another model"
            )
        if not _state.same_variables(_state.state(model), self._vars):
            raise UsageError(
                f"{self.path}: the model's variables changed since the last fit (recompiled with "
                "another optimizer?); use a new RecordRun"
            )
        self.loss.sync()

    def add_step(self, logs: dict[str, Any] | None) -> None:
        """The step Keras just called back for: its loss, and the state's digests when due."""
        if self._ahead:  # a signal handler that let fit go on recorded this step already
            self._ahead = False
            return
        self._losses.append(self.loss.take(logs, self.path))
        if self.every and self.steps % self.every == 0:
            _state.sync(self._model_ref())
            self._digests[self.steps] = self.digest_state()

    def end_fit(self, model: Any) -> None:
        """The fit ended: digest the state after its last step (unless done already)."""
        _state.sync(model)
        optimizer = getattr(model, "optimizer", None)
        # fit has just called finalize_variable_values (an EMA may have replaced the weights)
        if self.steps not in self._digests or getattr(optimizer, "use_ema", False):
            self._digests[self.steps] = self.digest_state()

    def digest_state(self) -> dict[str, str]:
        """The digest of every variable of the state, now."""
        return _state.digests(self._vars)

    def interrupt(self, reason: str) -> bool:
        """Write the partial record of a fit cut short; the recording ends here. True if the
        record was not cut back. Before the model was built there is nothing to vouch for."""
        if not self.started:
            return False
        self.interrupted = reason
        with _state.eager():  # even if the signal came while a step was traced
            _state.sync(self._model_ref())
            whole = self._settle()
        self.write()
        return whole

    def resume(self) -> None:
        """Go on after an interruption whose signal handler let the process go on (it may have
        asked fit to stop): the record written is rewritten at the end as usual."""
        self.interrupted = None

    def _applied_steps(self) -> int | None:
        """How many steps the optimizer has applied in this recording (None if unknown)."""
        now, (start, recorded) = _state.iterations(self._model_ref()), self._applied0
        return None if now is None or start is None else recorded + now - start

    def _settle(self) -> bool:
        """Make the recorded steps end at a state the record can vouch for (an interruption);
        False if that meant cutting the record back (then it cannot go on)."""
        applied = self._applied_steps()
        if applied == self.steps + 1:
            loss = self.loss.take_stored()
            if loss is not None:  # the step ran and stored its loss; no call back yet
                self._losses.append(loss)
                self._ahead = True
        if applied == self.steps:
            self._digests[self.steps] = self.digest_state()
            return True
        last = max(s for s in self._digests if s <= self.steps)
        del self._losses[last:]
        for step in [s for s in self._digests if s > last]:
            del self._digests[step]
        return False

    def _build(self) -> RunRecord:
        """The record of the steps so far."""
        steps = self.steps
        weights = [d["name"] for d, _ in self._vars if d["kind"] == "weight"]
        digests = {s: d for s, d in sorted(self._digests.items()) if s <= steps}
        meta = runrecord.run_meta(
            **self._meta,
            steps=steps,
            digest_every=self.every,
            source="keras",
            loss=self.loss.kind or "step",
            interrupted=self.interrupted,
        )
        return RunRecord(
            meta=meta,
            variables=[dict(d) for d, _ in self._vars],
            losses=np.asarray(self._losses, dtype=np.float32),
            digests=digests,
            final_digest=fingerprint.combine(digests[steps][n] for n in weights),
        )

    def write(self) -> None:
        """Save the record (atomically); a run without a single step has none to save."""
        if self.path is None:  # an inactive recorder records nothing
            return
        if self.steps == 0:
            _log.warning("RecordRun: no step recorded, no record written to %s", self.path)
            return
        record = self._build()
        runrecord.save(record, self.path)
        self.record = record
