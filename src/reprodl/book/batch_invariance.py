"""Batch invariance of the book's four models, measured per setting (chapter 14, its record).

:func:`build_models` trains the softmax, MLP, deep CNN and chapter 11's LSTM briefly under the
pins (seed 0, one pass over the first 5,000 training images: 50 steps of batch 100, Adam 2e-3)
and saves them as ``.keras`` files with MNIST's first 1,001 test images (``test.npy``); the
kernels' paths depend on shapes, not on how long a model trained. :func:`run_setting`
loads them in a fresh interpreter under one setting and measures, per model
(:mod:`reprodl.serving`): each size against one example alone, ``predict`` against a call, the
sizes grouped by row 0's bits, how many results one example gets over the positions of a batch,
and whether the fixed-batch remedy is invariant. Settings: ``stock`` (TensorFlow's defaults, no
pins) or a crosscheck setting name such as ``opts1-AVX2-t1`` (the pins).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from reprodl import _proc, runtime
from reprodl.book import crosscheck
from reprodl.errors import CrossCheckError, ReprodlError

MODELS = ("softmax", "mlp", "cnn", "lstm")
#: The sizes measured against one example alone (the issue's, and the edges the first run found).
SIZES = (2, 3, 4, 7, 8, 32, 33, 100, 1000)
#: The batch sizes whose positions are probed, and the fixed batch checked as the remedy (a
#: batch of one is invariant by construction: every example alone, always the same call).
POSITION_BATCHES = (8, 32, 100)
FIXED_BATCHES = (100,)
#: The smaller plan of an emulated CPU (QEMU runs the measurement some 30 times slower): the
#: sizes up to 100 and the remedy's positions only.
EMULATED_SIZES = (2, 3, 4, 7, 32, 100)
EMULATED_POSITIONS = (100,)
#: The settings of the record: the pins, the pins with two intra-op threads, TensorFlow's own.
SETTINGS = (crosscheck.PINNED.name, "opts1-AVX2-t2", "stock")
TEST_IMAGES = 1001


def build_models(folder: Path, *, timeout: float = 1800) -> None:
    """Train and save the four models and the test images into ``folder`` (a pinned child)."""
    proc = _proc.run(
        [sys.executable, "-c", _BUILD, str(folder), str(TEST_IMAGES)], env=_env(), timeout=timeout
    )
    if proc.timed_out or proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-8:])
        raise ReprodlError(f"building the models failed (exit {proc.returncode}):\n{tail}")


def _env(setting: str | None = None) -> dict[str, str]:
    """A child's environment: stock has none of the pins, any other setting all of them."""
    env = crosscheck._child_env()  # the battery's: the pins, no other backend's variables
    if setting == "stock":
        for name in runtime.REPRODUCIBLE_ENV:
            if name != "PYTHONHASHSEED":
                env.pop(name, None)
    return env


def run_setting(
    setting: str, folder: Path, *, emulate: str | None = None, timeout: float = 3600
) -> dict[str, Any]:
    """Measure the models in ``folder`` under ``setting``, natively or under ``qemu -cpu
    emulate``: ``{"cpu": ..., "models": {name: measurements}}``."""
    if setting != "stock":
        crosscheck.Setting.parse(setting)  # a clear error for a bad name
    plan = _plan(emulated=bool(emulate))
    command = [sys.executable, "-c", _MEASURE, setting, str(folder), json.dumps(plan)]
    if emulate:
        qemu = crosscheck.qemu_path()
        if qemu is None:
            raise CrossCheckError("qemu-x86_64 is not installed (apt-get install qemu-user)")
        command = [qemu, "-cpu", emulate, *command]
    proc = _proc.run(command, env=_env(setting), timeout=timeout)
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.timed_out or proc.returncode != 0 or len(lines) != 1:
        tail = "\n".join(proc.stderr.splitlines()[-8:])
        raise CrossCheckError(f"{setting} failed (exit {proc.returncode}):\n{tail}")
    return lines[0]


def _plan(*, emulated: bool = False) -> dict[str, Any]:
    return {"models": MODELS, "sizes": EMULATED_SIZES if emulated else SIZES,
            "positions": EMULATED_POSITIONS if emulated else POSITION_BATCHES,
            "fixed": FIXED_BATCHES}  # fmt: skip


def table(models: dict[str, Any]) -> list[str]:
    """One line per model: for each size, ``=`` when row 0..6 get their bits alone, else ``x``."""
    lines = []
    for name, result in models.items():
        checks = result["plain"]["sizes"]
        marks = " ".join(f"{c['size']}:{'=' if c['rows_differ'] == 0 else 'x'}" for c in checks)
        lines.append(f"{name:<8} {marks}")
    return lines


_BUILD = r"""
import sys
from pathlib import Path
import reprodl.runtime as rt
rt.setup(0)
import keras
import numpy as np
from reprodl import data, models, training

folder, TRAIN = Path(sys.argv[1]), 5000
mnist = data.load_mnist()
np.save(folder / "test.npy", data.to_float(mnist.test.images[:int(sys.argv[2])]))
split = data.Split(mnist.train.images[:TRAIN], mnist.train.labels[:TRAIN])
for name in ("softmax", "mlp", "cnn", "lstm"):
    keras.utils.set_random_seed(0)
    model = models.row_lstm(0) if name == "lstm" else models.build(name, seed=0)
    training.fit_quietly(model, split, epochs=1, batch_size=100,
                         optimizer=keras.optimizers.Adam(2e-3), shuffle=False, printer=None)
    model.save(folder / f"{name}.keras")
"""

_MEASURE = r"""
import json, sys
from pathlib import Path
setting, folder, plan = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
if setting != "stock":
    import reprodl.runtime as rt
    opts, isa, threads = setting[4], setting.split("-")[1], int(setting.split("-t")[1])
    rt.repin(onednn_opts=opts, onednn_isa=isa, intra_op_threads=threads)
    rt.setup(0)
import keras
import numpy as np
import tensorflow as tf
from reprodl.env import cpu
from reprodl.serving import FixedBatch, measure, position_results

x = np.load(folder / "test.npy")
out = {"cpu": cpu.describe().to_dict(), "setting": setting,
       "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
       "models": {}}
for name in plan["models"]:
    model = keras.saving.load_model(folder / f"{name}.keras")
    xs = x.reshape(-1, *model.input_shape[1:])
    out["models"][name] = {
        "plain": measure(model, xs, plan["sizes"]).to_dict(),
        "positions": {str(b): position_results(model, xs, b) for b in plan["positions"]},
        "fixed": {str(b): measure(FixedBatch(model, b), xs, plan["sizes"]).invariant
                  for b in plan["fixed"]},
    }
print(json.dumps(out), flush=True)
"""
