"""reprodl.keras.RecordRun: records of plain Keras ``fit`` that compare like the package loop's own,
partial records on interruptions, and a recorder that changes neither the process nor the run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from support import ROOT, run_python, synthetic_digits

import reprodl
from reprodl import cli, divergence, fingerprint, records, training
from reprodl.errors import RecordError, UsageError
from reprodl.runtime import REPRODUCIBLE_ENV

keras = pytest.importorskip("keras")

from reprodl import keras as rk  # noqa: E402  (after keras: the module's name shadows nothing)
from reprodl.keras import RecordRun  # noqa: E402

BATCH = 20  # 200 synthetic images: 10 steps per epoch


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    """200 digit-like images as float32 in [0, 1] and their labels."""
    reprodl.setup(0)
    digits = synthetic_digits()
    return digits.images.astype(np.float32) / np.float32(255), digits.labels


@pytest.fixture(autouse=True)
def _no_record_env(monkeypatch):
    monkeypatch.delenv(rk.ENV_PATH, raising=False)
    monkeypatch.delenv(rk.ENV_EVERY, raising=False)


@pytest.fixture(autouse=True)
def _interactive_sigint():
    """SIGINT handled by Python, as in a terminal. A process that a non-interactive shell starts
    in the background inherits SIGINT ignored (POSIX), and Python then leaves it ignored; the
    recorder leaves an ignored signal alone, so these tests restore Python's handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def row_gru(seed: int = 0, rng_seed: int | None = 3) -> keras.Model:
    """A small recurrent model (functional): a GRU reads the image row by row. Its random
    generator (for dropout, unused here) is seeded with ``rng_seed``; None leaves it unseeded."""
    inputs = keras.Input((28, 28), name="rows")
    hidden = keras.layers.GRU(
        16,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
        seed=rng_seed,
        name="gru",
    )(inputs)
    outputs = keras.layers.Dense(
        10, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2), name="logits"
    )(hidden)
    return keras.Model(inputs, outputs, name="row_gru")


def build(name: str, **kwargs) -> keras.Model:
    from reprodl import models

    return row_gru(**kwargs) if name == "gru" else models.build(name, **kwargs)


def compiled(model: keras.Model, lr: float = 1e-3, **compile_args) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_args,
    )
    return model


def fit(model, x, y, callbacks=(), *, epochs: int = 1, steps: int | None = None):
    """``model.fit`` as the tests use it: no shuffling, no output, ``steps`` steps per epoch."""
    return model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        steps_per_epoch=steps,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
    )


class Hook(keras.callbacks.Callback):
    """Runs ``action(step)`` after each step (called back after the recorder)."""

    def __init__(self, action):
        super().__init__()
        self.action, self.step = action, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.action(self.step)


def raise_at(step: int, exc: BaseException):
    def action(now: int) -> None:
        if now == step:
            raise exc

    return Hook(action)


# --- the module itself --------------------------------------------------------------------------


