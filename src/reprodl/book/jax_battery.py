"""The cross-CPU battery on Keras' JAX backend: its settings and the child that runs them.

Keras 3 picks its backend once per process, from ``KERAS_BACKEND`` before Keras is imported, so
each setting runs in a fresh interpreter (:func:`reprodl.book.crosscheck.run_setting`, natively
or under QEMU). Under JAX every case trains with Keras ``fit``: the cases the TensorFlow battery
runs through the package's own loop (a ``tf.function`` step) are fed to ``fit`` unshuffled, in
the order of the package's batch stream, so both backends see the same batches.

What decides a JAX run's bits on a CPU, measured with this battery (``python -m reprodl
crosscheck --backend jax --all-settings``): the size of XLA:CPU's thread pool (``PJRT_NPROC``;
unset, the cores the process may use), the instruction set XLA generates code for
(``--xla_cpu_max_isa``) and fast math (``--xla_cpu_enable_fast_math``). The pins are
:data:`reprodl.env.contract.JAX_PINNED_ENV`. Across CPUs, XLA's library fusions to YNNPACK
decide too: YNNPACK picks its kernels by the CPU's own instruction set, which the ISA cap does not
reach, so an AVX-512 CPU gives other bits than AVX2 ones; turned off (``-noynn``), the products
run as Eigen contractions whose blocks follow the cache sizes instead (chapter 13).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprodl.env import contract
from reprodl.errors import UsageError

BACKEND = "jax"
#: The XLA flag that turns XLA:CPU's library fusions to YNNPACK off (an empty list of fusion
#: types; jaxlib 0.10.2): forward products and convolutions then run as Eigen contractions.
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="


@dataclass(frozen=True)
class JaxSetting:
    """One combination of the settings that decide a JAX run's bits; ``threads=None`` with
    ``isa="stock"`` is JAX as installed (no variable set but the backend)."""

    threads: int | None
    isa: str
    fast_math: bool = False
    ynn: bool = True  # XLA's library fusions to YNNPACK on, as JAX has them ("-noynn": off)

    backend = BACKEND

    @property
    def name(self) -> str:
        if self.threads is None:
            return "jax-stock"
        ynn, fast = ("" if self.ynn else "-noynn"), ("-fm" if self.fast_math else "")
        return f"jax-n{self.threads}-{self.isa}{ynn}{fast}"

    @classmethod
    def parse(cls, name: str) -> JaxSetting:
        if name == "jax-stock":
            return STOCK
        m = re.fullmatch(r"jax-n(\d+)-([A-Z0-9_]+?)(-noynn)?(-fm)?", name)
        if not m or int(m.group(1)) < 1:
            raise UsageError(f"not a JAX setting name: {name!r} (like jax-n1-AVX2, jax-stock)")
        return cls(int(m.group(1)), m.group(2), bool(m.group(4)), not m.group(3))

    def env(self) -> dict[str, str]:
        """The variables this setting sets in the child (on top of the NumPy pins)."""
        if self.threads is None:
            return {"KERAS_BACKEND": BACKEND}
        fast = "true" if self.fast_math else "false"
        flags = f"--xla_cpu_max_isa={self.isa} --xla_cpu_enable_fast_math={fast}"
        return {
            "KERAS_BACKEND": BACKEND,
            "PJRT_NPROC": str(self.threads),
            "XLA_FLAGS": flags if self.ynn else f"{flags} {YNN_OFF}",
        }

    def command(self, cases: Sequence[Mapping[str, Any]]) -> list[str]:
        """The interpreter command that runs ``cases`` (as :meth:`Case.to_dict` gives them)."""
        return [sys.executable, "-c", _CHILD, json.dumps(list(cases))]


#: JAX as installed: XLA's thread pool as large as the cores, code for the best ISA.
STOCK = JaxSetting(None, "stock")


def ynn_kind(flags: Sequence[str]) -> str:
    """Which of YNNPACK's float32 kernels a CPU with these CPUID flags gets: ``"AVX-512"`` (among
    them kernels with four partial sums along the summed dimension) or ``"AVX2"`` (at most two);
    the ISA cap does not reach them."""
    return "AVX-512" if "avx512f" in flags else "AVX2"


def reference_record(
    records: Sequence[Mapping[str, Any]], flags: Sequence[str]
) -> Mapping[str, Any]:
    """The native record, among ``records``, of a CPU of the same YNNPACK kind as ``flags``'s:
    the bits the pinned setting gives there. :class:`UsageError` when none was measured."""
    kind = ynn_kind(flags)
    for record in records:
        if not record["emulated"] and ynn_kind(record["cpu"]["flags"]) == kind:
            return record
    raise UsageError(f"no committed JAX record of a native CPU with {kind} kernels")


#: The contract's JAX setting (:data:`reprodl.env.contract.JAX_PINNED_ENV`).
PINNED = JaxSetting(contract.JAX_THREADS, contract.JAX_ISA)
#: The alternatives measured against it: other thread-pool sizes, other ISA caps, fast math.
ALTERNATIVES = (
    STOCK,
    JaxSetting(2, contract.JAX_ISA),
    JaxSetting(4, contract.JAX_ISA),
    JaxSetting(contract.JAX_THREADS, "AVX"),
    JaxSetting(contract.JAX_THREADS, "SSE4_2"),
    JaxSetting(contract.JAX_THREADS, contract.JAX_ISA, fast_math=True),
    JaxSetting(contract.JAX_THREADS, contract.JAX_ISA, ynn=False),
)

_CHILD = r"""
import json, sys, time
import reprodl.runtime as rt  # NumPy's and Python's pins; TensorFlow's do not reach JAX
rt.setup(0)

import keras
import numpy as np
from reprodl import data, models, training
from reprodl.env import cpu
from reprodl.record import fingerprint

assert keras.backend.backend() == "jax", keras.backend.backend()
print(json.dumps({"cpu": cpu.describe().to_dict()}), flush=True)
mnist = data.load_mnist()
train = data.Split(mnist.train.images[:10000], mnist.train.labels[:10000])
for spec in json.loads(sys.argv[1]):
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    test_x = data.to_float(mnist.test.images[:spec.get("logits_images", 1000)])
    if spec["model"] == "lstm":
        model = models.row_lstm(0, keras_orthogonal=spec["name"] == "lstm-keras-init")
        optimizer, batch, n = keras.optimizers.Adam(2e-3), 100, spec["steps"] * 100
        split = data.Split(train.images[:n], train.labels[:n])
    else:
        run = training.RunSpec(spec["model"], steps=spec["steps"],
                               batch_size=spec.get("batch_size"))
        model, optimizer, stream = training.build(run, len(train))
        run = run.resolved()
        batch = run.batch_size
        if spec["keras_fit"]:
            split = data.Split(train.images[: run.steps * batch], train.labels[: run.steps * batch])
        else:  # the package loop's batches, in its order
            order = np.concatenate([stream.next(batch) for _ in range(run.steps)])
            split = data.Split(train.images[order], train.labels[order])
    history = training.fit_quietly(model, split, epochs=1, batch_size=batch, optimizer=optimizer,
                                   shuffle=False, printer=None)
    loss = float(history.history["loss"][-1])
    logits = keras.ops.convert_to_numpy(model(test_x, training=False))
    print(json.dumps({
        "case": spec["name"], "loss": fingerprint.format_float(loss),
        "fingerprint": fingerprint.weights_digest(model),
        "logits": fingerprint.array_digest(logits),
        "seconds": round(time.perf_counter() - start, 2),
    }), flush=True)
"""
