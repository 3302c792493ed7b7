"""The same training gives the same bits from every context a reader runs it in.

The contract says "from any context (script, pytest, notebook kernel)". One MLP training of the
CLI is run four ways, and every fingerprint must be the same:

- from a shell (``bash -c``), as a reader types it;
- in this pytest process (``reprodl.cli.main``, after whatever the tests before it did);
- in a notebook kernel started the way ``make execute`` starts one: the same training inside the
  kernel, and the CLI as a child process of the running kernel.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import nbformat
import pytest
from support import KERNELSPEC, ROOT, execute_notebook

from reprodl import cli

ARGS = ["train", "--model", "mlp", "--steps", "40", "--seed", "0"]
FINGERPRINT = re.compile(r"^fingerprint ([0-9a-f]{64})$", re.M)


def _fingerprints(text: str) -> list[str]:
    return FINGERPRINT.findall(text)


@pytest.fixture(scope="module")
def from_shell() -> str:
    command = f"{shlex.quote(sys.executable)} -m reprodl {shlex.join(ARGS)}"
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    (found,) = _fingerprints(result.stdout)
    return found


@pytest.mark.slow
def test_pytest_process_gives_the_shells_bits(from_shell, capsys):
    assert cli.main(ARGS) == 0
    assert _fingerprints(capsys.readouterr().out) == [from_shell]


@pytest.mark.slow
def test_notebook_kernel_and_its_children_give_the_shells_bits(from_shell, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.cells = [
        nbformat.v4.new_code_cell(  # a child process of the running kernel
            "import subprocess, sys\n"
            f"child = subprocess.run([sys.executable, '-m', 'reprodl', *{ARGS!r}],\n"
            "                       capture_output=True, text=True, check=True)\n"
            "print(child.stdout)"
        ),
        nbformat.v4.new_code_cell(  # inside the kernel itself
            f"from reprodl.cli import main\n\nmain({ARGS!r})"
        ),
    ]
    path = tmp_path / "contexts.ipynb"
    nbformat.write(nb, path)
    execute_notebook(path)
    cells = nbformat.read(path, as_version=4).cells
    printed = [
        "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for cell in cells
    ]
    assert [_fingerprints(text) for text in printed] == [[from_shell]] * 2, printed
