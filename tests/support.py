"""Helpers shared by the test modules: synthetic data, synthetic records, fresh processes and
notebooks in the book's conventions. Test modules import from here, never from each other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np

from reprodl import fingerprint
from reprodl.data import Split
from reprodl.records import RunRecord

ROOT = Path(__file__).resolve().parents[1]
EXECUTE = ROOT / "tools" / "execute_notebooks.py"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def synthetic_digits(n: int = 200, seed: int = 0) -> Split:
    """``n`` digit-like images whose label is the bright row (row ``2 * label + 3``): small
    synthetic data that a model learns in a few steps, for the mechanics of training."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    images[np.arange(n), 2 * labels + 3, :] = 255
    return Split(images, labels.astype(np.int64))


VARIABLES = [
    ("net/dense/kernel", [3, 2], "float32", "weight"),
    ("net/dense/bias", [2], "float32", "weight"),
    ("net/dropout/seed_generator_state", [2], "int64", "rng"),
    ("net/logits/kernel", [2, 2], "float32", "weight"),
]


def synthetic_record(
    steps: int = 12,
    every: int = 4,
    *,
    losses=None,
    changed: dict[str, int] | None = None,
    model: str = "mlp",
    variables=VARIABLES,
) -> RunRecord:
    """A record with digests of made-up arrays; ``changed[name] = step`` makes that variable's
    state different from that recorded step on (as a second run would be)."""
    changed = changed or {}
    digests = {}
    for step in sorted({*range(0, steps + 1, every), steps}):
        digests[step] = {}
        for name, shape, dtype, _ in variables:
            value = step + (1000 if name in changed and step >= changed[name] else 0)
            digests[step][name] = fingerprint.array_digest(np.full(shape, value, dtype=dtype))
    weights = [name for name, *_, kind in variables if kind == "weight"]
    if losses is None:
        losses = np.linspace(2.3, 0.3, steps, dtype=np.float32)
    meta = {
        "model": model,
        "seed": 0,
        "batch_size": 20,
        "steps": steps,
        "run": {"model": model, "steps": steps},
        "command": None,
        "settings": {"tf_intra_op_threads": 2},
        "versions": {"reprodl": "0.1.0"},
        "digest_every": every,
        "checkpoints": None,
    }
    return RunRecord(
        meta=meta,
        variables=[
            {"name": n, "shape": list(s), "dtype": d, "kind": k} for n, s, d, k in variables
        ],
        losses=np.asarray(losses, dtype=np.float32),
        digests=digests,
        final_digest=fingerprint.combine(digests[steps][n] for n in weights),
    )


def probe_notebook(seed: int = 0, steps: int = 50, timing: bool = True) -> nbformat.NotebookNode:
    """A small real notebook in the book's conventions: softmax regression for ``steps`` steps.

    ``timing`` adds a ``took 0.4 s`` line, which only tests/sanitize.cfg makes comparable.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Gate probe\n\nTrains softmax regression briefly."),
        nbformat.v4.new_code_cell(
            f"SEED = {seed}\nSTEPS = {steps}\n\nimport reprodl\n\n"
            "reprodl.setup(SEED)\nprint(reprodl.environment_line())"
        ),
        nbformat.v4.new_code_cell(
            "from reprodl import data, fingerprint, models, training\n\n"
            "mnist = data.load_mnist()\n"
            'model = models.build("softmax", seed=SEED)\n'
            "record = training.train(\n"
            "    model, mnist.train, steps=STEPS, batch_size=100,\n"
            '    optimizer=training.make_optimizer("sgd", 0.5), order_seed=SEED,\n'
            ")\n"
            'print("final loss", fingerprint.format_float(record.final_loss))\n'
            'print("fingerprint", fingerprint.short(record.final_digest))'
            + ('\nprint(f"took {record.seconds:.1f} s")' if timing else "")
        ),
        nbformat.v4.new_code_cell("print(training.evaluate(model, mnist.test))"),
    ]
    return nb


def execute_notebook(path: Path) -> None:
    """Execute ``path`` in place exactly as ``make execute`` does."""
    proc = subprocess.run(
        [sys.executable, str(EXECUTE), str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def run_python(
    *args: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    timeout: float = 600,
    cwd: str | os.PathLike[str] = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` in a fresh process (in ``cwd``, default the checkout): this
    environment, plus ``env``, minus ``unset``."""
    full_env = {**os.environ, **(env or {})}
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def processes_gone(pids: list[int], within: float = 5.0) -> bool:
    """Whether every process of ``pids`` is gone (or a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while any(process_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def is_old_path(path: Path) -> bool:
    """A package file kept only as the old name of moved modules: an alias that replaces itself
    in ``sys.modules``, or a re-export whose docstring says so."""
    if path.suffix != ".py":
        return False
    text = path.read_text(encoding="utf-8")
    return "sys.modules[__name__] = " in text or text.startswith('"""The old path of')