def _import_probe(module: str) -> dict:
    code = (
        "import json, os, sys\n"
        "before = dict(os.environ)\n"
        f"import {module}\n"
        "changed = sorted(k for k in set(before) | set(os.environ)\n"
        "                 if before.get(k) != os.environ.get(k))\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'reprodl.runtime') if m in sys.modules]\n"
        "print(json.dumps({'changed': changed, 'loaded': loaded}))\n"
    )
    unset = (*REPRODUCIBLE_ENV, rk.ENV_PATH, rk.ENV_EVERY)
    proc = run_python("-c", code, unset=unset, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_importing_the_recorder_changes_nothing_in_the_process():
    probe = _import_probe("reprodl.keras")
    assert probe == {"changed": [], "loaded": []}
    # The probe can see a change: a module that trains pins the process when imported.
    pinned = _import_probe("reprodl.data")
    assert "ONEDNN_MAX_CPU_ISA" in pinned["changed"] and "reprodl.runtime" in pinned["loaded"]


def test_importing_the_recorder_never_pins_the_process():
    code = (
        "import os; b = dict(os.environ); import reprodl.keras; assert dict(os.environ) == b; "
        "import sys; assert 'reprodl.runtime' not in sys.modules"
    )
    proc = run_python("-c", code, unset=(*REPRODUCIBLE_ENV, rk.ENV_PATH, rk.ENV_EVERY), timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_path_and_every_from_arguments_and_environment(monkeypatch, tmp_path):
    idle = RecordRun()
    assert not idle.active and idle.path is None and idle.every == rk.DEFAULT_EVERY
    assert idle.async_safe  # Keras may still dispatch callbacks asynchronously
    assert isinstance(idle, keras.callbacks.Callback) and type(idle) is RecordRun
    assert issubclass(RecordRun, keras.callbacks.Callback)  # once Keras is loaded
    monkeypatch.setenv(rk.ENV_PATH, str(tmp_path / "env.json"))
    monkeypatch.setenv(rk.ENV_EVERY, "7")
    rec = RecordRun()
    assert rec.active and rec.path == tmp_path / "env.json" and rec.every == 7
    assert not rec.async_safe
    mine = RecordRun(tmp_path / "mine.json", every=0)
    assert mine.path == tmp_path / "mine.json" and mine.every == 0
    monkeypatch.setenv(rk.ENV_EVERY, "often")
    with pytest.raises(UsageError, match="REPRODL_RECORD_EVERY='often' is not a whole number"):
        RecordRun()
    with pytest.raises(UsageError, match="every=-1: digest every how many steps must be 0 or more"):
        RecordRun(every=-1)
    monkeypatch.setenv(rk.ENV_PATH, "")
    monkeypatch.delenv(rk.ENV_EVERY)
    assert not RecordRun().active


def test_inactive_records_nothing_and_leaves_the_model_alone(xy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = compiled(build("softmax"))
    rec = RecordRun()
    fit(model, *xy, [rec], steps=3)
    assert rec.record is None and rec.steps == 0 and list(tmp_path.iterdir()) == []
    assert "compute_loss" not in vars(model)  # no loss hook installed


# --- records of the book's models and a recurrent one -------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "steps"),
    [
        ("softmax", {}, 10),
        ("mlp", {"dropout": 0.2}, 10),
        ("cnn", {}, 3),
        ("gru", {}, 6),
    ],
)
def test_two_identical_runs_give_identical_records(xy, tmp_path, name, kwargs, steps):
    paths = []
    for run in "ab":
        path = tmp_path / f"{run}.json"
        fit(compiled(build(name, **kwargs)), *xy, [RecordRun(path, every=2)], steps=steps)
        paths.append(path)
    a, b = (records.load(p) for p in paths)
    assert a.meta["source"] == "keras" and a.meta["loss"] == "step" and a.steps == steps
    assert a.meta["run"] is None and a.meta["seed"] is None and a.meta["interrupted"] is None
    assert a.meta["command"] == sys.argv and a.meta["digest_every"] == 2
    assert {"python", "numpy", "tensorflow", "keras", "reprodl"} <= set(a.meta["versions"])
    assert a.meta["settings"]["op_determinism"] is True
    assert "PYTHONHASHSEED" in a.meta["settings"]
    assert sorted(a.digests) == sorted({*range(0, steps + 1, 2), steps})
    kinds = {v["kind"] for v in a.variables}
    assert kinds == (
        {"weight", "optimizer"} if name == "softmax" else {"weight", "rng", "optimizer"}
    )
    names = a.variable_names
    assert "optimizer/iteration" in names and "optimizer/learning_rate" in names
    first = next(v["name"] for v in a.variables if v["kind"] == "weight")
    assert f"optimizer/{first}/momentum" in names and f"optimizer/{first}/velocity" in names
    result = divergence.compare(*paths)
    assert result.identical, str(result)
    assert a.final_digest == b.final_digest and np.array_equal(
        a.losses.view(np.uint32), b.losses.view(np.uint32)
    )


def test_an_unseeded_generator_shows_even_when_it_changes_no_loss(xy, tmp_path):
    for name in "ab":
        model = compiled(build("gru", rng_seed=None))  # seeded from Python's random module
        fit(model, *xy, [RecordRun(tmp_path / f"{name}.json", every=2)], steps=2)
    cmp = divergence.compare(tmp_path / "a.json", tmp_path / "b.json")
    assert cmp.differing_variables == ["row_gru/gru/seed_generator_state"]
    assert cmp.first_digest_step == 0 and cmp.first_loss_step is None


def test_the_recorder_changes_no_bit_of_the_run(xy, tmp_path):
    plain = compiled(build("mlp", dropout=0.2))
    before = training.state_digests(plain)
    fit(plain, *xy, steps=10)
    recorded = compiled(build("mlp", dropout=0.2))
    rec = RecordRun(tmp_path / "r.json", every=5)
    fit(recorded, *xy, [rec], steps=10)
    assert rec.record.final_digest == fingerprint.weights_digest(plain)
    assert training.state_digests(recorded) == training.state_digests(plain)
    # The model's part of the state is named and digested as the package's own records do it.
    assert {k: v for k, v in rec.record.digests[0].items() if k in before} == before


def test_losses_are_each_steps_own_not_keras_running_mean(xy, tmp_path):
    logged: list[float] = []

    class Logs(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            logged.append(logs["loss"])

    rec = RecordRun(tmp_path / "r.json", every=0)
    fit(compiled(build("mlp")), *xy, [rec, Logs()], steps=10)
    losses = rec.record.losses
    assert losses[0] == np.float32(logged[0])  # the first step's mean is its own loss
    running = np.cumsum(losses.astype(np.float64)) / np.arange(1, 11)  # equal batches
    np.testing.assert_allclose(running, logged, rtol=1e-5)
    assert not np.allclose(losses[1:], logged[1:], rtol=1e-3)  # other numbers than Keras logs


def test_a_step_loss_is_the_loss_of_that_batch(xy, tmp_path):
    x, y = xy
    model = compiled(build("mlp"), lr=0.0)  # the weights stay: each loss is the batch's loss
    rec = RecordRun(tmp_path / "r.json", every=0)
    fit(model, x, y, [rec], steps=5)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    direct = [float(loss(y[i : i + BATCH], model(x[i : i + BATCH]))) for i in range(0, 100, BATCH)]
    np.testing.assert_allclose(rec.record.losses, direct, rtol=1e-5)


def test_a_custom_train_step_without_compute_loss_records_keras_logs(xy, tmp_path):
    import tensorflow as tf

    class OwnStep(keras.Sequential):
        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                logits = self(x, training=True)
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
                )
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
            return {"loss": loss * 2}  # whatever the step chooses to log

    model = OwnStep([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])
    rec = RecordRun(tmp_path / "r.json", every=2)
    fit(compiled(model), *xy, [rec], steps=4)
    back = records.load(tmp_path / "r.json")
    assert back.meta["loss"] == "keras logs" and back.steps == 4
    other = records.load(tmp_path / "r.json")
    assert "losses: what Keras logged after each step" in str(divergence.compare(back, other))


# --- comparisons ----------------------------------------------------------------------------------


def test_changed_data_is_found_at_its_step_with_the_size_of_the_gap(xy, tmp_path):
    x, y = xy
    changed = x.copy()
    changed[3 * BATCH : 4 * BATCH] *= np.float32(0.5)  # the batch of step 4
    for name, images in (("a", x), ("b", changed)):
        fit(compiled(build("mlp")), images, y, [RecordRun(tmp_path / f"{name}.json", every=2)])
    cmp = divergence.compare(tmp_path / "a.json", tmp_path / "b.json")
    assert cmp.first_loss_step == 4 and cmp.first_step == 4
    assert (cmp.last_agreeing_step, cmp.first_digest_step) == (2, 4)
    assert cmp.first_variable == "mlp/hidden_1/kernel"
    assert cmp.loss_difference[3] > 0 and not cmp.loss_difference[:3].any()
    text = str(cmp)
    assert "losses: first differ at step 4" in text
    assert "weights: identical at step 2, differ at step 4" in text
    assert "  first differing variable: mlp/hidden_1/kernel" in text
    assert "meta: identical" in text


def test_another_dropout_seed_differs_before_the_first_step(xy, tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        model = compiled(build("mlp", dropout=0.2, dropout_seed=seed))
        fit(model, *xy, [RecordRun(tmp_path / f"{name}.json", every=5)])
    cmp = divergence.compare(tmp_path / "a.json", tmp_path / "b.json")
    assert cmp.first_digest_step == 0 and cmp.first_loss_step == 1
    assert cmp.differing_variables == ["mlp/dropout_1/seed_generator_state"]


def test_another_learning_rate_shows_in_the_optimizer_state(xy, tmp_path):
    for name, lr in (("a", 1e-3), ("b", 2e-3)):
        fit(compiled(build("softmax"), lr=lr), *xy, [RecordRun(tmp_path / f"{name}.json")])
    cmp = divergence.compare(tmp_path / "a.json", tmp_path / "b.json")
    assert cmp.first_digest_step == 0 and cmp.first_variable == "optimizer/learning_rate"
    assert cmp.first_loss_step == 2  # step 1 starts from the same (zero) weights


def test_several_fits_continue_one_record(xy, tmp_path):
    path = tmp_path / "loop.json"
    rec = RecordRun(path, every=4)
    model = compiled(build("mlp"))
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    for epoch in range(3):
        fit(model, *xy, [rec])
        assert records.load(path).steps == 10 * (epoch + 1)  # rewritten at each end
        assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
    loop = records.load(path)
    assert sorted(loop.digests) == [0, 4, 8, 10, 12, 16, 20, 24, 28, 30]
    once = RecordRun(tmp_path / "once.json", every=4)
    fit(compiled(build("mlp")), *xy, [once], epochs=3)
    assert np.array_equal(loop.losses.view(np.uint32), once.record.losses.view(np.uint32))
    assert all(loop.digests[s] == d for s, d in once.record.digests.items())
    other = compiled(build("mlp"))
    with pytest.raises(UsageError, match="this RecordRun records model 'mlp'; use a new"):
        fit(other, *xy, [rec], steps=1)


def test_bisect_refuses_keras_records(xy, tmp_path, capsys):
    for name in "ab":
        fit(compiled(build("softmax")), *xy, [RecordRun(tmp_path / f"{name}.json")], steps=2)
    message = "recorded by a Keras callback: it cannot be replayed; use compare"
    with pytest.raises(RecordError, match=re.escape(f"{tmp_path / 'a.json'}: {message}")):
        divergence.bisect(tmp_path / "a.json", tmp_path / "b.json")
    with pytest.raises(RecordError, match=message):
        divergence.replay(records.load(tmp_path / "b.json"), 0, 1)
    assert cli.main(["bisect", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert message in capsys.readouterr().err


def test_keras_and_loop_records_are_not_compared(xy, tmp_path):
    fit(compiled(build("softmax")), *xy, [RecordRun(tmp_path / "k.json")], steps=2)
    spec = training.RunSpec(model="softmax", steps=2, batch_size=BATCH)
    loop = divergence.record(spec, tmp_path / "l.json", data=synthetic_digits())
    keras_record = records.load(tmp_path / "k.json")
    keras_record.meta["model"] = loop.meta["model"]
    with pytest.raises(RecordError, match=r"recorded by different recorders \(keras and reprodl\)"):
        records.check_comparable(keras_record, loop)


# --- what the recorder refuses --------------------------------------------------------------------


def test_steps_per_execution_other_than_one_is_refused(xy, tmp_path):
    model = compiled(build("softmax"), steps_per_execution=2)
    with pytest.raises(UsageError, match="RecordRun needs steps_per_execution=1"):
        fit(model, *xy, [RecordRun(tmp_path / "r.json")], steps=2)
    assert not (tmp_path / "r.json").exists()


def _sequential(built: bool) -> keras.Model:
    """A small CNN as published Keras examples write it; ``built=False``: no keras.Input, so
    ``fit`` builds it from the first batch (named layers: one process makes both)."""
    keras.utils.set_random_seed(7)
    first = [keras.Input((28, 28))] if built else []
    return keras.Sequential(
        [
            *first,
            keras.layers.Reshape((28, 28, 1), name="image"),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dropout(0.3, name="dropout"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="example",
    )


def test_a_model_that_fit_builds_is_recorded_from_its_initial_state(xy, tmp_path):
    built = compiled(_sequential(built=True))
    initial = training.state_digests(built)
    lazy = compiled(_sequential(built=False))
    assert not lazy.built
    recs = {}
    for name, model in (("built", built), ("lazy", lazy)):
        recs[name] = RecordRun(tmp_path / f"{name}.json", every=2)
        fit(model, *xy, [recs[name]], steps=4)
    lazy_record = records.load(tmp_path / "lazy.json")
    assert lazy_record.steps == 4 and sorted(lazy_record.digests) == [0, 2, 4]
    # step 0 is the state before the first update: the same initial weights as the built model
    assert {k: v for k, v in lazy_record.digests[0].items() if k in initial} == initial
    assert lazy_record.variable_names == recs["built"].record.variable_names
    result = divergence.compare(tmp_path / "built.json", tmp_path / "lazy.json")
    assert result.identical, str(result)
    plain = compiled(_sequential(built=False))  # no recorder: the same bits
    fit(plain, *xy, steps=4)
    assert lazy_record.final_digest == fingerprint.weights_digest(plain)


# --- interruptions --------------------------------------------------------------------------------


def _full_run(xy, tmp_path, steps: int = 10) -> records.RunRecord:
    """The uninterrupted run, every step digested, to check partial records against."""
    rec = RecordRun(tmp_path / "full.json", every=1)
    fit(compiled(build("mlp", dropout=0.2)), *xy, [rec], steps=steps)
    return rec.record


def _is_prefix(part: records.RunRecord, full: records.RunRecord) -> bool:
    """``part`` is what ``full`` recorded for its first steps: same losses and digests."""
    losses = part.losses.view(np.uint32)
    return np.array_equal(losses, full.losses[: part.steps].view(np.uint32)) and all(
        full.digests[s] == d for s, d in part.digests.items()
    )


def test_an_exception_in_a_with_block_leaves_a_partial_record(xy, tmp_path):
    full = _full_run(xy, tmp_path)
    model = compiled(build("mlp", dropout=0.2))
    with pytest.raises(RuntimeError, match="boom"), RecordRun(tmp_path / "r.json", every=1) as rec:
        fit(model, *xy, [rec, raise_at(3, RuntimeError("boom at step 3\nmore"))])
    part = records.load(tmp_path / "r.json")
    assert part.meta["interrupted"] == "RuntimeError: boom at step 3" and part.steps == 3
    assert _is_prefix(part, full) and sorted(part.digests) == [0, 1, 2, 3]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    with pytest.raises(UsageError, match=r"ended when its run was interrupted \(RuntimeError"):
        fit(model, *xy, [rec], steps=1)
    text = str(divergence.compare(part, part))
    assert "A is partial: the run was interrupted (RuntimeError: boom at step 3)" in text


def test_an_interruption_before_the_first_step_writes_nothing_and_says_so(tmp_path, caplog):
    rec = RecordRun(tmp_path / "r.json")
    with pytest.raises(RuntimeError, match="boom"), rec:
        rec.set_model(compiled(build("softmax")))
        rec.on_train_begin()  # as fit does, which then fails before its first step
        raise RuntimeError("boom before the first step")
    assert rec.steps == 0 and rec.record is None and list(tmp_path.iterdir()) == []
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "reprodl"]
    assert logged == [("WARNING", f"RecordRun: no step recorded, no record written to {rec.path}")]


def test_an_exception_without_a_with_block_is_written_at_the_next_fit(xy, tmp_path):
    model = compiled(build("mlp", dropout=0.2))
    rec = RecordRun(tmp_path / "r.json", every=2)
    with pytest.raises(RuntimeError):
        fit(model, *xy, [rec, raise_at(5, RuntimeError("boom"))])
    assert not (tmp_path / "r.json").exists()  # Keras called nobody back
    with pytest.raises(UsageError, match="ended when its run was interrupted"):
        fit(model, *xy, [rec], steps=1)
    part = records.load(tmp_path / "r.json")
    # Nothing ran since: the state is that of the last recorded step, 5, digested now.
    assert part.steps == 5 and sorted(part.digests) == [0, 2, 4, 5]
    assert part.meta["interrupted"] == "an earlier fit did not end (an exception?)"


class Stop(Exception):
    """What the test's own SIGTERM handler raises."""


def test_sigint_and_sigterm_write_then_pass_the_signal_on(xy, tmp_path):
    full = _full_run(xy, tmp_path)

    def kill(signum: int, at: int) -> Hook:
        return Hook(lambda step: os.kill(os.getpid(), signum) if step == at else None)

    rec = RecordRun(tmp_path / "int.json", every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(compiled(build("mlp", dropout=0.2)), *xy, [rec, kill(signal.SIGINT, 4)])
    part = records.load(tmp_path / "int.json")
    assert part.meta["interrupted"] == "SIGINT" and part.steps == 4 and _is_prefix(part, full)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def stop(signum, frame):
        raise Stop

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        rec = RecordRun(tmp_path / "term.json", every=3)
        with pytest.raises(Stop):
            fit(compiled(build("mlp", dropout=0.2)), *xy, [rec, kill(signal.SIGTERM, 5)])
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
    part = records.load(tmp_path / "term.json")
    assert part.meta["interrupted"] == "SIGTERM" and part.steps == 5 and _is_prefix(part, full)


def test_a_signal_during_the_recorders_own_work_waits_for_it(xy, tmp_path):
    full = _full_run(xy, tmp_path)
    rec = RecordRun(tmp_path / "r.json", every=2)
    digest = rec._recording.digest_state

    def digest_then_signal():
        state = digest()
        if rec.steps == 4:
            os.kill(os.getpid(), signal.SIGINT)  # handled once the step is fully recorded
        return state

    rec._recording.digest_state = digest_then_signal
    with pytest.raises(KeyboardInterrupt):
        fit(compiled(build("mlp", dropout=0.2)), *xy, [rec])
    part = records.load(tmp_path / "r.json")
    assert part.meta["interrupted"] == "SIGINT" and part.steps == 4 and _is_prefix(part, full)
    assert sorted(part.digests) == [0, 2, 4]


class SignalInsideStep(keras.callbacks.Callback):
    """Sends a signal right after training step ``at`` ran, before Keras calls back."""

    def __init__(self, at: int, signum: int):
        super().__init__()
        self.at, self.signum, self.count = at, signum, 0

    def on_train_begin(self, logs=None):
        inner = self.model.train_function

        def train_function(iterator):
            out = inner(iterator)
            self.count += 1
            if self.count == self.at:
                os.kill(os.getpid(), self.signum)
            return out

        self.model.train_function = train_function


def test_a_signal_between_a_step_and_its_callback_keeps_that_step(xy, tmp_path):
    full = _full_run(xy, tmp_path)
    rec = RecordRun(tmp_path / "r.json", every=3)
    with pytest.raises(KeyboardInterrupt):
        fit(compiled(build("mlp", dropout=0.2)), *xy, [rec, SignalInsideStep(5, signal.SIGINT)])
    part = records.load(tmp_path / "r.json")
    # The optimizer had applied step 5 and the step had stored its loss: the record has it.
    assert part.steps == 5 and sorted(part.digests) == [0, 3, 5] and _is_prefix(part, full)


@pytest.mark.parametrize("inside_step", [False, True])
def test_a_handler_that_lets_fit_go_on_gets_a_whole_record(xy, tmp_path, inside_step):
    full = _full_run(xy, tmp_path)
    model = compiled(build("mlp", dropout=0.2))

    def stop_gently(signum, frame):  # a graceful-stop handler: fit ends normally
        model.stop_training = True

    if inside_step:
        sender = SignalInsideStep(5, signal.SIGTERM)
    else:
        sender = Hook(lambda step: os.kill(os.getpid(), signal.SIGTERM) if step == 5 else None)
    previous = signal.signal(signal.SIGTERM, stop_gently)
    try:
        rec = RecordRun(tmp_path / "r.json", every=2)
        fit(model, *xy, [rec, sender])
        assert signal.getsignal(signal.SIGTERM) is stop_gently
    finally:
        signal.signal(signal.SIGTERM, previous)
    whole = records.load(tmp_path / "r.json")
    assert whole.meta["interrupted"] is None and whole.steps == 5 and _is_prefix(whole, full)
    assert sorted(whole.digests) == [0, 2, 4, 5]


_CHILD = r"""
import os, sys, time
sys.path.insert(0, "tests")
import reprodl
reprodl.setup(0)
import keras
import numpy as np
from support import synthetic_digits
from reprodl.keras import RecordRun
from reprodl import models

mode = sys.argv[1]
digits = synthetic_digits()
x, y = digits.images.astype(np.float32) / np.float32(255), digits.labels
if mode == "warm":  # move Keras's process-wide name counters on: the names must not change
    keras.optimizers.Adam(), keras.layers.Dropout(0.5, seed=1), keras.layers.Dense(3)
model = models.build("mlp", dropout=0.2)
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


class Probe(keras.callbacks.Callback):
    step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if mode == "raise" and self.step == 3:
            raise RuntimeError("boom at step 3")
        if mode == "wait" and self.step == 3:
            print("ready", flush=True)
        if mode == "wait" and self.step >= 3:
            time.sleep(0.05)


epochs = 50 if mode == "wait" else 2
model.fit(x, y, batch_size=20, epochs=epochs, shuffle=False, verbose=0,
          callbacks=[RecordRun(every=1), Probe()])
"""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # then the child's Python installs its own


def _child(mode: str, path, **popen) -> subprocess.Popen:
    env = {**os.environ, rk.ENV_PATH: str(path)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode],
        env=env,
        cwd=ROOT,
        text=True,
        preexec_fn=_default_sigint,  # as from a terminal, even when run in the background
        **popen,
    )


@pytest.mark.slow
def test_records_from_fresh_processes(tmp_path):
    for mode in ("plain", "warm"):
        proc = _child(mode, tmp_path / f"{mode}.json", stderr=subprocess.PIPE)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    result = divergence.compare(tmp_path / "plain.json", tmp_path / "warm.json")
    assert result.identical, str(result)  # the same names although Keras's counters differ
    proc = _child("raise", tmp_path / "raise.json", stderr=subprocess.PIPE)
    assert proc.wait(timeout=300) == 1 and "boom at step 3" in proc.stderr.read()
    part = records.load(tmp_path / "raise.json")  # written on exit: nobody caught it
    assert part.meta["interrupted"] == "RuntimeError: boom at step 3" and part.steps == 3
    assert _is_prefix(part, records.load(tmp_path / "plain.json"))


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, -15), (signal.SIGINT, -2)])
def test_a_signal_from_outside_leaves_a_partial_record(tmp_path, signum, status):
    full = tmp_path / "full.json"
    proc = _child("plain", full, stderr=subprocess.PIPE)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    proc = _child("wait", tmp_path / "r.json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == status, err  # the signal still ends the process as it would
    part = records.load(tmp_path / "r.json")
    assert part.meta["interrupted"] == signal.Signals(signum).name and 3 <= part.steps <= 20
    assert _is_prefix(part, records.load(full))


# --- on the JAX backend ----------------------------------------------------------------------

_JAX_CHILD = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras
import numpy as np
from reprodl.keras import RecordRun
from reprodl.record import fingerprint

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x, y = rng.standard_normal((640, 20)).astype("float32"), rng.integers(0, 3, 640)
model = keras.Sequential([keras.layers.Dense(16, activation="relu", name="h"),
                          keras.layers.Dropout(0.3, seed=1, name="d"),
                          keras.layers.Dense(3, name="out")], name="net")  # no keras.Input
model.compile(keras.optimizers.Adam(1e-3),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
callbacks = [RecordRun(sys.argv[1], every=3)] if sys.argv[1] != "-" else []
model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=callbacks)
print(fingerprint.weights_digest(model))
"""


@pytest.mark.slow
def test_a_fit_on_jax_is_recorded_and_changed_by_nothing(tmp_path):
    """Two fresh JAX processes give identical records; the recorded run ends with the weights
    of a run without the callback (syncing the state for a digest changes no bit)."""
    finals = []
    for name in ("a.json", "b.json", "-"):
        target = "-" if name == "-" else str(tmp_path / name)
        result = run_python("-c", _JAX_CHILD, target, unset=("XLA_FLAGS", "PJRT_NPROC"))
        assert result.returncode == 0, result.stderr[-2000:]
        finals.append(result.stdout.split()[-1])
    a, b = records.load(tmp_path / "a.json"), records.load(tmp_path / "b.json")
    assert divergence.compare(a, b).identical
    assert a.final_digest == finals[0] == finals[1] == finals[2]
    assert a.steps == 20 and sorted(a.digests) == [0, 3, 6, 9, 12, 15, 18, 20]
    assert a.meta["loss"] == "keras logs" and a.meta["settings"]["keras_backend"] == "jax"
    assert "jax" in a.meta["versions"] and "jaxlib" in a.meta["versions"]
