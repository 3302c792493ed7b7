#!/usr/bin/env python3
"""Minimal reduction of the cross-CPU drift: one MatMul's bits, by CPU, oneDNN ops and threads.

Prints a short digest of ``tf.linalg.matmul`` for a few shapes the book's models use (training
steps of batch 100, with and without ``transpose_a`` as in a weight gradient, and inference
batches of 1,000). Imports only NumPy and TensorFlow (not ``reprodl``), so the environment decides
everything. Run it on two CPUs, or on one under QEMU, and compare the lines:

    TF_CPP_MIN_LOG_LEVEL=3 ONEDNN_MAX_CPU_ISA=AVX2 TF_ENABLE_ONEDNN_OPTS=0 THREADS=2 \\
        python tools/probes/matmul_bits.py
    ... qemu-x86_64 -cpu EPYC-Milan .venv/bin/python tools/probes/matmul_bits.py

Measured (TensorFlow 2.21; Zen 4 host, QEMU EPYC-Milan and Haswell), ISA cap AVX2:

- ``TF_ENABLE_ONEDNN_OPTS=0``, 2 threads: ``784x100x256T`` groups {Milan} apart from {Zen 4,
  Haswell} (L2 512 KiB against 1 MiB and more: Eigen blocks the columns by the L2 size), and the
  ``1000x784x*`` products group {Zen 4} apart from {Milan, Haswell} (the rows are blocked by the
  L3 size, which the Zen 4's CPUID reports as far larger): three behaviours on three CPUs.
- ``=1``, 2 threads: ``1000x256x10`` and ``1000x784x10`` group {Haswell} apart from the AMD
  models (how oneDNN splits a product between threads).
- 1 thread, either value: every line agreed on all three CPUs.
"""

import hashlib
import os

import numpy as np
import tensorflow as tf

SHAPES = [  # (m, k, n, transpose_a)
    (100, 784, 256, False),
    (784, 100, 256, True),
    (100, 784, 10, False),
    (784, 100, 10, True),
    (1000, 784, 256, False),
    (1000, 256, 10, False),
    (1000, 784, 10, False),
]

tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("THREADS", "2")))
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
digests = []
for m, k, n, transpose_a in SHAPES:
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = tf.linalg.matmul(a, b, transpose_a=transpose_a).numpy()
    name = f"{m}x{k}x{n}{'T' if transpose_a else ''}"
    digests.append(f"{name}:{hashlib.sha256(c.tobytes()).hexdigest()[:8]}")
settings = (
    f"opts={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')} "
    f"isa={os.environ.get('ONEDNN_MAX_CPU_ISA', 'native')} threads={os.environ.get('THREADS', '2')}"
)
print(settings, " ".join(digests))
