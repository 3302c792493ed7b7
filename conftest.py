"""Root pytest configuration: every process this test run starts (nbval kernels, CLI runs)
inherits the reproducibility pins, the fixed hash seed and the MNIST folder."""

import os
from pathlib import Path

from reprodl.runtime import REPRODUCIBLE_ENV

os.environ.update(REPRODUCIBLE_ENV)
_SHARED_MNIST = Path(__file__).resolve().parent.parent / "shared" / "data" / "mnist"
if not os.environ.get("REPRODL_DATA") and _SHARED_MNIST.is_dir():
    os.environ["REPRODL_DATA"] = str(_SHARED_MNIST)
