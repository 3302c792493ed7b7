"""The reproducibility contract's values: what :mod:`reprodl.runtime` pins, readable without
pinning (the environment report names them; importing this module changes nothing).

Why each value: :mod:`reprodl.runtime`'s docstring.
"""

from __future__ import annotations

import platform

#: Intra-op threads TensorFlow uses for one op. With more than one, how oneDNN splits a matrix
#: product between threads depends on the CPU model, so each op runs on one thread.
INTRA_OP_THREADS = 1
#: Inter-op threads: independent ops (a layer's weight and input gradients) run side by side.
#: Each op still computes alone, so this buys speed without changing a bit.
INTER_OP_THREADS = 2
#: Threads of NumPy's BLAS (OpenBLAS). Float32 matmul bits change with it.
BLAS_THREADS = 1
#: The instruction-set cap for oneDNN on x86-64: AVX-512 machines then compute as AVX2 ones do.
ONEDNN_ISA = "AVX2"
#: TensorFlow's oneDNN ops ("1": MatMul, Conv2D and their gradients run as oneDNN primitives).
#: With "0" they run as Eigen contractions whose blocking follows the CPU's L2/L3 sizes, so the
#: bits differed between CPU models with 2 threads (:mod:`reprodl.runtime`'s docstring). Unset,
#: TensorFlow 2.21 picks "1" or "0" by CPU feature, so it is pinned either way.
ONEDNN_OPTS = "1"
#: The OpenBLAS kernel family on x86-64 (Haswell = the AVX2 kernels).
OPENBLAS_CORE = "Haswell"
#: NumPy's own SIMD loops (float32 exp, log, ...) dispatch by CPU at import; these are the
#: targets above AVX2 (x86-64-v3) that an AVX-512 machine would otherwise pick.
NUMPY_DISABLED_FEATURES = "X86_V4 AVX512_ICL AVX512_SPR"


def _pinned_variables() -> dict[str, str]:
    """The environment variables the contract fixes, with their values on this platform."""
    env = {
        "TF_CPP_MIN_LOG_LEVEL": "3",  # level 2 still lets a C++ error line through Keras fit
        "TF_ENABLE_ONEDNN_OPTS": ONEDNN_OPTS,
        "TF_NUM_INTRAOP_THREADS": str(INTRA_OP_THREADS),
        "TF_NUM_INTEROP_THREADS": str(INTER_OP_THREADS),
        # OpenMP and MKL builds only: the pinned TensorFlow runs oneDNN on its intra-op threads
        # and links neither; OpenBLAS reads OMP_NUM_THREADS only when OPENBLAS_NUM_THREADS is unset.
        "OMP_NUM_THREADS": str(INTRA_OP_THREADS),
        "OPENBLAS_NUM_THREADS": str(BLAS_THREADS),
        "MKL_NUM_THREADS": str(BLAS_THREADS),
    }
    if platform.machine().lower() in ("x86_64", "amd64"):
        env["ONEDNN_MAX_CPU_ISA"] = ONEDNN_ISA
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORE
        env["NPY_DISABLE_CPU_FEATURES"] = NUMPY_DISABLED_FEATURES
    return env


#: What :func:`reprodl.runtime.pin_environment` writes into ``os.environ`` on this machine.
PINNED_ENV: dict[str, str] = _pinned_variables()

#: Environment for processes that must reproduce the stored outputs (notebook kernels, tests):
#: the pins plus a fixed hash seed, which only works when set before the interpreter starts.
REPRODUCIBLE_ENV: dict[str, str] = {**PINNED_ENV, "PYTHONHASHSEED": "0"}

#: The environment the book's stored outputs were executed in (``requirements.txt`` pins the
#: packages; a test keeps the two equal). Elsewhere the last bits differ (chapter 8).
BOOK_ENVIRONMENT = {"python": "3.11", "numpy": "2.4.6", "tensorflow": "2.21.0", "keras": "3.15.1"}

# --- Keras' JAX backend (chapter 13) ---------------------------------------------------------
# Not part of PINNED_ENV: these variables matter only in a process whose Keras runs on JAX
# (``KERAS_BACKEND=jax`` before Keras is imported), and XLA_FLAGS would also reach
# TensorFlow's own XLA. Measured on the book's four models (``src/reprodl/results/cross_cpu_jax``).

#: Threads of XLA:CPU's thread pool. XLA sizes it from ``PJRT_NPROC`` (then ``NPROC``), else
#: from the cores the process may use (``DefaultThreadPoolSize`` in XLA's
#: ``xla/pjrt/utils.cc``), and the bits of the softmax, MLP and CNN runs change with that
#: size (1, 2 and 4 threads give three different CNN fingerprints): so a laptop with 8 cores and
#: a 2-core Colab machine may disagree unless it is fixed.
JAX_THREADS = 1
#: XLA's instruction-set cap for the code it generates (``--xla_cpu_max_isa``): AVX and SSE4.2
#: (no FMA) give other bits than AVX2; the cap makes AVX-512 machines generate AVX2 code. It does
#: not reach YNNPACK, to which XLA hands forward products and convolutions: its kernels follow the
#: CPU, so an AVX-512 CPU gives other bits than AVX2 ones under these pins (measured on one Xeon;
#: turning YNNPACK off makes Eigen's cache-dependent blocks decide instead; chapter 13).
JAX_ISA = "AVX2"
#: What a JAX process of the contract sets before JAX and Keras load. Fast math stays off (XLA's
#: default since 2021, pinned all the same: on, it changes every model's bits).
JAX_PINNED_ENV: dict[str, str] = {
    "KERAS_BACKEND": "jax",
    "PJRT_NPROC": str(JAX_THREADS),
    "XLA_FLAGS": f"--xla_cpu_max_isa={JAX_ISA} --xla_cpu_enable_fast_math=false",
}
