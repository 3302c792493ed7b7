"""What a run depends on, read and never set: software versions, settings in force, the CPU.

The one place these facts are computed; the book's engine (:mod:`reprodl.runtime`), the run
records, the Keras recorder, the decomposition and the benchmarks all take them from here.
Importing this module changes nothing in the process and imports neither NumPy nor TensorFlow.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from reprodl.env import contract, cpu

#: The CPU flags a report lists: those that decide which kernels oneDNN and OpenBLAS may pick.
REPORTED_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
#: Environment variables a user's run record keeps, by prefix and by name (what the bits can
#: depend on in a process this package did not pin).
SETTINGS_PREFIXES = ("TF_", "ONEDNN_", "OMP_", "OPENBLAS_", "MKL_", "NPY_", "KMP_", "XLA_")
SETTINGS_NAMES = ("PYTHONHASHSEED", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "PJRT_NPROC", "NPROC")


def versions() -> dict[str, str]:
    """Python, NumPy, reprodl, and TensorFlow and Keras if this process has loaded them."""
    import numpy as np

    import reprodl

    found = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "reprodl": reprodl.__version__,
    }
    if "tensorflow" in sys.modules:
        import keras
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
        found["keras"] = keras.__version__
    return found


#: The packages of Keras' JAX backend (chapter 13), for records of runs on JAX.
JAX_PACKAGES = ("jax", "jaxlib")


def installed_versions(extra: Sequence[str] = ()) -> dict[str, str]:
    """Python and the installed NumPy, TensorFlow and Keras (and the ``extra`` packages),
    without importing any of them."""
    found = {"python": platform.python_version()}
    for name in ("numpy", "tensorflow", "keras", *extra):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    """This process's CPU model as CPUID names it (the emulated one under QEMU)."""
    return cpu.describe().model_name


def cpu_flags() -> list[str]:
    """The :data:`REPORTED_FLAGS` this process's CPU has, in that order."""
    present = set(cpu.describe().flags)
    return [flag for flag in REPORTED_FLAGS if flag in present]


def tensorflow_settings() -> dict[str, Any]:
    """TensorFlow's thread counts and op determinism, if this process has loaded TensorFlow."""
    if "tensorflow" not in sys.modules:
        return {}
    import tensorflow as tf

    from reprodl import _tf

    return {
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "op_determinism": _tf.is_op_determinism_enabled(),
    }


def variables(names: Iterable[str]) -> dict[str, str | None]:
    """The values of ``names`` in ``os.environ`` (``None`` where unset), sorted by name."""
    return {name: os.environ.get(name) for name in sorted(names)}


def settings_of_a_run() -> dict[str, Any]:
    """The environment variables of :data:`SETTINGS_PREFIXES` and :data:`SETTINGS_NAMES` that
    are set (``PYTHONHASHSEED`` always, ``None`` where unset), sorted, then TensorFlow's."""
    env = {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIXES)}
    env.update({k: os.environ[k] for k in SETTINGS_NAMES if k in os.environ})
    env.setdefault("PYTHONHASHSEED", None)
    return {**dict(sorted(env.items())), **tensorflow_settings()}


def pinned_settings() -> dict[str, Any]:
    """The contract's variables as they are now (``None`` where unset), ``PYTHONHASHSEED``, and
    TensorFlow's thread counts and op determinism if it is loaded (for reports and records)."""
    settings: dict[str, Any] = variables(contract.PINNED_ENV)
    settings["PYTHONHASHSEED"] = os.environ.get("PYTHONHASHSEED")
    settings.update(tensorflow_settings())
    return settings


def environment_report() -> dict[str, Any]:
    """Versions, CPU model and flags, and the contract's settings in force: what a reader needs
    to compare two machines."""
    found = versions()
    report: dict[str, Any] = {
        "python": found["python"],
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "numpy": found["numpy"],
    }
    if "tensorflow" in found:
        import tensorflow as tf

        report["tensorflow"] = found["tensorflow"]
        report["keras"] = found["keras"]
        report["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    report["settings"] = pinned_settings()
    return report


def environment_line() -> str:
    """A one-line summary of :func:`environment_report` for the top of a chapter.

    It names this CPU (model, best instruction set, L2 size per core) and what oneDNN computes
    with under the cap, so a reader whose numbers differ sees why; the CPU part is the one thing
    in a chapter's stored outputs that may differ between machines that agree bit for bit.
    """
    r = environment_report()
    s = r["settings"]
    c = cpu.describe()
    cap = s.get("ONEDNN_MAX_CPU_ISA")
    onednn = s.get("TF_ENABLE_ONEDNN_OPTS") == "1"
    parts = [
        f"Python {r['python']}",
        f"NumPy {r['numpy']}",
        f"TensorFlow {r.get('tensorflow', 'not loaded')}",
        f"Keras {r.get('keras', 'not loaded')}",
        f"CPU {c.model_name} ({c.best_isa or 'no SIMD'}, L2 {cpu.short_size(c.l2)})",
        f"oneDNN {'ops on' if onednn else 'ops off'}, ISA {c.effective_isa(cap) or 'native'}"
        + (f" (cap {cap})" if cap else ""),
        f"{s.get('tf_intra_op_threads', contract.INTRA_OP_THREADS)} intra-op thread(s), "
        f"{s.get('tf_inter_op_threads', contract.INTER_OP_THREADS)} inter-op",
        f"op determinism {'on' if s.get('op_determinism') else 'off'}",
    ]
    return " | ".join(parts)
