"""The reader's environment: a kernel outside the checkout, the package installed from a wheel.

The strict nbval gate executes every chapter here (``../conftest.py``), so one execution proves
both that the stored outputs reproduce exactly and that the chapter runs as a reader who
downloads it (or opens it on Colab) would run it:

- the chapters are copied into a temporary folder, away from ``src/`` and ``benchmarks/``, and
  the kernel runs there;
- the kernel is a fresh virtual environment where ``reprodl`` is not importable at first (the
  pinned dependencies are visible to it as a plain path, so nothing is downloaded);
- the chapters' own first cell, run once in that kernel before any chapter, installs the package
  from a wheel built from this checkout (``REPRODL_PACKAGE``, instead of the release on GitHub)
  with ``requirements.txt`` as pip constraints and no package index. After it, the first cell of
  every chapter finds the package and prints nothing, as its stored output says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
KERNEL = "outside"
INSTALLED = "Installed reprodl."


@dataclass(frozen=True)
class Outside:
    """Where the outside environment lives and what its install cell did."""

    python: Path  # the kernel's interpreter
    jupyter: Path  # a JUPYTER_PATH folder with the kernel spec "outside"
    book: Path  # the copied chapters; the kernel's working folder
    purelib: Path  # the venv's site-packages, where the wheel goes
    installed_before: bool  # was reprodl importable before the install cell ran?
    install_output: str  # what the install cell printed
    package_file: str  # reprodl.__file__ in the kernel's interpreter after the install


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def reprodl_file(python: Path) -> str | None:
    """Where ``python`` imports reprodl from (None: not importable)."""
    code = (
        "import importlib.util; s = importlib.util.find_spec('reprodl');"
        " print(s.origin if s else '')"
    )
    return _run(python, "-c", code).strip() or None


def install_cell() -> str:
    """The source of the chapters' first code cell (the same in every chapter)."""
    nb = nbformat.read(CHAPTERS[0], as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code").source


def build(base: Path, mnist_dir: str | Path | None) -> Outside:
    """Build the wheel, the venv, the kernel spec and the copied chapters under ``base``, put the
    kernel spec first on ``JUPYTER_PATH``, run the install cell once in that kernel. Raises
    RuntimeError naming the step that failed."""
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
    jupyter = base / "jupyter"
    kernels = jupyter / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    env = {
        "REPRODL_PACKAGE": wheel.as_uri(),
        "REPRODL_CONSTRAINTS": str(ROOT / "requirements.txt"),
        "PIP_NO_INDEX": "1",
        "PYTHONHASHSEED": "0",
    }
    if mnist_dir:
        env["REPRODL_DATA"] = str(mnist_dir)
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
    installed_before = reprodl_file(python) is not None
    # The kernel spec "outside" is found first from now on, by the install cell and nbval alike.
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        filter(None, [str(jupyter), os.environ.get("JUPYTER_PATH")])
    )
    output = _execute_install_cell(book)
    return Outside(
        python=python,
        jupyter=jupyter,
        book=book,
        purelib=purelib,
        installed_before=installed_before,
        install_output=output,
        package_file=reprodl_file(python) or "",
    )


def _execute_install_cell(book: Path) -> str:
    """Run the chapters' install cell in a fresh kernel of the outside environment."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(install_cell())]
    NotebookClient(
        nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(book)}}
    ).execute()
    return "".join(o.get("text", "") for o in nb.cells[0].outputs)


_STASH = pytest.StashKey[object]()


def environment(config: pytest.Config) -> Outside:
    """The outside environment of this pytest process, built on first use (once per worker). A
    build that failed fails every user with the same error,
    without building again."""
    if _STASH not in config.stash:
        base = Path(tempfile.mkdtemp(prefix="reprodl-outside-"))
        config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))
        try:
            env = build(base, os.environ.get("REPRODL_DATA"))
        except Exception as exc:  # noqa: BLE001 - kept and re-raised for every chapter
            env = exc
        config.stash[_STASH] = env
    env = config.stash[_STASH]
    if isinstance(env, Exception):
        raise env
    return env
