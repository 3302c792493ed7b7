"""reprodl: bit-exact reproducible training on MNIST with TensorFlow 2 / Keras.

Importing the package pins the process environment first (thread counts, oneDNN ISA cap, BLAS
kernel), so ``import reprodl`` belongs before ``import numpy`` and ``import tensorflow``.
"""

from reprodl import runtime  # noqa: I001  (must run before anything imports NumPy)
from reprodl.runtime import environment_line, environment_report, setup

__version__ = "0.1.0"
__all__ = ["environment_line", "environment_report", "runtime", "setup", "__version__"]
