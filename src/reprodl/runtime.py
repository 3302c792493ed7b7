"""Pin the process so that training gives the same bits on every run and on the x86-64 CPUs tested.

The bits of a float32 training run depend on more than seeds: on how many threads split each
reduction, on the CPU instruction set oneDNN and OpenBLAS dispatch to, on the CPU's cache sizes,
and on whether TensorFlow's op determinism is on. :func:`pin_environment` fixes the settings that
must be in the environment before NumPy or TensorFlow load (importing this module calls it);
:func:`setup` applies the rest and seeds every random number generator. Settings that are already
too late to change are reported as a :class:`ReproducibilityWarning`, never silently ignored.

Why these pins (TensorFlow 2.21, Keras 3.15; measured with ``python -m reprodl crosscheck`` on an
AMD Zen 4 and under QEMU-emulated EPYC, EPYC-Rome, EPYC-Milan, Broadwell, Haswell, Skylake-Server,
Cascadelake-Server and Icelake-Server; records in ``src/reprodl/results/cross_cpu/``):

- ``TF_ENABLE_ONEDNN_OPTS=0`` with 2 intra-op threads (the pins before) ran ``MatMul`` as an Eigen
  contraction blocked by the L2/L3 sizes the CPU reports, so CPUs with 512 KiB of L2 (Zen 2/3) and
  those with 1 MiB or more (Zen 4, the emulated Intel models) trained different bits.
- ``TF_ENABLE_ONEDNN_OPTS=1`` runs matrix products and convolutions as oneDNN primitives; their
  training steps agreed on every CPU with 1 or 2 threads, but with 2 threads oneDNN splits a large
  product (a 1,000-image inference batch) between threads in a CPU-dependent way.
- ``TF_ENABLE_ONEDNN_OPTS`` is pinned because its default depends on the CPU: on Linux, TensorFlow
  2.21 turns oneDNN's ops on only for CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX
  (``DefaultOneDnnPolicy`` in ``tensorflow/core/util/port.cc``), so a Zen 4 has them on by default
  and a Zen 3 or a Skylake has them off.
- So each op runs on **one** intra-op thread, and **two inter-op** threads run independent ops side
  by side (each op still computes alone: no bit changes). On the Zen 4 the deep CNN trains at 14.0
  steps/s this way against 9.9 with oneDNN's ops off and 2 threads
  (``src/reprodl/results/pin_settings_speed.json``), the fastest setting that was exact on every
  CPU tried. Stock, unpinned Keras, with AVX-512 and both cores in every op, is faster (19.2
  steps/s); the book's own loop matches it (19.6) by cutting the big layers into pieces that the
  inter-op threads run side by side with the bits of the whole op (:mod:`reprodl.training.lanes`;
  ``src/reprodl/results/price_of_exactness.json``).
- The oneDNN ISA cap stays at AVX2: AVX2, AVX and AVX512_CORE give three results on every model.
- One thread removes the split between threads, not every dependence on the CPU: oneDNN's brgemm
  convolutions choose their blocks from the per-core L1 size (and, backward, the L2 size) whatever
  the thread count (``init_jcp`` in ``src/cpu/x64/jit_brgemm_conv_utils.cpp`` and
  ``jit_brgemm_conv_bwd_utils.cpp``, oneDNN v3.7.3 as bundled with TensorFlow 2.21). Every CPU in
  the records reports a 32 KiB L1 data cache, and the emulated Intel models report QEMU's generic
  caches, not the real chips': other cache sizes are not verified.
- Threads outside TensorFlow's own pools: the TensorFlow 2.21 wheel builds oneDNN with its
  threadpool runtime, which runs on TensorFlow's intra-op threads (``ONEDNN_VERBOSE=1`` prints
  ``runtime:threadpool``), so ``TF_NUM_INTRAOP_THREADS`` is oneDNN's thread count; no OpenMP or
  MKL runtime is linked. NumPy's OpenBLAS is a pthreads build that takes its count from
  ``OPENBLAS_NUM_THREADS`` (``OMP_NUM_THREADS`` only when that is unset). ``OMP_NUM_THREADS`` and
  ``MKL_NUM_THREADS`` are pinned anyway, for builds of these libraries that use OpenMP or MKL.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from reprodl.env import contract, cpu, report

#: The contract's values (:mod:`reprodl.env.contract`, readable there without pinning); the
#: thread counts and PINNED_ENV are this process's and :func:`repin` may change them.
INTRA_OP_THREADS = contract.INTRA_OP_THREADS
INTER_OP_THREADS = contract.INTER_OP_THREADS
BLAS_THREADS = contract.BLAS_THREADS
ONEDNN_ISA = contract.ONEDNN_ISA
ONEDNN_OPTS = contract.ONEDNN_OPTS
OPENBLAS_CORE = contract.OPENBLAS_CORE
NUMPY_DISABLED_FEATURES = contract.NUMPY_DISABLED_FEATURES
PINNED_ENV = contract.PINNED_ENV
REPRODUCIBLE_ENV = contract.REPRODUCIBLE_ENV
BOOK_ENVIRONMENT = contract.BOOK_ENVIRONMENT


class ReproducibilityWarning(UserWarning):
    """A setting the reproducibility contract needs could not be applied."""


def _warn(message: str) -> None:
    # warn_explicit with a fixed "filename" keeps temp paths and kernel ids out of notebook output.
    warnings.warn_explicit(message, ReproducibilityWarning, "reprodl.runtime", 0)


@dataclass(frozen=True)
class PinReport:
    """What :func:`pin_environment` did: variables it set and those it was too late for."""

    changed: dict[str, tuple[str | None, str]]
    too_late: tuple[str, ...]


def pin_environment() -> PinReport:
    """Write the pinned variables into ``os.environ``, overriding ambient values.

    Must run before NumPy and TensorFlow are imported for the BLAS settings to take effect
    (importing this module does it first thing, and ``reprodl.setup`` and every module of the
    package that trains or computes import it; ``import reprodl`` alone does not).
    ``ONEDNN_MAX_CPU_ISA`` still works after ``import tensorflow`` as long as no op has run yet.
    """
    changed: dict[str, tuple[str | None, str]] = {}
    for name, value in PINNED_ENV.items():
        old = os.environ.get(name)
        if old != value:
            os.environ[name] = value
            changed[name] = (old, value)
    too_late: list[str] = []
    if "numpy" in sys.modules:
        too_late += [n for n in changed if n.startswith(("OPENBLAS", "MKL", "NPY_"))]
    return PinReport(changed=changed, too_late=tuple(too_late))


_IMPORT_PIN = pin_environment()


def numpy_simd_problems(version: str, features: Mapping[str, bool]) -> list[str]:
    """Why NumPy ``version`` with these active CPU ``features`` runs SIMD loops above AVX2.

    The names in :data:`NUMPY_DISABLED_FEATURES` are the CPU-feature groups of NumPy 2.4; an
    older NumPy (Colab's, for one) does not know them, keeps its AVX-512 loops and says nothing.
    """
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (2, 4):
        active = [name for name in ("AVX512F", "AVX512_SKX") if features.get(name)]
        if active:
            return [
                f"NumPy {version} predates the CPU-feature groups reprodl disables to keep "
                f"NumPy's SIMD loops at AVX2 ({NUMPY_DISABLED_FEATURES}; NumPy 2.4 and later): "
                f"it runs its {active[-1]} loops on this CPU, so NumPy results can differ in the "
                "last bits from the book's (chapter 8). Install the pinned NumPy for those bits."
            ]
        return []
    above = [name for name in NUMPY_DISABLED_FEATURES.split() if features.get(name)]
    if above:
        return [
            f"NumPy dispatches to {', '.join(above)} loops: NumPy was imported before reprodl. "
            "Import reprodl first for bits that match AVX2 machines."
        ]
    return []


def _pin_numpy() -> None:
    """Fix NumPy's BLAS thread count now; check the BLAS kernels and SIMD loops it loaded."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=BLAS_THREADS, user_api="blas")
    if "OPENBLAS_CORETYPE" not in PINNED_ENV:
        return
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    import numpy as np

    for problem in numpy_simd_problems(np.__version__, __cpu_features__):
        _warn(problem)
    for pool in threadpool_info():
        arch = pool.get("architecture")
        if (
            pool.get("internal_api") == "openblas"
            and arch
            and arch.lower() != OPENBLAS_CORE.lower()
        ):
            _warn(
                f"NumPy's OpenBLAS runs the {arch} kernels, not {OPENBLAS_CORE}: NumPy was "
                "imported before reprodl. Import reprodl first (or start Python with "
                f"OPENBLAS_CORETYPE={OPENBLAS_CORE}) for bits that match other machines."
            )


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment (C++ start-up chatter only)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> Any:
    """``import tensorflow``, without the C++ start-up lines it writes straight to stderr.

    The GPU-enabled wheel logs "Could not find cuda drivers" with a timestamp through absl before
    ``TF_CPP_MIN_LOG_LEVEL`` applies; in a notebook that lands in the stored output and would
    differ on every run. Only the import is silenced; later errors still show.
    """
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    with _native_stderr_silenced():
        import tensorflow as tf
    return tf


def _pin_tensorflow(op_determinism: bool) -> None:
    """Thread counts, oneDNN cap and op determinism for TensorFlow; warn where too late."""
    tf = import_tensorflow()

    threading = tf.config.threading
    for name, setter, getter, wanted in (
        (
            "intra-op",
            threading.set_intra_op_parallelism_threads,
            threading.get_intra_op_parallelism_threads,
            INTRA_OP_THREADS,
        ),
        (
            "inter-op",
            threading.set_inter_op_parallelism_threads,
            threading.get_inter_op_parallelism_threads,
            INTER_OP_THREADS,
        ),
    ):
        if getter() == wanted:
            continue
        try:
            setter(wanted)
        except RuntimeError:
            _warn(
                f"TensorFlow is already initialised with {getter()} {name} threads, not {wanted}: "
                "call reprodl.setup() before running any TensorFlow op (restart the kernel)."
            )
    set_op_determinism(op_determinism)


def set_op_determinism(on: bool) -> None:
    """Turn TensorFlow's op determinism on or off for the whole process (takes effect at once)."""
    from reprodl import _tf

    tf = import_tensorflow()
    if on:
        tf.config.experimental.enable_op_determinism()
    elif _tf.is_op_determinism_enabled():
        _tf.disable_op_determinism()


def set_intra_op_threads(count: int) -> None:
    """Give TensorFlow ``count`` intra-op threads; :class:`~reprodl.errors.SettingsError` when
    TensorFlow already runs with another count (fixed for the life of a process)."""
    from reprodl.errors import SettingsError

    threading = import_tensorflow().config.threading
    if threading.get_intra_op_parallelism_threads() == count:
        return
    try:
        threading.set_intra_op_parallelism_threads(count)
    except RuntimeError:
        raise SettingsError(
            f"this run needs {count} intra-op threads, but TensorFlow is already running with "
            f"{threading.get_intra_op_parallelism_threads()}: run it in a process of its own"
        ) from None


def repin(
    *,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    onednn_opts: str | None = None,
    onednn_isa: str | None = None,
) -> None:
    """Replace pins of this process before :func:`setup` (``None``: keep the pin).

    For child processes that measure another setting: ``import reprodl`` has already written the
    defaults into the environment, so the pins themselves must change, before TensorFlow loads.
    The ISA cap changes only where the platform pins it (x86-64).
    """
    global INTRA_OP_THREADS, INTER_OP_THREADS
    if intra_op_threads is not None:
        INTRA_OP_THREADS = intra_op_threads
        for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
            PINNED_ENV[name] = str(intra_op_threads)
    if inter_op_threads is not None:
        INTER_OP_THREADS = inter_op_threads
        PINNED_ENV["TF_NUM_INTEROP_THREADS"] = str(inter_op_threads)
    if onednn_opts is not None:
        PINNED_ENV["TF_ENABLE_ONEDNN_OPTS"] = onednn_opts
    if onednn_isa is not None and "ONEDNN_MAX_CPU_ISA" in PINNED_ENV:
        PINNED_ENV["ONEDNN_MAX_CPU_ISA"] = onednn_isa


def _check_isa() -> None:
    """Warn when this x86-64 CPU cannot run the AVX2 kernels the stored outputs come from."""
    if "ONEDNN_MAX_CPU_ISA" not in PINNED_ENV:
        return
    info = cpu.describe()
    if info.best_isa is not None and info.effective_isa(ONEDNN_ISA) != ONEDNN_ISA:
        _warn(
            f"This CPU ({info.model_name}) has no {ONEDNN_ISA} (best: {info.best_isa}): oneDNN "
            "and OpenBLAS run other kernels, so trainings will not give the book's bits."
        )
    verified = verified_cache_geometries()
    if info.l1d and info.l2 and verified and (info.l1d, info.l2) not in verified:
        sizes = ", ".join(
            f"{cpu.short_size(l1d)}/{cpu.short_size(l2)}" for l1d, l2 in sorted(verified)
        )
        _warn(
            f"This CPU's caches (L1d {cpu.short_size(info.l1d)}, L2 {cpu.short_size(info.l2)}) "
            f"are not among those the book's bits were verified on (L1d/L2: {sizes}): some "
            "kernels size their blocks from the caches, so check with python -m reprodl "
            "crosscheck before trusting the bits."
        )


def verified_cache_geometries() -> set[tuple[int, int]]:
    """The (L1d, L2) sizes in bytes of every CPU and emulated cache geometry in the committed
    cross-CPU records (``reprodl/results/cross_cpu*/``) on which the pinned bits were checked."""
    import json

    from reprodl import results

    found: set[tuple[int, int]] = set()
    for path in sorted(results.FOLDER.glob("cross_cpu*/*.json")):
        try:
            c = json.loads(path.read_text(encoding="utf-8"))["cpu"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged record verifies nothing; crosscheck.load says why
        if c.get("l1d") and c.get("l2"):
            found.add((c["l1d"], c["l2"]))
    return found


def setup(seed: int, *, op_determinism: bool = True) -> None:
    """Pin the whole process and seed Python, NumPy and TensorFlow/Keras with ``seed``.

    Call it once at the top of a chapter or script, before any TensorFlow op runs. It warns
    (:class:`ReproducibilityWarning`) when ``PYTHONHASHSEED`` is unset or a setting is too late.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        from reprodl.errors import UsageError

        raise UsageError(f"seed must be a non-negative int, got {seed!r}")
    report = pin_environment()
    for name in report.too_late + _IMPORT_PIN.too_late:
        _warn(f"{name} was set after NumPy was imported, so it has no effect in this process.")
    if os.environ.get("PYTHONHASHSEED") is None:
        _warn(
            "PYTHONHASHSEED is not set: set iteration order of str varies between runs. It only "
            "takes effect before Python starts (e.g. `PYTHONHASHSEED=0 jupyter lab`)."
        )
    _check_isa()
    _pin_numpy()
    _pin_tensorflow(op_determinism)
    import keras

    keras.utils.set_random_seed(seed)  # seeds Python's random, NumPy's global state, TF and Keras
    differences = differences_from_book()
    if differences:
        print(book_environment_block(differences))


def differences_from_book() -> list[str]:
    """What differs here from the environment the book's outputs come from, one line each."""
    found = []
    here = versions()
    python = ".".join(here["python"].split(".")[:2])
    if python != BOOK_ENVIRONMENT["python"]:
        found.append(f"Python {python}, not {BOOK_ENVIRONMENT['python']}")
    for package in ("numpy", "tensorflow", "keras"):
        if package in here and here[package] != BOOK_ENVIRONMENT[package]:
            found.append(f"{package} {here[package]}, not {BOOK_ENVIRONMENT[package]}")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        found.append(f"a {platform.machine()} CPU, not x86-64 (other kernels)")
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            found.append("a GPU, on which TensorFlow runs other kernels than on a CPU")
    return found


def book_environment_block(differences: list[str]) -> str:
    """The note :func:`setup` prints where this environment differs from the book's."""
    book = BOOK_ENVIRONMENT
    return "\n".join(
        [
            "This environment differs from the one the book's outputs come from (Python "
            f"{book['python']}, NumPy {book['numpy']}, TensorFlow {book['tensorflow']}, Keras "
            f"{book['keras']}, an x86-64 CPU):",
            *(f"  - {line}" for line in differences),
            "So the last bits, and with them losses, accuracies and fingerprints, will differ "
            "from the printed ones (chapter 8 explains why). Every comparison within this "
            "machine, run against run, still holds.",
        ]
    )


#: What a report says, read from the process (:mod:`reprodl.env.report`): the contract's
#: settings in force, versions, the CPU, the report and its one-line form.
pinned_settings = report.pinned_settings
versions, installed_versions = report.versions, report.installed_versions
cpu_model, cpu_flags = report.cpu_model, report.cpu_flags
environment_report, environment_line = report.environment_report, report.environment_line
