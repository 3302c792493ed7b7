"""Counts the Python processes that import TensorFlow during a test run (tools/suite_durations.py).

On PYTHONPATH only while the durations record is measured: every process started from the
test run (kernels, CLI runs, QEMU children) appends one line, the test that started it
(``PYTEST_CURRENT_TEST``, inherited from pytest's environment) when TensorFlow is first imported.
"""

import os
import sys

_LOG = os.environ.get("REPRODL_TF_PROCESS_LOG")


def _hook(event, args):
    if event == "import" and args[0] == "tensorflow" and _LOG:
        test = os.environ.get("PYTEST_CURRENT_TEST", "")
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()}\t{test}\n")


if _LOG:
    sys.addaudithook(_hook)
