"""Re-execute notebooks in place, in the environment the exact-output gate uses.

Usage: python tools/execute_notebooks.py chapters/*.ipynb

Each notebook runs in a fresh kernel started with the reproducibility pins and PYTHONHASHSEED of
``reprodl.runtime.REPRODUCIBLE_ENV`` (the same environment ``tests/conftest.py`` gives nbval), with
its own folder as working directory. Volatile metadata (timestamps, kernel ids, widget state) is
not written and a cell's printed lines are stored as one output per stream, however the kernel
split them into messages, so executing twice in a row changes no byte.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

from reprodl.runtime import REPRODUCIBLE_ENV

#: Per-cell time limit; chapters have a 5-minute budget in all.
CELL_TIMEOUT = 600
_VOLATILE_CELL_KEYS = ("execution", "collapsed", "scrolled")


def clean(nb: nbformat.NotebookNode) -> None:
    """Drop metadata that changes from run to run without changing the content."""
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    for cell in nb.cells:
        for key in _VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)


def merge_streams(outputs: list) -> list:
    """Join consecutive outputs of one stream (stdout or stderr) into one output.

    How a kernel splits a cell's printing into messages depends on timing; the text does not.
    nbval compares the joined text, so merging keeps the gate exact and makes the bytes stable.
    """
    merged: list = []
    for out in outputs:
        last = merged[-1] if merged else None
        if (
            out.get("output_type") == "stream"
            and last is not None
            and last.get("output_type") == "stream"
            and last.get("name") == out.get("name")
        ):
            last["text"] = "".join(last["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def execute(path: Path) -> float:
    """Execute one notebook in place; return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    # The kernel nbval's --nbval-current-env starts: this interpreter, whatever kernelspecs the
    # user has installed (a user-level "python3" kernelspec may point at another Python).
    kernel = KernelManager(
        kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager()
    )
    client = NotebookClient(
        nb,
        km=kernel,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    clean(nb)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    os.environ.update(REPRODUCIBLE_ENV)  # inherited by every kernel started below
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    if not os.environ.get("REPRODL_DATA") and shared.is_dir():
        os.environ["REPRODL_DATA"] = str(shared)
    for path in args.notebooks:
        if not path.is_file():
            parser.error(f"no such notebook: {path}")
        seconds = execute(path)
        print(f"{path}: executed in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
