"""The toolkit never pins and never changes the caller's process; the book's engine pins.

One fresh interpreter loads TensorFlow first (as a user's script does), notes ``os.environ``,
TensorFlow's thread counts and op determinism, then imports each toolkit module in turn and checks
after each that nothing changed and that the engine (:mod:`reprodl.runtime`) was never loaded.
"""

from __future__ import annotations

import json

from support import run_python

from reprodl import runtime

#: The toolkit: what a practitioner imports beside their own training, and the CLI's entry.
TOOLKIT = (
    "reprodl",
    "reprodl.errors",
    "reprodl._io",
    "reprodl._formats",
    "reprodl._proc",
    "reprodl.schemas",
    "reprodl.env",
    "reprodl.env.contract",
    "reprodl.env.cpu",
    "reprodl.env.report",
    "reprodl.cpu",
    "reprodl.fingerprint",
    "reprodl.records",
    "reprodl.record",
    "reprodl.record.fingerprint",
    "reprodl.record.runrecord",
    "reprodl.record.state",
    "reprodl.record.compare",
    "reprodl.record.digest_map",
    "reprodl.keras",
    "reprodl.check",
    "reprodl.serving",
    "reprodl.serving.report",
    "reprodl.cli",
)

_CHILD = """
import json, os, sys, importlib
import tensorflow as tf
from tensorflow.python.framework import config

def state():
    return {
        "environ": dict(os.environ),
        "intra": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter": tf.config.threading.get_inter_op_parallelism_threads(),
        "determinism": config.is_op_determinism_enabled(),
    }

before = state()
changed = {}
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
    now = state()
    if now != before:
        changed[name] = sorted(k for k in now if now[k] != before[k])
        before = now
    if "reprodl.runtime" in sys.modules:
        changed.setdefault(name, []).append("imported reprodl.runtime")
        break
print(json.dumps(changed))
"""


def test_importing_the_toolkit_changes_nothing_in_the_callers_process():
    # Without the pinned variables, so that a module that pinned would change os.environ.
    unset = (*runtime.PINNED_ENV, "PYTHONHASHSEED")
    result = run_python("-c", _CHILD, json.dumps(TOOLKIT), unset=unset)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {}


def test_the_engine_pins_on_import():
    code = (
        "import os, json\n"
        "before = dict(os.environ)\n"
        "import reprodl.runtime as rt\n"
        "print(json.dumps({k: os.environ.get(k) for k in rt.PINNED_ENV if os.environ.get(k) "
        "!= before.get(k)}))\n"
    )
    result = run_python("-c", code, unset=tuple(runtime.PINNED_ENV))
    assert result.returncode == 0, result.stderr[-3000:]
    changed = json.loads(result.stdout)
    assert changed.get("TF_NUM_INTRAOP_THREADS") == "1"
