"""Every chapter runs outside the checkout, with the package installed by its own first cell.

As a reader who downloads a chapter (or opens it on Colab) would run it: the notebooks are copied
into a temporary folder, away from ``src/`` and ``benchmarks/``; the kernel is a fresh virtual
environment where ``reprodl`` is *not* importable (the pinned dependencies are visible to it, so
nothing is downloaded); the first cell installs the package from a wheel built from this
checkout (``REPRODL_PACKAGE``, instead of the release on GitHub) with ``requirements.txt`` as pip
constraints and no package index. Every cell must run without an error. The exact outputs are the
strict nbval gate's job, inside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support import ROOT

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
INSTALLED = "Installed reprodl."


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def outside(tmp_path_factory, mnist_dir):
    """A folder with the chapters, a wheel of the package and a kernel that lacks the package."""
    base = tmp_path_factory.mktemp("outside")
    source = base / "source"  # build from a copy: a wheel build writes build/ into its tree
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = base / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, source)
    (wheel,) = wheels.glob("reprodl-*.whl")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    # The pinned dependencies, visible as plain paths: a .pth line adds the folder to sys.path
    # but does not run the .pth files inside it, so the editable reprodl stays invisible.
    (purelib / "pinned.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    kernels = base / "jupyter" / "kernels" / "outside"
    kernels.mkdir(parents=True)
    env = {
        "REPRODL_PACKAGE": wheel.as_uri(),
        "REPRODL_CONSTRAINTS": str(ROOT / "requirements.txt"),
        "PIP_NO_INDEX": "1",
        "REPRODL_DATA": str(mnist_dir),
        "PYTHONHASHSEED": "0",
    }
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "outside the checkout",
        "language": "python",
        "env": env,
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    book = base / "book"
    book.mkdir()
    for chapter in CHAPTERS:
        shutil.copy(chapter, book / chapter.name)
    return {"python": python, "jupyter": base / "jupyter", "book": book}


def _has_reprodl(python: Path) -> bool:
    code = "import importlib.util; print(importlib.util.find_spec('reprodl') is not None)"
    return _run(python, "-c", code).strip() == "True"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_outside_the_checkout(outside, chapter, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(outside["jupyter"]))
    installed_before = _has_reprodl(outside["python"])
    path = outside["book"] / chapter.name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="outside",
        timeout=900,
        resources={"metadata": {"path": str(outside["book"])}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    install = next(c for c in nb.cells if c.cell_type == "code")
    printed = "".join(o.get("text", "") for o in install.outputs)
    if installed_before:
        assert INSTALLED not in printed
    else:
        assert INSTALLED in printed, printed
        assert _has_reprodl(outside["python"])
    assert not os.path.exists(outside["book"] / "src")  # the chapter never needed the checkout
